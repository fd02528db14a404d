"""IAM policy evaluation the emulation needs and moto 5.2.5 lacks, after AWS's documented semantics (IAM User Guide:
"Policy evaluation logic", "IAM JSON policy elements: Condition operators", "Policy variables", "Monitor and control
actions taken with assumed roles" (source identity)):

- Resource policies: statements matched by action, resource, principal and condition (`evaluate`); used for another
  account's resources (pipelines/local/accounts.py) and, here, for a bucket policy's explicit Deny in the bucket's own
  account (moto evaluates no bucket policy at all): an explicit Deny in any applicable policy overrides every Allow.
- Trust policies on sts:AssumeRole. moto compares the caller's ARN with the trust policy's principal literally (an
  account-root principal never matches a user of that account) and evaluates only sts:ExternalId. Here: the account
  root, an account id or an exact ARN matches; `sts:RoleSessionName`, `sts:SourceIdentity`, `sts:ExternalId`,
  `aws:username`, `aws:userid`, `aws:PrincipalArn` and `aws:PrincipalAccount` are condition keys; policy variables such as
  `${aws:username}` take the request's value, and a variable whose key the request lacks (aws:username of a role
  session) matches nothing; setting a source identity needs `sts:SetSourceIdentity` in the trust policy too, and a
  session that has a source identity cannot pass another one when it chains to a role.
- aws:PrincipalArn of a role session is the role's ARN with its IAM path (the bucket policy names a role path).
- A copy (CopyObject, UploadPartCopy) needs s3:GetObject (s3:GetObjectVersion for a version) on its source as well
  as s3:PutObject on its target; moto checked the target only.
- moto's own check of a bucket policy on object requests (no caller, no condition keys, any unverifiable condition
  read as a Deny) is off (pipelines/local/moto_extensions.py): the evaluation above replaces it.
- Attribute-based access ("Pass session tags in AWS STS", "IAM policy elements: Variables and tags",
  "aws:PrincipalTag"): a principal's tags are its IAM tags, overridden key by key by the tags its session was given
  (sts:AssumeRole `Tags`) and the transitive ones it inherited in a role chain. moto ignores all three and reads
  `${...}` in a Resource as a regex anchor, so an ABAC policy denied everything. Here, in identity policies:
  `${aws:PrincipalTag/k}` and the other principal keys are substituted in Resource and NotResource (a key the
  request lacks makes the entry match nothing, unless the variable has a default: `${aws:PrincipalTag/k, 'x'}`),
  and Conditions on principal keys are evaluated (moto ignores every identity-policy condition; keys this emulation
  does not model still are). A statement whose condition does not hold does not apply (moto read it as a Deny), and
  NotResource applies to every resource it does not name (moto read a statement without Resource as applying to all).
  Tag keys and condition keys compare regardless of case; Null is evaluated and an operator this emulation does not
  model raises UnmodelledCondition. A substituted value is literal text, and every pattern an IAM glob (`*`, `?`).
  Passing tags needs sts:TagSession in the role's trust policy (with aws:RequestTag/k, aws:TagKeys and
  sts:TransitiveTagKeys as condition keys there) and in the caller's own policies, at most 50 tags, keys of 128 and
  values of 256 characters; a chained session cannot change an inherited transitive tag. Resource policies take the
  same variables in Resource and NotResource.
- Request keys in identity policies (`request_context`): dynamodb:LeadingKeys of item requests and queries and
  s3:prefix of ListBucket are evaluated, with policy variables in the condition values (the control plane's
  model-scoped grants name a model's partition and prefix so), and a KMS request's kms:EncryptionContext:<k> (with
  kms:ViaService absent: a direct call), and CreateInferenceComponent's sagemaker:ModelArn; other request keys
  (dynamodb:Attributes, dynamodb:ReturnValues, ...) are still not evaluated.
- An action with several resource types is allowed only when each is (the Service Authorization Reference's required
  resource types): CreateInferenceComponent on its component and its endpoint, InvokeEndpoint naming an inference
  component on its endpoint and that component (pipelines/local/iam.py additional_sagemaker_resources); moto checks
  one resource per request.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from contextvars import ContextVar

_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_DEFAULTED = re.compile(r"^\s*([^,\s]+)\s*,\s*'([^']*)'\s*$")
_LITERALS = {"*": "*", "?": "?", "$": "$"}  # ${*}, ${?}, ${$}: the character itself
PRINCIPAL_KEYS = ("aws:PrincipalArn", "aws:PrincipalAccount", "aws:username", "aws:SourceIdentity", "aws:userid")
_PRINCIPAL_KEYS_LOWER = {key.lower() for key in PRINCIPAL_KEYS}
MAX_SESSION_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE = 50, 128, 256


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str, case: bool = True) -> bool:
    return re.fullmatch(_wildcards(pattern), value, re.DOTALL | (0 if case else re.IGNORECASE)) is not None


def _lookup(context: dict, name: str) -> tuple[bool, object]:
    """A request-context value by its key, which AWS compares case-insensitively (condition keys and tag keys)."""
    wanted = name.lower()
    return next(((True, value) for key, value in context.items() if key.lower() == wanted), (False, None))


def _substituted(expected: str, context: dict) -> str | None:
    """A policy value with its variables replaced by the request's values; None when a variable's key is not in the
    request and it has no default (the value then matches nothing)."""
    missing = False

    def value(found: re.Match) -> str:
        nonlocal missing
        name, default = found.group(1), None
        if name in _LITERALS:
            return _LITERALS[name]
        defaulted = _DEFAULTED.match(name)
        if defaulted:
            name, default = defaulted.groups()
        present, found_value = _lookup(context, name)
        if present:
            return str(found_value)
        missing = missing or default is None
        return default or ""

    substituted = _VARIABLE.sub(value, expected)
    return None if missing else substituted


def _principal_key(key: str) -> bool:
    return key.lower() in _PRINCIPAL_KEYS_LOWER or key.lower().startswith("aws:principaltag/")


# Request keys evaluated in identity policies (moto evaluates none): what the control plane's model-scoped grants name.
REQUEST_KEYS = ("dynamodb:LeadingKeys", "s3:prefix", "kms:ViaService", "iam:PassedToService", "sagemaker:ModelArn")
_REQUEST_KEYS_LOWER = {key.lower() for key in REQUEST_KEYS}
_KMS_CONTEXT_ACTIONS = ("kms:encrypt", "kms:decrypt", "kms:generatedatakey", "kms:generatedatakeywithoutplaintext",
                        "kms:reencryptfrom", "kms:reencryptto")
UNREAD_PARTITION = "<a partition key the local emulation could not read>"
_ITEM_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")


def _modelled_key(key: str) -> bool:
    return _principal_key(key) or key.lower() in _REQUEST_KEYS_LOWER or key.lower().startswith("kms:encryptioncontext:")


def request_context(action: str, data, body: bytes | None, hash_key_of, scope: tuple[str, str] | None = None) -> dict:
    """The modelled request keys of one request. dynamodb:LeadingKeys: the partition key value of an item request's
    Key (or Item), or of a Query's key condition ("Using IAM policy conditions for fine-grained access control",
    DynamoDB developer guide; Scan and batch requests are not modelled: the key is absent, so a ForAllValues
    condition holds, as it does in AWS for a request without partition keys). s3:prefix: a ListBucket's prefix parameter, absent when it has none
    (Amazon S3 user guide, "Condition keys": "s3:prefix")."""
    if action.lower() == "sagemaker:createinferencecomponent" and scope:
        return _model_arn(body, *scope)
    if action.lower() in _KMS_CONTEXT_ACTIONS:
        # kms:EncryptionContext:<k>: the request's context, pair by pair; kms:ViaService is absent from a direct
        # call (AWS KMS developer guide, "Condition keys for AWS KMS"): calls a service makes on the caller's behalf
        # are not made here.
        try:
            context = json.loads(body or b"{}").get("EncryptionContext") or {}
        except ValueError:
            return {}
        return {f"kms:EncryptionContext:{key}": str(value) for key, value in context.items()}
    if action.lower() == "s3:listbucket":
        prefix = (data or {}).get("prefix")
        prefix = prefix[0] if isinstance(prefix, list) and prefix else prefix
        return {"s3:prefix": prefix} if isinstance(prefix, str) else {}
    if action.lower() in (a.lower() for a in (*_ITEM_ACTIONS, "dynamodb:Query")):
        try:
            request = json.loads(body or b"{}")
            hash_key = hash_key_of(request.get("TableName"))
            value = _queried_partition(request, hash_key) if action.lower() == "dynamodb:query" else \
                (request.get("Key") or request.get("Item") or {})[hash_key]
            value = next(iter(value.values()))
        except Exception:  # a form this emulation does not read (KeyConditions, a table ARN): fail closed
            return {"dynamodb:LeadingKeys": [UNREAD_PARTITION]}
        return {"dynamodb:LeadingKeys": [str(value)]}
    return {}


def _model_arn(body: bytes | None, region: str, account: str) -> dict:
    """sagemaker:ModelArn of a CreateInferenceComponent: the model its Specification names (Service Authorization
    Reference, Amazon SageMaker: a condition key of the action on both its resource types)."""
    from pipelines.local.iam import sagemaker_arn

    try:
        model = (json.loads(body or b"{}").get("Specification") or {}).get("ModelName")
    except (ValueError, AttributeError):
        return {}
    return {"sagemaker:ModelArn": sagemaker_arn("model", model, region, account)} if isinstance(model, str) else {}


def _queried_partition(request: dict, hash_key: str) -> dict:
    """The partition key value a Query's KeyConditionExpression names (`#n0 = :v0 AND begins_with(#n1, :v1)`)."""
    names, values = request.get("ExpressionAttributeNames") or {}, request.get("ExpressionAttributeValues") or {}
    for name, placeholder in re.findall(r"(#?[\w]+)\s*=\s*(:[\w]+)", request["KeyConditionExpression"]):
        if names.get(name, name) == hash_key:
            return values[placeholder]
    raise KeyError(hash_key)


class UnmodelledCondition(ValueError):
    """A condition operator the emulation cannot evaluate: refused loudly, never read as holding or not."""


def _pattern_regex(pattern: str, context: dict) -> str | None:
    """An ARN pattern as a regex: `*` and `?` are wildcards, policy variables take the request's values as literal
    text (`${*}` is a literal asterisk); None when a variable has no value and no default."""
    parts, position = [], 0
    for found in _VARIABLE.finditer(pattern):
        parts.append(_wildcards(pattern[position:found.start()]))
        value = _substituted(found.group(0), context)
        if value is None:
            return None
        parts.append(re.escape(value))
        position = found.end()
    parts.append(_wildcards(pattern[position:]))
    return "".join(parts)


def _wildcards(text: str) -> str:
    return ".*".join(re.escape(part).replace(r"\?", ".") for part in text.split("*"))


def _condition_holds(operator: str, key: str, expected, context: dict) -> bool:
    qualifier, _, operator = operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    negated = operator in ("StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike")
    present, value = _lookup(context, key)
    if operator == "Null":  # "true": the key is absent from the request; "false": it is there
        return (not present) == (str(as_list(expected)[0]).lower() == "true")
    if operator not in _OPERATORS:
        raise UnmodelledCondition(f"the local emulation does not evaluate the condition operator {operator} "
                                  f"(on {key}); evaluate it by hand against the IAM condition operators reference")
    if not present:
        return if_exists or qualifier == "ForAllValues" or negated
    actual = [str(v) for v in as_list(value)]
    expected = [e for e in (_substituted(str(v), context) for v in as_list(expected)) if e is not None]
    if operator in ("StringEquals", "ArnEquals"):
        match = lambda value: value in expected  # noqa: E731
    elif operator == "StringEqualsIgnoreCase":
        match = lambda value: value.lower() in [e.lower() for e in expected]  # noqa: E731
    elif operator in ("StringLike", "ArnLike"):
        match = lambda value: any(_like(e, value) for e in expected)  # noqa: E731
    elif operator == "Bool":
        match = lambda value: value.lower() in [e.lower() for e in expected]  # noqa: E731
    elif operator in ("StringNotEquals", "ArnNotEquals"):
        match = lambda value: value not in expected  # noqa: E731
    elif operator == "StringNotEqualsIgnoreCase":
        match = lambda value: value.lower() not in [e.lower() for e in expected]  # noqa: E731
    elif operator in ("StringNotLike", "ArnNotLike"):
        match = lambda value: not any(_like(e, value) for e in expected)  # noqa: E731
    return all(map(match, actual)) if qualifier == "ForAllValues" else any(map(match, actual))


_OPERATORS = {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool", "StringNotEquals",
              "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def _principal_matches(principal, caller: dict) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for value in as_list(principal.get("AWS", [])):
        if value == "*" or value in (caller["aws:PrincipalArn"], caller["session_arn"], caller["aws:PrincipalAccount"],
                                     f"arn:aws:iam::{caller['aws:PrincipalAccount']}:root"):
            return True
    return False


def evaluate(document: dict, action: str, resource: str, context: dict, caller: dict | None = None) -> str | None:
    """'deny', 'allow' or None (no statement applies). caller: the principal, for a resource policy."""
    allowed = False
    for statement in as_list(document.get("Statement", [])):
        if "Action" in statement and not any(_like(a, action, case=False) for a in as_list(statement["Action"])):
            continue
        if "NotAction" in statement and any(_like(a, action, case=False) for a in as_list(statement["NotAction"])):
            continue
        if "Resource" in statement and not _names(statement["Resource"], resource, context):
            continue
        if "NotResource" in statement and _names(statement["NotResource"], resource, context):
            continue
        if caller is not None and not _principal_matches(statement.get("Principal"), caller):
            continue
        conditions = statement.get("Condition") or {}
        if not all(_condition_holds(op, key, value, context) for op, pairs in conditions.items()
                   for key, value in pairs.items()):
            continue
        if statement.get("Effect") == "Deny":
            return "deny"
        allowed = True
    return "allow" if allowed else None


def _names(patterns, resource: str, context: dict) -> bool:
    """Whether a Resource (or NotResource) element names `resource`, its policy variables taking the request's
    values (an entry whose variable has no value names nothing)."""
    regexes = [r for r in (_pattern_regex(str(p), context) for p in as_list(patterns)) if r is not None]
    return any(re.fullmatch(regex, resource, re.DOTALL) for regex in regexes)


def identity_allows(documents: list[dict], action: str, resource: str, context: dict) -> bool:
    verdicts = [evaluate(document, action, resource, context) for document in documents]
    return "deny" not in verdicts and "allow" in verdicts


def caller_of(principal_arn: str) -> dict:
    """aws:PrincipalArn is the role's ARN, with its IAM path, for a role session (what resource policies name)."""
    account = principal_arn.split(":")[4]
    session = re.match(r"^arn:aws:sts::\d{12}:assumed-role/([^/]+)/", principal_arn)
    role = _role_arn(account, session.group(1)) if session else principal_arn
    return {"aws:PrincipalArn": role, "aws:PrincipalAccount": account, "session_arn": principal_arn}


def principal_context(key) -> dict:
    """What a request by this access key (an IAM user's or a session's) carries about its principal."""
    context = caller_of(key.arn)
    if hasattr(key, "_owner_user_name"):
        context["aws:username"] = key._owner_user_name
    user_id = principal_user_id(key)
    if user_id:
        context["aws:userid"] = user_id
    access_key_id = getattr(key, "_access_key_id", None)
    if access_key_id in _source_identities:
        context["aws:SourceIdentity"] = _source_identities[access_key_id]
    for name, value in principal_tags(key).items():
        context[f"aws:PrincipalTag/{name}"] = value
    return context


def principal_user_id(key) -> str | None:
    """aws:userid: an IAM user's unique id, or a role session's '<role unique id>:<session name>' (IAM User Guide,
    "AWS global condition context keys", aws:userid); what Lambda reports as requestContext.authorizer.iam.callerId."""
    try:
        if hasattr(key, "_session_name"):
            return f"{key.backend.get_role(key._owner_role_name).id}:{key._session_name}"
        if hasattr(key, "_owner_user_name"):
            return key.backend.get_user(key._owner_user_name).id
    except Exception:  # a principal moto no longer knows
        return None
    return None


def principal_tags(key) -> dict[str, str]:
    """The principal's IAM tags (the role's or the user's), then its session's tags, which win on a shared key."""
    backend, tags = key.backend, {}
    try:
        if hasattr(key, "_owner_role_name"):
            tags = {t["Key"]: t["Value"] for t in backend.get_role(key._owner_role_name).tags}
        elif hasattr(key, "_owner_user_name"):
            tags = {t["Key"]: t["Value"] for t in backend.list_user_tags(key._owner_user_name)}
    except Exception:  # a principal moto no longer knows has no tags
        tags = {}
    session = _session_tags.get(getattr(key, "_access_key_id", None), {})
    overridden = {k.lower() for k in session}
    return {k: v for k, v in tags.items() if k.lower() not in overridden} | session


def _hash_key(account: str, region: str, table: str) -> str:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[account][region].get_table(table).hash_key_attr


def _role_arn(account: str, name: str) -> str:
    from moto.iam.models import iam_backends

    try:
        return iam_backends[account]["aws"].get_role(name).arn
    except Exception:  # a role moto does not know (another account's, not emulated)
        return f"arn:aws:iam::{account}:role/{name}"


# ---------------------------------------------------------------------------------------------- moto

def _request_value(data: dict, name: str) -> str | None:
    value = data.get(name)
    return value[0] if isinstance(value, list) and value else value


# Source identities of the sessions moto issued: access key id -> source identity (it stays with the session and
# every session it chains to).
_source_identities: dict[str, str] = {}
# Session tags of the sessions moto issued (access key id -> {key: value}) and which of them pass down a role chain.
_session_tags: dict[str, dict[str, str]] = {}
_transitive_keys: dict[str, set[str]] = {}
# The principal of the identity-policy check in progress (what ${aws:PrincipalTag/...} and the like resolve to).
_principal: ContextVar[dict | None] = ContextVar("principal", default=None)


def request_tags(data: dict) -> dict[str, str]:
    """sts:AssumeRole's Tags (query form: Tags.member.N.Key / .Value)."""
    tags, index = {}, 1
    while _request_value(data, f"Tags.member.{index}.Key") is not None:
        tags[_request_value(data, f"Tags.member.{index}.Key")] = _request_value(data, f"Tags.member.{index}.Value") or ""
        index += 1
    return tags


def request_transitive_keys(data: dict) -> set[str]:
    keys, index = set(), 1
    while _request_value(data, f"TransitiveTagKeys.member.{index}") is not None:
        keys.add(_request_value(data, f"TransitiveTagKeys.member.{index}"))
        index += 1
    return keys


def inherited_tags(access_key_id: str | None) -> dict[str, str]:
    """The transitive session tags a session passes to the next one in its chain."""
    tags = _session_tags.get(access_key_id, {})
    return {k: v for k, v in tags.items() if k in _transitive_keys.get(access_key_id, set())}


def session_tags_refusal(data: dict, caller_key_id: str | None) -> str | None:
    """Why STS refuses the tags of an AssumeRole request, or None."""
    asked, inherited = request_tags(data), inherited_tags(caller_key_id)
    if len(asked) > MAX_SESSION_TAGS:
        return f"at most {MAX_SESSION_TAGS} session tags"
    if any(len(k) > MAX_TAG_KEY or len(v) > MAX_TAG_VALUE for k, v in asked.items()):
        return f"session tag keys of at most {MAX_TAG_KEY} and values of at most {MAX_TAG_VALUE} characters"
    if not request_transitive_keys(data) <= set(asked):
        return "a transitive tag key must be one of the session's tags"
    changed = sorted(k for k, v in asked.items() if k in inherited and inherited[k] != v)
    if changed:
        return f"the chained session cannot change its inherited transitive tags {changed}"
    return None


def trusted(request, role_arn: str) -> bool:
    """Whether the role's trust policy lets the caller of an sts:AssumeRole request assume it, with the session name,
    source identity and external id it asks for."""
    role = request.backend.get_role_by_arn(role_arn)
    document = role.assume_role_policy_document
    document = json.loads(document) if isinstance(document, str) else document
    key, data = request._access_key, request._data
    caller = caller_of(key.arn)
    context = {**principal_context(key), "aws:SecureTransport": "true"}
    context.pop("aws:SourceIdentity", None)
    access_key_id = getattr(key, "_access_key_id", None)
    inherited = _source_identities.get(access_key_id)
    asked_tags, transitive = request_tags(data), request_transitive_keys(data)
    tags = asked_tags | inherited_tags(access_key_id)
    if tags:
        context.update({f"aws:RequestTag/{k}": v for k, v in tags.items()}, **{"aws:TagKeys": sorted(tags)})
    if transitive:
        context["sts:TransitiveTagKeys"] = sorted(transitive)
    if asked_tags:
        _identity_allows_tagging(request, role_arn)
    asked = _request_value(data, "SourceIdentity")
    if inherited and asked and asked != inherited:
        return False  # a session's source identity cannot be changed, not even by chaining
    for name, value in (("sts:RoleSessionName", _request_value(data, "RoleSessionName")),
                        ("sts:SourceIdentity", asked or inherited), ("sts:ExternalId", _request_value(data, "ExternalId"))):
        if value is not None:
            context[name] = value
    actions = ["sts:AssumeRole"] + (["sts:SetSourceIdentity"] if asked or inherited else []) + \
        (["sts:TagSession"] if tags else [])
    if session_tags_refusal(data, access_key_id):
        return False
    return all(evaluate(document, action, role_arn, context, caller) == "allow" for action in actions)


def _identity_allows_tagging(request, role_arn: str) -> None:
    """Passing session tags is also the permissions-only action sts:TagSession in the caller's own policies ("Pass
    session tags in AWS STS": permissions required); moto checks sts:AssumeRole alone. Raises AccessDenied."""
    action = request._action
    request._action = "sts:TagSession"
    try:
        request.check_action_permitted(role_arn)
    finally:
        request._action = action


def denied_by_bucket_policy(request, resource: str) -> bool:
    """An explicit Deny in the bucket's own policy for this S3 request (the bucket's account only: another
    account's bucket is checked whole by pipelines/local/accounts.py)."""
    from moto.s3.models import s3_backends

    if not resource.startswith("arn:aws:s3:::"):
        return False
    name = resource[len("arn:aws:s3:::"):].split("/", 1)[0]
    owner = (s3_backends.bucket_accounts.get(name) or (None, None))[1]
    if owner != request.account_id:
        return False
    try:
        policy = s3_backends[owner]["aws"].get_bucket(name).policy
    except Exception:
        return False
    if not policy:
        return False
    document = json.loads(policy) if isinstance(policy, (str, bytes)) else policy
    caller = caller_of(request._access_key.arn)
    context = {**principal_context(request._access_key), "aws:SecureTransport": "true"}
    return evaluate(document, request._action, resource, context, caller) == "deny"


def copy_source(headers: dict) -> tuple[str, bool] | None:
    """(source object ARN, whether a version is named) of a CopyObject / UploadPartCopy request, else None."""
    value = next((v for k, v in headers.items() if k.lower() == "x-amz-copy-source"), None)
    if not value:
        return None
    path, _, query = urllib.parse.unquote(value).lstrip("/").partition("?")
    return f"arn:aws:s3:::{path}", "versionId=" in query


def check_copy_source(request, source: str, versioned: bool) -> None:
    """A copy reads its source: AWS authorizes s3:GetObject (s3:GetObjectVersion for a named version) on the source
    object too (S3 API reference, CopyObject permissions); moto checks only s3:PutObject on the target. Checked
    through the same chain (identity policies, another account's bucket policy, bucket-policy denials)."""
    action = request._action
    request._action, request._checking_copy_source = ("s3:GetObjectVersion" if versioned else "s3:GetObject"), True
    try:
        request.check_action_permitted(source)
    finally:
        request._action, request._checking_copy_source = action, False


# Requests that hand a role to SageMaker (the role SageMaker assumes for the job or the model): AWS authorizes
# iam:PassRole on that role for the caller, with iam:PassedToService (IAM user guide, "Grant a user permissions to
# pass a role to an AWS service"; SageMaker developer guide, "SageMaker Roles": "the caller needs iam:PassRole").
# moto authorizes only the SageMaker action. action -> where the request names the role.
PASSED_ROLES = {"sagemaker:CreateModel": ("ExecutionRoleArn",), "sagemaker:CreateTrainingJob": ("RoleArn",),
                "sagemaker:CreateEndpointConfig": ("ExecutionRoleArn",),  # botocore: "must have the iam:PassRole"
                "sagemaker:CreateHyperParameterTuningJob": ("TrainingJobDefinition", "RoleArn")}


def passed_role(action: str, body: bytes | None) -> str | None:
    """The role a request passes to SageMaker, if it is one that does."""
    path = PASSED_ROLES.get(action)
    if not path:
        return None
    try:
        value = json.loads(body or b"{}")
        for name in path:
            value = value[name]
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def check_pass_role(request, role_arn: str, service: str, check) -> None:
    """iam:PassRole of role_arn to `service`, through the caller's policies as `check(request, resource)` does."""
    action = request._action
    request._action = "iam:PassRole"
    token = _principal.set(principal_context(request._access_key) | {"iam:PassedToService": service})
    try:
        check(request, role_arn)
    finally:
        request._action = action
        _principal.reset(token)


# Actions moto authorizes under another name than AWS does (the Service Authorization Reference): Lambda's Invoke
# API is the lambda:InvokeFunction action, which is what every policy grants.
MOTO_ACTION_NAMES = {"lambda:Invoke": "lambda:InvokeFunction"}

_installed = False


def install() -> None:
    """Trust policies and same-account bucket-policy denials, evaluated as above, and source identities kept."""
    global _installed
    if _installed:
        return
    from moto.iam.access_control import IAMRequestBase, S3IAMRequest
    from moto.sts import responses as sts_responses

    from pipelines.local.iam import additional_sagemaker_resources

    original_check = IAMRequestBase.check_action_permitted
    _install_abac()

    def check_action_permitted(self, resource: str) -> None:
        self._action = MOTO_ACTION_NAMES.get(self._action, self._action)
        token = _principal.set(principal_context(self._access_key) | request_context(
            self._action, self._data, self._body, lambda table: _hash_key(self.account_id, self._region, table),
            (self._region, self.account_id)))
        try:
            original_check(self, resource)
            for also in additional_sagemaker_resources(self._action, self._headers, self._body, self._region,
                                                       self.account_id):
                original_check(self, also)
        finally:
            _principal.reset(token)
        role = passed_role(self._action, self._body)
        if role:
            check_pass_role(self, role, "sagemaker.amazonaws.com", original_check)
        if not isinstance(self, S3IAMRequest):
            return
        if denied_by_bucket_policy(self, resource):
            self._raise_access_denied()
        source = copy_source(self._headers)
        if source and not getattr(self, "_checking_copy_source", False):
            check_copy_source(self, *source)

    original_assume = sts_responses.TokenResponse.assume_role

    def assume_role(self):
        result = original_assume(self)
        caller_key = self.headers.get("Authorization", "").partition("Credential=")[2].split("/")[0]
        issued = result.result["Credentials"].access_key_id
        source = self._get_param("SourceIdentity") or _source_identities.get(caller_key)
        if source:
            _source_identities[issued] = source
        data = self.querystring
        tags = inherited_tags(caller_key) | request_tags(data)
        if tags:
            _session_tags[issued] = tags
            _transitive_keys[issued] = set(inherited_tags(caller_key)) | request_transitive_keys(data)
        return result

    IAMRequestBase.check_action_permitted = check_action_permitted
    IAMRequestBase._check_role_trust_relationship = lambda self, role_arn: trusted(self, role_arn)
    sts_responses.TokenResponse.assume_role = assume_role
    _installed = True


def _install_abac() -> None:
    """Identity policies: principal variables substituted in Resource/NotResource, principal-key conditions
    evaluated, and a statement whose condition does not hold left out (not read as a Deny)."""
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    from pipelines.local.iam import STAR_ONLY

    original_match, original_conditions = IAMPolicyStatement._check_element_matches, IAMPolicyStatement._check_conditions
    original_permitted = IAMPolicyStatement.is_action_permitted

    def check_element_matches(self, element: str, value: str) -> bool:
        context = _principal.get()
        values = as_list(self._statement.get(element, []))
        if context is None or element not in ("Resource", "NotResource") or not any("${" in str(v) for v in values) \
                or value in ("*", STAR_ONLY):
            return original_match(self, element, value)
        return _names(values, value, context)

    def check_conditions(self, incoming) -> bool:
        context, conditions = _principal.get(), self._statement.get("Condition") or {}
        if context is None or incoming is not None:
            return original_conditions(self, incoming)
        modelled = all(_condition_holds(operator, key, expected, context) for operator, pairs in conditions.items()
                       for key, expected in pairs.items() if _modelled_key(key))
        rest = {operator: {k: v for k, v in pairs.items() if not _modelled_key(k)} for operator, pairs in conditions.items()}
        return modelled and original_conditions(IAMPolicyStatement({**self._statement, "Condition": rest}), incoming)

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        if _principal.get() is None or incoming_condition_values is not None:
            return original_permitted(self, action, resource, principal, incoming_condition_values)
        if self._statement.get("Condition") and not self._check_conditions(incoming_condition_values):
            return PermissionResult.NEUTRAL
        if "NotResource" not in self._statement:
            return original_permitted(self, action, resource, principal, incoming_condition_values)
        # moto reads a statement without Resource as a trust policy's (it applies to everything): NotResource applies
        # to every resource it does not name.
        concerned = (not self._check_element_matches("NotAction", action)) if "NotAction" in self._statement \
            else self._check_element_matches("Action", action)
        if not concerned or self._check_element_matches("NotResource", resource):
            return PermissionResult.NEUTRAL
        return PermissionResult.PERMITTED if self._statement["Effect"] == "Allow" else PermissionResult.DENIED

    # moto turns `*` into `.*` and leaves every other regex character live (`.` matches anything, `+` nothing):
    # IAM's globs have two wildcards, `*` and `?`, and every other character is itself.
    IAMPolicyStatement._match = staticmethod(lambda pattern, string: re.fullmatch(_wildcards(pattern), string, re.DOTALL))
    IAMPolicyStatement._check_element_matches = check_element_matches
    IAMPolicyStatement._check_conditions = check_conditions
    IAMPolicyStatement.is_action_permitted = is_action_permitted

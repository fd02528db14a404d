"""IAM policy evaluation the emulation needs and moto 5.2.5 lacks, after AWS's documented semantics (IAM User Guide:
"Policy evaluation logic", "IAM JSON policy elements: Condition operators", "Policy variables", "Monitor and control
actions taken with assumed roles" (source identity)):

- Resource policies: statements matched by action, resource, principal and condition (`evaluate`); used for another
  account's resources (pipelines/local/accounts.py) and, here, for a bucket policy's explicit Deny in the bucket's own
  account (moto evaluates no bucket policy at all): an explicit Deny in any applicable policy overrides every Allow.
- Trust policies on sts:AssumeRole. moto compares the caller's ARN with the trust policy's principal literally (an
  account-root principal never matches a user of that account) and evaluates only sts:ExternalId. Here: the account
  root, an account id or an exact ARN matches; `sts:RoleSessionName`, `sts:SourceIdentity`, `sts:ExternalId`,
  `aws:username`, `aws:PrincipalArn` and `aws:PrincipalAccount` are condition keys; policy variables such as
  `${aws:username}` take the request's value, and a variable whose key the request lacks (aws:username of a role
  session) matches nothing; setting a source identity needs `sts:SetSourceIdentity` in the trust policy too, and a
  session that has a source identity cannot pass another one when it chains to a role.
- aws:PrincipalArn of a role session is the role's ARN with its IAM path (the bucket policy names a role path).
- A copy (CopyObject, UploadPartCopy) needs s3:GetObject (s3:GetObjectVersion for a version) on its source as well
  as s3:PutObject on its target; moto checked the target only.
- moto's own check of a bucket policy on object requests (no caller, no condition keys, any unverifiable condition
  read as a Deny) is off (pipelines/local/moto_extensions.py): the evaluation above replaces it.
"""

from __future__ import annotations

import json
import re
import urllib.parse

_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str, case: bool = True) -> bool:
    regex = "^" + ".*".join(re.escape(part).replace(r"\?", ".") for part in pattern.split("*")) + "$"
    return re.match(regex, value, 0 if case else re.IGNORECASE) is not None


def _substituted(expected: str, context: dict) -> str | None:
    """A condition value with its policy variables replaced by the request's values; None when a variable's key is
    not in the request (the value then matches nothing)."""
    missing = [name for name in _VARIABLE.findall(expected) if name not in context]
    if missing:
        return None
    return _VARIABLE.sub(lambda found: str(context[found.group(1)]), expected)


def _condition_holds(operator: str, key: str, expected, context: dict) -> bool:
    qualifier, _, operator = operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    negated = operator in ("StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike")
    if key not in context:
        return if_exists or qualifier == "ForAllValues" or negated
    actual = [str(v) for v in as_list(context[key])]
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
    elif operator in ("StringNotLike", "ArnNotLike"):
        match = lambda value: not any(_like(e, value) for e in expected)  # noqa: E731
    else:
        return False  # an operator this emulation does not know never grants
    return all(map(match, actual)) if qualifier == "ForAllValues" else any(map(match, actual))


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
        if "Resource" in statement and not any(_like(r, resource) for r in as_list(statement["Resource"])):
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


def identity_allows(documents: list[dict], action: str, resource: str, context: dict) -> bool:
    verdicts = [evaluate(document, action, resource, context) for document in documents]
    return "deny" not in verdicts and "allow" in verdicts


def caller_of(principal_arn: str) -> dict:
    """aws:PrincipalArn is the role's ARN, with its IAM path, for a role session (what resource policies name)."""
    account = principal_arn.split(":")[4]
    session = re.match(r"^arn:aws:sts::\d{12}:assumed-role/([^/]+)/", principal_arn)
    role = _role_arn(account, session.group(1)) if session else principal_arn
    return {"aws:PrincipalArn": role, "aws:PrincipalAccount": account, "session_arn": principal_arn}


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


def trusted(request, role_arn: str) -> bool:
    """Whether the role's trust policy lets the caller of an sts:AssumeRole request assume it, with the session name,
    source identity and external id it asks for."""
    role = request.backend.get_role_by_arn(role_arn)
    document = role.assume_role_policy_document
    document = json.loads(document) if isinstance(document, str) else document
    key, data = request._access_key, request._data
    caller = caller_of(key.arn)
    context = {**caller, "aws:SecureTransport": "true"}
    if hasattr(key, "_owner_user_name"):
        context["aws:username"] = key._owner_user_name
    inherited = _source_identities.get(key.access_key_id) if hasattr(key, "access_key_id") else None
    asked = _request_value(data, "SourceIdentity")
    if inherited and asked and asked != inherited:
        return False  # a session's source identity cannot be changed, not even by chaining
    for name, value in (("sts:RoleSessionName", _request_value(data, "RoleSessionName")),
                        ("sts:SourceIdentity", asked or inherited), ("sts:ExternalId", _request_value(data, "ExternalId"))):
        if value is not None:
            context[name] = value
    actions = ["sts:AssumeRole"] + (["sts:SetSourceIdentity"] if asked or inherited else [])
    return all(evaluate(document, action, role_arn, context, caller) == "allow" for action in actions)


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
    return evaluate(document, request._action, resource, {**caller, "aws:SecureTransport": "true"}, caller) == "deny"


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


_installed = False


def install() -> None:
    """Trust policies and same-account bucket-policy denials, evaluated as above, and source identities kept."""
    global _installed
    if _installed:
        return
    from moto.iam.access_control import IAMRequestBase, S3IAMRequest
    from moto.sts import responses as sts_responses

    original_check = IAMRequestBase.check_action_permitted

    def check_action_permitted(self, resource: str) -> None:
        original_check(self, resource)
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
        source = self._get_param("SourceIdentity") or _source_identities.get(caller_key)
        if source:
            _source_identities[result.result["Credentials"].access_key_id] = source
        return result

    IAMRequestBase.check_action_permitted = check_action_permitted
    IAMRequestBase._check_role_trust_relationship = lambda self, role_arn: trusted(self, role_arn)
    sts_responses.TokenResponse.assume_role = assume_role
    _installed = True

"""Enforced IAM in the local mode: every handler signs with its own synthesized role (moto 5.2.5).

moto checks identity policies once `enable_iam_authentication()` is in force, but only for callers it
knows: an IAM user's access key or credentials `sts.assume_role` returned. So, before enforcement:
an admin user (allowed everything) adopts the fixed keys the lifecycle driver and moto's Step Functions
interpreter sign with, and every role is assumed once (moto cannot evaluate a service principal in a
trust policy once enforcement is on; its session credentials never expire).

moto compares only S3, SQS, IAM and STS requests with a resource ARN; for every other service it checks
the action against "*", which no scoped statement matches. `install_resource_checks` fills in the ARN
of the resource a request names for the services the handlers use; a request whose resource it cannot
tell is checked on the action alone. docs/local-emulation-iam.md lists what is checked and what is not.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import boto3

from lambdas.shared.sessions import new_session
from pipelines.local import policy_evaluation

ADMIN_USER = "local-admin"
ALLOW_EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
INTERPRETER_KEYS = ("ak", "sk")  # what moto's Step Functions interpreter signs its own SDK calls with


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def environment(self) -> dict[str, str]:
        variables = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        return variables | ({"AWS_SESSION_TOKEN": self.session_token} if self.session_token else {})

    def session(self, region: str) -> boto3.Session:
        return new_session(aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key,
                           aws_session_token=self.session_token, region_name=region)

    def client(self, service: str, region: str, **arguments):
        return boto3.client(service, region_name=region, aws_access_key_id=self.access_key_id,
                            aws_secret_access_key=self.secret_access_key, aws_session_token=self.session_token,
                            **arguments)


class RoleCredentials(dict):
    """Role ARN -> that role's session credentials, assumed before enforcement starts."""

    def of(self, role_arn: str) -> Credentials:
        if role_arn not in self:
            raise KeyError(f"no local session for {role_arn}: the role was not provisioned")
        return self[role_arn]


def create_admin(account: str, region: str) -> Credentials:
    """An IAM user allowed everything, signing with the process's keys (mock_aws sets FOOBARKEY) and the
    interpreter's: moto generates random keys, so the user adopts these."""
    from moto.iam.models import iam_backends

    ambient = (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    keys = [ambient] + ([INTERPRETER_KEYS] if ambient != INTERPRETER_KEYS else [])
    iam = boto3.client("iam", region_name=region)
    iam.create_user(UserName=ADMIN_USER)
    iam.put_user_policy(UserName=ADMIN_USER, PolicyName="everything", PolicyDocument=json.dumps(ALLOW_EVERYTHING))
    backend = iam_backends[account]["aws"]
    for access_key_id, secret in keys:
        key = backend.create_access_key(ADMIN_USER)
        key.access_key_id, key.secret_access_key = access_key_id, secret
    return Credentials(*ambient)


def assume(role_arn: str, region: str, session_name: str = "local") -> Credentials:
    session = boto3.client("sts", region_name=region).assume_role(RoleArn=role_arn, RoleSessionName=session_name)
    granted = session["Credentials"]
    return Credentials(granted["AccessKeyId"], granted["SecretAccessKey"], granted["SessionToken"])


def require_trust(role_arn: str, service: str, iam_client) -> None:
    """The check moto skips: the role's trust policy lets `service` assume it."""
    role = iam_client.get_role(RoleName=role_arn.rsplit("/", 1)[1])["Role"]
    document = role["AssumeRolePolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    for statement in _as_list(document["Statement"]):
        services = _as_list(statement.get("Principal", {}).get("Service", []))
        if statement["Effect"] == "Allow" and "sts:AssumeRole" in _as_list(statement["Action"]) and service in services:
            return
    raise PermissionError(f"{role_arn} does not trust {service} to assume it")


def person(role_arn: str, user_name: str, region: str, model: str | None = None) -> Credentials:
    """A person's session on one of the platform's person roles (the data-scientist or approver role): an IAM user
    named `user_name` (their email) assumes the role with their user name as the session name and the source
    identity, the only call the role's trust policy allows (policy_evaluation checks it once IAM is enforced).
    model: the user's own IAM tag mlops:model (what platform engineers set), which the session is then tagged with."""
    from pipelines import naming

    iam = boto3.client("iam", region_name=region)
    try:
        iam.create_user(UserName=user_name)
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    may_assume = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"], "Resource": role_arn}]}
    iam.put_user_policy(UserName=user_name, PolicyName=f"assume-{role_arn.rsplit('/', 1)[1]}"[:128],
                        PolicyDocument=json.dumps(may_assume))
    tags = []
    if model:
        iam.tag_user(UserName=user_name, Tags=[{"Key": naming.MODEL_TAG, "Value": model}])
        tags = [{"Key": naming.MODEL_TAG, "Value": model}]
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    user = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    granted = user.client("sts", region).assume_role(RoleArn=role_arn, RoleSessionName=user_name,
                                                     SourceIdentity=user_name, **({"Tags": tags} if tags else {}))
    granted = granted["Credentials"]
    if tags:  # what STS keeps with the session even when it was taken before IAM is enforced here
        from pipelines.local.policy_evaluation import _session_tags

        _session_tags[granted["AccessKeyId"]] = {tag["Key"]: tag["Value"] for tag in tags}
    return Credentials(granted["AccessKeyId"], granted["SecretAccessKey"], granted["SessionToken"])


def sign_in(role_arn: str, session_name: str, account: str, tags: dict[str, str] | None = None) -> Credentials:
    """A session of `role_arn` named `session_name`, issued the way an identity provider (IAM Identity Center)
    issues it: not an sts:AssumeRole call by some local principal, so no trust policy is evaluated. tags: its
    session tags (Identity Center's attributes for access control)."""
    from moto.sts.models import sts_backends

    from pipelines.local.policy_evaluation import _session_tags

    session = sts_backends[account]["aws"].assume_role(region_name="us-east-1", role_session_name=session_name,
                                                       role_arn=role_arn, policy="", duration=3600, external_id="")
    if tags:
        _session_tags[session.access_key_id] = dict(tags)
    return Credentials(session.access_key_id, session.secret_access_key, session.session_token)


class Unauthorized(PermissionError):
    """A Function URL request Lambda would answer with 403 (unsigned, bad signature, unknown key, no grant)."""


_SIGNATURE_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256")


def verify_function_url_request(method: str, url: str, headers: dict[str, str], body: bytes, function_arn: str,
                                account: str) -> dict:
    """What Lambda does before an AWS_IAM Function URL runs the function: checks the SigV4 signature against
    the caller's credentials in moto (an IAM user's key or an assumed-role session), then that the caller's
    identity policies allow lambda:InvokeFunctionUrl and lambda:InvokeFunction on the function (since October 2025
    Lambda requires both for new function URLs: Lambda developer guide, "Control access to Lambda function URLs";
    the InvokeFunction statement's lambda:InvokedViaFunctionUrl condition is not evaluated here, as no condition
    is). Returns requestContext.authorizer."""
    from moto.iam.access_control import IAMRequest

    headers = {_canonical_header(name): value for name, value in headers.items()}
    authorization = headers.get("Authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256 Credential=") or "X-Amz-Date" not in headers:
        raise Unauthorized("the request is not signed with SigV4")
    if authorization.partition("Credential=")[2].split(",")[0].split("/")[3:4] != ["lambda"]:
        raise Unauthorized("the request is not signed for the lambda service")
    try:
        request = IAMRequest(account_id=account, method=method, path=url, data={}, body=body, headers=headers,
                             action="InvokeFunctionUrl")
        request.check_signature()
        request.check_action_permitted(function_arn)
        request._action = "lambda:InvokeFunction"
        request.check_action_permitted(function_arn)
    except Exception as refused:  # moto's InvalidClientTokenId / SignatureDoesNotMatch / AccessDenied
        raise Unauthorized(getattr(refused, "message", None) or str(refused)) from None
    return {"iam": _authorizer_iam(request._access_key, account)}


def _authorizer_iam(key, account: str) -> dict:
    credentials = key.create_credentials()
    if hasattr(key, "_session_name"):
        role_id = key.backend.get_role(key._owner_role_name).id
        caller, user = f"{role_id}:{key._session_name}", role_id
    else:
        caller = user = key.backend.get_user(key._owner_user_name).id
    return {"accessKey": credentials.access_key, "accountId": account, "callerId": caller, "userArn": key.arn,
            "userId": user, "cognitoIdentity": None, "principalOrgId": None}


def _canonical_header(name: str) -> str:
    """moto reads signature headers by their exact spelling; HTTP clients may send any case."""
    return next((known for known in _SIGNATURE_HEADERS if known.lower() == name.lower()), name)


@contextmanager
def enforced() -> Iterator[None]:
    """Identity policies are checked for every request from here on (moto's initial no-auth count 0)."""
    from moto.core import enable_iam_authentication

    install_resource_checks()
    with enable_iam_authentication():
        yield


def without_action(document: dict, action: str) -> dict:
    """A copy of a policy document with one action taken out of every statement that allows it."""
    trimmed = copy.deepcopy(document)
    statements = []
    for statement in _as_list(trimmed["Statement"]):
        actions = [a for a in _as_list(statement.get("Action", [])) if a != action]
        if actions:
            statements.append({**statement, "Action": actions})
        elif "Action" not in statement:
            statements.append(statement)
    trimmed["Statement"] = statements
    return trimmed


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------------------------- moto

_installed = False


def install_resource_checks() -> None:
    """Requests name their resource ARN; actions match case-insensitively; S3 denials name the action."""
    global _installed
    if _installed:
        return
    from moto.core.responses import BaseResponse
    from moto.iam.access_control import IAMPolicyStatement, S3IAMRequest
    from moto.s3.exceptions import S3ClientError

    BaseResponse._determine_resource = _request_resource
    original_match = IAMPolicyStatement._check_element_matches

    def check_element_matches(self, element: str, value: str) -> bool:
        if element == "Resource" and value == STAR_ONLY:  # AWS authorizes these only against "*"
            return "*" in _as_list(self._statement.get("Resource", []))
        if element == "Resource" and value == "*":
            return True  # moto could not tell the resource: the action decides
        if element in ("Action", "NotAction"):
            lowered = IAMPolicyStatement({element: [a.lower() for a in _as_list(self._statement[element])]})
            return original_match(lowered, element, value.lower())
        return original_match(self, element, value)

    def s3_access_denied(self) -> None:
        raise S3ClientError("AccessDenied", f"User: {self._access_key.arn} is not authorized to perform: {self._action}")

    IAMPolicyStatement._check_element_matches = check_element_matches
    S3IAMRequest._raise_access_denied = s3_access_denied
    policy_evaluation.install()  # trust policies, bucket-policy denials, source identities
    _installed = True


def _request_resource(response) -> str:
    """The ARN of the resource a request acts on, or "*" where it names none this code knows."""
    service = response.headers.get("Authorization", "").partition("Credential=")[2].split("/")[3:4]
    resolver = _RESOURCES.get(service[0] if service else "")
    try:
        return (resolver(response, f"{response.region}:{response.current_account}") if resolver else None) or "*"
    except Exception:  # a malformed request fails in the service itself, as in AWS
        return "*"


def _param(response, name: str):
    return response._get_param(name)


def _dynamodb(response, scope: str) -> str | None:
    table = _param(response, "TableName")
    return f"arn:aws:dynamodb:{scope}:table/{table}" if table else None


def _sns(response, scope: str) -> str | None:
    return _param(response, "TopicArn")


def _kms(response, scope: str) -> str | None:
    key = _param(response, "KeyId")
    if key is None and _param(response, "CiphertextBlob"):
        key = _key_of_ciphertext(_param(response, "CiphertextBlob"))
    if key and (key.startswith("alias/") or ":alias/" in key):  # KMS authorizes a request by alias on its key
        from moto.kms.models import kms_backends

        region, account = scope.split(":")
        key = kms_backends[account][region].get_key_id_from_alias(key[key.index("alias/"):])
    if not key:
        return None
    return key if key.startswith("arn:") else f"arn:aws:kms:{scope}:key/{key}"


def _key_of_ciphertext(blob) -> str:
    from moto.kms.utils import _deserialize_ciphertext_blob

    raw = base64.b64decode(blob) if isinstance(blob, str) else blob
    return _deserialize_ciphertext_blob(raw).key_id


def _secretsmanager(response, scope: str) -> str | None:
    from moto.secretsmanager.models import secretsmanager_backends

    secret = _param(response, "SecretId")
    if not secret or secret.startswith("arn:"):
        return secret
    return secretsmanager_backends[response.current_account][response.region].describe_secret(secret)["ARN"]


def _ssm(response, scope: str) -> str | None:
    """A parameter's ARN drops the leading '/' of a hierarchical name (SSM user guide, "Working with parameter
    hierarchies"; the permissions reference's parameter resource: parameter/${ParameterNameWithoutLeadingSlash})."""
    name = _param(response, "Name")
    return f"arn:aws:ssm:{scope}:parameter/{name.lstrip('/')}" if name and not name.startswith("arn:") else name


def _states(response, scope: str) -> str | None:
    return _param(response, "executionArn") or _param(response, "stateMachineArn")


# A rule AWS enforces and moto does not: SageMaker List* calls (ListTags excepted) have no resource-level
# permissions (SageMaker API permissions reference), so only a statement on "*" allows them.
STAR_ONLY = "<authorized only against *>"


# The first name a request carries is the resource it is authorized on: CreateInferenceComponent names its component
# before its endpoint (the endpoint is authorized too: additional_sagemaker_resources).
_SAGEMAKER_NAMES = {"InferenceComponentName": "inference-component", "EndpointName": "endpoint", "EndpointConfigName": "endpoint-config", "ModelName": "model",
                    "TrainingJobName": "training-job", "ModelPackageGroupName": "model-package-group"}


def _sagemaker(response, scope: str) -> str | None:
    from stacks.nag_rules import STAR_ONLY_ACTIONS

    if STAR_ONLY_ACTIONS.match(f"sagemaker:{response.headers.get('X-Amz-Target', '').rpartition('.')[2]}"):
        return STAR_ONLY
    invoked = re.search(r"/endpoints/([^/]+)/invocations", response.path or "")  # SageMaker Runtime's InvokeEndpoint
    if invoked:
        return f"arn:aws:sagemaker:{scope}:endpoint/{invoked.group(1).lower()}"
    for parameter in ("ModelPackageArn", "ResourceArn", "ModelPackageName"):
        value = _param(response, parameter)
        if value and str(value).startswith("arn:"):
            return value
    for parameter, kind in _SAGEMAKER_NAMES.items():
        value = _param(response, parameter)
        if value:
            return f"arn:aws:sagemaker:{scope}:{kind}/{value.lower()}"
    return None


def sagemaker_arn(kind: str, name: str, region: str, account: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:{kind}/{name.lower()}"


def additional_sagemaker_resources(action: str, headers, body: bytes | None, region: str, account: str) -> list[str]:
    """Resources SageMaker authorizes besides the one a request is checked on first (Service Authorization Reference,
    Amazon SageMaker: CreateInferenceComponent's resource types are endpoint* and inference-component*; InvokeEndpoint's
    are endpoint* and inference-component, the component when the request names one in its
    X-Amzn-SageMaker-Inference-Component header). A request is allowed only if every one of them is."""
    if action.lower() == "sagemaker:createinferencecomponent":
        try:
            endpoint = json.loads(body or b"{}").get("EndpointName")
        except ValueError:
            return []
        return [sagemaker_arn("endpoint", endpoint, region, account)] if isinstance(endpoint, str) else []
    if action.lower() == "sagemaker:invokeendpoint":
        component = next((v for k, v in dict(headers or {}).items() if k.lower() == "x-amzn-sagemaker-inference-component"),
                         None)
        return [sagemaker_arn("inference-component", component, region, account)] if component else []
    return []


def _lambda(response, scope: str) -> str | None:
    """The function a request names in its path (/2015-03-31/functions/<name, ARN or partial ARN>/...), as the
    function ARN Lambda authorizes (Lambda developer guide, "Resources and conditions for Lambda actions"); moto
    authorizes Lambda requests against "*", so a grant on one function would open every function."""
    from urllib.parse import unquote

    found = re.search(r"/functions/([^/]+)", unquote(response.path or ""))
    if not found:
        return None
    name = found.group(1)
    if name.startswith("arn:"):
        return name
    qualifier = (response.querystring.get("Qualifier") or [None])[0]
    account_scope = f"{scope.split(':')[0]}:{name.split(':function:')[0]}" if ":function:" in name else scope
    name = name.split(":function:")[-1]
    return f"arn:aws:lambda:{account_scope}:function:{name}" + (f":{qualifier}" if qualifier else "")


def _logs(response, scope: str) -> str | None:
    """CloudWatch Logs authorizes a stream's events on the stream (GetLogEvents, PutLogEvents: resource type
    log-stream, log-group:<group>:log-stream:<stream>) and the rest on its group, in the `log-group:<group>:*` form
    the platform's grants name (Service Authorization Reference, Amazon CloudWatch Logs)."""
    group, stream = _param(response, "logGroupName"), _param(response, "logStreamName")
    if not group:
        return None
    action = response.headers.get("X-Amz-Target", "").rpartition(".")[2]
    if stream and action in ("GetLogEvents", "PutLogEvents"):
        return f"arn:aws:logs:{scope}:log-group:{group}:log-stream:{stream}"
    return f"arn:aws:logs:{scope}:log-group:{group}:*"


_RESOURCES = {"dynamodb": _dynamodb, "sns": _sns, "ssm": _ssm, "kms": _kms, "secretsmanager": _secretsmanager,
              "states": _states, "sagemaker": _sagemaker, "lambda": _lambda, "logs": _logs}

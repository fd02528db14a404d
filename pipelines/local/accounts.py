"""Several AWS accounts in one emulation: a promotion from a training account into the next stage's account,
under enforced IAM, with every cross-account grant checked (docs/promotion.md, "Tested in the emulation").

moto keeps one state per account and maps credentials to accounts by their access key (sts:AssumeRole of a role
ARN in another account returns keys of that account). Each environment is synthesized by the CDK app and
provisioned into its own account (pipelines/local/provision.py), with its own admin, Lambda dispatch, function URLs
and hosting. What moto does not do across accounts is done here:

- Resource policies. Bucket, key, model package group and event bus policies come from the synthesized templates.
  A request from one account to another account's resource needs the caller's identity policy (moto checks it) and
  the resource's policy (checked here, principal and conditions evaluated), as in AWS. An S3 read of another
  account's SSE-KMS object needs kms:Decrypt on the bucket's key on both sides too (kms:ViaService S3).
- Routing. A SageMaker request naming another account's package by ARN reaches that account's registry.
- EventBridge. Rules come from the templates and are matched with moto's pattern matcher; the targets (a function,
  another account's bus through the rule's role, a state machine through the rule's role) are delivered here, the
  role's identity policy and the target bus's policy checked. PutEvents onto another account's bus by ARN (the
  promotion offer) is checked the same way, with the entry's events:source and the caller's session tags. AWS
  service events (a run's status change) are emitted by the driver when it sees them happen.
- Step Functions. moto's interpreter signs every call with one fixed key; each execution signs with its own
  account's admin here (as the existing local mode, the interpreter acts with an admin's rights).

Not evaluated: Lambda resource policies (rule -> function), same-account key policies, SCPs, permission boundaries.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3

from pipelines import naming
from pipelines.local import iam
from pipelines.local.glue import LambdaDispatch
from pipelines.local.policy_evaluation import as_list, caller_of, evaluate, identity_allows, principal_context
from pipelines.local.provision import Provisioned, Provisioner

ADMIN_ROLE = "local-admin"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


class CrossAccountDenied(PermissionError):
    pass


# ---------------------------------------------------------------------------------------------- the store

@dataclass
class ResourcePolicies:
    """Resource ARN -> its policy as the stacks set it; bucket -> its default key; key ARN -> aliases."""

    documents: dict[str, dict] = field(default_factory=dict)
    bucket_keys: dict[str, str] = field(default_factory=dict)
    key_aliases: dict[str, list[str]] = field(default_factory=dict)

    def resource_of(self, resource: str) -> str:
        """The ARN whose policy governs `resource` (an object's bucket, a package's group)."""
        if resource.startswith("arn:aws:s3:::"):
            return "arn:aws:s3:::" + resource[len("arn:aws:s3:::"):].split("/", 1)[0]
        package = re.match(r"^(arn:aws:sagemaker:[^:]+:\d{12}:)model-package/([^/]+)/\d+$", resource)
        return f"{package.group(1)}model-package-group/{package.group(2)}" if package else resource

    @contextlib.contextmanager
    def without_statement(self, resource: str, sid: str) -> Iterator[dict]:
        """The policy of `resource` with the statement `sid` taken out, for the duration (a test's missing grant)."""
        document = self.documents[resource]
        kept = [s for s in as_list(document["Statement"]) if s.get("Sid") != sid]
        if len(kept) == len(as_list(document["Statement"])):
            raise KeyError(f"{resource} has no statement {sid}")
        self.documents[resource] = {**document, "Statement": kept}
        try:
            yield self.documents[resource]
        finally:
            self.documents[resource] = document


def owner_of(resource: str) -> str | None:
    from moto.s3.models import s3_backends

    if resource.startswith("arn:aws:s3:::"):
        bucket = resource[len("arn:aws:s3:::"):].split("/", 1)[0]
        return (s3_backends.bucket_accounts.get(bucket) or (None, None))[1]
    parts = resource.split(":")
    return parts[4] if len(parts) > 5 and re.fullmatch(r"\d{12}", parts[4]) else None


# ---------------------------------------------------------------------------------------------- event routing

@dataclass
class Rule:
    account: str
    bus: str
    name: str
    pattern: Any  # moto's EventPattern
    targets: list[dict]


@dataclass
class Delivered:
    rule: str
    target: str
    outcome: str  # delivered, or why not


class EventRouter:
    """EventBridge across the emulated accounts: the templates' rules, delivered with their roles' grants checked."""

    def __init__(self, world: Accounts) -> None:
        self.world, self.rules, self.deliveries = world, [], []

    def add_rules(self, account: str, resolved_rules: list[tuple[str, dict]]) -> None:
        from moto.events.models import EventPattern

        for name, properties in resolved_rules:
            if "EventPattern" not in properties:
                continue  # schedules: the local mode runs them on demand
            bus = properties.get("EventBusName") or "default"
            self.rules.append(Rule(account, bus.rsplit("/", 1)[-1], name, EventPattern.load(json.dumps(properties["EventPattern"])),
                                   properties.get("Targets", [])))

    def emit(self, account: str, event: dict, bus: str = "default") -> None:
        for rule in [r for r in self.rules if r.account == account and r.bus == bus]:
            if rule.pattern.matches_event(event):
                for target in rule.targets:
                    # EventBridge delivers asynchronously; here the sender's call is still on the stack, so the target
                    # runs in a fresh context (not the sender's bound session or model settings, lambdas/shared).
                    outcome = contextvars.Context().run(self._deliver, rule, target, event)
                    self.deliveries.append(Delivered(rule.name, target["Arn"], outcome))

    def failures(self) -> list[Delivered]:
        return [d for d in self.deliveries if d.outcome != "delivered"]

    def _deliver(self, rule: Rule, target: dict, event: dict) -> str:
        arn = target["Arn"]
        try:
            if ":event-bus/" in arn:
                self._to_bus(rule, target, event)
            elif ":stateMachine:" in arn:
                self.world.credentials(target["RoleArn"]).client("stepfunctions", self.world.region).start_execution(
                    stateMachineArn=arn, name=str(uuid.uuid4()),  # EventBridge names executions so (moto: "None")
                    input=json.dumps(target_input(target, event)))
            elif ":function:" in arn:
                self.world.accounts_by_id[rule.account].dispatch.invoke(arn.rsplit(":", 1)[1], target_input(target, event))
            else:
                return f"no local delivery for {arn}"
        except Exception as error:  # EventBridge retries, then the rule's dead-letter queue
            return f"{type(error).__name__}: {error}"
        return "delivered"

    def _to_bus(self, rule: Rule, target: dict, event: dict) -> None:
        """PutEvents by the rule's role onto another account's bus: the role's policy and the bus's policy."""
        role, bus = target["RoleArn"], target["Arn"]
        caller = caller_of(role)
        context = {**caller, "aws:SecureTransport": "true"}
        if not identity_allows(self.world.role_policies(role), "events:PutEvents", bus, context):
            raise CrossAccountDenied(f"{role} is not authorized to perform: events:PutEvents on {bus}")
        owner = bus.split(":")[4]
        if owner != rule.account and evaluate(self.world.policies.documents.get(bus, {}), "events:PutEvents", bus,
                                              context, caller) != "allow":
            raise CrossAccountDenied(f"the policy of {bus} does not allow {role} events:PutEvents")
        self.emit(owner, event, bus=bus.rsplit("/", 1)[1])


def target_input(target: dict, event: dict) -> dict:
    """What EventBridge hands the target: Input, or InputTransformer (a string value whose placeholder is not
    inside quotes is inserted as a JSON string), or the event."""
    if "Input" in target:
        return json.loads(target["Input"])
    transformer = target.get("InputTransformer")
    if not transformer:
        return event
    from jsonpath_ng.ext import parse

    values = {name: next((m.value for m in parse(path).find(event)), None)
              for name, path in transformer.get("InputPathsMap", {}).items()}
    return json.loads(_fill(transformer["InputTemplate"], values))


def _fill(template: str, values: dict) -> str:
    """Placeholders inside a JSON string get the raw text, outside one the JSON value (a string quoted)."""
    out, in_string, i = [], False, 0
    while i < len(template):
        placeholder = re.match(r"<([A-Za-z0-9_.-]+)>", template[i:])
        if placeholder and placeholder.group(1) in values:
            value = values[placeholder.group(1)]
            text = value if isinstance(value, str) else json.dumps(value)
            out.append(json.dumps(text)[1:-1] if in_string else json.dumps(value))
            i += placeholder.end()
            continue
        if template[i] == '"' and (i == 0 or template[i - 1] != "\\"):
            in_string = not in_string
        out.append(template[i])
        i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------- accounts

@dataclass
class EmulatedAccount:
    env: str
    id: str
    region: str
    templates: dict[str, dict]
    admin: iam.Credentials | None = None
    dispatch: LambdaDispatch | None = None
    provisioner: Provisioner | None = None
    servers: list = field(default_factory=list)
    hosting_url: str = ""
    function_urls: dict[str, str] = field(default_factory=dict)

    @property
    def provisioned(self) -> Provisioned:
        return self.provisioner.result

    def client(self, service: str, **arguments):
        return self.admin.client(service, self.region, **arguments)

    def session(self) -> boto3.Session:
        return self.admin.session(self.region)


class Accounts:
    """The emulated accounts of one promotion, inside mock_aws (CrossAccountPromotion drives them)."""

    def __init__(self, environments: dict[str, str], region: str, workdir: Path) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID

        first = next(iter(environments.values()))
        if first != DEFAULT_ACCOUNT_ID:
            raise ValueError(f"the training environment plays moto's default account {DEFAULT_ACCOUNT_ID}, "
                             f"not {first}: the local training and hosting glue sign there")
        self.region, self.workdir = region, Path(workdir)
        self.accounts = {env: EmulatedAccount(env, account, region, {}) for env, account in environments.items()}
        self.accounts_by_id = {a.id: a for a in self.accounts.values()}
        self.policies = ResourcePolicies()
        self.router = EventRouter(self)
        self.enforcement = None

    # ------------------------------------------------------------ set-up
    def provision(self, templates: dict[str, dict[str, dict]], functions_with_urls: Callable) -> None:
        """templates: env -> stack name -> template (registry first). functions_with_urls(account) starts the
        account's function URL servers and returns logical id -> URL."""
        from pipelines.local import glue, moto_extensions
        from pipelines.local.serving import Hosting, LocalHostingServer

        moto_extensions.install()
        glue.install_service_names()
        install(self)
        known: dict[str, dict] = {}
        for account in self.accounts.values():
            account.templates = templates[account.env]
            if account.id != next(iter(self.accounts.values())).id:
                account.admin = _account_admin(account.id, self.region)
            hosting = LocalHostingServer(Hosting(self.workdir / "hosting" / account.env)).__enter__()
            if account.admin:
                for service, attribute in (("sagemaker", "sagemaker"), ("s3", "s3"), ("cloudwatch", "cloudwatch"),
                                           ("application-autoscaling", "autoscaling")):
                    setattr(hosting.hosting, attribute, account.client(service))
            account.servers.append(hosting)
            account.hosting_url = hosting.url
            account.dispatch = LambdaDispatch({"SAGEMAKER_RUNTIME_URL": hosting.url})
            account.function_urls = functions_with_urls(account)
            provisioner = Provisioner(account.id, self.region, account.dispatch, account.function_urls)
            if account.admin:
                provisioner.client = lambda service, a=account: a.client(service)
            provisioner.result.values.update(known)  # other accounts' resources: the ARNs grants may name
            for stack, template in account.templates.items():
                provisioner.provision(stack, template)
            account.provisioner = provisioner
            self._resource_side(account)
            known.update({f"{account.env}/{stack}": values for stack, values in provisioner.result.values.items()
                          if "/" not in stack})

    def _resource_side(self, account: EmulatedAccount) -> None:
        """Buses, the resource policies and the rules of one account's templates, resolved."""
        provisioner = account.provisioner
        for stack, template in account.templates.items():
            resources = template["Resources"]
            for logical, resource in resources.items():
                if resource["Type"] == "AWS::Events::EventBus":
                    name = resource["Properties"]["Name"]
                    arn = account.client("events").create_event_bus(Name=name)["EventBusArn"]
                    provisioner.result.values[stack][logical] = {"Ref": name, "Arn": arn, "Name": name}
            resolve = lambda value, s=stack: provisioner._resolve(s, value)  # noqa: E731
            rules = []
            for logical, resource in resources.items():
                kind, properties = resource["Type"], resource.get("Properties", {})
                if kind == "AWS::S3::BucketPolicy":
                    self.policies.documents[f"arn:aws:s3:::{resolve(properties['Bucket'])}"] = resolve(properties["PolicyDocument"])
                elif kind == "AWS::S3::Bucket" and properties.get("BucketEncryption"):
                    rule = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
                    if rule.get("KMSMasterKeyID"):
                        self.policies.bucket_keys[resolve(properties["BucketName"]) if "BucketName" in properties
                                                  else provisioner.result.values[stack][logical]["Ref"]] = resolve(rule["KMSMasterKeyID"])
                elif kind == "AWS::KMS::Key":
                    self.policies.documents[provisioner.result.values[stack][logical]["Arn"]] = resolve(properties["KeyPolicy"])
                elif kind == "AWS::KMS::Alias":
                    key = resolve(properties["TargetKeyId"])
                    key_arn = key if key.startswith("arn:") else f"arn:aws:kms:{self.region}:{account.id}:key/{key}"
                    self.policies.key_aliases.setdefault(key_arn, []).append(properties["AliasName"])
                elif kind == "AWS::SageMaker::ModelPackageGroup" and properties.get("ModelPackageGroupPolicy"):
                    arn = provisioner.result.values[stack][logical]["ModelPackageGroupArn"]
                    self.policies.documents[arn] = resolve(properties["ModelPackageGroupPolicy"])
                elif kind == "AWS::Events::EventBusPolicy":
                    bus = resolve(properties["EventBusName"])
                    arn = f"arn:aws:events:{self.region}:{account.id}:event-bus/{bus}"
                    document = self.policies.documents.setdefault(arn, {"Version": "2012-10-17", "Statement": []})
                    document["Statement"].append(resolve(properties["Statement"]))
                elif kind == "AWS::Events::Rule":
                    rules.append((logical, resolve(properties)))
            self.router.add_rules(account.id, rules)

    def enforce(self) -> None:
        """The first account's admin adopts the process's keys; every role's session is taken; then IAM is enforced."""
        first = next(iter(self.accounts.values()))
        first.admin = iam.create_admin(first.id, self.region)
        for account in self.accounts.values():
            account.provisioner.assume_roles()
            for function in account.provisioned.functions.values():
                function.credentials = account.provisioned.role_credentials.of(function.role_arn)
        self.enforcement = iam.enforced()
        self.enforcement.__enter__()

    def close(self) -> None:
        if self.enforcement is not None:
            self.enforcement.__exit__(None, None, None)
        uninstall()
        for account in self.accounts.values():
            for server in account.servers:
                server.close()

    # ------------------------------------------------------------ lookups
    def credentials(self, role_arn: str) -> iam.Credentials:
        for account in self.accounts.values():
            if role_arn in account.provisioned.role_credentials:
                return account.provisioned.role_credentials[role_arn]
        raise KeyError(f"no session for {role_arn}")

    def role_policies(self, role_arn: str) -> list[dict]:
        """A role's identity policies as moto holds them (inline and attached)."""
        from moto.iam.access_control import IAMPolicy
        from moto.iam.models import iam_backends

        account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[1]
        backend = iam_backends[account]["aws"]
        documents = [backend.get_role_policy(name, policy)[1] for policy in backend.list_role_policies(name)]
        attached, _ = backend.list_attached_role_policies(name)
        return [IAMPolicy(document)._policy_json for document in [*documents, *attached]]

    @contextlib.contextmanager
    def role_without(self, role_arn: str, drop: Callable[[dict], bool]) -> Iterator[list[dict]]:
        """The role's inline policies without the statements `drop` picks, for the duration (a missing grant)."""
        account = self.accounts_by_id[role_arn.split(":")[4]]
        client, name = account.client("iam"), role_arn.rsplit("/", 1)[1]
        saved = {policy: client.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
                 for policy in client.list_role_policies(RoleName=name)["PolicyNames"]}
        dropped = []
        for policy, document in saved.items():
            kept = [s for s in as_list(document["Statement"]) if not drop(s)]
            dropped += [s for s in as_list(document["Statement"]) if drop(s)]
            if kept:
                client.put_role_policy(RoleName=name, PolicyName=policy, PolicyDocument=json.dumps({**document, "Statement": kept}))
            else:  # IAM refuses a policy without statements
                client.delete_role_policy(RoleName=name, PolicyName=policy)
        if not dropped:
            raise KeyError(f"no statement of {role_arn} matches")
        try:
            yield dropped
        finally:
            for policy, document in saved.items():
                client.put_role_policy(RoleName=name, PolicyName=policy, PolicyDocument=json.dumps(document))

    def function(self, env: str, logical_prefix: str):
        return self.accounts[env].provisioned.function_named(logical_prefix)

    # ------------------------------------------------------------ service events
    def execution_status_changed(self, env: str, execution_arn: str) -> None:
        """What Step Functions sends to the account's default bus when a standard workflow's execution ends."""
        account = self.accounts[env]
        described = account.client("stepfunctions").describe_execution(executionArn=execution_arn)
        detail = {"executionArn": execution_arn, "stateMachineArn": described["stateMachineArn"], "name": described["name"],
                  "status": described["status"], "startDate": int(described["startDate"].timestamp() * 1000),
                  "stopDate": int(described.get("stopDate", datetime.now(timezone.utc)).timestamp() * 1000)}
        self.router.emit(account.id, {"version": "0", "id": str(uuid.uuid4()), "source": "aws.states",
                                      "detail-type": "Step Functions Execution Status Change", "account": account.id,
                                      "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                      "region": self.region, "resources": [execution_arn], "detail": detail})

    def wait_for(self, env: str, execution_arn: str, until: Callable[[dict], bool], timeout_s: float = 120) -> dict:
        sfn, deadline = self.accounts[env].client("stepfunctions"), time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            described = sfn.describe_execution(executionArn=execution_arn)
            if until(described):
                return described
            time.sleep(0.2)
        raise TimeoutError(f"{execution_arn} did not get there within {timeout_s:.0f} s")


def _account_admin(account: str, region: str) -> iam.Credentials:
    """An allow-everything role in `account` and a session of it, made before IAM is enforced (sts:AssumeRole of a
    role ARN in another account gives keys of that account; the role must exist once policies are checked)."""
    bootstrap = iam.assume(f"arn:aws:iam::{account}:role/{ADMIN_ROLE}", region, session_name="bootstrap")
    client = bootstrap.client("iam", region)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"AWS": f"arn:aws:iam::{account}:root"}}]}
    client.create_role(RoleName=ADMIN_ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    client.put_role_policy(RoleName=ADMIN_ROLE, PolicyName="everything", PolicyDocument=json.dumps(iam.ALLOW_EVERYTHING))
    return iam.assume(f"arn:aws:iam::{account}:role/{ADMIN_ROLE}", region, session_name="admin")


# ---------------------------------------------------------------------------------------------- moto patches

_world: Accounts | None = None
_installed = False
_execution_account = threading.local()


def install(world: Accounts) -> None:
    """Routes and checks cross-account requests for `world` (the patches are installed once per process)."""
    global _world, _installed
    _world = world
    if not _installed:
        _install_cross_account_checks()
        _install_sagemaker_routing()
        _install_interpreter_accounts()
        _install_event_capture()
        _installed = True
    _install_lambda_routing()  # again each time: the single-account local mode installs its own dispatch


def _install_cross_account_checks() -> None:
    from moto.iam.access_control import IAMPolicy, IAMRequestBase

    original = IAMRequestBase.check_action_permitted

    def check_action_permitted(self, resource: str) -> None:
        original(self, resource)  # the caller's identity policies (moto)
        if _world and self._action.lower() == "events:putevents":
            return _check_put_events(self)
        owner = owner_of(resource) if _world else None
        if owner is None or owner == self.account_id:
            return
        caller = principal_context(self._access_key)  # its session tags too (aws:PrincipalTag/...)
        context = {**caller, "aws:SecureTransport": "true"}
        governing = _world.policies.resource_of(resource)
        if evaluate(_world.policies.documents.get(governing, {}), self._action, resource, context, caller) != "allow":
            self._raise_access_denied()
        bucket = governing[len("arn:aws:s3:::"):] if governing.startswith("arn:aws:s3:::") else None
        key = _world.policies.bucket_keys.get(bucket) if bucket else None
        if key and self._action.lower() in ("s3:getobject", "s3:getobjectversion"):
            kms = {**context, "kms:ViaService": f"s3.{_world.region}.amazonaws.com", "kms:CallerAccount": caller["aws:PrincipalAccount"],
                   "kms:ResourceAliases": _world.policies.key_aliases.get(key, [])}
            identity = [IAMPolicy(p)._policy_json for p in self._access_key.collect_policies()]
            if not identity_allows(identity, "kms:Decrypt", key, kms) or \
                    evaluate(_world.policies.documents.get(key, {}), "kms:Decrypt", key, kms, caller) != "allow":
                self._action = "kms:Decrypt"
                self._raise_access_denied()

    IAMRequestBase.check_action_permitted = check_action_permitted


def _entries(request) -> list[dict]:
    try:
        return json.loads(request._body or b"{}").get("Entries") or []
    except (TypeError, ValueError):
        return []


def _foreign_bus(name: str | None, account: str) -> bool:
    return bool(name) and name.startswith("arn:") and name.split(":")[4] != account


def _check_put_events(request) -> None:
    """PutEvents onto another account's bus (by ARN): the caller's identity policy and the bus's policy, each entry with
    its events:source and events:detail-type (EventBridge user guide, "Permissions for event buses")."""
    from moto.iam.access_control import IAMPolicy

    caller = principal_context(request._access_key)
    identity = [IAMPolicy(p)._policy_json for p in request._access_key.collect_policies()]
    for entry in _entries(request):
        bus = entry.get("EventBusName")
        if not _foreign_bus(bus, request.account_id):
            continue
        context = {**caller, "aws:SecureTransport": "true", "events:source": entry.get("Source", ""),
                   "events:detail-type": entry.get("DetailType", "")}
        if not identity_allows(identity, "events:PutEvents", bus, context) or \
                evaluate(_world.policies.documents.get(bus, {}), "events:PutEvents", bus, context, caller) != "allow":
            request._raise_access_denied()


def _install_sagemaker_routing() -> None:
    from moto.sagemaker import responses
    from moto.sagemaker.models import sagemaker_backends

    original = responses.SageMakerResponse.sagemaker_backend

    def sagemaker_backend(self):
        for parameter in ("ModelPackageName", "ModelPackageArn", "ModelPackageGroupName"):
            value = self._get_param(parameter)
            if isinstance(value, str) and value.startswith("arn:") and value.split(":")[4] != self.current_account:
                return sagemaker_backends[value.split(":")[4]][self.region]
        return original.fget(self)

    responses.SageMakerResponse.sagemaker_backend = property(sagemaker_backend)


def _install_lambda_routing() -> None:
    """Function names repeat across accounts (the same logical ids): each account's invoke runs its own handler."""
    import traceback

    from moto.awslambda_simple import models

    original = models.LambdaSimpleBackend.invoke
    if getattr(original, "routes_accounts", False):
        return

    def invoke(backend, function_name, qualifier, body, headers, response_headers):
        account = _world.accounts_by_id.get(backend.account_id) if _world else None
        name = function_name.split(":function:")[-1].split(":")[0]
        if account is None or name not in account.dispatch.functions:
            return original(backend, function_name, qualifier, body, headers, response_headers)
        try:
            return json.dumps(account.dispatch.invoke(name, json.loads(body) if body else {}), default=str).encode()
        except Exception as error:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error),
                               "stackTrace": traceback.format_exc().splitlines()[-5:]}).encode()

    invoke.routes_accounts = True
    models.LambdaSimpleBackend.invoke = invoke


def _install_interpreter_accounts() -> None:
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.utils import boto_client

    original_eval = EvalComponent.eval

    def evaluate_in_account(self, env):
        """Every step evaluates its parts (parameters, resource) in the thread that then calls AWS: the executing
        account is known there, whichever thread moto's interpreter runs the step in."""
        _execution_account.id = env.aws_execution_details.account
        return original_eval(self, env)

    class AccountBoto3:
        """moto's interpreter calls boto3.client(aws_access_key_id="ak", ...): the executing account's admin instead."""

        @staticmethod
        def client(*args, **kwargs):
            account = _world.accounts_by_id.get(getattr(_execution_account, "id", "")) if _world else None
            if account is not None and account.admin is not None and account is not next(iter(_world.accounts.values())):
                kwargs.update(aws_access_key_id=account.admin.access_key_id,
                              aws_secret_access_key=account.admin.secret_access_key,
                              aws_session_token=account.admin.session_token)
            return boto3.client(*args, **kwargs)

    EvalComponent.eval = evaluate_in_account
    boto_client.boto3 = AccountBoto3()


def _install_event_capture() -> None:
    """Events put on a bus reach the router, which holds the templates' rules."""
    from moto.events.models import EventsBackend

    original = EventsBackend.put_events

    def put_events(self, events: list[dict]) -> list[dict]:
        """Entries for another account's bus (checked by _check_put_events) go to that account's bus, whose rules the
        router holds; moto knows no bus of another account."""
        foreign = [_foreign_bus(entry.get("EventBusName"), self.account_id) for entry in events]
        local = iter(original(self, [e for e, away in zip(events, foreign) if not away]) if not all(foreign) else [])
        result = [{"EventId": str(uuid.uuid4())} if away else next(local) for away in foreign]
        if _world is not None and self.account_id in _world.accounts_by_id:
            for entry, outcome, away in zip(events, result, foreign):
                if "EventId" not in outcome:
                    continue
                bus = (entry.get("EventBusName") or "default").rsplit("/", 1)[-1]
                owner = entry["EventBusName"].split(":")[4] if away else self.account_id
                _world.router.emit(owner, {
                    "version": "0", "id": outcome["EventId"], "source": entry["Source"],
                    "detail-type": entry["DetailType"], "account": self.account_id, "region": self.region_name,
                    "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "resources": entry.get("Resources", []),
                    "detail": json.loads(entry.get("Detail") or "{}")}, bus=bus)
        return result

    EventsBackend.put_events = put_events


def uninstall() -> None:
    global _world
    _world = None



# ---------------------------------------------------------------------------------------------- the driver

class CrossAccountPromotion:
    """One model trained in the first environment's account and promoted through the others, in the emulation.

    environments: env -> account id, in delivery order (the first trains: moto's default account). overrides:
    env -> spec overrides, as cdk.json's (e.g. a stage's approvers). Used as a context manager: the emulation lives
    inside it; `world` holds the accounts, `router` the deliveries."""

    def __init__(self, model: str, environments: dict[str, str], workdir: Path, *, region: str = "us-east-1",
                 overrides: dict[str, dict] | None = None, models_dir: Path | None = None, rows: int = 1000,
                 say: Callable[[str], None] = lambda line: None) -> None:
        from pipelines.model_folder import load_dataset_module
        from pipelines.spec import find_model_dir, load_spec, models_dir as configured_models_dir

        self.model, self.environments, self.region = model, dict(environments), region
        self.workdir, self.overrides, self.say = Path(workdir).resolve(), overrides or {}, say
        self.models_dir = Path(models_dir or configured_models_dir()).resolve()
        self.model_dir = find_model_dir(model, self.models_dir)
        self.spec = load_spec(self.model_dir)
        self.dataset = load_dataset_module(self.model_dir, self.spec)
        self.timings: dict[str, float] = {}
        self.seed_rows = rows
        self._stack = contextlib.ExitStack()

    @property
    def training(self) -> str:
        return next(iter(self.environments))

    def __enter__(self) -> CrossAccountPromotion:
        import logging
        import os

        from moto import mock_aws

        self.workdir.mkdir(parents=True, exist_ok=True)
        saved = dict(os.environ)
        self._stack.callback(lambda: (os.environ.clear(), os.environ.update(saved)))
        os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": self.region,
                           "AWS_REGION": self.region, "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
                           "POWERTOOLS_METRICS_DISABLED": "true", "MLOPS_LOCAL_DIR": str(self.workdir)})
        os.environ.pop("AWS_SESSION_TOKEN", None)
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        templates = self._timed("synthesize", self.synthesize)
        self._stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True},
                                                   "lambda": {"use_docker": False}}))
        self.world = Accounts(self.environments, self.region, self.workdir)
        self._stack.callback(self.world.close)
        self._timed("provision", lambda: self.world.provision(templates, self._function_urls))
        self._seed(self.seed_rows)
        self.people = self._people()
        self.world.enforce()
        from pipelines.local import glue

        training = self.world.accounts[self.training]
        glue.install_sagemaker_sync(self.model_dir, self.workdir / "training", self.say,
                                    training.provisioned.role_credentials.of, training.admin)
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _timed(self, name: str, action: Callable):
        started = time.perf_counter()
        try:
            return action()
        finally:
            self.timings[name] = round(time.perf_counter() - started, 2)

    # ------------------------------------------------------------ set-up
    def synthesize(self) -> dict[str, dict[str, dict]]:
        """Every environment's registry, control-plane and model stack, as the CDK app synthesizes them with these
        accounts and mlops:delivery (training: the first environment, promotion: the others, in order)."""
        from pipelines.local.lifecycle import use_project_node

        use_project_node()
        import aws_cdk as cdk

        from pipelines.spec import REPO_ROOT
        from stacks.app_builder import build_app

        context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
        names = list(self.environments)
        only = self.workdir / "models"  # this model alone: the app builds stacks for every model it finds
        only.mkdir(exist_ok=True)
        if not (only / self.model).exists():
            (only / self.model).symlink_to(self.model_dir, target_is_directory=True)
        context.update({"mlops:environments": {env: {"account": account, "region": self.region,
                                                     "overrides": self.overrides.get(env, {})}
                                               for env, account in self.environments.items()},
                        "mlops:delivery": {"training": names[0], "promotion": names[1:]},
                        "aws:cdk:bundling-stacks": [], "mlops:models_dir": str(only)})
        assembly = build_app(cdk.App(context=context, outdir=str(self.workdir / "cdk.out"))).synth()
        return {env: {name: assembly.get_stack_by_name(name).template for name in (
                    naming.registry_stack(env), naming.control_stack(env), naming.model_stack(self.model, env))}
                for env in names}

    def _function_urls(self, account: EmulatedAccount) -> dict[str, str]:
        from pipelines.local.lifecycle import APPROVAL_DECIDE, FunctionUrlServer, function_logical_id, runs_api_server

        control = naming.control_stack(account.env)
        decide = function_logical_id(account.templates[control], APPROVAL_DECIDE)
        runs = function_logical_id(account.templates[control], "RunsApiFunction")
        decide_name = naming.control_function(account.env, "approval-decide")  # the environment's approval URL
        runs_name = naming.control_function(account.env, "runs-api")  # the environment's runs API
        approval = FunctionUrlServer(lambda event, a=account: a.dispatch.invoke(decide_name, event))
        api = runs_api_server(lambda event, a=account: a.dispatch.invoke(runs_name, event), runs_name, account.id, self.region)
        account.servers += [approval, api]
        return {decide: approval.url, runs: api.url}

    def _seed(self, rows: int) -> None:
        account = self.world.accounts[self.training]
        path = self.dataset.write_csv(self.dataset.generate(rows, 7, 0.0), self.workdir / "data" / "train.csv")
        key = f"{self.spec.dataset.s3_prefix}{self.spec.dataset.file_name}"
        boto3.client("s3", region_name=self.region).put_object(
            Bucket=naming.artifact_bucket(account.env, account.id, self.region), Key=key, Body=path.read_bytes())

    def _people(self) -> dict[tuple[str, str], iam.Credentials]:
        """(env, email) -> a signed-in session: the data scientist on the training account's policy; every approver
        of every stage on that stage's approver role, their email as the session name (as IAM Identity Center)."""
        training = self.world.accounts[self.training]
        scientist = f"arn:aws:iam::{training.id}:role/{naming.person_role(self.training, 'data-scientist')}"
        people = {(self.training, "data-scientist@example.com"): iam.person(scientist, "data-scientist@example.com",
                                                                           self.region, model=self.model)}
        for env, account in self.world.accounts.items():
            role = f"arn:aws:iam::{account.id}:role/{naming.person_role(env, 'approver')}"
            for email in self.approvers(env):
                people[(env, email)] = iam.sign_in(role, email, account.id, tags={naming.MODEL_TAG: self.model})
        return people

    def approvers(self, env: str) -> list[str]:
        """Who approves in `env`: approval.stages.<env> for a promotion stage, else approval.approvers."""
        from pipelines.spec import load_spec

        spec = load_spec(self.model_dir, self.overrides.get(env))
        stage = spec.approval.stages.get(env)
        return stage.approvers if stage and env != self.training else spec.approval.approvers

    def pipelines(self, env: str, email: str):
        from pipelines.client import Pipelines

        return Pipelines(env=env, session=self.people[(env, email)].session(self.region), models_dir=self.models_dir)

    # ------------------------------------------------------------ the lifecycle
    def train(self, approver: str, timeout_s: float = 300) -> dict:
        """A run in the training account, started through its runs API by the data scientist, approved by
        `approver` through the runs API when it asks; returns the finished execution."""
        from pipelines.client import decide

        run = self.pipelines(self.training, "data-scientist@example.com").start(self.model, reason="cross-account e2e")
        waiting = self.world.wait_for(self.training, run.arn, lambda d: d["status"] in TERMINAL or
                                      self.pending(self.training, d["name"]) is not None, timeout_s)
        if waiting["status"] not in TERMINAL:
            decide(self.pipelines(self.training, approver), self.model, True, "metrics reviewed", waiting["name"])
        return self.world.wait_for(self.training, run.arn, lambda d: d["status"] in TERMINAL, timeout_s)

    def pending(self, env: str, execution: str) -> dict | None:
        account = self.world.accounts[env]
        item = account.client("dynamodb").get_item(TableName=naming.audit_table(env), Key={
            "pk": {"S": f"model#{self.model}"}, "sk": {"S": f"approval#{execution}"}}).get("Item")
        return item if item and item["status"]["S"] == "PENDING" else None

    def executions(self, env: str) -> list[dict]:
        account = self.world.accounts[env]
        machine = f"arn:aws:states:{self.region}:{account.id}:stateMachine:{naming.state_machine(self.model, env)}"
        return account.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]

    def rows(self, count: int = 5, seed: int = 99) -> list[dict]:
        columns = self.dataset.generate(count, seed, 0.0)
        return [dict(zip(self.spec.dataset.features, values))
                for values in zip(*(columns[n].tolist() for n in self.spec.dataset.features))]

    def predict(self, env: str, rows: list[dict], stage: str = "prod") -> list:
        runtime = boto3.client("sagemaker-runtime", region_name=self.region, endpoint_url=self.world.accounts[env].hosting_url)
        body = runtime.invoke_endpoint(EndpointName=naming.endpoint(self.model, env, stage), ContentType="application/json",
                                       Body=json.dumps({"instances": rows}))["Body"].read()
        return json.loads(body)["predictions"]

    def predict_with_artifact(self, env: str, artifact: str, rows: list[dict]) -> list:
        """The answers of a model.tar.gz of env's bucket, loaded as the serving container loads it."""
        import io
        import tarfile
        import tempfile

        from pipelines.modelkit.loader import ServingCode

        bucket, key = artifact.removeprefix("s3://").split("/", 1)
        body = self.world.accounts[env].client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        directory = Path(tempfile.mkdtemp(prefix="artifact-"))
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            archive.extractall(directory, filter="data")
        return ServingCode(directory).predict(rows)

    def delivery(self):
        """The delivery roles the emulated accounts play (training: the first environment)."""
        from pipelines.promotion import Delivery, DeliverySpec
        from pipelines.spec import EnvironmentSpec

        names = list(self.environments)
        return Delivery(DeliverySpec(training=names[0], promotion=names[1:]),
                        {env: EnvironmentSpec(name=env, account=account, region=self.region)
                         for env, account in self.environments.items()})

    def promote_through(self, trained_execution_arn: str, approver_of: Callable[[str], str]) -> list[dict]:
        """Each stage in turn: the previous stage's successful run is announced, the stage imports what it was
        offered, `approver_of(stage)` approves it with `mlops promote`, and its run deploys it."""
        from pipelines.promote_cli import promote

        names, delivery = list(self.environments), self.delivery()
        finished, previous, arn = [], names[0], trained_execution_arn
        for stage in names[1:]:
            known = {run["executionArn"] for run in self.executions(stage)}
            self.world.execution_status_changed(previous, arn)
            started = [run for run in self.executions(stage) if run["executionArn"] not in known]
            if len(started) != 1:
                raise RuntimeError(f"{stage} started {len(started)} promotion runs; deliveries: {self.world.router.deliveries}")
            arn = started[0]["executionArn"]
            waiting = self.world.wait_for(stage, arn, lambda d, s=stage: d["status"] != "RUNNING" or
                                          self.pending(s, d["name"]) is not None)
            if waiting["status"] != "RUNNING":
                raise RuntimeError(f"the promotion run in {stage} ended {waiting['status']} before its approval")
            decided = promote(self.pipelines(stage, approver_of(stage)), delivery, self.model, "latest", stage,
                              f"promotion to {stage}")
            finished.append({**decided, "run": self.world.wait_for(stage, arn, lambda d: d["status"] != "RUNNING")})
            previous = stage
        return finished


def main(argv: list[str] | None = None) -> None:
    """`python -m pipelines.local.accounts`: the model trained in a dev account and promoted through the given
    stages, each an account of its own, under enforced IAM; prints what each stage serves and who approved it."""
    import argparse
    import tempfile

    from pipelines.promote_cli import stage_overview

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", default="churn")
    parser.add_argument("--stages", nargs="+", default=["staging", "prod"])
    parser.add_argument("--rows", type=int, default=5000, help="rows of generated training data")
    arguments = parser.parse_args(argv)
    accounts = {"dev": "123456789012", **{stage: f"{210987654321 + 111111111 * i}" for i, stage in enumerate(arguments.stages)}}
    started = time.perf_counter()
    show = lambda line: print(line) if line.startswith("validation:") else None  # noqa: E731
    with tempfile.TemporaryDirectory() as workdir, CrossAccountPromotion(arguments.model, accounts, Path(workdir),
                                                                         rows=arguments.rows, say=show) as promotion:
        approver = promotion.approvers("dev")[0]
        trained = promotion.train(approver=approver)
        print(f"dev: run {trained['name']} {trained['status']}")
        if promotion.world.accounts["dev"].client("sagemaker").list_model_packages(
                ModelPackageGroupName=naming.model_package_group(arguments.model, "dev"))["ModelPackageSummaryList"] == []:
            raise SystemExit("the dev run registered no package (below the spec's minimum?): nothing to promote")
        for step in promotion.promote_through(trained["executionArn"], lambda stage: promotion.approvers(stage)[0]):
            print(f"{step['stage']}: {step['package']} approved at {step['decided_at']}, run {step['run']['status']}")
        clients = {env: promotion.pipelines(env, promotion.approvers(env)[0]) for env in accounts}
        for row in stage_overview(arguments.model, clients, promotion.delivery()):
            print(json.dumps(row))
        print(f"timings: {promotion.timings}, total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

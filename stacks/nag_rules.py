"""MlopsServiceChecks: a cdk-nag 3 rule pack for what AWS refuses (or silently breaks on) at deploy or run time.

Registered beside AwsSolutionsChecks in stacks/app_builder.py:
    cdk.Validations.of(app).add_plugins(MlopsServiceChecks(app))

Rule ids are `Mlops-<Rule>` (some rules report per finding: `Mlops-<Rule>[<finding>]`); acknowledge them
with stacks.nag.acknowledge(scope, {"Mlops-<Rule>": "reason..."}) exactly like AwsSolutions findings.
docs/nag-rules.md lists every rule, why it exists and the AWS documentation it follows.

How it works (cdk-nag 3 from Python, via jsii):
* NagPack is an IPolicyValidationPlugin. CDK calls `validate(context)` after the cloud assembly is
  written; cdk-nag then walks the construct tree and calls `_check_resource(node)` for every CfnResource.
* Rules are passed to `_apply_rule` as objects implementing IApplyRule (`@jsii.implements`); the rule id
  suffix must be given as `rule_suffix_override` (cdk-nag otherwise uses the JS function name of
  `rule`, which for a Python callback is meaningless).
* Most of these rules need more than one resource (a log group and the key policy in another stack, a
  role and its separate AWS::IAM::Policy resources, a function and the rules targeting it). The pack
  overrides `validate_scope` (which cdk-nag's `validate(context)` calls; a Python override of a jsii
  method is called from JavaScript too) to index every synthesized template of the app's stacks
  once, with exports so Fn::ImportValue references are followed across stacks, and looks resources up
  there by stack template and logical id. Working on the written templates also sees escape-hatch
  overrides, which the L1 construct attributes would not.
* A rule that raises is reported by cdk-nag as a violation of that rule ("Rule threw an error").
* Every violation fails synthesis, whatever its level: a NagPack report succeeds only without any
  violation. NoReservedConcurrency is therefore an error that must be acknowledged explicitly
  (with the account's concurrency quota as the reason) where a reservation is intended.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterable

import aws_cdk as cdk
import jsii
from cdk_nag import IApplyRule, NagMessageLevel, NagPack, NagRuleCompliance
from constructs import IConstruct

from stacks.nag import flatten

PACK_NAME = "Mlops"

Ref = tuple[str, str]  # (template path, logical id)
RuleResult = NagRuleCompliance | list[str]


# ---------------------------------------------------------------------------------------------------------
# Template index
# ---------------------------------------------------------------------------------------------------------

def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _statements(document) -> list[dict]:
    if not isinstance(document, dict):
        return []
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, dict)]


def _service_principals(statement: dict) -> list[str]:
    principal = statement.get("Principal")
    if not isinstance(principal, dict):
        return []
    return [flatten(p) for p in _as_list(principal.get("Service"))]


def _condition_keys(statement: dict) -> set[str]:
    keys: set[str] = set()
    condition = statement.get("Condition")
    if isinstance(condition, dict):
        for block in condition.values():
            if isinstance(block, dict):
                keys.update(k.lower() for k in block)
    return keys


def _allows(statements: Iterable[dict], action: str) -> bool:
    """Some Allow statement's Action pattern matches `action` (IAM action names are case-insensitive)."""
    action = action.lower()
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        for pattern in _as_list(statement.get("Action")):
            if isinstance(pattern, str) and fnmatchcase(action, pattern.lower()):
                return True
    return False


def _allowing(statements: Iterable[dict], action: str) -> list[dict]:
    return [s for s in statements if _allows([s], action)]


_KMS_KEY_PROPERTY = re.compile(r"(?i)\b(volume|output)?kms(master)?key(id|arn)\b")


@dataclass
class _Index:
    templates: dict[str, dict]
    exports: dict[str, tuple[str, Any]] = field(default_factory=dict)
    _role_statements: dict[Ref, list[dict]] | None = None
    # Memoized per synthesis: rules ask these for every role of every model, which made synthesis quadratic and
    # worse in the number of models (benchmarks/fleet_synth.py).
    _passed: dict[tuple[Ref, str], list[Ref]] = field(default_factory=dict)
    _passers: dict[tuple[str, str], dict[Ref, list[Ref]]] = field(default_factory=dict)
    _trusted: dict[str, list[Ref]] = field(default_factory=dict)
    _cmk_tables: dict[Ref, Any] | None = None
    _async_sources: dict[Ref, list[tuple[str, bool]]] | None = None
    _functions_by_name: dict[str, Ref] | None = None

    @classmethod
    def from_paths(cls, paths: Iterable[str]) -> "_Index":
        templates = {}
        for path in paths:
            real = os.path.realpath(path)
            if os.path.exists(real):
                with open(real, encoding="utf-8") as handle:
                    templates[real] = json.load(handle)
        index = cls(templates)
        for key, template in templates.items():
            for output in (template.get("Outputs") or {}).values():
                name = (output.get("Export") or {}).get("Name")
                if isinstance(name, str):
                    index.exports[name] = (key, output.get("Value"))
        return index

    def resources(self, kind: str | None = None) -> Iterable[tuple[Ref, dict]]:
        for key, template in self.templates.items():
            for logical, resource in (template.get("Resources") or {}).items():
                if kind is None or resource.get("Type") == kind:
                    yield (key, logical), resource

    def get(self, ref: Ref | None) -> dict | None:
        if ref is None:
            return None
        return ((self.templates.get(ref[0]) or {}).get("Resources") or {}).get(ref[1])

    def resolve(self, key: str, value) -> Ref | None:
        """The resource a Ref / Fn::GetAtt / Fn::ImportValue (of such an export) points to, in any stack."""
        if not isinstance(value, dict) or len(value) != 1:
            return None
        (function, argument), = value.items()
        logical = None
        if function == "Ref" and isinstance(argument, str):
            logical = argument
        elif function == "Fn::GetAtt":
            if isinstance(argument, list) and argument and isinstance(argument[0], str):
                logical = argument[0]
            elif isinstance(argument, str):
                logical = argument.split(".", 1)[0]
        elif function == "Fn::ImportValue" and isinstance(argument, str) and argument in self.exports:
            export_key, export_value = self.exports[argument]
            return self.resolve(export_key, export_value)
        if logical and logical in ((self.templates.get(key) or {}).get("Resources") or {}):
            return key, logical
        return None

    def resolve_function(self, key: str, value) -> Ref | None:
        """Like resolve, following an alias or version to its function; a literal function ARN (another stack's
        function named by its FunctionName, as the model stacks' schedules name the control plane's) too."""
        if isinstance(value, str) and ":function:" in value:
            return self.function_named(value.split(":function:", 1)[1].split(":", 1)[0])
        ref = self.resolve(key, value)
        resource = self.get(ref)
        if resource and resource.get("Type") in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
            return self.resolve(ref[0], (resource.get("Properties") or {}).get("FunctionName"))
        return ref

    def function_named(self, name: str) -> Ref | None:
        if self._functions_by_name is None:
            self._functions_by_name = {}
            for ref, function in self.resources("AWS::Lambda::Function"):
                named = (function.get("Properties") or {}).get("FunctionName")
                if isinstance(named, str):
                    self._functions_by_name[named] = ref
        return self._functions_by_name.get(name)

    # -- IAM --------------------------------------------------------------------------------------------
    def role_statements(self, role: Ref) -> list[dict]:
        """Identity-policy statements of a role: inline Policies, AWS::IAM::Policy and customer managed
        policies of the app attached to it. AWS managed policies are not visible and count as nothing."""
        if self._role_statements is None:
            table: dict[Ref, list[dict]] = {}
            for ref, resource in self.resources("AWS::IAM::Role"):
                properties = resource.get("Properties") or {}
                statements = table.setdefault(ref, [])
                for policy in _as_list(properties.get("Policies")):
                    statements += _statements((policy or {}).get("PolicyDocument"))
                for arn in _as_list(properties.get("ManagedPolicyArns")):
                    managed = self.get(self.resolve(ref[0], arn))
                    if managed and managed.get("Type") == "AWS::IAM::ManagedPolicy":
                        statements += _statements((managed.get("Properties") or {}).get("PolicyDocument"))
            for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                for (key, _), resource in self.resources(kind):
                    properties = resource.get("Properties") or {}
                    for attached in _as_list(properties.get("Roles")):
                        target = self.resolve(key, attached)
                        if target in table:
                            table[target] += _statements(properties.get("PolicyDocument"))
            self._role_statements = table
        return self._role_statements.get(role, [])

    def trusted_services(self, role: Ref) -> set[str]:
        document = ((self.get(role) or {}).get("Properties") or {}).get("AssumeRolePolicyDocument")
        return {p for s in _statements(document) for p in _service_principals(s)}

    def passed_roles(self, role: Ref, service: str = "sagemaker.amazonaws.com") -> list[Ref]:
        """Roles of the app trusted by `service` that `role` may pass (iam:PassRole)."""
        if (role, service) in self._passed:
            return self._passed[(role, service)]
        passed: list[Ref] = []
        candidates = self._trusted_by(service)
        for statement in _allowing(self.role_statements(role), "iam:PassRole"):
            for resource in _as_list(statement.get("Resource")):
                if flatten(resource) == "*":
                    passed += candidates
                    continue
                target = self.resolve(role[0], resource)
                if target in candidates:
                    passed.append(target)
        self._passed[(role, service)] = list(dict.fromkeys(passed))
        return self._passed[(role, service)]

    def passers(self, action: str, service: str = "sagemaker.amazonaws.com") -> dict[Ref, list[Ref]]:
        """Role trusted by `service` -> the roles allowed `action` that may pass it."""
        if (action, service) not in self._passers:
            table: dict[Ref, list[Ref]] = {}
            for other, _ in self.resources("AWS::IAM::Role"):
                if _allows(self.role_statements(other), action):
                    for passed in self.passed_roles(other, service):
                        table.setdefault(passed, []).append(other)
            self._passers[(action, service)] = table
        return self._passers[(action, service)]

    def _trusted_by(self, service: str) -> list[Ref]:
        if service not in self._trusted:
            self._trusted[service] = [ref for ref, _ in self.resources("AWS::IAM::Role") if service in self.trusted_services(ref)]
        return self._trusted[service]

    def uses_kms_key(self, key: str) -> bool:
        """The stack's resources (state machine definitions included) name a KMS key somewhere."""
        template = self.templates.get(key) or {}
        if any(r.get("Type") == "AWS::KMS::Key" for r in (template.get("Resources") or {}).values()):
            return True
        return bool(_KMS_KEY_PROPERTY.search(json.dumps(template.get("Resources") or {})))


# ---------------------------------------------------------------------------------------------------------
# Rules: each takes (index, ref of the checked resource, its template body) and returns a rule result.
# ---------------------------------------------------------------------------------------------------------

LOGS_KEY_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey")
LOGS_CONTEXT_KEY = "kms:encryptioncontext:aws:logs:arn"
_LOGS_PRINCIPAL = re.compile(r"^logs\.([^.]+\.)?amazonaws\.com(\.cn)?$")


def _is_logs_principal(principal: str) -> bool:
    return bool(_LOGS_PRINCIPAL.match(principal))


def log_group_key_policy(index: _Index, ref: Ref, resource: dict) -> RuleResult:
    """LogGroupKeyPolicy. CloudWatch Logs doc "Encrypt log data in CloudWatch Logs using AWS KMS"
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html), step 2 "Set
    permissions on the key": the key policy must allow the principal `logs.<region>.amazonaws.com`
    kms:Encrypt*, kms:Decrypt*, kms:ReEncrypt*, kms:GenerateDataKey*, kms:Describe*, with an
    `ArnLike kms:EncryptionContext:aws:logs:arn` condition. Otherwise CreateLogGroup / AssociateKmsKey
    fails ("The specified KMS key does not exist or is not allowed to be used"). The key is looked up in
    the app, across stacks (Fn::ImportValue); a key outside the app cannot be checked (not applicable)."""
    kms_key_id = (resource.get("Properties") or {}).get("KmsKeyId")
    if kms_key_id is None:
        return NagRuleCompliance.NOT_APPLICABLE
    key = index.get(index.resolve(ref[0], kms_key_id))
    if not key or key.get("Type") != "AWS::KMS::Key":
        return NagRuleCompliance.NOT_APPLICABLE
    statements = [s for s in _statements((key.get("Properties") or {}).get("KeyPolicy"))
                  if s.get("Effect") == "Allow" and any(map(_is_logs_principal, _service_principals(s)))
                  and LOGS_CONTEXT_KEY in _condition_keys(s)]
    if all(_allows(statements, action) for action in LOGS_KEY_ACTIONS):
        return NagRuleCompliance.COMPLIANT
    return NagRuleCompliance.NON_COMPLIANT


SOURCE_CONDITION_KEYS = {"aws:sourceaccount", "aws:sourcearn"}


def kms_service_grant_source_condition(index: _Index, ref: Ref, resource: dict) -> RuleResult:
    """KmsServiceGrantSourceCondition. Every key-policy statement allowing an AWS service principal must
    carry aws:SourceAccount or aws:SourceArn (confused-deputy prevention: IAM User Guide "The confused
    deputy problem", https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html, and the AWS
    KMS key-policy guidance "Allowing AWS services to use the key"); for the CloudWatch Logs principal the
    `kms:EncryptionContext:aws:logs:arn` condition of "Encrypt log data in CloudWatch Logs using AWS KMS"
    serves the same purpose. One finding per unconditioned principal: `[Service::<principal>]`."""
    findings: list[str] = []
    for statement in _statements((resource.get("Properties") or {}).get("KeyPolicy")):
        if statement.get("Effect") != "Allow":
            continue
        keys = _condition_keys(statement)
        for principal in _service_principals(statement):
            if keys & SOURCE_CONDITION_KEYS:
                continue
            if _is_logs_principal(principal) and LOGS_CONTEXT_KEY in keys:
                continue
            findings.append(f"Service::{principal}")
    return sorted(set(findings)) if findings else NagRuleCompliance.COMPLIANT


# SageMaker "API Permissions: Actions, Permissions, and Resources Reference":
# CreateEndpoint: "kms:CreateGrant (required only if the associated EndPointConfig has a KmsKeyId specified)"
# (the CreateEndpointConfig API reference adds UpdateEndpoint: "The KMS key policy must grant permission to
# the IAM role that you specify in your CreateEndpoint, UpdateEndpoint requests") -> the caller itself.
CALLER_NEEDS_GRANT = ("sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint")
# CreateTrainingJob / CreateTransformJob / CreateProcessingJob / CreateHyperParameterTuningJob:
# "kms:CreateGrant (required only if the associated ResourceConfig has a specified VolumeKmsKeyId and the
# associated role does not have a policy that permits this action)" -> the caller OR the passed role.
CALLER_OR_ROLE_NEEDS_GRANT = ("sagemaker:CreateTrainingJob", "sagemaker:CreateTransformJob",
                              "sagemaker:CreateProcessingJob", "sagemaker:CreateHyperParameterTuningJob")


def sagemaker_kms_create_grant(index: _Index, ref: Ref, resource: dict) -> RuleResult:
    """SageMakerKmsCreateGrant. Follows the SageMaker "API Permissions: Actions, Permissions, and Resources
    Reference" (https://docs.aws.amazon.com/sagemaker/latest/dg/api-permissions-reference.html):
    the caller of CreateEndpoint (and UpdateEndpoint) needs kms:CreateGrant when the endpoint config has
    a KmsKeyId; for CreateTrainingJob / CreateTransformJob / CreateProcessingJob /
    CreateHyperParameterTuningJob with a VolumeKmsKeyId, the caller needs it unless the associated
    (passed) execution role has it. CreateEndpointConfig itself needs no grant.
    Precision: request bodies are not visible (the Lambda deployer builds them at run time), so a role
    allowed those actions in a stack whose resources use a KMS key (any *KmsKeyId / KmsMasterKeyId /
    KMS key, state machine definitions included) is presumed to pass that key. Any Allow of
    kms:CreateGrant counts (scope it to the key, with kms:GrantIsForAWSResource=true, as the
    recommended form). Findings: `[<sagemaker action>]`."""
    statements = index.role_statements(ref)
    callers = [action for action in CALLER_NEEDS_GRANT if _allows(statements, action)]
    jobs = [action for action in CALLER_OR_ROLE_NEEDS_GRANT if _allows(statements, action)]
    if not (callers or jobs) or not index.uses_kms_key(ref[0]):
        return NagRuleCompliance.NOT_APPLICABLE
    if _allows(statements, "kms:CreateGrant"):
        return NagRuleCompliance.COMPLIANT
    findings = callers
    if jobs and not any(_allows(index.role_statements(role), "kms:CreateGrant") for role in index.passed_roles(ref)):
        findings += jobs
    return findings or NagRuleCompliance.COMPLIANT


def alarm_rollback_describe_alarms(index: _Index, ref: Ref, resource: dict) -> RuleResult:
    """AlarmRollbackDescribeAlarms. SageMaker "Auto-Rollback Configuration and Monitoring"
    (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html): "Ensure
    that your IAM execution role has permission to perform the cloudwatch:DescribeAlarms action on the
    auto-rollback alarms you specify", and "CreateModel API: Execution Role Permissions" in "How to use
    SageMaker AI execution roles": "If you plan to use the SageMaker deployment guardrails feature ...
    ensure that your execution role has permission to perform the cloudwatch:DescribeAlarms action on
    your auto-rollback alarms". The principal is the model's execution role (ExecutionRoleArn of
    CreateModel), not the caller of UpdateEndpoint. Checked on every role trusted by
    sagemaker.amazonaws.com that a role allowed sagemaker:UpdateEndpoint may pass (iam:PassRole)."""
    if "sagemaker.amazonaws.com" not in index.trusted_services(ref):
        return NagRuleCompliance.NOT_APPLICABLE
    updaters = index.passers("sagemaker:UpdateEndpoint").get(ref, [])
    if not updaters:
        return NagRuleCompliance.NOT_APPLICABLE
    if _allows(index.role_statements(ref), "cloudwatch:DescribeAlarms"):
        return NagRuleCompliance.COMPLIANT
    return NagRuleCompliance.NON_COMPLIANT


ASYNC_PERMISSION_PRINCIPALS = {"s3.amazonaws.com": "s3", "sns.amazonaws.com": "sns", "events.amazonaws.com": "events",
                               "ses.amazonaws.com": "ses", "iot.amazonaws.com": "iot"}


def _async_sources(index: _Index, function: Ref) -> list[tuple[str, bool]]:
    """(source kind, covered by the source's own dead-letter queue) for each asynchronous invoker. All functions'
    sources are found in one pass over the app and memoized (one pass a function made synthesis quadratic)."""
    if index._async_sources is None:
        index._async_sources = _all_async_sources(index)
    return index._async_sources.get(function, [])


def _all_async_sources(index: _Index) -> dict[Ref, list[tuple[str, bool]]]:
    sources: dict[Ref, list[tuple[str, bool]]] = defaultdict(list)

    def add(key: str, value, kind: str, covered: bool = False) -> None:
        function = index.resolve_function(key, value)
        if function is not None:
            sources[function].append((kind, covered))

    for (key, _), rule in index.resources("AWS::Events::Rule"):
        for target in _as_list((rule.get("Properties") or {}).get("Targets")):
            add(key, (target or {}).get("Arn"), "events", bool(((target or {}).get("DeadLetterConfig") or {}).get("Arn")))
    for (key, _), schedule in index.resources("AWS::Scheduler::Schedule"):
        target = (schedule.get("Properties") or {}).get("Target") or {}
        add(key, target.get("Arn"), "events", bool((target.get("DeadLetterConfig") or {}).get("Arn")))
    for (key, _), subscription in index.resources("AWS::SNS::Subscription"):
        properties = subscription.get("Properties") or {}
        if properties.get("Protocol") == "lambda":
            add(key, properties.get("Endpoint"), "sns")
    for (key, _), topic in index.resources("AWS::SNS::Topic"):
        for subscription in _as_list((topic.get("Properties") or {}).get("Subscription")):
            if (subscription or {}).get("Protocol") == "lambda":
                add(key, subscription.get("Endpoint"), "sns")
    for (key, _), bucket in index.resources():
        properties = bucket.get("Properties") or {}
        if bucket.get("Type") == "AWS::S3::Bucket":
            configurations = ((properties.get("NotificationConfiguration") or {}).get("LambdaConfigurations"), "Function")
        elif bucket.get("Type") == "Custom::S3BucketNotifications":
            configurations = ((properties.get("NotificationConfiguration") or {}).get("LambdaFunctionConfigurations"), "LambdaFunctionArn")
        else:
            continue
        for configuration in _as_list(configurations[0]):
            add(key, (configuration or {}).get(configurations[1]), "s3")
    outside: dict[Ref, list[str]] = defaultdict(list)
    for (key, _), permission in index.resources("AWS::Lambda::Permission"):
        properties = permission.get("Properties") or {}
        kind = ASYNC_PERMISSION_PRINCIPALS.get(flatten(properties.get("Principal")))
        function = index.resolve_function(key, properties.get("FunctionName")) if kind else None
        if function is not None:
            outside[function].append(kind)
    for function, kinds in outside.items():
        seen = {kind for kind, _ in sources.get(function, [])}
        for kind in dict.fromkeys(kinds):
            if kind not in seen:
                sources[function].append((kind, False))  # an invoker outside the app
    return dict(sources)


def async_function_failure_destination(index: _Index, ref: Ref, resource: dict) -> RuleResult:
    """AsyncFunctionFailureDestination. Lambda "Asynchronous invocation" / "Capturing records of Lambda
    asynchronous invocations" (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html):
    after the retries of an asynchronous invocation (EventBridge, SNS, S3, ...) Lambda discards the event
    unless an on-failure destination or a dead-letter queue is configured. A function invoked
    asynchronously must have an AWS::Lambda::EventInvokeConfig with DestinationConfig.OnFailure or a
    DeadLetterConfig; an EventBridge rule/schedule target with its own DeadLetterConfig covers that source
    (EventBridge "Using dead-letter queues to process undelivered events")."""
    properties = resource.get("Properties") or {}
    if (properties.get("DeadLetterConfig") or {}).get("TargetArn"):
        return NagRuleCompliance.COMPLIANT
    sources = _async_sources(index, ref)
    if not sources:
        return NagRuleCompliance.NOT_APPLICABLE
    for (key, _), config in index.resources("AWS::Lambda::EventInvokeConfig"):
        config_properties = config.get("Properties") or {}
        if (index.resolve_function(key, config_properties.get("FunctionName")) == ref
                and ((config_properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")):
            return NagRuleCompliance.COMPLIANT
    if all(covered for _, covered in sources):
        return NagRuleCompliance.COMPLIANT
    return NagRuleCompliance.NON_COMPLIANT


def no_reserved_concurrency(index: _Index, ref: Ref, resource: dict) -> RuleResult:
    """NoReservedConcurrency. Lambda "Configuring reserved concurrency"
    (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html) and "Lambda quotas": Lambda
    keeps at least 100 concurrent executions unreserved (UnreservedConcurrentExecution minimum), and new
    accounts may start with a concurrency quota as low as 10, so any ReservedConcurrentExecutions makes
    the deployment fail there ("Specified ReservedConcurrentExecutions for function decreases account's
    UnreservedConcurrentExecution below its minimum value"). Acknowledge explicitly per environment
    whose account quota is known to allow the reservation."""
    if (resource.get("Properties") or {}).get("ReservedConcurrentExecutions") is None:
        return NagRuleCompliance.NOT_APPLICABLE
    return NagRuleCompliance.NON_COMPLIANT


DYNAMODB_DATA_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                         "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem",
                         "dynamodb:ConditionCheckItem")


def _cmk_tables(index: _Index) -> dict[Ref, Any]:
    """Tables of the app encrypted with a customer-managed key -> that key's reference (as written)."""
    if index._cmk_tables is None:
        index._cmk_tables = {}
        for ref, table in index.resources("AWS::DynamoDB::Table"):
            sse = (table.get("Properties") or {}).get("SSESpecification") or {}
            if sse.get("SSEEnabled") and sse.get("KMSMasterKeyId"):
                index._cmk_tables[ref] = sse["KMSMasterKeyId"]
    return index._cmk_tables


def _cmk_tables_by_name(index: _Index) -> dict[str, Ref]:
    return {name: table for table in _cmk_tables(index)
            if isinstance(name := ((index.get(table) or {}).get("Properties") or {}).get("TableName"), str)}


def dynamodb_cmk_decrypt(index: _Index, ref: Ref, resource: dict) -> RuleResult:
    """DynamoDBKeyAccess. DynamoDB developer guide, "How Amazon DynamoDB uses AWS KMS" / "Using KMS keys and
    data keys" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/encryption.howitworks.html):
    when you access a table encrypted with a customer managed key, "DynamoDB sends a Decrypt request ... The
    user is the principal in your AWS account who is accessing the table", so every principal reading or
    writing such a table needs kms:Decrypt on its key (kms:ViaService dynamodb.<region>.amazonaws.com is a
    valid scope). Findings: `[<table logical id>]` for each CMK table the role uses without it."""
    statements = index.role_statements(ref)
    tables, by_name = _cmk_tables(index), _cmk_tables_by_name(index)
    used = set()
    for statement in statements:
        if statement.get("Effect") != "Allow" or not any(_allows([statement], a) for a in DYNAMODB_DATA_ACTIONS):
            continue
        for resource in _as_list(statement.get("Resource")):
            target = index.resolve(ref[0], resource)
            named = re.search(r":table/([^/]+)$", flatten(resource))  # a literal ARN naming the table's TableName
            used |= {t for t in (target if target in tables else None, by_name.get(named.group(1)) if named else None) if t}
    if not used:
        return NagRuleCompliance.NOT_APPLICABLE
    missing = sorted({table[1] for table in used if not _allows(statements, "kms:Decrypt")})
    return missing or NagRuleCompliance.COMPLIANT


# Actions AWS authorizes only against "*": a grant scoped to a resource ARN is silently never honoured, so the
# call fails with AccessDenied at run time (moto, which checks the ARN it is given, lets it through).
# SageMaker API permissions reference: "Except for the ListTags API, resource-level restrictions are not
# available on List- calls"; Service Authorization Reference: ListModelPackages has no resource type. The Price List
# API (pricing:*) has no resource types at all.
STAR_ONLY_ACTIONS = re.compile(r"^(sagemaker:(List(?!Tags$)[A-Za-z]+|Search)|pricing:[A-Za-z]+)$", re.IGNORECASE)


def star_only_actions_scoped(index: _Index, ref: Ref, resource: dict) -> RuleResult:
    """StarOnlyActionScoped. SageMaker "API Permissions: Actions, Permissions, and Resources Reference"
    (https://docs.aws.amazon.com/sagemaker/latest/dg/api-permissions-reference.html): "resource-level
    restrictions are not available on List- calls" (ListTags excepted), and the Service Authorization
    Reference lists no resource type for them: an Allow that names resources other than "*" never matches,
    and the call fails with AccessDenied. Findings: `[<action>]`."""
    findings = set()
    for statement in _statements((resource.get("Properties") or {}).get("PolicyDocument")):
        if statement.get("Effect") != "Allow" or "*" in _as_list(statement.get("Resource")):
            continue
        findings |= {action for action in _as_list(statement.get("Action")) if STAR_ONLY_ACTIONS.match(str(action))}
    return sorted(findings) if findings else NagRuleCompliance.COMPLIANT


@dataclass(frozen=True)
class Rule:
    suffix: str
    resource_type: str
    check: Callable[[_Index, Ref, dict], RuleResult]
    info: str
    level: NagMessageLevel = NagMessageLevel.ERROR

    @property
    def explanation(self) -> str:
        return " ".join((self.check.__doc__ or "").split())

    @property
    def rule_id(self) -> str:
        return f"{PACK_NAME}-{self.suffix}"


RULES = (
    Rule("LogGroupKeyPolicy", "AWS::Logs::LogGroup", log_group_key_policy,
         "The log group's KMS key policy does not allow logs.<region>.amazonaws.com kms:Encrypt*/Decrypt*/"
         "ReEncrypt*/GenerateDataKey*/Describe* under a kms:EncryptionContext:aws:logs:arn condition; "
         "CreateLogGroup fails."),
    Rule("KmsServiceGrantSourceCondition", "AWS::KMS::Key", kms_service_grant_source_condition,
         "A key policy statement grants an AWS service principal without aws:SourceAccount/aws:SourceArn "
         "(or, for CloudWatch Logs, the kms:EncryptionContext:aws:logs:arn condition)."),
    Rule("SageMakerKmsCreateGrant", "AWS::IAM::Role", sagemaker_kms_create_grant,
         "The role may call SageMaker APIs that pass a KMS key (CreateEndpoint/UpdateEndpoint: the caller; "
         "Create*Job with VolumeKmsKeyId: the caller or the passed execution role) but is not allowed "
         "kms:CreateGrant."),
    Rule("AlarmRollbackDescribeAlarms", "AWS::IAM::Role", alarm_rollback_describe_alarms,
         "The SageMaker execution role passed by a principal allowed sagemaker:UpdateEndpoint is not allowed "
         "cloudwatch:DescribeAlarms; blue/green auto-rollback cannot read its alarms."),
    Rule("AsyncFunctionFailureDestination", "AWS::Lambda::Function", async_function_failure_destination,
         "The function is invoked asynchronously (EventBridge, SNS, S3, ...) but has no on-failure destination "
         "(AWS::Lambda::EventInvokeConfig) and no dead-letter queue; failed events are silently dropped."),
    Rule("DynamoDBKeyAccess", "AWS::IAM::Role", dynamodb_cmk_decrypt,
         "The role reads or writes a DynamoDB table encrypted with a customer managed KMS key but may not "
         "kms:Decrypt with that key; every request to the table fails with AccessDenied."),
    Rule("StarOnlyActionScoped", "AWS::IAM::Policy", star_only_actions_scoped,
         "The policy scopes an action that AWS authorizes only against '*' (SageMaker List* calls, the Price List "
         "API) to specific resources; the grant never matches and the call is denied at run time."),
    Rule("NoReservedConcurrency", "AWS::Lambda::Function", no_reserved_concurrency,
         "The function sets ReservedConcurrentExecutions, which fails to deploy in accounts with a low "
         "concurrency quota (new accounts: 10); acknowledge it explicitly where the quota allows it."),
)


@jsii.implements(IApplyRule)
class _AppliedRule:
    """One rule applied to one resource, in the shape cdk-nag's applyRule expects across jsii."""

    def __init__(self, rule: Rule, node: cdk.CfnResource, evaluate: Callable[[], RuleResult]):
        self._rule, self._node, self._evaluate = rule, node, evaluate

    @property
    def rule_suffix_override(self) -> str:
        return self._rule.suffix

    @property
    def info(self) -> str:
        return self._rule.info

    @property
    def explanation(self) -> str:
        return self._rule.explanation

    @property
    def level(self) -> NagMessageLevel:
        return self._rule.level

    @property
    def node(self) -> cdk.CfnResource:
        return self._node

    def rule(self, node: cdk.CfnResource) -> RuleResult:
        return self._evaluate()


class MlopsServiceChecks(NagPack):
    """The project's own checks of service requirements templates show but generic packs do not check."""

    def __init__(self, scope: IConstruct | None = None, *, verbose: bool | None = None):
        super().__init__(scope, verbose=verbose)
        self._pack_name = PACK_NAME
        self._index: _Index | None = None

    @property
    def name(self) -> str:
        return "MlopsServiceChecks"

    @property
    def rule_ids(self) -> list[str]:
        return [rule.rule_id for rule in RULES]

    def validate_scope(self, scope: IConstruct) -> cdk.PolicyValidationPluginReport:
        """Both entry points (CDK's validate(context) and a direct validate_scope) come through here: index
        the templates the app's stacks were just synthesized to, walk the tree, drop the index."""
        stacks = [c for c in scope.node.root.node.find_all() if cdk.Stack.is_stack(c)]
        self._index = _Index.from_paths(os.path.join(cdk.Stage.of(s).outdir, s.template_file) for s in stacks)
        try:
            return super().validate_scope(scope)
        finally:
            self._index = None

    def _check_resource(self, node: cdk.CfnResource) -> None:
        rules = [rule for rule in RULES if rule.resource_type == node.cfn_resource_type]
        if not rules:
            return
        stack = cdk.Stack.of(node)
        ref = (os.path.realpath(os.path.join(cdk.Stage.of(stack).outdir, stack.template_file)), stack.resolve(node.logical_id))
        index = self._index
        if index is None:
            return
        resource = index.get(ref)
        if resource is None:
            return  # not in a synthesized template (e.g. a condition-less removal); nothing to check
        for rule in rules:
            self._apply_rule(_AppliedRule(rule, node, lambda rule=rule: rule.check(index, ref, resource)))

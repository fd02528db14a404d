"""How many models an account holds before an AWS quota binds, counted from a synthesized cloud assembly.

Each environment lives in its own account: what its stacks use splits into what the environment has once (the
registry and control plane stacks) and what each model adds (its model stack; the most any model stack uses,
so a richer model is never under-counted). A quota then holds floor((limit - fixed) / per_model) models.
Quotas are AWS's defaults (docs/architecture.md cites each); IAM roles are also counted at the most AWS grants
on request. Lambda code storage counts each function's code package as deployed (a function's code counts for it
even when several share one asset).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from pipelines import naming


@dataclass(frozen=True)
class Quota:
    key: str
    title: str
    default: int
    maximum: int | None  # the most AWS grants on request, where it documents one
    source: str


GB = 1024 ** 3
QUOTAS = {q.key: q for q in [
    Quota("iam_roles", "IAM roles per account", 1_000, 5_000,
          "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"),
    Quota("managed_policies", "IAM customer managed policies per account", 1_500, 5_000,
          "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"),
    Quota("default_bus_rules", "EventBridge rules per event bus (the default bus)", 300, None,
          "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html"),
    Quota("event_buses", "EventBridge event buses per account and Region", 100, None,
          "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html"),
    Quota("lambda_code_bytes", "Lambda function and layer storage per Region", 75 * GB, None,
          "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"),
    Quota("stacks", "CloudFormation stacks per account and Region (Service Quotas L-0485CB21)", 2_000, None,
          "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html"),
    Quota("dynamodb_tables", "DynamoDB tables per account and Region", 2_500, None,
          "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html"),
    Quota("anomaly_monitors", "Cost Anomaly Detection monitors per account", 101, None,
          "https://www.amazonaws.cn/en/aws-cost-management/amazon-cost-anomaly-detection/faqs/"),
    Quota("budgets", "AWS Budgets per payer account", 20_000, None,
          "https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/budgets-managing-costs.html"),
    Quota("state_machines", "Step Functions registered state machines per account and Region", 10_000, 25_000,
          "https://docs.aws.amazon.com/step-functions/latest/dg/limits-overview.html"),
    Quota("schedule_groups", "EventBridge Scheduler schedule groups per account", 500, None,
          "https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-group.html"),
    Quota("schedules", "EventBridge Scheduler schedules per Region", 10_000_000, None,
          "https://docs.aws.amazon.com/scheduler/latest/UserGuide/scheduler-quotas.html"),
    Quota("ssm_parameters", "SSM Parameter Store standard parameters per account and Region", 10_000, 100_000,
          "https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html"),
    Quota("sns_topics", "SNS standard topics per account", 100_000, None,
          "https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.aws_sns.CfnTopic.html"),
    Quota("log_groups", "CloudWatch Logs log groups per account and Region", 1_000_000, None,
          "https://docs.aws.amazon.com/powershell/latest/reference/items/New-CWLLogGroup.html"),
]}

# CloudFormation resource type -> the quota one such resource uses one unit of.
COUNTED_TYPES = {"AWS::IAM::Role": "iam_roles", "AWS::IAM::ManagedPolicy": "managed_policies",
                 "AWS::Events::EventBus": "event_buses",
                 "AWS::DynamoDB::Table": "dynamodb_tables", "AWS::CE::AnomalyMonitor": "anomaly_monitors",
                 "AWS::Budgets::Budget": "budgets", "AWS::StepFunctions::StateMachine": "state_machines",
                 "AWS::Scheduler::ScheduleGroup": "schedule_groups", "AWS::Scheduler::Schedule": "schedules",
                 "AWS::SSM::Parameter": "ssm_parameters", "AWS::SNS::Topic": "sns_topics",
                 "AWS::Logs::LogGroup": "log_groups"}


def usage(template: dict, code_bytes: Callable[[dict], int]) -> Counter:
    """What one stack uses of each quota. code_bytes: the deployed size of a Lambda function's code."""
    used = Counter(stacks=1)
    for resource in template.get("Resources", {}).values():
        kind, properties = resource["Type"], resource.get("Properties") or {}
        if kind in COUNTED_TYPES:
            used[COUNTED_TYPES[kind]] += 1
        elif kind == "AWS::Events::Rule" and properties.get("EventBusName", "default") == "default":
            used["default_bus_rules"] += 1
        elif kind == "AWS::Lambda::Function":
            used["lambda_code_bytes"] += code_bytes(resource)
    return used


@dataclass(frozen=True)
class Capacity:
    env: str
    fixed: Counter
    per_model: Counter
    limits: Mapping[str, int]

    def models_under(self, key: str) -> int | None:
        """How many models the quota `key` allows (None: models do not use it)."""
        if not self.per_model[key]:
            return None
        return max(0, (self.limits[key] - self.fixed[key]) // self.per_model[key])

    @property
    def models(self) -> int:
        return min(n for n in map(self.models_under, self.limits) if n is not None)

    @property
    def binding(self) -> str:
        return min((k for k in self.limits if self.models_under(k) is not None), key=self.models_under)


def capacity(env: str, templates: Mapping[str, dict], code_bytes: Callable[[dict], int], *,
             role_limit: int | None = None) -> Capacity:
    """The environment `env`'s capacity from its stacks' templates (stack name -> template)."""
    fixed, per_model = Counter(), Counter()
    for name, template in templates.items():
        if name in (naming.registry_stack(env), naming.control_stack(env)):
            fixed += usage(template, code_bytes)
        elif name.startswith(naming.model_stack("", env)):
            per_model = per_model | usage(template, code_bytes)  # the most any model uses, quota by quota
    limits = {key: quota.default for key, quota in QUOTAS.items()}
    if role_limit is not None:
        limits["iam_roles"] = role_limit
    return Capacity(env, fixed, per_model, limits)


def templates_of(paths: Mapping[str, Path]) -> dict[str, dict]:
    return {name: json.loads(Path(path).read_text()) for name, path in paths.items()}

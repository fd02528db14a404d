"""What a model may cost, as code: a monthly AWS Budget and a Cost Anomaly Detection monitor on the model's
`mlops:model` tag, both alerting the model's notification topic.

The tag is on every resource of the model stack (stacks/app_builder.py) and on what the pipeline creates at run
time (training jobs, SageMaker models, endpoint configs and endpoints), so one tag covers the model's spend. Budgets
and Cost Anomaly Detection see a tag only once it is activated as a cost allocation tag in the payer account
(docs/cost.md). In an account that hosts several environments of one model, the filter covers all of them: the
resources created at run time carry the model tag only.
"""

from __future__ import annotations

import json

from aws_cdk import Aws, Stack, aws_budgets as budgets, aws_ce as ce, aws_iam as iam, aws_sns as sns
from constructs import Construct

from pipelines import naming
from pipelines.spec import ModelSpec

COST_TAG = "mlops:model"
# (notification type, percent of the budget): warn early on actual spend, and when the month is forecast to exceed it.
ALERTS = (("ACTUAL", 80), ("ACTUAL", 100), ("FORECASTED", 100))


def tag_filter(model: str) -> dict[str, list[str]]:
    """Budgets' CostFilters form of a user tag: TagKeyValue 'user:<key>$<value>'."""
    return {"TagKeyValue": [f"user:{COST_TAG}${model}"]}


def monitor_specification(model: str) -> str:
    """A custom anomaly monitor over one cost allocation tag value (Cost Explorer Expression, as a JSON string)."""
    return json.dumps({"Tags": {"Key": COST_TAG, "Values": [model], "MatchOptions": ["EQUALS"]}})


def threshold_expression(usd: float) -> str:
    """Alert on anomalies whose total impact is at least usd."""
    return json.dumps({"Dimensions": {"Key": "ANOMALY_TOTAL_IMPACT_ABSOLUTE", "MatchOptions": ["GREATER_THAN_OR_EQUAL"],
                                      "Values": [f"{usd:g}"]}})


class ModelBudget(Construct):
    """The spec's cost block (cost.monthly_budget_usd, cost.anomaly_threshold_usd) as a budget and an anomaly monitor
    publishing to `topic`; the topic's policy lets budgets.amazonaws.com and costalerts.amazonaws.com publish for this
    account only (their use of the topic's KMS key is granted in the key policy, stacks/constructs/storage.py)."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, env_name: str, topic: sns.ITopic) -> None:
        super().__init__(scope, construct_id)
        name = naming.model_stack(spec.name, env_name)
        subscriber = budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=topic.topic_arn)
        self.budget = budgets.CfnBudget(
            self, "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=name, budget_type="COST", time_unit="MONTHLY", cost_filters=tag_filter(spec.name),
                budget_limit=budgets.CfnBudget.SpendProperty(amount=spec.cost.monthly_budget_usd, unit="USD")),
            notifications_with_subscribers=[budgets.CfnBudget.NotificationWithSubscribersProperty(
                notification=budgets.CfnBudget.NotificationProperty(
                    notification_type=kind, comparison_operator="GREATER_THAN", threshold=percent,
                    threshold_type="PERCENTAGE"),
                subscribers=[subscriber]) for kind, percent in ALERTS])
        self._allow_publish(topic, "budgets", {"ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:budgets::{Stack.of(self).account}:*"}})
        self.monitor = self.subscription = None
        if spec.cost.anomaly_threshold_usd is not None:
            self.monitor = ce.CfnAnomalyMonitor(self, "AnomalyMonitor", monitor_name=name, monitor_type="CUSTOM",
                                                monitor_specification=monitor_specification(spec.name))
            self.subscription = ce.CfnAnomalySubscription(
                self, "AnomalySubscription", subscription_name=name, frequency="IMMEDIATE",  # SNS needs IMMEDIATE
                monitor_arn_list=[self.monitor.attr_monitor_arn],
                subscribers=[ce.CfnAnomalySubscription.SubscriberProperty(type="SNS", address=topic.topic_arn)],
                threshold_expression=threshold_expression(spec.cost.anomaly_threshold_usd))
            self._allow_publish(topic, "costalerts", {})

    def _allow_publish(self, topic: sns.ITopic, service: str, conditions: dict) -> None:
        """AWS Cost Management user guide, "Creating an Amazon SNS topic for budget notifications" / "... for anomaly
        notifications": the service principal may publish, for this account (aws:SourceAccount) only."""
        topic.add_to_resource_policy(iam.PolicyStatement(
            sid=f"Allow{service.title()}Publish", principals=[iam.ServicePrincipal(f"{service}.amazonaws.com")],
            actions=["sns:Publish"], resources=[topic.topic_arn],
            conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}, **conditions}))


def grant_price_list_read(role: iam.IRole) -> None:
    """pricing:GetProducts for a function that prices the spec at run time (the approval request's cost table); the
    Price List API has no resource-level permissions, so '*' is its only resource."""
    role.add_to_principal_policy(iam.PolicyStatement(actions=["pricing:GetProducts"], resources=["*"]))

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

COST_TAG = naming.MODEL_TAG
# The environment subscription's floor: every anomaly of at least this impact reaches the router, which applies each
# model's own cost.anomaly_threshold_usd (the spec's least).
ROUTED_FROM_USD = 0.01
# (notification type, percent of the budget): warn early on actual spend, and when the month is forecast to exceed it.
ALERTS = (("ACTUAL", 80), ("ACTUAL", 100), ("FORECASTED", 100))


def tag_filter(model: str) -> dict[str, list[str]]:
    """Budgets' CostFilters form of a user tag: TagKeyValue 'user:<key>$<value>'."""
    return {"TagKeyValue": [f"user:{COST_TAG}${model}"]}


def monitor_specification() -> str:
    """The environment's anomaly monitor: dimensional on the model tag, so each model's spend is evaluated on its own
    (Cost Explorer API, AnomalyMonitor: "Amazon Web Services managed monitors automatically track up to the top 5,000
    values by cost within a dimension of your choosing. Each dimension value is evaluated independently")."""
    return json.dumps({"Tags": {"Key": COST_TAG}})


def threshold_expression(usd: float) -> str:
    """Alert on anomalies whose total impact is at least usd."""
    return json.dumps({"Dimensions": {"Key": "ANOMALY_TOTAL_IMPACT_ABSOLUTE", "MatchOptions": ["GREATER_THAN_OR_EQUAL"],
                                      "Values": [f"{usd:g}"]}})


class ModelBudget(Construct):
    """The spec's monthly budget (cost.monthly_budget_usd) publishing to `topic`; the topic's policy lets
    budgets.amazonaws.com publish for this account only (its use of the topic's KMS key is granted in the key policy,
    stacks/constructs/storage.py). Anomalies: CostAnomalyRouting, one monitor for the environment."""

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
        allow_publish(self, topic, "budgets", {"ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:budgets::{Stack.of(self).account}:*"}})


def allow_publish(scope: Construct, topic: sns.ITopic, service: str, conditions: dict) -> None:
    """AWS Cost Management user guide, "Creating an Amazon SNS topic for budget notifications" / "... for anomaly
    notifications": the service principal may publish, for this account (aws:SourceAccount) only."""
    topic.add_to_resource_policy(iam.PolicyStatement(
        sid=f"Allow{service.title()}Publish", principals=[iam.ServicePrincipal(f"{service}.amazonaws.com")],
        actions=["sns:Publish"], resources=[topic.topic_arn],
        conditions={"StringEquals": {"aws:SourceAccount": Stack.of(scope).account}, **conditions}))


class CostAnomalyRouting(Construct):
    """One Cost Anomaly Detection monitor for the environment (not one a model: an account holds few, quotas in
    docs/architecture.md), its IMMEDIATE subscription to the environment's anomaly topic, and the router function
    (lambdas/cost/handlers.py) that sends each anomaly to its model's topic when it reaches the model's threshold."""

    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, key, platform_topic: sns.ITopic,
                 failures) -> None:
        from aws_cdk import aws_sns_subscriptions as subscriptions

        from stacks.constructs.control_plane import ModelScopedFunction

        super().__init__(scope, construct_id)
        name = naming.cost_anomaly_topic(env_name)
        self.topic = sns.Topic(self, "Topic", topic_name=name, master_key=key, enforce_ssl=True)
        allow_publish(self, self.topic, "costalerts", {})
        self.monitor = ce.CfnAnomalyMonitor(self, "Monitor", monitor_name=name, monitor_type="DIMENSIONAL",
                                            monitor_dimension="TAG", monitor_specification=monitor_specification())
        self.subscription = ce.CfnAnomalySubscription(
            self, "Subscription", subscription_name=name, frequency="IMMEDIATE",  # SNS needs IMMEDIATE
            monitor_arn_list=[self.monitor.attr_monitor_arn],
            subscribers=[ce.CfnAnomalySubscription.SubscriberProperty(type="SNS", address=self.topic.topic_arn)],
            threshold_expression=threshold_expression(ROUTED_FROM_USD))
        self.router = ModelScopedFunction(
            self, "Router", handler="lambdas.cost.handlers.handler", key=key, env_name=env_name,
            environment={"PLATFORM_TOPIC_ARN": platform_topic.topic_arn},
            description="Sends each cost anomaly to its model's topic, at the model's threshold")
        self.router.grant_publish_to_model_topic()
        platform_topic.grant_publish(self.router.role)
        key.grant(self.router.role, "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic.add_subscription(subscriptions.LambdaSubscription(self.router.function))
        failures.keep_failures_of(self.router.function)


def grant_price_list_read(role: iam.IRole) -> None:
    """pricing:GetProducts for a function that prices the spec at run time (the approval request's cost table); the
    Price List API has no resource-level permissions, so '*' is its only resource."""
    role.add_to_principal_policy(iam.PolicyStatement(actions=["pricing:GetProducts"], resources=["*"]))

"""Budgets and cost-anomaly alerts as code (stacks/constructs/budgets.py), the key and topic policies they need,
and the approval request's Price List permission."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from lambdas.shared import cost
from stacks.constructs.schedules import spread
from stacks.nag import RESOURCE_STAR_ACTIONS, wildcard_findings
from stacks.nag_rules import star_only_actions_scoped
from tests.infrastructure.conftest import template_of


@pytest.fixture(scope="module")
def model(dev_app):
    return template_of(dev_app, "mlops-dev-churn")


@pytest.fixture(scope="module")
def registry(dev_app):
    return template_of(dev_app, "mlops-dev-registry").to_json()


def _topic_ref(model) -> dict:
    (logical,) = [name for name, resource in model.find_resources("AWS::SNS::Topic").items()
                  if resource["Properties"].get("TopicName") == "churn-dev-notifications"]
    return {"Ref": logical}


def test_monthly_budget_filters_on_the_model_tag_and_alerts_the_topic_at_80_and_100_percent(model):
    topic = _topic_ref(model)
    subscriber = [{"SubscriptionType": "SNS", "Address": topic}]
    model.has_resource_properties("AWS::Budgets::Budget", {
        "Budget": {"BudgetName": "mlops-dev-churn", "BudgetType": "COST", "TimeUnit": "MONTHLY",
                   "BudgetLimit": {"Amount": 500, "Unit": "USD"},
                   "CostFilters": {"TagKeyValue": ["user:mlops:model$churn"]}},
        "NotificationsWithSubscribers": [
            {"Notification": {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "Threshold": 80,
                              "ThresholdType": "PERCENTAGE"}, "Subscribers": subscriber},
            {"Notification": {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "Threshold": 100,
                              "ThresholdType": "PERCENTAGE"}, "Subscribers": subscriber},
            {"Notification": {"NotificationType": "FORECASTED", "ComparisonOperator": "GREATER_THAN", "Threshold": 100,
                              "ThresholdType": "PERCENTAGE"}, "Subscribers": subscriber}]})


def test_the_first_budget_alert_is_the_one_mlops_cost_warns_about(model):
    (budget,) = model.find_resources("AWS::Budgets::Budget").values()
    first = min(n["Notification"]["Threshold"] for n in budget["Properties"]["NotificationsWithSubscribers"])
    assert first / 100 == cost.BUDGET_FIRST_ALERT


@pytest.fixture(scope="module")
def control(dev_app):
    return template_of(dev_app, "mlops-dev-control")


def _anomaly_topic_ref(control) -> dict:
    (logical,) = [name for name, resource in control.find_resources("AWS::SNS::Topic").items()
                  if resource["Properties"].get("TopicName") == "mlops-dev-cost-anomalies"]
    return {"Ref": logical}


def test_one_anomaly_monitor_per_environment_evaluates_each_models_tag_value_on_its_own(control, model):
    (monitor_id, monitor), = control.find_resources("AWS::CE::AnomalyMonitor").items()
    assert (monitor["Properties"]["MonitorType"], monitor["Properties"]["MonitorDimension"]) == ("DIMENSIONAL", "TAG")
    assert json.loads(monitor["Properties"]["MonitorSpecification"]) == {"Tags": {"Key": "mlops:model"}}
    (subscription,) = control.find_resources("AWS::CE::AnomalySubscription").values()
    properties = subscription["Properties"]
    assert properties["Frequency"] == "IMMEDIATE"  # the only frequency an SNS subscriber may have
    assert properties["MonitorArnList"] == [{"Fn::GetAtt": [monitor_id, "MonitorArn"]}]
    assert properties["Subscribers"] == [{"Type": "SNS", "Address": _anomaly_topic_ref(control)}]
    assert json.loads(properties["ThresholdExpression"]) == {"Dimensions": {
        "Key": "ANOMALY_TOTAL_IMPACT_ABSOLUTE", "MatchOptions": ["GREATER_THAN_OR_EQUAL"], "Values": ["0.01"]}}
    model.resource_count_is("AWS::CE::AnomalyMonitor", 0)
    model.resource_count_is("AWS::CE::AnomalySubscription", 0)


def test_the_anomaly_topic_feeds_the_router_and_only_cost_anomaly_detection_publishes_to_it(control):
    topic = _anomaly_topic_ref(control)
    (subscription,) = [s for s in control.find_resources("AWS::SNS::Subscription").values()
                       if s["Properties"]["TopicArn"] == topic]
    assert subscription["Properties"]["Protocol"] == "lambda"
    assert subscription["Properties"]["Endpoint"]["Fn::GetAtt"][0].startswith("CostAnomaliesRouterHandlerFunction")
    (policy,) = [p for p in control.find_resources("AWS::SNS::TopicPolicy").values() if p["Properties"]["Topics"] == [topic]]
    statement = _statement(policy["Properties"]["PolicyDocument"]["Statement"], "costalerts")
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "111111111111"}


def _statement(statements: list[dict], service: str) -> dict:
    (found,) = [s for s in statements if s.get("Principal") == {"Service": f"{service}.amazonaws.com"}]
    return found


def test_the_model_topic_policy_lets_budgets_publish_for_this_account_only(model):
    (policy,) = [p for p in model.find_resources("AWS::SNS::TopicPolicy").values()
                 if p["Properties"]["Topics"] == [_topic_ref(model)]]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    budgets = _statement(statements, "budgets")
    assert budgets["Effect"] == "Allow" and budgets["Action"] == "sns:Publish"
    assert budgets["Resource"] == _topic_ref(model)
    assert budgets["Condition"]["StringEquals"] == {"aws:SourceAccount": "111111111111"}
    assert budgets["Condition"]["ArnLike"] == {"aws:SourceArn": {"Fn::Join": ["", [
        "arn:", {"Ref": "AWS::Partition"}, ":budgets::111111111111:*"]]}}
    assert not [s for s in statements if s.get("Principal") == {"Service": "costalerts.amazonaws.com"}]


def test_key_policy_lets_both_services_use_the_topic_key_for_this_account_only(registry):
    (key,) = [r for r in registry["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    for service in ("budgets", "costalerts"):
        statement = _statement(statements, service)
        assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "111111111111"}
    assert _statement(statements, "budgets")["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1][-1] \
        == ":budgets::111111111111:*"


def test_only_the_approval_request_function_may_read_the_price_list_and_only_on_star(model, control):
    granted = [(logical, statement) for template in (model, control)
               for logical, policy in template.find_resources("AWS::IAM::Policy").items()
               for statement in policy["Properties"]["PolicyDocument"]["Statement"]
               if "pricing:GetProducts" in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])]
    assert [logical.startswith("ApprovalRequestScopedRole") for logical, _ in granted] == [True]
    assert granted[0][1]["Resource"] == "*"  # acting for the model: the Price List has no resource-level permissions


def test_price_list_on_star_is_a_reviewed_wildcard_and_a_scoped_grant_is_a_finding():
    allowed = {"Statement": [{"Effect": "Allow", "Action": "pricing:GetProducts", "Resource": "*"}]}
    assert wildcard_findings(allowed) == {"Resource::*": RESOURCE_STAR_ACTIONS["pricing:GetProducts"]}
    scoped = {"Properties": {"PolicyDocument": {"Statement": [{
        "Effect": "Allow", "Action": ["pricing:GetProducts"], "Resource": "arn:aws:pricing:::product/AmazonSageMaker"}]}}}
    assert star_only_actions_scoped(None, None, scoped) == ["pricing:GetProducts"]


def test_cost_model_stores_captures_as_long_as_the_bucket_lifecycle_keeps_them(registry):
    (bucket,) = [r for r in registry["Resources"].values() if r["Type"] == "AWS::S3::Bucket"
                 and r["Properties"].get("BucketName", "").startswith("mlops-dev-artifacts-")]
    rules = {rule["Id"]: rule for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    capture = rules["age-data-capture"]
    assert capture["Transitions"] == [{"StorageClass": "STANDARD_IA", "TransitionInDays": cost.CAPTURE_STANDARD_DAYS}]
    assert capture["ExpirationInDays"] == cost.CAPTURE_EXPIRY_DAYS
    assert rules["expire-old-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == cost.NONCURRENT_DAYS


def test_cost_model_prices_the_scheduled_functions_as_synthesized(model, control):
    functions = model.find_resources("AWS::Lambda::Function")
    drift = [f for logical, f in control.find_resources("AWS::Lambda::Function").items()
             if logical.startswith("DriftChecks")]
    reconciler = [f for logical, f in control.find_resources("AWS::Lambda::Function").items()
                  if logical.startswith("ApprovalRepair")]
    assert [f["Properties"]["MemorySize"] for f in drift] == [cost.DRIFT_FUNCTION_MB]
    assert [f["Properties"].get("MemorySize", 128) for f in reconciler] == [cost.RECONCILER_MB]
    schedules = model.find_resources("AWS::Scheduler::Schedule", {"Properties": {"Description": "Approval repair of churn"}})
    # the priced rate, placed at the model's own minutes (stacks/constructs/schedules.py)
    assert [r["Properties"]["ScheduleExpression"] for r in schedules.values()] == [
        spread(cost.RECONCILE_SCHEDULE, "dev/churn", "reconcile").expression]


def test_a_model_budget_is_the_spec_amount_and_only_budgets_may_publish_to_its_topic():
    import aws_cdk as cdk
    from aws_cdk import aws_sns as sns

    from pipelines.spec import load_spec
    from stacks.constructs.budgets import ModelBudget
    from tests.conftest import REPO_ROOT

    spec = load_spec(REPO_ROOT / "pipelines/churn/model.yaml", {"cost": {"anomaly_threshold_usd": None,
                                                                         "monthly_budget_usd": 120.5}})
    stack = cdk.Stack(cdk.App(), "Tiny", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    ModelBudget(stack, "Budget", spec=spec, env_name="dev", topic=sns.Topic(stack, "Topic"))
    template = cdk.assertions.Template.from_stack(stack)
    template.resource_count_is("AWS::CE::AnomalyMonitor", 0)
    template.has_resource_properties("AWS::Budgets::Budget", {"Budget": Match.object_like(
        {"BudgetLimit": {"Amount": 120.5, "Unit": "USD"}})})
    (policy,) = template.find_resources("AWS::SNS::TopicPolicy").values()
    principals = [s["Principal"]["Service"] for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    assert principals == ["budgets.amazonaws.com"]

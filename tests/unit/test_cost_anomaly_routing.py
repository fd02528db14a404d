"""The control plane's cost-anomaly router (lambdas/cost): which model an environment-wide anomaly belongs to, and
whether its owners hear of it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lambdas.cost import logic
from lambdas.cost.models import Anomaly
from pipelines.model_record import ModelRecord
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT

# The SNS message of an IMMEDIATE subscription, as AWS's user guide shows it (values ours).
SNS_MESSAGE = {
    "accountId": "111111111111", "anomalyId": "a-1", "anomalyStartDate": "2026-12-01T00:00:00Z",
    "anomalyEndDate": "2026-12-03T00:00:00Z", "dimensionalValue": "churn",
    "anomalyDetailsLink": "https://console.aws.amazon.com/cost-management/home#/anomaly-detection/a-1",
    "impact": {"maxImpact": 40, "totalActualSpend": 160.5, "totalExpectedSpend": 40.25, "totalImpact": 120.25,
               "totalImpactPercentage": 298.8},
    "rootCauses": [{"service": "Amazon SageMaker", "region": "eu-west-1", "usageType": "EU-Train:ml.g5.xlarge",
                    "linkedAccount": "111111111111"}],
    "monitorArn": "arn:aws:ce::111111111111:anomalymonitor/m-1", "subscriptionName": "mlops-dev-cost-anomalies"}


def record(threshold: float | None = 50) -> ModelRecord:
    spec = load_spec(REPO_ROOT / "pipelines/churn/model.yaml", {"cost": {"anomaly_threshold_usd": threshold}})
    return ModelRecord(model="churn", env="dev", spec=spec, settings={"NOTIFICATION_TOPIC_ARN": "arn:topic"})


@pytest.mark.parametrize("value, model", [("churn", "churn"), ("mlops:model$churn", "churn"),
                                          ("user:mlops:model$churn", "churn"), ("mlops:model$", None),
                                          ("", None), ("Churn Team", None), ("x", None)])
def test_the_model_is_the_tag_value_however_cost_explorer_writes_it(value, model):
    assert logic.model_of(value) == model


def test_the_eventbridge_detail_names_the_dimension_as_the_sns_message_does():
    detail = {**SNS_MESSAGE, "dimensionValue": SNS_MESSAGE["dimensionalValue"]}
    del detail["dimensionalValue"]
    assert Anomaly.model_validate(detail).dimension_value == Anomaly.model_validate(SNS_MESSAGE).dimension_value == "churn"


def test_an_anomaly_at_the_models_threshold_goes_to_the_model_and_one_below_it_to_nobody():
    anomaly = Anomaly.model_validate(SNS_MESSAGE)
    assert logic.route(anomaly, "churn", record(threshold=120.25), "dev").to == "model"
    below = logic.route(anomaly, "churn", record(threshold=120.26), "dev")
    assert below.to == "none" and "below churn's threshold $120.26" in below.reason


def test_a_model_that_turned_alerts_off_is_not_told():
    routing = logic.route(Anomaly.model_validate(SNS_MESSAGE), "churn", record(threshold=None), "dev")
    assert routing.to == "none" and "anomaly_threshold_usd: null" in routing.reason


def test_spend_no_deployed_model_owns_goes_to_the_platform_engineers():
    anomaly = Anomaly.model_validate({**SNS_MESSAGE, "dimensionalValue": "mlops:model$"})
    assert logic.route(anomaly, None, None, "dev").to == "platform"
    gone = logic.route(Anomaly.model_validate(SNS_MESSAGE), "churn", None, "dev")
    assert gone.to == "platform" and "no model named churn is deployed in dev" in gone.reason


def test_the_message_says_how_much_when_why_and_where_to_change_the_threshold():
    anomaly = Anomaly.model_validate(SNS_MESSAGE)
    subject, body = logic.message(anomaly, "churn", "dev", logic.route(anomaly, "churn", record(), "dev"))
    assert subject == "[dev] cost anomaly: churn $120.25"
    for part in ("Impact: $120.25 (actual $160.50, expected $40.25)", "2026-12-01T00:00:00Z to 2026-12-03T00:00:00Z",
                 "Cause: service Amazon SageMaker, region eu-west-1, usage type EU-Train:ml.g5.xlarge",
                 SNS_MESSAGE["anomalyDetailsLink"], "at least churn's threshold $50.00", "cost.anomaly_threshold_usd"):
        assert part in body


def test_a_message_that_is_not_an_anomaly_is_refused_naming_the_field():
    with pytest.raises(ValidationError, match="impact"):
        Anomaly.model_validate({"anomalyId": "a-1", "dimensionalValue": "churn"})

import json

import pytest

from lambdas.endpoint import logic
from pipelines.spec import DeploymentSpec


def test_canary_and_linear_policies_roll_back_on_the_endpoints_alarms():
    canary = logic.deployment_policy(DeploymentSpec(canary_percent=15, wait_minutes=3, bake_minutes=7), "e")
    assert canary["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 15}, "WaitIntervalInSeconds": 180}
    assert canary["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 420
    linear = logic.deployment_policy(DeploymentSpec(strategy="linear", linear_step_percent=25), "e")
    assert linear["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["LinearStepSize"]["Value"] == 25
    assert [a["AlarmName"] for a in linear["AutoRollbackConfiguration"]["Alarms"]] == ["e-5xx-rate", "e-p99-latency"]


def test_serverless_endpoints_get_a_serverless_variant_and_shift_all_at_once():
    spec = DeploymentSpec(serverless={"memory_mb": 3072, "max_concurrency": 8})
    config = logic.endpoint_config({"model": "m", "config": "c"}, spec, "s3://b/data-capture", "k", [])
    assert config["ProductionVariants"][0]["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 8}
    assert "KmsKeyId" not in config and config["DataCaptureConfig"]["KmsKeyId"] == "k"
    assert logic.deployment_policy(spec, "e")["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"


@pytest.mark.parametrize(("status", "body", "message"), [
    (500, b"boom", "HTTP 500"),
    (200, b"<html>", "not {'predictions'"),
    (200, json.dumps({"predictions": [{"probability": 0.5}]}).encode(), "1 predictions for 2 rows"),
    (200, json.dumps({"predictions": [{"probability": 1.5}, {"probability": 0.1}]}).encode(), "not probabilities"),
])
def test_smoke_test_verdicts_name_what_is_wrong(status, body, message):
    with pytest.raises(logic.SmokeTestFailed, match=message):
        logic.judge_smoke_test(status, body, 2, 10.0, 1000.0)


def test_a_slow_endpoint_fails_the_smoke_test():
    body = json.dumps({"predictions": [{"probability": 0.2}, {"probability": 0.4}]}).encode()
    assert logic.judge_smoke_test(200, body, 2, 10.0, 1000.0)["mean_probability"] == 0.3
    with pytest.raises(logic.SmokeTestFailed, match="over the 1000 ms"):
        logic.judge_smoke_test(200, body, 2, 1500.0, 1000.0)

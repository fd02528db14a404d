import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from lambdas.drift import baseline, handler
from lambdas.drift.capture import capture_record
from tests.integration.conftest import BUCKET, SPEC, FakeContext, act_as_control_plane, serve_in_production
from tests.support.sagemaker_layout import make_dataset

NOW = datetime(2026, 11, 22, 12, 30, tzinfo=timezone.utc)
CAPTURE = "data-capture/churn-dev-prod/AllTraffic"


def rows(count: int, seed: int, shift: float = 0.0) -> list[dict]:
    columns = make_dataset.generate(count, seed, shift)
    names = [c for c in make_dataset.COLUMNS if c != make_dataset.LABEL]
    return [dict(zip(names, values)) for values in zip(*(columns[n].tolist() for n in names))]


def put_capture(records: list[str], hour: datetime, name: str = "part.jsonl") -> None:
    key = f"{CAPTURE}/{hour:%Y/%m/%d/%H}/{name}"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body="\n".join(records).encode())


def capture(requests: list[list[dict]], hour: datetime = NOW - timedelta(hours=1)) -> None:
    put_capture([json.dumps(capture_record(r, hour, f"e{i}")) for i, r in enumerate(requests)], hour)


@pytest.fixture
def drift_platform(platform, monkeypatch):
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(TableName="mlops-dev-audit", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    monkeypatch.setenv("AUDIT_TABLE", "mlops-dev-audit")
    monkeypatch.setenv("CAPTURE_PREFIX", CAPTURE)
    training = make_dataset.generate(5000, 7)
    statistics, constraints = baseline.compute(training, SPEC.dataset.features, SPEC.dataset.categorical)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key="runs/churn/r1/baseline/statistics.json", Body=json.dumps(statistics).encode())
    s3.put_object(Bucket=BUCKET, Key="runs/churn/r1/baseline/constraints.json", Body=json.dumps(constraints).encode())
    sagemaker = boto3.client("sagemaker")
    arn = sagemaker.create_model_package(
        ModelPackageGroupName="churn-dev", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz"}],
                                "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
        DriftCheckBaselines={"ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/runs/churn/r1/baseline/statistics.json"},
            "Constraints": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/runs/churn/r1/baseline/constraints.json"}}},
    )["ModelPackageArn"]
    serve_in_production(arn)
    return {**platform, "champion": arn}


def invoke(when: datetime = NOW) -> dict:
    """The drift schedule's input, as Scheduler sends it (stacks/model_stack.py), to the control plane's check."""
    with pytest.MonkeyPatch.context() as patch:
        act_as_control_plane(patch)
        event = {"model": "churn", "scheduled_time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "execution_id": "exec-1"}
        return handler.handler(event, FakeContext())


def executions(platform) -> list[dict]:
    return boto3.client("stepfunctions").list_executions(stateMachineArn=platform["state_machine"])["executions"]


def test_shifted_traffic_is_reported_and_starts_one_retraining_then_the_cooldown_holds(drift_platform):
    capture([rows(50, seed=100 + i, shift=1.0) for i in range(20)])
    result = invoke()
    assert result["drift"] and result["retrain"], result["reason"]
    assert {"contract", "tenure_months"} <= set(result["drifted_features"])
    (execution,) = executions(drift_platform)
    document = json.loads(boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])["input"])
    assert document["trigger"] == "drift" and "report s3://" in document["reason"]
    html = boto3.client("s3").get_object(Bucket=BUCKET, Key=result["html_report_uri"].split(BUCKET + "/")[1])["Body"].read().decode()
    assert "Verdict: <strong>DRIFT</strong>" in html and "<svg" in html

    boto3.client("stepfunctions").stop_execution(executionArn=execution["executionArn"])
    again = invoke(NOW + timedelta(hours=1))
    assert again["drift"] and not again["retrain"] and "cooldown" in again["reason"]
    assert len(executions(drift_platform)) == 1


def test_traffic_like_the_training_data_is_not_drift(drift_platform):
    capture([rows(50, seed=200 + i) for i in range(20)])
    result = invoke()
    assert not result["drift"] and not result["retrain"]
    assert executions(drift_platform) == []


def test_an_empty_window_is_reported_and_never_retrains(drift_platform):
    result = invoke()
    assert not result["retrain"] and "no captured requests" in result["reason"]
    report = json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key=result["report_uri"].split(BUCKET + "/")[1])["Body"].read())
    assert "the window holds no captured requests" in report["blocking"]


def test_malformed_lines_are_skipped_and_quoted_and_schema_mismatch_never_retrains(drift_platform):
    hour = NOW - timedelta(hours=2)
    shifted = [dict((k, v) for k, v in row.items() if k != "contract") for row in rows(1000, seed=5, shift=1.0)]
    good = [json.dumps(capture_record(shifted[i:i + 50], hour, str(i))) for i in range(0, 1000, 50)]
    put_capture(good + ["{not json", '{"captureData": {}}'], hour)
    result = invoke()
    assert not result["retrain"]
    assert "schema mismatch: captured requests never carry ['contract']" in result["reason"]
    report = json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key=result["report_uri"].split(BUCKET + "/")[1])["Body"].read())
    assert any("2 of 22 capture lines were malformed" in p for p in report["problems"])
    assert executions(drift_platform) == []


def test_nothing_served_in_production_means_nothing_to_compare(platform, monkeypatch):
    monkeypatch.setenv("AUDIT_TABLE", "unused")
    monkeypatch.setenv("CAPTURE_PREFIX", CAPTURE)
    assert invoke()["reason"] == "production serves no model package (no baseline) yet"


def test_an_approved_package_that_production_does_not_serve_is_not_the_baseline(drift_platform):
    # e.g. a package whose release failed after approval: the traffic is still scored by the one production serves
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package(
        ModelPackageGroupName="churn-dev", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/m2.tar.gz"}],
                                "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
        DriftCheckBaselines={"ModelDataQuality": {"Statistics": {"ContentType": "application/json",
                                                                 "S3Uri": f"s3://{BUCKET}/missing/statistics.json"}}})
    from lambdas.drift.handler import champion_baseline
    from lambdas.shared import dal
    statistics, champion, _ = champion_baseline(dal.ModelRegistry("churn-dev"))
    assert champion == drift_platform["champion"] and statistics


def test_a_run_in_progress_is_its_own_reason_and_does_not_spend_the_cooldown(drift_platform):
    manual = boto3.client("stepfunctions").start_execution(stateMachineArn=drift_platform["state_machine"], name="manual-1",
                                                           input=json.dumps({"model": "churn", "trigger": "manual"}))
    capture([rows(50, seed=100 + i, shift=1.0) for i in range(20)])
    busy = invoke()
    assert busy["drift"] and not busy["retrain"] and busy["execution_arn"] is None
    assert "a run is in progress" in busy["reason"] and "cooldown" in busy["reason"] and "None" not in busy["reason"]

    boto3.client("stepfunctions").stop_execution(executionArn=manual["executionArn"])
    capture([rows(50, seed=200 + i, shift=1.0) for i in range(20)], NOW + timedelta(minutes=30))
    later = invoke(NOW + timedelta(hours=1))
    assert later["retrain"] and "retraining started (arn:" in later["reason"], later["reason"]


def test_the_hook_reads_the_champions_constraints_json(drift_platform):
    from lambdas.drift.handler import champion_baseline
    from lambdas.shared import dal
    statistics, champion, constraints = champion_baseline(dal.ModelRegistry("churn-dev"))
    assert champion == drift_platform["champion"]
    assert {f["name"] for f in constraints["features"]} == set(SPEC.dataset.features)

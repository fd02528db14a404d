"""The scheduled quality check (lambdas/quality/handler.py) against moto: a window's captured predictions joined to
the labels that arrived for them, judged against the champion's evaluation; a drop tells the owners and starts one
retraining through the model's cooldown (drift's), a clean window stays quiet, and the report says why either way."""

import json
from datetime import datetime, timedelta, timezone

import boto3
import numpy as np
import pytest

from lambdas.quality import handler, labels
from pipelines.spec import QualitySpec
from tests.integration.conftest import BUCKET, FakeContext, act_as_control_plane, serve_in_production

CAPTURE = "data-capture/churn-dev-prod/AllTraffic"
BASELINE_AUC = 0.9
SPEC_QUALITY = QualitySpec()  # churn's: its spec leaves the quality section at its defaults


def checked_at() -> datetime:
    """Labels arrive at S3's own clock (LastModified): the check runs just after them."""
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=1)


def window_middle(now: datetime) -> datetime:
    spec_quality = handler.logic.scheduled_window(now, SPEC_QUALITY)
    return spec_quality.start + (spec_quality.end - spec_quality.start) / 2


def captured_requests(when: datetime, count: int, seed: int) -> tuple[list[str], dict[str, str]]:
    """count requests of 10 rows scored well (probability follows the truth): capture lines, and the true labels."""
    rng, lines, truth = np.random.default_rng(seed), [], {}
    for request in range(count):
        request_id = f"req{seed}-{request}"
        actual = rng.integers(0, 2, 10)
        probability = np.clip(actual * 0.45 + rng.uniform(0.05, 0.55, 10), 0, 1)
        predictions = [{"label": int(p >= 0.5), "probability": float(p)} for p in probability]
        answer = {"predictions": predictions, "model": "churn", "inference_id": request_id}
        lines.append(json.dumps({
            "captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                              "data": "{}", "encoding": "JSON"},
                            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                               "data": json.dumps(answer), "encoding": "JSON"}},
            "eventMetadata": {"eventId": f"e-{request_id}", "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "eventVersion": "0"}))
        truth.update({f"{request_id}:{row}": str(value) for row, value in enumerate(actual)})
    key = f"{CAPTURE}/{when:%Y/%m/%d/%H}/part-{seed}.jsonl"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body="\n".join(lines).encode())
    return lines, truth


def put_labels(truth: dict[str, str]) -> None:
    key = labels.ground_truth_key("churn", datetime.now(timezone.utc), f"batch-{len(truth)}")
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=labels.ground_truth_jsonl(truth).encode())


def flipped(truth: dict[str, str], share: float, seed: int = 3) -> dict[str, str]:
    """The world changed: a share of the answers are now the other one."""
    rng = np.random.default_rng(seed)
    return {k: (str(1 - int(v)) if rng.uniform() < share else v) for k, v in truth.items()}


@pytest.fixture
def quality_platform(platform, monkeypatch):
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(TableName="mlops-dev-audit", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                {"AttributeName": "sk", "AttributeType": "S"}])
    monkeypatch.setenv("AUDIT_TABLE", "mlops-dev-audit")
    monkeypatch.setenv("CAPTURE_PREFIX", CAPTURE)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key="runs/churn/r1/evaluation.json",
                  Body=json.dumps({"metrics": {"validation:auc": BASELINE_AUC, "validation:accuracy": 0.82}}).encode())
    arn = boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName="churn-dev", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                      "S3Uri": f"s3://{BUCKET}/runs/churn/r1/evaluation.json"}}},
    )["ModelPackageArn"]
    released_days_ago(arn, 30)
    serve_in_production(arn)
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="owners")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=platform["topic"], Protocol="sqs", Endpoint=queue_arn)
    return {**platform, "champion": arn, "owners": queue}


def released_days_ago(arn: str, days: int) -> None:
    """moto stamps a package with the real clock: this one was created and released `days` ago."""
    from moto.sagemaker.models import sagemaker_backends

    package = next(p for p in sagemaker_backends["123456789012"]["us-east-1"].model_packages.values()
                   if p.arn == arn)
    package.creation_time = package.last_modified_time = datetime.now(timezone.utc) - timedelta(days=days)


def invoke(when: datetime) -> dict:
    """The quality schedule's input, as Scheduler sends it (stacks/model_stack.py), to the control plane's check."""
    with pytest.MonkeyPatch.context() as patch:
        act_as_control_plane(patch)
        event = {"model": "churn", "scheduled_time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "execution_id": "exec-q"}
        return handler.handler(event, FakeContext())


def executions(platform) -> list[dict]:
    return boto3.client("stepfunctions").list_executions(stateMachineArn=platform["state_machine"])["executions"]


def owners_heard(platform) -> list[str]:
    messages = boto3.client("sqs").receive_message(QueueUrl=platform["owners"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"])["Subject"] for m in messages.get("Messages", [])]


def read(uri: str):
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=uri.split(f"{BUCKET}/", 1)[1])["Body"].read()
    return json.loads(body) if uri.endswith(".json") else body.decode()


def test_a_clean_window_stays_quiet_and_says_so(quality_platform):
    now = checked_at()
    _, truth = captured_requests(window_middle(now), 40, seed=1)
    put_labels(truth)
    result = invoke(now)
    assert result["decision"] in ("within_tolerance", "not_significant"), result["reason"]
    assert not result["retrain"] and result["execution_arn"] is None and executions(quality_platform) == []
    assert result["labels"]["joined"] == 400 and result["coverage"]["ratio"] == 1.0
    assert owners_heard(quality_platform) == []
    report = read(result["report_uri"])
    assert report["champion"] == quality_platform["champion"] and report["baseline"] == BASELINE_AUC
    assert read(result["report_uri"].replace("report.json", "statistics.json"))["binary_classification_metrics"]["auc"]


def test_a_label_driven_drop_tells_the_owners_and_starts_one_retraining_then_the_cooldown_holds(quality_platform):
    now = checked_at()
    _, truth = captured_requests(window_middle(now), 40, seed=2)
    put_labels(flipped(truth, 0.5))
    result = invoke(now)
    assert result["decision"] == "drop" and result["retrain"], result["reason"]
    (execution,) = executions(quality_platform)
    document = json.loads(boto3.client("stepfunctions").describe_execution(
        executionArn=execution["executionArn"])["input"])
    assert document["trigger"] == "quality" and document["requested_by"] == "quality-hook"
    assert "auc dropped" in document["reason"] and "report s3://" in document["reason"]
    assert owners_heard(quality_platform) == ["[dev] churn: quality dropped"]
    constraints = read(result["report_uri"].replace("report.json", "constraints.json"))
    assert constraints["binary_classification_constraints"]["auc"] == {
        "threshold": pytest.approx(BASELINE_AUC - 0.02), "comparison_operator": "LessThanThreshold"}

    boto3.client("stepfunctions").stop_execution(executionArn=execution["executionArn"])
    again = invoke(now + timedelta(minutes=1))
    assert again["decision"] == "drop" and not again["retrain"] and "cooldown" in again["reason"]
    assert len(executions(quality_platform)) == 1


def test_the_drift_checks_retraining_spends_the_same_cooldown(quality_platform):
    from lambdas.shared.dal import AuditLog

    now = checked_at()
    assert AuditLog("mlops-dev-audit").claim_cooldown("churn", int(now.timestamp()), 24 * 3600)  # drift fired first
    _, truth = captured_requests(window_middle(now), 40, seed=4)
    put_labels(flipped(truth, 0.5))
    result = invoke(now)
    assert result["decision"] == "drop" and not result["retrain"] and "cooldown" in result["reason"]
    assert executions(quality_platform) == []


def test_a_small_window_does_not_cry_wolf(quality_platform):
    now = checked_at()
    _, truth = captured_requests(window_middle(now), 5, seed=5)
    put_labels(flipped(truth, 0.5))
    result = invoke(now)
    assert result["decision"] == "insufficient_labels" and "fewer than quality.min_labels (200)" in result["reason"]
    assert executions(quality_platform) == [] and owners_heard(quality_platform) == []


def test_bad_labels_are_counted_and_the_check_goes_on(quality_platform):
    now = checked_at()
    _, truth = captured_requests(window_middle(now), 30, seed=6)
    put_labels(truth)
    key = labels.ground_truth_key("churn", datetime.now(timezone.utc), "bad")
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b'{broken\n' + labels.ground_truth_line(
        "nobody-asked", "1").encode() + b"\n" + labels.ground_truth_line("req6-0:0", "1").encode() + b"\n")
    result = invoke(now)
    counts = result["labels"]
    assert (counts["joined"], counts["malformed"], counts["unknown"], counts["duplicate"]) == (300, 1, 1, 1)


def test_a_label_folder_dated_back_does_not_make_a_label_arrive_earlier(quality_platform):
    """Arrival is S3's LastModified, not the hour folder whoever writes the labels picks."""
    now = checked_at()
    window = handler.logic.scheduled_window(now, SPEC_QUALITY)
    _, truth = captured_requests(window_middle(now), 30, seed=7)
    key = labels.ground_truth_key("churn", window.start, "backdated")
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=labels.ground_truth_jsonl(truth).encode())
    result = invoke(now - timedelta(minutes=2))  # a check scheduled before the labels were written
    assert result["labels"]["joined"] == 0


def test_nothing_served_means_nothing_to_judge(platform, monkeypatch):
    monkeypatch.setenv("AUDIT_TABLE", "unused")
    monkeypatch.setenv("CAPTURE_PREFIX", CAPTURE)
    result = invoke(checked_at())
    assert result["decision"] == "no_champion" and not result["retrain"]


def test_a_window_the_serving_version_did_not_serve_is_not_judged_against_it(quality_platform):
    """Right after a release the scheduled window (label_delay_hours ago) holds the previous version's traffic: judged
    against the new version's evaluation it would look like a drop and retrain again."""
    now = checked_at()
    _, truth = captured_requests(window_middle(now), 40, seed=8)
    put_labels(flipped(truth, 0.5))
    released_days_ago(quality_platform["champion"], 0)  # released just now
    result = invoke(now)
    assert result["decision"] == "new_champion" and not result["retrain"], result["reason"]
    assert executions(quality_platform) == [] and owners_heard(quality_platform) == []


def test_a_window_half_served_by_the_version_is_judged_from_its_release_on(quality_platform):
    now = checked_at()
    window = handler.logic.scheduled_window(now, SPEC_QUALITY)
    _, old_truth = captured_requests(window.start + timedelta(hours=1), 40, seed=9)   # the previous version's
    _, new_truth = captured_requests(window.end - timedelta(hours=1), 30, seed=10)   # this version's
    put_labels({**flipped(old_truth, 0.5), **new_truth})
    from moto.sagemaker.models import sagemaker_backends

    package = next(p for p in sagemaker_backends["123456789012"]["us-east-1"].model_packages.values()
                   if p.arn == quality_platform["champion"])
    package.last_modified_time = window.end - timedelta(hours=2)
    result = invoke(now)
    assert result["decision"] in ("within_tolerance", "not_significant"), result["reason"]
    assert result["labels"]["joined"] == 300 and result["labels"]["unknown"] == 400  # the previous version's rows


def test_a_request_of_the_releases_own_second_is_the_released_versions(quality_platform):
    """Capture names its time to the second (SageMaker's inferenceTime), the package's change to the microsecond."""
    from moto.sagemaker.models import sagemaker_backends

    now = checked_at()
    when = window_middle(now).replace(microsecond=0)
    _, truth = captured_requests(when, 25, seed=11)
    put_labels(truth)
    package = next(p for p in sagemaker_backends["123456789012"]["us-east-1"].model_packages.values()
                   if p.arn == quality_platform["champion"])
    package.last_modified_time = when + timedelta(milliseconds=600)
    result = invoke(now)
    assert result["labels"]["joined"] == 250 and result["labels"]["previous_window"] == 0, result["labels"]


def test_a_model_monitor_baseline_is_read_under_the_objectives_own_prefix(monkeypatch):
    """A team that brings Model Monitor's model-quality statistics.json as the baseline, with an objective measured on
    another channel (test:auc), gets its baseline read under that prefix: not under validation:, which would leave
    every check without a baseline."""
    from types import SimpleNamespace

    statistics = {"version": 0.0, "dataset": {"item_count": 500},
                  "binary_classification_metrics": {"auc": {"value": 0.81}, "accuracy": {"value": 0.77}}}
    package = {"ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-dev/3",
               "ModelMetrics": {"ModelQuality": {"Statistics": {"S3Uri": f"s3://{BUCKET}/baselines/statistics.json"}}}}
    spec = SimpleNamespace(metric_prefix="test:", deployment=SimpleNamespace(hosting="dedicated"))
    monkeypatch.setattr(handler, "model_spec", lambda: spec)
    monkeypatch.setattr(handler, "setting", lambda name: "churn-dev-prod")
    monkeypatch.setattr(handler.dal, "ObjectStore", lambda bucket: SimpleNamespace(read_json=lambda key: statistics))
    registry = SimpleNamespace(champion=lambda target, hosting: package)
    champion, baseline = handler.champion_baseline(registry)
    assert champion is package
    assert baseline == {"test:auc": 0.81, "test:accuracy": 0.77}

import hashlib
import json

import boto3
import pytest

from lambdas.shared.lineage import decode_pairs

from lambdas.pipeline import handlers
from lambdas.pipeline.logic import DataValidationFailed, InvalidRunInput, RunAlreadyInProgress
from pipelines.local.sagemaker_jobs import run_training_job
from tests.integration.conftest import (BUCKET, DATASET_KEY, DEPLOYED_COMMIT, FakeContext, dataset_bytes, serve_in_production,
                                       task_event)

CONTEXT = FakeContext()


def prepared(platform, **input_overrides) -> dict:
    state = {"model": "churn", "requested_by": "ds@example.com", "git_commit": "a1b2c3d", **input_overrides}
    return {"input": state, "run": handlers.prepare_run(task_event(state), CONTEXT)}


def test_prepare_merges_hyperparameter_overrides_as_sagemaker_strings(platform):
    run = prepared(platform, hyperparameters={"epochs": 3})["run"]
    assert run["hyperparameters"]["epochs"] == "3"
    assert run["hyperparameters"]["batch_size"] == "256"
    assert run["training_job_name"] == "churn-run-1"
    assert run["dataset_key"] == DATASET_KEY


@pytest.mark.parametrize(("bad_input", "message"), [
    ({"model": "churn", "hyperparameters": {"epoch": 3}}, "unknown hyperparameters \\['epoch'\\]"),
    ({"model": "churn", "git_commit": "not-a-sha"}, "git_commit"),
    ({"model": "churn", "colour": "blue"}, "colour"),
    ({"model": "churn", "dataset_key": "../etc/passwd"}, "dataset_key"),
    ({"model": "fraud"}, "trains 'churn', the input asks for 'fraud'"),
])
def test_prepare_refuses_bad_execution_input_with_the_reason(platform, bad_input, message):
    with pytest.raises(InvalidRunInput, match=message):
        handlers.prepare_run(task_event(bad_input), CONTEXT)


def test_prepare_refuses_a_second_concurrent_run(platform):
    sfn = boto3.client("stepfunctions")
    sfn.start_execution(stateMachineArn=platform["state_machine"], name="first", input="{}")
    with pytest.raises(RunAlreadyInProgress, match="already has a running retraining execution 'first'"):
        handlers.prepare_run(task_event({"model": "churn"}, execution_name="second"), CONTEXT)


def test_validate_snapshots_the_exact_version_with_its_content_hash(platform):
    state = prepared(platform)
    result = handlers.validate_data(task_event(state), CONTEXT)
    original = boto3.client("s3").get_object(Bucket=BUCKET, Key=DATASET_KEY)
    assert result["sha256"] == hashlib.sha256(original["Body"].read()).hexdigest()
    assert result["version_id"] == original["VersionId"]
    assert result["rows"] == 2000
    snapshot = boto3.client("s3").get_object(Bucket=BUCKET, Key="runs/churn/run-1/data/train.csv")
    assert hashlib.sha256(snapshot["Body"].read()).hexdigest() == result["sha256"]
    assert result["snapshot_prefix"] == f"s3://{BUCKET}/runs/churn/run-1/data/"


def upload(body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=DATASET_KEY, Body=body)


@pytest.mark.parametrize(("body", "reasons"), [
    (lambda: dataset_bytes(rows=200), ["200 rows, the spec requires at least 1000"]),
    (lambda: dataset_bytes(churned=__import__("numpy").zeros(2000, dtype=int)), ["single class ['0']"]),
    (lambda: dataset_bytes().replace(b",north,", b",,"), ["column 'region' is"]),
    (lambda: b"tenure_months,churned\n1,0\n", ["missing columns"]),
    (lambda: b"", ["the file is empty"]),
])
def test_bad_data_fails_the_run_with_readable_reasons_and_no_snapshot(platform, body, reasons):
    upload(body())
    with pytest.raises(DataValidationFailed) as error:
        handlers.validate_data(task_event(prepared(platform)), CONTEXT)
    for reason in reasons:
        assert reason in str(error.value)
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runs/churn/run-1/data/")


def test_a_missing_dataset_is_a_clear_validation_failure(platform):
    with pytest.raises(DataValidationFailed, match="cannot be read"):
        handlers.validate_data(task_event(prepared(platform, dataset_key="datasets/churn/nope.csv")), CONTEXT)


def train(tmp_path, execution: str = "run-1", **input_overrides) -> dict:
    """PrepareRun, ValidateData (which pins the champion) and the training job as the state machine runs them:
    the train channel, and the champion channel's manifest."""
    state = {"input": {"model": "churn", "requested_by": "ds@example.com", "git_commit": "a1b2c3d", **input_overrides}}
    state["run"] = handlers.prepare_run(task_event(state["input"], execution), CONTEXT)
    state["validation"] = handlers.validate_data(task_event(state, execution), CONTEXT)
    request = {"TrainingJobName": state["run"]["training_job_name"], "HyperParameters": state["run"]["hyperparameters"],
               "InputDataConfig": [
                   {"ChannelName": "train", "DataSource": {"S3DataSource": {
                       "S3DataType": "S3Prefix", "S3Uri": state["validation"]["snapshot_prefix"]}}},
                   {"ChannelName": "champion", "DataSource": {"S3DataSource": {
                       "S3DataType": "ManifestFile", "S3Uri": state["validation"]["champion_manifest_uri"]}}}],
               "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models/churn/"},
               "StoppingCondition": {"MaxRuntimeInSeconds": 300}}
    job = run_training_job(request, "churn", tmp_path, log=lambda line: None)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    state["training"] = {"job_name": request["TrainingJobName"], "job_arn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{request['TrainingJobName']}",
                         "model_artifacts": job["ModelArtifacts"]["S3ModelArtifacts"],
                         "output_path": request["OutputDataConfig"]["S3OutputPath"], "image_uri": "local"}
    return state


@pytest.fixture
def trained_state(platform, tmp_path):
    return train(tmp_path, hyperparameters={"epochs": 4})


def promote_to_production(state: dict, recorded_auc: float | None = None) -> str:
    """Register the run's model, approve it (optionally with a made-up recorded metric) and serve it in prod."""
    state["evaluation"] = handlers.evaluate(task_event(state), CONTEXT)
    arn = handlers.register(task_event(state), CONTEXT)["model_package_arn"]
    sagemaker = boto3.client("sagemaker")
    metadata = sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    if recorded_auc is not None:
        metadata["metrics"] = json.dumps({"validation:auc": recorded_auc})
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved", CustomerMetadataProperties=metadata)
    serve_in_production(arn)
    return arn


def test_first_model_is_promoted_and_registered_pending_approval_with_full_lineage(trained_state):
    state = trained_state
    state["evaluation"] = handlers.evaluate(task_event(state), CONTEXT)
    assert state["evaluation"]["promote"] is True
    assert "no approved champion yet" in state["evaluation"]["reason"]
    registered = handlers.register(task_event(state), CONTEXT)
    package = boto3.client("sagemaker").describe_model_package(ModelPackageName=registered["model_package_arn"])
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    lineage = package["CustomerMetadataProperties"]
    assert lineage["git_commit"] == DEPLOYED_COMMIT and lineage["claimed_git_commit"] == "a1b2c3d"
    assert package["MetadataProperties"]["CommitId"] == DEPLOYED_COMMIT
    # The evaluated artifact, released under the key its sha256 names, with its digest and S3 version recorded.
    artifact = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    trained = boto3.client("s3").get_object(Bucket=BUCKET, Key=state["training"]["model_artifacts"].split(f"{BUCKET}/")[1])
    digest = hashlib.sha256(trained["Body"].read()).hexdigest()
    assert artifact == f"s3://{BUCKET}/releases/churn/{digest}/model.tar.gz"
    assert lineage["model_data_sha256"] == registered["artifact_sha256"] == digest
    release = boto3.client("s3").head_object(Bucket=BUCKET, Key=artifact.split(f"{BUCKET}/")[1])
    assert lineage["model_data_version_id"] == registered["artifact_version_id"] == release["VersionId"] != "null"
    assert lineage["dataset_sha256"] == state["validation"]["sha256"]
    assert lineage["dataset_version_id"] == state["validation"]["version_id"]
    assert decode_pairs(lineage["hyperparameters"])["epochs"] == 4  # name=value pairs: SageMaker refuses JSON there
    assert decode_pairs(lineage["metrics"])["validation:auc"] == pytest.approx(state["evaluation"]["value"])
    assert lineage["execution_arn"].endswith(":run-1")


def test_the_champion_is_rescored_on_the_new_data_and_its_recorded_number_is_ignored(trained_state, tmp_path):
    champion = promote_to_production(trained_state, recorded_auc=0.99)  # 0.99: what it "scored" on its own data
    upload(dataset_bytes(seed=11))
    second = train(tmp_path / "second", execution="run-2", hyperparameters={"epochs": 4})
    assert second["validation"]["champion"]["model_package_arn"] == champion
    evaluation = handlers.evaluate(task_event(second, "run-2"), CONTEXT)
    report = json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key="runs/churn/run-2/evaluation.json")["Body"].read())
    rescored = report["champion"]["metrics"]["validation:auc"]
    assert report["champion"]["model_package_arn"] == champion and report["champion"]["rows"] == 400
    assert evaluation["champion_arn"] == champion
    assert evaluation["champion_value"] == pytest.approx(rescored) and rescored < 0.95
    assert evaluation["promote"] is (evaluation["value"] >= rescored)
    assert evaluation["champion_recorded_metrics"] == {"validation:auc": 0.99}  # kept for the record, not compared


def test_a_champion_whose_artifact_is_gone_is_not_replaced_by_its_recorded_number(trained_state, tmp_path):
    champion = promote_to_production(trained_state, recorded_auc=0.5)
    released = boto3.client("sagemaker").describe_model_package(ModelPackageName=champion)
    gone = released["InferenceSpecification"]["Containers"][0]["ModelDataUrl"].split(f"{BUCKET}/")[1]
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=gone)  # no bucket policy here: moto without enforced IAM
    state = {"input": {"model": "churn"}}
    state["run"] = handlers.prepare_run(task_event(state["input"], "run-2"), CONTEXT)
    state["validation"] = handlers.validate_data(task_event(state, "run-2"), CONTEXT)
    assert state["validation"]["champion"]["model_package_arn"] == champion
    request = {"TrainingJobName": "churn-run-2", "HyperParameters": {}, "OutputDataConfig": {"S3OutputPath": "s3://x/"},
               "StoppingCondition": {"MaxRuntimeInSeconds": 60}, "InputDataConfig": [
                   {"ChannelName": "champion", "DataSource": {"S3DataSource": {
                       "S3DataType": "ManifestFile", "S3Uri": state["validation"]["champion_manifest_uri"]}}}]}
    job = run_training_job(request, "churn", tmp_path, log=lambda line: None)
    assert job["TrainingJobStatus"] == "Failed" and "input data" in job["FailureReason"]  # as SageMaker: missing object


def test_failure_notification_carries_the_readable_reason(platform):
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=platform["topic"], Protocol="sqs", Endpoint=queue_arn)
    state = {"input": {"model": "churn"}, "error": {"Error": "DataValidationFailed", "Cause": json.dumps(
        {"errorMessage": "200 rows, the spec requires at least 1000"})}}
    handlers.notify(task_event(state, outcome="failed"), CONTEXT)
    message = json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])
    assert message["Subject"] == "[churn] retraining failed"
    assert "Reason: DataValidationFailed: 200 rows, the spec requires at least 1000" in message["Message"]


def test_a_failure_with_a_null_cause_still_notifies(platform):
    state = {"input": {"model": "churn"}, "error": {"Error": "RetrainingFailed", "Cause": None}}
    assert handlers.notify(task_event(state, outcome="failed"), CONTEXT)["subject"] == "[churn] retraining failed"


def test_the_champion_is_the_version_production_serves_not_the_newest_approved(trained_state):
    state = trained_state
    state["evaluation"] = handlers.evaluate(task_event(state), CONTEXT)
    sagemaker = boto3.client("sagemaker")
    served = handlers.register(task_event(state), CONTEXT)["model_package_arn"]
    failed_release = handlers.register(task_event(state), CONTEXT)["model_package_arn"]
    for arn in (served, failed_release):
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    assert handlers.validate_data(task_event(state), CONTEXT)["champion"]["model_package_arn"] is None  # nothing served
    serve_in_production(served)
    pinned = handlers.validate_data(task_event(state), CONTEXT)
    assert pinned["champion"]["model_package_arn"] == served
    manifest = json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key="runs/churn/run-1/champion/manifest.json")["Body"].read())
    released = sagemaker.describe_model_package(ModelPackageName=served)["InferenceSpecification"]["Containers"][0]
    assert manifest[2] == released["ModelDataUrl"].split(f"{BUCKET}/")[1]  # the released artifact, not the job output

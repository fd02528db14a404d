"""PrepareRun and ValidateData of a reproduction: the version's code snapshot, exact dataset version and complete
hyperparameters, read from the registry; a dataset whose bytes changed under the same version is refused."""

import hashlib
import io
import json
import tarfile

import boto3
import pytest

from lambdas.pipeline import handlers
from lambdas.pipeline.logic import DataValidationFailed, InvalidRunInput
from lambdas.shared.run_state import Objective, RunState, outcome
from tests.integration.conftest import BUCKET, DATASET_KEY, FakeContext, dataset_bytes, task_event

CONTEXT = FakeContext()
SOURCE = f"s3://{BUCKET}/runs/churn/first-run/code/sourcedir.tar.gz"


def register_version(first_version_id: str, sha256: str) -> int:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key="runs/churn/first-run/code/sourcedir.tar.gz", Body=b"the code version 1 ran")
    report = {"hyperparameters": {"epochs": 2, "seed": 11, "validation_share": 0.25}, "metrics": {"validation:auc": 0.8}}
    s3.put_object(Bucket=BUCKET, Key="runs/churn/first-run/evaluation.json", Body=json.dumps(report).encode())
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package(
        ModelPackageGroupName="churn-dev", ModelApprovalStatus="Approved",
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                      "S3Uri": f"s3://{BUCKET}/runs/churn/first-run/evaluation.json"}}},
        CustomerMetadataProperties={"dataset_uri": f"s3://{BUCKET}/{DATASET_KEY}", "dataset_version_id": first_version_id,
                                    "dataset_sha256": sha256, "source_uri": SOURCE, "git_commit": "a1b2c3d"})
    return 1


def test_a_reproduction_trains_the_versions_code_data_version_and_hyperparameters_once(platform):
    first = boto3.client("s3").head_object(Bucket=BUCKET, Key=DATASET_KEY)["VersionId"]
    original = dataset_bytes()
    register_version(first, hashlib.sha256(original).hexdigest())
    boto3.client("s3").put_object(Bucket=BUCKET, Key=DATASET_KEY, Body=dataset_bytes(seed=99))  # newer data since

    run = handlers.prepare_run(task_event({"model": "churn", "reproduce_version": 1}), CONTEXT)
    assert run["dataset_version_id"] == first and run["git_commit"] == "a1b2c3d" and run["tune"] is False
    assert json.loads(run["hyperparameters"]["seed"]) == 11 and json.loads(run["hyperparameters"]["validation_share"]) == 0.25
    assert run["reproduces"].endswith("model-package/churn-dev/1") and run["reproduces_version"] == 1
    # the state machine's SnapshotSource copies the reproduced version's own code into the run's folder
    assert run["source_copy"] == {"Bucket": BUCKET, "Key": "runs/churn/run-1/code/sourcedir.tar.gz",
                                  "CopySource": f"{BUCKET}/runs/churn/first-run/code/sourcedir.tar.gz"}
    assert run["source_uri"] == f"s3://{BUCKET}/runs/churn/run-1/code/sourcedir.tar.gz"

    validation = handlers.validate_data(task_event({"run": run}), CONTEXT)
    assert validation["version_id"] == first and validation["sha256"] == hashlib.sha256(original).hexdigest()


def test_bytes_that_differ_from_what_the_version_trained_on_are_refused(platform):
    first = boto3.client("s3").head_object(Bucket=BUCKET, Key=DATASET_KEY)["VersionId"]
    register_version(first, "0" * 64)
    run = handlers.prepare_run(task_event({"model": "churn", "reproduce_version": 1}), CONTEXT)
    with pytest.raises(DataValidationFailed, match="not the same bytes"):
        handlers.validate_data(task_event({"run": run}), CONTEXT)


def test_reproducing_a_version_that_does_not_exist_says_so(platform):
    with pytest.raises(InvalidRunInput, match="version 7 of churn cannot be read"):
        handlers.prepare_run(task_event({"model": "churn", "reproduce_version": 7}), CONTEXT)


# ------------------------------------------------------------------ a reproduction verifies, it never ships
def tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def trained_reproduction(metrics: dict, **run_input) -> dict:
    """A reproduction of version 1 (recorded validation:auc 0.8) up to its training job, whose output reports
    `metrics` (what the training job of the version's own code, data and seed measured)."""
    first = boto3.client("s3").head_object(Bucket=BUCKET, Key=DATASET_KEY)["VersionId"]
    register_version(first, hashlib.sha256(dataset_bytes()).hexdigest())
    state = {"run": handlers.prepare_run(task_event({"model": "churn", "reproduce_version": 1, **run_input}), CONTEXT)}
    state["validation"] = handlers.validate_data(task_event(state), CONTEXT)
    s3, job = boto3.client("s3"), state["run"]["training_job_name"]
    s3.put_object(Bucket=BUCKET, Key=f"models/churn/{job}/output/output.tar.gz",
                  Body=tarball({"evaluation.json": json.dumps({"metrics": metrics, "champion": {"present": False}}).encode()}))
    s3.put_object(Bucket=BUCKET, Key=f"models/churn/{job}/output/model.tar.gz",
                  Body=tarball({"statistics.json": b"{}", "constraints.json": b"{}"}))
    state["training"] = {"job_name": job, "job_arn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{job}",
                         "model_artifacts": f"s3://{BUCKET}/models/churn/{job}/output/model.tar.gz",
                         "output_path": f"s3://{BUCKET}/models/churn/"}
    return state


def test_a_reproduction_that_matches_is_verified_and_nothing_is_registered_or_sent_for_approval(platform):
    state = trained_reproduction({"validation:auc": 0.8 + 1e-9})
    state["evaluation"] = handlers.evaluate(task_event(state), CONTEXT)
    verdict = state["evaluation"]["reproduction"]
    assert state["evaluation"]["promote"] is False and verdict["reproduced"] is True
    assert verdict["metrics"]["validation:auc"]["recorded"] == 0.8 and verdict["tolerance"] == 1e-6
    assert "reproduced version 1: 1 metric(s) within 1e-06" in state["evaluation"]["reason"]
    kept = json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key="runs/churn/run-1/reproduction.json")["Body"].read())
    assert kept == verdict
    with pytest.raises(InvalidRunInput, match="registers none"):
        handlers.register(task_event(state), CONTEXT)
    assert len(boto3.client("sagemaker").list_model_packages(ModelPackageGroupName="churn-dev")["ModelPackageSummaryList"]) == 1
    judged = outcome("SUCCEEDED", RunState.parse(state), Objective(metric="validation:auc"))
    assert judged.kind == "reproduced" and judged.succeeded and judged.version == 1


def test_a_reproduction_outside_the_tolerance_is_reported_as_not_reproduced_with_the_difference(platform):
    state = trained_reproduction({"validation:auc": 0.78}, reproduce_tolerance=0.01)
    evaluation = handlers.evaluate(task_event(state), CONTEXT)
    assert evaluation["promote"] is False and evaluation["reproduction"]["reproduced"] is False
    assert "did not reproduce version 1: validation:auc 0.78 vs 0.8 (-0.02) (tolerance 0.01)" in evaluation["reason"]
    state["evaluation"] = evaluation
    assert outcome("SUCCEEDED", RunState.parse(state), None).kind == "not_reproduced"


def test_a_tolerance_without_a_reproduction_is_refused(platform):
    with pytest.raises(InvalidRunInput, match="reproduce_tolerance applies to a reproduction"):
        handlers.prepare_run(task_event({"model": "churn", "reproduce_tolerance": 0.1}), CONTEXT)

"""PrepareRun and ValidateData of a reproduction: the version's code snapshot, exact dataset version and complete
hyperparameters, read from the registry; a dataset whose bytes changed under the same version is refused."""

import hashlib
import json

import boto3
import pytest

from lambdas.pipeline import handlers
from lambdas.pipeline.logic import DataValidationFailed, InvalidRunInput
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

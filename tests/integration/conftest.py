from __future__ import annotations

import io
import json
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from lambdas.shared import config as lambda_config
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT
from tests.support.sagemaker_layout import make_dataset

SPEC = load_spec(REPO_ROOT / "pipelines/churn/model.yaml")
BUCKET = "mlops-dev-artifacts-123456789012-us-east-1"
DATASET_KEY = "datasets/churn/train.csv"


@dataclass
class FakeContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def dataset_bytes(rows: int = 2000, seed: int = 7, **overrides) -> bytes:
    columns = make_dataset.generate(rows, seed)
    columns.update(overrides)
    buffer = io.StringIO()
    names = make_dataset.COLUMNS
    buffer.write(",".join(names) + "\n")
    for row in zip(*(columns[n].tolist() for n in names)):
        buffer.write(",".join(str(v) for v in row) + "\n")
    return buffer.getvalue().encode()


@pytest.fixture
def platform(monkeypatch):
    from pipelines.local import moto_extensions

    moto_extensions.install()  # the same emulation fixes the local mode uses
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=BUCKET, Key=DATASET_KEY, Body=dataset_bytes())
        boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="churn-dev")
        topic = boto3.client("sns").create_topic(Name="churn-dev-notifications")["TopicArn"]
        machine = boto3.client("stepfunctions").create_state_machine(
            name="churn-dev-retraining", roleArn="arn:aws:iam::123456789012:role/sfn",
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
        hyperparameters = {k: json.dumps(v) for k, v in SPEC.training.hyperparameters.items()}
        hyperparameters["sagemaker_program"] = json.dumps("train.py")
        env = {"ARTIFACT_BUCKET": BUCKET, "MODEL_PACKAGE_GROUP": "churn-dev", "NOTIFICATION_TOPIC_ARN": topic,
               "STATE_MACHINE_ARN": machine, "MODEL_SPEC": SPEC.model_dump_json(),
               "TRAINING_HYPERPARAMETERS": json.dumps(hyperparameters),
               "INFERENCE_IMAGE": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.5-cpu-py311"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        lambda_config.model_spec.cache_clear()
        yield {"bucket": BUCKET, "topic": topic, "state_machine": machine, **env}


def task_event(state: dict, execution_name: str = "run-1", **extra) -> dict:
    arn = f"arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:{execution_name}"
    return {"execution_arn": arn, "execution_name": execution_name, "state": state, **extra}

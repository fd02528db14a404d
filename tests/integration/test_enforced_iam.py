"""Handlers under enforced IAM with the role the CDK synthesizes for their function."""

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.pipeline.logic import DataValidationFailed
from pipelines import naming
from tests.integration.conftest import LOCAL_ACCOUNT, LOCAL_REGION, dataset_bytes, without_role_action

pytestmark = pytest.mark.slow

BUCKET = naming.artifact_bucket("local", LOCAL_ACCOUNT, LOCAL_REGION)
EXECUTION = f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:execution:churn-local-retraining:run-1"


def _event(state: dict) -> dict:
    return {"execution_arn": EXECUTION, "execution_name": "run-1", "state": state}


def _prepare_and_validate(provisioned) -> dict:
    boto3.client("s3").put_object(Bucket=BUCKET, Key="datasets/churn/train.csv", Body=dataset_bytes(rows=1000))
    state = {"input": {"model": "churn", "requested_by": "ds@example.com", "git_commit": "a1b2c3d"}}
    state["run"] = provisioned.function_named("PrepareFunction").call(_event(state["input"]), {})
    return provisioned.function_named("ValidateFunction").call(_event(state), {})


def test_validate_succeeds_under_its_synthesized_role(enforced_platform):
    validation = _prepare_and_validate(enforced_platform())
    assert validation["rows"] == 1000 and len(validation["sha256"]) == 64
    assert validation["snapshot_prefix"] == f"s3://{BUCKET}/runs/churn/run-1/data/"


def test_validate_without_get_object_is_denied_naming_the_action(enforced_platform):
    provisioned = enforced_platform(without_role_action("ValidateFunction", "s3:GetObject*"))
    with pytest.raises(DataValidationFailed, match="AccessDenied") as denied:
        _prepare_and_validate(provisioned)
    assert "not authorized to perform: s3:GetObject" in str(denied.value)
    assert "assumed-role/mlops-local-churn-ValidateFunctionRole" in str(denied.value)


def test_the_admin_driver_is_not_bound_by_the_function_roles(enforced_platform):
    enforced_platform(without_role_action("ValidateFunction", "s3:GetObject*"))
    boto3.client("s3").put_object(Bucket=BUCKET, Key="datasets/churn/train.csv", Body=b"a,b\n")
    assert boto3.client("s3").get_object(Bucket=BUCKET, Key="datasets/churn/train.csv")["Body"].read() == b"a,b\n"


def test_a_caller_moto_does_not_know_is_refused(enforced_platform):
    enforced_platform()
    stranger = boto3.client("s3", aws_access_key_id="AKIASTRANGER", aws_secret_access_key="x")
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        stranger.list_objects_v2(Bucket=BUCKET)


def test_sagemaker_list_calls_are_allowed_only_by_a_statement_on_star_as_in_aws(enforced_platform):
    from pipelines.local.iam import assume
    enforced_platform()
    iam = boto3.client("iam")
    group_arn = f"arn:aws:sagemaker:{LOCAL_REGION}:{LOCAL_ACCOUNT}:model-package-group/churn-local"
    for name, resource in (("scoped", group_arn), ("star", "*")):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", '
            f'"Principal": {{"AWS": "arn:aws:iam::{LOCAL_ACCOUNT}:user/local-admin"}}}}]}}'))
        iam.put_role_policy(RoleName=name, PolicyName="list", PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:ListModelPackages",'
            f' "Resource": "{resource}"}}]}}'))
    scoped, star = (assume(f"arn:aws:iam::{LOCAL_ACCOUNT}:role/{name}", LOCAL_REGION) for name in ("scoped", "star"))
    with pytest.raises(ClientError, match="ListModelPackages"):
        scoped.client("sagemaker", LOCAL_REGION).list_model_packages(ModelPackageGroupName="churn-local")
    assert star.client("sagemaker", LOCAL_REGION).list_model_packages(ModelPackageGroupName="churn-local")[
        "ModelPackageSummaryList"] == []

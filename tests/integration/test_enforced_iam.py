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
    state["run"] = provisioned.function_named("PipelineTasksPrepare").call(_event(state["input"]), {})
    return provisioned.function_named("PipelineTasksValidate").call(_event(state), {})


def test_validate_succeeds_under_its_synthesized_role(enforced_platform):
    validation = _prepare_and_validate(enforced_platform())
    assert validation["rows"] == 1000 and len(validation["sha256"]) == 64
    assert validation["snapshot_prefix"] == f"s3://{BUCKET}/runs/churn/run-1/data/"


def test_validate_without_get_object_is_denied_naming_the_action(enforced_platform):
    provisioned = enforced_platform(without_role_action("PipelineTasksValidateScoped", "s3:GetObject"))
    with pytest.raises(DataValidationFailed, match="AccessDenied") as denied:
        _prepare_and_validate(provisioned)
    assert "not authorized to perform: s3:GetObject" in str(denied.value)
    assert "assumed-role/mlops-local-control-PipelineTasksValidateScopedRole" in str(denied.value)  # acting for churn


def test_the_admin_driver_is_not_bound_by_the_function_roles(enforced_platform):
    enforced_platform(without_role_action("PipelineTasksValidateScoped", "s3:GetObject"))
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


# ------------------------------------------------------------------ approval reconciler and key rotation
GROUP = naming.model_package_group("churn", "local")
MACHINE_EXECUTIONS = f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:execution:churn-local-retraining"


def _pending_package() -> str:
    return boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/models/churn/m.tar.gz"}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
    )["ModelPackageArn"]


def _approval_record(reconciler, execution: str, package: str, **fields) -> None:
    """What the request function and a throttled click leave in the audit table (written by the admin driver)."""
    from lambdas.shared import dal

    token = dal.encrypt(reconciler.environment["KMS_KEY_ARN"], "task-token-of-" + execution,
                        {"model": "churn", "execution": execution, "purpose": "approval-task-token"})
    boto3.resource("dynamodb").Table(naming.audit_table("local")).put_item(Item={
        "pk": "model#churn", "sk": f"approval#{execution}", "model": "churn", "model_package_arn": package,
        "requested_by": "arn:aws:sts::123456789012:assumed-role/ds/ds@example.com", "approvers": ["ml-lead@example.com"],
        "expires_at": 2**31, "task_token": token, **fields})


def _status(package: str) -> str:
    return boto3.client("sagemaker").describe_model_package(ModelPackageName=package)["ModelApprovalStatus"]


def test_the_reconciler_repairs_under_its_synthesized_role(enforced_platform):
    """Query + UpdateItem on the audit table, kms:Decrypt of the task token, SendTaskSuccess, DescribeExecution,
    UpdateModelPackage: an unapplied approval of a run that ended is closed, an abandoned request too."""
    provisioned = enforced_platform()
    reconciler = provisioned.function_named("ApprovalRepair")
    unapplied, abandoned = _pending_package(), _pending_package()
    _approval_record(reconciler, "run-unapplied", unapplied, status="APPROVED", applied=False,
                     decided_by="ml-lead@example.com", decided_at="2020-01-01T00:00:00+00:00", reason="ok")
    _approval_record(reconciler, "run-abandoned", abandoned, status="PENDING")
    repaired = reconciler.call({"model": "churn"}, {})["repaired"]
    # moto 5.2.5 accepts SendTaskSuccess for a token no run holds (AWS answers InvalidToken / TaskDoesNotExist, then
    # the reconciler closes the request): here the unapplied decision is applied, which still exercises every grant.
    assert sorted(repaired, key=lambda r: r["execution"]) == [
        {"execution": "run-abandoned", "action": "closed abandoned request"},
        {"execution": "run-unapplied", "action": "applied approved"}]
    assert _status(unapplied) == "Approved" and _status(abandoned) == "Rejected"
    table = boto3.resource("dynamodb").Table(naming.audit_table("local"))
    assert table.get_item(Key={"pk": "model#churn", "sk": "approval#run-unapplied"})["Item"]["applied"] is True


def test_the_reconciler_without_decrypt_is_denied_naming_the_action(enforced_platform):
    provisioned = enforced_platform(without_role_action("ApprovalRepairScoped", "kms:Decrypt"))
    reconciler = provisioned.function_named("ApprovalRepair")
    _approval_record(reconciler, "run-unapplied", _pending_package(), status="APPROVED", applied=False,
                     decided_by="ml-lead@example.com", decided_at="2020-01-01T00:00:00+00:00")
    with pytest.raises(ClientError, match="not authorized to perform: kms:Decrypt"):
        reconciler.call({"model": "churn"}, {})


def _start_rotation(secret_id: str) -> str:
    """What Secrets Manager does before it calls the function: rotation enabled, a new version id labelled
    AWSPENDING without a value (moto's rotate_secret without a function would make it current at once)."""
    import uuid

    from moto.secretsmanager.models import secretsmanager_backends

    backend = secretsmanager_backends[LOCAL_ACCOUNT][LOCAL_REGION]
    secret = backend.secrets[secret_id]
    token = str(uuid.uuid4())
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = {"createdate": 0, "version_id": token, "version_stages": ["AWSPENDING"]}
    secret.rotation_requested, secret.rotation_enabled, secret.auto_rotate_after_days = True, True, 30
    return token


def test_the_signing_key_rotation_runs_its_four_steps_under_its_synthesized_role(enforced_platform):
    from lambdas.approval import rotation, tokens

    provisioned = enforced_platform()
    rotate = provisioned.function_named("ApprovalRotateFunction")
    secret = naming.approval_signing_secret("local")
    arn = boto3.client("secretsmanager").describe_secret(SecretId=secret)["ARN"]
    before = tokens.parse_keys(boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    token = _start_rotation(arn)
    for step in rotation.STEPS:
        rotate.call({"SecretId": arn, "ClientRequestToken": token, "Step": step}, {})
    after = tokens.parse_keys(boto3.client("secretsmanager").get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
                              ["SecretString"])
    assert (after.previous_id, after.previous) == (before.current_id, before.current) and after.current_id != before.current_id
    assert boto3.client("secretsmanager").describe_secret(SecretId=arn)["VersionIdsToStages"][token] == ["AWSCURRENT"]


def test_the_rotation_without_put_secret_value_is_denied_naming_the_action(enforced_platform):
    provisioned = enforced_platform(without_role_action("ApprovalRotateFunction", "secretsmanager:PutSecretValue"))
    arn = boto3.client("secretsmanager").describe_secret(SecretId=naming.approval_signing_secret("local"))["ARN"]
    token = _start_rotation(arn)
    with pytest.raises(ClientError, match="not authorized to perform: secretsmanager:PutSecretValue"):
        provisioned.function_named("ApprovalRotateFunction").call(
            {"SecretId": arn, "ClientRequestToken": token, "Step": "createSecret"}, {})


def _serve(endpoint: str, *configs: str) -> None:
    """An endpoint serving the last of configs (created by the admin driver, as a deployment would have)."""
    sagemaker = boto3.client("sagemaker")
    for config in configs:
        sagemaker.create_model(ModelName=config, ExecutionRoleArn=f"arn:aws:iam::{LOCAL_ACCOUNT}:role/endpoint",
                               PrimaryContainer={"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/models/churn/m.tar.gz"})
        sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": config, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=configs[0])
    if len(configs) > 1:
        sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=configs[-1])


def test_the_restore_step_restores_both_stages_under_its_synthesized_role(enforced_platform):
    """A release that failed in production: staging goes back to the config it served before this run, the new
    production endpoint (nothing served before) is deleted, the package is rejected: DescribeEndpoint,
    UpdateEndpoint, DeleteEndpoint, UpdateModelPackage under the rollback function's role."""
    provisioned = enforced_platform()
    staging, prod = naming.endpoint("churn", "local", "staging"), naming.endpoint("churn", "local", "prod")
    _serve(staging, f"{staging}-run-0", f"{staging}-run-1")
    _serve(prod, f"{prod}-run-1")
    package = _pending_package()
    state = {"registration": {"model_package_arn": package}, "error": {"Error": "States.TaskFailed", "Cause": "smoke"},
             "deployment": {"staging": {"endpoint": staging, "previous_config": f"{staging}-run-0"},
                            "prod": {"endpoint": prod, "previous_config": None}}}
    result = provisioned.function_named("PipelineTasksRollback").call(_event(state), {})
    assert result["restored"] == {"staging": f"restored {staging}-run-0",
                                  "prod": "deleted (it served nothing before this run)"}
    sagemaker = boto3.client("sagemaker")
    assert sagemaker.describe_endpoint(EndpointName=staging)["EndpointConfigName"] == f"{staging}-run-0"
    assert prod not in [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]
    assert _status(package) == "Rejected"

import io
import json
import tarfile

import boto3
import pytest

from lambdas.endpoint import handlers
from lambdas.endpoint.logic import SmokeTestFailed
from lambdas.shared import config as lambda_config
from pipelines.local import moto_extensions
from pipelines.local.serving import Hosting, LocalHostingServer
from pipelines.spec import parse_spec
from tests.integration.conftest import (BUCKET, DATASET_KEY, SPEC, FakeContext, approval_binding, move_the_shells_region,
                                       released_package, task_event)
from tests.support.sagemaker_layout import prepare, run_training

pytestmark = pytest.mark.usefixtures("dev_serves_prod")  # cdk.json's dev serves nothing (training account)


@pytest.fixture(scope="module")
def model_tarball(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("trained")
    run_training(prepare(root, {"epochs": 2, "hidden_units": 16}))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted((root / "model").rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root / "model")))
    return buffer.getvalue()


def broken_tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"not a model"
        info = tarfile.TarInfo("model.pt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


AUDIT_TABLE = "mlops-dev-audit"


def register(body: bytes, name: str, approved_by: str | None = "ml-lead@example.com", status: str = "Approved") -> str:
    """A package registered by run `name` and, unless approved_by is None, approved in the audit trail."""
    execution = f"arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:{name}"
    arn = released_package(body=body, image="pytorch-inference", status=status, MetadataProperties={"GeneratedBy": execution})
    if approved_by:
        boto3.resource("dynamodb").Table(AUDIT_TABLE).put_item(Item={
            "pk": "model#churn", "sk": f"approval#{name}", "status": "APPROVED", "model_package_arn": arn,
            "requested_by": "ds@example.com", "decided_by": approved_by, "decided_at": "2026-11-23T00:00:00+00:00",
            **approval_binding(arn)})
    return arn


DEPLOYMENT = {"data_capture_percent": 100, "min_capacity": 2, "strategy": "canary", "canary_percent": 50}


def use_spec(monkeypatch, deployment: dict) -> None:
    spec = parse_spec(json.loads(SPEC.model_dump_json()), "test", {"deployment": deployment})
    monkeypatch.setenv("MODEL_SPEC", spec.model_dump_json())
    lambda_config.model_spec.cache_clear()


@pytest.fixture
def hosting(platform, monkeypatch, tmp_path):
    moto_extensions.install()
    use_spec(monkeypatch, DEPLOYMENT)
    boto3.client("dynamodb").create_table(
        TableName=AUDIT_TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    lambda_config.model_spec.cache_clear()
    monkeypatch.setenv("ENVIRONMENT", "dev")
    monkeypatch.setenv("ENDPOINT_ROLE_ARN", "arn:aws:iam::123456789012:role/endpoint")
    monkeypatch.setenv("KMS_KEY_ARN", "arn:aws:kms:us-east-1:123456789012:key/1234")
    with LocalHostingServer(Hosting(tmp_path)) as server:
        monkeypatch.setenv("SAGEMAKER_RUNTIME_URL", server.url)
        yield server
    lambda_config.model_spec.cache_clear()


def run_state(package: str, execution: str) -> dict:
    return {"registration": {"model_package_arn": package},
            "validation": {"snapshot_uri": f"s3://{BUCKET}/{DATASET_KEY}"}, "deployment": {}}


def deploy(state: dict, stage: str, execution: str) -> dict:
    state["deployment"][stage] = handlers.deploy(task_event(state, execution_name=execution, stage=stage), FakeContext())
    return state["deployment"][stage]


def smoke(state: dict, stage: str, execution: str) -> dict:
    return handlers.smoke_test(task_event(state, execution_name=execution, stage=stage), FakeContext())


def test_first_deployment_creates_the_endpoint_with_kms_data_capture_and_serves(hosting, model_tarball):
    state = run_state(register(model_tarball, "v1"), "run-1")
    deployed = deploy(state, "staging", "run-1")
    assert deployed["action"] == "created" and deployed["endpoint"] == "churn-dev-staging"
    config = boto3.client("sagemaker").describe_endpoint_config(EndpointConfigName=deployed["config"])
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] and capture["DestinationS3Uri"] == f"s3://{BUCKET}/data-capture"
    assert capture["KmsKeyId"].startswith("arn:aws:kms:")
    verdict = smoke(state, "staging", "run-1")
    assert verdict["rows"] == 20 and 0 < verdict["mean_probability"] < 1
    captured = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="data-capture/churn-dev-staging/AllTraffic/")
    assert captured["KeyCount"] == 1


def test_a_new_package_moves_the_endpoint_blue_green_with_canary_and_alarm_rollback(hosting, model_tarball):
    state = run_state(register(model_tarball, "v1"), "run-1")
    deploy(state, "prod", "run-1")
    second = run_state(register(model_tarball, "v2"), "run-2")
    deployed = deploy(second, "prod", "run-2")
    assert deployed["action"] == "updated (blue/green)" and deployed["previous_config"] == "churn-dev-prod-run-1"
    from moto.sagemaker.models import sagemaker_backends
    policy = sagemaker_backends["123456789012"]["us-east-1"].endpoints["churn-dev-prod"].last_deployment_config
    routing = policy["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50}, "WaitIntervalInSeconds": 300}
    assert policy["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": "churn-dev-prod-5xx-rate"},
                                                             {"AlarmName": "churn-dev-prod-p99-latency"}]


def test_a_failing_smoke_test_stops_and_the_previous_model_keeps_serving(hosting, model_tarball):
    good = run_state(register(model_tarball, "v1"), "run-1")
    deploy(good, "staging", "run-1")
    smoke(good, "staging", "run-1")
    bad = run_state(register(broken_tarball(), "v2"), "run-2")
    deploy(bad, "staging", "run-2")
    with pytest.raises(SmokeTestFailed, match="HTTP 4"):
        smoke(bad, "staging", "run-2")
    rolled = restore(bad, "run-2")
    assert rolled["restored"] == {"staging": "restored churn-dev-staging-run-1"}
    assert package_status(bad) == "Rejected"  # never the champion, never the drift baseline
    endpoint = boto3.client("sagemaker").describe_endpoint(EndpointName="churn-dev-staging")
    assert endpoint["EndpointConfigName"] == "churn-dev-staging-run-1"
    assert smoke(good, "staging", "run-1")["rows"] == 20  # the old model serves again
    with pytest.raises(Exception):
        boto3.client("sagemaker").describe_endpoint(EndpointName="churn-dev-prod")  # production never touched


def test_a_failed_first_deployment_is_removed(hosting):
    bad = run_state(register(broken_tarball(), "v1"), "run-1")
    deploy(bad, "staging", "run-1")
    with pytest.raises(SmokeTestFailed):
        smoke(bad, "staging", "run-1")
    rolled = restore(bad, "run-1")
    assert "deleted" in rolled["restored"]["staging"] and package_status(bad) == "Rejected"


def test_a_production_failure_restores_production_and_staging_and_rejects_the_package(hosting, model_tarball):
    good = run_state(register(model_tarball, "v1"), "run-1")
    deploy(good, "staging", "run-1")
    deploy(good, "prod", "run-1")
    second = run_state(register(model_tarball, "v2"), "run-2")
    deploy(second, "staging", "run-2")
    deploy(second, "prod", "run-2")
    second["error"] = {"Error": "DeploymentRolledBack", "Cause": None}  # e.g. autoscaling failed after prod
    rolled = restore(second, "run-2")
    assert rolled["restored"] == {"prod": "restored churn-dev-prod-run-1", "staging": "restored churn-dev-staging-run-1"}
    sagemaker = boto3.client("sagemaker")
    assert {sagemaker.describe_endpoint(EndpointName=f"churn-dev-{stage}")["EndpointConfigName"]
            for stage in ("staging", "prod")} == {"churn-dev-staging-run-1", "churn-dev-prod-run-1"}
    assert package_status(second) == "Rejected" and "DeploymentRolledBack" in rolled["reason"]


def restore(state: dict, execution: str) -> dict:
    state.setdefault("error", {"Error": "SmokeTestFailed", "Cause": "the endpoint answered HTTP 400"})
    return handlers.restore_after_failure(task_event(state, execution_name=execution), FakeContext())


def package_status(state: dict) -> str:
    return boto3.client("sagemaker").describe_model_package(
        ModelPackageName=state["registration"]["model_package_arn"])["ModelApprovalStatus"]


def test_mlops_rollback_redeploys_the_previous_approved_version(hosting, model_tarball, monkeypatch):
    from typer.testing import CliRunner

    from pipelines import cli, client

    monkeypatch.setattr(client, "target_environment", lambda env: client.Target(env, "123456789012", "us-east-1"))
    first, second = register(model_tarball, "v1"), register(model_tarball, "v2")
    deploy(run_state(first, "run-1"), "prod", "run-1")
    deploy(run_state(second, "run-2"), "prod", "run-2")
    cli.console.width = 200
    result = CliRunner().invoke(cli.app, ["rollback", "churn"])
    assert result.exit_code == 0, result.output
    assert "churn-dev-prod: version 2 -> 1 (updated (blue/green))" in result.output
    sagemaker = boto3.client("sagemaker")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=sagemaker.describe_endpoint(EndpointName="churn-dev-prod")["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert (model.get("Containers") or [model.get("PrimaryContainer")])[0]["ModelPackageName"] == first
    # marked released by the rollback: the quality check judges version 1's traffic only from here on
    from pipelines import naming

    marker = sagemaker.describe_model_package(ModelPackageName=first)["CustomerMetadataProperties"]
    assert marker[naming.RELEASED_BY_KEY].startswith("rollback-")
    again = CliRunner().invoke(cli.app, ["rollback", "churn"])
    assert again.exit_code == 1 and "no older approved version" in again.output


def test_mlops_rollback_acts_in_the_environments_region_not_the_shells_default_one(hosting, model_tarball, monkeypatch):
    """cdk.json puts the environment in us-east-1, where its endpoint is; the shell's default region is another one.
    The deploy code rollback reuses must call AWS with the client's session, not boto3's default one."""
    from typer.testing import CliRunner

    from pipelines import cli, client

    monkeypatch.setattr(client, "target_environment", lambda env: client.Target(env, "123456789012", "us-east-1"))
    first, second = register(model_tarball, "v1"), register(model_tarball, "v2")
    deploy(run_state(first, "run-1"), "prod", "run-1")
    deploy(run_state(second, "run-2"), "prod", "run-2")
    move_the_shells_region(monkeypatch)
    cli.console.width = 200
    result = CliRunner().invoke(cli.app, ["rollback", "churn"])
    assert result.exit_code == 0, result.output
    assert "churn-dev-prod: version 2 -> 1" in result.output
    assert not boto3.client("sagemaker", region_name="eu-west-3").list_endpoints()["Endpoints"]


def test_mlops_rollback_refuses_a_version_whose_released_bytes_changed_since_approval(hosting, model_tarball, monkeypatch):
    """The same gate as the run's deploy step: what version 1's approval bound is no longer what its release holds."""
    from typer.testing import CliRunner

    from pipelines import cli, client

    monkeypatch.setattr(client, "target_environment", lambda env: client.Target(env, "123456789012", "us-east-1"))
    first, second = register(model_tarball, "v1"), register(model_tarball + b"\0", "v2")
    deploy(run_state(first, "run-1"), "prod", "run-1")
    deploy(run_state(second, "run-2"), "prod", "run-2")
    released = approval_binding(first)["artifact_uri"].split(f"{BUCKET}/")[1]
    boto3.client("s3").put_object(Bucket=BUCKET, Key=released, Body=b"swapped")  # moto without a bucket policy here
    cli.console.width = 200
    result = CliRunner().invoke(cli.app, ["rollback", "churn"])
    assert result.exit_code == 1 and "bytes changed since approval; nothing was deployed" in result.output
    assert "Traceback" not in result.output
    assert served_package("churn-dev-prod") == second


def served_package(endpoint: str) -> str:
    sagemaker = boto3.client("sagemaker")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return (model.get("Containers") or [model.get("PrimaryContainer")])[0]["ModelPackageName"]


def test_mlops_rollback_without_an_endpoint_says_so(hosting):
    from typer.testing import CliRunner

    from pipelines import cli
    result = CliRunner().invoke(cli.app, ["rollback", "churn"])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_one_execution_deploys_staging_then_production_without_reusing_a_model_name(hosting, model_tarball):
    # SageMaker refuses CreateModel for an existing name (the emulation does too): each stage names its own.
    state = run_state(register(model_tarball, "v1"), "run-1")
    staging, prod = deploy(state, "staging", "run-1"), deploy(state, "prod", "run-1")
    assert staging["model"] != prod["model"]
    sagemaker = boto3.client("sagemaker")
    assert {sagemaker.describe_model(ModelName=d["model"])["ModelName"] for d in (staging, prod)} == {
        "churn-dev-staging-run-1", "churn-dev-prod-run-1"}


def test_the_emulation_refuses_an_existing_model_or_config_name_as_sagemaker_does(hosting):
    sagemaker = boto3.client("sagemaker")
    request = {"ModelName": "m", "ExecutionRoleArn": "arn:aws:iam::123456789012:role/endpoint",
               "PrimaryContainer": {"Image": "i"}}
    sagemaker.create_model(**request)
    with pytest.raises(sagemaker.exceptions.ClientError, match="already existing model"):
        sagemaker.create_model(**request)
    config = {"EndpointConfigName": "c", "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}]}
    sagemaker.create_endpoint_config(**config)
    with pytest.raises(sagemaker.exceptions.ClientError, match="already existing endpoint configuration"):
        sagemaker.create_endpoint_config(**config)


@pytest.mark.parametrize(("instance_type", "refused"), [("ml.g5.xlarge", True), ("ml.m5.large", False)])
def test_the_emulation_refuses_a_volume_key_on_local_storage_instances(hosting, instance_type, refused):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/e", PrimaryContainer={"Image": "i"})
    request = {"EndpointConfigName": "c", "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/1234", "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": instance_type, "InitialInstanceCount": 1}]}
    if refused:
        with pytest.raises(sagemaker.exceptions.ClientError, match="local storage"):
            sagemaker.create_endpoint_config(**request)
    else:
        sagemaker.create_endpoint_config(**request)


def test_the_emulation_refuses_data_capture_on_a_serverless_variant(hosting):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/e", PrimaryContainer={"Image": "i"})
    with pytest.raises(sagemaker.exceptions.ClientError, match="not supported for serverless"):
        sagemaker.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "m", "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}],
            DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 10, "DestinationS3Uri": "s3://b/c",
                               "CaptureOptions": [{"CaptureMode": "Input"}]})


def test_the_emulation_refuses_a_canary_larger_than_half_the_fleet(hosting, model_tarball, monkeypatch):
    use_spec(monkeypatch, {"data_capture_percent": 100, "strategy": "all_at_once"})  # one instance
    deploy(run_state(register(model_tarball, "v1"), "run-1"), "prod", "run-1")
    second = deploy(run_state(register(model_tarball, "v2"), "run-2"), "prod", "run-2")
    canary = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
        "Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}, "WaitIntervalInSeconds": 60}}}
    sagemaker = boto3.client("sagemaker")
    with pytest.raises(sagemaker.exceptions.ClientError, match="at most 50% of the variant"):
        sagemaker.update_endpoint(EndpointName="churn-dev-prod", EndpointConfigName=second["config"], DeploymentConfig=canary)


def test_a_serverless_model_is_created_without_network_isolation_or_capture(hosting, model_tarball, monkeypatch):
    document = json.loads(SPEC.model_dump_json())
    document["drift"]["enabled"] = False
    spec = parse_spec(document, "test", {"deployment": {"serverless": {"memory_mb": 2048}, "data_capture_percent": 0,
                                                         "strategy": "all_at_once"}})
    monkeypatch.setenv("MODEL_SPEC", spec.model_dump_json())
    lambda_config.model_spec.cache_clear()
    deployed = deploy(run_state(register(model_tarball, "v1"), "run-1"), "staging", "run-1")
    sagemaker = boto3.client("sagemaker")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=deployed["config"])
    assert not config.get("DataCaptureConfig") and not config.get("KmsKeyId")


@pytest.mark.parametrize(("instance_type", "refused"), [("ml.g5.xlarge", True), ("ml.p3.2xlarge", False)])
def test_the_emulation_refuses_a_training_volume_key_on_local_storage_instances(hosting, instance_type, refused):
    sagemaker = boto3.client("sagemaker")
    request = {"TrainingJobName": f"job-{refused}", "RoleArn": "arn:aws:iam::123456789012:role/training",
               "AlgorithmSpecification": {"TrainingImage": "i", "TrainingInputMode": "File"},
               "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models/"},
               "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 30,
                                  "VolumeKmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/1234"},
               "StoppingCondition": {"MaxRuntimeInSeconds": 60}}
    if refused:
        with pytest.raises(sagemaker.exceptions.ClientError, match="VolumeKmsKeyId cannot be specified"):
            sagemaker.create_training_job(**request)
    else:
        sagemaker.create_training_job(**request)
        with pytest.raises(sagemaker.exceptions.ClientError, match="already existing training job"):
            sagemaker.create_training_job(**request)



@pytest.mark.parametrize(("approved_by", "status", "reason"), [
    (None, "Approved", "no APPROVED decision in the audit trail"),
    ("ml-lead@example.com", "PendingManualApproval", "not Approved"),
    ("mallory@example.com", "Approved", "not a listed approver"),
    ("ds@example.com", "Approved", "not a listed approver"),
])
def test_the_deploy_step_refuses_a_package_without_a_valid_audited_approval(hosting, model_tarball, approved_by, status, reason):
    from lambdas.endpoint.logic import ReleaseRefused
    state = run_state(register(model_tarball, "run-1", approved_by=approved_by, status=status), "run-1")
    with pytest.raises(ReleaseRefused, match=reason):
        deploy(state, "staging", "run-1")
    sagemaker = boto3.client("sagemaker")
    assert sagemaker.list_models()["Models"] == [] and sagemaker.list_endpoints()["Endpoints"] == []


def test_a_self_approval_recorded_in_the_audit_trail_cannot_deploy(hosting, model_tarball):
    from lambdas.endpoint.logic import ReleaseRefused
    arn = register(model_tarball, "run-1")
    boto3.resource("dynamodb").Table(AUDIT_TABLE).update_item(
        Key={"pk": "model#churn", "sk": "approval#run-1"}, UpdateExpression="SET requested_by = :r",
        ExpressionAttributeValues={":r": "arn:aws:sts::123456789012:assumed-role/ds/ml-lead@example.com"})
    with pytest.raises(ReleaseRefused, match="started its run"):
        deploy(run_state(arn, "run-1"), "staging", "run-1")


# ------------------------------------------------------------------ hosting: shared (inference components)

SHARED = {"hosting": "shared", "data_capture_percent": 100, "strategy": "canary", "canary_percent": 50,
          "shared": {"memory_mb": 1024, "cpus": 0.5, "min_copies": 0, "max_copies": 3}}


@pytest.fixture
def shared_hosting(hosting, monkeypatch):
    """The environment's shared endpoint as the control stack makes it (stacks/constructs/shared_hosting.py)."""
    use_spec(monkeypatch, SHARED)
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_endpoint_config(
        EndpointConfigName="shared-pool", ExecutionRoleArn="arn:aws:iam::123456789012:role/shared",
        ProductionVariants=[{"VariantName": "AllTraffic", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1,
                             "ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 3},
                             "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}}],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100,
                           "DestinationS3Uri": f"s3://{BUCKET}/data-capture",
                           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
    sagemaker.create_endpoint(EndpointName="mlops-dev-shared", EndpointConfigName="shared-pool")
    return hosting


def component(name: str) -> dict:
    sagemaker = boto3.client("sagemaker")
    sagemaker.describe_inference_component(InferenceComponentName=name)  # the emulation settles on the next describe
    return sagemaker.describe_inference_component(InferenceComponentName=name)


def package_of_component(name: str) -> str:
    model = boto3.client("sagemaker").describe_model(ModelName=component(name)["Specification"]["ModelName"])
    return model["Containers"][0]["ModelPackageName"]


def test_a_shared_hosted_model_is_smoke_tested_on_its_own_component_and_serves_from_zero_copies(shared_hosting, model_tarball):
    state = run_state(register(model_tarball, "v1"), "run-1")
    smoke_target = deploy(state, "smoke", "run-1")
    assert smoke_target["hosting"] == "shared" and smoke_target["shared_endpoint"] == "mlops-dev-shared"
    assert smoke_target["endpoint"].startswith("churn-dev-smoke-run-1")
    assert component(smoke_target["endpoint"])["RuntimeConfig"]["CurrentCopyCount"] == 1
    verdict = smoke(state, "smoke", "run-1")  # the answer names the model: its container's MLOPS_MODEL
    assert verdict["rows"] == 20
    served = deploy(state, "prod", "run-1")
    assert served["action"] == "created" and served["endpoint"] == "churn-dev-prod"
    described = component("churn-dev-prod")
    assert described["EndpointName"] == "mlops-dev-shared" and described["RuntimeConfig"]["DesiredCopyCount"] == 0
    assert described["Specification"]["ComputeResourceRequirements"] == {"NumberOfCpuCoresRequired": 0.5,
                                                                        "MinMemoryRequiredInMb": 1024}
    assert boto3.client("sagemaker").describe_model(ModelName=served["model"])["Containers"][0]["Environment"] == {
        "MLOPS_MODEL": "churn"}


def test_a_new_version_rolls_the_component_with_alarm_rollback_and_mlops_rollback_goes_back(shared_hosting, model_tarball,
                                                                                           monkeypatch):
    from typer.testing import CliRunner

    from pipelines import cli, client

    first, second = register(model_tarball, "v1"), register(model_tarball, "v2")
    deploy(run_state(first, "run-1"), "prod", "run-1")
    component("churn-dev-prod")
    updated = deploy(run_state(second, "run-2"), "prod", "run-2")
    assert updated["action"] == "updated (rolling)" and updated["previous_config"] == "churn-dev-prod-run-1"
    policy = component("churn-dev-prod")["LastDeploymentConfig"]
    assert policy["RollingUpdatePolicy"]["MaximumBatchSize"] == {"Type": "CAPACITY_PERCENT", "Value": 50}
    assert policy["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": "churn-dev-prod-5xx-rate"},
                                                             {"AlarmName": "churn-dev-prod-p99-latency"}]
    assert package_of_component("churn-dev-prod") == second
    monkeypatch.setattr(client, "target_environment", lambda env: client.Target(env, "123456789012", "us-east-1"))
    monkeypatch.setattr(client.Pipelines, "spec", lambda self, model: lambda_config.model_spec())  # hosting: shared
    cli.console.width = 200
    result = CliRunner().invoke(cli.app, ["rollback", "churn"])
    assert result.exit_code == 0, result.output
    assert "churn-dev-prod: version 2 -> 1 (updated (rolling))" in result.output
    assert package_of_component("churn-dev-prod") == first


def test_a_failed_shared_release_restores_the_component_and_deletes_the_smoke_component(shared_hosting, model_tarball):
    good = run_state(register(model_tarball, "v1"), "run-1")
    deploy(good, "prod", "run-1")
    component("churn-dev-prod")
    bad = run_state(register(broken_tarball(), "v2"), "run-2")
    smoke_target = deploy(bad, "smoke", "run-2")["endpoint"]
    component(smoke_target)
    with pytest.raises(SmokeTestFailed):
        smoke(bad, "smoke", "run-2")
    rolled = restore(bad, "run-2")
    assert rolled["restored"] == {"smoke": "deleted (it served nothing before this run)"}
    assert package_status(bad) == "Rejected" and package_of_component("churn-dev-prod") == good["registration"]["model_package_arn"]
    names = [c["InferenceComponentName"] for c in boto3.client("sagemaker").list_inference_components()["InferenceComponents"]]
    assert smoke_target not in names


def test_an_alarm_in_alarm_rolls_the_component_back_to_the_model_it_served(shared_hosting, model_tarball):
    first = register(model_tarball, "v1")
    deploy(run_state(first, "run-1"), "prod", "run-1")
    component("churn-dev-prod")
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName="churn-dev-prod-5xx-rate", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    boto3.client("cloudwatch").set_alarm_state(AlarmName="churn-dev-prod-5xx-rate", StateValue="ALARM", StateReason="5xx")
    second = run_state(register(model_tarball, "v2"), "run-2")
    deploy(second, "prod", "run-2")
    described = component("churn-dev-prod")
    # What the state machine's ProdReady? choice reads as a rollback: InService, serving another model than asked.
    assert described["InferenceComponentStatus"] == "InService"
    assert described["Specification"]["ModelName"] == "churn-dev-prod-run-1" != second["deployment"]["prod"]["config"]
    rolled = restore({**second, "error": {"Error": "DeploymentRolledBack", "Cause": "alarm"}}, "run-2")
    assert rolled["restored"]["prod"] == "serves churn-dev-prod-run-1 already (rolled back by its alarms)"


def test_an_old_dedicated_endpoint_of_the_same_name_does_not_hide_the_shared_component(shared_hosting, model_tarball,
                                                                                     monkeypatch):
    from lambdas.shared import dal

    old, new = register(model_tarball, "v1"), register(model_tarball, "v2")
    use_spec(monkeypatch, DEPLOYMENT)
    deploy(run_state(old, "run-1"), "prod", "run-1")  # dedicated, before the model moved to shared hosting
    use_spec(monkeypatch, SHARED)
    deploy(run_state(new, "run-2"), "prod", "run-2")
    component("churn-dev-prod")
    assert dal.Endpoints().served_package("churn-dev-prod", "shared") == new
    assert dal.Endpoints().served_package("churn-dev-prod", "dedicated") == old


def test_where_nothing_serves_the_champion_is_the_newest_released_package_not_a_later_unreleased_approval(
        hosting, model_tarball):
    from lambdas.shared import dal

    registry = dal.ModelRegistry("churn-dev")
    first, stopped = register(model_tarball, "v1"), register(model_tarball, "v2")
    assert registry.champion("", "dedicated")["ModelPackageArn"] == stopped  # before any marker (a group released before it)
    registry.mark_released(first, "run-1")  # the notify task of the run that succeeded
    assert registry.champion("", "dedicated")["ModelPackageArn"] == first  # v2 was approved, but its run never released it
    assert registry.describe(first)["CustomerMetadataProperties"]["released_by_run"] == "run-1"

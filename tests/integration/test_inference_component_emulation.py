"""SageMaker inference components in the local emulation (pipelines/local/inference_components.py, serving.py, iam.py):
the calls a shared-hosting deployer makes are accepted and answered like AWS, and each documented refusal holds."""

import io
import json
import tarfile

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from pipelines.local import iam, moto_extensions
from pipelines.local.inference_components import INFERENCE_COMPONENT_NO_CAPACITY
from pipelines.local.serving import Hosting, LocalHostingServer
from tests.integration.conftest import denied

REGION, ACCOUNT, BUCKET = "us-east-1", "123456789012", "hosting-artifacts"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/shared-hosting"
ENDPOINT = "shared-dev"
COMPUTE = {"NumberOfCpuCoresRequired": 1, "MinMemoryRequiredInMb": 1024}
DIMENSION = "sagemaker:inference-component:DesiredCopyCount"

# A model whose answer names it: which model served a request is visible in the response.
INFERENCE_PY = b'''import json, pathlib
def model_fn(model_dir):
    return pathlib.Path(model_dir, "name.txt").read_text()
def input_fn(body, content_type):
    return json.loads(body)
def predict_fn(rows, model):
    return [{"model": model} for _ in rows]
def output_fn(predictions, accept):
    return json.dumps(predictions), "application/json"
'''


def _tarball(name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, data in (("name.txt", name.encode()), ("code/inference.py", INFERENCE_PY)):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def aws():
    moto_extensions.install()
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        for model in ("churn-v1", "churn-v2", "houses-v1"):
            boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=f"{model}.tar.gz", Body=_tarball(model))
            sagemaker.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={
                "Image": "inference-image", "ModelDataUrl": f"s3://{BUCKET}/{model}.tar.gz"})
        yield sagemaker


def shared_config(sagemaker, name: str = "shared-dev-1", instance_type: str = "ml.m5.xlarge", **extra) -> None:
    sagemaker.create_endpoint_config(EndpointConfigName=name, ExecutionRoleArn=ROLE, ProductionVariants=[{
        "VariantName": "AllTraffic", "InstanceType": instance_type, "InitialInstanceCount": 1,
        "ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 2},
        "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}}], **extra)


def shared_endpoint(sagemaker, name: str = ENDPOINT, instance_type: str = "ml.m5.xlarge", **extra) -> None:
    shared_config(sagemaker, f"{name}-1", instance_type, **extra)
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-1")


def component(sagemaker, name: str = "churn-dev", model: str = "churn-v1", copies: int = 1, endpoint: str = ENDPOINT,
              compute: dict | None = None, **extra) -> str:
    return sagemaker.create_inference_component(
        InferenceComponentName=name, EndpointName=endpoint, VariantName="AllTraffic",
        Specification={"ModelName": model, "ComputeResourceRequirements": compute or COMPUTE},
        RuntimeConfig={"CopyCount": copies}, Tags=[{"Key": "mlops:model", "Value": "churn"}], **extra)[
        "InferenceComponentArn"]


def rolling(alarms: list[str] | None = None) -> dict:
    config = {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1}, "WaitIntervalInSeconds": 0,
                                      "MaximumExecutionTimeoutInSeconds": 600}}
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": alarm} for alarm in alarms]}
    return config


def refused(call, fragment: str) -> str:
    with pytest.raises(ClientError) as error:
        call()
    assert error.value.response["Error"]["Code"] in ("ValidationException", "ValidationError"), error.value
    assert fragment in str(error.value), error.value
    return str(error.value)


def unvalidated(service: str = "sagemaker"):
    """A client that sends what botocore would refuse itself: the emulation must refuse it as the service does."""
    return boto3.client(service, region_name=REGION, config=Config(parameter_validation=False))


# ---------------------------------------------------------------------------------------------- endpoint configs

def test_an_endpoint_config_for_inference_components_names_no_model_and_keeps_its_execution_role(aws):
    shared_config(aws, instance_type="ml.g5.xlarge", Tags=[{"Key": "env", "Value": "dev"}])
    described = aws.describe_endpoint_config(EndpointConfigName="shared-dev-1")
    assert described["ExecutionRoleArn"] == ROLE and "ModelName" not in described["ProductionVariants"][0]
    assert described["ProductionVariants"][0]["ManagedInstanceScaling"]["MinInstanceCount"] == 0
    aws.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="shared-dev-1")
    assert aws.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "InService"


def test_a_config_whose_variants_name_no_model_needs_an_execution_role(aws):
    refused(lambda: aws.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[
        {"VariantName": "AllTraffic", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}]), "ExecutionRoleArn")


def test_a_config_cannot_mix_model_variants_with_inference_component_variants(aws):
    refused(lambda: aws.create_endpoint_config(EndpointConfigName="c", ExecutionRoleArn=ROLE, ProductionVariants=[
        {"VariantName": "A", "ModelName": "churn-v1", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1},
        {"VariantName": "B", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}]), "every production variant")


def test_a_serverless_variant_cannot_host_inference_components(aws):
    refused(lambda: aws.create_endpoint_config(EndpointConfigName="c", ExecutionRoleArn=ROLE, ProductionVariants=[
        {"VariantName": "A", "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}]), "InstanceType")


# ---------------------------------------------------------------------------------------------- create and describe

def test_a_created_component_is_described_in_service_with_aws_fields(aws):
    shared_endpoint(aws)
    arn = component(aws, copies=2)
    assert arn == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:inference-component/churn-dev"
    described = aws.describe_inference_component(InferenceComponentName="churn-dev")
    assert described["InferenceComponentStatus"] == "InService"
    assert described["RuntimeConfig"] == {"DesiredCopyCount": 2, "CurrentCopyCount": 2}
    assert described["Specification"] == {"ModelName": "churn-v1", "ComputeResourceRequirements": {
        "NumberOfCpuCoresRequired": 1.0, "MinMemoryRequiredInMb": 1024}}
    assert (described["EndpointName"], described["VariantName"], described["InferenceComponentArn"]) == (
        ENDPOINT, "AllTraffic", arn)
    assert described["EndpointArn"] == aws.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"]
    assert described["CreationTime"] <= described["LastModifiedTime"]
    assert "FailureReason" not in described and "LastDeploymentConfig" not in described


def test_a_component_name_is_unique_in_the_account(aws):
    shared_endpoint(aws)
    component(aws)
    refused(lambda: component(aws), "already existing inference component")


@pytest.mark.parametrize("name", ["-leading-hyphen", "trailing-", "under_score", "x" * 64])
def test_a_component_name_follows_botocores_pattern_and_length(aws, name):
    shared_endpoint(aws)
    refused(lambda: component(unvalidated(), name=name), "InferenceComponentName")


def test_a_component_needs_an_existing_endpoint(aws):
    refused(lambda: component(aws, endpoint="nowhere"), "Could not find endpoint")


def test_a_component_needs_an_endpoint_whose_config_names_no_model(aws):
    aws.create_endpoint_config(EndpointConfigName="dedicated-1", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "churn-v1", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}])
    aws.create_endpoint(EndpointName="dedicated", EndpointConfigName="dedicated-1")
    refused(lambda: component(aws, endpoint="dedicated"), "names no ModelName")


def test_a_component_needs_an_in_service_endpoint(aws):
    from moto.sagemaker.models import sagemaker_backends

    shared_endpoint(aws)
    sagemaker_backends[ACCOUNT][REGION].endpoints[ENDPOINT].endpoint_status = "Updating"
    refused(lambda: component(aws), "InService endpoint")


def test_a_component_needs_an_existing_variant_and_model(aws):
    shared_endpoint(aws)
    refused(lambda: aws.create_inference_component(
        InferenceComponentName="x", EndpointName=ENDPOINT, VariantName="Blue",
        Specification={"ModelName": "churn-v1", "ComputeResourceRequirements": COMPUTE}, RuntimeConfig={"CopyCount": 1}),
        "Could not find production variant Blue")
    refused(lambda: component(aws, model="churn-v9"), "Could not find model")


@pytest.mark.parametrize("compute, what", [
    ({"NumberOfCpuCoresRequired": 8, "MinMemoryRequiredInMb": 1024}, "vCPUs"),          # ml.m5.xlarge: 4 vCPUs
    ({"NumberOfCpuCoresRequired": 1, "MinMemoryRequiredInMb": 20 * 1024}, "memory"),    # 16 GiB
    ({"MinMemoryRequiredInMb": 1024, "NumberOfAcceleratorDevicesRequired": 1}, "accelerators"),  # no GPU
])
def test_compute_requirements_must_fit_one_instance_of_the_variants_type(aws, compute, what):
    shared_endpoint(aws)
    refused(lambda: component(aws, compute=compute), what)


def test_a_gpu_component_fits_a_g5_variant(aws):
    shared_endpoint(aws, instance_type="ml.g5.xlarge")
    component(aws, compute={"NumberOfAcceleratorDevicesRequired": 1, "NumberOfCpuCoresRequired": 2,
                            "MinMemoryRequiredInMb": 8192})


@pytest.mark.parametrize("compute, field", [
    ({"NumberOfCpuCoresRequired": 0.1, "MinMemoryRequiredInMb": 1024}, "numberOfCpuCoresRequired"),
    ({"NumberOfCpuCoresRequired": 1, "MinMemoryRequiredInMb": 64}, "minMemoryRequiredInMb"),
    ({"NumberOfCpuCoresRequired": 1}, "MinMemoryRequiredInMb"),
])
def test_compute_requirements_below_botocores_minimums_are_refused_by_the_service_too(aws, compute, field):
    shared_endpoint(aws)
    refused(lambda: component(unvalidated(), compute=compute), field)


def test_a_negative_copy_count_is_refused_and_zero_is_accepted(aws):
    shared_endpoint(aws)
    refused(lambda: component(unvalidated(), copies=-1), "copyCount")
    component(aws, copies=0)
    assert aws.describe_inference_component(InferenceComponentName="churn-dev")["RuntimeConfig"] == {
        "DesiredCopyCount": 0, "CurrentCopyCount": 0}


def test_specification_and_specifications_together_are_refused(aws):
    shared_endpoint(aws)
    spec = {"ModelName": "churn-v1", "ComputeResourceRequirements": COMPUTE}
    refused(lambda: aws.create_inference_component(
        InferenceComponentName="x", EndpointName=ENDPOINT, VariantName="AllTraffic", Specification=spec,
        Specifications=[{**spec, "InstanceType": "ml.m5.xlarge"}], RuntimeConfig={"CopyCount": 1}), "not both")


def test_the_actions_answer_through_motos_server_too():
    from moto.server import ThreadedMotoServer

    moto_extensions.install()
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        sagemaker = boto3.client("sagemaker", region_name=REGION, endpoint_url=f"http://{host}:{port}")
        sagemaker.create_model(ModelName="churn-v1", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "i"})
        shared_endpoint(sagemaker)
        assert component(sagemaker).endswith(":inference-component/churn-dev")
        assert sagemaker.describe_inference_component(InferenceComponentName="churn-dev")["InferenceComponentStatus"] \
            == "InService"
        refused(lambda: component(sagemaker), "already existing inference component")
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- updates

def test_an_update_before_the_component_is_in_service_is_refused(aws):
    shared_endpoint(aws)
    component(aws)
    refused(lambda: aws.update_inference_component_runtime_config(
        InferenceComponentName="churn-dev", DesiredRuntimeConfig={"CopyCount": 2}), "is Creating")
    aws.describe_inference_component(InferenceComponentName="churn-dev")  # the creation completes
    aws.update_inference_component_runtime_config(InferenceComponentName="churn-dev", DesiredRuntimeConfig={"CopyCount": 2})
    refused(lambda: aws.update_inference_component(
        InferenceComponentName="churn-dev", RuntimeConfig={"CopyCount": 3}), "is Updating")
    described = aws.describe_inference_component(InferenceComponentName="churn-dev")
    assert described["InferenceComponentStatus"] == "InService"
    assert described["RuntimeConfig"] == {"DesiredCopyCount": 2, "CurrentCopyCount": 2}


def test_a_rolling_update_deploys_the_new_model_and_records_its_deployment_config(aws):
    shared_endpoint(aws)
    component(aws)
    aws.describe_inference_component(InferenceComponentName="churn-dev")
    boto3.client("cloudwatch", region_name=REGION).put_metric_alarm(
        AlarmName="churn-5xx", MetricName="Invocation5XXErrors", Namespace="AWS/SageMaker", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    aws.update_inference_component(
        InferenceComponentName="churn-dev", Specification={"ModelName": "churn-v2", "ComputeResourceRequirements": COMPUTE},
        RuntimeConfig={"CopyCount": 1}, DeploymentConfig=rolling(["churn-5xx"]))
    described = aws.describe_inference_component(InferenceComponentName="churn-dev")
    assert described["InferenceComponentStatus"] == "InService" and described["Specification"]["ModelName"] == "churn-v2"
    assert described["LastDeploymentConfig"] == rolling(["churn-5xx"])


def test_a_rolling_update_whose_alarm_is_in_alarm_rolls_back_to_the_previous_model(aws):
    shared_endpoint(aws)
    component(aws, copies=2)
    aws.describe_inference_component(InferenceComponentName="churn-dev")
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    cloudwatch.put_metric_alarm(AlarmName="churn-5xx", MetricName="Invocation5XXErrors", Namespace="AWS/SageMaker",
                                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanOrEqualToThreshold")
    aws.update_inference_component(
        InferenceComponentName="churn-dev", Specification={"ModelName": "churn-v2", "ComputeResourceRequirements": COMPUTE},
        RuntimeConfig={"CopyCount": 3}, DeploymentConfig=rolling(["churn-5xx"]))
    cloudwatch.set_alarm_state(AlarmName="churn-5xx", StateValue="ALARM", StateReason="5xx during the bake")
    described = aws.describe_inference_component(InferenceComponentName="churn-dev")
    assert described["InferenceComponentStatus"] == "InService"
    assert described["Specification"]["ModelName"] == "churn-v1"
    assert described["RuntimeConfig"] == {"DesiredCopyCount": 2, "CurrentCopyCount": 2}
    assert described["LastDeploymentConfig"]["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "churn-5xx"}]}


def test_an_update_checks_its_new_specification_like_a_create(aws):
    shared_endpoint(aws)
    component(aws)
    aws.describe_inference_component(InferenceComponentName="churn-dev")
    refused(lambda: aws.update_inference_component(InferenceComponentName="churn-dev", Specification={
        "ModelName": "churn-v9", "ComputeResourceRequirements": COMPUTE}), "Could not find model")
    refused(lambda: aws.update_inference_component(InferenceComponentName="churn-dev", Specification={
        "ModelName": "churn-v2", "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 64 * 1024}}), "memory")


@pytest.mark.parametrize("policy, fragment", [
    ({"MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 60}, "WaitIntervalInSeconds": 0}, "between 5% and 50%"),
    ({"MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 4}, "WaitIntervalInSeconds": 0}, "between 5% and 50%"),
    ({"MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1}}, "WaitIntervalInSeconds"),
    ({"MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1}, "WaitIntervalInSeconds": 0,
      "MaximumExecutionTimeoutInSeconds": 60}, "600 and 28800"),
])
def test_a_rolling_update_policy_outside_the_documented_ranges_is_refused(aws, policy, fragment):
    shared_endpoint(aws)
    component(aws)
    aws.describe_inference_component(InferenceComponentName="churn-dev")
    refused(lambda: unvalidated().update_inference_component(
        InferenceComponentName="churn-dev", RuntimeConfig={"CopyCount": 2},
        DeploymentConfig={"RollingUpdatePolicy": policy}), fragment)


def test_updating_or_deleting_an_unknown_component_is_refused(aws):
    for call in (lambda: aws.describe_inference_component(InferenceComponentName="ghost"),
                 lambda: aws.update_inference_component_runtime_config(InferenceComponentName="ghost",
                                                                       DesiredRuntimeConfig={"CopyCount": 1}),
                 lambda: aws.delete_inference_component(InferenceComponentName="ghost")):
        refused(call, "inference-component/ghost")


def test_a_deleted_component_is_gone(aws):
    shared_endpoint(aws)
    component(aws)
    aws.delete_inference_component(InferenceComponentName="churn-dev")
    refused(lambda: aws.describe_inference_component(InferenceComponentName="churn-dev"), "Could not find")
    assert aws.list_inference_components()["InferenceComponents"] == []


# ---------------------------------------------------------------------------------------------- list

def test_list_filters_by_endpoint_and_name_sorts_and_pages(aws):
    shared_endpoint(aws)
    shared_endpoint(aws, name="shared-prod")
    for name in ("a-one", "b-two", "c-three"):
        component(aws, name=name)
    component(aws, name="prod-one", endpoint="shared-prod")
    names = lambda page: [c["InferenceComponentName"] for c in page["InferenceComponents"]]  # noqa: E731
    assert names(aws.list_inference_components(EndpointNameEquals=ENDPOINT, SortBy="Name", SortOrder="Ascending")) == [
        "a-one", "b-two", "c-three"]
    assert names(aws.list_inference_components(NameContains="one", SortBy="Name")) == ["prod-one", "a-one"]
    first = aws.list_inference_components(EndpointNameEquals=ENDPOINT, SortBy="Name", SortOrder="Ascending", MaxResults=2)
    second = aws.list_inference_components(EndpointNameEquals=ENDPOINT, SortBy="Name", SortOrder="Ascending",
                                           MaxResults=2, NextToken=first["NextToken"])
    assert names(first) == ["a-one", "b-two"] and names(second) == ["c-three"] and "NextToken" not in second
    summary = aws.list_inference_components(NameContains="prod")["InferenceComponents"][0]
    assert summary["InferenceComponentStatus"] == "InService" and summary["VariantName"] == "AllTraffic"
    assert names(aws.list_inference_components(StatusEquals="Updating")) == []


# ---------------------------------------------------------------------------------------------- application auto scaling

def test_application_auto_scaling_accepts_a_component_target_and_its_predefined_metrics(aws):
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    target = {"ServiceNamespace": "sagemaker", "ResourceId": "inference-component/churn-dev", "ScalableDimension": DIMENSION}
    scaling.register_scalable_target(**target, MinCapacity=0, MaxCapacity=4)
    for metric in ("SageMakerInferenceComponentInvocationsPerCopy",
                   "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"):
        scaling.put_scaling_policy(PolicyName=metric, PolicyType="TargetTrackingScaling", **target,
                                   TargetTrackingScalingPolicyConfiguration={
                                       "PredefinedMetricSpecification": {"PredefinedMetricType": metric}, "TargetValue": 5})
    scaling.put_scaling_policy(PolicyName="from-zero", PolicyType="StepScaling", **target, StepScalingPolicyConfiguration={
        "AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Maximum", "Cooldown": 60,
        "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]})
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"][0]["MaxCapacity"] == 4
    assert len(scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]) == 3


# ---------------------------------------------------------------------------------------------- invoke

@pytest.fixture
def hosting(aws, tmp_path):
    with LocalHostingServer(Hosting(tmp_path)) as server:
        yield boto3.client("sagemaker-runtime", region_name=REGION, endpoint_url=server.url)


def invoke(runtime, endpoint: str = ENDPOINT, component_name: str | None = "churn-dev", **extra) -> dict:
    arguments = {"InferenceComponentName": component_name} if component_name else {}
    response = runtime.invoke_endpoint(EndpointName=endpoint, Body=json.dumps([[1, 2]]), ContentType="application/json",
                                       **arguments, **extra)
    return {"body": json.loads(response["Body"].read()), "variant": response["InvokedProductionVariant"]}


def test_invoking_a_component_serves_its_model(aws, hosting):
    shared_endpoint(aws)
    component(aws, name="churn-dev", model="churn-v1")
    component(aws, name="houses-dev", model="houses-v1")
    assert invoke(hosting, component_name="churn-dev") == {"body": [{"model": "churn-v1"}], "variant": "AllTraffic"}
    assert invoke(hosting, component_name="houses-dev")["body"] == [{"model": "houses-v1"}]


def test_invoking_after_a_rolling_update_serves_the_new_model_and_after_a_rollback_the_old(aws, hosting):
    shared_endpoint(aws)
    component(aws)
    assert invoke(hosting)["body"] == [{"model": "churn-v1"}]
    aws.update_inference_component(InferenceComponentName="churn-dev", Specification={
        "ModelName": "churn-v2", "ComputeResourceRequirements": COMPUTE}, DeploymentConfig=rolling())
    assert invoke(hosting)["body"] == [{"model": "churn-v2"}]


def invocation_refused(call, message: str) -> None:
    with pytest.raises(ClientError) as error:
        call()
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.value.response["Error"]["Message"] == message


def test_invocations_sagemaker_refuses_are_refused_with_its_messages(aws, hosting):
    shared_endpoint(aws)
    shared_endpoint(aws, name="shared-prod")
    component(aws)
    component(aws, name="prod-only", endpoint="shared-prod")
    aws.create_endpoint_config(EndpointConfigName="dedicated-1", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "churn-v1", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}])
    aws.create_endpoint(EndpointName="dedicated", EndpointConfigName="dedicated-1")
    invocation_refused(lambda: invoke(hosting, component_name=None), "Inference Component Name header is required for "
                       "endpoints to which you plan to deploy inference components.")
    invocation_refused(lambda: invoke(hosting, endpoint="dedicated"), "Inference Component Name header is not allowed "
                       "for endpoints to which you dont plan to deploy inference components. Please remove the Inference "
                       "Component Name header and try again.")
    invocation_refused(lambda: invoke(hosting, component_name="ghost"),
                       f"Inference component ghost does not exist on endpoint {ENDPOINT}.")
    invocation_refused(lambda: invoke(hosting, component_name="prod-only"),
                       f"Inference component prod-only does not exist on endpoint {ENDPOINT}.")
    assert invoke(hosting, endpoint="dedicated", component_name=None)["body"] == [{"model": "churn-v1"}]


def test_a_component_at_zero_copies_answers_no_capacity_and_a_scalable_target_scales_it_out_for_the_retry(aws, hosting):
    shared_endpoint(aws)
    component(aws, copies=0)
    boto3.client("application-autoscaling", region_name=REGION).register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId="inference-component/churn-dev", ScalableDimension=DIMENSION,
        MinCapacity=0, MaxCapacity=2)
    invocation_refused(lambda: invoke(hosting), INFERENCE_COMPONENT_NO_CAPACITY)
    failures = boto3.client("cloudwatch", region_name=REGION).list_metrics(
        Namespace="AWS/SageMaker", MetricName="NoCapacityInvocationFailures")["Metrics"]
    assert failures[0]["Dimensions"] == [{"Name": "InferenceComponentName", "Value": "churn-dev"}]
    assert invoke(hosting)["body"] == [{"model": "churn-v1"}]
    assert aws.describe_inference_component(InferenceComponentName="churn-dev")["RuntimeConfig"] == {
        "DesiredCopyCount": 1, "CurrentCopyCount": 1}


@pytest.mark.parametrize("target, max_copies", [("other", 2), ("churn-dev", 0)],
                         ids=["no scalable target of its own", "a target that may not grow"])
def test_a_component_at_zero_copies_that_may_not_scale_out_stays_at_zero(aws, hosting, target, max_copies):
    shared_endpoint(aws)
    component(aws, copies=0)
    boto3.client("application-autoscaling", region_name=REGION).register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=f"inference-component/{target}", ScalableDimension=DIMENSION,
        MinCapacity=0, MaxCapacity=max_copies)
    for _ in range(2):
        invocation_refused(lambda: invoke(hosting), INFERENCE_COMPONENT_NO_CAPACITY)
    assert aws.describe_inference_component(InferenceComponentName="churn-dev")["RuntimeConfig"]["CurrentCopyCount"] == 0


def test_a_components_traffic_is_captured_under_the_endpoint_with_nothing_naming_the_component(aws, hosting):
    capture = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"s3://{BUCKET}/data-capture",
               "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}
    shared_endpoint(aws, DataCaptureConfig=capture)
    component(aws, name="churn-dev", model="churn-v1")
    component(aws, name="houses-dev", model="houses-v1")
    invoke(hosting, component_name="churn-dev", InferenceId="churn-request-1")
    invoke(hosting, component_name="houses-dev")
    s3 = boto3.client("s3", region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="data-capture/")["Contents"]]
    assert len(keys) == 2 and all(key.startswith(f"data-capture/{ENDPOINT}/AllTraffic/") for key in keys)
    records = [json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) for key in keys]
    assert {r["eventMetadata"].get("inferenceId") for r in records} == {"churn-request-1", None}
    assert not any(name in json.dumps(records) + " ".join(keys) for name in ("churn-dev", "houses-dev"))


# ---------------------------------------------------------------------------------------------- enforced IAM

def _session_allowed(client, name: str, statements: list[dict]) -> iam.Credentials:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                                     "Action": "sts:AssumeRole"}]}
    arn = client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    client.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": statements}))
    granted = boto3.client("sts", region_name=REGION).assume_role(RoleArn=arn, RoleSessionName="session")["Credentials"]
    return iam.Credentials(granted["AccessKeyId"], granted["SecretAccessKey"], granted["SessionToken"])


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name}"


@pytest.fixture
def enforced(aws):
    iam.create_admin(ACCOUNT, REGION)
    shared_endpoint(aws)
    yield boto3.client("iam", region_name=REGION)


def test_creating_a_component_is_authorized_on_the_component_and_on_the_endpoint(enforced):
    only_component = _session_allowed(enforced, "only-component", [
        {"Effect": "Allow", "Action": "sagemaker:CreateInferenceComponent", "Resource": _arn("inference-component", "churn-*")}])
    both = _session_allowed(enforced, "both", [{"Effect": "Allow", "Action": "sagemaker:CreateInferenceComponent",
                                               "Resource": [_arn("inference-component", "churn-*"), _arn("endpoint", ENDPOINT)]}])
    with iam.enforced():
        message = denied(lambda: component(only_component.client("sagemaker", REGION)))
        assert "sagemaker:CreateInferenceComponent" in message
        denied(lambda: component(both.client("sagemaker", REGION), name="houses-dev", model="houses-v1"))
        assert component(both.client("sagemaker", REGION)) == _arn("inference-component", "churn-dev")


def test_the_model_arn_condition_key_limits_which_model_a_component_may_serve(enforced):
    churn_only = _session_allowed(enforced, "churn-only", [{
        "Effect": "Allow", "Action": "sagemaker:CreateInferenceComponent",
        "Resource": [_arn("inference-component", "*"), _arn("endpoint", ENDPOINT)],
        "Condition": {"ArnLike": {"sagemaker:ModelArn": _arn("model", "churn-*")}}}])
    with iam.enforced():
        sagemaker = churn_only.client("sagemaker", REGION)
        denied(lambda: component(sagemaker, name="houses-dev", model="houses-v1"))
        component(sagemaker, name="churn-dev", model="churn-v1")


def test_updating_describing_and_deleting_a_component_are_authorized_on_the_component(enforced):
    component(boto3.client("sagemaker", region_name=REGION))
    component(boto3.client("sagemaker", region_name=REGION), name="houses-dev", model="houses-v1")
    actions = ["sagemaker:DescribeInferenceComponent", "sagemaker:UpdateInferenceComponent",
               "sagemaker:UpdateInferenceComponentRuntimeConfig", "sagemaker:DeleteInferenceComponent"]
    churn = _session_allowed(enforced, "churn", [{"Effect": "Allow", "Action": actions,
                                                  "Resource": _arn("inference-component", "churn-*")}])
    with iam.enforced():
        sagemaker = churn.client("sagemaker", REGION)
        sagemaker.describe_inference_component(InferenceComponentName="churn-dev")
        sagemaker.update_inference_component_runtime_config(InferenceComponentName="churn-dev",
                                                            DesiredRuntimeConfig={"CopyCount": 2})
        for call in (lambda: sagemaker.describe_inference_component(InferenceComponentName="houses-dev"),
                     lambda: sagemaker.update_inference_component_runtime_config(
                         InferenceComponentName="houses-dev", DesiredRuntimeConfig={"CopyCount": 2}),
                     lambda: sagemaker.delete_inference_component(InferenceComponentName="houses-dev")):
            denied(call)
        assert "sagemaker:ListInferenceComponents" in denied(lambda: sagemaker.list_inference_components())
        sagemaker.delete_inference_component(InferenceComponentName="churn-dev")


def test_invoking_a_component_is_authorized_on_the_endpoint_and_on_the_component(enforced):
    churn = _session_allowed(enforced, "churn-invoker", [{"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
                                                          "Resource": [_arn("endpoint", ENDPOINT),
                                                                       _arn("inference-component", "churn-*")]}])
    endpoint_only = _session_allowed(enforced, "endpoint-invoker", [
        {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": _arn("endpoint", ENDPOINT)}])
    with iam.enforced():
        runtime = churn.client("sagemaker-runtime", REGION)
        arguments = {"EndpointName": ENDPOINT, "Body": b"{}", "ContentType": "application/json"}
        runtime.invoke_endpoint(**arguments, InferenceComponentName="churn-dev")
        assert "sagemaker:InvokeEndpoint" in denied(lambda: runtime.invoke_endpoint(
            **arguments, InferenceComponentName="houses-dev"))
        denied(lambda: endpoint_only.client("sagemaker-runtime", REGION).invoke_endpoint(
            **arguments, InferenceComponentName="churn-dev"))
        endpoint_only.client("sagemaker-runtime", REGION).invoke_endpoint(**arguments)  # no component: the endpoint


def test_an_endpoint_config_for_components_passes_its_execution_role(enforced):
    may_pass = _session_allowed(enforced, "may-pass", [
        {"Effect": "Allow", "Action": "sagemaker:CreateEndpointConfig", "Resource": _arn("endpoint-config", "*")},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": ROLE}])
    may_not = _session_allowed(enforced, "may-not-pass", [
        {"Effect": "Allow", "Action": "sagemaker:CreateEndpointConfig", "Resource": _arn("endpoint-config", "*")}])
    with iam.enforced():
        assert "iam:PassRole" in denied(lambda: shared_config(may_not.client("sagemaker", REGION), "shared-dev-2"))
        shared_config(may_pass.client("sagemaker", REGION), "shared-dev-3")

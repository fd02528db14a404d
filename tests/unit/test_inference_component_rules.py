"""The pure rules of the inference component emulation (pipelines/local/inference_components.py) and the resources
the enforced-IAM emulation authorizes its requests on (pipelines/local/iam.py, policy_evaluation.py)."""

import json

import pytest
from moto.sagemaker.exceptions import ValidationError

from pipelines import instances
from pipelines.local.iam import additional_sagemaker_resources
from pipelines.local.inference_components import (InferenceComponent, check_compute, check_deployment_config,
                                                  check_endpoint_config, is_component_based)
from pipelines.local.policy_evaluation import request_context

ROLE = "arn:aws:iam::123456789012:role/hosting"
SCOPE = ("us-east-1", "123456789012")


def variant(**extra) -> dict:
    return {"VariantName": "AllTraffic", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1, **extra}


def test_a_config_naming_no_model_is_component_based_and_one_naming_models_is_not():
    assert is_component_based([variant()]) and not is_component_based([variant(ModelName="m")])
    check_endpoint_config([variant(ModelName="m")], None)
    check_endpoint_config([variant()], ROLE)


@pytest.mark.parametrize("variants, role, fragment", [
    ([variant()], None, "ExecutionRoleArn"),
    ([variant(ModelName="m"), variant(VariantName="B")], ROLE, "every production variant"),
    ([{"VariantName": "S", "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}], ROLE, "InstanceType"),
])
def test_component_based_configs_refuse_what_aws_refuses(variants, role, fragment):
    with pytest.raises(ValidationError, match=fragment):
        check_endpoint_config(variants, role)


def test_hosting_resources_come_from_the_ec2_specifications():
    assert instances.hosting_resources("ml.m5.xlarge") == instances.HostResources(4, 16 * 1024, 0)
    assert instances.hosting_resources("ml.c5.large") == instances.HostResources(2, 4 * 1024, 0)
    assert instances.hosting_resources("ml.g5.12xlarge") == instances.HostResources(48, 192 * 1024, 4)
    with pytest.raises(ValueError, match="HOSTING_RESOURCES"):
        instances.hosting_resources("ml.r5.large")


def test_compute_that_fits_one_instance_is_accepted_to_the_last_unit():
    check_compute({"NumberOfCpuCoresRequired": 4, "MinMemoryRequiredInMb": 16 * 1024}, "ml.m5.xlarge")
    check_compute({"NumberOfAcceleratorDevicesRequired": 4, "MinMemoryRequiredInMb": 1024}, "ml.g5.12xlarge")


@pytest.mark.parametrize("requirements, fragment", [
    ({"NumberOfCpuCoresRequired": 4.5, "MinMemoryRequiredInMb": 1024}, "vCPUs"),
    ({"MinMemoryRequiredInMb": 16 * 1024 + 1}, "memory"),
    ({"MinMemoryRequiredInMb": 1024, "NumberOfAcceleratorDevicesRequired": 1}, "accelerators"),
    ({"NumberOfCpuCoresRequired": 0.2, "MinMemoryRequiredInMb": 1024}, "greater than or equal to 0.25"),
    ({"MinMemoryRequiredInMb": 127}, "greater than or equal to 128"),
    ({"NumberOfCpuCoresRequired": 1}, "MinMemoryRequiredInMb"),
    (None, "ComputeResourceRequirements"),
])
def test_compute_that_does_not_fit_or_breaks_botocores_minimums_is_refused(requirements, fragment):
    with pytest.raises(ValidationError, match=fragment):
        check_compute(requirements, "ml.m5.xlarge")


def test_an_instance_type_without_recorded_resources_is_refused_with_the_fix():
    with pytest.raises(ValidationError, match="HOSTING_RESOURCES"):
        check_compute({"MinMemoryRequiredInMb": 1024}, "ml.r5.large")


def policy(size: dict, **extra) -> dict:
    return {"RollingUpdatePolicy": {"MaximumBatchSize": size, "WaitIntervalInSeconds": 0, **extra}}


@pytest.mark.parametrize("config", [
    policy({"Type": "CAPACITY_PERCENT", "Value": 5}), policy({"Type": "CAPACITY_PERCENT", "Value": 50}),
    policy({"Type": "COPY_COUNT", "Value": 3}, RollbackMaximumBatchSize={"Type": "CAPACITY_PERCENT", "Value": 100}),
    {**policy({"Type": "COPY_COUNT", "Value": 1}), "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}]}},
    None,
])
def test_rolling_update_policies_inside_the_documented_ranges_are_accepted(config):
    check_deployment_config(config)


@pytest.mark.parametrize("config, fragment", [
    (policy({"Type": "CAPACITY_PERCENT", "Value": 51}), "between 5% and 50%"),
    (policy({"Type": "INSTANCE_COUNT", "Value": 1}), "COPY_COUNT or CAPACITY_PERCENT"),
    (policy({"Type": "COPY_COUNT", "Value": 0}), "at least 1"),
    (policy({"Type": "COPY_COUNT", "Value": 1}, WaitIntervalInSeconds=3601), "0 and 3600"),
    ({"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}]}}, "RollingUpdatePolicy"),
    ({**policy({"Type": "COPY_COUNT", "Value": 1}), "AutoRollbackConfiguration": {"Alarms": []}}, "1 to 10 alarms"),
])
def test_rolling_update_policies_outside_the_documented_ranges_are_refused(config, fragment):
    with pytest.raises(ValidationError, match=fragment):
        check_deployment_config(config)


def updating(alarms: list[str]) -> InferenceComponent:
    component = InferenceComponent(
        name="churn", arn="arn", endpoint_name="shared", endpoint_arn="arn:e", variant_name="AllTraffic",
        specification={"ModelName": "v2"}, desired_copies=3, tags=[], status="Updating",
        last_deployment_config={**policy({"Type": "COPY_COUNT", "Value": 1}),
                                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in alarms]}})
    component.rollback_to = ({"ModelName": "v1"}, 2)
    return component


def test_an_update_completes_unless_one_of_its_own_alarms_fires():
    completed = updating(["churn-5xx"])
    completed.settle({"another-models-alarm"})
    assert (completed.status, completed.specification, completed.current_copies) == ("InService", {"ModelName": "v2"}, 3)
    rolled_back = updating(["churn-5xx"])
    rolled_back.settle({"churn-5xx"})
    assert (rolled_back.status, rolled_back.specification, rolled_back.current_copies) == (
        "InService", {"ModelName": "v1"}, 2)
    assert rolled_back.describe()["RuntimeConfig"] == {"DesiredCopyCount": 2, "CurrentCopyCount": 2}


def test_creating_a_component_is_authorized_on_its_endpoint_too():
    body = json.dumps({"InferenceComponentName": "churn-dev", "EndpointName": "Shared-Dev"}).encode()
    assert additional_sagemaker_resources("sagemaker:CreateInferenceComponent", {}, body, *SCOPE) == [
        "arn:aws:sagemaker:us-east-1:123456789012:endpoint/shared-dev"]


def test_invoking_a_component_is_authorized_on_the_component_too_and_without_one_on_the_endpoint_only():
    headers = {"x-amzn-sagemaker-inference-component": "Churn-Dev"}
    assert additional_sagemaker_resources("sagemaker:InvokeEndpoint", headers, b"{}", *SCOPE) == [
        "arn:aws:sagemaker:us-east-1:123456789012:inference-component/churn-dev"]
    assert additional_sagemaker_resources("sagemaker:InvokeEndpoint", {}, b"{}", *SCOPE) == []
    assert additional_sagemaker_resources("sagemaker:UpdateInferenceComponent", headers, b"{}", *SCOPE) == []


def test_a_create_carries_the_model_arn_condition_key():
    body = json.dumps({"Specification": {"ModelName": "Churn-V1"}}).encode()
    assert request_context("sagemaker:CreateInferenceComponent", {}, body, None, SCOPE) == {
        "sagemaker:ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/churn-v1"}
    assert request_context("sagemaker:UpdateInferenceComponent", {}, body, None, SCOPE) == {}

"""An environment's shared endpoint: the instances that host every shared-hosted model as an inference component.

Created only where a model of the environment has `deployment.hosting: shared`. Its size is platform configuration
(cdk.json `mlops:environments.<env>.shared_hosting`): SageMaker's managed instance scaling adds instances as the
components' copies need them and, at min_instances 0, removes the last one once no copy is left, so a fleet of
idle shared-hosted models holds no instance. Each model's component (its copies, autoscaling, rolling updates and
alarms) is the model's own: the deploy task creates it (lambdas/endpoint/handlers.py deploy_component).

Data capture is the endpoint's: one sampling percentage for every component, written under
data-capture/<shared endpoint>/; the drift hook keeps a model's own records (lambdas/drift/capture.py).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, CfnTag, Stack, aws_iam as iam, aws_kms as kms, aws_s3 as s3, aws_sagemaker as sagemaker
from constructs import Construct

from lambdas.endpoint.logic import VARIANT, capture_config
from pipelines import instances, naming
from pipelines.spec import EnvironmentSpec, ModelSpec
from stacks.constructs.sagemaker_access import grant_key_through_s3


def uses_shared_hosting(specs: list[ModelSpec]) -> bool:
    return any(spec.deployment.hosting == "shared" for spec in specs)


class SharedEndpoint(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, environment: EnvironmentSpec, key: kms.IKey,
                 bucket: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        pool, env_name = environment.shared_hosting, environment.name
        self.name = naming.shared_endpoint(env_name)
        # The endpoint's own role (CreateEndpointConfig ExecutionRoleArn, required for inference components): what
        # the endpoint does itself, writing the captured traffic. Each component's model keeps its own execution role
        # (CreateModel), which reads that model's artifact and image only (stacks/constructs/endpoints.grant_hosting).
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                             description=f"The shared endpoint of {env_name}: its data capture")
        bucket.grant_put(self.role, f"data-capture/{self.name}/*")
        grant_key_through_s3(self.role, key.key_arn)
        # A component's rolling update rolls back on its alarms (<model>-<env>-<stage>-5xx-rate, -p99-latency): the
        # endpoint's role may read them, as a dedicated endpoint's execution role reads its own (endpoints.py).
        self.role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:DescribeAlarms"], resources=[
            Stack.of(self).format_arn(service="cloudwatch", resource="alarm", resource_name=f"*-{env_name}-*",
                                      arn_format=ArnFormat.COLON_RESOURCE_NAME)]))
        variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=VARIANT, instance_type=pool.instance_type,
            # CreateEndpointConfig needs one instance to start with; at min_instances 0 managed scaling removes it
            # once no component copy needs it.
            initial_instance_count=max(1, pool.min_instances),
            managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                status="ENABLED", min_instance_count=pool.min_instances, max_instance_count=pool.max_instances),
            routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(routing_strategy="LEAST_OUTSTANDING_REQUESTS"))
        capture = capture_config(pool.data_capture_percent, f"s3://{bucket.bucket_name}/data-capture", key.key_arn)
        self.config = sagemaker.CfnEndpointConfig(
            self, "Config", execution_role_arn=self.role.role_arn, production_variants=[variant],
            kms_key_id=instances.volume_key(pool.instance_type, key.key_arn),
            data_capture_config=_cfn_capture(capture) if pool.data_capture_percent else None,
            tags=[CfnTag(key="mlops:environment", value=env_name)])
        # SageMaker checks the role's policy when it creates the config: after the policy, not merely the role.
        self.config.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        self.endpoint = sagemaker.CfnEndpoint(self, "Endpoint", endpoint_name=self.name,
                                              endpoint_config_name=self.config.attr_endpoint_config_name,
                                              tags=[CfnTag(key="mlops:environment", value=env_name)])

    @staticmethod
    def arn(scope: Construct, env_name: str) -> str:
        return Stack.of(scope).format_arn(service="sagemaker", resource="endpoint",
                                          resource_name=naming.shared_endpoint(env_name))


def _cfn_capture(capture: dict) -> sagemaker.CfnEndpointConfig.DataCaptureConfigProperty:
    headers = capture["CaptureContentTypeHeader"]
    return sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
        enable_capture=True, initial_sampling_percentage=capture["InitialSamplingPercentage"],
        destination_s3_uri=capture["DestinationS3Uri"], kms_key_id=capture["KmsKeyId"],
        capture_options=[sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode=option["CaptureMode"])
                         for option in capture["CaptureOptions"]],
        capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
            json_content_types=headers["JsonContentTypes"], csv_content_types=headers["CsvContentTypes"]))

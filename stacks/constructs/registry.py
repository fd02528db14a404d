"""The model registry: one SageMaker model package group per model, and the training image repository."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack, aws_ecr as ecr, aws_iam as iam, aws_kms as kms, aws_sagemaker as sagemaker
from constructs import Construct

from pipelines import naming
from pipelines.spec import ModelSpec


class ModelPackageGroups(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, specs: list[ModelSpec], env_name: str) -> None:
        super().__init__(scope, construct_id)
        self.groups: dict[str, sagemaker.CfnModelPackageGroup] = {}
        for spec in specs:
            self.groups[spec.name] = sagemaker.CfnModelPackageGroup(
                self, f"Group-{spec.name}",
                model_package_group_name=naming.model_package_group(spec.name, env_name),
                model_package_group_description=spec.description or spec.name,
            )


class ContainerRepository(Construct):
    """Custom training/serving images: scanned on push, immutable tags, KMS-encrypted."""

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, repository_name: str) -> None:
        super().__init__(scope, construct_id)
        self.repository = ecr.Repository(
            self, "Repository", repository_name=repository_name, image_scan_on_push=True,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE, encryption=ecr.RepositoryEncryption.KMS,
            encryption_key=key, removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[ecr.LifecycleRule(description="keep the last 50 images", max_image_count=50)],
        )


def grant_read_registry(role: iam.IRole, package_arns: list[str]) -> None:
    """Describe this model's packages; list on '*' because SageMaker List* calls have no resource-level
    permissions (an ARN-scoped ListModelPackages grant is never honoured)."""
    role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=package_arns))
    role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"]))


def grant_read_champion(role: iam.IRole, model: str, env_name: str) -> None:
    """The champion is the package production serves: endpoint -> config -> model -> package."""
    stack, prod = Stack.of(role), naming.endpoint(model, env_name, "prod")
    role.add_to_policy(iam.PolicyStatement(
        actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
        resources=[stack.format_arn(service="sagemaker", resource="endpoint", resource_name=prod),
                   stack.format_arn(service="sagemaker", resource="endpoint-config", resource_name=f"{prod}-*"),
                   stack.format_arn(service="sagemaker", resource="model", resource_name=f"{prod}-*")]))

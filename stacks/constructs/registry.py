"""The model registry: one SageMaker model package group per model, and the training image repository."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, aws_ecr as ecr, aws_kms as kms, aws_sagemaker as sagemaker
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


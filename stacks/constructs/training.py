"""The SageMaker training step of a retraining pipeline: image, code asset, role and the .sync task.

CDK's SageMakerCreateTrainingJob task has no managed-spot, checkpoint, MaxWaitTime or inter-container
encryption settings, so the task state is built here from the spec (a CustomState, still code).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, Aws, BundlingOptions, BundlingOutput, DockerImage, Duration, ILocalBundling, Stack
from aws_cdk import aws_iam as iam, aws_kms as kms, aws_s3 as s3, aws_s3_assets as s3_assets
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from pipelines import instances
from pipelines.model_folder import EXCLUDED, SHARED_TRAINING_MODULES, source_fingerprint, write_source_archive  # noqa: F401
from pipelines.spec import ModelSpec, SpecError, TrainingSpec
from stacks.constructs.sagemaker_access import grant_container_basics

REPO_ROOT = Path(__file__).resolve().parents[2]
CODE_CHANNEL = "/opt/ml/input/data/code"
CHAMPION_CHANNEL = "champion"
# The SageMaker SDK's image catalogue names (sagemaker/image_uri_config/*.json), per spec framework.
SDK_FRAMEWORKS = {"pytorch": "pytorch", "xgboost": "xgboost", "sklearn": "sklearn"}


def _retrieve_image(training: TrainingSpec, region: str, instance_type: str, scope: str) -> str:
    """The framework container from the SageMaker SDK's bundled catalogue (offline: no AWS call); a version the
    catalogue lacks is a SpecError naming the versions it has."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)  # "not applying SDK defaults" on every import
    from sagemaker import image_uris

    framework = SDK_FRAMEWORKS[training.framework]
    try:
        return image_uris.retrieve(framework=framework, region=region, version=training.framework_version,
                                   py_version=training.py_version, instance_type=instance_type, image_scope=scope)
    except ValueError as error:
        known = sorted(image_uris.config_for_framework(framework).get(scope, {}).get("versions", {}))
        raise SpecError(f"training.framework_version: no SageMaker {framework} {scope} image for version "
                        f"{training.framework_version!r}, {training.py_version}, {instance_type} ({error}); "
                        f"fix: one of {', '.join(known[-6:])}, or set image_uri") from None


def resolve_training_image(training: TrainingSpec, region: str) -> str:
    """The spec's own image when it names one (byo: always), else the framework's training container."""
    if training.image_uri:
        return training.image_uri
    return _retrieve_image(training, region, training.instance_type, "training")


def resolve_inference_image(spec: ModelSpec, region: str) -> str:
    """The serving container for the deployment instance type: the spec's own serving image (byo: the training
    image unless inference_image_uri is given), else the framework's inference container."""
    if spec.training.serving_image_uri:
        return spec.training.serving_image_uri
    if spec.training.image_uri:
        raise SpecError(f"{spec.name}: training.image_uri replaces the {spec.training.framework} training image but "
                        "serving needs an image too; fix: set training.inference_image_uri")
    return _retrieve_image(spec.training, region, spec.deployment.instance_type, "inference")


@jsii.implements(ILocalBundling)
class _SourceArchiveBundling:
    def __init__(self, model_dir: Path, spec: ModelSpec) -> None:
        self.model_dir, self.spec = model_dir, spec

    def try_bundle(self, output_dir: str, *, image, **_options) -> bool:
        write_source_archive(self.model_dir, Path(output_dir) / "sourcedir.tar.gz", self.spec)
        return True


def source_asset(scope: Construct, construct_id: str, model_dir: Path, spec: ModelSpec) -> s3_assets.Asset:
    """The source archive as an asset, hashed over everything packed (the model kit, the baseline writer and the
    spec live outside the folder: a change to them must upload a new archive)."""
    return s3_assets.Asset(
        scope, construct_id, path=str(model_dir), exclude=list(EXCLUDED), asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=source_fingerprint(model_dir, spec),
        bundling=BundlingOptions(image=DockerImage.from_registry("none"),  # never pulled: local bundling only
                                 local=_SourceArchiveBundling(model_dir, spec), output_type=BundlingOutput.ARCHIVED),
    )


def training_hyperparameters(spec: ModelSpec, source_key: str) -> dict[str, str]:
    """Hyperparameters as SageMaker stores them (JSON-encoded strings), with the script-mode settings."""
    values = {k: json.dumps(v) for k, v in spec.training.hyperparameters.items()}
    values["sagemaker_program"] = json.dumps(spec.training.entry_point)
    values["sagemaker_submit_directory"] = json.dumps(f"{CODE_CHANNEL}/{source_key}")
    values["sagemaker_region"] = json.dumps(Aws.REGION)
    return values


class TrainingRole(Construct):
    """What a training job of one model may touch: its data, its artifact prefixes, the key, the image, its logs."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, bucket: s3.IBucket, key: kms.IKey,
                 image_uri: str, source: s3_assets.Asset) -> None:
        super().__init__(scope, construct_id)
        model = spec.name
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                             description=f"SageMaker training jobs of {model}")
        bucket.grant_read(self.role, f"runs/{model}/*")
        bucket.grant_read(self.role, f"{spec.dataset.s3_prefix}*")
        bucket.grant_read_write(self.role, f"models/{model}/*")
        bucket.grant_read_write(self.role, f"checkpoints/{model}/*")
        key.grant_encrypt_decrypt(self.role)
        source.grant_read(self.role)
        grant_container_basics(self.role, image_uri, "TrainingJobs")
        if spec.training.subnet_ids:
            self.role.add_to_policy(iam.PolicyStatement(
                actions=["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
                         "ec2:DeleteNetworkInterfacePermission", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
                         "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"],
                resources=["*"]))



class TrainingJob(Construct):
    """The .sync training task: spot with checkpoints, KMS volumes, isolation, metrics from the spec."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, bucket: s3.IBucket, key: kms.IKey,
                 model_dir: Path) -> None:
        super().__init__(scope, construct_id)
        training = spec.training
        self.model, self.key = spec.name, key
        self.image_uri = resolve_training_image(training, Stack.of(self).region)
        self.source = source_asset(self, "Source", model_dir, spec)
        self.role = TrainingRole(self, "Execution", spec=spec, bucket=bucket, key=key, image_uri=self.image_uri,
                                 source=self.source).role
        self.hyperparameters = training_hyperparameters(spec, self.source.s3_object_key)
        self.state = sfn.CustomState(self, "Train", state_json=self._state_json(spec, bucket, key))
        self.state.add_retry(errors=["SageMaker.AmazonSageMakerException", "ThrottlingException",
                                     "ResourceLimitExceeded"],
                             interval=Duration.seconds(60), max_attempts=3, backoff_rate=2)

    def _state_json(self, spec: ModelSpec, bucket: s3.IBucket, key: kms.IKey) -> dict:
        training, model = spec.training, spec.name
        parameters = {
            "TrainingJobName.$": "$.run.training_job_name",
            "RoleArn": self.role.role_arn,
            "AlgorithmSpecification": {
                "TrainingImage": self.image_uri, "TrainingInputMode": "File",
                "MetricDefinitions": metric_definitions(spec), "EnableSageMakerMetricsTimeSeries": True,
            },
            "HyperParameters.$": "$.run.hyperparameters",
            "InputDataConfig": [
                {"ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri.$": "$.validation.snapshot_prefix",
                    "S3DataDistributionType": "FullyReplicated"}}},
                {"ChannelName": "code", "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri": self.source.s3_object_url,
                    "S3DataDistributionType": "FullyReplicated"}}},
                # The model production serves, pinned by ValidateData: a manifest of its model.tar.gz and
                # champion.json (only champion.json when there is none), re-scored by train.py on the new data.
                {"ChannelName": CHAMPION_CHANNEL, "ContentType": "application/x-tar", "DataSource": {"S3DataSource": {
                    "S3DataType": "ManifestFile", "S3Uri.$": "$.validation.champion_manifest_uri",
                    "S3DataDistributionType": "FullyReplicated"}}},
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket.bucket_name}/models/{model}/", "KmsKeyId": key.key_arn},
            "ResourceConfig": {"InstanceType": training.instance_type, "InstanceCount": training.instance_count,
                               "VolumeSizeInGB": training.volume_size_gb},
            "StoppingCondition": {"MaxRuntimeInSeconds": training.max_runtime_s},
            "EnableNetworkIsolation": training.network_isolation,
            "EnableInterContainerTrafficEncryption": training.instance_count > 1,
            "Tags": [{"Key": "mlops:model", "Value": model}],
        }
        volume_key = instances.volume_key(training.instance_type, key.key_arn)
        if volume_key:  # local NVMe volumes are encrypted by the instance; SageMaker refuses a key for them
            parameters["ResourceConfig"]["VolumeKmsKeyId"] = volume_key
        if training.use_spot:
            parameters["EnableManagedSpotTraining"] = True
            parameters["StoppingCondition"]["MaxWaitTimeInSeconds"] = training.effective_max_wait_s
            parameters["CheckpointConfig"] = {
                "S3Uri.$": f"States.Format('s3://{bucket.bucket_name}/checkpoints/{model}/{{}}/', $$.Execution.Name)",
                "LocalPath": "/opt/ml/checkpoints",
            }
        if training.subnet_ids:
            parameters["VpcConfig"] = {"Subnets": training.subnet_ids, "SecurityGroupIds": training.security_group_ids}
        return {
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTrainingJob.sync",
            "Parameters": parameters,
            "ResultSelector": {
                "job_name.$": "$.TrainingJobName", "job_arn.$": "$.TrainingJobArn",
                "model_artifacts.$": "$.ModelArtifacts.S3ModelArtifacts",
                "output_path.$": "$.OutputDataConfig.S3OutputPath",
                "image_uri.$": "$.AlgorithmSpecification.TrainingImage",
            },
            "ResultPath": "$.training",
        }

    def grant_start(self, principal: iam.IGrantable) -> None:
        """What the state machine needs to run this task synchronously."""
        stack = Stack.of(self)
        principal.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
                     "sagemaker:AddTags"],
            resources=[stack.format_arn(service="sagemaker", resource="training-job",
                                        resource_name=f"{self.model}-*")],
        ))
        principal.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[stack.format_arn(service="events", resource="rule",
                                        resource_name="StepFunctionsGetEventsForSageMakerTrainingJobsRule")]))
        self.role.grant_pass_role(principal.grant_principal)
        grant_sagemaker_key_use(principal, self.key)


def grant_sagemaker_key_use(principal: iam.IGrantable, key: kms.IKey) -> None:
    """Callers of SageMaker APIs that carry a KMS key (CreateTrainingJob/CreateTransformJob volume keys,
    CreateEndpointConfig/CreateEndpoint/UpdateEndpoint KmsKeyId) need kms:CreateGrant for SageMaker on that key
    (SageMaker API permissions reference); only grants for AWS resources, never for a person."""
    principal.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=["kms:CreateGrant", "kms:DescribeKey"], resources=[key.key_arn],
        conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}))


def metric_definitions(spec: ModelSpec) -> list[dict[str, str]]:
    """The objective and the task's metric columns, the champion's re-scored objective, and the training loss."""
    number = r"(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)"
    objective = spec.objective.metric.rpartition(":")[2]
    definitions = [{"Name": spec.objective.metric, "Regex": spec.objective.regex},
                   *({"Name": name, "Regex": f"{re.escape(name)}={number}"} for name in spec.metric_columns()),
                   {"Name": f"champion:{objective}", "Regex": f"champion:{re.escape(objective)}={number}"},
                   {"Name": "train:loss", "Regex": r"train:loss=([0-9.]+)"}]
    return [d for i, d in enumerate(definitions) if d["Name"] not in {x["Name"] for x in definitions[:i]}]

"""The SageMaker training step of a retraining pipeline: image, code asset, role and the .sync task.

CDK's SageMakerCreateTrainingJob task has no managed-spot, checkpoint, MaxWaitTime or inter-container
encryption settings, so the task state is built here from the spec (a CustomState, still code).

With a `tuning:` block the spec also gets a hyperparameter tuning job (`createHyperParameterTuningJob.sync`) whose
trials are that same training job (spot, checkpoints per trial, KMS volumes, isolation), then a DescribeTrainingJob
of its best trial, so that evaluation and registration receive exactly what a plain training job gives them.
Which of the two runs is the run's choice (`$.run.tune`: PrepareRun sets it; a reproduction trains once).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, Aws, BundlingOptions, BundlingOutput, DockerImage, Duration, ILocalBundling, Stack
from aws_cdk import aws_iam as iam, aws_kms as kms, aws_s3 as s3, aws_s3_assets as s3_assets
from aws_cdk import aws_stepfunctions as sfn, aws_stepfunctions_tasks as tasks
from constructs import Construct

from pipelines import instances, naming
from pipelines.model_folder import EXCLUDED, SHARED_TRAINING_MODULES, source_fingerprint, write_source_archive  # noqa: F401
from pipelines.spec import TUNING_SCALING, ModelSpec, SpecError, TrainingSpec, tuning_kind
from stacks.constructs.sagemaker_access import grant_container_basics, grant_key_through_s3
from stacks.constructs.sagemaker_retries import retry_job_start, retry_sdk_read

REPO_ROOT = Path(__file__).resolve().parents[2]
CODE_CHANNEL = "/opt/ml/input/data/code"
CODE_ARCHIVE = "sourcedir.tar.gz"  # the run's snapshot of the source archive (PrepareRun copies it into runs/)
CHAMPION_CHANNEL = "champion"
# The SageMaker SDK's image catalogue names (sagemaker/image_uri_config/*.json), per spec framework.
SDK_FRAMEWORKS = {"pytorch": "pytorch", "xgboost": "xgboost", "sklearn": "sklearn"}


def _retrieve_image(training: TrainingSpec, region: str, instance_type: str, scope: str) -> str:
    """The framework container from the SageMaker SDK's bundled catalogue (offline: no AWS call); a version the
    catalogue lacks is a SpecError naming the versions it has."""
    return _catalogue_image(SDK_FRAMEWORKS[training.framework], training.framework_version, training.py_version,
                            region, instance_type, scope)


@functools.lru_cache(maxsize=256)
def _catalogue_image(framework: str, version: str, py_version: str | None, region: str, instance_type: str,
                     scope: str) -> str:
    """One catalogue lookup (the SDK reads and parses its JSON files on every call, about 0.1 s: a fleet of models
    of a few frameworks asks the same questions again and again)."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)  # "not applying SDK defaults" on every import
    from sagemaker import image_uris

    try:
        return image_uris.retrieve(framework=framework, region=region, version=version, py_version=py_version,
                                   instance_type=instance_type, image_scope=scope)
    except ValueError as error:
        known = sorted(image_uris.config_for_framework(framework).get(scope, {}).get("versions", {}))
        raise SpecError(f"training.framework_version: no SageMaker {framework} {scope} image for version "
                        f"{version!r}, {py_version}, {instance_type} ({error}); "
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


def training_hyperparameters(spec: ModelSpec, source_key: str = CODE_ARCHIVE) -> dict[str, str]:
    """Hyperparameters as SageMaker stores them (JSON-encoded strings), with the script-mode settings. The code
    channel holds the run's own snapshot of the source archive, always named sourcedir.tar.gz."""
    values = {k: json.dumps(v) for k, v in spec.training.hyperparameters.items()}
    values["sagemaker_program"] = json.dumps(spec.training.entry_point)
    values["sagemaker_submit_directory"] = json.dumps(f"{CODE_CHANNEL}/{source_key}")
    values["sagemaker_region"] = json.dumps(Aws.REGION)
    return values


def grant_training(role: iam.Role, *, spec: ModelSpec, bucket: s3.IBucket, key: kms.IKey, image_uri: str) -> None:
    """What a training job of one model may touch: its data, its artifact prefixes, the key, the image, its logs.
    The code comes from the run's snapshot under runs/<model>/ (SnapshotSource copies it), not the CDK asset."""
    model = spec.name
    bucket.grant_read(role, f"runs/{model}/*")
    bucket.grant_read(role, f"{spec.dataset.s3_prefix}*")
    # Jobs write their output and checkpoints and delete nothing: the platform pins the S3 version of the output it
    # evaluated and releases that version under releases/, which the job may read (the champion) but not write.
    bucket.grant_put(role, f"models/{model}/*")
    bucket.grant_read(role, f"checkpoints/{model}/*")
    bucket.grant_put(role, f"checkpoints/{model}/*")
    bucket.grant_read(role, f"{naming.RELEASES}/{model}/*")
    grant_key_through_s3(role, key.key_arn)
    grant_container_basics(role, image_uri, "TrainingJobs")
    if spec.training.subnet_ids:
        role.add_to_policy(iam.PolicyStatement(
            actions=["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
                     "ec2:DeleteNetworkInterfacePermission", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
                     "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"],
            resources=["*"]))


class TrainingJob(Construct):
    """The .sync training task: spot with checkpoints, KMS volumes, isolation, metrics from the spec."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, bucket: s3.IBucket, key: kms.IKey,
                 model_dir: Path, role: iam.Role) -> None:
        """role: the model's SageMaker execution role (sagemaker_access.ModelExecutionRole)."""
        super().__init__(scope, construct_id)
        training = spec.training
        self.model, self.key = spec.name, key
        self.image_uri = resolve_training_image(training, Stack.of(self).region)
        self.source = source_asset(self, "Source", model_dir, spec)
        self.role = role
        grant_training(role, spec=spec, bucket=bucket, key=key, image_uri=self.image_uri)
        self.hyperparameters = training_hyperparameters(spec)
        self.tuning = spec.tuning
        self.bucket = bucket
        self.snapshot_state = self._snapshot_source_state()
        self.state = sfn.CustomState(self, "Train", state_json=self._state_json(spec, bucket, key))
        self.tune_state = sfn.CustomState(self, "TuneHyperparameters", state_json=self._tuning_state_json(
            spec, bucket, key)) if spec.tuning else None
        self.best_trial_state = sfn.CustomState(self, "DescribeBestTrial", state_json=best_trial_state()) \
            if spec.tuning else None
        for state in (self.state, self.tune_state):
            if state is not None:
                retry_job_start(state)
        if self.best_trial_state is not None:
            retry_sdk_read(self.best_trial_state)

    def _snapshot_source_state(self) -> tasks.CallAwsService:
        """The run keeps the code it trains with (PrepareRun's source_copy): the deployed archive, a CDK asset only
        this machine is granted (grant_start), or a reproduced version's own snapshot. A server-side copy."""
        state = tasks.CallAwsService(
            self, "SnapshotSource", service="s3", action="copyObject", iam_action="s3:PutObject",
            iam_resources=[self.bucket.arn_for_objects(f"runs/{self.model}/*")], result_path=sfn.JsonPath.DISCARD,
            parameters={name: sfn.JsonPath.string_at(f"$.run.source_copy.{name}")
                        for name in ("Bucket", "Key", "CopySource")})
        state.add_retry(errors=["S3.SdkClientException", "S3.S3Exception"], interval=Duration.seconds(2),
                        max_attempts=4, backoff_rate=2)
        return state

    @property
    def steps(self) -> list[sfn.TaskStateBase | sfn.CustomState]:
        """Every task state of training (the tuning ones too), for the retraining machine's Catch."""
        return [state for state in (self.snapshot_state, self.state, self.tune_state, self.best_trial_state)
                if state is not None]

    def _job_definition(self, spec: ModelSpec, bucket: s3.IBucket, key: kms.IKey) -> dict:
        """What CreateTrainingJob and a tuning job's TrainingJobDefinition share: image, role, channels, output,
        resources, stopping condition, isolation, spot with checkpoints, VPC."""
        training, model = spec.training, spec.name
        parameters = {
            "RoleArn": self.role.role_arn,
            "AlgorithmSpecification": {
                "TrainingImage": self.image_uri, "TrainingInputMode": "File",
                "MetricDefinitions": metric_definitions(spec), "EnableSageMakerMetricsTimeSeries": True,
            },
            "InputDataConfig": [
                {"ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri.$": "$.validation.snapshot_prefix",
                    "S3DataDistributionType": "FullyReplicated"}}},
                # The run's own copy of the source archive (PrepareRun): the deployed one, or for a reproduction
                # the one the reproduced version was trained with.
                {"ChannelName": "code", "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri.$": "$.run.source_uri",
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
        return parameters

    def _state_json(self, spec: ModelSpec, bucket: s3.IBucket, key: kms.IKey) -> dict:
        parameters = {"TrainingJobName.$": "$.run.training_job_name", **self._job_definition(spec, bucket, key),
                      "HyperParameters.$": "$.run.hyperparameters", "Tags": [{"Key": "mlops:model", "Value": spec.name}]}
        return {"Type": "Task", "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTrainingJob.sync",
                "Parameters": parameters, "ResultSelector": TRAINING_RESULT, "ResultPath": "$.training"}

    def _tuning_state_json(self, spec: ModelSpec, bucket: s3.IBucket, key: kms.IKey) -> dict:
        """CreateHyperParameterTuningJob (botocore's sagemaker model): the spec's search over the same training job.
        Static hyperparameters are the run's minus the tuned ones (PrepareRun); checkpoints go to one prefix per
        run, under which SageMaker keeps each trial's own folder."""
        tuning, definition = spec.tuning, self._job_definition(spec, bucket, key)
        # HyperParameterAlgorithmSpecification has no EnableSageMakerMetricsTimeSeries: the tuner reads the metrics.
        definition["AlgorithmSpecification"] = {k: v for k, v in definition["AlgorithmSpecification"].items()
                                                if k != "EnableSageMakerMetricsTimeSeries"}
        objective = {"Type": spec.objective.direction.title(), "MetricName": spec.objective.metric}
        config = {
            "Strategy": tuning.sagemaker_strategy,
            "HyperParameterTuningJobObjective": objective,
            "ResourceLimits": {"MaxNumberOfTrainingJobs": tuning.max_jobs,
                               "MaxParallelTrainingJobs": tuning.max_parallel_jobs,
                               **({"MaxRuntimeInSeconds": tuning.max_runtime_s} if tuning.max_runtime_s else {})},
            "ParameterRanges": parameter_ranges(spec),
            "TrainingJobEarlyStoppingType": "Auto" if tuning.early_stopping else "Off",
        }
        if tuning.random_seed is not None:
            config["RandomSeed"] = tuning.random_seed
        if tuning.hyperband is not None:
            config["StrategyConfig"] = {"HyperbandStrategyConfig": {"MinResource": tuning.hyperband.min_resource,
                                                                    "MaxResource": tuning.hyperband.max_resource}}
        return {
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createHyperParameterTuningJob.sync",
            "Parameters": {
                "HyperParameterTuningJobName.$": "$.run.tuning_job_name",
                "HyperParameterTuningJobConfig": config,
                "TrainingJobDefinition": {**definition, "StaticHyperParameters.$": "$.run.static_hyperparameters"},
                "Tags": [{"Key": "mlops:model", "Value": spec.name}],
            },
            "ResultSelector": {
                "job_name.$": "$.HyperParameterTuningJobName", "job_arn.$": "$.HyperParameterTuningJobArn",
                "strategy.$": "$.HyperParameterTuningJobConfig.Strategy",
                "best_training_job.$": "$.BestTrainingJob.TrainingJobName",
                "best_objective.$": "$.BestTrainingJob.FinalHyperParameterTuningJobObjectiveMetric",
                "tuned_hyperparameters.$": "$.BestTrainingJob.TunedHyperParameters",
                "training_job_counts.$": "$.TrainingJobStatusCounters",
            },
            "ResultPath": "$.tuning",
        }

    def grant_start(self, principal: iam.IGrantable) -> None:
        """What the state machine needs to snapshot the source and run this task synchronously."""
        stack = Stack.of(self)
        self.source.grant_read(principal)
        self.bucket.grant_read(principal, f"runs/{self.model}/*")  # a reproduced version's snapshot
        principal.grant_principal.add_to_principal_policy(iam.PolicyStatement(  # the snapshot, under the bucket's key
            actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[self.key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}}))
        # Step Functions' IAM policy for SageMaker's .sync training and tuning tasks includes sagemaker:ListTags
        # (Step Functions developer guide, "IAM policies for Amazon SageMaker AI"; CDK's SageMakerCreateTrainingJob
        # grants it too): scoped here to this model's jobs, which ListTags supports (SageMaker's API permissions).
        principal.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
                     "sagemaker:AddTags", "sagemaker:ListTags"],
            resources=[stack.format_arn(service="sagemaker", resource="training-job",
                                        resource_name=f"{self.model}-*")],
        ))
        rules = ["StepFunctionsGetEventsForSageMakerTrainingJobsRule"]
        if self.tuning:  # the .sync tuning task (Step Functions' SageMaker integration IAM policies) and the best trial
            principal.grant_principal.add_to_principal_policy(iam.PolicyStatement(
                actions=["sagemaker:CreateHyperParameterTuningJob", "sagemaker:DescribeHyperParameterTuningJob",
                         "sagemaker:StopHyperParameterTuningJob", "sagemaker:AddTags", "sagemaker:ListTags"],
                resources=[stack.format_arn(service="sagemaker", resource="hyper-parameter-tuning-job",
                                            resource_name=f"{naming.tuning_prefix(self.model)}-*")]))
            principal.grant_principal.add_to_principal_policy(iam.PolicyStatement(
                actions=["sagemaker:DescribeTrainingJob"],
                resources=[stack.format_arn(service="sagemaker", resource="training-job",
                                            resource_name=f"{naming.tuning_prefix(self.model)}-*")]))
            grant_list_trials(principal)
            rules.append("StepFunctionsGetEventsForSageMakerTuningJobsRule")
        principal.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[stack.format_arn(service="events", resource="rule", resource_name=rule) for rule in rules]))
        self.role.grant_pass_role(principal.grant_principal)
        grant_sagemaker_key_use(principal, self.key)

    def grant_read_trials(self, role: iam.IGrantable) -> None:
        """The evaluation step lists a tuning job's trials (to log them as child runs of the pipeline run)."""
        if self.tuning:
            grant_list_trials(role)

def grant_list_trials(principal: iam.IGrantable) -> None:
    """ListTrainingJobsForHyperParameterTuningJob: a SageMaker List call, authorized only on '*' (SageMaker's API
    permissions reference: no resource-level restrictions on List calls)."""
    principal.grant_principal.add_to_principal_policy(iam.PolicyStatement(
        actions=["sagemaker:ListTrainingJobsForHyperParameterTuningJob"], resources=["*"]))


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


TRAINING_RESULT = {  # $.training: what evaluation and registration read, from DescribeTrainingJob's shape
    "job_name.$": "$.TrainingJobName", "job_arn.$": "$.TrainingJobArn",
    "model_artifacts.$": "$.ModelArtifacts.S3ModelArtifacts",
    "output_path.$": "$.OutputDataConfig.S3OutputPath",
    "image_uri.$": "$.AlgorithmSpecification.TrainingImage",
}


def best_trial_state() -> dict:
    """The tuning job's best trial, described: $.training gets the same fields a plain training job gives, and the
    trial's hyperparameters (the static ones and the tuned ones it was given)."""
    return {"Type": "Task", "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:describeTrainingJob",
            "Parameters": {"TrainingJobName.$": "$.tuning.best_training_job"},
            "ResultSelector": {**TRAINING_RESULT, "hyperparameters.$": "$.HyperParameters"},
            "ResultPath": "$.training"}


def parameter_ranges(spec: ModelSpec) -> dict[str, list[dict]]:
    """The spec's tuning ranges as SageMaker's ParameterRanges. Values reach the job as hyperparameters: numbers as
    SageMaker writes them, categorical values JSON-encoded like the static ones (the framework containers' script
    mode decodes both, as the SageMaker SDK's tuner sends them)."""
    training, ranges = spec.training, {"IntegerParameterRanges": [], "ContinuousParameterRanges": [],
                                       "CategoricalParameterRanges": []}
    for name, searched in sorted(spec.tuning.ranges.items()):
        kind = tuning_kind(training.hyperparameters[name], training.hyperparameter_ranges.get(name), searched)
        if kind == "Categorical":
            ranges["CategoricalParameterRanges"].append({"Name": name, "Values": [json.dumps(v) for v in searched.values]})
            continue
        bound = (lambda v: str(int(v))) if kind == "Integer" else (lambda v: repr(float(v)))
        ranges[f"{kind}ParameterRanges"].append({"Name": name, "MinValue": bound(searched.min),
                                                 "MaxValue": bound(searched.max),
                                                 "ScalingType": TUNING_SCALING[searched.scaling]})
    return {kind: items for kind, items in ranges.items() if items}

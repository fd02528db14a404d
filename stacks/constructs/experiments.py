"""Experiment tracking as code: one SageMaker managed MLflow tracking server per environment.

- The server (AWS::SageMaker::MlflowTrackingServer) keeps its artifacts in the environment's artifact bucket under
  `mlflow/<env>/`, encrypted with the environment's KMS key (the bucket's default encryption).
- Its own service role may use that prefix and the key only. SageMaker assumes it with the plain service trust of
  AWS's MLflow IAM guide: AWS documents no aws:SourceAccount or aws:SourceArn for MLflow tracking servers (SageMaker's
  confused-deputy page lists other features only), and a condition the service does not send refuses every
  AssumeRole. The confused-deputy guard is iam:PassRole: only a principal of this account allowed to pass this role
  can hand it to a tracking server: CloudFormation's deploy role, and no role of the platform.
- Who may use it: the pipeline's evaluate and register functions (they log each run, its tuning trials, and tag it
  with the registered version) and the DataScientist policy. Nobody else; the training role neither, since its
  network-isolated containers could not reach the server anyway.

It is billed for every hour it exists, used or not (docs/experiments.md has the sizes and prices): cdk.json turns it
on per environment (`mlops:environments.<env>.experiments`), off where nothing trains.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, CfnOutput, Stack
from aws_cdk import aws_iam as iam, aws_kms as kms, aws_s3 as s3, aws_sagemaker as sagemaker
from constructs import Construct

from pipelines import naming
from pipelines.spec import TrackingServerSpec

# MLflow REST operations as IAM actions (Service Authorization Reference, "Amazon SageMaker with MLflow"), each on the
# tracking server's ARN.
PIPELINE_ACTIONS = ["CreateExperiment", "GetExperiment", "GetExperimentByName", "CreateRun", "GetRun", "SearchRuns",
                    "LogBatch", "LogMetric", "LogParam", "SetTag", "UpdateRun"]
READ_ACTIONS = ["GetExperiment", "GetExperimentByName", "SearchExperiments", "GetRun", "SearchRuns",
                "GetMetricHistory", "ListArtifacts", "GetRegisteredModel", "SearchRegisteredModels",
                "GetModelVersion", "SearchModelVersions", "GetLatestModelVersions", "GetDownloadURIForModelVersionArtifacts"]
# A data scientist also logs their own notebook experiments (never deletes the pipeline's runs).
WRITE_ACTIONS = ["CreateExperiment", "UpdateExperiment", "SetExperimentTag", "CreateRun", "UpdateRun", "LogBatch",
                 "LogMetric", "LogParam", "LogInputs", "LogModel", "SetTag", "DeleteTag"]


def artifact_prefix(env_name: str) -> str:
    return f"mlflow/{env_name}/"


def server_arn(scope: Construct, env_name: str) -> str:
    """The environment's tracking server, by its derived name (no cross-stack reference: a model stack names it)."""
    return Stack.of(scope).format_arn(service="sagemaker", resource="mlflow-tracking-server",
                                      resource_name=naming.tracking_server(env_name), arn_format=ArnFormat.SLASH_RESOURCE_NAME)


class TrackingServer(Construct):
    """The environment's MLflow tracking server, its artifact store and its service role."""

    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, config: TrackingServerSpec,
                 bucket: s3.IBucket, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        name = naming.tracking_server(env_name)
        self.name, self.arn, prefix = name, server_arn(self, env_name), artifact_prefix(env_name)
        self.role = iam.Role(
            self, "ServiceRole", description=f"SageMaker MLflow tracking server {name}: its artifact store only",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
        bucket.grant_read_write(self.role, f"{prefix}*")
        key.grant_encrypt_decrypt(self.role)
        self.server = sagemaker.CfnMlflowTrackingServer(
            self, "Server", tracking_server_name=name, artifact_store_uri=f"s3://{bucket.bucket_name}/{prefix}",
            role_arn=self.role.role_arn, tracking_server_size=config.size, automatic_model_registration=False,
            mlflow_version=config.mlflow_version, weekly_maintenance_window_start=config.weekly_maintenance_window_start,
            tags=[{"key": "mlops:environment", "value": env_name}])
        # The role's policy first (the role itself is implied by RoleArn): SageMaker checks the artifact store with the
        # role when it creates the server.
        self.server.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        CfnOutput(self, "TrackingServerArn", value=self.server.attr_tracking_server_arn)


def grant_pipeline_tracking(role: iam.IGrantable, arn: str) -> None:
    """What the pipeline's tracking steps do: find the server's URL, create the run, log it, tag it."""
    principal = role.grant_principal
    principal.add_to_principal_policy(iam.PolicyStatement(actions=["sagemaker:DescribeMlflowTrackingServer"],
                                                          resources=[arn]))
    principal.add_to_principal_policy(iam.PolicyStatement(
        actions=[f"sagemaker-mlflow:{action}" for action in PIPELINE_ACTIONS], resources=[arn]))


def data_scientist_statements(arn: str, artifacts: tuple[s3.IBucket, kms.IKey, str] | None = None) -> list[iam.PolicyStatement]:
    """Read every run, log their own, open the MLflow UI (a presigned URL of this server). artifacts (bucket, key,
    env): the MLflow client uploads and downloads run artifacts (log_artifact, log_model) straight to the server's
    artifact store with the caller's own credentials, so the data scientist gets exactly that prefix, listing under
    it only, and the environment key through S3 only."""
    artifact_statements = []
    if artifacts is not None:
        bucket, key, env_name = artifacts
        prefix = artifact_prefix(env_name)
        artifact_statements = [
            iam.PolicyStatement(actions=["s3:GetObject", "s3:PutObject"], resources=[bucket.arn_for_objects(f"{prefix}*")]),
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                                conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}}),
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn],
                                conditions={"StringEquals": {"kms:ViaService": f"s3.{Stack.of(bucket).region}.amazonaws.com"}})]
    return [*artifact_statements,
        iam.PolicyStatement(actions=["sagemaker:DescribeMlflowTrackingServer",
                                     "sagemaker:CreatePresignedMlflowTrackingServerUrl"], resources=[arn]),
        iam.PolicyStatement(actions=[f"sagemaker-mlflow:{action}" for action in sorted(set(READ_ACTIONS + WRITE_ACTIONS))],
                            resources=[arn]),
        # AccessUI has no resource-level permissions; the UI opens only through a presigned URL of this server.
        iam.PolicyStatement(actions=["sagemaker-mlflow:AccessUI"], resources=["*"]),
    ]

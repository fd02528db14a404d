"""Per environment: the KMS key, the artifact bucket, the ECR repository, the registry, the audit table and (when
cdk.json turns it on for the environment) the MLflow tracking server."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from pipelines import naming
from pipelines.spec import EnvironmentSpec, ModelSpec
from stacks.constructs.experiments import TrackingServer
from stacks.constructs.registry import ContainerRepository, ModelPackageGroups
from stacks.constructs.schedules import SchedulerRole
from stacks.constructs.storage import AccessLogBucket, ArtifactBucket, AuditTable, EncryptionKey


class RegistryStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, environment: EnvironmentSpec,
                 specs: list[ModelSpec], **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        env_name = environment.name
        self.key = EncryptionKey(self, "Encryption", alias=f"alias/{naming.PROJECT}-{env_name}").key
        access_logs = AccessLogBucket(self, "AccessLogs").bucket
        self.bucket = ArtifactBucket(
            self, "Artifacts", key=self.key, access_logs=access_logs,
            bucket_name=naming.artifact_bucket(env_name, environment.account, environment.region),
        ).bucket
        self.repository = ContainerRepository(
            self, "Images", key=self.key, repository_name=f"{naming.PROJECT}-{env_name}").repository
        self.groups = ModelPackageGroups(self, "Registry", specs=specs, env_name=env_name).groups
        self.audit_table = AuditTable(self, "Audit", key=self.key, table_name=naming.audit_table(env_name)).table
        self.scheduler = SchedulerRole(self, "Scheduler", env_name=env_name, key=self.key).role
        self.tracking = TrackingServer(self, "Experiments", env_name=env_name, config=environment.experiments,
                                       bucket=self.bucket, key=self.key) if environment.experiments.enabled else None

        CfnOutput(self, "ArtifactBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "KeyArn", value=self.key.key_arn)
        CfnOutput(self, "AuditTableName", value=self.audit_table.table_name)
        CfnOutput(self, "RepositoryUri", value=self.repository.repository_uri)

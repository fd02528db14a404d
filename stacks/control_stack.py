"""Per environment: the control plane, the functions every model of the environment shares.

Each acts for one model at a time, learning the model from its event and reading the model's record (the SSM
parameter its model stack writes, pipelines/model_record.py) through a session scoped to that model
(stacks/constructs/control_plane.py). Deployed after the registry stack and before the model stacks.
Where it stands (issue 26): the cost-anomaly router, the drift check, the approval repair, the runs API and the
people's roles and policies (stacks/constructs/access.py) are here; the pipeline tasks, approval request and links,
deployment and promotion still run as per-model functions in the model stacks.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack, aws_s3 as s3
from constructs import Construct

from pipelines import naming
from pipelines.spec import EnvironmentSpec
from stacks.constructs import experiments
from stacks.constructs.access import AccessPolicies
from stacks.constructs.approval_repair import ApprovalRepair
from stacks.constructs.budgets import CostAnomalyRouting
from stacks.constructs.drift import DriftChecks
from stacks.constructs.failures import AsyncFailures
from stacks.constructs.retraining import NotificationTopic
from stacks.constructs.runs_api import RunsApi
from stacks.registry_stack import RegistryStack


class ControlPlaneStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, environment: EnvironmentSpec, registry: RegistryStack,
                 **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        env_name, key = environment.name, registry.key
        self.node.add_dependency(registry)
        # What no single model owns (an anomaly of untagged spend, a failed invocation of a shared function): the
        # platform engineers subscribe to it (docs/deploy.md).
        self.platform_topic = NotificationTopic(self, "PlatformNotifications", key=key, emails=[],
                                                name=naming.platform_topic(env_name)).topic
        self.failures = AsyncFailures(self, "AsyncFailures", key=key, topic=self.platform_topic,
                                      name=f"{naming.control_stack(env_name)}-async-failures")
        self.cost_anomalies = CostAnomalyRouting(self, "CostAnomalies", env_name=env_name, key=key,
                                                 platform_topic=self.platform_topic, failures=self.failures)
        self.drift = DriftChecks(self, "Drift", env_name=env_name, key=key, failures=self.failures)
        self.approval_repair = ApprovalRepair(self, "ApprovalRepair", env_name=env_name, key=key, failures=self.failures)
        self.runs_api = RunsApi(self, "RunsApi", env_name=env_name, key=key)
        bucket = s3.Bucket.from_bucket_attributes(self, "ArtifactBucket", encryption_key=key, bucket_name=naming.artifact_bucket(
            env_name, environment.account, environment.region))
        self.access = AccessPolicies(self, "Access", env_name=env_name, runs_api=self.runs_api, bucket=bucket, key=key,
                                     tracking_server_arn=experiments.server_arn(self, env_name)
                                     if environment.experiments.enabled else None)
        CfnOutput(self, "PlatformTopicArn", value=self.platform_topic.topic_arn)

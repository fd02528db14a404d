"""Per environment: the control plane, the functions every model of the environment shares.

Each acts for one model at a time, learning the model from its event and reading the model's record (the SSM
parameter its model stack writes, pipelines/model_record.py) through a session scoped to that model
(stacks/constructs/control_plane.py). Deployed after the registry stack and before the model stacks.
Here (issue 26): the retraining and deployment tasks, the approval request, links (one approval URL and signing key an
environment) and repair, the drift check, the runs API with the people's roles and policies, promotion (offer,
receive, import) and the cost-anomaly router. A model stack keeps what must be per model (stacks/model_stack.py).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack, aws_s3 as s3
from constructs import Construct

from pipelines import naming
from pipelines.promotion import serving_stage
from pipelines.spec import EnvironmentSpec
from stacks.constructs import experiments
from stacks.constructs.access import AccessPolicies
from stacks.constructs.approval import ApprovalLinks, reserved_concurrency
from stacks.constructs.approval_repair import ApprovalRepair
from stacks.constructs.budgets import CostAnomalyRouting
from stacks.constructs.drift import DriftChecks
from stacks.constructs.quality import QualityChecks
from stacks.constructs.failures import AsyncFailures
from stacks.constructs.fleet_dashboard import FleetDashboard
from stacks.constructs.pipeline_tasks import PipelineTasks
from stacks.constructs.promotion import PromotionOffers, PromotionReceiver
from stacks.constructs.retraining import NotificationTopic
from stacks.constructs.runs_api import RunsApi
from stacks.constructs.capture_split import CaptureSplitter
from stacks.constructs.shared_hosting import SharedEndpoint, uses_shared_hosting
from stacks.registry_stack import RegistryStack


class ControlPlaneStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, environment: EnvironmentSpec, registry: RegistryStack,
                 delivery=None, specs: list | None = None, **kwargs) -> None:
        """delivery: cdk.json's promotion roles (pipelines.promotion.Delivery): offers to the next stage, imports from
        the previous one (docs/promotion.md)."""
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
        self.quality = QualityChecks(self, "Quality", env_name=env_name, key=key, failures=self.failures,
                                     platform_topic=self.platform_topic)
        self.pipeline_tasks = PipelineTasks(self, "PipelineTasks", env_name=env_name, key=key, tracking_server_arn=(
            experiments.server_arn(self, env_name) if environment.experiments.enabled else None))
        self.approval_repair = ApprovalRepair(self, "ApprovalRepair", env_name=env_name, key=key, failures=self.failures)
        upstream = delivery.upstream(env_name) if delivery else None
        downstream = delivery.downstream(env_name) if delivery else None
        self.offers = PromotionOffers(self, "PromotionOffers", environment=environment, downstream=downstream, key=key,
                                      failures=self.failures) if downstream else None
        self.receiver = PromotionReceiver(self, "Promotions", environment=environment, upstream=upstream, key=key,
                                          failures=self.failures) if upstream else None
        self.approval = ApprovalLinks(self, "Approval", env_name=env_name, key=key, bucket_name=naming.artifact_bucket(
            env_name, environment.account, environment.region), reserved_concurrency=reserved_concurrency(environment.overrides))
        self.runs_api = RunsApi(self, "RunsApi", env_name=env_name, key=key)
        bucket = s3.Bucket.from_bucket_attributes(self, "ArtifactBucket", encryption_key=key, bucket_name=naming.artifact_bucket(
            env_name, environment.account, environment.region))
        self.access = AccessPolicies(self, "Access", env_name=env_name, runs_api=self.runs_api, bucket=bucket, key=key,
                                     tracking_server_arn=experiments.server_arn(self, env_name)
                                     if environment.experiments.enabled else None)
        # Wherever a model is shared-hosted, even in an environment that serves nothing: its runs smoke-test there.
        self.shared_endpoint = SharedEndpoint(self, "SharedHosting", environment=environment, key=key, bucket=bucket) \
            if uses_shared_hosting(specs or []) else None
        serving = serving_stage(environment, delivery)
        self.capture_split = CaptureSplitter(self, "CaptureSplit", env_name=env_name, serving=serving, key=key,
                                             bucket_name=bucket.bucket_name, failures=self.failures) \
            if self.shared_endpoint and serving else None
        self.fleet_dashboard = FleetDashboard(self, "FleetDashboard", env_name=env_name)  # every model, fixed size
        CfnOutput(self, "PlatformTopicArn", value=self.platform_topic.topic_arn)
        CfnOutput(self, "ApprovalUrl", value=self.approval.url.url)

"""The environment's capture splitter (lambdas/drift/split.py): each capture file of the shared endpoint, as it lands,
filed by model under each model's own serving-target prefix, so drift checks and people read their model's traffic
under the same model-scoped grants as dedicated hosting. One function and one rule an environment, whatever the
number of models (a rule on the default bus, for S3's events: the only bus S3 sends to)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events, aws_events_targets as targets, aws_iam as iam, aws_kms as kms
from constructs import Construct

from lambdas.drift.split import CAPTURED
from pipelines import naming
from stacks.constructs.functions import PlatformFunction


class CaptureSplitter(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, serving: str, key: kms.IKey,
                 bucket_name: str, failures) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        source = f"data-capture/{naming.shared_endpoint(env_name)}{CAPTURED}"
        self.splitter = PlatformFunction(
            self, "Split", handler="lambdas.drift.split.handler", key=key, timeout=Duration.minutes(2),
            environment={"ENVIRONMENT": env_name, "ARTIFACT_BUCKET": bucket_name, "SERVING_STAGE": serving},
            description="Files the shared endpoint's captured traffic under each model's own capture prefix",
            function_name=naming.control_function(env_name, "capture-split"))
        objects = lambda prefix: f"arn:{stack.partition}:s3:::{bucket_name}/{prefix}"  # noqa: E731
        role = self.splitter.role
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects(f"{source}*")]))
        # Every shared-hosted model's own prefix: the function is the platform's and writes only lines whose answer
        # names that model (it runs no model's code).
        role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[
            objects(f"data-capture/*-{env_name}-{serving}{CAPTURED}*")]))
        role.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn],
                                               conditions={"StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}}))
        failures.keep_failures_of(self.splitter.function)
        events.Rule(self, "OnSharedCapture", description=f"{env_name}: split the shared endpoint's captures by model",
                    event_pattern=events.EventPattern(source=["aws.s3"], detail_type=["Object Created"], detail={
                        "bucket": {"name": [bucket_name]}, "object": {"key": events.Match.prefix(source)}}),
                    targets=[targets.LambdaFunction(self.splitter.function, retry_attempts=3,
                                                    dead_letter_queue=failures.queue)])

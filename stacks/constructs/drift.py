"""The environment's drift check (lambdas/drift/handler.py), in the control plane: every model's drift schedule
invokes it with the model's name, and it reads that model's captured traffic and champion baseline, writes the
model's reports, claims the model's cooldown and starts the model's retraining, acting for the model. Each grant
names the model with the session's tag (stacks/constructs/control_plane.py)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from pipelines import naming
from stacks.constructs.control_plane import ModelScopedFunction, control_function_arn, model_arn

MODEL = naming.MODEL_VARIABLE
MEMORY_MB, TIMEOUT_MINUTES = 1769, 10  # one full vCPU (Lambda: 1,769 MB); lambdas/shared/cost.py prices these


class DriftChecks(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, key: kms.IKey, failures) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.checks = ModelScopedFunction(
            self, "Checks", handler="lambdas.drift.handler.handler", key=key, env_name=env_name, environment={},
            description="Compares a model's captured traffic with its champion's baseline",
            timeout=Duration.minutes(TIMEOUT_MINUTES), memory_mb=MEMORY_MB,
            function_name=naming.control_function(env_name, "drift"))
        self.function = self.checks.function
        grant = self.checks.grant_for_model
        bucket = naming.artifact_bucket(env_name, stack.account, stack.region)
        objects = lambda prefix: f"arn:{stack.partition}:s3:::{bucket}/{prefix}"  # noqa: E731
        # The endpoint of the stage the environment serves (prod or staging: pipelines.promotion.serving_stage).
        captures = [f"data-capture/{naming.endpoint(MODEL, env_name, stage)}/AllTraffic/" for stage in ("prod", "staging")]
        grant(["s3:GetObject"], *(objects(f"{capture}*") for capture in captures), objects(f"runs/{MODEL}/*"))
        grant(["s3:PutObject"], objects(f"drift/{MODEL}/*"))
        grant(["s3:ListBucket"], f"arn:{stack.partition}:s3:::{bucket}",
              conditions={"StringLike": {"s3:prefix": [f"{capture}*" for capture in captures]}})
        # hosting: shared too: the control plane's splitter files the model's lines of the shared endpoint's capture
        # under the same prefix (stacks/constructs/capture_split.py), so the check reads no other model's traffic.
        self.checks.grant_key_through("s3")  # the bucket's objects
        self.checks.grant_read_served()  # the champion: the package production serves
        grant(["sagemaker:DescribeModelPackage"], model_arn(
            self, "sagemaker", f"model-package/{naming.model_package_group(MODEL, env_name)}/*"))
        self.checks.grant_start_retraining()
        self.checks.grant_publish_to_model_topic()  # a failed check is the model owners' to hear of
        # Not retried by Lambda: the next scheduled check is the retry, and the owners get one message a failure.
        failures.keep_failures_of(self.function, retry_attempts=0)

    @staticmethod
    def function_arn(scope: Construct, env_name: str) -> str:
        return control_function_arn(scope, env_name, "drift")

"""The environment's quality check (lambdas/quality/handler.py), in the control plane: every model's quality schedule
invokes it with the model's name, and it reads that model's captured traffic, ground truth and champion evaluation,
writes the model's quality reports, tells the model's owners of a drop, and claims the model's retraining cooldown and
starts its retraining, acting for the model. Each grant names the model with the session's tag
(stacks/constructs/control_plane.py). One alarm for the environment: any model's drop tells the platform engineers,
whatever the number of models (the model's owners hear of it from the check itself)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch, aws_cloudwatch_actions as cw_actions, aws_kms as kms, aws_sns as sns
from constructs import Construct

from lambdas.quality.labels import GROUND_TRUTH
from pipelines import naming
from stacks.constructs.control_plane import ModelScopedFunction, control_function_arn, model_arn

MODEL = naming.MODEL_VARIABLE
MEMORY_MB, TIMEOUT_MINUTES = 1769, 10  # one full vCPU (Lambda: 1,769 MB); lambdas/shared/cost.py prices these
METRICS_NAMESPACE = "MLOps"  # lambdas/shared/observability.py (POWERTOOLS_METRICS_NAMESPACE)
SERVICE = "quality-check"  # powertools puts its service name on every metric as the `service` dimension


class QualityChecks(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, key: kms.IKey, failures,
                 platform_topic: sns.ITopic) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.checks = ModelScopedFunction(
            self, "Checks", handler="lambdas.quality.handler.handler", key=key, env_name=env_name,
            environment={"POWERTOOLS_SERVICE_NAME": SERVICE}, description="Judges a model's labelled traffic against its champion's evaluation",
            timeout=Duration.minutes(TIMEOUT_MINUTES), memory_mb=MEMORY_MB,
            function_name=naming.control_function(env_name, "quality"))
        self.function = self.checks.function
        self._grant_data(stack, env_name)
        self.checks.grant_start_retraining()  # through the model's one cooldown, drift's
        self.checks.grant_publish_to_model_topic()  # a drop, and a failed check, are the model owners' to hear of
        # Not retried by Lambda: the next scheduled check is the retry, and the owners get one message a failure.
        failures.keep_failures_of(self.function, retry_attempts=0)
        self.alarm = cloudwatch.Alarm(
            self, "Drops", alarm_name=f"{naming.control_stack(env_name)}-quality-drops",
            metric=cloudwatch.Metric(namespace=METRICS_NAMESPACE, metric_name="QualityDrops", statistic="Sum",
                                     dimensions_map={"service": SERVICE, "environment": env_name},
                                     period=Duration.hours(1)),
            threshold=1, evaluation_periods=1, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            alarm_description=f"{env_name}: a model's quality dropped against ground truth (the fleet dashboard's "
                              "quality widget names it; its owners got the report)")
        self.alarm.add_alarm_action(cw_actions.SnsAction(platform_topic))

    def _grant_data(self, stack: Stack, env_name: str) -> None:
        grant = self.checks.grant_for_model
        bucket = naming.artifact_bucket(env_name, stack.account, stack.region)
        objects = lambda prefix: f"arn:{stack.partition}:s3:::{bucket}/{prefix}"  # noqa: E731
        # The serving target of the stage the environment serves (prod or staging: pipelines.promotion.serving_stage);
        # a shared-hosted model's lines are split there by the control plane (stacks/constructs/capture_split.py).
        captures = [f"data-capture/{naming.endpoint(MODEL, env_name, stage)}/AllTraffic/" for stage in ("prod", "staging")]
        readable = [*captures, f"{GROUND_TRUTH}/{MODEL}/", f"quality/{MODEL}/"]
        # Of the model's runs, their evaluation reports only (the champion's baseline; a promoted one's too:
        # runs/<model>/<run>/promoted/evaluation.json), not the data snapshots beside them.
        grant(["s3:GetObject"], *(objects(f"{prefix}*") for prefix in readable), objects(f"runs/{MODEL}/*/evaluation.json"))
        grant(["s3:PutObject"], objects(f"quality/{MODEL}/*"))
        grant(["s3:ListBucket"], f"arn:{stack.partition}:s3:::{bucket}",
              conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in readable]}})
        self.checks.grant_key_through("s3")  # the bucket's objects
        self.checks.grant_read_served()  # the champion: the package the environment serves
        grant(["sagemaker:DescribeModelPackage"], model_arn(
            self, "sagemaker", f"model-package/{naming.model_package_group(MODEL, env_name)}/*"))

    @staticmethod
    def function_arn(scope: Construct, env_name: str) -> str:
        return control_function_arn(scope, env_name, "quality")

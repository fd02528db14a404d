"""Per model and environment: the retraining pipeline with its functions, training job, approval and triggers."""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, CfnOutput, Stack
from aws_cdk import aws_lambda as lambda_, aws_s3 as s3, aws_stepfunctions as sfn
from constructs import Construct

from pipelines import naming
from pipelines.promotion import serving_stage
from pipelines.spec import EnvironmentSpec, ModelSpec, models_dir
from stacks.constructs import experiments
from stacks.constructs.approval import ApprovalHook, reserved_concurrency
from stacks.constructs.budgets import ModelBudget
from stacks.constructs.control_plane import ModelRecordParameter
from stacks.constructs.drift import DriftChecks
from stacks.constructs.quality import QualityChecks
from stacks.constructs.endpoints import EndpointDeployment, ModelDashboard
from stacks.constructs.failures import AsyncFailures
from stacks.constructs.pipeline_tasks import DEPLOYMENT, TASKS, PipelineTasks
from stacks.constructs.sagemaker_access import ModelExecutionRole
from stacks.constructs.promotion import import_step
from stacks.constructs.retraining import (NotificationTopic, RetrainingStateMachine, RetrainingTriggers,
                                          lambda_step, state_machine_arn)
from stacks.constructs.schedules import ModelSchedules
from stacks.constructs.training import TrainingJob, resolve_inference_image
from stacks.registry_stack import RegistryStack

def capture_prefix(spec: ModelSpec, env_name: str, serving: str | None) -> str:
    """Where the serving target's captured traffic lies ("" where the environment serves nothing): SageMaker writes it
    there for a dedicated endpoint; for an inference component the control plane's splitter files the model's lines
    of the shared endpoint's capture there (lambdas/drift/split.py)."""
    return f"data-capture/{naming.endpoint(spec.name, env_name, serving)}/AllTraffic" if serving else ""


class ModelStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, environment: EnvironmentSpec, spec: ModelSpec,
                 registry: RegistryStack, source_commit: str = "unknown", model_dir=None, delivery=None,
                 **kwargs) -> None:
        """delivery: cdk.json's promotion roles (pipelines.promotion.Delivery); a promotion stage receives its packages
        from the previous stage instead of training them (docs/promotion.md)."""
        super().__init__(scope, construct_id, **kwargs)
        env_name, model = environment.name, spec.name
        key = registry.key
        # By its derived name, not a cross-stack reference: literal ARNs keep IAM statements reviewable. Without its
        # key: CDK would add a direct use of the key (Encrypt included) to every grant on it, and the model's execution
        # role runs the owner's code; each role here uses the key through S3 only (sagemaker_access.grant_key_through_s3).
        bucket = s3.Bucket.from_bucket_attributes(self, "ArtifactBucket", bucket_name=naming.artifact_bucket(
            env_name, environment.account, environment.region))
        self.node.add_dependency(registry)
        group = naming.model_package_group(model, env_name)
        self.topic = NotificationTopic(self, "Notifications", key=key, emails=spec.approval.approvers,
                                       name=naming.notification_topic(model, env_name)).topic
        self.failures = AsyncFailures(self, "AsyncFailures", key=key, topic=self.topic,
                                      name=naming.failure_queue(model, env_name))
        self.budget = ModelBudget(self, "Budget", spec=spec, env_name=env_name, topic=self.topic)
        upstream = delivery.upstream(env_name) if delivery else None
        serving = serving_stage(environment, delivery)
        self.execution_role = ModelExecutionRole(self, "SageMakerExecution", model=model, env_name=env_name).role
        self.training = None if upstream else TrainingJob(self, "Training", spec=spec, bucket=bucket, key=key,
                                                          model_dir=model_dir or models_dir() / model,
                                                          role=self.execution_role)
        machine_arn = state_machine_arn(self, model, env_name)
        self.tracked = self._tracked(environment, spec)
        environment_variables = {
            "MODEL_SPEC": spec.model_dump_json(), "ARTIFACT_BUCKET": bucket.bucket_name, "MODEL_PACKAGE_GROUP": group,
            "STATE_MACHINE_ARN": machine_arn, "NOTIFICATION_TOPIC_ARN": self.topic.topic_arn,
            "TRAINING_HYPERPARAMETERS": json.dumps(self.training.hyperparameters if self.training else {}),
            "INFERENCE_IMAGE": resolve_inference_image(spec, self.region),
            "AUDIT_TABLE": naming.audit_table(env_name), "SOURCE_GIT_COMMIT": source_commit,
            "SERVING_STAGE": serving or "", "SERVING_ENDPOINT": naming.endpoint(model, env_name, serving) if serving else "",
            "SOURCE_ARCHIVE": self.training.source.s3_object_url if self.training else "",
            "TRACKING_SERVER": naming.tracking_server(env_name) if self.tracked else "",
            "CAPTURE_PREFIX": capture_prefix(spec, env_name, serving),
            "ENDPOINT_ROLE_ARN": self.execution_role.role_arn,
        }
        self.record = ModelRecordParameter(self, "Record", spec=spec, env_name=env_name, settings={
            **environment_variables, "APPROVAL_TOPIC_ARN": self.format_arn(
                service="sns", resource=naming.approval_topic(model, env_name), arn_format=ArnFormat.NO_RESOURCE_NAME)})
        self.package_arns = [self.format_arn(service="sagemaker", resource="model-package-group", resource_name=group),
                             self.format_arn(service="sagemaker", resource="model-package", resource_name=f"{group}/*")]
        # The retraining tasks are the control plane's (stacks/constructs/pipeline_tasks.py); a promotion stage
        # trains nothing: it notifies and deploys.
        functions = {name: lambda_.Function.from_function_attributes(
            self, f"{name.title()}Task", function_arn=PipelineTasks.function_arn(self, env_name, name),
            same_environment=True) for name in TASKS if not upstream or name in ("notify", *DEPLOYMENT)}
        rejected = lambda_step(self, "NotifyRejected", functions["notify"], None, outcome="rejected").next(
            sfn.Fail(self, "ModelRejectedEnd", error="ModelRejected", cause="an approver rejected the model or nobody answered in time"))
        approval = ApprovalHook(self, "Approval", spec=spec, env_name=env_name, key=key, on_rejected=rejected,
                                environment_reserved_concurrency=reserved_concurrency(environment.overrides))
        self.approval = approval
        self.deployment = EndpointDeployment(self, "Deployment", spec=spec, env_name=env_name, key=key, bucket=bucket,
                                             role=self.execution_role, image_uri=environment_variables["INFERENCE_IMAGE"],
                                             topic=self.topic, functions={name: functions[name] for name in DEPLOYMENT},
                                             serving=serving)
        # A promotion stage's runs start with the control plane's import (offers too are the control plane's).
        self.pipeline = RetrainingStateMachine(self, "Retraining", spec=spec, env_name=env_name, key=key,
                                               functions=functions, training=self.training, approval_step=approval.state,
                                               deployment=self.deployment,
                                               head=import_step(self, env_name) if upstream else None)
        self.dashboard = ModelDashboard(self, "Dashboard", spec=spec, env_name=env_name, machine=self.pipeline.machine,
                                        alarms=self.deployment.alarms, serving=serving)
        self.schedules = ModelSchedules(self, "Schedules", model=model, env_name=env_name,
                                        dead_letter_queue=self.failures.queue)
        self.triggers = RetrainingTriggers(self, "Triggers", spec=spec, machine=self.pipeline.machine,
                                           schedules=self.schedules)
        approval.schedule_repair(self.schedules)
        if serving:  # nothing served, nothing captured
            self._schedule_checks(spec, env_name)
        CfnOutput(self, "StateMachineArn", value=self.pipeline.machine.state_machine_arn)
        CfnOutput(self, "NotificationTopicArn", value=self.topic.topic_arn)

    @staticmethod
    def _tracked(environment: EnvironmentSpec, spec: ModelSpec) -> bool:
        """Runs are logged to MLflow where the environment has a tracking server and the model has not opted out."""
        return environment.experiments.enabled and spec.experiments.enabled

    def _schedule_checks(self, spec, env_name: str) -> None:
        """The environment's drift and quality checks (the control plane's), for this model, on the spec's schedules;
        the Scheduler context attributes give each check its time and an id for its logs."""
        payload = {"model": spec.name, "scheduled_time": "<aws.scheduler.scheduled-time>",
                   "execution_id": "<aws.scheduler.execution-id>"}
        if spec.drift.enabled:
            self.schedules.add("drift", spec.drift.schedule, target_arn=DriftChecks.function_arn(self, env_name),
                               payload=payload, description=f"Drift check of {spec.name}")
        if spec.quality.enabled:
            self.schedules.add("quality", spec.quality.schedule, target_arn=QualityChecks.function_arn(self, env_name),
                               payload=payload, description=f"Quality check of {spec.name}")

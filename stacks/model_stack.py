"""Per model and environment: the retraining pipeline with its functions, training job, approval and triggers."""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam, aws_s3 as s3, aws_stepfunctions as sfn
from constructs import Construct

from pipelines import naming
from pipelines.spec import MODELS_DIR, EnvironmentSpec, ModelSpec
from stacks.constructs import experiments
from stacks.constructs.approval import ApprovalHook
from stacks.constructs.budgets import ModelBudget, grant_price_list_read
from stacks.constructs.control_plane import ModelRecordParameter
from stacks.constructs.drift import DriftChecks
from stacks.constructs.endpoints import EndpointDeployment, ModelDashboard
from stacks.constructs.failures import AsyncFailures
from stacks.constructs.functions import PlatformFunction
from stacks.constructs.promotion import PromotionImport, PromotionOffer
from stacks.constructs.registry import grant_read_champion, grant_read_registry
from stacks.constructs.retraining import (NotificationTopic, RetrainingStateMachine, RetrainingTriggers,
                                          lambda_step, state_machine_arn)
from stacks.constructs.schedules import ModelSchedules
from stacks.constructs.training import TrainingJob, resolve_inference_image
from stacks.registry_stack import RegistryStack

PIPELINE_HANDLERS = {
    "prepare": ("lambdas.pipeline.handlers.prepare_run", "Validates execution input, refuses duplicate runs"),
    "validate": ("lambdas.pipeline.handlers.validate_data", "Validates and snapshots the training data"),
    "evaluate": ("lambdas.pipeline.handlers.evaluate", "Compares the challenger with the approved champion"),
    "register": ("lambdas.pipeline.handlers.register", "Registers the model package with lineage"),
    "notify": ("lambdas.pipeline.handlers.notify", "Sends the end-of-run notification"),
}


# (timeout minutes, memory MB) of the pipeline tasks that read whole files: the dataset, the trained artifact (register
# hashes and releases it: the artifact's size is bounded by what one invocation hashes in 15 minutes).
TASK_SIZES = {"validate": (5, 1024), "evaluate": (5, 1024), "register": (15, 1024)}

class ModelStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, environment: EnvironmentSpec, spec: ModelSpec,
                 registry: RegistryStack, source_commit: str = "unknown", model_dir=None, delivery=None,
                 **kwargs) -> None:
        """delivery: cdk.json's promotion roles (pipelines.promotion.Delivery); a promotion stage receives its packages
        from the previous stage instead of training them (docs/promotion.md)."""
        super().__init__(scope, construct_id, **kwargs)
        env_name, model = environment.name, spec.name
        key = registry.key
        # By its derived name, not a cross-stack reference: literal ARNs keep IAM statements reviewable.
        bucket = s3.Bucket.from_bucket_attributes(self, "ArtifactBucket", encryption_key=key, bucket_name=naming.artifact_bucket(
            env_name, environment.account, environment.region))
        self.node.add_dependency(registry)
        group = naming.model_package_group(model, env_name)
        self.topic = NotificationTopic(self, "Notifications", key=key, emails=spec.approval.approvers,
                                       name=naming.notification_topic(model, env_name)).topic
        self.failures = AsyncFailures(self, "AsyncFailures", key=key, topic=self.topic,
                                      name=naming.failure_queue(model, env_name))
        self.budget = ModelBudget(self, "Budget", spec=spec, env_name=env_name, topic=self.topic)
        upstream = delivery.upstream(env_name) if delivery else None
        downstream = delivery.downstream(env_name) if delivery else None
        self.training = None if upstream else TrainingJob(self, "Training", spec=spec, bucket=bucket, key=key,
                                                          model_dir=model_dir or MODELS_DIR / model)
        machine_arn = state_machine_arn(self, model, env_name)
        self.tracked = self._tracked(environment, spec)
        environment_variables = {
            "MODEL_SPEC": spec.model_dump_json(), "ARTIFACT_BUCKET": bucket.bucket_name, "MODEL_PACKAGE_GROUP": group,
            "STATE_MACHINE_ARN": machine_arn, "NOTIFICATION_TOPIC_ARN": self.topic.topic_arn,
            "TRAINING_HYPERPARAMETERS": json.dumps(self.training.hyperparameters if self.training else {}),
            "INFERENCE_IMAGE": resolve_inference_image(spec, self.region),
            "AUDIT_TABLE": naming.audit_table(env_name), "SOURCE_GIT_COMMIT": source_commit,
            "PROD_ENDPOINT": naming.endpoint(model, env_name, "prod"),
            "SOURCE_ARCHIVE": self.training.source.s3_object_url if self.training else "",
            "TRACKING_SERVER": naming.tracking_server(env_name) if self.tracked else "",
            "CAPTURE_PREFIX": f"data-capture/{naming.endpoint(model, env_name, 'prod')}/AllTraffic",
        }
        self.record = ModelRecordParameter(self, "Record", spec=spec, env_name=env_name,
                                           settings=environment_variables)
        self.functions = {
            name: PlatformFunction(self, f"{name.title()}Function", handler=handler, key=key,
                                   environment=environment_variables, description=description,
                                   timeout=Duration.minutes(TASK_SIZES.get(name, (1, 512))[0]),
                                   memory_mb=TASK_SIZES.get(name, (1, 512))[1],
                                   role_path=naming.RELEASE_WRITER_PATH if name == "register" else None)
            for name, (handler, description) in PIPELINE_HANDLERS.items() if not upstream or name == "notify"
        }
        self.package_arns = [self.format_arn(service="sagemaker", resource="model-package-group", resource_name=group),
                             self.format_arn(service="sagemaker", resource="model-package", resource_name=f"{group}/*")]
        self._grant(model, env_name, machine_arn, bucket, key, registry.audit_table.table_arn)

        functions = {name: construct.function for name, construct in self.functions.items()}
        rejected = lambda_step(self, "NotifyRejected", functions["notify"], None, outcome="rejected").next(
            sfn.Fail(self, "ModelRejectedEnd", error="ModelRejected", cause="an approver rejected the model or nobody answered in time"))
        approval = ApprovalHook(self, "Approval", spec=spec, env_name=env_name, key=key,
                                environment=environment_variables, audit_table=registry.audit_table,
                                machine_arn=machine_arn, package_arns=self.package_arns, on_rejected=rejected,
                                bucket=bucket)
        self.approval = approval
        grant_price_list_read(approval.request.role)  # the cost table of the approval email
        self.deployment = EndpointDeployment(self, "Deployment", spec=spec, env_name=env_name, key=key, bucket=bucket,
                                             environment=environment_variables, package_arns=self.package_arns,
                                             image_uri=environment_variables["INFERENCE_IMAGE"], topic=self.topic,
                                             audit_table_arn=registry.audit_table.table_arn)
        self.promotion = PromotionImport(
            self, "Promotion", spec=spec, environment=environment, upstream=upstream, key=key, bucket=bucket,
            machine_arn=machine_arn, package_arns=self.package_arns, audit_table_arn=registry.audit_table.table_arn,
            environment_variables=environment_variables, failures=self.failures) if upstream else None
        self.pipeline = RetrainingStateMachine(self, "Retraining", spec=spec, env_name=env_name, key=key,
                                               functions=functions, training=self.training, approval_step=approval.state,
                                               deployment=self.deployment, head=self.promotion and self.promotion.step)
        self.offer = PromotionOffer(
            self, "Offer", spec=spec, environment=environment, downstream=downstream, key=key, bucket=bucket,
            machine_arn=machine_arn, package_arns=self.package_arns, environment_variables=environment_variables,
            failures=self.failures, audit_table_arn=registry.audit_table.table_arn) if downstream else None
        self.dashboard = ModelDashboard(self, "Dashboard", spec=spec, env_name=env_name, machine=self.pipeline.machine,
                                        alarms=self.deployment.alarms["prod"])
        self.schedules = ModelSchedules(self, "Schedules", model=model, env_name=env_name,
                                        dead_letter_queue=self.failures.queue)
        self.triggers = RetrainingTriggers(self, "Triggers", spec=spec, machine=self.pipeline.machine,
                                           schedules=self.schedules)
        approval.schedule_repair(self.schedules)
        if spec.drift.enabled:
            self._schedule_drift_checks(spec, env_name)
        CfnOutput(self, "StateMachineArn", value=self.pipeline.machine.state_machine_arn)
        CfnOutput(self, "NotificationTopicArn", value=self.topic.topic_arn)
        CfnOutput(self, "ApprovalUrl", value=approval.url.url)

    @staticmethod
    def _tracked(environment: EnvironmentSpec, spec: ModelSpec) -> bool:
        """Runs are logged to MLflow where the environment has a tracking server and the model has not opted out."""
        return environment.experiments.enabled and spec.experiments.enabled

    def _schedule_drift_checks(self, spec, env_name: str) -> None:
        """The environment's drift check (the control plane's), for this model, on the spec's schedule; the
        Scheduler context attributes give the check its time and an id for its logs."""
        self.schedules.add("drift", spec.drift.schedule, target_arn=DriftChecks.function_arn(self, env_name),
                           payload={"model": spec.name, "scheduled_time": "<aws.scheduler.scheduled-time>",
                                    "execution_id": "<aws.scheduler.execution-id>"},
                           description=f"Drift check of {spec.name}")

    def _grant(self, model: str, env_name: str, machine_arn: str, bucket, key, audit_table_arn: str) -> None:
        f = {name: construct.role for name, construct in self.functions.items()}
        if "prepare" in f:  # a promotion stage trains nothing
            self._grant_training(f, model, env_name, machine_arn, bucket)
        self.topic.grant_publish(f["notify"])
        f["notify"].add_to_policy(iam.PolicyStatement(actions=["sagemaker:UpdateModelPackage"], resources=self.package_arns))
        f["notify"].add_to_policy(iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[audit_table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{model}"]}}))
        key.grant_encrypt_decrypt(f["notify"])

    def _grant_training(self, f: dict, model: str, env_name: str, machine_arn: str, bucket) -> None:
        f["prepare"].add_to_policy(iam.PolicyStatement(actions=["states:ListExecutions"], resources=[machine_arn]))
        bucket.grant_read(f["validate"], "datasets/*")
        bucket.grant_read_write(f["validate"], f"runs/{model}/*")
        bucket.grant_read(f["evaluate"], f"models/{model}/*")
        bucket.grant_write(f["evaluate"], f"runs/{model}/*")
        package_arns = self.package_arns
        grant_read_registry(f["validate"], package_arns)  # ValidateData pins the champion the job re-scores
        grant_read_champion(f["validate"], model, env_name)
        f["register"].add_to_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:AddTags"],
            resources=package_arns))
        # Register releases the evaluated artifact: it reads the job's output and writes (never deletes) the release.
        bucket.grant_read(f["register"], f"models/{model}/*")
        bucket.grant_read(f["register"], f"{naming.RELEASES}/{model}/*")
        bucket.grant_put(f["register"], f"{naming.RELEASES}/{model}/*")
        # PrepareRun snapshots the source archive into the run's folder; a reproduction reads the version it repeats.
        self.training.grant_source_snapshot(f["prepare"])
        bucket.grant_read_write(f["prepare"], f"runs/{model}/*")
        f["prepare"].add_to_policy(iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=package_arns))
        if self.tracked:
            for name in ("evaluate", "register"):  # evaluate logs the run (and its trials), register tags it
                experiments.grant_pipeline_tracking(f[name], experiments.server_arn(self, env_name))
        self.training.grant_read_trials(f["evaluate"])

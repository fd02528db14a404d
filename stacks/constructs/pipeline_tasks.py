"""The environment's retraining tasks (lambdas/pipeline/handlers.py, lambdas/endpoint/handlers.py), in the control
plane: every model's state machine invokes them, and each acts for the model whose machine runs the execution
(lambdas/shared/events.py). Each grant names the model with the session's tag (stacks/constructs/control_plane.py):
acting for churn, the tasks reach churn's data, runs, trained models, releases, packages, audit rows, topic, SageMaker
models, endpoint configs, endpoints and execution role, and nothing of another model's."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from pipelines import naming
from stacks.constructs.control_plane import ModelScopedFunction, control_function_arn, model_arn

MODEL = naming.MODEL_VARIABLE


@dataclass(frozen=True)
class Task:
    handler: str
    description: str
    timeout_minutes: int = 1
    memory_mb: int = 512


# The tasks that read whole files (the dataset, the trained artifact: register hashes and releases it, so the
# artifact's size is bounded by what one invocation copies in 15 minutes) get more time and memory.
TASKS = {
    "prepare": Task("lambdas.pipeline.handlers.prepare_run", "Validates a run's input, refuses duplicate runs"),
    "validate": Task("lambdas.pipeline.handlers.validate_data", "Validates and snapshots a run's training data", 5, 1024),
    "evaluate": Task("lambdas.pipeline.handlers.evaluate", "Compares a challenger with the approved champion", 5, 1024),
    "register": Task("lambdas.pipeline.handlers.register", "Registers a model package with its lineage", 15, 1024),
    "notify": Task("lambdas.pipeline.handlers.notify", "Sends a run's end-of-run notification"),
    "deploy": Task("lambdas.endpoint.handlers.deploy",
                   "Creates a model and endpoint config; creates or blue/green-updates the endpoint", 2),
    "smoke": Task("lambdas.endpoint.handlers.smoke_test", "Invokes a model's staging endpoint with sample rows", 2),
    "rollback": Task("lambdas.endpoint.handlers.restore_after_failure",
                     "After a failed release: restores every stage the run touched and rejects the package", 2),
}


DEPLOYMENT = ("deploy", "smoke", "rollback")
# Service Authorization Reference, Amazon SageMaker: CreateInferenceComponent authorizes against the endpoint the
# component is placed on as well as the component itself (UpdateInferenceComponent: the component only).
SHARED_ENDPOINT_DEPLOY = ["sagemaker:CreateInferenceComponent"]
SHARED_ENDPOINT_REASON = ("the environment's shared endpoint hosts every shared-hosted model's inference component; "
                          "these actions place or call a component there, each component is granted by model name "
                          "(inference-component/<model>-<env>-*), and the endpoint itself is never updated or deleted")


def purpose(task: str) -> str:
    return f"pipeline-{task}"


class PipelineTasks(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, key: kms.IKey,
                 tracking_server_arn: str | None = None) -> None:
        """tracking_server_arn: the environment's MLflow tracking server, which evaluate logs runs to and register
        tags them on."""
        super().__init__(scope, construct_id)
        self.env_name = env_name
        self.tasks = {name: ModelScopedFunction(
            self, name.title(), handler=task.handler, key=key, env_name=env_name,
            description=task.description, timeout=Duration.minutes(task.timeout_minutes), memory_mb=task.memory_mb,
            environment={"ENVIRONMENT": env_name, "KMS_KEY_ARN": key.key_arn} if name in DEPLOYMENT else {},
            function_name=naming.control_function(env_name, purpose(name)),
            scoped_role_path=naming.RELEASE_WRITER_PATH if name == "register" else None) for name, task in TASKS.items()}
        self.functions = {name: task.function for name, task in self.tasks.items()}
        for task in self.tasks.values():
            task.grant_key_through("s3")  # the artifact bucket's objects
        self._grant_prepare()
        self._grant_validate()
        self._grant_evaluate(tracking_server_arn)
        self._grant_register(tracking_server_arn)
        self._grant_notify()
        self._grant_deployment(key)

    def _objects(self, prefix: str) -> str:
        stack = Stack.of(self)
        return f"arn:{stack.partition}:s3:::{naming.artifact_bucket(self.env_name, stack.account, stack.region)}/{prefix}"

    def _packages(self) -> list[str]:
        group = naming.model_package_group(MODEL, self.env_name)
        return [model_arn(self, "sagemaker", f"model-package-group/{group}"),
                model_arn(self, "sagemaker", f"model-package/{group}/*")]

    def _machine(self) -> str:
        return model_arn(self, "states", f"stateMachine:{naming.state_machine(MODEL, self.env_name)}")

    def _grant_prepare(self) -> None:
        task = self.tasks["prepare"]
        task.grant_for_model(["states:ListExecutions"], self._machine())
        task.grant_for_model(["s3:GetObject", "s3:GetObjectVersion"], self._objects(f"runs/{MODEL}/*"))
        task.grant_for_model(["sagemaker:DescribeModelPackage"], *self._packages())  # the version a run reproduces

    def _grant_validate(self) -> None:
        task = self.tasks["validate"]
        task.grant_for_model(["s3:GetObject", "s3:GetObjectVersion"],
                             self._objects(f"{naming.DATASETS}/{MODEL}/*"), self._objects(f"runs/{MODEL}/*"))
        task.grant_for_model(["s3:PutObject"], self._objects(f"runs/{MODEL}/*"))
        # The champion the job re-scores: the package production serves (endpoint -> config -> model -> package).
        task.grant_for_model(["sagemaker:DescribeModelPackage"], *self._packages())
        task.grant_read_served()
        task.grant_shared(["sagemaker:ListModelPackages"], ["*"], reason="SageMaker List calls have no resource-level "
                          "permissions; it lists names, and describing a package is scoped to the model")

    def _grant_evaluate(self, tracking_server_arn: str | None) -> None:
        task = self.tasks["evaluate"]
        task.grant_for_model(["s3:GetObject", "s3:GetObjectVersion"], self._objects(f"models/{MODEL}/*"))
        task.grant_for_model(["s3:PutObject"], self._objects(f"runs/{MODEL}/*"))
        task.grant_shared(["sagemaker:ListTrainingJobsForHyperParameterTuningJob"], ["*"], reason="SageMaker List "
                          "calls have no resource-level permissions; it lists a tuning job's trials (names, metrics)")
        self._grant_tracking(task, tracking_server_arn)

    def _grant_register(self, tracking_server_arn: str | None) -> None:
        task, releases = self.tasks["register"], f"{naming.RELEASES}/{MODEL}/"
        task.grant_for_model(["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:AddTags"],
                             *self._packages())
        # Register releases the evaluated artifact: it reads the job's output and writes (never deletes) the release;
        # it lists the model's releases to tell a release that exists (a retried step) from one to copy.
        task.grant_for_model(["s3:GetObject", "s3:GetObjectVersion"], self._objects(f"models/{MODEL}/*"),
                             self._objects(f"{releases}*"))
        task.grant_for_model(["s3:PutObject"], self._objects(f"{releases}*"))
        stack = Stack.of(self)
        task.grant_for_model(["s3:ListBucket"], f"arn:{stack.partition}:s3:::"
                             f"{naming.artifact_bucket(self.env_name, stack.account, stack.region)}",
                             conditions={"StringLike": {"s3:prefix": [f"{releases}*"]}})
        self._grant_tracking(task, tracking_server_arn)

    def _grant_notify(self) -> None:
        task = self.tasks["notify"]
        task.grant_publish_to_model_topic()
        task.grant_for_model(["sagemaker:UpdateModelPackage"], *self._packages())  # a run ended undecided: rejected
        task.grant_for_model(["dynamodb:GetItem", "dynamodb:UpdateItem"],
                             model_arn(self, "dynamodb", f"table/{naming.audit_table(self.env_name)}"),
                             conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{MODEL}"]}})
        task.grant_key_through("dynamodb")  # the audit table

    def _sagemaker(self, kind: str) -> str:
        """The model's SageMaker models, endpoint configs or endpoints: <model>-<env>-<stage>[-<run>] (pipelines.spec
        refuses a model name that would fall under another's)."""
        return model_arn(self, "sagemaker", f"{kind}/{MODEL}-{self.env_name}-*")

    def _grant_deployment(self, key: kms.IKey) -> None:
        deploy, smoke, rollback = (self.tasks[name] for name in DEPLOYMENT)
        deploy.grant_for_model(["sagemaker:CreateModel", "sagemaker:CreateEndpointConfig", "sagemaker:CreateEndpoint",
                                "sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:AddTags"],
                               *(self._sagemaker(kind) for kind in ("model", "endpoint-config", "endpoint")))
        deploy.grant_for_model(["sagemaker:CreateInferenceComponent", "sagemaker:UpdateInferenceComponent",
                                "sagemaker:DescribeInferenceComponent", "sagemaker:AddTags"],
                               self._sagemaker("inference-component"))
        deploy.grant_for_model(["sagemaker:DescribeModelPackage"], *self._packages())
        stack = Stack.of(self)
        deploy.grant_for_model(["iam:PassRole"], f"arn:{stack.partition}:iam::{stack.account}:role/"
                               f"{naming.sagemaker_role_name(MODEL, self.env_name)}",
                               conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}})
        deploy.grant_for_model(["s3:GetObject", "s3:GetObjectVersion"],  # the gate re-reads the approved bytes' digest
                               self._objects(f"{naming.RELEASES}/{MODEL}/*"))
        deploy.grant_for_model(["dynamodb:GetItem"],  # the gate re-checks the approval in the audit trail
                               model_arn(self, "dynamodb", f"table/{naming.audit_table(self.env_name)}"),
                               conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{MODEL}"]}})
        deploy.grant_key_through("dynamodb", ["kms:Decrypt"])
        rollback.grant_for_model(["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint"],
                                 self._sagemaker("endpoint"), self._sagemaker("endpoint-config"))
        rollback.grant_for_model(["sagemaker:DescribeInferenceComponent", "sagemaker:UpdateInferenceComponent",
                                  "sagemaker:DeleteInferenceComponent"], self._sagemaker("inference-component"))
        rollback.grant_for_model(["sagemaker:UpdateModelPackage"], *self._packages())
        for caller in (deploy, rollback):  # endpoint configs and endpoints carry the key: SageMaker takes a grant
            caller.grant_shared(["kms:CreateGrant", "kms:DescribeKey"], [key.key_arn], reason="grants SageMaker "
                                "makes for the AWS resources the session's model creates (kms:GrantIsForAWSResource)",
                                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}})
        # InvokeEndpoint with InferenceComponentName authorizes against the endpoint and the component (Service
        # Authorization Reference): on the shared endpoint, only the model's own components answer the session.
        smoke.grant_for_model(["sagemaker:InvokeEndpoint"], self._sagemaker("endpoint"), self._sagemaker("inference-component"))
        self._grant_shared_endpoint(deploy, smoke)
        smoke.grant_for_model(["s3:GetObject"], self._objects(f"runs/{MODEL}/*"))  # the sample rows

    def _grant_shared_endpoint(self, deploy: ModelScopedFunction, smoke: ModelScopedFunction) -> None:
        """hosting: shared: the environment's shared endpoint is every shared-hosted model's (SHARED_ENDPOINT_GRANTS)."""
        shared = model_arn(self, "sagemaker", f"endpoint/{naming.shared_endpoint(self.env_name)}")
        for task, actions in ((deploy, SHARED_ENDPOINT_DEPLOY), (smoke, ["sagemaker:InvokeEndpoint"])):
            task.grant_shared(actions, [shared], reason=SHARED_ENDPOINT_REASON)

    @staticmethod
    def _grant_tracking(task: ModelScopedFunction, server_arn: str | None) -> None:
        if server_arn:
            from stacks.constructs.experiments import PIPELINE_ACTIONS
            task.grant_shared(["sagemaker:DescribeMlflowTrackingServer",
                               *(f"sagemaker-mlflow:{action}" for action in PIPELINE_ACTIONS)], [server_arn],
                              reason="the environment's one tracking server: MLflow has no per-model resources "
                                     "IAM can name; every model's pipeline logged to it before")

    @staticmethod
    def function_arn(scope: Construct, env_name: str, task: str) -> str:
        return control_function_arn(scope, env_name, purpose(task))

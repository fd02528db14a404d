"""The environment's runs API, in the control plane: one function behind one Function URL with AWS_IAM auth, the
only way people start runs and decide approvals from the CLI, for every model of the environment. Lambda verifies
the SigV4 signature and hands the handler the caller's principal; the request names the model, and the function acts
for it through its model-scoped role (stacks/constructs/control_plane.py), which starts that model's executions,
answers its task tokens and reads its rows, packages, endpoints and training logs, and no other model's.

Who may act on the model is decided before (lambdas/runs/handlers.py): a person (lambdas/shared/identity.py) who
proves their session is tagged with that model (lambdas/runs/proof.py: a KMS ciphertext only such a session can
make), or, for decisions, an approver the model's spec names.

Clients find the URL in an SSM parameter with a derived name (pipelines.naming.env_runs_api_parameter).
"""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Stack, aws_iam as iam, aws_kms as kms, aws_lambda as lambda_, aws_ssm as ssm
from constructs import Construct

from lambdas.shared.dal import TRAINING_LOG_GROUP
from lambdas.shared.identity import IDENTITY_CENTER_PATH
from pipelines import naming
from stacks.constructs.control_plane import ModelScopedFunction, model_arn

MODEL = naming.MODEL_VARIABLE
PURPOSE = "runs-api"
PERSON_ROLES = ("data-scientist", "approver")  # the kinds of naming.PERSON_KINDS with a role (stacks/constructs/access.py)


class RunsApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        roles = {kind: naming.person_role(env_name, kind) for kind in PERSON_ROLES}
        self.runs = ModelScopedFunction(
            self, "Function", handler="lambdas.runs.handlers.handler", key=key, env_name=env_name,
            function_name=naming.control_function(env_name, PURPOSE),
            environment={"KMS_KEY_ARN": key.key_arn, "APPROVER_ROLE_NAME": roles["approver"], "PERSON_ROLES": json.dumps(list(roles.values())),
                         "DATA_SCIENTIST_ROLE_ARN": stack.format_arn(service="iam", region="", resource="role",
                                                                     resource_name=roles["data-scientist"])},
            description="Runs API: starts runs and records CLI approvals as the signed caller, for the model it names")
        self.function = self.runs.function
        self.url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
        self.parameter = ssm.StringParameter(self, "UrlParameter", parameter_name=naming.env_runs_api_parameter(env_name),
                                             string_value=self.url.url,
                                             description=f"URL of the {env_name} runs API (AWS_IAM, SigV4 service lambda)")
        self._grant_caller_checks(key)
        self._grant_runs(env_name)
        self._grant_decisions(env_name, key)
        self._grant_reads(env_name)
        CfnOutput(self, "Url", value=self.url.url, description="Runs API (AWS_IAM): mlops run start / approve / reject")

    def _grant_caller_checks(self, key: kms.IKey) -> None:
        """Before acting for any model, as the function's own role: whether an AWSReservedSSO_ role is Identity
        Center's (GetRole under its reserved path, and nowhere else, tells them from a look-alike anyone could
        create), and the caller's proof of their model (Decrypt of proofs only: the purpose is in the context)."""
        stack, role = Stack.of(self), self.runs.role
        role.add_to_policy(iam.PolicyStatement(actions=["iam:GetRole"], resources=[stack.format_arn(
            service="iam", region="", resource="role", resource_name=f"{IDENTITY_CENTER_PATH.strip('/')}/*")]))
        role.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key.key_arn], conditions={
            "StringEquals": {"kms:EncryptionContext:purpose": naming.RUNS_API_PROOF}}))

    def _grant_runs(self, env_name: str) -> None:
        grant, machine = self.runs.grant_for_model, naming.state_machine(MODEL, env_name)
        grant(["states:StartExecution", "states:ListExecutions"], model_arn(self, "states", f"stateMachine:{machine}"))
        grant(["states:DescribeExecution", "states:GetExecutionHistory"], model_arn(self, "states",
                                                                                    f"execution:{machine}:*"))
        self.runs.grant_model_state_machine_key()

    def _grant_decisions(self, env_name: str, key: kms.IKey) -> None:
        """What apply_decision needs: the approval record, the task token's key, the answer, the package status."""
        grant, machine = self.runs.grant_for_model, naming.state_machine(MODEL, env_name)
        grant(["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"],
              model_arn(self, "dynamodb", f"table/{naming.audit_table(env_name)}"),
              conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{MODEL}"]}})
        self.runs.grant_key_through("dynamodb")
        # The task token was encrypted with the model in its encryption context (lambdas/approval/handlers.py).
        grant(["kms:Decrypt"], key.key_arn, conditions={"StringEquals": {
            "kms:EncryptionContext:purpose": "approval-task-token", "kms:EncryptionContext:model": MODEL}})
        grant(["states:SendTaskSuccess", "states:SendTaskFailure"], model_arn(self, "states", f"stateMachine:{machine}"))
        group = naming.model_package_group(MODEL, env_name)
        grant(["sagemaker:UpdateModelPackage"], model_arn(self, "sagemaker", f"model-package-group/{group}"),
              model_arn(self, "sagemaker", f"model-package/{group}/*"))

    def _grant_reads(self, env_name: str) -> None:
        """`mlops run metrics`: the per-epoch lines of the model's training jobs (SageMaker's log group, streams named
        <job>/algo-<n>-<time>, jobs named <model>-<execution>); `mlops models list`: what serves each stage
        (endpoint -> config -> model -> package)."""
        grant = self.runs.grant_for_model
        log_group = model_arn(self, "logs", f"log-group:{TRAINING_LOG_GROUP}")
        grant(["logs:GetLogEvents"], f"{log_group}:log-stream:{MODEL}-*")
        # Listing a log group's streams has no per-stream resource, so the function lists them as itself (the names
        # of every model's training jobs); it reads the lines only of the acting model's own (GetLogEvents above).
        self.runs.role.add_to_policy(iam.PolicyStatement(actions=["logs:DescribeLogStreams"], resources=[f"{log_group}:*"]))
        endpoints = [naming.endpoint(MODEL, env_name, stage) for stage in ("staging", "prod")]
        grant(["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel",
               "sagemaker:DescribeInferenceComponent"],
              *[model_arn(self, "sagemaker", f"{kind}/{name}{suffix}") for name in endpoints
                for kind, suffix in (("endpoint", ""), ("endpoint-config", "-*"), ("model", "-*"),
                                     ("inference-component", ""))])

    @property
    def function_arn(self) -> str:
        return self.function.function_arn

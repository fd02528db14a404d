"""The environment's approval repair (lambdas/approval/handlers.py, reconcile_handler), in the control plane: every
model's repair schedule invokes it with the model's name every 15 minutes, and it completes that model's decisions
left unapplied and closes requests of runs that ended, acting for the model (stacks/constructs/control_plane.py)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam, aws_kms as kms
from constructs import Construct

from pipelines import naming
from stacks.constructs.control_plane import ModelScopedFunction, model_arn

MODEL = naming.MODEL_VARIABLE


class ApprovalRepair(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, key: kms.IKey, failures) -> None:
        super().__init__(scope, construct_id)
        region = Stack.of(self).region
        self.repair = ModelScopedFunction(
            self, "Repair", handler="lambdas.approval.handlers.reconcile_handler", key=key, env_name=env_name,
            environment={"KMS_KEY_ARN": key.key_arn}, timeout=Duration.minutes(5),
            description="Completes a model's approval decisions left unapplied; closes requests of runs that ended",
            function_name=naming.control_function(env_name, "approval-repair"))
        self.function = self.repair.function
        grant, scoped = self.repair.grant_for_model, self.repair.scoped_role
        machine = naming.state_machine(MODEL, env_name)
        grant(["states:DescribeExecution"], model_arn(self, "states", f"execution:{machine}:*"))
        grant(["states:SendTaskSuccess", "states:SendTaskFailure"], model_arn(self, "states", f"stateMachine:{machine}"))
        grant(["sagemaker:UpdateModelPackage"], model_arn(
            self, "sagemaker", f"model-package/{naming.model_package_group(MODEL, env_name)}/*"))
        grant(["dynamodb:Query", "dynamodb:GetItem", "dynamodb:UpdateItem"],
              model_arn(self, "dynamodb", f"table/{naming.audit_table(env_name)}"),
              conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{MODEL}"]}})
        # The task token was encrypted with the model in its encryption context (lambdas/approval/handlers.py):
        # acting for one model, the session decrypts that model's tokens only.
        grant(["kms:Decrypt"], key.key_arn, conditions={"StringEquals": {
            "kms:EncryptionContext:purpose": "approval-task-token", "kms:EncryptionContext:model": MODEL}})
        scoped.add_to_policy(iam.PolicyStatement(  # the audit table is encrypted with the environment's key
            actions=["kms:Decrypt"], resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}}))
        self.repair.grant_model_state_machine_key()
        failures.keep_failures_of(self.function)

    @staticmethod
    def function_arn(scope: Construct, env_name: str) -> str:
        stack = Stack.of(scope)
        return f"arn:{stack.partition}:lambda:{stack.region}:{stack.account}:function:" \
               f"{naming.control_function(env_name, 'approval-repair')}"

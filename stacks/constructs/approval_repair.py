"""The environment's approval repair (lambdas/approval/handlers.py, reconcile_handler), in the control plane: every
model's repair schedule invokes it with the model's name every 15 minutes, and it completes that model's decisions
left unapplied and closes requests of runs that ended, acting for the model (stacks/constructs/control_plane.py)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from constructs import Construct

from pipelines import naming
from stacks.constructs.control_plane import ModelScopedFunction, control_function_arn, model_arn

MODEL = naming.MODEL_VARIABLE
PURPOSE = "approval-repair"


class ApprovalRepair(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, key: kms.IKey, failures) -> None:
        super().__init__(scope, construct_id)
        self.repair = ModelScopedFunction(
            self, "Repair", handler="lambdas.approval.handlers.reconcile_handler", key=key, env_name=env_name,
            environment={"KMS_KEY_ARN": key.key_arn}, timeout=Duration.minutes(5),
            description="Completes a model's approval decisions left unapplied; closes requests of runs that ended",
            function_name=naming.control_function(env_name, PURPOSE))
        self.function = self.repair.function
        grant = self.repair.grant_for_model
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
        self.repair.grant_key_through("dynamodb", ["kms:Decrypt"])  # the audit table is encrypted with it
        self.repair.grant_model_state_machine_key()
        failures.keep_failures_of(self.function)

    @staticmethod
    def function_arn(scope: Construct, env_name: str) -> str:
        return control_function_arn(scope, env_name, PURPOSE)

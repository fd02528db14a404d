"""The human approval step: the run waits on a task token until an approver decides or the spec's timeout."""

from __future__ import annotations

from aws_cdk import Duration, aws_sns as sns, aws_stepfunctions as sfn, aws_stepfunctions_tasks as tasks
from constructs import Construct

from pipelines.spec import ModelSpec


class ApprovalStep(Construct):
    """Publishes the decision request with its task token; approve/reject send the token back."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, topic: sns.ITopic,
                 on_rejected: sfn.IChainable) -> None:
        super().__init__(scope, construct_id)
        self.state = tasks.SnsPublish(
            self, "WaitForApproval", topic=topic, subject=f"[{spec.name}] approval requested",
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            message=sfn.TaskInput.from_object({
                "model": spec.name, "task_token": sfn.JsonPath.task_token,
                "model_package_arn": sfn.JsonPath.string_at("$.registration.model_package_arn"),
                "evaluation": sfn.JsonPath.object_at("$.evaluation"), "run": sfn.JsonPath.object_at("$.run"),
                "approvers": spec.approval.approvers,
            }),
            task_timeout=sfn.Timeout.duration(Duration.seconds(int(spec.approval.timeout_hours * 3600))),
            result_path="$.approval",
        )
        self.state.add_catch(on_rejected, errors=["States.Timeout", "ModelRejected"], result_path="$.error")

"""A model's schedules (periodic retraining, the drift check, the approval repair) on EventBridge Scheduler.

Not rules on the default event bus: that bus takes 300 rules (EventBridge quotas), which a fleet of models with a
few schedules each would fill, while Scheduler takes 10,000,000 schedules a Region. They go in the account's
`default` schedule group (groups are limited to 500 an account, so never one per model).

Spread over their period: a thousand models on `rate(1 hour)` would all fire when deployed together, and on a
cron all at the same minute. A rate that divides its hour or day becomes a cron at a minute (and hour) of its
own, from a hash of environment, model and schedule: stable across deployments, uniform across a fleet; Scheduler
then starts it at a random moment of a flexible window of a third of its period (at most 15 minutes), so even one
minute's share does not start in the same second. A person's cron keeps its time, within a window too; any other
rate keeps its rhythm, in a window. tests/unit/test_schedule_spreading.py measures the busiest minute and the
concurrency the shared functions need at a thousand models.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam, aws_kms as kms, aws_scheduler as scheduler, aws_sqs as sqs
from constructs import Construct

from pipelines import naming
from pipelines.spec import rate_minutes

# The control plane's functions a model's schedules invoke (stacks/constructs/drift.py, quality.py, approval_repair.py).
SCHEDULED_FUNCTIONS = ("drift", "quality", "approval-repair")
CRON_WINDOW_MINUTES = {"retraining": 60, "drift": 15, "quality": 15, "reconcile": 5}  # a person's cron: start within this window
RATE_WINDOW_MINUTES = 15  # the most a rate's flexible window takes (a third of its period otherwise)
RETRY_ATTEMPTS, EVENT_AGE_S = 2, 3_600


@dataclass(frozen=True)
class Timing:
    expression: str
    window_minutes: int | None  # None: Scheduler's window OFF (the exact time)


def spread(expression: str, key: str, kind: str) -> Timing:
    """When a schedule fires: `expression` (a validated EventBridge schedule) placed at a stable offset of its own."""
    period = rate_minutes(expression)
    if period is None:
        return Timing(expression, CRON_WINDOW_MINUTES[kind])
    window = min(RATE_WINDOW_MINUTES, period // 3) or None  # then a random moment in a third of the period
    digest = int(hashlib.sha256(f"{key}/{kind}".encode()).hexdigest(), 16)
    minute, hour = digest % 60, (digest // 60) % 24
    # By period, not by how it is written: rate(60 minutes) is hourly, rate(24 hours) daily (a cron increment may
    # not reach its field's range: 0-59 minutes, 0-23 hours).
    if 1 < period < 60 and 60 % period == 0:
        return Timing(f"cron({minute % period}/{period} * * * ? *)", window)
    if period == 60:
        return Timing(f"cron({minute} * * * ? *)", window)
    if period % 60 == 0 and period < 1_440 and 24 % (period // 60) == 0:
        hours = period // 60
        return Timing(f"cron({minute} {hour % hours}/{hours} * * ? *)", window)
    if period == 1_440:
        return Timing(f"cron({minute} {hour} * * ? *)", window)
    return Timing(expression, window)


class SchedulerRole(Construct):
    """The one role an environment's schedules start their targets with (a role per model would spend the IAM role
    quota): it may invoke the environment's model-stack functions (CloudFormation names a function after its stack,
    `mlops-<env>-<model>-...`), start its models' retraining machines and send to their failure queues. A schedule's
    target and input are fixed in its template; only whoever may create schedules and pass this role could point it
    elsewhere, and only CloudFormation's deploy role may."""

    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # EventBridge Scheduler User Guide, "Set up the execution role": trust scheduler.amazonaws.com for this account.
        self.role = iam.Role(self, "Role", role_name=naming.scheduler_role(env_name),
                             description=f"EventBridge Scheduler: the schedules of {env_name}'s models",
                             assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com").with_conditions(
                                 {"StringEquals": {"aws:SourceAccount": stack.account}}))
        arn = lambda service, kind, name, sep=ArnFormat.COLON_RESOURCE_NAME: stack.format_arn(  # noqa: E731
            service=service, resource=kind, resource_name=name, arn_format=sep)
        # The control plane's functions a model's schedules invoke, and no other (the retraining tasks trust the
        # execution their event names: only the models' state machines may invoke those).
        self.role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[
            arn("lambda", "function", naming.control_function(env_name, purpose)) for purpose in SCHEDULED_FUNCTIONS]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["states:StartExecution"], resources=[
            arn("states", "stateMachine", naming.state_machine("*", env_name))]))
        # Scheduler User Guide, "Configuring a dead-letter queue": the execution role sends to it, and the queues are
        # encrypted with the environment's key.
        self.role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[
            stack.format_arn(service="sqs", resource=naming.failure_queue("*", env_name), arn_format=ArnFormat.NO_RESOURCE_NAME)]))
        self.role.add_to_policy(iam.PolicyStatement(  # the failure queues' messages, through SQS only
            actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"sqs.{stack.region}.amazonaws.com"}}))


class ModelSchedules(Construct):
    """The model's schedules, run as the environment's scheduler role."""

    def __init__(self, scope: Construct, construct_id: str, *, model: str, env_name: str,
                 dead_letter_queue: sqs.IQueue) -> None:
        super().__init__(scope, construct_id)
        self.model, self.env_name, self.dead_letter_queue = model, env_name, dead_letter_queue
        self.role_arn = Stack.of(self).format_arn(service="iam", region="", resource="role",
                                                  resource_name=naming.scheduler_role(env_name))

    def add(self, kind: str, expression: str, *, target_arn: str, payload: dict, description: str) -> scheduler.CfnSchedule:
        timing = spread(expression, f"{self.env_name}/{self.model}", kind)
        window = scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF") if timing.window_minutes is None else \
            scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="FLEXIBLE", maximum_window_in_minutes=timing.window_minutes)
        return scheduler.CfnSchedule(
            self, kind.title(), name=naming.schedule(self.model, self.env_name, kind), group_name="default",
            description=description, schedule_expression=timing.expression, schedule_expression_timezone="UTC",
            flexible_time_window=window, state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=target_arn, role_arn=self.role_arn, input=json.dumps(payload),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=RETRY_ATTEMPTS, maximum_event_age_in_seconds=EVENT_AGE_S),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=self.dead_letter_queue.queue_arn)))

"""Retraining started by a monitor (the drift check, the quality check), through the model's one cooldown: whichever
monitor fires first starts the run, and the other is quiet until the cooldown ends (a drifting population usually
costs quality too: one run, not two)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from aws_lambda_powertools.utilities.parser import event_parser

from lambdas.shared import dal, tenancy
from lambdas.shared.config import setting
from lambdas.shared.events import ScheduledCheck
from lambdas.shared.observability import bind, logger, metrics, tracer


def trigger(spec, now: datetime, trigger_name: str, reason: str) -> tuple[str | None, str]:
    """(execution ARN or None, what happened). The cooldown (spec.drift.cooldown_hours) is claimed atomically first
    (two monitors cannot both start) and given back when no run starts, so it is only spent on a run that started."""
    cooldown = dal.AuditLog(setting("AUDIT_TABLE"))
    now_epoch, cooldown_seconds = int(now.timestamp()), int(spec.drift.cooldown_hours * 3600)
    if not cooldown.claim_cooldown(spec.name, now_epoch, cooldown_seconds):
        return None, f"within the {spec.drift.cooldown_hours:g} h retraining cooldown, not retraining"
    try:
        execution = start(spec.name, trigger_name, reason)
    except Exception:
        cooldown.release_cooldown(spec.name, now_epoch, cooldown_seconds)
        raise
    if execution is None:
        cooldown.release_cooldown(spec.name, now_epoch, cooldown_seconds)
        return None, "a run is in progress, not starting another (cooldown not spent)"
    return execution, f"retraining started ({execution})"


def start(model: str, trigger_name: str, reason: str) -> str | None:
    """The new execution's ARN, or None when a run is already in progress."""
    arn = setting("STATE_MACHINE_ARN")
    if dal.running_executions(arn):
        return None
    document = {"model": model, "trigger": trigger_name, "requested_by": f"{trigger_name}-hook", "reason": reason[:2000]}
    name = f"{trigger_name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    return dal.start_execution(arn, name, document)


def tell_owners_of_failure(check: str, model: str, scheduled_time: datetime, error: Exception) -> None:
    """One message a failed scheduled check (not retried: the next scheduled check is the retry); a failure to send
    it is logged and never hides the check's own error."""
    try:
        dal.publish(setting("NOTIFICATION_TOPIC_ARN"), f"[{tenancy.environment_name()}] {check} check of {model} failed",
                    f"The {check} check of {model} scheduled for {scheduled_time:%Y-%m-%d %H:%M} UTC failed: "
                    f"{type(error).__name__}: {str(error)[:2000]}\nThe event is kept in the control plane's "
                    "async-failures queue, whose alarm tells the platform engineers.")
    except Exception:
        logger.exception(f"could not tell the model's owners that the {check} check failed")


def scheduled_check_handler(check: str, run_check):
    """A monitor's Lambda handler: the schedule's event parsed, the model bound to the logs, the check run acting for
    the model at the scheduled time; a failure tells the model's owners, then fails the invocation for the failure
    queue (platform engineers)."""
    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    @event_parser(model=ScheduledCheck)
    def handler(event: ScheduledCheck, context) -> dict:
        bind(event.model, event.execution_id)
        with tenancy.acting_for(event.model):
            try:
                return run_check(event.scheduled_time.astimezone(timezone.utc))
            except Exception as error:
                tell_owners_of_failure(check, event.model, event.scheduled_time, error)
                raise

    return handler

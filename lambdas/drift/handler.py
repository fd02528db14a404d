"""Scheduled drift hook: captured window vs the champion's baseline; reports, metrics, maybe a retrain.

One function per environment, in the control plane: each model's drift schedule (EventBridge Scheduler, in the model
stack) invokes it with the model's name, and it checks that model acting for it (lambdas/shared/tenancy.py)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from lambdas.drift import engine, logic, report
from lambdas.drift.capture import hourly_prefixes, line_batches, read_chunks
from lambdas.shared import dal, tenancy
from lambdas.shared.config import model_spec, setting
from lambdas.shared.observability import bind, logger, metrics, tracer
from lambdas.shared.release import drift_baseline_uris
from pipelines import naming


def champion_baseline(registry: dal.ModelRegistry) -> tuple[dict | None, str | None, dict | None]:
    """(statistics.json, package ARN, constraints.json or None) of the package production serves: what the captured
    traffic is actually scored by. Both files are the package's DriftCheckBaselines.ModelDataQuality."""
    champion = registry.champion(setting("SERVING_ENDPOINT"), model_spec().deployment.hosting)
    if champion is None:
        return None, None, None
    statistics_uri, constraints_uri = drift_baseline_uris(champion)
    bucket, key = dal.parse_s3_uri(statistics_uri)
    statistics = dal.ObjectStore(bucket).read_json(key)
    constraints = None
    if constraints_uri:
        bucket, key = dal.parse_s3_uri(constraints_uri)
        constraints = dal.ObjectStore(bucket).read_json(key)
    return statistics, champion["ModelPackageArn"], constraints


def window_sources(store: dal.ObjectStore, start: datetime, end: datetime):
    """(key, byte lines) of every capture file in the window, read lazily in 1 MiB chunks (linear in line length)."""
    for prefix in hourly_prefixes(setting("CAPTURE_PREFIX"), start, end):
        for key in store.list_keys(prefix):
            yield key, line_batches(read_chunks(store.open(key)))


def publish_metrics(result: engine.DriftResult) -> None:
    metrics.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=len(result.drifted_features))
    metrics.add_metric(name="CapturedRows", unit=MetricUnit.Count, value=result.rows)
    if is_metrics_disabled():
        return
    for feature in result.features:
        with single_metric(name="FeaturePSI", unit=MetricUnit.NoUnit, value=feature.psi,
                           namespace=metrics.namespace) as metric:
            metric.add_dimension(name="model", value=model_spec().name)
            metric.add_dimension(name="feature", value=feature.name)


def run_check(now: datetime) -> dict:
    spec = model_spec()
    store = dal.ObjectStore(setting("ARTIFACT_BUCKET"))
    statistics, champion, constraints = champion_baseline(dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")))
    if statistics is None:
        logger.info("production serves no model yet: nothing to compare")
        return {"drift": False, "retrain": False, "reason": "production serves no model package (no baseline) yet"}
    start = now - timedelta(hours=spec.drift.window_hours)
    assessment = logic.assess(statistics, spec, window_sources(store, start, now), constraints=constraints)
    scan, result, blocking = assessment.scan, assessment.result, assessment.blocking
    retrain, reason = assessment.retrain, assessment.reason
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    context = {"model": spec.name, "champion": champion, "window_start": start.isoformat(), "window_end": now.isoformat(),
               "capture_lines": scan.lines, "malformed_lines": scan.malformed, "blocking": blocking}
    prefix = f"drift/{spec.name}/{stamp}/"
    report_uri = store.put_json(f"{prefix}report.json", {**report.json_report(result, context), "decision": reason})
    html_uri = store.put_bytes(f"{prefix}report.html", report.html_report(result, context).encode(), "text/html")
    publish_metrics(result)
    execution = None
    if retrain:
        execution, outcome = trigger_retraining(spec, now, result, html_uri)
        retrain, reason = execution is not None, f"{reason}; {outcome}"
    logger.info("drift checked", extra={"drift": result.drift, "drifted": result.drifted_features, "retrain": retrain,
                                        "reason": reason, "report": html_uri})
    return {"drift": result.drift, "drifted_features": result.drifted_features, "retrain": retrain, "reason": reason,
            "report_uri": report_uri, "html_report_uri": html_uri, "execution_arn": execution, "rows": result.rows,
            "violations": len(result.violations)}


def trigger_retraining(spec, now: datetime, result: engine.DriftResult, html_uri: str) -> tuple[str | None, str]:
    """(execution ARN or None, what happened). The cooldown is claimed atomically first (two hooks cannot both
    start) and given back when no run starts, so it is only spent on a run that actually started."""
    cooldown = dal.AuditLog(setting("AUDIT_TABLE"))
    now_epoch, cooldown_seconds = int(now.timestamp()), int(spec.drift.cooldown_hours * 3600)
    if not cooldown.claim_cooldown(spec.name, now_epoch, cooldown_seconds):
        return None, f"within the {spec.drift.cooldown_hours:g} h cooldown, not retraining"
    try:
        execution = start_retraining(spec.name, result, html_uri)
    except Exception:
        cooldown.release_cooldown(spec.name, now_epoch, cooldown_seconds)
        raise
    if execution is None:
        cooldown.release_cooldown(spec.name, now_epoch, cooldown_seconds)
        return None, "a run is in progress, not starting another (cooldown not spent)"
    return execution, f"retraining started ({execution})"


def start_retraining(model: str, result: engine.DriftResult, html_uri: str) -> str | None:
    """The new execution's ARN, or None when a run is already in progress."""
    arn = setting("STATE_MACHINE_ARN")
    if dal.running_executions(arn):
        return None
    document = {"model": model, "trigger": "drift", "requested_by": "drift-hook",
                "reason": f"drift in {result.drifted_features[:20]}; report {html_uri}"[:2000]}
    return dal.start_execution(arn, f"drift-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", document)


class ScheduledCheck(BaseModel):
    """A drift schedule's input (stacks/constructs/schedules.py): the model, and Scheduler's context attributes
    <aws.scheduler.scheduled-time> and <aws.scheduler.execution-id> (EventBridge Scheduler user guide, "Adding
    context attributes")."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=naming.MODEL_NAME_PATTERN)
    scheduled_time: datetime
    execution_id: str = Field(default="-", max_length=128)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=ScheduledCheck)
def handler(event: ScheduledCheck, context: LambdaContext) -> dict:
    bind(event.model, event.execution_id)
    with tenancy.acting_for(event.model):
        try:
            return run_check(event.scheduled_time.astimezone(timezone.utc))
        except Exception as error:  # the owners hear of it; the failure queue keeps the event (platform engineers)
            tell_owners_of_failure(event, error)
            raise


def tell_owners_of_failure(event: ScheduledCheck, error: Exception) -> None:
    """One message a failed check (the function is not retried: the next scheduled check is the retry); a failure
    to send it is logged and never hides the check's own error."""
    try:
        dal.publish(setting("NOTIFICATION_TOPIC_ARN"), f"[{tenancy.environment_name()}] drift check of {event.model} failed",
                    f"The drift check of {event.model} scheduled for {event.scheduled_time:%Y-%m-%d %H:%M} UTC failed: "
                    f"{type(error).__name__}: {str(error)[:2000]}\nThe event is kept in the control plane's "
                    "async-failures queue, whose alarm tells the platform engineers.")
    except Exception:
        logger.exception("could not tell the model's owners that the drift check failed")

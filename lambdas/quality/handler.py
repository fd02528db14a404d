"""Scheduled quality check: a window's captured predictions joined to the ground truth that arrived for them, the
task's metrics against the champion's evaluation; a report, metrics, the owners told of a drop, maybe a retrain.

One function per environment, in the control plane: each model's quality schedule (EventBridge Scheduler, in the
model stack) invokes it with the model's name, and it checks that model acting for it (lambdas/shared/tenancy.py).
The window is the one that ended quality.label_delay_hours ago (lambdas/quality/logic.scheduled_window); the labels
read are those that arrived since it began, each at its S3 LastModified time (not its hour folder, which whoever
writes the labels chooses)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Iterator

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.shared.capture_files import hourly_prefixes, line_batches, read_chunks
from lambdas.quality import history, logic, report
from lambdas.quality.labels import GROUND_TRUTH
from lambdas.shared import dal, retraining, tenancy
from lambdas.shared.config import model_spec, setting
from lambdas.shared.events import ScheduledCheck
from lambdas.shared.observability import bind, logger, metrics, tracer
from lambdas.shared.release import evaluation_uri

HISTORY_REPORTS = 30  # the previous reports the page draws (bounded reads)


def champion_baseline(registry: dal.ModelRegistry) -> tuple[dict | None, dict]:
    """(the package the environment serves, described, or None; its evaluation's metrics): evaluation.json's
    "metrics", or a Model Monitor model-quality statistics.json's, so a team can bring either."""
    champion = registry.champion(setting("SERVING_ENDPOINT"), model_spec().deployment.hosting)
    uri = evaluation_uri(champion) if champion else ""
    if not uri:
        return champion, {}
    bucket, key = dal.parse_s3_uri(uri)
    document = dal.ObjectStore(bucket).read_json(key)
    recorded = document.get("metrics")
    return champion, recorded if isinstance(recorded, dict) else logic.read_monitor_statistics(document)


def capture_lines(store: dal.ObjectStore, window: logic.Window) -> Iterator[tuple[str, bytes]]:
    """(key, line) of every capture file of the window and the one before it (to tell late labels from unknown)."""
    for prefix in hourly_prefixes(setting("CAPTURE_PREFIX"), window.previous.start, window.end):
        for key in store.list_keys(prefix):
            for batch in line_batches(read_chunks(store.open(key))):
                yield from ((key, line) for line in batch)


def label_lines(store: dal.ObjectStore, model: str, since: datetime, now: datetime) -> Iterator[tuple[datetime, bytes]]:
    """(arrival, ground-truth line) of every label file that arrived in [since, now]: its LastModified time. Files
    are listed from the hour folder of `since` on (a folder names the hour of its writing, never later)."""
    for prefix in hourly_prefixes(f"{GROUND_TRUTH}/{model}", since, now):
        for item in store.list_objects(prefix):
            arrived = item["LastModified"].astimezone(timezone.utc)
            if since <= arrived <= now:
                for batch in line_batches(read_chunks(store.open(item["Key"]))):
                    yield from ((arrived, line) for line in batch)


def publish_metrics(result: dict) -> None:
    metrics.add_metric(name="LabelsJoined", unit=MetricUnit.Count, value=result["labels"]["joined"])
    metrics.add_metric(name="QualityDrop", unit=MetricUnit.Count, value=int(result["decision"] == "drop"))
    value = result["metrics"].get(result["objective"])
    if value is not None and math.isfinite(value):
        metrics.add_metric(name="QualityObjective", unit=MetricUnit.NoUnit, value=value)
    if result["decision"] == "drop" and not is_metrics_disabled():
        # One series for the whole environment (no model dimension): its one alarm (stacks/constructs/quality.py)
        # tells the platform engineers, whatever the number of models.
        with single_metric(name="QualityDrops", unit=MetricUnit.Count, value=1, namespace=metrics.namespace):
            pass


def run_check(now: datetime) -> dict:
    spec = model_spec()
    store = dal.ObjectStore(setting("ARTIFACT_BUCKET"))
    champion, baseline = champion_baseline(dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")))
    if champion is None:
        logger.info("the environment serves no model yet: nothing to judge")
        return {"decision": "no_champion", "retrain": False, "reason": "the environment serves no model package yet"}
    window = logic.scheduled_window(now, spec.quality)
    result = logic.check(spec, capture_lines(store, window), label_lines(store, spec.name, window.start, now),
                         baseline, window)
    prefix = f"quality/{spec.name}/{now:%Y%m%dT%H%M%SZ}/"
    result.update(champion=champion["ModelPackageArn"], champion_version=champion.get("ModelPackageVersion"),
                  checked_at=now.isoformat(), execution_arn=None, html_report_uri=store.uri(f"{prefix}report.html"))
    publish_metrics(result)
    if result["decision"] == "drop":
        act_on_drop(spec, now, result)
    write_monitor_files(store, prefix, spec, result)
    result["report_uri"] = store.put_json(f"{prefix}report.json", result)
    page = report.html_report(result, history.recent_reports(store, spec.name, HISTORY_REPORTS))
    store.put_bytes(f"{prefix}report.html", page.encode(), "text/html")
    logger.info("quality checked", extra={"decision": result["decision"], "reason": result["reason"],
                                          "joined": result["labels"]["joined"], "report": result["html_report_uri"]})
    return {key: result[key] for key in ("decision", "reason", "retrain", "execution_arn", "report_uri",
                                         "html_report_uri", "metrics", "baseline", "coverage", "labels")}


def act_on_drop(spec, now: datetime, result: dict) -> None:
    """The owners hear of the drop; with quality.retrain, a run starts through the model's retraining cooldown."""
    if result["retrain"]:
        execution, outcome = retraining.trigger(spec, now, "quality",
                                                f"quality: {result['reason']}; report {result['html_report_uri']}")
        result.update(execution_arn=execution, retrain=execution is not None, reason=f"{result['reason']}; {outcome}")
    dal.publish(setting("NOTIFICATION_TOPIC_ARN"), f"[{tenancy.environment_name()}] {spec.name}: quality dropped",
                f"The quality check of {spec.name} found a drop against ground truth.\n{result['reason']}\n"
                f"Labels joined: {result['labels']['joined']}; coverage {result['coverage']['ratio']:.1%}.\n"
                f"Report: {result['html_report_uri']}")


def write_monitor_files(store: dal.ObjectStore, prefix: str, spec, result: dict) -> None:
    """The window as Model Monitor's model-quality statistics.json and constraints.json (the metrics they define)."""
    if not result["metrics"] or result["baseline"] is None or spec.task.type not in logic.MONITOR_SECTIONS:
        return
    deviation = (result.get("guard") or {}).get("standard_deviation")
    store.put_json(f"{prefix}statistics.json", logic.monitor_statistics(
        spec, result["metrics"], result["labels"]["joined"], deviation))
    store.put_json(f"{prefix}constraints.json", logic.monitor_constraints(spec, float(result["baseline"])))


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
            retraining.tell_owners_of_failure("quality", event.model, event.scheduled_time, error)
            raise

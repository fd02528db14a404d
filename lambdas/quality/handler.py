"""Scheduled quality check: a window's captured predictions joined to the ground truth that arrived for them, the
task's metrics against the champion's evaluation; a report, metrics, the owners told of a drop, maybe a retrain.

One function per environment, in the control plane: each model's quality schedule (EventBridge Scheduler, in the
model stack) invokes it with the model's name, and it checks that model acting for it (lambdas/shared/tenancy.py).
The window is the one that ended quality.label_delay_hours ago (lambdas/quality/logic.scheduled_window); the labels
read are those that arrived since it began, each at its S3 LastModified time (not its hour folder, which whoever
writes the labels chooses)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Iterator

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from lambdas.shared.capture_files import hourly_files, hourly_prefixes, line_batches, read_chunks
from lambdas.quality import history, logic, report
from lambdas.quality.labels import GROUND_TRUTH
from lambdas.shared import dal, retraining, tenancy
from lambdas.shared.config import model_spec, setting
from lambdas.shared.observability import logger, metrics
from lambdas.shared.release import evaluation_uri
from lambdas.shared.text import strict

HISTORY_REPORTS, HISTORY_DAYS = 30, 90  # what the page draws: at most 30 checks of the last 90 days (bounded reads)


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
    if isinstance(recorded, dict):
        return champion, recorded
    return champion, logic.read_monitor_statistics(document, model_spec().metric_prefix)  # named as the objective is


def capture_lines(store: dal.ObjectStore, window: logic.Window) -> Iterator[tuple[str, bytes]]:
    """(key, line) of every capture file of the window and the one before it (to tell late labels from unknown)."""
    for key, batches in hourly_files(store, setting("CAPTURE_PREFIX"), window.previous.start, window.end):
        for batch in batches:
            yield from ((key, line) for line in batch)


def label_lines(store: dal.ObjectStore, model: str, since: datetime, now: datetime) -> Iterator[tuple[datetime, bytes]]:
    """(arrival, ground-truth line) of every label file that arrived in [since, now]: its LastModified time, in the
    order they arrived (the first label of an id wins). Files are listed from the hour folder of `since` on (a folder
    names the hour of its writing, never later)."""
    for prefix in hourly_prefixes(f"{GROUND_TRUTH}/{model}", since, now):
        for item in sorted(store.list_objects(prefix), key=lambda item: item["LastModified"]):
            arrived = item["LastModified"].astimezone(timezone.utc)
            if since <= arrived <= now:
                for batch in line_batches(read_chunks(store.open(item["Key"]))):
                    yield from ((arrived, line) for line in batch)


def publish_metrics(result: dict) -> None:
    """Per model (the model and the environment as dimensions: environments may share an account), and the
    environment's QualityDrops for its one alarm."""
    metrics.add_dimension(name="environment", value=tenancy.environment_name())
    metrics.add_metric(name="LabelsJoined", unit=MetricUnit.Count, value=result["labels"]["joined"])
    metrics.add_metric(name="QualityDrop", unit=MetricUnit.Count, value=int(result["decision"] == "drop"))
    value = result["metrics"].get(result["objective"])
    if value is not None and math.isfinite(value):
        metrics.add_metric(name="QualityObjective", unit=MetricUnit.NoUnit, value=value)
    if result["decision"] == "drop" and not is_metrics_disabled():
        # One series for the whole environment (no model dimension): its one alarm (stacks/constructs/quality.py)
        # tells the platform engineers, whatever the number of models.
        with single_metric(name="QualityDrops", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
            metric.add_dimension(name="environment", value=tenancy.environment_name())


def run_check(now: datetime) -> dict:
    spec = model_spec()
    store = dal.ObjectStore(setting("ARTIFACT_BUCKET"))
    champion, baseline = champion_baseline(dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")))
    if champion is None:
        logger.info("the environment serves no model yet: nothing to judge")
        return {"decision": "no_champion", "retrain": False, "reason": "the environment serves no model package yet"}
    result = judge(spec, store, champion, baseline, now)
    prefix = f"{history.model_prefix(spec.name)}{now:{history.STAMP}}/"
    result.update(champion=champion["ModelPackageArn"], champion_version=champion.get("ModelPackageVersion"),
                  checked_at=now.isoformat(), execution_arn=None, html_report_uri=store.uri(f"{prefix}report.html"),
                  report_uri=store.uri(f"{prefix}report.json"))
    publish_metrics(result)
    # The report first, so that what the owners and the run are told about exists whatever happens next; acting on a
    # drop changes the report and its page (the run started), never the window's figures or the earlier checks.
    earlier = history.recent_reports(store, spec.name, HISTORY_REPORTS, now - timedelta(days=HISTORY_DAYS))
    write_monitor_files(store, prefix, spec, strict(result))
    write_report(store, prefix, result, earlier)
    if result["decision"] == "drop":
        act_on_drop(spec, now, result)
        write_report(store, prefix, result, earlier)
    logger.info("quality checked", extra={"decision": result["decision"], "reason": result["reason"],
                                          "joined": result["labels"]["joined"], "report": result["html_report_uri"]})
    return strict({key: result[key] for key in ("decision", "reason", "retrain", "execution_arn", "report_uri",
                                                "html_report_uri", "metrics", "baseline", "coverage", "labels")})


def judge(spec, store: dal.ObjectStore, champion: dict, baseline: dict, now: datetime) -> dict:
    """The scheduled window, from when the serving version began serving (its package's last change: the release
    marks it when the run that deployed it succeeds) if that is later than the window's start."""
    window = logic.scheduled_window(now, spec.quality)
    served_since = champion.get("LastModifiedTime") or champion.get("CreationTime")
    # Captures name their time to the second: a request of the release's own second is the released version's.
    served_since = served_since.astimezone(timezone.utc).replace(microsecond=0) \
        if isinstance(served_since, datetime) else None
    judged = logic.since_champion(window, served_since)
    if judged is None:
        return logic.not_judged(spec, window, served_since)
    return logic.check(spec, capture_lines(store, judged), label_lines(store, spec.name, judged.start, now),
                       baseline, judged)


def write_report(store: dal.ObjectStore, prefix: str, result: dict, earlier: list[dict]) -> None:
    """report.json (strict JSON: a metric that is no number is null) and its page, with the earlier checks."""
    document = strict(result)
    store.put_bytes(f"{prefix}report.json", json.dumps(document, indent=2, allow_nan=False, default=str).encode(),
                    "application/json")
    store.put_bytes(f"{prefix}report.html", report.html_report(document, earlier).encode(), "text/html")


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
    result = {**result, "metrics": {name: value for name, value in result["metrics"].items() if value is not None}}
    deviation = (result.get("guard") or {}).get("standard_deviation")
    store.put_json(f"{prefix}statistics.json", logic.monitor_statistics(
        spec, result["metrics"], result["labels"]["joined"], deviation))
    store.put_json(f"{prefix}constraints.json", logic.monitor_constraints(spec, float(result["baseline"])))


# run_check looked up at each call (tests patch it).
handler = retraining.scheduled_check_handler("quality", lambda now: run_check(now))

"""Scheduled drift hook: captured window vs the champion's baseline; reports, metrics, maybe a retrain.

One function per environment, in the control plane: each model's drift schedule (EventBridge Scheduler, in the model
stack) invokes it with the model's name, and it checks that model acting for it (lambdas/shared/tenancy.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from lambdas.drift import engine, logic, report
from lambdas.shared import dal, retraining, tenancy
from lambdas.shared.capture_files import hourly_files
from lambdas.shared.config import model_spec, setting
from lambdas.shared.observability import logger, metrics
from lambdas.shared.release import drift_baseline_uris


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


def publish_metrics(result: engine.DriftResult) -> None:
    """Per model and environment (environments may share an account: the fleet dashboard filters on it)."""
    metrics.add_dimension(name="environment", value=tenancy.environment_name())
    metrics.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=len(result.drifted_features))
    metrics.add_metric(name="CapturedRows", unit=MetricUnit.Count, value=result.rows)
    if is_metrics_disabled():
        return
    for feature in result.features:
        with single_metric(name="FeaturePSI", unit=MetricUnit.NoUnit, value=feature.psi,
                           namespace=metrics.namespace) as metric:
            metric.add_dimension(name="model", value=model_spec().name)
            metric.add_dimension(name="environment", value=tenancy.environment_name())
            metric.add_dimension(name="feature", value=feature.name)


def run_check(now: datetime) -> dict:
    spec = model_spec()
    store = dal.ObjectStore(setting("ARTIFACT_BUCKET"))
    statistics, champion, constraints = champion_baseline(dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")))
    if statistics is None:
        logger.info("production serves no model yet: nothing to compare")
        return {"drift": False, "retrain": False, "reason": "production serves no model package (no baseline) yet"}
    start = now - timedelta(hours=spec.drift.window_hours)
    assessment = logic.assess(statistics, spec, hourly_files(store, setting("CAPTURE_PREFIX"), start, now),
                              constraints=constraints)
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
        execution, outcome = retraining.trigger(
            spec, now, "drift", f"drift in {result.drifted_features[:20]}; report {html_uri}")
        retrain, reason = execution is not None, f"{reason}; {outcome}"
    logger.info("drift checked", extra={"drift": result.drift, "drifted": result.drifted_features, "retrain": retrain,
                                        "reason": reason, "report": html_uri})
    return {"drift": result.drift, "drifted_features": result.drifted_features, "retrain": retrain, "reason": reason,
            "report_uri": report_uri, "html_report_uri": html_uri, "execution_arn": execution, "rows": result.rows,
            "violations": len(result.violations)}


# run_check looked up at each call (tests patch it).
handler = retraining.scheduled_check_handler("drift", lambda now: run_check(now))

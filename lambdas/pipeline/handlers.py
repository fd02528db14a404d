"""Thin Step Functions task handlers of the retraining pipeline: parse, call logic, return a dict."""

from __future__ import annotations

import io
import json
import os
from datetime import datetime, timezone
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.pipeline import logic
from lambdas.shared import dal
from lambdas.shared.config import model_spec, setting
from lambdas.shared.errors import failure_reason
from lambdas.shared.events import TaskEvent, pipeline_task
from lambdas.shared.observability import logger, metrics
from lambdas.shared.run_state import Evaluation, RunState


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _bucket() -> dal.ObjectStore:
    return dal.ObjectStore(setting("ARTIFACT_BUCKET"))


def _run_prefix(state: dict) -> str:
    return f"runs/{state['run']['model']}/{state['run']['execution_name']}/"


@pipeline_task()
def prepare_run(event: TaskEvent, context: LambdaContext) -> dict:
    spec = model_spec()
    run_input = logic.parse_run_input(event.state)
    if run_input.model != spec.name:
        raise logic.InvalidRunInput(f"this pipeline trains '{spec.name}', the input asks for '{run_input.model}'")
    logic.refuse_duplicate(dal.running_executions(setting("STATE_MACHINE_ARN")), event.execution_arn, spec.name)
    defaults = json.loads(setting("TRAINING_HYPERPARAMETERS"))
    hyperparameters = logic.merge_hyperparameters(defaults, run_input.hyperparameters, spec.training)
    config = logic.run_config(run_input, event.execution_arn, event.execution_name, hyperparameters, spec.dataset,
                              os.environ.get("SOURCE_GIT_COMMIT", ""))
    logger.info("run prepared", extra={"trigger": config["trigger"], "requested_by": config["requested_by"]})
    metrics.add_metric(name="RunsStarted", unit="Count", value=1)
    return config


@pipeline_task()
def validate_data(event: TaskEvent, context: LambdaContext) -> dict:
    spec, store, run = model_spec(), _bucket(), event.state["run"]
    key = run["dataset_key"]
    try:
        head = store.head(key)
    except dal.ClientError as error:
        raise logic.DataValidationFailed(f"dataset s3://{store.bucket}/{key} cannot be read: {error}") from None
    version_id = head.get("VersionId")
    hashing = logic.HashingReader(store.open(key, version_id))
    lines = logic.decoded_lines(io.BufferedReader(hashing, buffer_size=1 << 20))  # bad bytes: a problem, not a crash
    report = logic.check_dataset(lines, spec.dataset, spec.task)
    if report.problems:
        metrics.add_metric(name="DataValidationFailures", unit="Count", value=1)
        raise logic.DataValidationFailed(f"s3://{store.bucket}/{key}: " + "; ".join(report.problems))
    snapshot_prefix = f"{_run_prefix(event.state)}data/"
    snapshot_uri = store.copy(key, version_id, f"{snapshot_prefix}{spec.dataset.file_name}")
    champion, manifest_uri = _pin_champion(store, event.state)
    logger.info("dataset validated", extra={**report.summary(), "champion": champion.get("model_package_arn")})
    return {"dataset_uri": f"s3://{store.bucket}/{key}", "version_id": version_id, "sha256": hashing.sha256.hexdigest(),
            "bytes": hashing.bytes, "snapshot_uri": snapshot_uri,
            "snapshot_prefix": f"s3://{store.bucket}/{snapshot_prefix}", **report.summary(),
            "champion": champion, "champion_manifest_uri": manifest_uri}


def _pin_champion(store: dal.ObjectStore, state: dict) -> tuple[dict, str]:
    """The run's champion, fixed with its data: the package production serves now. The training job gets it as
    its `champion` channel (a manifest of champion.json and the champion's model.tar.gz) and scores it on the
    same validation rows as the challenger."""
    package = dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")).champion(setting("PROD_ENDPOINT"))
    pinned = logic.pin_champion(package, store.bucket, state["run"]["model"])
    descriptor_key = f"{_run_prefix(state)}champion/champion.json"
    store.put_json(descriptor_key, pinned)
    manifest_uri = store.put_json(f"{_run_prefix(state)}champion/manifest.json",
                                  logic.champion_manifest(store.bucket, descriptor_key, pinned))
    return pinned, manifest_uri


@pipeline_task()
def evaluate(event: TaskEvent, context: LambdaContext) -> dict:
    spec, store, state = model_spec(), _bucket(), event.state
    training = state["training"]
    job_output = f"{training['output_path'].rstrip('/')}/{training['job_name']}/output/"
    report = json.loads(dal.read_member_from_tarball(f"{job_output}output.tar.gz", "evaluation.json"))
    prefix = _run_prefix(state)
    report_uri = store.put_json(f"{prefix}evaluation.json", report)
    baseline = {name: store.put_bytes(f"{prefix}baseline/{name}",
                                      dal.read_member_from_tarball(training["model_artifacts"], name), "application/json")
                for name in ("statistics.json", "constraints.json")}
    pinned = state["validation"].get("champion")  # pinned by ValidateData, re-scored by the training job
    decision = logic.evaluate_challenger(report, spec.objective, pinned)
    metrics.add_metric(name="ObjectiveValue", unit="None", value=decision.value)
    logger.info("evaluated", extra={"promote": decision.promote, "reason": decision.reason})
    return Evaluation(metrics=report["metrics"], objective=spec.objective.metric, value=decision.value,
                      champion_arn=(pinned or {}).get("model_package_arn"),
                      champion_value=decision.champion_value, promote=decision.promote, reason=decision.reason,
                      champion_metrics=(report.get("champion") or {}).get("metrics"),
                      champion_recorded_metrics=(pinned or {}).get("recorded_metrics"),
                      report_uri=report_uri, baseline_statistics_uri=baseline["statistics.json"],
                      baseline_constraints_uri=baseline["constraints.json"]).model_dump()


@pipeline_task()
def register(event: TaskEvent, context: LambdaContext) -> dict:
    spec, state = model_spec(), RunState.parse(event.state)
    run, training, evaluation = state.run, state.training, state.evaluation
    registry = dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP"))
    arn = registry.create(
        ModelPackageDescription=f"{spec.name} from {run.execution_name}: {evaluation.reason}"[:1024],
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": setting("INFERENCE_IMAGE"), "ModelDataUrl": training.model_artifacts,
                            "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}}],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": [spec.deployment.instance_type],
        },
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation.report_uri}}},
        DriftCheckBaselines={"ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": evaluation.baseline_statistics_uri},
            "Constraints": {"ContentType": "application/json", "S3Uri": evaluation.baseline_constraints_uri}}},
        MetadataProperties={"CommitId": run.git_commit, "GeneratedBy": run.execution_arn},
        CustomerMetadataProperties=logic.lineage(event.state),
        Tags=[{"Key": "mlops:model", "Value": spec.name}],
    )
    version = registry.describe(arn).get("ModelPackageVersion")
    metrics.add_metric(name="ModelsRegistered", unit="Count", value=1)
    logger.info("model package registered", extra={"model_package_arn": arn, "version": version})
    return {"model_package_arn": arn, "version": version}


class NotifyEvent(TaskEvent):
    outcome: str


@pipeline_task(NotifyEvent)
def notify(event: NotifyEvent, context: LambdaContext) -> dict:
    close_undecided_approval(event.state, event.outcome, event.execution_name)
    subject, body = logic.notification(event.state, event.outcome)
    dal.publish(setting("NOTIFICATION_TOPIC_ARN"), subject, body)
    metrics.add_metric(name=f"Runs{event.outcome.title().replace(' ', '')}", unit="Count", value=1)
    return {"subject": subject}


def close_undecided_approval(state: dict, outcome: str, execution: str) -> None:
    """A run that ends before anyone decided (timeout, a failing approval request, a stop) leaves no PENDING
    record behind and no package waiting for approval: both are closed, the package rejected."""
    if "registration" not in state:
        return
    store, model = dal.ApprovalStore(setting("AUDIT_TABLE")), model_spec().name
    record = store.get(model, execution)
    if record is not None and record.get("status") != "PENDING":
        return  # decided: the decision (and a failed release's restore step) set the package's status
    timed_out = logic.approval_timed_out(state, outcome)
    status, why = ("EXPIRED", "approval timed out: nobody decided in time") if timed_out else (
        "ABANDONED", f"the run ended ({outcome}) before a decision: {failure_reason(state.get('error'))}")
    if record is not None:
        try:
            store.decide(model, execution, status, {"decided_by": "timeout" if timed_out else "pipeline",
                                                    "decided_at": _now(), "reason": why[:1000]})
        except dal.AlreadyDecided:
            return  # an approver decided in the meantime
    dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")).set_status(state["registration"]["model_package_arn"], "Rejected", why)

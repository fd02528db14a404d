"""Thin Step Functions task handlers of the retraining pipeline: parse, call logic, return a dict."""

from __future__ import annotations

import io
import json
import time
from datetime import datetime, timezone
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.pipeline import experiments, logic, model_card, tracking
from lambdas.shared import dal, evidence
from lambdas.shared.config import model_spec, optional_setting, setting
from lambdas.shared.errors import failure_reason
from lambdas.shared.hashing import HashingReader
from lambdas.shared.events import TaskEvent, pipeline_task
from lambdas.shared.observability import logger, metrics
from lambdas.shared.run_state import Evaluation, RunState
from pipelines import naming


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
    defaults, store = json.loads(setting("TRAINING_HYPERPARAMETERS")), _bucket()
    reproduction = _reproduction(spec, store, run_input.reproduce_version) if run_input.reproduce_version else None
    hyperparameters = experiments.reproduced_hyperparameters(reproduction, defaults) if reproduction else \
        logic.merge_hyperparameters(defaults, run_input.hyperparameters, spec.training)
    config = logic.run_config(run_input, event.execution_arn, event.execution_name, hyperparameters, spec.dataset,
                              optional_setting("SOURCE_GIT_COMMIT"), bucket=store.bucket, reproduction=reproduction)
    config.update(experiments.tuning_fields(spec.tuning, hyperparameters, run_input.hyperparameters, spec.name,
                                            event.execution_name, reproduction is not None))
    # The code this run trains with, kept with the run: the deployed archive, or the reproduced version's own. The
    # state machine copies it (SnapshotSource): the deployed archive is a CDK asset only the model's own machine reads.
    config["source_copy"] = logic.source_copy(reproduction.source_uri if reproduction else setting("SOURCE_ARCHIVE"),
                                              config["source_uri"])
    logger.info("run prepared", extra={"trigger": config["trigger"], "requested_by": config["requested_by"],
                                       "tune": config["tune"], "reproduces": config.get("reproduces")})
    metrics.add_metric(name="RunsStarted", unit="Count", value=1)
    return config


def _reproduction(spec, store: dal.ObjectStore, version: int) -> experiments.Reproduction:
    """The registered version a run reproduces: its lineage and its evaluation report (complete hyperparameters)."""
    arn = experiments.version_arn(setting("STATE_MACHINE_ARN"), setting("MODEL_PACKAGE_GROUP"), version)
    try:
        package = dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")).describe(arn)
    except dal.ClientError as error:
        raise logic.InvalidRunInput(f"version {version} of {spec.name} cannot be read: "
                                    f"{error.response['Error'].get('Message', error)}") from None
    uri = experiments.report_uri(package)
    report = store.read_json(dal.parse_s3_uri(uri)[1]) if uri.startswith(f"s3://{store.bucket}/runs/{spec.name}/") else {}
    return experiments.reproduction_of(package, report, store.bucket, spec.name, spec.dataset)


@pipeline_task()
def validate_data(event: TaskEvent, context: LambdaContext) -> dict:
    spec, store, run = model_spec(), _bucket(), event.state["run"]
    key, pinned = run["dataset_key"], run.get("dataset_version_id")  # pinned: a reproduction's exact version
    try:
        head = store.head(key, pinned)
    except dal.ClientError as error:
        raise logic.DataValidationFailed(f"dataset s3://{store.bucket}/{key}"
                                         f"{f' version {pinned}' if pinned else ''} cannot be read: {error}") from None
    version_id = head.get("VersionId") or pinned
    hashing = HashingReader(store.open(key, version_id))
    lines = logic.decoded_lines(io.BufferedReader(hashing, buffer_size=1 << 20))  # bad bytes: a problem, not a crash
    report = logic.check_dataset(lines, spec.dataset, spec.task, spec.bias.column_names)
    expected = run.get("expected_sha256")
    if expected and hashing.sha256.hexdigest() != expected:
        report.problems.append(f"version {version_id} hashes to {hashing.sha256.hexdigest()}, not to the sha256 "
                               f"{expected} the reproduced version trained on: not the same bytes")
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
    package = dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")).champion(setting("SERVING_ENDPOINT"),
                                                                            model_spec().deployment.hosting)
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
    # The trained artifact's version is fixed here, the first platform step after training: registration releases
    # exactly this version, whatever is written under the job's output prefix later.
    artifact_version = dal.current_version(training["model_artifacts"])
    baseline = {name: store.put_bytes(f"{prefix}baseline/{name}", dal.read_member_from_tarball(
        training["model_artifacts"], name, artifact_version), "application/json")
                for name in ("statistics.json", "constraints.json")}
    pinned = state["validation"].get("champion")  # pinned by ValidateData, re-scored by the training job
    decision = logic.judge_leakage(logic.evaluate_challenger(report, spec.objective, pinned),
                                   report.get("validation_overlap"), spec.dataset.max_validation_overlap)
    decision = logic.judge_bias(decision, report.get("bias"), spec.bias)
    reproduction = _reproduction_verdict(store, state, report)
    if reproduction is not None:  # a reproduction verifies the version; it is never a challenger
        decision = logic.PromotionDecision(False, decision.value, decision.champion_value, reproduction["summary"])
    metrics.add_metric(name="ObjectiveValue", unit="None", value=decision.value)
    logger.info("evaluated", extra={"promote": decision.promote, "reason": decision.reason})
    tracked = track_run(spec, state, report, {"promote": decision.promote, "reason": decision.reason,
                                              "champion_arn": (pinned or {}).get("model_package_arn")})
    evaluation = Evaluation(**tracked, metrics=report["metrics"], objective=spec.objective.metric, value=decision.value,
                            champion_arn=(pinned or {}).get("model_package_arn"),
                            champion_value=decision.champion_value, promote=decision.promote, reason=decision.reason,
                            champion_metrics=(report.get("champion") or {}).get("metrics"),
                            champion_recorded_metrics=(pinned or {}).get("recorded_metrics"),
                            report_uri=report_uri, baseline_statistics_uri=baseline["statistics.json"],
                            baseline_constraints_uri=baseline["constraints.json"],
                            artifact_version_id=artifact_version, reproduction=reproduction,
                            validation_overlap=report.get("validation_overlap"), **_evidence(spec, store, prefix, report))
    evaluation.model_card_uri = _card_as_evaluated(spec, store, prefix, state, evaluation)
    return evaluation.model_dump()


def _card_as_evaluated(spec, store: dal.ObjectStore, prefix: str, state: dict, evaluation: Evaluation) -> str:
    """model_card.json beside evaluation.json: the card of the trained artifact (the registered one names the
    released artifact instead)."""
    card = model_card.content(spec, RunState.parse({**state, "evaluation": evaluation.model_dump()}),
                              evaluation.evidence, [state["training"]["model_artifacts"]])
    model_card.check(card)
    return store.put_json(f"{prefix}model_card.json", card)


EVIDENCE_FIELDS = {"bias.json": "bias_report_uri", "bias/pre_training.json": "pre_training_bias_uri",
                   "bias/post_training.json": "post_training_bias_uri", "explainability.json": "explainability_report_uri"}


def _evidence(spec, store: dal.ObjectStore, prefix: str, report: dict) -> dict:
    """The bias and attribution reports the job wrote in evaluation.json, kept beside it as the documents the registry
    attaches (Evaluation's *_uri fields), and their bounded summary, each group against the spec's bias bounds (a
    spec without them: disparate impact within 0.8-1.25)."""
    uris = {EVIDENCE_FIELDS[name]: store.put_json(f"{prefix}{name}", document)
            for name, document in evidence.documents(report).items()}
    return {**uris, "evidence": evidence.summarize(report, evidence.bounds_of(getattr(spec, "bias", None)))}


def _reproduction_verdict(store: dal.ObjectStore, state: dict, report: dict) -> dict | None:
    """A reproduction run's verdict (None for any other run), kept beside its evaluation report as
    runs/<model>/<run>/reproduction.json."""
    if not state["run"].get("reproduces"):
        return None
    verdict = experiments.reproduction_verdict(state["run"], report.get("metrics") or {})
    store.put_json(f"{_run_prefix(state)}reproduction.json", verdict)
    metrics.add_metric(name="ReproductionsVerified" if verdict["reproduced"] else "ReproductionsDiffered",
                       unit="Count", value=1)
    logger.info("reproduction checked", extra={"reproduced": verdict["reproduced"], "summary": verdict["summary"]})
    return verdict


@pipeline_task()
def register(event: TaskEvent, context: LambdaContext) -> dict:
    spec, state = model_spec(), RunState.parse(event.state)
    if (event.state.get("run") or {}).get("reproduces"):  # the state machine never routes one here (belt and braces)
        raise logic.InvalidRunInput("a reproduction verifies a version; it registers none and asks nobody to approve")
    run, training, evaluation = state.run, state.training, state.evaluation
    registry, image = dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")), setting("INFERENCE_IMAGE")
    # The platform, not the training role, releases the evaluated version to a key named by its sha256, which only
    # the release writers may put and nobody may delete (the artifact bucket's policy).
    release = dal.seal_release(training.model_artifacts, evaluation.artifact_version_id, setting("ARTIFACT_BUCKET"),
                               lambda sha256: naming.release_key(spec.name, sha256))
    arn = registry.create(
        ModelPackageDescription=f"{spec.name} from {run.execution_name}: {evaluation.reason}"[:1024],
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": image, "ModelDataUrl": release.uri,
                            "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}}],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": [spec.deployment.instance_type],
        },
        ModelMetrics=evidence.model_metrics(evaluation.report_uri, evaluation.bias_report_uri,
                                            evaluation.pre_training_bias_uri, evaluation.post_training_bias_uri,
                                            evaluation.explainability_report_uri),
        DriftCheckBaselines={"ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": evaluation.baseline_statistics_uri},
            "Constraints": {"ContentType": "application/json", "S3Uri": evaluation.baseline_constraints_uri}}},
        MetadataProperties={"CommitId": run.git_commit, "GeneratedBy": run.execution_arn},
        CustomerMetadataProperties=logic.lineage(event.state, release),
        ModelCard=model_card.registered(model_card.content(spec, state, evaluation.evidence, [release.uri])),
        Tags=[{"Key": "mlops:model", "Value": spec.name}],
    )
    version = registry.describe(arn).get("ModelPackageVersion")
    tag_tracked_run(getattr(evaluation, "mlflow_run_id", None), arn, version)
    metrics.add_metric(name="ModelsRegistered", unit="Count", value=1)
    logger.info("model package registered", extra={"model_package_arn": arn, "version": version,
                                                   "artifact_sha256": release.sha256})
    return {"model_package_arn": arn, "version": version, "artifact_uri": release.uri,
            "artifact_sha256": release.sha256, "artifact_version_id": release.version_id, "image": image}


def _tracking_server() -> str:
    return optional_setting("TRACKING_SERVER")


def track_run(spec, state: dict, report: dict, decision: dict) -> dict:
    """Logs the run to the environment's MLflow tracking server (and a tuning job's trials as its child runs);
    {"mlflow_run_id", "mlflow_experiment_id"}. Tracking never fails a run: an unreachable server is a warning,
    a TrackingFailures metric and "tracking_error" in the evaluation, and the lineage says "none"."""
    if not _tracking_server() or not spec.experiments.enabled:
        return {}
    try:
        client = tracking.TrackingClient.for_server(_tracking_server())
        record = experiments.run_record(spec, state, report, decision)
        experiment_id = client.experiment_id(record.experiment)
        run_id = _log(client, experiment_id, record)
        tuning = state.get("tuning") or {}
        if tuning.get("job_name"):
            for trial in experiments.trial_records(dal.tuning_trials(tuning["job_name"]), spec, run_id,
                                                   tuning.get("best_training_job", "")):
                _log(client, experiment_id, trial)
        logger.info("run tracked", extra={"mlflow_run_id": run_id, "experiment": record.experiment})
        return {"mlflow_run_id": run_id, "mlflow_experiment_id": experiment_id}
    except (tracking.TrackingError, dal.ClientError) as error:
        logger.error("experiment tracking failed; the run goes on (the end-of-run email says so)",
                     extra={"error": str(error)[:1000], "code": getattr(error, "code", ""),
                            "status": getattr(error, "status", 0)})
        metrics.add_metric(name="TrackingFailures", unit="Count", value=1)
        return {"tracking_error": str(error)[:500]}


def _log(client: tracking.TrackingClient, experiment_id: str, record: experiments.TrackingRecord) -> str:
    """One MLflow run; a retried step finds the run it finished before (by name and tags) instead of a second one."""
    key = experiments.RUN_TAG if experiments.RUN_TAG in record.tags else experiments.TRIAL_TAG
    earlier = client.run_tagged(experiment_id, key, record.tags[key]) if record.tags.get(key) else None
    if earlier and earlier["info"].get("status") == "FINISHED":
        return earlier["info"]["run_id"]
    now = int(time.time() * 1000)
    run_id = earlier["info"]["run_id"] if earlier else client.create_run(experiment_id, record.run_name, record.tags, now)
    stamped = [{"key": m["key"], "value": m["value"], "step": m["step"], "timestamp": now + (1 if m.get("final") else 0)}
               for m in record.metrics]
    client.log_batch(run_id, record.params, stamped, record.tags)
    client.finish_run(run_id, int(time.time() * 1000), record.status)
    return run_id


def tag_tracked_run(run_id: str | None, model_package_arn: str, version) -> None:
    """The MLflow run leads to the registered version (and the version's lineage back to the run)."""
    if not run_id or not _tracking_server():
        return
    try:
        tracking.TrackingClient.for_server(_tracking_server()).set_tags(run_id, experiments.package_tags(model_package_arn,
                                                                                                           version))
    except (tracking.TrackingError, dal.ClientError) as error:
        logger.warning("could not tag the MLflow run with its model package", extra={"error": str(error)[:1000]})
        metrics.add_metric(name="TrackingFailures", unit="Count", value=1)


class NotifyEvent(TaskEvent):
    outcome: str


@pipeline_task(NotifyEvent)
def notify(event: NotifyEvent, context: LambdaContext) -> dict:
    close_undecided_approval(event.state, event.outcome, event.execution_name)
    if event.outcome == "succeeded" and "registration" in event.state:  # smoke-tested, and served where served
        dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")).mark_released(
            event.state["registration"]["model_package_arn"], event.execution_name)
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

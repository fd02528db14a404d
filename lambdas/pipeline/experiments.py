"""Pure logic of tuning, experiment tracking and exact reproduction (no AWS or HTTP calls here).

- tuning: which hyperparameters a tuning job searches and which stay static, and the job's name;
- tracking: what one run logs to MLflow (parameters, per-epoch and final metrics, the system, lineage tags) and its
  tuning trials as child runs, built from the state document and the job's evaluation.json;
- reproduction: what a registered version was trained with (code snapshot, dataset version and hash,
  hyperparameters), read back from its lineage, so a new run trains with exactly that.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from lambdas.pipeline.logic import InvalidRunInput, check_dataset_key, decoded_hyperparameters
from lambdas.shared.text import one_line
from pipelines import naming
from pipelines.spec import DatasetSpec, ModelSpec, TuningSpec

PARAM_VALUE_LIMIT = 500  # MLflow before 2.x stored 500 characters a param; newer servers take more
TAG_VALUE_LIMIT = 5000
RUN_TAG = "mlops.execution_name"  # the tag a pipeline run's MLflow run is found by (a retried step reuses it)
PACKAGE_TAG = "mlops.model_package_arn"  # the tag a registered version's MLflow run is found by
TRIAL_TAG = "mlops.trial"  # the tag a tuning trial's child run is found by (its training job's name)


# ------------------------------------------------------------------ tuning
def tuning_fields(tuning: TuningSpec | None, hyperparameters: dict[str, str], overrides: dict, model: str,
                  execution_name: str, reproduction: bool = False) -> dict:
    """$.run's tuning fields. A run tunes when the spec has a tuning block and the run is not a reproduction (which
    trains once, with the reproduced version's hyperparameters). Tuned hyperparameters cannot be overridden: the
    search decides them."""
    if tuning is None or reproduction:
        return {"tune": False}
    fixed = sorted(set(overrides) & set(tuning.ranges))
    if fixed:
        raise InvalidRunInput(f"hyperparameters {fixed} are searched by the tuning job (tuning.ranges); fix: drop the "
                              "override, or narrow its range in model.yaml")
    return {"tune": True, "tuning_job_name": naming.tuning_job(model, execution_name),
            "static_hyperparameters": {k: v for k, v in hyperparameters.items() if k not in tuning.ranges}}


# ------------------------------------------------------------------ reproduction
@dataclass(frozen=True)
class Reproduction:
    """What a registered version was trained with (its lineage): a reproduction trains with exactly this."""

    version: int
    model_package_arn: str
    git_commit: str
    dataset_key: str
    dataset_version_id: str | None
    dataset_sha256: str
    hyperparameters: dict
    source_uri: str
    metrics: dict = field(default_factory=dict)


def version_arn(state_machine_arn: str, group: str, version: int) -> str:
    """arn:<partition>:sagemaker:<region>:<account>:model-package/<group>/<version>, from the machine's own ARN."""
    partition, region, account = state_machine_arn.split(":")[1], state_machine_arn.split(":")[3], \
        state_machine_arn.split(":")[4]
    return f"arn:{partition}:sagemaker:{region}:{account}:model-package/{group}/{version}"


def report_uri(package: dict) -> str:
    """The version's evaluation report (ModelMetrics.ModelQuality.Statistics): evaluation.json of its run."""
    return (((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}).get("S3Uri", "")


def reproduction_of(package: dict, report: dict, bucket: str, model: str, dataset: DatasetSpec) -> Reproduction:
    """The reproduced version's inputs, checked: its data and code must be this model's own objects in the artifact
    bucket, and its dataset version pinned (an unversioned object cannot be trained on again exactly). The
    hyperparameters are the job's complete set from its evaluation report (every field train.py read, defaults
    included), not only those the spec declares."""
    version = package.get("ModelPackageVersion")
    lineage = package.get("CustomerMetadataProperties") or {}
    missing = [name for name in ("dataset_uri", "dataset_sha256", "source_uri") if lineage.get(name) in (None, "", "none")]
    if missing or not isinstance(report.get("hyperparameters"), dict):
        missing += [] if isinstance(report.get("hyperparameters"), dict) else ["hyperparameters (evaluation report)"]
        raise InvalidRunInput(f"version {version} cannot be reproduced exactly: its lineage has no {', '.join(missing)} "
                              "(it was registered before runs snapshotted their code); fix: reproduce a newer version")
    own_data = f"s3://{bucket}/"
    dataset_uri = lineage["dataset_uri"]
    if not dataset_uri.startswith(own_data):
        raise InvalidRunInput(f"version {version} trained on {one_line(dataset_uri, 200)}, outside this environment's "
                              "artifact bucket; it cannot be reproduced here")
    version_id = lineage.get("dataset_version_id")
    if not version_id or version_id == "unversioned":
        raise InvalidRunInput(f"version {version} trained on an unversioned dataset object: those exact bytes cannot be "
                              "read again; fix: keep bucket versioning on (the platform's bucket has it)")
    source_uri = lineage["source_uri"]
    if not source_uri.startswith(f"s3://{bucket}/runs/{model}/") or ".." in source_uri:
        raise InvalidRunInput(f"version {version}'s source archive {one_line(source_uri, 200)} is not a run snapshot of "
                              f"{model}; it cannot be reproduced")
    return Reproduction(version=int(version), model_package_arn=package["ModelPackageArn"],
                        git_commit=lineage.get("git_commit", "unknown"),
                        dataset_key=check_dataset_key(dataset_uri[len(own_data):], dataset),
                        dataset_version_id=version_id, dataset_sha256=lineage["dataset_sha256"],
                        hyperparameters=report["hyperparameters"], source_uri=source_uri,
                        metrics=report.get("metrics") or {})


def reproduced_hyperparameters(reproduction: Reproduction, defaults: dict[str, str]) -> dict[str, str]:
    """The version's hyperparameters in SageMaker's JSON-string form, with this stack's script-mode settings. Not
    checked against today's spec: the version's own code (its source snapshot) declares what it accepts."""
    settings = {k: v for k, v in defaults.items() if k.startswith("sagemaker_")}
    return {**settings, **{k: json.dumps(v) for k, v in reproduction.hyperparameters.items()}}


# ------------------------------------------------------------------ tracking
@dataclass
class TrackingRecord:
    """One MLflow run: its name, tags, parameters and metrics ({key, value, step, final?}; timestamps added when
    logged, one millisecond later for the final ones)."""

    experiment: str
    run_name: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: list[dict]
    status: str = "FINISHED"


def experiment_name(spec: ModelSpec) -> str:
    return spec.experiments.experiment or spec.name


def _clip(value, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _metric(key: str, value, step: int) -> dict | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return {"key": key, "value": number, "step": int(step)} if math.isfinite(number) else None


def run_record(spec: ModelSpec, state: dict, report: dict, decision: dict) -> TrackingRecord:
    """What a pipeline run logs: the job's complete hyperparameters as params; every epoch's metrics (step = epoch),
    the final metrics and the champion's re-scored ones (step = last epoch); lineage, system and decision as tags."""
    run, validation, training = state["run"], state["validation"], state["training"]
    history = report.get("history") or []
    last_step = max((int(row.get("epoch", 0)) for row in history), default=0)
    metrics = [m for row in history for key, value in row.items() if key != "epoch"
               for m in [_metric(key, value, row["epoch"])] if m]
    # The final scores (through the serving code) share the last epoch's step; "final" makes them the later
    # values there, so MLflow's latest value of validation:rmse is the final one, not the last round's.
    metrics += [{**m, "final": True} for key, value in (report.get("metrics") or {}).items()
                for m in [_metric(key, value, last_step)] if m]
    champion = (report.get("champion") or {}).get("metrics") or {}
    metrics += [{**m, "final": True} for key, value in champion.items()
                for m in [_metric(f"champion:{key.rpartition(':')[2]}", value, last_step)] if m]
    hyperparameters = report.get("hyperparameters") or decoded_hyperparameters(run.get("hyperparameters") or {})
    system = report.get("system") or {}
    tags = {
        "mlflow.source.git.commit": run.get("git_commit", ""), "mlflow.source.type": "JOB",
        "mlflow.source.name": run.get("source_uri", ""), "mlflow.user": run.get("requested_by", ""),
        "mlflow.note.content": decision.get("reason", ""),
        "mlops.model": spec.name, RUN_TAG: run["execution_name"], "mlops.execution_arn": run["execution_arn"],
        "mlops.trigger": run.get("trigger", ""), "mlops.reason": run.get("reason", ""),
        "mlops.dataset_uri": validation.get("dataset_uri", ""),
        "mlops.dataset_version_id": validation.get("version_id") or "unversioned",
        "mlops.dataset_sha256": validation.get("sha256", ""), "mlops.dataset_rows": str(validation.get("rows", "")),
        "mlops.training_job_arn": training.get("job_arn", ""), "mlops.model_artifact": training.get("model_artifacts", ""),
        "mlops.objective": spec.objective.metric, "mlops.promote": str(bool(decision.get("promote"))).lower(),
        "mlops.champion_package_arn": decision.get("champion_arn") or "none",
        "mlops.framework": str(report.get("framework", spec.training.framework)),
        **{f"system.{key}": str(value) for key, value in system.items()},
    }
    tuning = state.get("tuning") or {}
    if tuning:
        tags.update({"mlops.tuning_job_arn": tuning.get("job_arn", ""), "mlops.tuning_strategy": tuning.get("strategy", ""),
                     "mlops.tuning_best_trial": tuning.get("best_training_job", "")})
    if run.get("reproduces"):
        tags["mlops.reproduces"] = run["reproduces"]
    return TrackingRecord(experiment=experiment_name(spec), run_name=run["execution_name"],
                          tags={k: _clip(v, TAG_VALUE_LIMIT) for k, v in tags.items() if v not in (None, "")},
                          params={k: _clip(v, PARAM_VALUE_LIMIT) for k, v in sorted(hyperparameters.items())},
                          metrics=metrics)


def trial_records(summaries: list[dict], spec: ModelSpec, parent_run_id: str, best: str) -> list[TrackingRecord]:
    """A tuning job's trials (ListTrainingJobsForHyperParameterTuningJob) as child runs of the pipeline run: the
    hyperparameters the search chose and the objective each reached."""
    records = []
    for summary in summaries:
        objective = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        metric = _metric(objective.get("MetricName") or spec.objective.metric, objective.get("Value"), 0)
        status = summary.get("TrainingJobStatus", "")
        tags = {"mlflow.parentRunId": parent_run_id, "mlops.model": spec.name, TRIAL_TAG: summary["TrainingJobName"],
                "mlops.training_job_arn": summary.get("TrainingJobArn", ""), "mlops.trial_status": status,
                "mlops.best_trial": str(summary.get("TrainingJobName") == best).lower()}
        if summary.get("FailureReason"):
            tags["mlops.failure_reason"] = _clip(summary["FailureReason"], TAG_VALUE_LIMIT)
        params = decoded_hyperparameters(summary.get("TunedHyperParameters") or {})
        records.append(TrackingRecord(experiment=experiment_name(spec), run_name=summary["TrainingJobName"], tags=tags,
                                      params={k: _clip(v, PARAM_VALUE_LIMIT) for k, v in sorted(params.items())},
                                      metrics=[metric] if metric else [],
                                      status="FINISHED" if status == "Completed" else "FAILED"))
    return records


def package_tags(model_package_arn: str, version) -> dict[str, str]:
    """Tags that lead from an MLflow run to the registered version (the lineage leads back by mlflow_run_id)."""
    return {PACKAGE_TAG: model_package_arn, "mlops.model_package_version": str(version)}


def reproduction_verdict(run: dict, reproduced_metrics: dict) -> dict:
    """Whether a reproduction run (run: its $.run, with reproduces_metrics and reproduce_tolerance) got the reproduced
    version's metrics back: every metric the version recorded, within the tolerance. A reproduction verifies; it never
    registers a version, so nothing waits for approval and nobody is asked to approve."""
    recorded, tolerance = run.get("reproduces_metrics") or {}, float(run.get("reproduce_tolerance", 0.0))
    differences = {name: {"recorded": _float(recorded[name]), "reproduced": _float(reproduced_metrics.get(name)),
                          "difference": _difference(recorded[name], reproduced_metrics.get(name))}
                   for name in sorted(recorded)}
    off = sorted(name for name, row in differences.items()
                 if row["difference"] is None or abs(row["difference"]) > tolerance)
    reproduced = bool(differences) and not off
    version = run.get("reproduces_version")
    summary = (f"reproduced version {version}: {len(differences)} metric(s) within {tolerance:g} of the recorded ones"
               if reproduced else
               f"did not reproduce version {version}: " + (", ".join(_off(name, differences[name]) for name in off[:6])
                                                          if off else "the version recorded no metrics to compare")
               + f" (tolerance {tolerance:g})")
    return {"reproduces": run.get("reproduces"), "version": version, "reproduced": reproduced, "tolerance": tolerance,
            "metrics": differences, "summary": summary}


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _difference(recorded, reproduced) -> float | None:
    a, b = _float(recorded), _float(reproduced)
    return None if a is None or b is None else b - a


def _off(name: str, row: dict) -> str:
    if row["difference"] is None:
        return f"{name} missing or not a number (recorded {row['recorded']})"
    return f"{name} {row['reproduced']:.6g} vs {row['recorded']:.6g} ({row['difference']:+.3g})"

"""Pure logic of the retraining pipeline: no AWS calls here (they live in lambdas/shared/dal.py)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from typing import IO, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines import naming
from pipelines.spec import DatasetSpec, ObjectiveSpec

MISSING = {"", "nan", "NaN", "null", "None", "NULL"}
_GIT_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


class InvalidRunInput(ValueError):
    """The execution input cannot start a run."""


class RunAlreadyInProgress(RuntimeError):
    """Another execution of the same model is running; one at a time."""


class DataValidationFailed(ValueError):
    """The dataset is not fit to train on; the message lists every reason."""


class RunInput(BaseModel):
    """What may start a run: the client, the schedule rule or the drift hook."""

    model_config = ConfigDict(extra="forbid")
    model: str
    trigger: Literal["manual", "schedule", "drift"] = "manual"
    requested_by: str = "unknown"
    git_commit: str | None = None
    dataset_key: str | None = None
    hyperparameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    reason: str | None = Field(default=None, max_length=2000)

    @field_validator("git_commit")
    @classmethod
    def _commit(cls, value: str | None) -> str | None:
        if value is not None and not _GIT_COMMIT.match(value):
            raise ValueError(f"'{value}' is not a git commit hash (7-40 hex characters)")
        return value

    @field_validator("dataset_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith(("/", "s3://")) or ".." in value):
            raise ValueError("dataset_key is a key inside the artifact bucket, e.g. datasets/churn/train.csv")
        return value


def parse_run_input(document: dict) -> RunInput:
    try:
        return RunInput.model_validate(document)
    except Exception as error:  # pydantic's message names each bad field
        raise InvalidRunInput(f"invalid execution input: {error}") from None


def merge_hyperparameters(defaults: dict[str, str], overrides: dict, known: Iterable[str]) -> dict[str, str]:
    """SageMaker's JSON-encoded string form; only hyperparameters the spec declares may be overridden."""
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise InvalidRunInput(f"unknown hyperparameters {unknown}; known: {sorted(known)}")
    return {**defaults, **{k: json.dumps(v) for k, v in overrides.items()}}


def refuse_duplicate(running: list[dict], own_execution_arn: str, model: str) -> None:
    others = [e for e in running if e["executionArn"] != own_execution_arn]
    if others:
        oldest = min(others, key=lambda e: e["startDate"])
        raise RunAlreadyInProgress(
            f"{model} already has a running retraining execution '{oldest['name']}' "
            f"(started {oldest['startDate']}); one run per model at a time: wait for it or stop it first")


def run_config(run_input: RunInput, execution_arn: str, execution_name: str, hyperparameters: dict[str, str],
               dataset: DatasetSpec, deployed_commit: str = "") -> dict:
    """deployed_commit: the commit the stack (and so the training code asset) was synthesized from; it is
    what schedule- and drift-triggered runs really run."""
    return {
        "model": run_input.model, "trigger": run_input.trigger, "requested_by": run_input.requested_by,
        "git_commit": run_input.git_commit or deployed_commit or "unknown", "execution_arn": execution_arn,
        "execution_name": execution_name, "training_job_name": naming.training_job(run_input.model, execution_name),
        "dataset_key": run_input.dataset_key or f"{dataset.s3_prefix}{dataset.file_name}",
        "hyperparameters": hyperparameters, "reason": run_input.reason or "",
    }


class HashingReader(io.RawIOBase):
    """A raw byte stream that hashes what passes through it (content hash without a second read)."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self.stream, self.sha256, self.bytes = stream, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.stream.read(len(buffer))
        self.sha256.update(chunk)
        self.bytes += len(chunk)
        buffer[:len(chunk)] = chunk
        return len(chunk)


@dataclass
class DatasetReport:
    rows: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        total = max(self.rows, 1)
        minority = min(self.labels.values()) / total if len(self.labels) == 2 else 0.0
        return {"rows": self.rows, "minority_share": round(minority, 6),
                "null_fraction": {k: round(v / total, 6) for k, v in self.missing.items() if v}}


def check_dataset(lines: Iterable[str], dataset: DatasetSpec) -> DatasetReport:
    """One streaming pass: header, row count, nulls per column, label values and balance."""
    report = DatasetReport()
    reader = csv.reader(lines)
    header = next(reader, None)
    expected = set(dataset.features) | {dataset.label}
    if header is None:
        report.problems.append("the file is empty (no header row)")
        return report
    absent = sorted(expected - set(header))
    if absent:
        report.problems.append(f"missing columns {absent} (the header has {header})")
        return report
    positions = {name: header.index(name) for name in expected}
    report.missing = {name: 0 for name in expected}
    for line_number, row in enumerate(reader, start=2):
        if len(row) != len(header):
            if len(report.problems) < 5:
                report.problems.append(f"line {line_number} has {len(row)} fields, the header has {len(header)}")
            continue
        report.rows += 1
        for name, position in positions.items():
            if row[position] in MISSING:
                report.missing[name] += 1
        label = row[positions[dataset.label]]
        if label not in MISSING:
            report.labels[label] = report.labels.get(label, 0) + 1
    _judge(report, dataset)
    return report


def _judge(report: DatasetReport, dataset: DatasetSpec) -> None:
    if report.rows < dataset.min_rows:
        report.problems.append(f"{report.rows} rows, the spec requires at least {dataset.min_rows}")
    for name, count in sorted(report.missing.items()):
        share = count / max(report.rows, 1)
        if share > dataset.max_null_fraction:
            report.problems.append(f"column '{name}' is {share:.1%} empty, the spec allows {dataset.max_null_fraction:.1%}")
    if set(report.labels) - {"0", "1"}:
        report.problems.append(f"label '{dataset.label}' must be 0 or 1, found {sorted(report.labels)[:5]}")
    elif len(report.labels) < 2:
        report.problems.append(f"label '{dataset.label}' has a single class {sorted(report.labels)}")
    else:
        minority = min(report.labels.values()) / report.rows
        if minority < dataset.min_minority_share:
            report.problems.append(f"minority class is {minority:.1%} of rows, the spec requires {dataset.min_minority_share:.1%}")


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    value: float
    champion_value: float | None
    reason: str


def decide_promotion(metrics: dict[str, float], objective: ObjectiveSpec, champion_metrics: dict | None) -> PromotionDecision:
    if objective.metric not in metrics:
        raise ValueError(f"the evaluation report has no '{objective.metric}' (it has {sorted(metrics)})")
    value = float(metrics[objective.metric])
    champion = float(champion_metrics[objective.metric]) if champion_metrics and objective.metric in champion_metrics else None
    if not objective.passes_minimum(value):
        bound = "minimum" if objective.direction == "maximize" else "maximum"
        return PromotionDecision(False, value, champion, f"{objective.metric}={value:.4f} misses the spec {bound} {objective.minimum}")
    if not objective.beats(value, champion):
        return PromotionDecision(False, value, champion,
                                 f"{objective.metric}={value:.4f} does not beat the champion's {champion:.4f} "
                                 f"by the margin {objective.champion_margin}")
    against = "no approved champion yet" if champion is None else f"champion {champion:.4f}"
    return PromotionDecision(True, value, champion, f"{objective.metric}={value:.4f} ({against})")


def lineage(state: dict) -> dict[str, str]:
    """CustomerMetadataProperties for the model package: every value a string, as SageMaker requires."""
    run, validation, training, evaluation = state["run"], state["validation"], state["training"], state["evaluation"]
    return {
        "git_commit": run["git_commit"], "execution_arn": run["execution_arn"], "trigger": run["trigger"],
        "requested_by": run["requested_by"], "dataset_uri": validation["dataset_uri"],
        "dataset_version_id": validation["version_id"] or "unversioned", "dataset_sha256": validation["sha256"],
        "dataset_rows": str(validation["rows"]), "training_job_arn": training["job_arn"],
        "hyperparameters": json.dumps(decoded_hyperparameters(run["hyperparameters"]), sort_keys=True),
        "metrics": json.dumps(evaluation["metrics"], sort_keys=True),
        "champion_package_arn": evaluation.get("champion_arn") or "none",
    }


def decoded_hyperparameters(encoded: dict[str, str]) -> dict:
    """SageMaker's JSON-string values back to numbers and booleans; the script-mode settings left out."""
    decoded = {}
    for key, value in encoded.items():
        if key.startswith("sagemaker_"):
            continue
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def champion_metrics(package: dict | None) -> dict | None:
    if not package:
        return None
    raw = package.get("CustomerMetadataProperties", {}).get("metrics")
    return json.loads(raw) if raw else None


def approval_timed_out(state: dict, outcome: str) -> bool:
    return outcome == "rejected" and state.get("error", {}).get("Error") == "States.Timeout" and "registration" in state


def notification(state: dict, outcome: str) -> tuple[str, str]:
    """(subject, body) for the pipeline's end-of-run message."""
    run = state.get("run") or state.get("input") or {}
    model = run.get("model", "model")
    lines = [f"Model: {model}", f"Outcome: {outcome}", f"Execution: {run.get('execution_arn', '-')}",
             f"Trigger: {run.get('trigger', '-')} by {run.get('requested_by', '-')}"]
    if "error" in state:
        error = state["error"]
        cause = error.get("Cause", "")
        try:
            cause = json.loads(cause).get("errorMessage", cause)
        except (ValueError, AttributeError):
            pass
        lines += [f"Error: {error.get('Error')}", f"Reason: {cause}"]
    if "evaluation" in state:
        lines.append(f"Evaluation: {state['evaluation'].get('reason')}")
    if "registration" in state:
        lines.append(f"Model package: {state['registration'].get('model_package_arn')}")
    return f"[{model}] retraining {outcome}", "\n".join(lines)

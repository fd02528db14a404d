"""Pure logic of the retraining pipeline: no AWS calls here (they live in lambdas/shared/dal.py)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import IO, Iterable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines import naming
from lambdas.shared.errors import failure_reason
from pipelines.spec import DatasetSpec, ObjectiveSpec, TrainingSpec, control_character, refuse_control_characters

MISSING = {"", "nan", "NaN", "null", "None", "NULL"}
_GIT_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
# C0 and C1 control characters, DEL and Unicode's line and paragraph separators: each could start a new line in a
# mail client; shown as visible escapes instead.
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)]} | {
    ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(value, limit: int = 300) -> str:
    """Any value that came from input, as one line of text: control characters shown escaped (a newline as a
    visible backslash-n), never able to start a line of its own in an email; cut at limit characters."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = text.translate(_CONTROL_ESCAPES)
    return text if len(text) <= limit else text[:limit - 1] + "…"


_one_line_text = one_line


class InvalidRunInput(ValueError):
    """The execution input cannot start a run."""


class RunAlreadyInProgress(RuntimeError):
    """Another execution of the same model is running; one at a time."""


class DataValidationFailed(ValueError):
    """The dataset is not fit to train on; the message lists every reason."""


class RunRequest(BaseModel):
    """What a person may ask of a run (the runs API's POST /runs); identity is never among it."""

    model_config = ConfigDict(extra="forbid")
    git_commit: str | None = None
    dataset_key: str | None = Field(default=None, min_length=1, max_length=1024)
    hyperparameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    reason: str | None = Field(default=None, max_length=2000)

    @field_validator("git_commit", "dataset_key", "reason", "model", "requested_by", mode="before", check_fields=False)
    @classmethod
    def _one_line(cls, value, info):
        """Each of these reaches an email, a log line, S3 keys or model-package metadata: one printable line."""
        if isinstance(value, str):
            refuse_control_characters(value, info.field_name)
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _hyperparameter_names(cls, value: dict) -> dict:
        bad = [name for name in value if control_character(name) or not name or len(name) > 256]
        if bad:
            raise ValueError(f"hyperparameter names {[_one_line_text(n) for n in bad]} are not printable names")
        return value

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


class RunInput(RunRequest):
    """The execution input: a RunRequest plus who and what started it (the runs API, the schedule rule or the
    drift hook; never a person directly)."""

    model: str = Field(max_length=64)
    trigger: Literal["manual", "schedule", "drift"] = "manual"
    requested_by: str = Field(default="unknown", min_length=1, max_length=512)


def parse_run_input(document: dict) -> RunInput:
    try:
        return RunInput.model_validate(document)
    except Exception as error:  # pydantic's message names each bad field
        raise InvalidRunInput(f"invalid execution input: {error}") from None


def merge_hyperparameters(defaults: dict[str, str], overrides: dict, known: Iterable[str] | TrainingSpec) -> dict[str, str]:
    """SageMaker's JSON-encoded string form; only hyperparameters the spec declares may be overridden, and (given the
    TrainingSpec) only with a value of the declared type inside the declared range."""
    names = known.hyperparameters if isinstance(known, TrainingSpec) else known
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise InvalidRunInput(f"unknown hyperparameters {[_one_line_text(n) for n in unknown]}; known: {sorted(names)}")
    if isinstance(known, TrainingSpec):
        problems = []
        for name, value in sorted(overrides.items()):
            try:
                known.check_override(name, value)
            except ValueError as error:
                problems.append(str(error))
        if problems:
            raise InvalidRunInput("invalid hyperparameters: " + "; ".join(problems))
    return {**defaults, **{k: json.dumps(v) for k, v in overrides.items()}}


def check_dataset_key(key: str, dataset: DatasetSpec) -> str:
    """A dataset key inside the model's own prefix of the artifact bucket (no '..', no absolute keys, no other
    model's data)."""
    prefix = dataset.s3_prefix if dataset.s3_prefix.endswith("/") else f"{dataset.s3_prefix}/"
    segments = key.split("/")
    if key.startswith(("/", "s3://")) or any(part in ("", ".", "..") for part in segments):
        raise InvalidRunInput(f"dataset_key '{_one_line_text(key)}' is not a plain key: no leading '/', no 's3://', "
                              f"no '.', '..' or empty segments; e.g. {prefix}{dataset.file_name}")
    if not key.startswith(prefix) or len(key) <= len(prefix):
        raise InvalidRunInput(f"dataset_key '{_one_line_text(key)}' is outside this model's datasets: it must start "
                              f"with '{prefix}', e.g. {prefix}{dataset.file_name}")
    return key


def check_execution_name(model: str, execution_name: str) -> str:
    """The training job is named after the execution; SageMaker job names are letters, digits and '-' (63 at most)."""
    job = naming.training_job(model, execution_name)
    if not _SAGEMAKER_NAME.match(job) or len(job) > naming.SAGEMAKER_NAME_LIMIT:
        raise InvalidRunInput(
            f"the execution name '{_one_line_text(execution_name)}' cannot name a SageMaker training job "
            f"('{_one_line_text(job)}'): letters, digits and single '-' between them only; start the run again with a "
            "name like manual-20250101T120000-1a2b3c (`mlops train` does this), or let Step Functions name it")
    return execution_name


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
    check_execution_name(run_input.model, execution_name)
    dataset_key = check_dataset_key(run_input.dataset_key, dataset) if run_input.dataset_key \
        else f"{dataset.s3_prefix}{dataset.file_name}"
    return {
        "model": run_input.model, "trigger": run_input.trigger, "requested_by": run_input.requested_by,
        "git_commit": run_input.git_commit or deployed_commit or "unknown", "execution_arn": execution_arn,
        "execution_name": execution_name, "training_job_name": naming.training_job(run_input.model, execution_name),
        "dataset_key": dataset_key, "hyperparameters": hyperparameters, "reason": run_input.reason or "",
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


def decoded_lines(stream: IO[bytes]) -> Iterator[str]:
    """The lines of a byte stream as UTF-8 text (a leading byte-order mark dropped); bytes that are not UTF-8 are a
    DataValidationFailed naming the line and the byte offset, never a UnicodeDecodeError."""
    offset = 0
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise DataValidationFailed(
                f"the file is not UTF-8 text: byte 0x{raw[error.start]:02x} at byte offset {offset + error.start} "
                f"(line {number}) cannot be decoded; fix: save the file as UTF-8") from None
        offset += len(raw)
        yield text


@dataclass
class _BadNumbers:
    count: int = 0
    first_line: int = 0
    first_value: str = ""


@dataclass
class DatasetReport:
    rows: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    not_numeric: dict[str, _BadNumbers] = field(default_factory=dict)

    def summary(self) -> dict:
        total = max(self.rows, 1)
        minority = min(self.labels.values()) / total if len(self.labels) == 2 else 0.0
        return {"rows": self.rows, "minority_share": round(minority, 6),
                "null_fraction": {k: round(v / total, 6) for k, v in self.missing.items() if v}}


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def check_dataset(lines: Iterable[str], dataset: DatasetSpec) -> DatasetReport:
    """One streaming pass: header, row count, nulls per column, numeric features numeric and finite, label values
    and balance. Undecodable bytes and malformed CSV are reported as problems, not raised."""
    report = DatasetReport()
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except (DataValidationFailed, UnicodeDecodeError, csv.Error) as error:
        report.problems.append(_unreadable(error, 1))
        return report
    expected = set(dataset.features) | {dataset.label}
    if header is None:
        report.problems.append("the file is empty (no header row)")
        return report
    absent = sorted(expected - set(header))
    if absent:
        report.problems.append(f"missing columns {absent} (the header has {one_line(header)})")
        return report
    positions = {name: header.index(name) for name in expected}
    numeric = {name: positions[name] for name in dataset.features if name not in dataset.categorical}
    report.missing = {name: 0 for name in expected}
    report.not_numeric = {name: _BadNumbers() for name in numeric}
    try:
        for row in reader:
            line_number = reader.line_num
            if len(row) != len(header):
                if len(report.problems) < 5:
                    report.problems.append(f"line {line_number} has {len(row)} fields, the header has {len(header)}")
                continue
            report.rows += 1
            for name, position in positions.items():
                if row[position] in MISSING:
                    report.missing[name] += 1
            for name, position in numeric.items():
                value = row[position]
                if value not in MISSING and not _finite(value):
                    bad = report.not_numeric[name]
                    if not bad.count:
                        bad.first_line, bad.first_value = line_number, value
                    bad.count += 1
            label = row[positions[dataset.label]]
            if label not in MISSING:
                report.labels[label] = report.labels.get(label, 0) + 1
    except (DataValidationFailed, UnicodeDecodeError, csv.Error) as error:
        report.problems.append(_unreadable(error, reader.line_num + 1))
        return report
    _judge(report, dataset)
    return report


def _unreadable(error: Exception, line_number: int) -> str:
    if isinstance(error, DataValidationFailed):
        return str(error)
    if isinstance(error, UnicodeDecodeError):
        return (f"the file is not UTF-8 text: byte 0x{error.object[error.start]:02x} cannot be decoded near line "
                f"{line_number}; fix: save the file as UTF-8")
    return f"line {line_number} is not valid CSV ({one_line(str(error), 120)}); fix: correct the quoting or the field"


def _judge_numbers(report: DatasetReport) -> None:
    for name, bad in sorted(report.not_numeric.items()):
        if bad.count:
            report.problems.append(
                f"numeric column '{name}' has {bad.count} value(s) that are not finite numbers (first on line "
                f"{bad.first_line}: '{one_line(bad.first_value, 40)}'); fix: correct them, or list '{name}' in "
                "dataset.categorical if it is not numeric")


def _judge(report: DatasetReport, dataset: DatasetSpec) -> None:
    _judge_numbers(report)
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
    return outcome == "rejected" and (state.get("error") or {}).get("Error") == "States.Timeout" and "registration" in state


def notification(state: dict, outcome: str) -> tuple[str, str]:
    """(subject, body) for the pipeline's end-of-run message."""
    run = state.get("run") or state.get("input") or {}
    model = one_line(run.get("model", "model"), 64)  # every value below may come from input: one line each
    lines = [f"Model: {model}", f"Outcome: {one_line(outcome)}", f"Execution: {one_line(run.get('execution_arn', '-'))}",
             f"Trigger: {one_line(run.get('trigger', '-'))} by {one_line(run.get('requested_by', '-'))}"]
    if "error" in state:  # Cause can be null (a Fail state, a Pass-made error): never crash the last message
        lines.append(f"Reason: {one_line(failure_reason(state['error']), 4000)}")
    if "evaluation" in state:
        lines.append(f"Evaluation: {one_line(state['evaluation'].get('reason'), 1000)}")
    if "registration" in state:
        lines.append(f"Model package: {one_line(state['registration'].get('model_package_arn'))}")
    return f"[{model}] retraining {one_line(outcome)}", "\n".join(lines)

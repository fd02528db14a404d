"""Pure logic of the retraining pipeline: no AWS calls here (they live in lambdas/shared/dal.py)."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from typing import IO, Iterable, Iterator, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines import naming
from lambdas.shared.evidence import as_dict, as_list, finite_number
from lambdas.shared.lineage import champion_metrics, checked, encode_pairs
from lambdas.shared.run_state import decoded_hyperparameters
from lambdas.shared.errors import failure_reason
from lambdas.shared.text import one_line
from pipelines.modelkit.bias_terms import METRICS as BIAS_METRICS
from pipelines.modelkit.bias_terms import facet_words
from pipelines.modelkit.leakage import leakage_warning
from pipelines.spec import (MAX_CLASSES, BiasSpec, DatasetSpec, ObjectiveSpec, TaskSpec, TrainingSpec,
                            control_character, refuse_control_characters)

MISSING = {"", "nan", "NaN", "null", "None", "NULL"}
# A reproduction reproduced when every metric is within this of the version's own (same code, data and seed: equal
# up to float summation order on another instance).
DEFAULT_REPRODUCTION_TOLERANCE = 1e-6
_GIT_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
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
    reproduce_version: int | None = Field(
        default=None, ge=1, description="Train again exactly as this registered version was trained: its source "
                                        "snapshot, dataset version and hyperparameters (docs/experiments.md)")

    reproduce_tolerance: float | None = Field(
        default=None, ge=0, le=1, description="A reproduction's verdict: the largest absolute difference of any "
                                              "metric from the version's own that still counts as reproduced "
                                              "(default 1e-6)")

    @model_validator(mode="after")
    def _reproduction_is_exact(self):
        if self.reproduce_version is not None and (self.hyperparameters or self.dataset_key):
            raise ValueError("a reproduction trains with the version's own hyperparameters and dataset version; "
                             "fix: drop hyperparameters and dataset_key, or start an ordinary run")
        if self.reproduce_tolerance is not None and self.reproduce_version is None:
            raise ValueError("reproduce_tolerance applies to a reproduction; fix: add reproduce_version or drop it")
        return self

    @field_validator("git_commit", "dataset_key", "reason", "model", "requested_by", "requested_by_person", mode="before",
                     check_fields=False)
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
    """The execution input: a RunRequest plus who and what started it (the runs API, the schedule rule, the
    drift hook or the quality check; never a person directly)."""

    model: str = Field(max_length=64)
    trigger: Literal["manual", "schedule", "drift", "quality"] = "manual"
    requested_by: str = Field(default="unknown", min_length=1, max_length=512)
    requested_by_person: str | None = Field(default=None, min_length=1, max_length=64)


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
               dataset: DatasetSpec, deployed_commit: str = "", bucket: str = "", reproduction=None) -> dict:
    """deployed_commit: the commit the stack (and so the training code asset) was synthesized from: what every run
    (but a reproduction, which trains the reproduced version's own snapshot) really trains with, so it is the commit
    recorded. A commit the caller sends is kept apart as `claimed_git_commit`, shown as claimed, never as lineage.
    source_uri: the run's own snapshot of the source archive
    (the state machine copies it there, source_copy; the training job's code channel). reproduction (lambdas.pipeline.experiments
    .Reproduction): the registered version this run trains again, with its commit, dataset version and code."""
    check_execution_name(run_input.model, execution_name)
    dataset_key = check_dataset_key(run_input.dataset_key, dataset) if run_input.dataset_key \
        else f"{dataset.s3_prefix}{dataset.file_name}"
    config = {
        "model": run_input.model, "trigger": run_input.trigger, "requested_by": run_input.requested_by,
        "git_commit": deployed_commit or "unknown", "execution_arn": execution_arn,
        "execution_name": execution_name, "training_job_name": naming.training_job(run_input.model, execution_name),
        "dataset_key": dataset_key, "hyperparameters": hyperparameters, "reason": run_input.reason or "",
        "source_uri": f"s3://{bucket}/runs/{run_input.model}/{execution_name}/code/sourcedir.tar.gz",
    }
    if run_input.git_commit:
        config["claimed_git_commit"] = run_input.git_commit
    if run_input.requested_by_person:
        config["requested_by_person"] = run_input.requested_by_person
    if reproduction is not None:
        config.update({"git_commit": reproduction.git_commit, "dataset_key": reproduction.dataset_key,
                       "dataset_version_id": reproduction.dataset_version_id,
                       "expected_sha256": reproduction.dataset_sha256, "reproduces": reproduction.model_package_arn,
                       "reproduces_version": reproduction.version, "reproduced_source_uri": reproduction.source_uri,
                       "reproduces_metrics": reproduction.metrics,
                       "reproduce_tolerance": run_input.reproduce_tolerance if run_input.reproduce_tolerance is not None
                       else DEFAULT_REPRODUCTION_TOLERANCE,
                       "reason": run_input.reason or f"reproduction of version {reproduction.version}"})
    return config


def source_copy(source_uri: str, snapshot_uri: str) -> dict[str, str]:
    """S3 CopyObject's parameters that snapshot the source archive into the run's folder (the state machine's
    SnapshotSource step: CopySource is bucket/key, URL-encoded as S3's CopyObject reference asks)."""
    source_bucket, source_key = _s3_parts(source_uri)
    bucket, key = _s3_parts(snapshot_uri)
    return {"Bucket": bucket, "Key": key, "CopySource": f"{source_bucket}/{quote(source_key, safe='/')}"}


def _s3_parts(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise InvalidRunInput(f"{one_line(uri, 300)} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


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
class LabelStats:
    """What one streaming pass learns about the label column, whatever the task type: the count of each distinct
    value (up to MAX_CLASSES + 1 of them; regression keeps none), numeric range, and the first offending line of
    each kind of bad label."""

    counts: dict[str, int] = field(default_factory=dict)
    too_many: bool = False
    not_numeric: _BadNumbers = field(default_factory=_BadNumbers)
    out_of_range: _BadNumbers = field(default_factory=_BadNumbers)
    no_match: _BadNumbers = field(default_factory=_BadNumbers)
    minimum: float = math.inf
    maximum: float = -math.inf
    total: float = 0.0
    numbers: int = 0

    def add(self, value: str, line: int, task: TaskSpec, pattern: re.Pattern | None) -> None:
        if task.type == "regression":
            self._add_number(value, line, task)
            return
        if pattern is not None and not pattern.fullmatch(value):
            _note(self.no_match, line, value)
        if value in self.counts or len(self.counts) <= MAX_CLASSES:
            self.counts[value] = self.counts.get(value, 0) + 1
        else:
            self.too_many = True

    def _add_number(self, value: str, line: int, task: TaskSpec) -> None:
        if not _finite(value):
            _note(self.not_numeric, line, value)
            return
        number = float(value)
        if (task.label_min is not None and number < task.label_min) or (task.label_max is not None and number > task.label_max):
            _note(self.out_of_range, line, value)
        self.minimum, self.maximum = min(self.minimum, number), max(self.maximum, number)
        self.total += number
        self.numbers += 1


def _note(bad: _BadNumbers, line: int, value: str) -> None:
    if not bad.count:
        bad.first_line, bad.first_value = line, value
    bad.count += 1


@dataclass
class DatasetReport:
    rows: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    label_stats: LabelStats = field(default_factory=LabelStats)
    problems: list[str] = field(default_factory=list)
    not_numeric: dict[str, _BadNumbers] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, int]:
        return self.label_stats.counts

    def summary(self) -> dict:
        total = max(self.rows, 1)
        stats = self.label_stats
        minority = min(stats.counts.values()) / total if len(stats.counts) >= 2 else 0.0
        summary = {"rows": self.rows, "minority_share": round(minority, 6),
                   "null_fraction": {k: round(v / total, 6) for k, v in self.missing.items() if v}}
        if stats.numbers:
            summary["label_range"] = [stats.minimum, stats.maximum]
            summary["label_mean"] = round(stats.total / stats.numbers, 6)
        elif 2 < len(stats.counts) <= 20:
            summary["label_shares"] = {k: round(v / total, 6) for k, v in sorted(stats.counts.items())}
        return summary


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def check_dataset(lines: Iterable[str], dataset: DatasetSpec, task: TaskSpec | None = None,
                  other_columns: Iterable[str] = ()) -> DatasetReport:
    """One streaming pass: header, row count, nulls per column, numeric features numeric and finite, labels as the
    task type wants them (binary 0/1 with both classes; multiclass the declared classes, each present; regression
    finite numbers in the declared range, not constant; custom the declared pattern) and class balance.
    other_columns: columns the spec reads besides features and label (bias.sensitive_attributes), which must be
    there too. Undecodable bytes and malformed CSV are reported as problems, not raised."""
    task = task or TaskSpec()
    pattern = re.compile(task.custom.label_pattern) if task.custom else None
    report = DatasetReport()
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except (DataValidationFailed, UnicodeDecodeError, csv.Error) as error:
        report.problems.append(_unreadable(error, 1))
        return report
    expected = set(dataset.features) | {dataset.label} | set(other_columns)
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
                report.label_stats.add(label, line_number, task, pattern)
    except (DataValidationFailed, UnicodeDecodeError, csv.Error) as error:
        report.problems.append(_unreadable(error, reader.line_num + 1))
        return report
    _judge(report, dataset, task)
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


def _judge(report: DatasetReport, dataset: DatasetSpec, task: TaskSpec) -> None:
    _judge_numbers(report)
    if report.rows < dataset.min_rows:
        report.problems.append(f"{report.rows} rows, the spec requires at least {dataset.min_rows}")
    for name, count in sorted(report.missing.items()):
        share = count / max(report.rows, 1)
        if share > dataset.max_null_fraction:
            report.problems.append(f"column '{name}' is {share:.1%} empty, the spec allows {dataset.max_null_fraction:.1%}")
    report.problems.extend(LABEL_JUDGES[task.type](report, dataset, task))


def _bad(bad: _BadNumbers, label: str, what: str) -> list[str]:
    if not bad.count:
        return []
    return [f"label '{label}' has {bad.count} value(s) that {what} (first on line {bad.first_line}: "
            f"'{one_line(bad.first_value, 40)}')"]


def _judge_classes(report: DatasetReport, dataset: DatasetSpec, allowed: list[str] | None, kind: str) -> list[str]:
    counts, label = report.labels, dataset.label
    if report.label_stats.too_many:
        return [f"label '{label}' has more than {MAX_CLASSES} distinct values, too many for {kind} classification; "
                "fix: check the label column, or declare task.type: regression"]
    problems = []
    if allowed is not None and set(counts) - set(allowed):
        problems.append(f"label '{label}' must be one of {one_line(repr(allowed), 120)}, found "
                        f"{one_line(repr(sorted(set(counts) - set(allowed))[:5]), 120)}")
    if allowed is not None and kind == "multiclass" and set(allowed) - set(counts) and not problems:
        problems.append(f"classes {one_line(repr(sorted(set(allowed) - set(counts))[:5]), 120)} of task.classes have no rows; "
                        "fix: add rows of every class, or remove the class from task.classes")
    if problems:
        return problems
    if len(counts) < 2:
        return [f"label '{label}' has a single class {one_line(repr(sorted(counts)), 80)}"]
    minority = min(counts.values()) / report.rows
    if minority < dataset.min_minority_share:
        smallest = min(counts, key=counts.get)
        return [f"minority class {one_line(smallest, 40)!r} is {minority:.1%} of rows, the spec requires "
                f"{dataset.min_minority_share:.1%}"]
    return []


def _judge_binary(report: DatasetReport, dataset: DatasetSpec, task: TaskSpec) -> list[str]:
    if set(report.labels) - {"0", "1"}:
        return [f"label '{dataset.label}' must be 0 or 1 (task.type: binary), found "
                f"{one_line(repr(sorted(report.labels)[:5]), 120)}; fix: encode the label as 0/1, or declare the task type "
                "(multiclass, regression, custom) in model.yaml"]
    return _judge_classes(report, dataset, ["0", "1"], "binary")


def _judge_multiclass(report: DatasetReport, dataset: DatasetSpec, task: TaskSpec) -> list[str]:
    return _judge_classes(report, dataset, task.classes, "multiclass")


def _judge_regression(report: DatasetReport, dataset: DatasetSpec, task: TaskSpec) -> list[str]:
    stats, label = report.label_stats, dataset.label
    bounds = f"[{'-inf' if task.label_min is None else f'{task.label_min:g}'}, " \
             f"{'inf' if task.label_max is None else f'{task.label_max:g}'}]"
    problems = _bad(stats.not_numeric, label, "are not finite numbers (task.type: regression)")
    problems += _bad(stats.out_of_range, label, f"lie outside task.label_min..label_max {bounds}")
    if stats.numbers and stats.minimum == stats.maximum:
        problems.append(f"label '{label}' is constant ({stats.minimum:g}): nothing to learn")
    return problems


def _judge_custom(report: DatasetReport, dataset: DatasetSpec, task: TaskSpec) -> list[str]:
    custom = task.custom
    problems = _bad(report.label_stats.no_match, dataset.label,
                    f"do not match task.custom.label_pattern '{one_line(custom.label_pattern, 60)}'")
    distinct = len(report.labels)
    if distinct < custom.min_distinct_labels and not report.label_stats.too_many:
        problems.append(f"label '{dataset.label}' has {distinct} distinct value(s), task.custom.min_distinct_labels "
                        f"is {custom.min_distinct_labels}")
    return problems


LABEL_JUDGES = {"binary": _judge_binary, "multiclass": _judge_multiclass, "regression": _judge_regression,
                "custom": _judge_custom}


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


def pin_champion(package: dict | None, bucket: str, model: str) -> dict:
    """champion.json: the package production serves, as the training job will re-score it. Its artifact must lie
    under this model's releases/ prefix, the only artifacts the training role may read."""
    if not package:
        return {"model_package_arn": None, "reason": "production serves no model yet"}
    container = (package.get("InferenceSpecification") or {}).get("Containers", [{}])[0]
    artifact, own = container.get("ModelDataUrl", ""), f"s3://{bucket}/{naming.RELEASES}/{model}/"
    pinned = {"model_package_arn": package["ModelPackageArn"], "version": package.get("ModelPackageVersion"),
              "artifact": artifact, "recorded_metrics": champion_metrics(package)}
    if not artifact.startswith(own) or ".." in artifact:
        return {**pinned, "artifact": None,
                "reason": f"its artifact {one_line(artifact, 200)} is not under {own}, which the training job may read"}
    return pinned


def champion_manifest(bucket: str, descriptor_key: str, pinned: dict) -> list:
    """The champion channel's SageMaker manifest (S3DataType ManifestFile): champion.json, and the champion's
    model.tar.gz when there is one, both in the artifact bucket."""
    entries: list = [{"prefix": f"s3://{bucket}/"}, descriptor_key]
    if pinned.get("artifact"):
        entries.append(pinned["artifact"].removeprefix(f"s3://{bucket}/"))
    return entries


def evaluate_challenger(report: dict, objective: ObjectiveSpec, pinned: dict | None) -> PromotionDecision:
    """The challenger against the champion pinned for this run, both scored by the training job on the same
    validation rows (evaluation.json's metrics and champion.metrics). A pinned champion that could not be scored
    is never replaced by its number from another dataset: the challenger is then not promoted."""
    arn = (pinned or {}).get("model_package_arn")
    if not arn:
        return decide_promotion(report["metrics"], objective, None)
    scored = report.get("champion") or {}
    rescored = scored.get("metrics") if scored.get("model_package_arn") == arn else None
    if not rescored or objective.metric not in rescored:
        value = decide_promotion(report["metrics"], objective, None).value
        why = scored.get("error") or (pinned or {}).get("reason") or "the training job reported no score for it"
        return PromotionDecision(False, value, None,
                                 f"the champion {arn} could not be re-scored on this run's validation rows "
                                 f"({one_line(why, 300)}); not promoted: nothing is compared across datasets")
    decision = decide_promotion(report["metrics"], objective, rescored)
    rows = scored.get("rows")
    return PromotionDecision(decision.promote, decision.value, decision.champion_value,
                             f"{decision.reason}, both on the same {rows or ''} validation rows".replace("  ", " "))




def judge_leakage(decision: PromotionDecision, overlap: dict | None, max_share: float) -> PromotionDecision:
    """Any overlap is a warning in the reason; more than dataset.max_validation_overlap keeps the champion: a
    score measured on memorized rows is no evidence."""
    warning = leakage_warning(overlap)
    if not warning:
        return decision
    share = overlap["shared_with_training"] / overlap["validation_rows"]
    if decision.promote and share > max_share:
        return PromotionDecision(False, decision.value, decision.champion_value,
                                 f"{warning}; that is more than dataset.max_validation_overlap {max_share:.1%} "
                                 f"allows, so the champion is kept (without it: {decision.reason})")
    return PromotionDecision(decision.promote, decision.value, decision.champion_value,
                             f"{decision.reason}; WARNING: {warning}")


MAX_BIAS_FINDINGS = 5  # in the reason (and so the email); the evaluation report has every figure


def bias_findings(document: dict | None, bias: BiasSpec) -> list[str]:
    """What keeps the spec's bias bounds from being met: each facet whose figure misses a bound, each bounded figure
    the training job did not measure, or the whole document missing (training that wrote no "bias")."""
    if not bias.bounds:
        return []
    if not isinstance(document, dict):
        return [f"bias: the spec bounds {', '.join(sorted(bias.bounds))} but the training job wrote no bias figures "
                "(evaluation.json's \"bias\" is missing), so the run cannot show the model keeps them; fix: train "
                "with the current model kit (pipelines/modelkit)"]
    findings = []
    for name, bound in sorted(bias.bounds.items()):
        metric = BIAS_METRICS[name]
        facets = as_dict(as_dict(document.get(metric.section)).get("facets"))
        for attribute in bias.column_names:
            entries = [entry for entry in as_list(facets.get(attribute)) if isinstance(entry, dict)]
            if not entries:
                findings.append(f"bias: {metric.words} ({name}) of {one_line(attribute, 80)} was not measured")
            findings.extend(_facet_finding(name, bound, attribute, entry) for entry in entries)
    return [finding for finding in findings if finding]


def _facet_finding(name: str, bound, attribute: str, entry: dict) -> str:
    """One facet against one bound; training output of any shape is read, never trusted (a malformed figure is
    one that could not be measured)."""
    metric = BIAS_METRICS[name]
    facet = one_line(facet_words(attribute, str(entry.get("value_or_threshold", "?"))), 120)
    value = finite_number(next((m.get("value") for m in as_list(entry.get("metrics"))
                                if isinstance(m, dict) and m.get("name") == name), None))
    if value is None:
        return (f"bias: {metric.words} ({name}) of {facet} could not be measured (too few rows or positive outcomes "
                "in a group), so bias.bounds cannot be shown to hold")
    missed = bound.missed(float(value))
    if missed is None:
        return ""
    kind, limit = missed
    how = {"min": "below", "max": "above", "max_abs": "further from 0 than"}[kind]
    return f"bias: {metric.words} ({name}) of {facet} is {value:.2f}, {how} bias.bounds.{name}.{kind} {limit:g}"


def judge_bias(decision: PromotionDecision, document: dict | None, bias: BiasSpec) -> PromotionDecision:
    """A figure outside the spec's bias bounds (or one that cannot be shown) keeps the champion; the reason names
    each facet, metric and bound, then what the objective alone would have decided."""
    findings = bias_findings(document, bias)
    if not findings:
        return decision
    shown = findings[:MAX_BIAS_FINDINGS]
    more = f"; and {len(findings) - len(shown)} more (see the evaluation report)" if len(findings) > len(shown) else ""
    return PromotionDecision(False, decision.value, decision.champion_value,
                             f"{'; '.join(shown)}{more}; not promoted (objective: {decision.reason})")


def lineage(state: dict, release=None) -> dict[str, str]:
    """CustomerMetadataProperties for the model package: every value a string in SageMaker's alphabet (checked).
    release (lambdas.shared.dal.Release): the released artifact's sha256 and S3 version."""
    run, validation, training, evaluation = state["run"], state["validation"], state["training"], state["evaluation"]
    return checked({
        "git_commit": run["git_commit"], "execution_arn": run["execution_arn"], "trigger": run["trigger"],
        "requested_by": run["requested_by"], "dataset_uri": validation["dataset_uri"],
        "dataset_version_id": validation["version_id"] or "unversioned", "dataset_sha256": validation["sha256"],
        "dataset_rows": str(validation["rows"]), "training_job_arn": training["job_arn"],
        # What the job trained with: a tuned run's best trial got the static ones and those the search chose.
        "hyperparameters": encode_pairs(decoded_hyperparameters(training.get("hyperparameters") or run["hyperparameters"])),
        "metrics": encode_pairs({k: round(float(v), 6) for k, v in evaluation["metrics"].items()}),
        "champion_package_arn": evaluation.get("champion_arn") or "none",
        # The two numbers the decision compared, both measured on this run's validation rows.
        "objective": evaluation.get("objective") or "none",
        "challenger_value": _number(evaluation.get("value")),
        "champion_value_same_data": _number(evaluation.get("champion_value")),
        # The run's own source snapshot: with the dataset version and the hyperparameters, what reproduces it.
        "source_uri": run.get("source_uri") or "none",
        # Experiment tracking: the MLflow run of this version (its tags lead back here by model package ARN).
        "mlflow_run_id": evaluation.get("mlflow_run_id") or "none",
        "mlflow_experiment_id": evaluation.get("mlflow_experiment_id") or "none",
        **tuning_lineage(state.get("tuning")),
        **({"reproduces": run["reproduces"]} if run.get("reproduces") else {}),
        # What the requester said they trained, unverified; git_commit above is the deployed source's.
        **({"claimed_git_commit": run["claimed_git_commit"]} if run.get("claimed_git_commit") else {}),
        **({naming.ARTIFACT_SHA256_KEY: release.sha256, naming.ARTIFACT_VERSION_KEY: release.version_id}
           if release is not None else {}),
    })


def tuning_lineage(tuning: dict | None) -> dict[str, str]:
    """The tuning job and the trial that won it, when the run tuned."""
    if not tuning:
        return {}
    objective = tuning.get("best_objective") or {}
    counts = tuning.get("training_job_counts") or {}
    return {"tuning_job_arn": tuning.get("job_arn", ""), "tuning_strategy": tuning.get("strategy", ""),
            "tuning_best_trial": tuning.get("best_training_job", ""),
            "tuning_best_objective": _number(objective.get("Value")),
            "tuning_trials_completed": str(counts.get("Completed", 0))}


def _number(value) -> str:
    return "none" if value is None else f"{float(value):.6g}"


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
        if state["evaluation"].get("tracking_error"):  # the run went on; its experiment is not in MLflow
            lines.append(f"Experiment tracking: FAILED: {one_line(state['evaluation']['tracking_error'], 1000)} "
                         "(the version's lineage says mlflow_run_id none)")
        if warning := leakage_warning(state["evaluation"].get("validation_overlap")):
            lines.append(f"Data: WARNING: {warning}")
    if "registration" in state:
        lines.append(f"Model package: {one_line(state['registration'].get('model_package_arn'))}")
    return f"[{model}] retraining {one_line(outcome)}", "\n".join(lines)

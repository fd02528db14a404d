"""The per-model spec (`pipelines/<model>/model.yaml`) and the environments from cdk.json.

Everything a construct, a handler or the local mode needs about a model is read from here, and
validated before anything is built: a bad spec raises `SpecError` naming the file, the field and
the fix.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines import instances, naming

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR_VARIABLE = "MLOPS_MODELS_DIR"
DEFAULT_MODELS_DIR = REPO_ROOT / "pipelines"
SPEC_FILENAME = "model.yaml"

_MODEL_NAME = re.compile(naming.MODEL_NAME_PATTERN)
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
# EventBridge cron fields: (name, allowed characters, lowest, highest number)
_CRON_FIELDS = (("minutes", r"[0-9,*/-]+", 0, 59), ("hours", r"[0-9,*/-]+", 0, 23),
                ("day-of-month", r"[0-9,*/?LW-]+", 1, 31), ("month", r"[0-9A-Za-z,*/-]+", 1, 12),
                ("day-of-week", r"[0-9A-Za-z,*/?L#-]+", 1, 7), ("year", r"[0-9,*/-]+", 1970, 2199))
_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{1,15}$")
# C0 controls and DEL, and Unicode's bidirectional embedding, override and isolate controls (U+202A-U+202E,
# U+2066-U+2069): those reorder how the text around them is displayed, so "txt.exe" can read as "exe.txt" in an
# email or a page (the "Trojan Source" attack, CVE-2021-42574).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
MAX_SPEC_BYTES = 256 * 1024
MAX_YAML_ALIASES = 16
SAGEMAKER_MAX_WAIT_S = 28 * 24 * 3600  # CreateTrainingJob StoppingCondition.MaxWaitTimeInSeconds
STATE_MACHINE_MAX_S = 365 * 24 * 3600  # Step Functions standard workflows run at most one year
SIGNING_KEY_ROTATION_DAYS = 30  # the approval link key rotates this often (stacks/constructs/approval.py)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


class SpecError(ValueError):
    """A spec or environment that cannot be used; the message names the file, the field and the fix."""


def models_dir() -> Path:
    """The folder of model folders: MLOPS_MODELS_DIR when set (models kept outside this repository), else the
    repository's pipelines/. Read when called, so the CLI, the local server (a subprocess: it inherits the
    environment), the local mode and synthesis all look in the same place. A folder that does not exist is a
    SpecError saying so, not an empty list of models."""
    configured = os.environ.get(MODELS_DIR_VARIABLE, "").strip()
    if not configured:
        return DEFAULT_MODELS_DIR
    path = Path(configured).expanduser().resolve()
    if not path.is_dir():
        raise SpecError(f"{MODELS_DIR_VARIABLE}={configured}: no such folder; fix: point it at the folder that holds "
                        f"your model folders (<folder>/<model>/{SPEC_FILENAME}), or unset it to use {DEFAULT_MODELS_DIR}")
    return path


def control_character(text: str) -> str | None:
    """The first control character (below 0x20, 0x7f, or a bidirectional control) in text, as U+XXXX; None when there
    is none."""
    found = _CONTROL.search(text)
    return f"U+{ord(found.group()):04X}" if found else None


def refuse_control_characters(value: Any, where: str) -> None:
    if isinstance(value, str):
        bad = control_character(value)
        if bad:
            kind = "a bidirectional text control, which reorders what is displayed" if int(bad[2:], 16) >= 0x202a \
                else "a newline, tab or similar"
            raise ValueError(f"{where} contains the control character {bad} ({kind}); "
                             "fix: keep it on one line of printable characters")
    elif isinstance(value, (list, tuple)):
        for item in value:
            refuse_control_characters(item, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_control_characters(key, where)
            if not isinstance(item, dict):  # nested specs check their own fields
                refuse_control_characters(item, f"{where}.{key}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        """Names, keys, prefixes and free text end up in emails, ARNs, tags and logs: one line each."""
        if isinstance(data, dict):
            for name, value in data.items():
                if isinstance(value, (str, list, tuple)) or (isinstance(value, dict) and name == "hyperparameters"):
                    refuse_control_characters(value, str(name))
        return data


class DatasetSpec(_Strict):
    label: str
    features: list[str] = Field(min_length=1)
    categorical: list[str] = Field(default_factory=list)
    s3_prefix: str = Field(description="Key prefix inside the artifact bucket, e.g. datasets/churn/")
    file_name: str = "train.csv"
    min_rows: int = Field(default=1000, ge=1)
    max_null_fraction: float = Field(default=0.01, ge=0, le=1)
    min_minority_share: float = Field(default=0.05, ge=0, le=0.5)
    max_validation_overlap: float = Field(
        default=0.05, ge=0, le=1,
        description="The largest share of validation rows whose features exactly equal a training row's (duplicates "
                    "in both splits: resampled or repeated data) that still lets a run be promoted; any overlap is "
                    "a warning in the run's outcome and email")

    @model_validator(mode="after")
    def _categorical_are_features(self) -> DatasetSpec:
        unknown = sorted(set(self.categorical) - set(self.features))
        if unknown:
            raise ValueError(f"categorical columns {unknown} are not in features; fix: add them to features")
        if self.label in self.features:
            raise ValueError(f"the label '{self.label}' is also listed as a feature; fix: remove it from features")
        return self


class HyperparameterRange(_Strict):
    """What a run may set a hyperparameter to; checked when the run is prepared, not inside the job."""

    type: Literal["int", "float", "bool", "str"] | None = Field(default=None, description="Default: the default value's type")
    min: float | None = None
    max: float | None = None
    choices: list[str | int | float | bool] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _bounds(self) -> HyperparameterRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g}); fix: swap them")
        if (self.min is not None or self.max is not None) and self.type in ("bool", "str"):
            raise ValueError(f"min/max apply to numbers, not to type {self.type}; fix: use choices")
        return self


_KIND_WORDS = {"bool": "true or false", "int": "an integer", "float": "a finite number",
               "str": "a string of at most 256 printable characters"}


def _type_of(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float"}.get(type(value), "str")


def check_hyperparameter(name: str, value: Any, default: Any, allowed: HyperparameterRange | None) -> Any:
    """value when it has the declared type and lies in the declared range; ValueError naming the parameter otherwise.
    Without a declared type the default value's type is the type (an int default takes ints, a float default numbers)."""
    kind = (allowed.type if allowed and allowed.type else None) or _type_of(default)
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, str) and control_character(value) is None and len(value) <= 256
    if not ok:
        raise ValueError(f"hyperparameter '{name}' must be {_KIND_WORDS[kind]}, got {value!r:.80}")
    if allowed is None:
        return value
    if allowed.min is not None and value < allowed.min:
        raise ValueError(f"hyperparameter '{name}' must be at least {allowed.min:g}, got {value!r}")
    if allowed.max is not None and value > allowed.max:
        raise ValueError(f"hyperparameter '{name}' must be at most {allowed.max:g}, got {value!r}")
    if allowed.choices is not None and value not in allowed.choices:
        raise ValueError(f"hyperparameter '{name}' must be one of {allowed.choices}, got {value!r:.80}")
    return value


# Framework -> (default framework_version, default py_version) of the SageMaker framework containers: versions the
# SageMaker SDK's bundled image catalogue knows for training and for inference (checked offline at synthesis).
FRAMEWORK_DEFAULTS: dict[str, tuple[str | None, str | None]] = {
    "pytorch": ("2.5", "py311"), "xgboost": ("3.0-5", "py3"), "sklearn": ("1.2-1", "py3"), "byo": (None, None)}
# Families of accelerated instances: the scikit-learn containers are CPU only.
_ACCELERATED_FAMILY = re.compile(r"^ml\.(p\d|g\d|trn\d|inf\d|dl\d)")
_ECR_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9][a-z0-9._/-]*"
                        r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$")


class TrainingSpec(_Strict):
    entry_point: str = "train.py"
    framework: Literal["pytorch", "xgboost", "sklearn", "byo"] = Field(
        default="pytorch", description="pytorch, xgboost or sklearn (SageMaker's framework containers, script mode), "
                                       "or byo: your own image (image_uri) following the same script-mode contract")
    framework_version: str | None = Field(default=None, description="Default per framework: FRAMEWORK_DEFAULTS")
    py_version: str | None = Field(default=None, description="Default per framework: FRAMEWORK_DEFAULTS")
    image_uri: str | None = Field(default=None, description="An ECR training image instead of the framework's "
                                                           "(required for byo)")
    inference_image_uri: str | None = Field(default=None, description="An ECR serving image instead of the framework's "
                                                                     "(byo default: image_uri)")
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = Field(default=1, ge=1, le=32)
    use_spot: bool = True
    max_runtime_s: int = Field(default=3600, ge=60, le=28 * 24 * 3600)
    max_wait_s: int | None = Field(default=None, ge=60, le=SAGEMAKER_MAX_WAIT_S,
                                   description="Spot only; defaults to twice max_runtime_s (at most 28 days)")
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    network_isolation: bool = True
    subnet_ids: list[str] = Field(default_factory=list)
    security_group_ids: list[str] = Field(default_factory=list)
    hyperparameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    hyperparameter_ranges: dict[str, HyperparameterRange] = Field(
        default_factory=dict, description="Per hyperparameter: type, min, max, choices a run may override it with")

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        return _check_instance_type(value, "training")

    @model_validator(mode="before")
    @classmethod
    def _framework_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            version, python = FRAMEWORK_DEFAULTS.get(data.get("framework") or "pytorch", (None, None))
            data = {**data, "framework_version": data.get("framework_version") or version,
                    "py_version": data.get("py_version") or python}
        return data

    @model_validator(mode="after")
    def _framework(self) -> TrainingSpec:
        for field in ("image_uri", "inference_image_uri"):
            value = getattr(self, field)
            if value is not None and not _ECR_IMAGE.match(value):
                raise ValueError(f"{field} '{value}' is not an ECR image URI; fix: use "
                                 "<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>")
        if self.framework == "byo" and not self.image_uri:
            raise ValueError("framework 'byo' (bring your own image) needs training.image_uri; fix: set image_uri to "
                             "your ECR image (built on the SageMaker training toolkit), or use pytorch, xgboost or sklearn")
        if self.framework == "sklearn" and not self.image_uri and _ACCELERATED_FAMILY.match(self.instance_type):
            raise ValueError(f"the scikit-learn containers run on CPU only, not on {self.instance_type}; "
                             "fix: use a CPU instance type such as ml.m5.xlarge")
        return self

    @property
    def serving_image_uri(self) -> str | None:
        """The spec's own serving image, when it names one (byo: the training image unless told otherwise)."""
        return self.inference_image_uri or (self.image_uri if self.framework == "byo" else None)

    @model_validator(mode="after")
    def _ranges(self) -> TrainingSpec:
        unknown = sorted(set(self.hyperparameter_ranges) - set(self.hyperparameters))
        if unknown:
            raise ValueError(f"hyperparameter_ranges {unknown} have no default in hyperparameters; fix: add a default")
        for name, default in self.hyperparameters.items():
            if isinstance(default, float) and not math.isfinite(default):
                raise ValueError(f"hyperparameter '{name}' is {default}; fix: use a finite number")
            allowed = self.hyperparameter_ranges.get(name)
            if allowed and allowed.type == "int" and isinstance(default, float):
                raise ValueError(f"hyperparameter '{name}' is declared int but its default is {default}; fix: make them agree")
            try:
                check_hyperparameter(name, default, default, allowed)
            except ValueError as exc:
                raise ValueError(f"the default: {exc}; fix: make the default lie in its range") from None
        return self

    def check_override(self, name: str, value: Any) -> Any:
        """A run's override of a declared hyperparameter, typed and ranged; ValueError naming it otherwise."""
        return check_hyperparameter(name, value, self.hyperparameters[name], self.hyperparameter_ranges.get(name))

    @model_validator(mode="after")
    def _spot_wait(self) -> TrainingSpec:
        if self.max_wait_s is not None:
            if not self.use_spot:
                raise ValueError("max_wait_s only applies to spot training; fix: set use_spot: true or drop max_wait_s")
            if self.max_wait_s < self.max_runtime_s:
                raise ValueError("max_wait_s must be >= max_runtime_s; fix: raise max_wait_s")
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise ValueError("subnet_ids and security_group_ids go together; fix: give both or neither")
        return self

    @property
    def effective_max_wait_s(self) -> int | None:
        if not self.use_spot:
            return None
        return self.max_wait_s or min(2 * self.max_runtime_s, SAGEMAKER_MAX_WAIT_S)


TaskType = Literal["binary", "multiclass", "regression", "custom"]
# The metrics the shared model kit (pipelines/modelkit/metrics.py) writes for each task type, and which way is better.
TASK_METRICS: dict[str, dict[str, str]] = {
    "binary": {"auc": "maximize", "accuracy": "maximize", "logloss": "minimize", "precision": "maximize",
               "recall": "maximize", "f1": "maximize"},
    "multiclass": {"accuracy": "maximize", "macro_f1": "maximize", "logloss": "minimize"},
    "regression": {"rmse": "minimize", "mae": "minimize", "r2": "maximize", "mape": "minimize"},
    "custom": {},
}
# Shown beside the objective in every table and summary.
TASK_COLUMNS: dict[str, tuple[str, ...]] = {"binary": ("auc", "accuracy"), "multiclass": ("accuracy", "macro_f1"),
                                            "regression": ("rmse", "mae", "r2"), "custom": ()}
MAX_CLASSES = 1000


class CustomTaskSpec(_Strict):
    """A task the platform has no built-in checks for: the spec declares them."""

    label_pattern: str = Field(description="Regular expression every label must match in full, e.g. '[A-Z]{3}'")
    min_distinct_labels: int = Field(default=1, ge=1, le=MAX_CLASSES)
    prediction_fields: list[str] = Field(min_length=1, description="Keys every prediction object must carry")
    metrics: list[str] = Field(default_factory=list, description="Extra metric columns (full names) for tables")

    @field_validator("label_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc}); fix: escape special characters") from exc
        return value


class TaskSpec(_Strict):
    """What the model predicts; it decides label validation, the smoke test's response check and the metrics."""

    type: TaskType = "binary"
    classes: list[str] | None = Field(default=None, description="multiclass: the labels as written in the data "
                                                                "(default: those the data holds, at least 2)")
    label_min: float | None = Field(default=None, description="regression: the lowest valid label")
    label_max: float | None = Field(default=None, description="regression: the highest valid label")
    custom: CustomTaskSpec | None = Field(default=None, description="custom: the declared checks (required)")

    @model_validator(mode="before")
    @classmethod
    def _classes_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("classes"), list):  # YAML reads 1, 2, 3 as numbers
            return {**data, "classes": [str(c) for c in data["classes"]]}
        return data

    @model_validator(mode="after")
    def _fields_of_the_type(self) -> TaskSpec:
        if self.classes is not None:
            if self.type != "multiclass":
                raise ValueError(f"task.classes applies to multiclass, not {self.type}; fix: remove classes")
            if len(set(self.classes)) != len(self.classes) or not 2 <= len(self.classes) <= MAX_CLASSES:
                raise ValueError(f"task.classes must list 2-{MAX_CLASSES} distinct labels; fix: list each class once")
        if (self.label_min is not None or self.label_max is not None) and self.type != "regression":
            raise ValueError(f"task.label_min/label_max apply to regression, not {self.type}; fix: remove them")
        if self.label_min is not None and self.label_max is not None and self.label_min >= self.label_max:
            raise ValueError(f"task.label_min ({self.label_min:g}) must be below label_max ({self.label_max:g}); "
                             "fix: swap them")
        if (self.custom is None) == (self.type == "custom"):
            raise ValueError("task.custom declares the checks of a custom task and only of one; fix: "
                             + ("add task.custom (label_pattern, prediction_fields)" if self.type == "custom"
                                else "remove task.custom or set type: custom"))
        return self


# Differences this small are float noise (the same predictions scored twice), never an improvement.
TIE_TOLERANCE = 1e-9


class ObjectiveSpec(_Strict):
    metric: str
    regex: str
    direction: Literal["maximize", "minimize"] = "maximize"
    minimum: float | None = Field(default=None, description="Worst acceptable value (a maximum when minimizing)")
    champion_margin: float = Field(default=0.0, ge=0, description="How much a challenger must beat the champion by: "
                                   "strictly more than this (a tie, or an improvement of exactly the margin, keeps "
                                   "the champion)")

    @field_validator("regex")
    @classmethod
    def _regex_has_group(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc}); fix: escape special characters") from exc
        if compiled.groups != 1:
            raise ValueError("the regex must capture the metric value in exactly one group, e.g. 'auc=([0-9.]+)'")
        return value

    def passes_minimum(self, value: float) -> bool:
        if self.minimum is None:
            return True
        return value >= self.minimum if self.direction == "maximize" else value <= self.minimum

    def beats(self, challenger: float, champion: float | None) -> bool:
        """Strictly better than the champion by more than champion_margin: a model that is no better (a tie, or
        float noise around one) is never put before an approver."""
        if champion is None:
            return True
        return self.improvement(challenger, champion) > self.champion_margin + TIE_TOLERANCE

    def improvement(self, challenger: float, champion: float) -> float:
        """How much better the challenger is (positive: better), whichever the direction."""
        return challenger - champion if self.direction == "maximize" else champion - challenger


class StageApprovalSpec(_Strict):
    """Who approves this model into one promotion stage (an environment of cdk.json's mlops:delivery.promotion):
    the same rules as approval.approvers and approval.principals, applied in that stage's account."""

    approvers: list[str] = Field(min_length=1)
    principals: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("approvers")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        return ApprovalSpec._emails(value)

    @field_validator("principals")
    @classmethod
    def _lowercase_emails(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return ApprovalSpec._lowercase_emails(value)

    @model_validator(mode="after")
    def _principals_of_listed_approvers(self) -> "StageApprovalSpec":
        return ApprovalSpec._principals_of_listed_approvers(self)


class ApprovalSpec(_Strict):
    approvers: list[str] = Field(min_length=1)
    timeout_hours: float = Field(
        default=24, ge=0.25, le=24 * SIGNING_KEY_ROTATION_DAYS,
        description="At least 15 minutes (a person must have time to answer; Step Functions' TimeoutSeconds is a "
                    "whole number); at most the signing key's rotation period, so a link outlives one rotation")
    reserved_concurrency: int | None = Field(
        default=None, ge=1, le=100,
        description="Reserved concurrency of the environment's approval-link function, set in the environment's "
                    "overrides (every model of the environment shares the function). Off by default: Lambda refuses "
                    "any reservation in accounts whose concurrency quota is 10 (new accounts), as 10 must stay unreserved")
    max_link_requests_per_minute: int = Field(
        default=30, ge=1, le=10_000, description="Requests one client address may make to the approval URL per minute")

    @field_validator("approvers")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [email for email in value if not _EMAIL.match(email)]
        if bad:
            raise ValueError(f"{bad} are not email addresses; fix: list approvers as name@domain")
        lowered = [email.lower() for email in value]
        duplicates = sorted({email for email in lowered if lowered.count(email) > 1})
        if duplicates:
            raise ValueError(f"{duplicates} listed more than once (case does not matter); fix: list each approver once")
        return lowered

    principals: dict[str, list[str]] = Field(
        default_factory=dict,
        description="approver email -> IAM principal ARN patterns ('*' wildcards) that act as them for CLI approvals; "
                    "approvers not listed here: the session name is their email and the role is the environment's approver role")

    @field_validator("principals")
    @classmethod
    def _lowercase_emails(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {email.lower(): patterns for email, patterns in value.items()}

    stages: dict[str, StageApprovalSpec] = Field(
        default_factory=dict,
        description="promotion stage (environment name) -> its own approvers (and principals); a stage not listed "
                    "here is approved by approval.approvers (docs/promotion.md)")

    @field_validator("stages")
    @classmethod
    def _stage_names(cls, value: dict[str, StageApprovalSpec]) -> dict[str, StageApprovalSpec]:
        bad = sorted(name for name in value if not _ENV_NAME.match(name))
        if bad:
            raise ValueError(f"approval.stages {bad} are not environment names; fix: use the names of cdk.json's "
                             "mlops:environments (e.g. staging, prod)")
        return value

    @model_validator(mode="after")
    def _principals_of_listed_approvers(self) -> "ApprovalSpec":
        strangers = sorted(set(self.principals) - set(self.approvers))
        if strangers:
            raise ValueError(f"approval.principals names {strangers}, who are not approvers; fix: list them in approvers")
        bad = [p for patterns in self.principals.values() for p in patterns if not _PRINCIPAL_PATTERN.match(p)]
        if bad or any(not patterns for patterns in self.principals.values()):
            raise ValueError(f"approval.principals: {bad or 'an empty list'} is not a list of IAM principal ARN patterns; "
                             "fix: e.g. arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Approver_*/you@example.com")
        anyone = [p for patterns in self.principals.values() for p in patterns if "*" in p.rsplit("/", 1)[-1]]
        if anyone:
            raise ValueError(f"approval.principals: {anyone} match any user or session name, so anyone on that role "
                             "would act as the approver; fix: end each pattern with the approver's own user or session "
                             "name, e.g. .../AWSReservedSSO_Approver_*/you@example.com")
        return self


# arn:aws:sts::<account or *>:assumed-role/<role>/<session> (or iam user/role); printable, no spaces or control chars.
_PRINCIPAL_PATTERN = re.compile(r"^arn:aws(-[a-z]+)*:(sts|iam)::(\d{12}|\*):(assumed-role|user|role)/[!-~]+$")


class AlarmSpec(_Strict):
    max_5xx_rate: float = Field(default=0.01, gt=0, le=1)
    max_p99_latency_ms: float = Field(default=500, gt=0)
    evaluation_minutes: int = Field(default=5, ge=1, le=60)


class ServerlessSpec(_Strict):
    memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 2048
    max_concurrency: int = Field(default=5, ge=1, le=200)


class SharedCopySpec(_Strict):
    """One copy of a shared-hosted model: an inference component on the environment's shared endpoint
    (SageMaker InferenceComponentComputeResourceRequirements: at least 128 MB and 0.25 cores)."""

    memory_mb: int = Field(default=1024, ge=128, description="MinMemoryRequiredInMb of one copy")
    cpus: float = Field(default=1.0, ge=0.25, description="NumberOfCpuCoresRequired of one copy")
    min_copies: int = Field(default=0, ge=0, description="0: a model that serves nothing holds no capacity (the first "
                                                          "request after idle waits for a copy to start)")
    max_copies: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _copies(self) -> SharedCopySpec:
        if self.max_copies < self.min_copies:
            raise ValueError(f"max_copies ({self.max_copies}) is below min_copies ({self.min_copies}); fix: raise max_copies")
        return self


class DeploymentSpec(_Strict):
    hosting: Literal["dedicated", "shared"] = Field(
        default="dedicated", description="dedicated: the model's own endpoint and instances; shared: an inference "
                                         "component on the environment's shared endpoint (cdk.json shared_hosting)")
    shared: SharedCopySpec = Field(default_factory=SharedCopySpec, description="Copies and their size when hosting: shared")
    instance_type: str = "ml.m5.large"
    min_capacity: int = Field(default=1, ge=1)
    max_capacity: int = Field(default=4, ge=1)
    target_invocations_per_instance: int = Field(default=200, ge=1)
    strategy: Literal["canary", "linear", "all_at_once"] | None = Field(
        default=None, description="Blue/green traffic shifting; default canary, all_at_once for serverless")
    canary_percent: int = Field(default=10, ge=1, le=50)
    linear_step_percent: int = Field(default=20, ge=10, le=50)
    wait_minutes: int = Field(default=5, ge=0, le=60)
    bake_minutes: int = Field(default=10, ge=0, le=180)
    data_capture_percent: int = Field(default=20, ge=0, le=100)
    alarms: AlarmSpec = Field(default_factory=AlarmSpec)
    serverless: ServerlessSpec | None = None
    batch_transform: bool = False

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        return _check_instance_type(value, "hosting")

    @model_validator(mode="before")
    @classmethod
    def _default_strategy(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("strategy") is None:
            return {**data, "strategy": "all_at_once" if data.get("serverless") else "canary"}
        return data

    @model_validator(mode="after")
    def _capacity(self) -> DeploymentSpec:
        if self.max_capacity < self.min_capacity:
            raise ValueError(
                f"max_capacity ({self.max_capacity}) is below min_capacity ({self.min_capacity}); "
                "fix: raise max_capacity"
            )
        if self.batch_transform:
            _check_instance_type(self.instance_type, "transform")
        return self

    @model_validator(mode="after")
    def _traffic_shifting(self) -> DeploymentSpec:
        """UpdateEndpoint's TrafficRoutingConfig: a canary is at most 50% of the variant's instances, a linear
        step 10-50%, and either must be at least one instance of the smallest fleet (min_capacity)."""
        if self.serverless or self.strategy == "all_at_once" or self.hosting == "shared":
            return self  # an inference component's rolling update moves copies, whatever their number
        percent = self.canary_percent if self.strategy == "canary" else self.linear_step_percent
        field = "canary_percent" if self.strategy == "canary" else "linear_step_percent"
        if self.min_capacity * percent / 100 < 1:
            needed = -(-100 // percent)
            raise ValueError(
                f"a {percent}% {self.strategy} step of {self.min_capacity} instance(s) is less than one instance, and "
                f"SageMaker's UpdateEndpoint needs each step to be a whole instance and at most 50% of the variant; "
                f"fix: raise min_capacity to {max(needed, 2)}, raise {field} (at most 50), or use strategy: all_at_once")
        return self

    @model_validator(mode="after")
    def _serverless_exclusions(self) -> DeploymentSpec:
        """SageMaker Serverless Inference, "Feature exclusions": no data capture, GPUs, VPC, network isolation,
        Model Monitor or multiple variants; traffic shifts all at once (no canary or linear steps)."""
        if not self.serverless:
            return self
        if self.hosting == "shared":
            raise ValueError("a model is either serverless or shared-hosted (an inference component needs instances); "
                             "fix: drop deployment.serverless or set deployment.hosting: dedicated")
        if self.data_capture_percent > 0:
            raise ValueError("serverless endpoints do not support data capture (and so no drift monitoring); "
                             "fix: set deployment.data_capture_percent: 0 and drift.enabled: false, or drop serverless")
        if self.strategy != "all_at_once":
            raise ValueError(f"serverless endpoints shift traffic all at once, not '{self.strategy}'; "
                             "fix: set deployment.strategy: all_at_once (or leave it out)")
        return self


class DriftSpec(_Strict):
    enabled: bool = Field(default=True, description="Scheduled drift checks of the production endpoint's captured traffic")
    schedule: str = "rate(1 hour)"
    window_hours: float = Field(default=24, gt=0, le=24 * 31)
    features: list[str] | None = Field(default=None, description="Features to watch; default all")
    psi_threshold: float = Field(default=0.2, gt=0)
    js_threshold: float = Field(default=0.1, gt=0, le=1)
    p_value: float = Field(default=0.01, gt=0, lt=1)
    min_drifted_features: int = Field(default=1, ge=1)
    min_rows: int = Field(default=200, ge=1)
    cooldown_hours: float = Field(default=24, ge=0)
    retrain: bool = True

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return check_schedule(value)


def rate_minutes(expression: str) -> int | None:
    """A rate expression's period in minutes (rate(2 hours): 120); None for a cron."""
    rate = _RATE.match(expression)
    return int(rate.group(1)) * {"minute": 1, "hour": 60, "day": 1_440}[rate.group(2).rstrip("s")] if rate else None


def check_schedule(value: str) -> str:
    """An EventBridge schedule expression EventBridge accepts: rate(1 hour), rate(5 minutes), or a six-field cron
    with '?' in exactly one of day-of-month and day-of-week."""
    rate, cron = _RATE.match(value), _CRON.match(value)
    if rate:
        number, unit = int(rate.group(1)), rate.group(2)
        if number < 1:
            raise ValueError(f"'{value}': a rate must be at least 1; fix: e.g. 'rate(1 hour)'")
        singular = not unit.endswith("s")
        if (number == 1) != singular:
            fixed = unit.rstrip("s") if number == 1 else unit + "s"
            raise ValueError(f"'{value}': EventBridge wants the {'singular' if number == 1 else 'plural'} unit here; "
                             f"fix: 'rate({number} {fixed})'")
        return value
    if cron:
        fields = cron.group(1).split()
        if len(fields) != 6:
            raise ValueError(f"'{value}' has {len(fields)} cron fields, EventBridge needs 6 (minutes hours day-of-month "
                             "month day-of-week year); fix: e.g. 'cron(0 3 ? * MON *)'")
        for text, (name, allowed, lowest, highest) in zip(fields, _CRON_FIELDS):
            if not re.fullmatch(allowed, text):
                raise ValueError(f"'{value}': the {name} field '{text}' has characters EventBridge refuses; "
                                 "fix: see the EventBridge cron expression reference")
            numbers = [int(n) for n in re.findall(r"(?<![#/0-9])\d+", text)]
            if any(n < lowest or n > highest for n in numbers):
                raise ValueError(f"'{value}': the {name} field '{text}' must lie in {lowest}-{highest}; fix: correct it")
        if (fields[2] == "?") == (fields[4] == "?"):
            raise ValueError(f"'{value}': exactly one of day-of-month and day-of-week must be '?'; "
                             "fix: e.g. 'cron(0 3 ? * MON *)' or 'cron(0 3 1 * ? *)'")
        return value
    raise ValueError(f"'{value}' is not an EventBridge schedule; fix: use 'rate(1 hour)' or 'cron(0 * * * ? *)'")


class QualitySpec(_Strict):
    """Model quality against ground truth: labels joined to captured predictions per window (lambdas/quality). A
    retraining it starts shares drift's cooldown (drift.cooldown_hours): one run for a model gone wrong."""

    enabled: bool = Field(default=True, description="Scheduled quality checks of the serving target's labelled traffic")
    schedule: str = Field(default="rate(1 day)", description="How often a window is judged: every window_hours fits")
    tolerance: float = Field(default=0.02, ge=0, description="The absolute drop of the objective metric that matters "
                                                               "(in its units: auc points, rmse in the label's units)")
    min_labels: int = Field(default=200, ge=1, description="No verdict from a window with fewer joined labels")
    window_hours: float = Field(default=24, gt=0, le=24 * 31)
    label_delay_hours: float = Field(default=72, ge=0, description="How long after a window's end its labels may arrive")
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="One-sided bootstrap confidence of a drop")
    retrain: bool = True

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return check_schedule(value)

    @model_validator(mode="after")
    def _one_window_a_check(self) -> QualitySpec:
        """A rate must judge each window once: faster re-judges overlapping windows (a drop told again at every check,
        labels of the window before counted as its), slower leaves windows unjudged. A cron is the person's choice."""
        minutes = rate_minutes(self.schedule)
        if minutes is not None:
            hours = minutes / 60
            if not math.isclose(hours, self.window_hours):
                raise ValueError(f"quality.schedule {self.schedule} judges a window every {hours:g} h, but "
                                 f"quality.window_hours is {self.window_hours:g}: each window must be judged once; fix: "
                                 f"schedule: rate({self.window_hours:g} hours) or window_hours: {hours:g}")
        return self


# The bias metrics the model kit computes (pipelines/modelkit/bias_terms.py: the kit is packed alone into the training
# job and cannot import the spec, and the spec, the layer below it, imports no kit module: tests/unit/test_layers.py;
# tests/unit/test_bias_bounds.py keeps the two lists equal).
BIAS_METRICS = {"CI": "class imbalance", "DPL": "difference in positive proportions in labels",
                "DI": "disparate impact", "DPPL": "difference in positive proportions in predicted labels"}


class BiasBound(_Strict):
    """The values a bias metric may take on every facet of every sensitive attribute; outside them the evaluate step
    keeps the champion and says which facet missed which bound."""

    min: float | None = None
    max: float | None = None
    max_abs: float | None = Field(default=None, ge=0, description="The largest distance from 0 either way")

    @model_validator(mode="after")
    def _one_bound_at_least(self) -> BiasBound:
        if self.min is None and self.max is None and self.max_abs is None:
            raise ValueError("a bound needs min, max or max_abs; fix: e.g. {min: 0.8, max: 1.25}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g}); fix: swap them")
        return self

    def missed(self, value: float) -> tuple[str, float] | None:
        """('min'|'max'|'max_abs', the bound) that value misses, or None."""
        if self.min is not None and value < self.min:
            return "min", self.min
        if self.max is not None and value > self.max:
            return "max", self.max
        if self.max_abs is not None and abs(value) > self.max_abs:
            return "max_abs", self.max_abs
        return None

    @property
    def words(self) -> str:
        """The bound for people: "0.8 to 1.25", "at least 0.8", "within ±0.15"."""
        parts = [f"{self.min:g} to {self.max:g}" if self.min is not None and self.max is not None else
                 f"at least {self.min:g}" if self.min is not None else f"at most {self.max:g}" if self.max is not None
                 else "", f"within ±{self.max_abs:g}" if self.max_abs is not None else ""]
        return " and ".join(part for part in parts if part)


class SensitiveAttribute(_Strict):
    """A column whose groups the bias figures compare (Clarify's facet): each group (facet d) against all other rows
    (facet a). A dataset feature, or another column of the training CSV that the model does not use."""

    name: str = Field(min_length=1)
    threshold: float | None = Field(default=None, description="Numeric: the sensitive group is the rows whose value "
                                                               "is above it (Clarify's interval (threshold, max])")
    values: list[str] | None = Field(default=None, min_length=1, description="Categorical: the groups to report "
                                                                             "(default: every value in the data)")

    @model_validator(mode="before")
    @classmethod
    def _values_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("values"), list):  # YAML reads 1, 2 as numbers
            return {**data, "values": [str(v) for v in data["values"]]}
        return data

    @model_validator(mode="after")
    def _threshold_or_values(self) -> SensitiveAttribute:
        if self.threshold is not None and self.values is not None:
            raise ValueError(f"'{self.name}': threshold (a numeric column) and values (a categorical one) exclude each "
                             "other; fix: keep one")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError(f"'{self.name}': the threshold must be a finite number")
        return self


class BiasSpec(_Strict):
    """Bias figures of the training data and the trained model per sensitive attribute (SageMaker Clarify's metrics
    and analysis.json shape, computed by the model kit) and the bounds a run must keep to be promoted."""

    sensitive_attributes: list[SensitiveAttribute] = Field(default_factory=list)
    positive_label: str | None = Field(default=None, description="The favourable outcome: binary '0' or '1' (default "
                                                                 "'1'); multiclass: one of the classes (required)")
    label_threshold: float | None = Field(default=None, description="Regression: a label or prediction above it is "
                                                                    "the positive outcome (default: the training "
                                                                    "labels' median)")
    bounds: dict[str, BiasBound] = Field(default_factory=dict, description=(
        "Metric name -> bound, checked on every facet: " + ", ".join(f"{k} ({v})" for k, v in BIAS_METRICS.items())))

    @model_validator(mode="before")
    @classmethod
    def _positive_label_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("positive_label"), (int, float)):
            return {**data, "positive_label": str(data["positive_label"])}
        return data

    @field_validator("label_threshold")
    @classmethod
    def _finite_threshold(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("the label threshold must be a finite number")
        return value

    @field_validator("bounds")
    @classmethod
    def _known_metrics(cls, value: dict[str, BiasBound]) -> dict[str, BiasBound]:
        for name in value:
            if name not in BIAS_METRICS:
                close = difflib.get_close_matches(name.upper(), list(BIAS_METRICS), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ValueError(f"'{name}' is not a bias metric the model kit computes; fix: {hint}one of "
                                 f"{', '.join(BIAS_METRICS)}")
        return value

    @model_validator(mode="after")
    def _attributes_for_bounds(self) -> BiasSpec:
        names = [attribute.name for attribute in self.sensitive_attributes]
        if len(set(names)) != len(names):
            raise ValueError(f"sensitive_attributes name a column twice ({names}); fix: list each once")
        if self.bounds and not names:
            raise ValueError("bounds need sensitive_attributes to measure them on; fix: name the columns")
        return self

    @property
    def column_names(self) -> list[str]:
        return [attribute.name for attribute in self.sensitive_attributes]


class RetrainingSpec(_Strict):
    schedule: str | None = Field(default=None, description="EventBridge schedule for periodic retraining")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return DriftSpec._schedule(value) if value is not None else None


class CostSpec(_Strict):
    """The model's budget and cost-anomaly alerts (stacks/constructs/budgets.py), filtered on its mlops:model tag.
    A number, not derived from the estimate: synthesis is offline and the Price List needs credentials; `mlops cost`
    prints the estimate against this budget and says when to raise it."""

    monthly_budget_usd: float = Field(
        default=500, gt=0, le=1_000_000,
        description="AWS Budgets monthly cost budget; alerts at 80% and 100% actual, 100% forecast")
    anomaly_threshold_usd: float | None = Field(
        default=50, ge=0.01, le=1_000_000,
        description="Cost Anomaly Detection alerts on anomalies of at least this total impact; null: no alerts")


# SageMaker Model Card intended_uses.risk_rating (the model card JSON schema; botocore's ModelCard.RiskRating).
RISK_RATINGS = ("High", "Medium", "Low", "Unknown")
CARD_TEXT_MAX = 2048  # the card schema's limit of intended_uses.* and additional_information.* texts


class GovernanceSpec(_Strict):
    """What every registered version's model card says beyond the numbers (SageMaker Model Card content on the model
    package: lambdas/pipeline/model_card.py), shown to the approver. The lengths are the card schema's."""

    intended_use: str = Field(default="", max_length=CARD_TEXT_MAX,
                              description="Who may use the predictions, for what (intended_uses.intended_uses)")
    risk_rating: Literal[RISK_RATINGS] = Field(
        default="Unknown", description="The organization's risk rating of the model (intended_uses.risk_rating)")
    risk_explanation: str = Field(default="", max_length=CARD_TEXT_MAX,
                                  description="Why that rating (intended_uses.explanations_for_risk_rating)")
    factors: str = Field(default="", max_length=CARD_TEXT_MAX, description="What affects how well it works "
                                                                            "(intended_uses.factors_affecting_model_efficiency)")
    limitations: str = Field(default="", max_length=CARD_TEXT_MAX, description="Known limits and what not to use it "
                                                                                "for (additional_information.caveats_and_recommendations)")
    ethical_considerations: str = Field(default="", max_length=CARD_TEXT_MAX,
                                        description="additional_information.ethical_considerations")



# ------------------------------------------------------------------ tuning and experiments (docs/experiments.md)
TUNING_STRATEGIES = {"bayesian": "Bayesian", "random": "Random", "hyperband": "Hyperband"}  # spec -> SageMaker
TUNING_SCALING = {"auto": "Auto", "linear": "Linear", "logarithmic": "Logarithmic",
                  "reverse_logarithmic": "ReverseLogarithmic"}
MAX_TUNED_HYPERPARAMETERS = 30  # CreateHyperParameterTuningJob: at most 30 ranges of each kind, 30 values each


class TuningRange(_Strict):
    """Where a tuning job searches one hyperparameter: min..max for a number, or a list of values for anything."""

    min: float | None = None
    max: float | None = None
    values: list[str | int | float | bool] | None = Field(default=None, min_length=1, max_length=30)
    scaling: Literal["auto", "linear", "logarithmic", "reverse_logarithmic"] = "auto"

    @model_validator(mode="after")
    def _one_kind(self) -> TuningRange:
        bounded = self.min is not None or self.max is not None
        if bounded == (self.values is not None):
            raise ValueError("give either min and max (a numeric range) or values (a list to choose from); "
                             "fix: e.g. {min: 0.001, max: 0.1} or {values: [32, 64, 128]}")
        if bounded and (self.min is None or self.max is None):
            raise ValueError("a numeric range needs both min and max; fix: add the missing bound")
        if bounded and not self.min < self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g}); fix: swap them or use values")
        if self.scaling in ("logarithmic", "reverse_logarithmic") and bounded and self.min <= 0:
            raise ValueError(f"{self.scaling} scaling needs min > 0 (got {self.min:g}); fix: raise min or use linear")
        if self.values is not None and self.scaling != "auto":
            raise ValueError("scaling applies to min..max ranges, not to values; fix: remove scaling")
        if self.values is not None and len({json.dumps(v) for v in self.values}) != len(self.values):
            raise ValueError("values lists a value twice; fix: list each value once")
        return self


class HyperbandSpec(_Strict):
    """Hyperband's resource: the epochs (or rounds) a trial may get; its objective must be printed every epoch."""

    min_resource: int = Field(default=1, ge=1)
    max_resource: int = Field(ge=1)

    @model_validator(mode="after")
    def _order(self) -> HyperbandSpec:
        if self.min_resource > self.max_resource:
            raise ValueError(f"min_resource ({self.min_resource}) is above max_resource ({self.max_resource}); "
                             "fix: swap them")
        return self


class TuningSpec(_Strict):
    """Hyperparameter search: the training step becomes a SageMaker hyperparameter tuning job; its best trial goes on
    to evaluation and registration. Each trial is a training job with the spec's instance, spot and checkpoints."""

    strategy: Literal["bayesian", "random", "hyperband"] = Field(
        default="bayesian", description="bayesian, random or hyperband (SageMaker's search strategies)")
    max_jobs: int = Field(ge=1, le=500, description="Trials in all (SageMaker's default quota is 500 per tuning job)")
    max_parallel_jobs: int = Field(default=1, ge=1, le=100, description="Trials at the same time")
    early_stopping: bool = Field(default=False, description="Stop trials unlikely to beat the best so far (not with "
                                                            "hyperband, which stops trials itself)")
    ranges: dict[str, TuningRange] = Field(min_length=1, description="hyperparameter -> where to search it")
    random_seed: int | None = Field(default=None, ge=0, description="Makes the search repeatable")
    max_runtime_s: int | None = Field(default=None, ge=120, le=15_768_000, description="The whole tuning job's limit")
    hyperband: HyperbandSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _strategy_case(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("strategy"), str):
            return {**data, "strategy": data["strategy"].lower()}
        return data

    @model_validator(mode="after")
    def _limits(self) -> TuningSpec:
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError(f"max_parallel_jobs ({self.max_parallel_jobs}) exceeds max_jobs ({self.max_jobs}); "
                             "fix: lower max_parallel_jobs")
        if len(self.ranges) > MAX_TUNED_HYPERPARAMETERS:
            raise ValueError(f"{len(self.ranges)} ranges; SageMaker tunes at most {MAX_TUNED_HYPERPARAMETERS}; "
                             "fix: tune fewer hyperparameters")
        if self.strategy == "hyperband" and self.early_stopping:
            raise ValueError("hyperband stops poor trials itself, and SageMaker refuses early stopping with it; "
                             "fix: drop early_stopping, or use strategy bayesian or random")
        if self.hyperband is not None and self.strategy != "hyperband":
            raise ValueError(f"tuning.hyperband applies to strategy hyperband, not {self.strategy}; fix: remove it")
        return self

    @property
    def sagemaker_strategy(self) -> str:
        return TUNING_STRATEGIES[self.strategy]

    def rounds(self) -> int:
        """How many waves of parallel trials the search takes at most (the state machine's time limit)."""
        return -(-self.max_jobs // self.max_parallel_jobs)


def tuning_kind(default: Any, declared: HyperparameterRange | None, searched: TuningRange) -> str:
    """Integer, Continuous or Categorical: SageMaker's range kind for a hyperparameter of this type."""
    if searched.values is not None:
        return "Categorical"
    kind = (declared.type if declared and declared.type else None) or _type_of(default)
    if kind in ("bool", "str"):
        raise ValueError(f"a {kind} hyperparameter is searched over values, not min..max; fix: use values: [...]")
    return "Integer" if kind == "int" else "Continuous"


class ExperimentsSpec(_Strict):
    """Experiment tracking of this model's runs on the environment's MLflow tracking server (if it has one)."""

    enabled: bool = Field(default=True, description="Log every run (parameters, per-epoch metrics, system, tuning "
                                                    "trials, the model's lineage) to MLflow")
    experiment: str | None = Field(default=None, max_length=200,
                                   description="MLflow experiment name; default the model's name")

    @field_validator("experiment")
    @classmethod
    def _experiment_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._/-]*", value):
            raise ValueError(f"'{value}' is not a usable experiment name; fix: letters, digits, space, '.', '_', '/', '-'")
        return value


class TrackingServerSpec(_Strict):
    """An environment's SageMaker managed MLflow tracking server (stacks/constructs/experiments.py). It is billed
    for every hour it exists, used or not: an environment gets one only where cdk.json turns it on."""

    enabled: bool = False
    size: Literal["Small", "Medium", "Large"] = Field(
        default="Small", description="SageMaker's tracking server sizes (Small: up to about 25 users)")
    mlflow_version: str | None = Field(default=None, pattern=r"^\d+\.\d+(\.\d+)?$",
                                       description="Default: SageMaker's current version")
    weekly_maintenance_window_start: str | None = Field(
        default=None, pattern=r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun):([01]\d|2[0-3]):([0-5]\d)$",
        description="UTC, e.g. Sun:03:00")


class ModelSpec(_Strict):
    name: str
    description: str = ""
    task: TaskSpec = Field(default_factory=TaskSpec)
    dataset: DatasetSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    objective: ObjectiveSpec
    approval: ApprovalSpec
    deployment: DeploymentSpec = Field(default_factory=DeploymentSpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    quality: QualitySpec = Field(default_factory=QualitySpec)
    bias: BiasSpec = Field(default_factory=BiasSpec)
    retraining: RetrainingSpec = Field(default_factory=RetrainingSpec)
    cost: CostSpec = Field(default_factory=CostSpec)
    governance: GovernanceSpec = Field(default_factory=GovernanceSpec, description="The model card's intended use, "
                                       "risk rating and limits (every registered version carries it)")
    tuning: TuningSpec | None = Field(default=None, description="Hyperparameter search instead of one training job")
    experiments: ExperimentsSpec = Field(default_factory=ExperimentsSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _MODEL_NAME.match(value):
            raise ValueError(
                f"'{value}' is not a usable model name; fix: 3-32 lowercase letters, digits or '-', starting with a letter"
            )
        if value in naming.RESERVED_MODEL_NAMES:
            raise ValueError(f"'{value}' is the name of an environment stack (mlops-<env>-{value}); fix: choose another "
                             "model name")
        return value

    @model_validator(mode="after")
    def _datasets_under_the_models_prefix(self) -> ModelSpec:
        """The shared pipeline functions read a model's data under datasets/<model>/ only (the session acting for a
        model is granted that prefix, stacks/constructs/pipeline_tasks.py)."""
        own = f"{naming.DATASETS}/{self.name}/"
        if not self.dataset.s3_prefix.startswith(own):
            raise ValueError(f"dataset.s3_prefix '{self.dataset.s3_prefix}' is outside {own}, the only prefix the "
                             f"platform reads {self.name}'s data from; fix: put the data under {own}")
        return self

    @model_validator(mode="after")
    def _drift_features_known(self) -> ModelSpec:
        unknown = sorted(set(self.drift.features or []) - set(self.dataset.features))
        if unknown:
            raise ValueError(f"drift.features {unknown} are not dataset features; fix: pick from dataset.features")
        if self.drift.enabled and self.deployment.data_capture_percent == 0:
            raise ValueError("drift monitoring reads captured traffic, but deployment.data_capture_percent is 0; "
                             "fix: set drift.enabled: false or capture a share of the traffic")
        return self

    @model_validator(mode="after")
    def _tuning_fits_the_hyperparameters(self) -> ModelSpec:
        """Every tuned hyperparameter is declared (with a default), searched with its own type, and inside the range
        a run may set it to (training.hyperparameter_ranges)."""
        if self.tuning is None:
            return self
        training = self.training
        problems = []
        for name, searched in self.tuning.ranges.items():
            if name not in training.hyperparameters:
                problems.append(f"tuning.ranges.{name}: not a hyperparameter of training.hyperparameters; fix: add a "
                                f"default for it, or tune one of {sorted(training.hyperparameters)}")
                continue
            default, declared = training.hyperparameters[name], training.hyperparameter_ranges.get(name)
            try:
                kind = tuning_kind(default, declared, searched)
                candidates = searched.values if kind == "Categorical" else [searched.min, searched.max]
                if kind == "Integer" and any(float(v) != int(v) for v in candidates):
                    raise ValueError("an integer hyperparameter needs whole-number bounds; fix: e.g. min: 2, max: 8")
                for value in candidates:
                    typed = int(value) if kind == "Integer" else value
                    check_hyperparameter(name, typed, default, declared)
            except ValueError as exc:
                problems.append(f"tuning.ranges.{name}: {exc}" + ("" if "fix:" in str(exc) else
                                "; fix: search inside training.hyperparameter_ranges"))
        one_job = training.max_runtime_s + (training.effective_max_wait_s or 0)
        longest = min(one_job * self.tuning.rounds(), self.tuning.max_runtime_s or STATE_MACHINE_MAX_S)
        if longest + self.approval.timeout_hours * 3600 > STATE_MACHINE_MAX_S - 6 * 3600:
            problems.append(f"tuning: {self.tuning.rounds()} waves of trials of up to {one_job} s each, and the approval "
                            "wait, exceed a Step Functions run's one-year limit; fix: set tuning.max_runtime_s or raise "
                            "max_parallel_jobs")
        if self.tuning.strategy == "hyperband" and self.tuning.hyperband is None:
            problems.append("tuning.hyperband: hyperband needs the resource it allocates; fix: add "
                            "hyperband: {min_resource: 1, max_resource: <epochs>}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _objective_fits_the_task(self) -> ModelSpec:
        """A metric the model kit writes for another task type (auc for a regression) or the wrong direction
        (rmse maximized) would compare challengers the wrong way round: refused."""
        task, metric = self.task.type, self.objective.metric
        short = metric.rpartition(":")[2]
        own = TASK_METRICS[task]
        if short in own:
            if own[short] != self.objective.direction:
                raise ValueError(f"objective.direction: {short} is better when {'higher' if own[short] == 'maximize' else 'lower'}; "
                                 f"fix: direction: {own[short]}")
        elif task != "custom":  # another task's metric, or a name the model kit never writes (a typo)
            close = difflib.get_close_matches(short, list(own), n=1)
            hint = f"did you mean '{self.metric_prefix}{close[0]}'? " if close else ""
            raise ValueError(f"objective.metric '{metric}' is not a metric the model kit writes for {task} models "
                             f"(evaluation would fail after training); fix: {hint}one of "
                             f"{', '.join(self.metric_prefix + name for name in own)}")
        return self

    @model_validator(mode="after")
    def _bias_fits_the_task_and_data(self) -> ModelSpec:
        """Sensitive attributes are columns of the data (not the label), numeric ones with a threshold; the positive
        outcome is one the task type has."""
        bias, dataset, task = self.bias, self.dataset, self.task.type
        problems = []
        if bias.sensitive_attributes and task == "custom":
            problems.append("bias: a custom task's predictions have no outcome the model kit can count; fix: remove "
                            "bias.sensitive_attributes")
        for attribute in bias.sensitive_attributes:
            where = f"bias.sensitive_attributes '{attribute.name}'"
            if attribute.name == dataset.label:
                problems.append(f"{where} is the label; fix: name the column that forms the groups")
            elif attribute.name in dataset.categorical and attribute.threshold is not None:
                problems.append(f"{where} is categorical; fix: remove threshold (or list values)")
            elif attribute.name in dataset.features and attribute.name not in dataset.categorical \
                    and attribute.threshold is None and attribute.values is None:
                problems.append(f"{where} is a numeric feature; fix: add threshold (the group is the rows above it), "
                                "e.g. threshold: 60")
        problems.extend(self._bias_outcome_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _bias_outcome_problems(self) -> list[str]:
        bias, task = self.bias, self.task
        positive, problems = bias.positive_label, []
        if positive is not None and task.type in ("regression", "custom"):
            problems.append(f"bias.positive_label applies to classification, not {task.type}; fix: remove it"
                            + (" (use bias.label_threshold)" if task.type == "regression" else ""))
        if task.type == "binary" and positive not in (None, "0", "1"):
            problems.append(f"bias.positive_label '{positive}' is not a binary label; fix: '0' or '1'")
        if task.type == "multiclass" and bias.sensitive_attributes and positive is None:
            problems.append("bias.positive_label: a multiclass model's favourable outcome is one class; fix: name it")
        if task.type == "multiclass" and task.classes and positive is not None and positive not in task.classes:
            problems.append(f"bias.positive_label '{positive}' is not one of task.classes {task.classes}")
        if bias.label_threshold is not None and task.type != "regression":
            problems.append(f"bias.label_threshold applies to regression, not {task.type}; fix: remove it")
        return problems

    @property
    def drift_features(self) -> list[str]:
        return self.drift.features or list(self.dataset.features)

    @property
    def metric_prefix(self) -> str:
        """'validation:' for 'validation:auc': the channel the metrics are measured on."""
        prefix, separator, _ = self.objective.metric.rpartition(":")
        return f"{prefix}{separator}" if separator else "validation:"

    def metric_columns(self) -> list[str]:
        """The metrics every table and summary shows for this model: the objective first, then the task's usual
        ones (regression: rmse, mae, r2; binary: auc, accuracy; multiclass: accuracy, macro_f1; custom: declared)."""
        extra = self.task.custom.metrics if self.task.custom else []
        names = [self.objective.metric, *(self.metric_prefix + name for name in TASK_COLUMNS[self.task.type]), *extra]
        return list(dict.fromkeys(names))

    def objective_heading(self) -> str:
        """The objective as a column heading that says which way is better: 'validation:rmse (lower is better)'."""
        better = "higher" if self.objective.direction == "maximize" else "lower"
        return f"{self.objective.metric} ({better} is better)"

    def training_log_filters(self) -> tuple[str, ...]:
        """Line prefixes of a training log worth showing in a summary: the metric lines of this model (the
        challenger's and the champion's re-scored ones) and checkpoint resumption."""
        champion = tuple(f"champion:{name.rpartition(':')[2]}" for name in self.metric_columns())
        return (*self.metric_columns(), *champion, "checkpoint: resumed")


def format_metrics(metrics: dict[str, float], columns: list[str]) -> str:
    """'rmse=27.7400, mae=19.1000' for the columns present in metrics (short names, in column order)."""
    return ", ".join(f"{name.rpartition(':')[2]}={float(metrics[name]):.4f}" for name in columns if name in metrics)


def metric_columns_of(model: str, models_dir: Path | None = None) -> list[str] | None:
    """The metric columns of a model folder's spec; None when there is no usable folder here (a client that only
    talks to AWS: tables then show every metric)."""
    try:
        return load_spec(find_model_dir(model, models_dir)).metric_columns()
    except SpecError:
        return None


class SharedPoolSpec(_Strict):
    """An environment's shared endpoint: the instances its shared-hosted models' copies run on. SageMaker's managed
    instance scaling adds instances as copies need them and, at min_instances 0, removes the last one once no copy is
    left (stacks/constructs/shared_hosting.py)."""

    instance_type: str = "ml.m5.xlarge"
    min_instances: int = Field(default=0, ge=0)
    max_instances: int = Field(default=4, ge=1)
    data_capture_percent: int = Field(default=20, ge=0, le=100, description="The endpoint's one sampling rate: "
                                      "captured for every component (each model's drift check reads its own)")

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        return _check_instance_type(value, "hosting")

    @model_validator(mode="after")
    def _size(self) -> SharedPoolSpec:
        if self.max_instances < self.min_instances:
            raise ValueError(f"max_instances ({self.max_instances}) is below min_instances ({self.min_instances}); "
                             "fix: raise max_instances")
        return self


class EnvironmentSpec(_Strict):
    name: str
    account: str
    region: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    serves: Literal["prod", "staging", "none"] | None = Field(
        default=None, description="The traffic this environment's one serving endpoint per model takes. Default: "
                                  "with mlops:delivery, the training environment serves nothing, the last promotion "
                                  "stage prod, the others staging; otherwise prod (pipelines/promotion.serving_stage)")
    shared_hosting: SharedPoolSpec = Field(default_factory=SharedPoolSpec,
                                           description="The shared endpoint of models with deployment.hosting: shared")
    experiments: TrackingServerSpec = Field(default_factory=TrackingServerSpec,
                                            description="The environment's MLflow tracking server (cost: docs/experiments.md)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"'{value}' is not a usable environment name (it goes into bucket, table and stack names); "
                             "fix: 2-16 lowercase letters, digits or '-', starting with a letter")
        return value

    @field_validator("account")
    @classmethod
    def _account(cls, value: str) -> str:
        if not _ACCOUNT.match(str(value)):
            raise ValueError(f"'{value}' is not a 12-digit AWS account id; fix: quote it as a string of 12 digits")
        return str(value)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"'{value}' is not an AWS region; fix: use a name like 'us-east-1'")
        return instances.check_region(value)


def _check_instance_type(value: str, use: str) -> str:
    return instances.check_instance_type(value, use)


def _format_errors(source: str, error: ValidationError) -> str:
    lines = [f"{source}: {error.error_count()} problem(s)"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field; fix: remove it or correct its spelling"
        elif item["type"] == "missing":
            message = "required field is missing; fix: add it"
        elif "fix:" not in message:
            message = f"{message}; fix: correct the value (got {item.get('input')!r})"
        lines.append(f"  - {field}: {message}")
    return "\n".join(lines)


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@functools.cache
def _spec_loader() -> type:
    """SafeLoader with an alias budget: a few anchors and aliases are fine, a 'billion laughs' document (aliases of
    aliases, exponential once anything walks or prints the tree) is refused while it is being composed. Built on
    first use: the Lambda handlers read their spec from JSON and need not import yaml at a cold start."""
    import yaml

    class SpecLoader(yaml.SafeLoader):
        def __init__(self, stream) -> None:
            super().__init__(stream)
            self.aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    mark = self.peek_event().start_mark
                    raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases (*name), at line {mark.line + 1}; "
                                         "a spec needs few or none")
            return super().compose_node(parent, index)

    return SpecLoader


def read_spec_document(path: Path) -> dict[str, Any]:
    import yaml

    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: larger than {MAX_SPEC_BYTES // 1024} kB; fix: a spec is a short file, "
                            "see pipelines/churn/model.yaml")
        loader = _spec_loader()(raw.decode("utf-8"))
        try:
            document = loader.get_single_data()
        finally:
            loader.dispose()
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: file not found; fix: create it (see docs/architecture.md)") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); fix: save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc}); fix: correct the syntax") from exc
    if not isinstance(document, dict):
        raise SpecError(f"{path}: expected a mapping of fields at the top level; fix: see pipelines/churn/model.yaml")
    return document


def parse_spec(document: dict[str, Any], source: str, overrides: dict[str, Any] | None = None) -> ModelSpec:
    try:
        return ModelSpec.model_validate(deep_merge(document, overrides or {}))
    except ValidationError as exc:
        raise SpecError(_format_errors(source, exc)) from None


def load_spec(path: Path | str, overrides: dict[str, Any] | None = None) -> ModelSpec:
    path = Path(path)
    if path.is_dir():
        path = path / SPEC_FILENAME
    spec = parse_spec(read_spec_document(path), str(path), overrides)
    if spec.name != path.parent.name:
        raise SpecError(f"{path}: name: '{spec.name}' differs from its folder '{path.parent.name}'; fix: make them equal")
    return spec


# The model-folder contract (docs/models.md): what each file must do. Synthesis refuses a folder without one.
FOLDER_FILES = {
    "inference.py": "serves the model: model_fn, input_fn, predict_fn, output_fn (SageMaker's inference handlers)",
}
LOCAL_MODE_FILES = {
    "make_dataset.py": "makes labelled data for the local mode: generate(rows, seed, shift) -> columns and "
                       "write_csv(columns, path) -> path",
}


def required_files(spec: ModelSpec) -> dict[str, str]:
    """File name -> what it must do, for a model folder of this spec (the training entry point included)."""
    return {SPEC_FILENAME: "the model's spec", spec.training.entry_point:
            "trains in the SageMaker layout and writes the model, evaluation.json (both scores), statistics.json, "
            "constraints.json and code/ (docs/models.md)", **FOLDER_FILES}


def check_model_folder(folder: Path, spec: ModelSpec, local_mode: bool = False) -> None:
    """SpecError naming every required file the folder lacks, with what the file must do."""
    wanted = {**required_files(spec), **(LOCAL_MODE_FILES if local_mode else {})}
    missing = [f"  - {name}: missing; it {purpose}" for name, purpose in wanted.items() if not (folder / name).is_file()]
    if missing:
        raise SpecError(f"{folder}: {len(missing)} required file(s) missing\n" + "\n".join(missing) +
                        f"\n  fix: add them (docs/models.md), or start from a template: mlops new {spec.name} "
                        f"--task {spec.task.type} --framework {spec.training.framework}")


def discover_spec_files(folder: Path | None = None) -> list[Path]:
    """Every model.yaml one level under folder (default: models_dir())."""
    return sorted(Path(folder or models_dir()).glob(f"*/{SPEC_FILENAME}"))


def load_all_specs(folder: Path | None = None, overrides: dict[str, Any] | None = None) -> list[ModelSpec]:
    """Every model under folder (default: models_dir()); all errors of all files are reported together."""
    folder = Path(folder or models_dir())
    specs, problems = [], []
    for path in discover_spec_files(folder):
        try:
            spec = load_spec(path, overrides)
            check_model_folder(path.parent, spec)
            specs.append(spec)
        except SpecError as exc:
            problems.append(str(exc))
    if problems:
        raise SpecError("\n".join(problems))
    if not specs:
        raise SpecError(f"{folder}: no */{SPEC_FILENAME} found; fix: add a model folder (see docs/models.md)")
    return specs


def check_names_across_models(specs: list[ModelSpec], env_names: list[str]) -> None:
    """A model's SageMaker resources are named <model>-<env>-<stage>-<run> and granted as <model>-<env>-*: a model
    named fraud-dev-prod-eu (or fraud-dev, whose endpoints are fraud-dev-dev-*) would have its resources fall under
    fraud's grants in dev. Refused here."""
    for spec in specs:
        if spec.name == naming.PROJECT:  # the environment's own SageMaker resources are mlops-<env>-* (shared endpoint)
            raise SpecError(f"{spec.name}: a model may not be named '{naming.PROJECT}' (the platform's own resources, "
                            f"such as {naming.shared_endpoint('dev')}, are named {naming.PROJECT}-<env>-*); fix: rename the model")
        for env in env_names:
            if f"-{env}-" in spec.name or spec.name.endswith(f"-{env}"):
                raise SpecError(f"{spec.name}: a model name may not hold '-{env}-' or end with '-{env}' (its resources "
                                f"would be named like another model's in {env}); fix: rename the model")


def find_model_dir(name: str, folder: Path | None = None) -> Path:
    """folder/name (default: models_dir()/name), or SpecError naming the models there."""
    folder = Path(folder or models_dir())
    path = folder / name
    if not (path / SPEC_FILENAME).exists():
        known = ", ".join(p.parent.name for p in discover_spec_files(folder)) or "none"
        raise SpecError(f"no model named '{name}' (known: {known}); fix: create {path}/{SPEC_FILENAME}")
    return path


def parse_environments(context: dict[str, Any], source: str = "cdk.json") -> list[EnvironmentSpec]:
    raw = context.get("mlops:environments")
    if not isinstance(raw, dict) or not raw:
        raise SpecError(f"{source}: context.mlops:environments is missing or empty; fix: add dev/staging/prod entries")
    environments = []
    for name, body in raw.items():
        try:
            environments.append(EnvironmentSpec.model_validate({"name": name, **(body or {})}))
        except ValidationError as exc:
            raise SpecError(_format_errors(f"{source}: mlops:environments.{name}", exc)) from None
    return environments


def load_environments(cdk_json: Path = REPO_ROOT / "cdk.json") -> list[EnvironmentSpec]:
    return parse_environments(json.loads(cdk_json.read_text()).get("context", {}), str(cdk_json))

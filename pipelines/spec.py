"""The per-model spec (`pipelines/<model>/model.yaml`) and the environments from cdk.json.

Everything a construct, a handler or the local mode needs about a model is read from here, and
validated before anything is built: a bad spec raises `SpecError` naming the file, the field and
the fix.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines import instances

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "pipelines"
SPEC_FILENAME = "model.yaml"

_MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_SCHEDULE = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


class SpecError(ValueError):
    """A spec or environment that cannot be used; the message names the file, the field and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    label: str
    features: list[str] = Field(min_length=1)
    categorical: list[str] = Field(default_factory=list)
    s3_prefix: str = Field(description="Key prefix inside the artifact bucket, e.g. datasets/churn/")
    file_name: str = "train.csv"
    min_rows: int = Field(default=1000, ge=1)
    max_null_fraction: float = Field(default=0.01, ge=0, le=1)
    min_minority_share: float = Field(default=0.05, ge=0, le=0.5)

    @model_validator(mode="after")
    def _categorical_are_features(self) -> DatasetSpec:
        unknown = sorted(set(self.categorical) - set(self.features))
        if unknown:
            raise ValueError(f"categorical columns {unknown} are not in features; fix: add them to features")
        if self.label in self.features:
            raise ValueError(f"the label '{self.label}' is also listed as a feature; fix: remove it from features")
        return self


class TrainingSpec(_Strict):
    entry_point: str = "train.py"
    framework: Literal["pytorch"] = "pytorch"
    framework_version: str = "2.5"
    py_version: str = "py311"
    image_uri: str | None = Field(default=None, description="A custom ECR image instead of the PyTorch DLC")
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = Field(default=1, ge=1, le=32)
    use_spot: bool = True
    max_runtime_s: int = Field(default=3600, ge=60, le=28 * 24 * 3600)
    max_wait_s: int | None = Field(default=None, description="Spot only; defaults to twice max_runtime_s")
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    network_isolation: bool = True
    subnet_ids: list[str] = Field(default_factory=list)
    security_group_ids: list[str] = Field(default_factory=list)
    hyperparameters: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        return _check_instance_type(value, "training")

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
        return self.max_wait_s or 2 * self.max_runtime_s


class ObjectiveSpec(_Strict):
    metric: str
    regex: str
    direction: Literal["maximize", "minimize"] = "maximize"
    minimum: float | None = Field(default=None, description="Worst acceptable value (a maximum when minimizing)")
    champion_margin: float = Field(default=0.0, ge=0, description="How much a challenger must beat the champion by")

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
        if champion is None:
            return True
        if self.direction == "maximize":
            return challenger >= champion + self.champion_margin
        return challenger <= champion - self.champion_margin


class ApprovalSpec(_Strict):
    approvers: list[str] = Field(min_length=1)
    timeout_hours: float = Field(default=24, gt=0, le=24 * 30)
    reserved_concurrency: int | None = Field(
        default=None, ge=1, le=100,
        description="Reserved concurrency of the approval-link function. Off by default: Lambda refuses any "
                    "reservation in accounts whose concurrency quota is 10 (new accounts), as 10 must stay unreserved")
    max_link_requests_per_minute: int = Field(
        default=30, ge=1, le=10_000, description="Requests one client address may make to the approval URL per minute")

    @field_validator("approvers")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [email for email in value if not _EMAIL.match(email)]
        if bad:
            raise ValueError(f"{bad} are not email addresses; fix: list approvers as name@domain")
        return [email.lower() for email in value]


class AlarmSpec(_Strict):
    max_5xx_rate: float = Field(default=0.01, gt=0, le=1)
    max_p99_latency_ms: float = Field(default=500, gt=0)
    evaluation_minutes: int = Field(default=5, ge=1, le=60)


class ServerlessSpec(_Strict):
    memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 2048
    max_concurrency: int = Field(default=5, ge=1, le=200)


class DeploymentSpec(_Strict):
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
        if self.serverless or self.strategy == "all_at_once":
            return self
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
        if not _SCHEDULE.match(value):
            raise ValueError(f"'{value}' is not an EventBridge schedule; fix: use 'rate(1 hour)' or 'cron(0 * * * ? *)'")
        return value


class RetrainingSpec(_Strict):
    schedule: str | None = Field(default=None, description="EventBridge schedule for periodic retraining")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return DriftSpec._schedule(value) if value is not None else None


class ModelSpec(_Strict):
    name: str
    description: str = ""
    dataset: DatasetSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    objective: ObjectiveSpec
    approval: ApprovalSpec
    deployment: DeploymentSpec = Field(default_factory=DeploymentSpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    retraining: RetrainingSpec = Field(default_factory=RetrainingSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _MODEL_NAME.match(value):
            raise ValueError(
                f"'{value}' is not a usable model name; fix: 3-32 lowercase letters, digits or '-', starting with a letter"
            )
        return value

    @model_validator(mode="after")
    def _drift_features_known(self) -> ModelSpec:
        unknown = sorted(set(self.drift.features or []) - set(self.dataset.features))
        if unknown:
            raise ValueError(f"drift.features {unknown} are not dataset features; fix: pick from dataset.features")
        if self.drift.enabled and self.deployment.data_capture_percent == 0:
            raise ValueError("drift monitoring reads captured traffic, but deployment.data_capture_percent is 0; "
                             "fix: set drift.enabled: false or capture a share of the traffic")
        return self

    @property
    def drift_features(self) -> list[str]:
        return self.drift.features or list(self.dataset.features)


class EnvironmentSpec(_Strict):
    name: str
    account: str
    region: str
    overrides: dict[str, Any] = Field(default_factory=dict)

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
        return value


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


def read_spec_document(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: file not found; fix: create it (see docs/architecture.md)") from exc
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


def discover_spec_files(models_dir: Path = MODELS_DIR) -> list[Path]:
    return sorted(models_dir.glob(f"*/{SPEC_FILENAME}"))


def load_all_specs(models_dir: Path = MODELS_DIR, overrides: dict[str, Any] | None = None) -> list[ModelSpec]:
    """Every model under models_dir; all errors of all files are reported together."""
    specs, problems = [], []
    for path in discover_spec_files(models_dir):
        try:
            specs.append(load_spec(path, overrides))
        except SpecError as exc:
            problems.append(str(exc))
    if problems:
        raise SpecError("\n".join(problems))
    if not specs:
        raise SpecError(f"{models_dir}: no */{SPEC_FILENAME} found; fix: add a model folder (see docs/architecture.md)")
    return specs


def find_model_dir(name: str, models_dir: Path = MODELS_DIR) -> Path:
    path = models_dir / name
    if not (path / SPEC_FILENAME).exists():
        known = ", ".join(p.parent.name for p in discover_spec_files(models_dir)) or "none"
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

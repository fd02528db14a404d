"""The SageMaker training-container contract, for any framework.

- inputs: SM_CHANNEL_<NAME> (the `train` CSV files; the `champion` channel: the model production serves),
  /opt/ml/input/config/hyperparameters.json (every value a JSON string) or command-line flags
- outputs: SM_MODEL_DIR (the artifact), SM_OUTPUT_DATA_DIR (reports), /opt/ml/checkpoints (synced with S3)
- SM_ROOT (not a SageMaker variable) moves the whole /opt/ml layout, for local runs and tests.

The model's validated spec travels with the code as `mlops_spec.json` (written into the source archive by the
platform); in a checkout, train.py reads model.yaml beside it instead.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

SPEC_JSON = "mlops_spec.json"
T = TypeVar("T")


@dataclass(frozen=True)
class Paths:
    train: Path
    champion: Path
    model: Path
    output: Path
    checkpoints: Path
    hyperparameters: Path
    resource_config: Path

    @classmethod
    def from_environment(cls) -> "Paths":
        root = Path(os.environ.get("SM_ROOT", "/opt/ml"))
        return cls(
            train=Path(os.environ.get("SM_CHANNEL_TRAIN", root / "input/data/train")),
            champion=Path(os.environ.get("SM_CHANNEL_CHAMPION", root / "input/data/champion")),
            model=Path(os.environ.get("SM_MODEL_DIR", root / "model")),
            output=Path(os.environ.get("SM_OUTPUT_DATA_DIR", root / "output/data")),
            checkpoints=job_checkpoints(Path(os.environ.get("SM_CHECKPOINT_DIR", root / "checkpoints"))),
            hyperparameters=root / "input/config/hyperparameters.json",
            resource_config=root / "input/config/resourceconfig.json",
        )


def job_checkpoints(directory: Path) -> Path:
    """This job's own checkpoint folder: <checkpoints>/<training job name> when SageMaker names the job. Every trial
    of a tuning job shares the tuning job's checkpoint prefix; a trial must never resume another trial's weights,
    and a spot trial restarted under its own name still finds its own."""
    job = os.environ.get("TRAINING_JOB_NAME", "").strip()
    if not job or "/" in job or job in (".", ".."):
        return directory
    return directory / job


def read_hyperparameters(paths: Paths, defaults: T, argv: list[str]) -> T:
    """defaults (a dataclass instance) < hyperparameters.json (SageMaker's JSON strings) < --flags. An unknown
    name stops the job naming it (a typo must not train with a default silently)."""
    values: dict[str, Any] = {}
    if paths.hyperparameters.exists():
        for key, raw in json.loads(paths.hyperparameters.read_text()).items():
            if key.startswith(("sagemaker_", "_")):  # script-mode settings; a tuning trial's _tuning_objective_metric
                continue
            try:
                values[key] = json.loads(raw) if isinstance(raw, str) else raw
            except json.JSONDecodeError:
                values[key] = raw
    known = {f.name: getattr(defaults, f.name) for f in fields(defaults)}
    parser = argparse.ArgumentParser()
    for name, default in known.items():
        parser.add_argument(f"--{name}", type=_parser_type(default), default=None)
    flags, _ = parser.parse_known_args(argv)
    values.update({k: v for k, v in vars(flags).items() if v is not None})
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SystemExit(f"unknown hyperparameters {unknown}; known: {sorted(known)}")
    return type(defaults)(**{**known, **{k: _as_type(known[k], v, k) for k, v in values.items()}})


def _parser_type(default: Any):
    return (lambda text: text.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)


def _as_type(default: Any, value: Any, name: str) -> Any:
    try:
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        return type(default)(value)
    except (TypeError, ValueError):
        raise SystemExit(f"hyperparameter '{name}' must be {type(default).__name__}, got {value!r}") from None


def as_dict(hyperparameters: Any) -> dict:
    return asdict(hyperparameters)


def model_spec(code_dir: Path) -> dict:
    """The model's spec as a dict: mlops_spec.json from the source archive, else model.yaml in a checkout."""
    packed = Path(code_dir) / SPEC_JSON
    if packed.exists():
        return json.loads(packed.read_text())
    import yaml  # a checkout has the platform's environment

    return yaml.safe_load((Path(code_dir) / "model.yaml").read_text())


@dataclass(frozen=True)
class Task:
    """What a train.py needs to know of the spec's task and dataset."""

    type: str
    label: str
    features: list
    categorical: list
    classes: list | None
    objective: str
    model: str
    description: str
    direction: str = "maximize"  # the objective's: which way a shuffled feature's score falls
    bias: dict | None = None  # the spec's bias section (pipelines.spec.BiasSpec, as a dict); None: none asked for

    @classmethod
    def of(cls, spec: dict) -> "Task":
        task, dataset = spec.get("task") or {}, spec["dataset"]
        classes = task.get("classes")
        return cls(type=task.get("type", "binary"), label=dataset["label"], features=list(dataset["features"]),
                   categorical=list(dataset.get("categorical") or []),
                   classes=[str(c) for c in classes] if classes else None,
                   objective=spec["objective"]["metric"], model=spec["name"], description=spec.get("description", ""),
                   direction=spec["objective"].get("direction", "maximize"),
                   bias=spec.get("bias") if (spec.get("bias") or {}).get("sensitive_attributes") else None)

    @property
    def metric_prefix(self) -> str:
        prefix, separator, _ = self.objective.rpartition(":")
        return f"{prefix}{separator}" if separator else "validation:"

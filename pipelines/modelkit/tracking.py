"""What the experiment tracker records of a training job, written by train.py into evaluation.json: the metrics of
every epoch (or boosting round) and the system it ran on.

Training containers run network-isolated, so nothing here talks to MLflow: the pipeline's evaluation step reads
evaluation.json and logs the run to the tracking server (lambdas/pipeline/tracking.py, docs/experiments.md).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path

MAX_EPOCHS_KEPT = 1000  # MLflow's LogBatch takes 1000 metrics a call; more epochs are thinned evenly


class History:
    """Per-epoch metrics: each epoch printed as one 'epoch=N; name=value;' line (SageMaker's metric definitions and
    Hyperband read the log) and kept for evaluation.json."""

    def __init__(self, echo: bool = True) -> None:
        self.epochs: list[dict] = []
        self.echo = echo

    def log(self, epoch: int, **metrics: float) -> None:
        row = {"epoch": int(epoch), **{name: float(value) for name, value in metrics.items()}}
        self.epochs.append(row)
        if self.echo:
            values = " ".join(f"{name}={_text(value)};" for name, value in row.items() if name != "epoch")
            print(f"epoch={row['epoch']}; {values}", flush=True)

    def as_list(self) -> list[dict]:
        if len(self.epochs) <= MAX_EPOCHS_KEPT:
            return list(self.epochs)
        step = len(self.epochs) / MAX_EPOCHS_KEPT
        kept = [self.epochs[int(i * step)] for i in range(MAX_EPOCHS_KEPT - 1)]
        return [*kept, self.epochs[-1]]  # the last epoch always

    @classmethod
    def from_xgboost(cls, evals_result: dict, names: dict[str, str], rounds_before: int = 0) -> "History":
        """XGBoost's evals_result ({"validation": {"rmse": [...]}}) as one row per boosting round; names maps the
        evaluation set names to the metric prefixes (validation -> 'validation:'); rounds_before: rounds a resumed
        job had done already (numbering goes on from there)."""
        history = cls(echo=False)
        rounds = max((len(v) for metrics in evals_result.values() for v in metrics.values()), default=0)
        for index in range(rounds):
            row = {f"{names.get(data, data + ':')}{metric}": values[index]
                   for data, metrics in evals_result.items() for metric, values in metrics.items() if index < len(values)}
            history.log(rounds_before + index + 1, **row)
        return history


def _text(value: float) -> str:
    return f"{value:.6f}" if math.isfinite(value) else "nan"


def resource_config(path: Path) -> dict:
    """/opt/ml/input/config/resourceconfig.json: hosts and (on SageMaker) the instance type."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def system_info(resource_config_path: Path, device: str | None = None, precision: str | None = None) -> dict:
    """Where the job ran: instance type and count, accelerator, precision, CPUs, Python, platform."""
    config = resource_config(resource_config_path)
    info = {
        "instance_type": os.environ.get("SM_CURRENT_INSTANCE_TYPE") or config.get("current_instance_type") or "local",
        "instance_count": len(config.get("hosts") or []) or 1,
        "training_job": os.environ.get("TRAINING_JOB_NAME") or "",
        "device": device or "cpu",
        "accelerator": _accelerator(),
        "precision": precision or "fp32",
        "cpu_count": os.cpu_count() or 1,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
    return info


def _accelerator() -> str:
    """The GPU's name when torch sees one (torch is imported only if the model already imported it)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    except Exception:  # a broken driver must not fail the job's last step
        return "unknown"
    return "none"

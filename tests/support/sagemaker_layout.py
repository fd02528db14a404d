"""Runs a model's train.py as SageMaker would: the /opt/ml layout under a temporary root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

from pipelines.churn import make_dataset  # noqa: E402  (by its package path: every model folder has one)


def prepare(root: Path, hyperparameters: dict, rows: int = 3000, seed: int = 7) -> Path:
    make_dataset.write_csv(make_dataset.generate(rows, seed), root / "input/data/train/train.csv")
    config = root / "input/config"
    config.mkdir(parents=True, exist_ok=True)
    # SageMaker hands every hyperparameter over as a JSON-encoded string.
    (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hyperparameters.items()}))
    return root


def run_training(root: Path, extra_env: dict | None = None, check: bool = True,
                 model: str = "churn") -> subprocess.CompletedProcess:
    env = {**os.environ, "SM_ROOT": str(root), "CUDA_VISIBLE_DEVICES": "", **(extra_env or {})}
    for name in ("SM_HOSTS", "SM_CURRENT_HOST", "SM_NUM_GPUS", "WORLD_SIZE"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, str(REPO_ROOT / "pipelines" / model / "train.py")], env=env,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"train.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result

"""Deterministic synthetic data for ${name} (a ${task} model from `mlops new`): replace generate() with your
own data, keeping its signature (the local mode calls generate(rows, seed, shift) and write_csv(columns, path)).

`shift` (0 to 1) moves the population and the relation between features and label, so the local mode's drift
hook finds drift and a retrained model beats the champion on the new data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.modelkit.data import dataset_cli, write_csv_columns

TASK = "${task}"
NUMERIC = ["x1", "x2", "x3", "x4"]
SEGMENTS = ["north", "south", "east", "west"]
CLASSES = ["low", "mid", "high"]
LABEL = "${label}"
COLUMNS = NUMERIC + ["segment", LABEL]


def generate(rows: int, seed: int = 7, shift: float = 0.0) -> dict:
    rng = np.random.default_rng(seed)
    segment = rng.choice(4, size=rows, p=np.array([0.4, 0.3, 0.2, 0.1]) * (1 - shift) + np.array([0.1, 0.2, 0.3, 0.4]) * shift)
    x1 = rng.normal(1.5 * shift, 1.0, rows).round(4)
    x2 = rng.normal(0.0, 1.0 + shift, rows).round(4)
    x3 = rng.uniform(0, 10, rows).round(3)
    x4 = rng.poisson(3 + 2 * shift, rows)
    score = (2.0 * x1 - 1.5 * x2 + 0.3 * x3 * (1 + shift) + 0.5 * x4 + np.array([0.0, 1.0, -1.0, 2.0])[segment]
             + 2.0 * shift + rng.normal(0, 1.0, rows))
    if TASK == "binary":
        label = (rng.uniform(size=rows) < 1 / (1 + np.exp(-(score - 4.0)))).astype(int)
    elif TASK == "multiclass":
        label = np.array(CLASSES)[np.digitize(score, [2.5, 6.5])]
    else:
        label = (50 + 8 * score).round(3)
    return {"x1": x1, "x2": x2, "x3": x3, "x4": x4, "segment": np.array(SEGMENTS)[segment], LABEL: label}


def write_csv(columns: dict, path: Path, include_label: bool = True) -> Path:
    return write_csv_columns(columns, [c for c in COLUMNS if include_label or c != LABEL], path)


if __name__ == "__main__":
    dataset_cli(generate, write_csv, __doc__, Path(__file__).parent / "data" / "train.csv")

"""Training data: CSV channels, the seeded train/validation split, feature encoding and labels per task type.

The fitted encoding is plain JSON (preprocessing.json in the artifact): serving never depends on the training
environment. Numerics are standardized (missing: the mean), categoricals one-hot with an 'other' slot for
values unseen in training.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .leakage import leakage_warning

MISSING = ("", "nan", "NaN", "null", "None", "NULL")


def read_csv_columns(path: Path) -> dict:
    with Path(path).open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns = [[] for _ in header]
        for row in reader:
            for index, value in enumerate(row):
                columns[index].append(value)
    return dict(zip(header, columns))


def write_csv_columns(columns: dict, names: list, path: Path) -> Path:
    """The inverse of read_csv_columns: a header, then one row per index of the named columns (arrays or lists)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows(zip(*(np.asarray(columns[name]).tolist() for name in names)))
    return path


def dataset_cli(generate, write_csv, description: str, default_out: Path) -> None:
    """`python make_dataset.py [--rows --seed --shift --out]`: every model folder's data generator from a shell."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shift", type=float, default=0.0)
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    print(write_csv(generate(args.rows, args.seed, args.shift), args.out))


def read_channel(directory: Path) -> dict:
    """All CSV files of a SageMaker channel directory, concatenated in name order."""
    files = sorted(Path(directory).rglob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no .csv files in channel directory {directory}")
    merged: dict = {}
    for path in files:
        for name, values in read_csv_columns(path).items():
            merged.setdefault(name, []).extend(values)
    return merged


# ---------------------------------------------------------------- encoding

def fit(columns: dict, features: list, categorical: list, label: str, task: str = "binary",
        classes: list | None = None) -> dict:
    numeric = [f for f in features if f not in categorical]
    state: dict = {"features": list(features), "numeric": numeric, "categorical": list(categorical), "label": label,
                   "task": task, "mean": {}, "std": {}, "vocabulary": {}}
    for name in numeric:
        values = to_float(columns[name])
        state["mean"][name] = float(np.nanmean(values))
        state["std"][name] = float(np.nanstd(values)) or 1.0
    for name in categorical:
        state["vocabulary"][name] = sorted({v for v in columns[name] if v not in MISSING})
    if task == "multiclass":
        state["classes"] = list(classes) if classes else sorted({str(v) for v in columns[label] if v not in MISSING})
    return state


def width(state: dict) -> int:
    return len(state["numeric"]) + sum(len(v) + 1 for v in state["vocabulary"].values())


def column_features(state: dict) -> list:
    """The feature each column of transform's matrix encodes (a categorical one fills its one-hot slots and 'other')."""
    return [*state["numeric"], *(name for name in state["categorical"] for _ in range(len(state["vocabulary"][name]) + 1))]


def transform(columns: dict, state: dict) -> np.ndarray:
    """Rows x width float32 matrix; missing numerics become the mean, unseen categories the 'other' slot."""
    parts = []
    for name in state["numeric"]:
        values = to_float(columns[name])
        values = np.where(np.isnan(values), state["mean"][name], values)
        parts.append(((values - state["mean"][name]) / state["std"][name])[:, None])
    for name in state["categorical"]:
        vocabulary = state["vocabulary"][name]
        index = {value: i for i, value in enumerate(vocabulary)}
        codes = np.array([index.get(str(v), len(vocabulary)) for v in columns[name]], dtype=np.int64)
        parts.append(np.eye(len(vocabulary) + 1, dtype=np.float32)[codes])
    return np.concatenate(parts, axis=1).astype(np.float32)


def labels(columns: dict, state: dict) -> np.ndarray:
    """Binary and regression: float labels; multiclass: the index of each label in state['classes']."""
    values = columns[state["label"]]
    if state["task"] == "multiclass":
        index = {c: i for i, c in enumerate(state["classes"])}
        unknown = sorted({str(v) for v in values} - set(index))
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not among the classes {state['classes']}")
        return np.asarray([index[str(v)] for v in values], dtype=np.int64)
    return np.asarray([float(v) for v in values], dtype=np.float32)


def to_float(values: Iterable) -> np.ndarray:
    return np.array([np.nan if v is None or str(v) in MISSING else float(v) for v in values], dtype=np.float64)


# ---------------------------------------------------------------- the split

def split_indices(rows: int, share: float, seed: int) -> tuple:
    order = np.random.default_rng(seed).permutation(rows)
    cut = int(rows * (1 - share))
    return order[:cut], order[cut:]


def validation_overlap(train_columns: dict, validation_columns: dict, features: list) -> dict:
    """How many validation rows have exactly the features of some training row: duplicates in both splits (a
    small dataset resampled to a large one, repeated exports) let the model be scored on rows it memorized."""
    seen = set(zip(*(train_columns[name] for name in features)))
    rows = list(zip(*(validation_columns[name] for name in features)))
    shared = sum(1 for row in rows if row in seen)
    return {"validation_rows": len(rows), "shared_with_training": shared,
            "share": round(shared / len(rows), 6) if rows else 0.0}


def overlap_warning(overlap: dict) -> str:
    """The training log's line about train/validation leakage; '' when no validation row is a training row."""
    warning = leakage_warning(overlap)
    return f"WARNING: {warning}" if warning else ""


@dataclass
class Split:
    """The encoded training and validation parts of a channel, and the raw validation rows (what the challenger's
    and the champion's serving code both score). overlap: validation_overlap's counts."""

    state: dict
    train_columns: dict
    validation_columns: dict
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    overlap: dict = field(default_factory=dict)

    def validation_rows(self) -> list:
        names = self.state["features"]
        return [dict(zip(names, values)) for values in zip(*(self.validation_columns[n] for n in names))]

    def validation_labels(self) -> list:
        return list(self.validation_columns[self.state["label"]])


def load_split(channel: Path, task, share: float, seed: int) -> Split:
    """The channel's CSV files split (seeded) into training and validation; the encoding is fitted on the
    training part only. task: modelkit.contract.Task."""
    columns = read_channel(channel)
    absent = sorted({*task.features, task.label} - set(columns))
    if absent:
        raise SystemExit(f"the training data lacks columns {absent}; it has {sorted(columns)}")
    train_index, validation_index = split_indices(len(columns[task.label]), share, seed)
    train_columns = {k: [v[i] for i in train_index] for k, v in columns.items()}
    validation_columns = {k: [v[i] for i in validation_index] for k, v in columns.items()}
    classes = task.classes or (sorted({str(v) for v in columns[task.label] if v not in MISSING})
                               if task.type == "multiclass" else None)  # a rare class may fall in validation only
    state = fit(train_columns, task.features, [c for c in task.categorical if c in columns], task.label, task.type,
                classes)
    overlap = validation_overlap(train_columns, validation_columns, task.features)
    if warning := overlap_warning(overlap):
        print(warning, flush=True)
    return Split(state, train_columns, validation_columns, transform(train_columns, state), labels(train_columns, state),
                 transform(validation_columns, state), labels(validation_columns, state), overlap)

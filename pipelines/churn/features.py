"""Feature preprocessing shared by training and serving: standardized numerics, one-hot categoricals.

The fitted state is plain JSON (stored as preprocessing.json in the model artifact), so serving
never depends on the training environment.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

import numpy as np

MISSING = ("", "nan", "NaN", "null", "None")


def read_csv_columns(path: Path) -> dict[str, list[str]]:
    with Path(path).open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns: list[list[str]] = [[] for _ in header]
        for row in reader:
            for index, value in enumerate(row):
                columns[index].append(value)
    return dict(zip(header, columns))


def read_channel(directory: Path) -> dict[str, list[str]]:
    """All CSV files of a SageMaker channel directory, concatenated in name order."""
    files = sorted(Path(directory).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no .csv files in channel directory {directory}")
    merged: dict[str, list[str]] = {}
    for path in files:
        for name, values in read_csv_columns(path).items():
            merged.setdefault(name, []).extend(values)
    return merged


def fit(columns: dict[str, list[str]], features: list[str], categorical: list[str], label: str) -> dict:
    numeric = [f for f in features if f not in categorical]
    state: dict = {"features": features, "numeric": numeric, "categorical": categorical, "label": label,
                   "mean": {}, "std": {}, "vocabulary": {}}
    for name in numeric:
        values = _to_float(columns[name])
        state["mean"][name] = float(np.nanmean(values))
        state["std"][name] = float(np.nanstd(values)) or 1.0
    for name in categorical:
        state["vocabulary"][name] = sorted({v for v in columns[name] if v not in MISSING})
    return state


def width(state: dict) -> int:
    return len(state["numeric"]) + sum(len(v) + 1 for v in state["vocabulary"].values())


def transform(columns: dict[str, Iterable], state: dict) -> np.ndarray:
    """Rows x width float32 matrix; missing numerics become the mean, unseen categories an 'other' slot."""
    parts = []
    for name in state["numeric"]:
        values = _to_float(columns[name])
        values = np.where(np.isnan(values), state["mean"][name], values)
        parts.append(((values - state["mean"][name]) / state["std"][name])[:, None])
    for name in state["categorical"]:
        vocabulary = state["vocabulary"][name]
        index = {value: i for i, value in enumerate(vocabulary)}
        codes = np.array([index.get(str(v), len(vocabulary)) for v in columns[name]])
        parts.append(np.eye(len(vocabulary) + 1, dtype=np.float32)[codes])
    return np.concatenate(parts, axis=1).astype(np.float32)


def labels_of(columns: dict[str, list[str]], label: str) -> np.ndarray:
    return np.asarray([float(v) for v in columns[label]], dtype=np.float32)


def _to_float(values: Iterable) -> np.ndarray:
    return np.array([np.nan if v is None or str(v) in MISSING else float(v) for v in values], dtype=np.float64)

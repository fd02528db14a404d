"""Drift baselines in SageMaker Model Monitor's statistics.json / constraints.json shape (numpy only).

Numeric features keep a fine equal-width histogram (`distribution.kll.buckets`) between robust
bounds, which is enough for PSI, Jensen-Shannon and a histogram KS test; categorical features keep
their value counts (`distribution.categorical.buckets`). Existing Model Monitor baselines (10 KLL
buckets) load through the same reader. This file is copied next to train.py in the training bundle.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

FINE_BINS = 200
# One definition of a missing value for the baseline (training) and the window (captured traffic).
MISSING_LABELS = ("", "nan", "NaN", "null", "None")
MISSING = MISSING_LABELS


def numeric_array(values: Iterable) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values.astype(np.float64, copy=False)
    return np.array([np.nan if v is None or str(v) in MISSING else float(v) for v in values], dtype=np.float64)


def numeric_feature(name: str, values: np.ndarray, bins: int = FINE_BINS) -> dict:
    """Statistics of the finite values; infinities are counted into the end buckets (where the drift engine puts
    them too) and reported as `num_infinite`, so one +inf cannot blind the feature or break strict JSON."""
    present = values[~np.isnan(values)]
    finite = present[np.isfinite(present)]
    common = {"num_present": int(present.size), "num_missing": int(values.size - present.size)}
    if present.size > finite.size:
        common["num_infinite"] = int(present.size - finite.size)
    if finite.size == 0:
        return {"name": name, "inferred_type": "Fractional", "numerical_statistics": {"common": common}}
    low, high = (float(q) for q in np.quantile(finite, [0.001, 0.999]))
    if high <= low:
        low, high = float(finite.min()), float(finite.min()) + 1.0
    edges = np.linspace(low, high, bins + 1)
    index = np.clip((np.clip(present, low, high) - low) * (bins / (high - low)), 0, bins - 1).astype(np.int64)
    counts = np.bincount(index, minlength=bins)
    integral = bool(np.all(np.mod(finite, 1) == 0))
    return {
        "name": name,
        "inferred_type": "Integral" if integral else "Fractional",
        "numerical_statistics": {
            "common": common, "mean": float(finite.mean()), "sum": float(finite.sum()),
            "std_dev": float(finite.std()), "min": float(finite.min()), "max": float(finite.max()),
            "distribution": {"kll": {"buckets": [
                {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(counts[i])}
                for i in range(bins)
            ]}},
        },
    }


def categorical_feature(name: str, values: Sequence) -> dict:
    strings = np.asarray([str(v) for v in values], dtype=object)
    missing = np.isin(strings, MISSING)
    labels, counts = np.unique(strings[~missing].astype(str), return_counts=True)
    return {
        "name": name,
        "inferred_type": "String",
        "string_statistics": {
            "common": {"num_present": int((~missing).sum()), "num_missing": int(missing.sum())},
            "distinct_count": float(len(labels)),
            "distribution": {"categorical": {"buckets": [
                {"value": str(v), "count": float(c)} for v, c in zip(labels, counts)]}},
        },
    }


def compute(columns: dict[str, Sequence], features: Sequence[str], categorical: Sequence[str],
            bins: int = FINE_BINS) -> tuple[dict, dict]:
    """(statistics.json, constraints.json) for the given feature columns."""
    described = [
        categorical_feature(name, columns[name]) if name in categorical
        else numeric_feature(name, numeric_array(columns[name]), bins)
        for name in features
    ]
    item_count = len(next(iter(columns.values()))) if columns else 0
    statistics = {"version": 0.0, "dataset": {"item_count": item_count}, "features": described}
    return statistics, constraints_for(described)


def constraints_for(described: list[dict]) -> dict:
    features = []
    for feature in described:
        stats = feature.get("numerical_statistics") or feature.get("string_statistics")
        common = stats["common"]
        total = common["num_present"] + common["num_missing"]
        entry = {"name": feature["name"], "inferred_type": feature["inferred_type"],
                 "completeness": common["num_present"] / total if total else 0.0}
        if "numerical_statistics" in feature:
            entry["num_constraints"] = {"is_non_negative": stats.get("min", 0.0) >= 0}
        else:
            entry["string_constraints"] = {"domains": [b["value"] for b in stats["distribution"]["categorical"]["buckets"]]}
        features.append(entry)
    return {
        "version": 0.0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
            "distribution_constraints": {"perform_comparison": "Enabled", "comparison_threshold": 0.1,
                                         "comparison_method": "Robust"},
        },
    }

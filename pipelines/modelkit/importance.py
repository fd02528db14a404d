"""Feature attributions by permutation importance (evaluation.json's "explainability"), for every framework alike.

The artifact's own serving code scores the validation rows (at most MAX_ROWS of them, in the split's seeded order);
then, REPEATS times per feature, the same rows with that feature's column shuffled (seeded). A feature's importance
is how much the objective metric gets worse: the baseline minus the shuffled score when higher is better, the
shuffled score minus the baseline when lower is better (so more important is always larger; near 0 or negative:
the model does not rely on it). The cost is (1 + features x REPEATS) predictions of MAX_ROWS rows at most.

    {"version": "1.0", "explanations": {"permutation_importance": {
        "metric": "validation:auc", "direction": "maximize", "baseline": 0.85, "repeats": 3, "seed": 7, "rows": 1000,
        "label": {"global_importance": {"tenure_months": 0.081, ...},
                  "standard_deviation": {"tenure_months": 0.004, ...}}}}}

Shaped like Clarify's explanations section ("kernel_shap" -> {label: {"global_shap_values": ...}}): one method,
one output ("label"), a number per feature.

Where the framework computes exact SHAP values itself, train.py adds them beside it (finish's `explanations`):
XGBoost's TreeSHAP (`Booster.predict(..., pred_contribs=True)`) through tree_shap, in Clarify's own form, in the
booster's margin (the label's units for a regression, log-odds for a classifier), one output per class of a
multiclass model:

    "tree_shap": {"label": {"global_shap_values": {"living_area_sqft": 61.2, ...}, "expected_value": 251.3}}
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .data import column_features

VERSION = "1.0"
MAX_ROWS = 2000
REPEATS = 3
SEED = 7

Scorer = Callable[[list, list], float]  # (labels, prediction records) -> the objective metric


def shuffled(rows: list, feature: str, order: np.ndarray) -> list:
    """The rows with one feature's values moved between rows by the permutation order."""
    values = [rows[i][feature] for i in order]
    return [{**row, feature: value} for row, value in zip(rows, values)]


def drops(predict: Callable[[list], list], rows: list, labels: list, features: list, score: Scorer, baseline: float,
          direction: str, repeats: int = REPEATS, seed: int = SEED) -> dict:
    """{feature: [how much worse the score got, per repeat]}; predict: rows -> prediction records."""
    sign = 1.0 if direction == "maximize" else -1.0
    generator = np.random.default_rng(seed)
    return {feature: [sign * (baseline - score(labels, predict(shuffled(rows, feature, generator.permutation(len(rows))))))
                      for _ in range(repeats)] for feature in features}


def document(predict: Callable[[list], list], rows: list, labels: list, features: list, score: Scorer, metric: str,
             direction: str, max_rows: int = MAX_ROWS, repeats: int = REPEATS, seed: int = SEED) -> dict | None:
    """None when the objective is not a number on these rows (an AUC of rows of one class): nothing to compare."""
    rows, labels = rows[:max_rows], labels[:max_rows]
    baseline = score(labels, predict(rows))
    if not math.isfinite(baseline):
        return None
    per_feature = drops(predict, rows, labels, features, score, baseline, direction, repeats, seed)
    return {"version": VERSION, "explanations": {"permutation_importance": {
        "metric": metric, "direction": direction, "baseline": baseline, "repeats": repeats, "seed": seed,
        "rows": len(rows),
        "label": {"global_importance": {f: float(np.mean(d)) for f, d in per_feature.items()},
                  "standard_deviation": {f: float(np.std(d)) for f, d in per_feature.items()}}}}}


def tree_shap(contributions, state: dict, outputs: list | None = None, max_rows: int = MAX_ROWS) -> dict:
    """Clarify's explanations entry of per-row SHAP values over the encoded columns: contributions rows x (columns + 1,
    the last the expected value) or, for several outputs (a multiclass model's classes), rows x outputs x (columns +
    1). A feature's SHAP value is the sum over its encoded columns (SHAP values add up), its global value the mean
    absolute value over the rows (at most max_rows)."""
    values = np.asarray(contributions, dtype=np.float64)[:max_rows]
    if values.ndim == 2:
        values, outputs = values[:, None, :], ["label"]
    owners = np.array(column_features(state))
    if values.shape[2] != len(owners) + 1 or len(outputs or []) != values.shape[1]:
        raise ValueError(f"SHAP values of shape {values.shape} do not fit {len(owners)} encoded columns and outputs "
                         f"{outputs}")
    return {"tree_shap": {str(output): {
        "global_shap_values": {feature: float(np.abs(values[:, k, :-1][:, owners == feature].sum(axis=1)).mean())
                               for feature in state["features"]},
        "expected_value": float(values[:, k, -1].mean())} for k, output in enumerate(outputs)}}

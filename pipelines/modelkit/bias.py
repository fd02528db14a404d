"""Bias figures per sensitive attribute, in SageMaker Clarify's analysis.json shape (evaluation.json's "bias").

Clarify's convention: facet d is the sensitive group (the rows whose attribute equals one value, or, for a numeric
attribute, lies above the spec's threshold), facet a every other row; rows missing the attribute are in neither.
n: rows, q: the share of a facet's labels that are the positive outcome, q': the same share of its predictions.

- pre-training (the training part's labels): CI = (na - nd) / (na + nd), DPL = qa - qd
- post-training (the challenger's predictions on the validation rows): DI = q'd / q'a, DPPL = q'a - q'd

The positive outcome: binary, the label bias.positive_label (default 1) and a predicted "label" equal to it;
multiclass, the class bias.positive_label; regression (Clarify's convention for a continuous label), a label or a
predicted "value" above bias.label_threshold (default: the training labels' median). A metric a facet cannot
measure (a facet without rows; DI where facet a has no positive prediction) is null.

    {"version": "1.0",
     "pre_training_bias_metrics": {"label": "churned", "label_value_or_threshold": "1",
         "facets": {"region": [{"value_or_threshold": "south", "metrics": [
             {"name": "CI", "description": "Class Imbalance (CI)", "value": 0.49},
             {"name": "DPL", "description": "Difference in Positive Proportions in Labels (DPL)", "value": -0.01}]}],
                    "age": [{"value_or_threshold": "(60, 90]", "metrics": [...]}]}},
     "post_training_bias_metrics": {same shape, metrics DI and DPPL}}

Each categorical attribute has one entry per value (bias.sensitive_attributes[].values, default every value the
data holds), each against the rest; a numeric one has one entry, its interval (threshold, largest value].
"""

from __future__ import annotations

import numpy as np

from .bias_terms import METRICS, POST_TRAINING, PRE_TRAINING
from .data import MISSING, Split, to_float

VERSION = "1.0"


# ---------------------------------------------------------------- the metrics (Clarify's formulas)

MAX_GROUPS = 100  # groups of one attribute: each is a pass over the rows and a facet in every report


def class_imbalance(n_a: int, n_d: int) -> float | None:
    return (n_a - n_d) / (n_a + n_d) if n_a + n_d else None


def positive_share(positive: np.ndarray, facet: np.ndarray) -> float | None:
    return float(positive[facet].mean()) if facet.any() else None


def difference(q_a: float | None, q_d: float | None) -> float | None:
    """DPL of the labels' shares, DPPL of the predictions'."""
    return None if q_a is None or q_d is None else q_a - q_d


def disparate_impact(q_a: float | None, q_d: float | None) -> float | None:
    return None if q_a is None or q_d is None or q_a == 0 else q_d / q_a


def pre_training(positive: np.ndarray, d: np.ndarray, a: np.ndarray) -> dict:
    return {"CI": class_imbalance(int(a.sum()), int(d.sum())),
            "DPL": difference(positive_share(positive, a), positive_share(positive, d))}


def post_training(predicted_positive: np.ndarray, d: np.ndarray, a: np.ndarray) -> dict:
    q_a, q_d = positive_share(predicted_positive, a), positive_share(predicted_positive, d)
    return {"DI": disparate_impact(q_a, q_d), "DPPL": difference(q_a, q_d)}


# ---------------------------------------------------------------- facets and outcomes

def facets(attribute: dict, train_values: list, validation_values: list) -> list:
    """[(value_or_threshold, facet d test)]: each test maps a column's values to (d, a) masks."""
    if attribute.get("threshold") is not None:
        threshold = float(attribute["threshold"])
        known = to_float([*train_values, *validation_values])
        known = known[~np.isnan(known)]
        largest = float(known.max()) if known.size else threshold
        return [(f"({threshold:g}, {largest:g}]", lambda values: _above(values, threshold))]
    groups = attribute.get("values") or sorted({str(v) for v in [*train_values, *validation_values]} - set(MISSING))
    if len(groups) > MAX_GROUPS:  # e.g. a numeric column named without a threshold: one group a row
        raise SystemExit(f"bias: {attribute['name']} has {len(groups):,} distinct values, more than {MAX_GROUPS} groups; "
                         "fix: give it a threshold (numeric) or list the values to compare (bias.sensitive_attributes)")
    return [(str(group), lambda values, group=str(group): _equal(values, group)) for group in groups]


def _above(values: list, threshold: float) -> tuple:
    numbers = to_float(values)
    known = ~np.isnan(numbers)
    d = known & (np.where(known, numbers, -np.inf) > threshold)
    return d, known & ~d


def _equal(values: list, group: str) -> tuple:
    text = np.array([str(v) for v in values], dtype=object)
    known = ~np.isin(text, list(MISSING))
    d = known & (text == group)
    return d, known & ~d


def outcome(task_type: str, bias: dict, train_labels: list) -> tuple:
    """(label_value_or_threshold, labels -> positive mask, prediction records -> positive mask)."""
    if task_type == "regression":
        threshold = bias.get("label_threshold")
        threshold = float(np.median(to_float(train_labels))) if threshold is None else float(threshold)
        largest = float(np.nanmax(to_float(train_labels)))
        return (f"({threshold:g}, {largest:g}]", lambda labels: to_float(labels) > threshold,
                lambda records: np.array([float(r["value"]) > threshold for r in records], dtype=bool))
    if task_type not in ("binary", "multiclass"):
        raise ValueError(f"no bias figures for task type {task_type!r}: its predictions have no outcome to count")
    positive = str(bias.get("positive_label") if bias.get("positive_label") is not None else "1")
    return (positive, lambda labels: np.array([str(v) == positive for v in labels], dtype=bool),
            lambda records: np.array([str(r["label"]) == positive for r in records], dtype=bool))


# ---------------------------------------------------------------- the document

def _entry(value_or_threshold: str, values: dict) -> dict:
    return {"value_or_threshold": value_or_threshold,
            "metrics": [{"name": name, "description": METRICS[name].description, "value": value}
                        for name, value in values.items()]}


def _section(label: str, label_value: str, facet_entries: dict) -> dict:
    return {"label": label, "label_value_or_threshold": label_value, "facets": facet_entries}


def document(task, split: Split, predictions: list) -> dict | None:
    """Clarify's analysis.json of the spec's sensitive attributes (task.bias); None when the spec names none.
    predictions: the challenger's prediction records of split.validation_rows(), in order."""
    bias = task.bias or {}
    attributes = bias.get("sensitive_attributes") or []
    if not attributes:
        return None
    absent = sorted({a["name"] for a in attributes} - set(split.train_columns))
    if absent:
        raise SystemExit(f"bias.sensitive_attributes {absent} are not columns of the training data; it has "
                         f"{sorted(split.train_columns)}")
    label = task.label
    label_value, labelled_positive, predicted_positive = outcome(task.type, bias, split.train_columns[label])
    positive_labels = labelled_positive(split.train_columns[label])
    positive_predictions = predicted_positive(predictions)
    pre, post = {}, {}
    for attribute in attributes:
        train_values, validation_values = split.train_columns[attribute["name"]], split.validation_columns[attribute["name"]]
        pre[attribute["name"]], post[attribute["name"]] = [], []
        for value_or_threshold, facet in facets(attribute, train_values, validation_values):
            pre[attribute["name"]].append(_entry(value_or_threshold, pre_training(positive_labels, *facet(train_values))))
            post[attribute["name"]].append(
                _entry(value_or_threshold, post_training(positive_predictions, *facet(validation_values))))
    return {"version": VERSION, PRE_TRAINING: _section(label, label_value, pre),
            POST_TRAINING: _section(label, label_value, post)}

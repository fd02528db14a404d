"""Metrics per task type, computed from prediction records (what inference.py's predict_fn returns), so the
challenger and the champion are scored the same way, through their own serving code.

Prediction records: binary {"probability", "label"}, multiclass {"label", "probabilities": {class: p}},
regression {"value"}. The names match pipelines/spec.py's TASK_METRICS.
"""

from __future__ import annotations

import math

import numpy as np


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve via the rank-sum statistic (ties get their average rank)."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def binary(labels, probabilities, prefix: str = "validation:") -> dict:
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    predicted = probabilities >= 0.5
    true_positive = float(np.sum(predicted & (labels == 1)))
    precision = true_positive / max(float(predicted.sum()), 1.0)
    recall = true_positive / max(float((labels == 1).sum()), 1.0)
    return {
        f"{prefix}auc": roc_auc(labels, probabilities),
        f"{prefix}accuracy": float(np.mean(predicted == (labels == 1))),
        f"{prefix}logloss": float(-np.mean(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities))),
        f"{prefix}precision": precision,
        f"{prefix}recall": recall,
        f"{prefix}f1": 2 * precision * recall / max(precision + recall, 1e-12),
    }


def multiclass(labels, probabilities, prefix: str = "validation:") -> dict:
    """labels: class indices; probabilities: rows x classes."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    predicted = probabilities.argmax(axis=1)
    f1s = []
    for k in range(probabilities.shape[1]):
        tp = float(np.sum((predicted == k) & (labels == k)))
        precision = tp / max(float(np.sum(predicted == k)), 1.0)
        recall = tp / max(float(np.sum(labels == k)), 1.0)
        f1s.append(2 * precision * recall / max(precision + recall, 1e-12))
    return {
        f"{prefix}accuracy": float(np.mean(predicted == labels)),
        f"{prefix}macro_f1": float(np.mean(f1s)),
        f"{prefix}logloss": float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels]))),
    }


def regression(labels, values, prefix: str = "validation:") -> dict:
    labels = np.asarray(labels, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    errors = values - labels
    spread = float(np.sum((labels - labels.mean()) ** 2))
    nonzero = labels != 0
    return {
        f"{prefix}rmse": float(np.sqrt(np.mean(errors ** 2))),
        f"{prefix}mae": float(np.mean(np.abs(errors))),
        f"{prefix}r2": 1.0 - float(np.sum(errors ** 2)) / spread if spread > 0 else float("nan"),
        f"{prefix}mape": float(np.mean(np.abs(errors[nonzero] / labels[nonzero]))) if nonzero.any() else float("nan"),
    }


def from_predictions(task: str, labels: list, predictions: list, classes: list | None = None,
                     prefix: str = "validation:") -> dict:
    """Metrics of prediction records against the raw labels (strings as read from the CSV)."""
    metric, truth, scores = arrays(task, labels, predictions, classes)
    return metric(truth, scores, prefix)


def arrays(task: str, labels: list, predictions: list, classes: list | None = None):
    """(the task's metric function, the labels as an array, the scores as an array or a rows x classes matrix): the
    records turned into what the metric functions take, once (a bootstrap indexes these arrays per resample)."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if task == "binary":
        return binary, np.array([float(v) for v in labels]), np.array([float(p["probability"]) for p in predictions])
    if task == "regression":
        return regression, np.array([float(v) for v in labels]), np.array([float(p["value"]) for p in predictions])
    if task == "multiclass":
        classes = list(classes or sorted({str(v) for v in labels}))
        index = {c: i for i, c in enumerate(classes)}
        if not all(str(v) in index for v in labels):
            _unknown_classes(labels, classes)
        matrix = np.array([[float(p["probabilities"].get(c, 0.0)) for c in classes] for p in predictions])
        return multiclass, np.array([index[str(v)] for v in labels]), matrix
    raise ValueError(f"no built-in metrics for task type {task!r}; a custom task passes its own metric function")


def _unknown_classes(labels: list, classes: list) -> dict:
    unknown = sorted({str(v) for v in labels} - set(classes))
    raise ValueError(f"labels {unknown[:5]} are not among the model's classes {classes[:10]}")


def print_metrics(metrics: dict, prefix: str = "") -> None:
    """One 'name=value;' line per metric, the form the spec's regex (and SageMaker's metric definitions) read.
    prefix 'champion:' names the champion's scores (printed first, so the challenger's are the last match)."""
    for name, value in metrics.items():
        label = f"{prefix}{name.rpartition(':')[2]}" if prefix else name
        print(f"{label}={value:.6f};" if math.isfinite(value) else f"{label}=nan;", flush=True)

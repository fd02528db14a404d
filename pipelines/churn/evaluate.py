"""Metrics, the evaluation report and the model card for the churn model.

Imported by train.py (validation metrics after training) and runnable on its own against a saved
model directory and a labelled CSV: `python evaluate.py --model-dir DIR --data FILE --out DIR`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
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


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, prefix: str = "validation") -> dict[str, float]:
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    predicted = probabilities >= 0.5
    true_positive = float(np.sum(predicted & (labels == 1)))
    precision = true_positive / max(float(predicted.sum()), 1.0)
    recall = true_positive / max(float((labels == 1).sum()), 1.0)
    return {
        f"{prefix}:auc": roc_auc(labels, probabilities),
        f"{prefix}:accuracy": float(np.mean(predicted == (labels == 1))),
        f"{prefix}:logloss": float(-np.mean(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities))),
        f"{prefix}:precision": precision,
        f"{prefix}:recall": recall,
        f"{prefix}:f1": 2 * precision * recall / max(precision + recall, 1e-12),
    }


def print_metrics(metrics: dict[str, float]) -> None:
    """One line per metric, in the 'name=value;' form the spec's regex (and SageMaker) reads."""
    for name, value in metrics.items():
        print(f"{name}={value:.6f};", flush=True)


def write_report(out_dir: Path, metrics: dict[str, float], details: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"metrics": metrics, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **details}
    path = out_dir / "evaluation.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    return path


def write_model_card(out_dir: Path, metrics: dict[str, float], details: dict) -> Path:
    lines = [
        f"# Model card: {details.get('model', 'churn')}",
        "",
        "Binary classifier: probability that a customer churns in the next period.",
        "",
        "## Training",
        f"- rows: {details.get('train_rows')} train / {details.get('validation_rows')} validation",
        f"- device: {details.get('device')}, precision: {details.get('precision')}, world size: {details.get('world_size')}",
        f"- epochs: {details.get('epochs_completed')} (resumed from epoch {details.get('resumed_from_epoch')})",
        f"- hyperparameters: `{json.dumps(details.get('hyperparameters', {}), sort_keys=True)}`",
        "",
        "## Validation metrics",
        *[f"- {name}: {value:.4f}" for name, value in metrics.items()],
        "",
        "## Intended use and limits",
        "Scores customers of the population described by the training data; monitor drift before trusting",
        "scores on a shifted population (the drift hook does this on captured traffic).",
    ]
    path = out_dir / "model_card.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    import inference  # the serving code loads the artifact exactly as the endpoint will

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = inference.model_fn(str(args.model_dir))
    rows, labels = inference.read_labelled_csv(args.data, model["preprocessing"]["label"])
    probabilities = inference.predict_fn(rows, model)
    metrics = classification_metrics(labels, np.array([p["probability"] for p in probabilities]), prefix="test")
    print_metrics(metrics)
    write_report(args.out, metrics, {"rows": len(labels), "data": str(args.data)})


if __name__ == "__main__":
    main()

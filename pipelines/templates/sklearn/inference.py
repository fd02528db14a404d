"""Serving handlers for SageMaker's scikit-learn framework container (script mode: model_fn, input_fn, predict_fn,
output_fn), also used in-process by the local mode, the smoke test and the champion's re-scoring.

Requests and responses: modelkit.serving; records follow the task type in preprocessing.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np

# code/ (the artifact's serving code, with modelkit beside this file) is on the path in the serving container,
# in the local mode and when the champion is re-scored.
from modelkit import serving
from modelkit.serving import BadRequest, input_fn, output_fn  # noqa: F401  (the container calls these by name)


def model_fn(model_dir: str) -> dict:
    directory = Path(model_dir)
    return {"estimator": joblib.load(directory / "model.joblib"),
            "preprocessing": json.loads((directory / "preprocessing.json").read_text())}


def predict_fn(rows: list, model: dict) -> list:
    state, estimator = model["preprocessing"], model["estimator"]
    matrix = serving.encoded(rows, state)
    if state["task"] == "regression":
        return serving.regression_records(estimator.predict(matrix))
    probabilities = estimator.predict_proba(matrix)
    if state["task"] == "binary":
        return serving.binary_records(probabilities[:, list(estimator.classes_).index(1.0)])
    full = np.zeros((len(rows), len(state["classes"])))
    full[:, [int(c) for c in estimator.classes_]] = probabilities  # classes absent from training get 0
    return serving.multiclass_records(full, state["classes"])

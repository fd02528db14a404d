"""Serving handlers for SageMaker's XGBoost framework container (script mode: model_fn, input_fn, predict_fn,
output_fn), also used in-process by the local mode, the smoke test and the champion's re-scoring.

Requests and responses: modelkit.serving; records follow the task type in preprocessing.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import xgboost as xgb

# code/ (the artifact's serving code, with modelkit beside this file) is on the path in the serving container,
# in the local mode and when the champion is re-scored.
from modelkit import serving
from modelkit.serving import BadRequest, input_fn, output_fn  # noqa: F401  (the container calls these by name)


def model_fn(model_dir: str) -> dict:
    directory = Path(model_dir)
    booster = xgb.Booster(model_file=str(directory / "model.json"))
    # One thread per request: small batches are 100x faster without the thread pool's start-up (and the serving
    # container runs one worker per CPU).
    booster.set_param({"nthread": 1})
    return {"booster": booster, "preprocessing": json.loads((directory / "preprocessing.json").read_text())}


def predict_fn(rows: list, model: dict) -> list:
    state = model["preprocessing"]
    scores = model["booster"].predict(xgb.DMatrix(serving.encoded(rows, state), nthread=1))
    if state["task"] == "binary":
        return serving.binary_records(scores)
    if state["task"] == "multiclass":
        return serving.multiclass_records(scores, state["classes"])
    return serving.regression_records(scores)

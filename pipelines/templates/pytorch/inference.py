"""Serving handlers for the SageMaker PyTorch inference container (model_fn, input_fn, predict_fn, output_fn),
also used in-process by the local mode, the smoke test and the champion's re-scoring.

Requests and responses: modelkit.serving; records follow the task type in preprocessing.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

# code/ (the artifact's serving code, with modelkit beside this file) is on the path in the serving container,
# in the local mode and when the champion is re-scored.
from modelkit import serving
from modelkit.serving import BadRequest, input_fn, output_fn  # noqa: F401  (the container calls these by name)


def model_fn(model_dir: str) -> dict:
    directory = Path(model_dir)
    saved = torch.load(directory / "model.pt", map_location="cpu", weights_only=True)
    width, hidden, out = saved["width"], saved["hidden_units"], saved["outputs"]
    network = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                            nn.Linear(hidden, out))
    network.load_state_dict(saved["state_dict"])
    network.eval()
    return {"network": network, "preprocessing": json.loads((directory / "preprocessing.json").read_text())}


def predict_fn(rows: list, model: dict) -> list:
    state = model["preprocessing"]
    with torch.no_grad():
        output = model["network"](torch.from_numpy(serving.encoded(rows, state)))
    if state["task"] == "binary":
        return serving.binary_records(torch.sigmoid(output.squeeze(-1)).numpy())
    if state["task"] == "multiclass":
        return serving.multiclass_records(torch.softmax(output, dim=-1).numpy(), state["classes"])
    return serving.regression_records(output.squeeze(-1).numpy() * state["target_std"] + state["target_mean"])

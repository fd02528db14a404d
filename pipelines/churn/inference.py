"""Serving handlers for the SageMaker PyTorch inference container (model_fn, input_fn, predict_fn, output_fn),
also used in-process by the local mode, the smoke test and the champion's re-scoring.

Requests and responses: modelkit.serving (JSON or CSV in; {"predictions": [{"probability", "label"}]} out).
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
    width, hidden = saved["width"], saved["hidden_units"]
    network = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                            nn.Linear(hidden, 1))
    network.load_state_dict(saved["state_dict"])
    network.eval()
    return {"network": network, "preprocessing": json.loads((directory / "preprocessing.json").read_text())}


def predict_fn(rows: list, model: dict) -> list:
    matrix = serving.encoded(rows, model["preprocessing"])
    with torch.no_grad():
        probabilities = torch.sigmoid(model["network"](torch.from_numpy(matrix)).squeeze(-1)).numpy()
    return serving.binary_records(probabilities)

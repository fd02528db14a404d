"""Serving handlers for the SageMaker PyTorch inference container (model_fn, input_fn, predict_fn,
output_fn), also used in-process by the local mode and the smoke tests.

Requests: application/json ({"instances": [{feature: value, ...}]} or a list of such objects) or
text/csv with a header row. Responses: application/json {"predictions": [{"probability", "label"}]}.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import features  # noqa: E402

JSON, CSV = "application/json", "text/csv"
MAX_ROWS = 10_000


class BadRequest(ValueError):
    """Input the model cannot score; the message says what to change."""


def model_fn(model_dir: str) -> dict:
    directory = Path(model_dir)
    saved = torch.load(directory / "model.pt", map_location="cpu", weights_only=True)
    width, hidden = saved["width"], saved["hidden_units"]
    network = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                            nn.Linear(hidden, 1))
    network.load_state_dict(saved["state_dict"])
    network.eval()
    return {"network": network, "preprocessing": json.loads((directory / "preprocessing.json").read_text())}


def input_fn(body: bytes | str, content_type: str = JSON) -> list[dict]:
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    media_type = (content_type or JSON).split(";")[0].strip().lower()
    if media_type == JSON:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadRequest(f"body is not valid JSON: {error}") from None
        rows = payload.get("instances") if isinstance(payload, dict) else payload
        if isinstance(rows, dict):
            rows = [rows]
    elif media_type == CSV:
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        raise BadRequest(f"unsupported content type {content_type!r}; send {JSON} or {CSV}")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise BadRequest('expected {"instances": [{feature: value, ...}, ...]} with at least one row')
    if len(rows) > MAX_ROWS:
        raise BadRequest(f"{len(rows)} rows in one request; send at most {MAX_ROWS}")
    return rows


def predict_fn(rows: list[dict], model: dict) -> list[dict]:
    state = model["preprocessing"]
    missing = sorted({name for name in state["features"] for row in rows if name not in row})
    if missing:
        raise BadRequest(f"rows lack features {missing}")
    try:
        matrix = features.transform({name: [row[name] for row in rows] for name in state["features"]}, state)
    except (TypeError, ValueError) as error:
        raise BadRequest(f"a numeric feature has a non-numeric value: {error}") from None
    with torch.no_grad():
        probabilities = torch.sigmoid(model["network"](torch.from_numpy(matrix)).squeeze(-1)).numpy()
    return [{"probability": round(float(p), 6), "label": int(p >= 0.5)} for p in np.atleast_1d(probabilities)]


def output_fn(predictions: list[dict], accept: str = JSON) -> tuple[str, str]:
    if (accept or JSON).split(";")[0].strip().lower() not in (JSON, "*/*"):
        raise BadRequest(f"unsupported accept type {accept!r}; ask for {JSON}")
    return json.dumps({"predictions": predictions}), JSON


def read_labelled_csv(path: Path, label: str) -> tuple[list[dict], np.ndarray]:
    with Path(path).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows, np.array([float(row.pop(label)) for row in rows])

"""What every inference.py shares: request parsing (JSON or CSV), response writing, and prediction records per
task type. A model's inference.py keeps only model_fn and predict_fn.

Requests: application/json ({"instances": [{feature: value, ...}]}, a list of such objects, or one object) or
text/csv with a header row. Responses: application/json {"predictions": [record, ...]} with records
binary {"probability", "label"}, multiclass {"label", "probabilities"}, regression {"value"}.

Every response names its request: "inference_id", a uuid4 hex the container assigns, one per request (not per
row). SageMaker documents the caller's
InvokeEndpoint `InferenceId` (header X-Amzn-SageMaker-Inference-Id) only as added to the captured data, in the line's
`eventMetadata.inferenceId`, and the script-mode handlers (input_fn ... output_fn) see no request headers: the
container cannot answer with it. So the id that labels name (docs/models.md, lambdas/quality) is
`eventMetadata.inferenceId` when the caller sent one, else the response's "inference_id". A request of one row is
labelled by that id; row N (from 0) of a request of several rows by "<id>:<N>".
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import uuid
from contextvars import ContextVar

import numpy as np

from . import data

JSON, CSV = "application/json", "text/csv"
MAX_ROWS = 10_000
# The model's name in every response, when its container sets it: a shared endpoint's data capture names neither the
# inference component nor the model, so the drift check tells each model's traffic by it (lambdas/drift/capture.py).
IDENTITY_VARIABLE = "MLOPS_MODEL"
# The same setting per request, where several models serve in one process (the local mode: pipelines/modelkit/loader).
REQUEST_IDENTITY: ContextVar[str | None] = ContextVar("mlops_model", default=None)


class BadRequest(ValueError):
    """Input the model cannot score; the message says what to change."""


def input_fn(body, content_type: str = JSON) -> list:
    text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    media_type = (content_type or JSON).split(";")[0].strip().lower()
    if media_type == JSON:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadRequest(f"body is not valid JSON: {error}") from None
        rows = payload.get("instances") if isinstance(payload, dict) and "instances" in payload else payload
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


def output_fn(predictions: list, accept: str = JSON) -> tuple:
    if (accept or JSON).split(";")[0].strip().lower() not in (JSON, "*/*"):
        raise BadRequest(f"unsupported accept type {accept!r}; ask for {JSON}")
    identity = REQUEST_IDENTITY.get() or os.environ.get(IDENTITY_VARIABLE)
    answer = {"predictions": predictions, **({"model": identity} if identity else {}), "inference_id": uuid.uuid4().hex}
    return json.dumps(answer), JSON


def encoded(rows: list, state: dict) -> np.ndarray:
    """The rows as the model's encoded matrix (preprocessing.json's state); BadRequest naming what is wrong."""
    missing = sorted({name for name in state["features"] for row in rows if name not in row})
    if missing:
        raise BadRequest(f"rows lack features {missing}")
    try:
        return data.transform({name: [row[name] for row in rows] for name in state["features"]}, state)
    except (TypeError, ValueError) as error:
        raise BadRequest(f"a numeric feature has a non-numeric value: {error}") from None


def binary_records(probabilities) -> list:
    return [{"probability": round(float(p), 6), "label": int(p >= 0.5)} for p in np.atleast_1d(probabilities)]


def regression_records(values) -> list:
    records = [{"value": round(float(v), 6)} for v in np.atleast_1d(values)]
    if not all(math.isfinite(r["value"]) for r in records):
        raise ValueError("the model predicted a value that is not a finite number")
    return records


def multiclass_records(probabilities, classes: list) -> list:
    matrix = np.atleast_2d(np.asarray(probabilities, dtype=np.float64))
    return [{"label": classes[int(row.argmax())], "probabilities": {c: round(float(p), 6) for c, p in zip(classes, row)}}
            for row in matrix]

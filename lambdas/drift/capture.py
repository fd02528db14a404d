"""SageMaker data-capture JSONL -> chunks of feature arrays for the engine, in bounded memory.

Each capture line holds one request: captureData.endpointInput.{data, encoding, observedContentType}.
Malformed lines are counted and a few are quoted in the report; they never stop the scan.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

import numpy as np

from lambdas.drift.engine import Accumulator

CHUNK_ROWS = 20_000
QUOTED_PROBLEMS = 5


@dataclass
class CaptureScan:
    features: list[str]
    categorical: set[str]
    accumulator: Accumulator
    lines: int = 0
    malformed: int = 0
    examples: list[str] = field(default_factory=list)
    absent: dict[str, int] = field(default_factory=dict)
    _rows: list[dict] = field(default_factory=list)

    def add_line(self, line: str, where: str) -> None:
        if not line.strip():
            return
        self.lines += 1
        try:
            rows = rows_of(json.loads(line))
        except (ValueError, KeyError, TypeError) as error:
            self.malformed += 1
            if len(self.examples) < QUOTED_PROBLEMS:
                self.examples.append(f"{where}: {type(error).__name__}: {str(error)[:160]}")
            return
        self._rows.extend(rows)
        if len(self._rows) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        for name in self.features:
            self.absent[name] = self.absent.get(name, 0) + sum(1 for row in rows if name not in row)
        numeric = [f for f in self.accumulator.reference.numeric]
        matrix = np.array([[_number(row.get(name)) for name in numeric] for row in rows], dtype=np.float64).reshape(len(rows), len(numeric))
        categories = [np.array(["" if row.get(name) is None else str(row.get(name)) for row in rows])
                      for name in self.accumulator.reference.categorical]
        self.accumulator.update(matrix, categories)

    def problems(self) -> tuple[list[str], list[str]]:
        """(notes, reasons that forbid a retrain)."""
        self.flush()
        notes, blocking = [], []
        if self.malformed:
            notes.append(f"{self.malformed} of {self.lines} capture lines were malformed and skipped: " + "; ".join(self.examples))
            if self.malformed > 0.1 * max(self.lines, 1):
                blocking.append(f"more than 10% of capture lines are malformed ({self.malformed}/{self.lines})")
        rows = self.accumulator.rows
        missing_columns = sorted(name for name, count in self.absent.items() if rows and count == rows)
        if missing_columns:
            blocking.append(f"schema mismatch: captured requests never carry {missing_columns}")
        if self.lines == 0:
            blocking.append("the window holds no captured requests")
        return notes, blocking


def _number(value) -> float:
    try:
        return float(value) if value not in (None, "") else np.nan
    except (TypeError, ValueError):
        return np.nan


def rows_of(record: dict) -> list[dict]:
    captured = record["captureData"]["endpointInput"]
    data = captured["data"]
    if captured.get("encoding", "JSON").upper() == "BASE64":
        data = base64.b64decode(data).decode("utf-8")
    content_type = captured.get("observedContentType", "application/json").split(";")[0].strip()
    if content_type == "text/csv":
        return [dict(row) for row in csv.DictReader(io.StringIO(data))]
    payload = json.loads(data) if isinstance(data, str) else data
    rows = payload.get("instances") if isinstance(payload, dict) else payload
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("request body is not {'instances': [{feature: value}]}")
    return rows


def hourly_prefixes(base: str, start: datetime, end: datetime) -> Iterable[str]:
    """SageMaker writes capture files under <base>/yyyy/mm/dd/hh/."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour <= end:
        yield f"{base.rstrip('/')}/{hour:%Y/%m/%d/%H}/"
        hour += timedelta(hours=1)


def capture_record(rows: list[dict], when: datetime, event_id: str) -> dict:
    """The capture line SageMaker writes for one JSON request (used by the local mode and the tests)."""
    return {"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                              "data": json.dumps({"instances": rows}), "encoding": "JSON"}},
            "eventMetadata": {"eventId": event_id, "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "eventVersion": "0"}

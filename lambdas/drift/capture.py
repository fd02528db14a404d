"""SageMaker data-capture JSONL -> chunks of feature columns for the engine, in bounded memory.

Each capture line holds one request: captureData.endpointInput.{observedContentType, mode, data, encoding}.
The request body is CSV (no header as SageMaker sends it, or with one) or JSON (`instances` of lists or
objects, a list of records, columns, or one object), and `encoding` is CSV, JSON or BASE64. Positional
rows take their columns from the spec's feature order; trailing extra columns (a label, ids) are ignored.
Malformed lines (too long, bad UTF-8, too deep, wrong shape) are counted, a few are quoted in the report,
and they never stop the scan.
"""

from __future__ import annotations

import base64
import binascii
import csv
import gc
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from collections import Counter
from itertools import repeat
from operator import itemgetter
from bisect import bisect_right
from typing import Iterable, Sequence

import numpy as np

from lambdas.drift import arrow_reader
from lambdas.drift.baseline import MISSING_LABELS
from lambdas.drift.engine import Accumulator
from lambdas.shared.capture_files import MAX_LINE_BYTES, decoded_data
from lambdas.shared.capture_files import line_batches, read_chunks  # noqa: F401  (re-exported: `mlops drift check`, tests)
from pipelines import naming

try:  # orjson parses capture lines ~5x faster than json; the stdlib keeps the hook working without it
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads

CHUNK_ROWS = 50_000
QUOTED_PROBLEMS = 5
MAX_FIELD_CHARS = 64 * 1024
BATCH_LINES = 16_384               # capture lines read together (see CaptureScan._read_lines)
BATCH_BYTES = 16 * 1024 * 1024     # ... or fewer when they are long
CSV_TYPES = ("text/csv", "application/csv")

csv.field_size_limit(MAX_FIELD_CHARS)


class Malformed(ValueError):
    """A capture line that cannot be read as a request of the spec's features."""


@dataclass
class CaptureScan:
    features: list[str]
    categorical: set[str]
    accumulator: Accumulator
    lines: int = 0
    malformed: int = 0
    ignored_columns: int = 0
    examples: list[str] = field(default_factory=list)
    absent: dict[str, int] = field(default_factory=dict)
    _positional: list[list] = field(default_factory=list)
    _records: list[dict] = field(default_factory=list)
    _blocks: list[list[list]] = field(default_factory=list)  # CSV bodies parsed in bulk: one list per feature
    _pending: int = 0
    _lines: list = field(default_factory=list)   # lines not yet read: they are read a batch at a time
    _marks: list = field(default_factory=list)   # (index in _lines, source, first line number or None)
    _batch_bytes: int = 0

    def add_line(self, line: bytes | str, where: str) -> None:
        """Queue one capture line known by `where` (quoted if it is malformed)."""
        self._marks.append((len(self._lines), where, None))
        self._lines.append(line)
        self._batch_bytes += len(line)
        if len(self._lines) >= BATCH_LINES or self._batch_bytes >= BATCH_BYTES:
            self._read_batch()

    def add_lines(self, lines: list, source: str, first_number: int = 1) -> None:
        """Queue consecutive lines of `source` (line numbers from first_number): the fast path, no per-line work."""
        if not lines:
            return
        self._marks.append((len(self._lines), source, first_number))
        self._lines.extend(lines)
        self._batch_bytes += sum(map(len, lines))
        if len(self._lines) >= BATCH_LINES or self._batch_bytes >= BATCH_BYTES:
            self._read_batch()

    def add_source(self, source: str, items: Iterable) -> None:
        """Every line of one capture file: `items` yields lines, or lists of lines (see line_batches)."""
        number = 1
        for item in items:
            if type(item) is list:
                self.add_lines(item, source, number)
                number += len(item)
            else:
                self.add_line(item, f"{source}:{number}")
                number += 1

    def _read_batch(self) -> None:
        with _no_gc():
            self._read_lines()

    def _read_lines(self) -> None:
        lines, marks = self._lines, self._marks
        self._lines, self._marks, self._batch_bytes = [], [], 0
        self.lines += len(lines)
        if self._read_with_arrow(lines):
            return
        where = _Locator(marks)
        bodies = _csv_bodies(lines)
        if bodies is not None:  # the usual batch: every line a one-row CSV request
            self._add_csv_rows(bodies, range(len(bodies)), where)
        else:
            self._read_carefully(lines, where)
        if self._pending >= CHUNK_ROWS:
            self.flush()

    def _read_with_arrow(self, lines: list) -> bool:
        """The whole batch through Arrow when it is plain one-row CSV requests or JSON records (arrow_reader)."""
        if not arrow_reader.available() or set(map(type, lines)) != {bytes}:
            return False
        reference = self.accumulator.reference
        columns = arrow_reader.read_batch(lines, self.features, self.categorical, reference.numeric, reference.categorical,
                                          MAX_LINE_BYTES, MAX_FIELD_CHARS)
        if columns is None:
            return False
        self.accumulator.update(columns.numeric, columns.categories)
        self.ignored_columns = max(self.ignored_columns, columns.extra_columns)
        for name, count in columns.absent.items():
            self.absent[name] = self.absent.get(name, 0) + count
        return True

    def _read_carefully(self, lines: list, where: "_Locator") -> None:
        bodies, body_lines = [], []  # one-row CSV bodies (text) for the bulk parser
        for index, line in enumerate(lines):
            try:
                if len(line) > MAX_LINE_BYTES:
                    raise Malformed(f"line of {len(line):,} bytes is over the {MAX_LINE_BYTES:,}-byte cap")
                captured = _loads(line)["captureData"]["endpointInput"]
                data, encoding = captured["data"], captured.get("encoding")
                if captured.get("observedContentType") == "text/csv" and (encoding == "CSV" or encoding == "BASE64"):
                    if encoding == "BASE64":
                        data = base64.b64decode(data, validate=True).decode("utf-8")
                    if type(data) is str and "\n" not in data and len(data) <= MAX_FIELD_CHARS:
                        bodies.append(data)
                        body_lines.append(index)
                        continue
                self._add_captured(captured)
            except (Malformed, ValueError, KeyError, TypeError, AttributeError, RecursionError, csv.Error,
                    binascii.Error) as error:
                if isinstance(line, (bytes, str)) and not line.strip():
                    self.lines -= 1  # a blank line is not a request
                else:
                    self._quote(where(index), error)
            if self._pending >= CHUNK_ROWS:
                self.flush()
        if bodies:
            self._add_csv_rows(bodies, body_lines, where)

    def _add_csv_rows(self, bodies: list[str], wheres: Sequence[int], where: "_Locator") -> None:
        """One-row CSV bodies parsed together: joined, split once, columns taken as strided slices. Bodies that
        need the careful path (quotes, a header, a width other than the batch's) go one by one."""
        wanted = len(self.features)
        commas = list(map(str.count, bodies, repeat(",")))
        width = Counter(commas).most_common(1)[0][0] + 1
        joined = ",".join(bodies)
        if width < wanted or '"' in joined or "\r" in joined:
            width = 0  # every body one by one
        elif commas.count(width - 1) != len(bodies):
            odd = [index for index, count in enumerate(commas) if count != width - 1]
            for index in odd:
                self._add_one_csv(bodies[index], where(wheres[index]))
            odd_set = set(odd)
            kept = [index for index in range(len(bodies)) if index not in odd_set]
            bodies, wheres = [bodies[i] for i in kept], [wheres[i] for i in kept]
            joined = ",".join(bodies)
        if width and self.features[0] in joined:
            width = 0  # a body may be a header, in any column order: the careful path decides
        fields = joined.split(",") if width else []
        if not width:
            for body, line in zip(bodies, wheres):
                self._add_one_csv(body, where(line))
            return
        if width > wanted:
            self.ignored_columns = max(self.ignored_columns, width - wanted)
        self._blocks.append([fields[index::width] for index in range(wanted)])
        self._pending += len(bodies)

    def _add_one_csv(self, body: str, where: str) -> None:
        try:
            self._add_csv(body)
        except (Malformed, ValueError, csv.Error) as error:
            self._quote(where, error)

    def _quote(self, where: str, error: BaseException) -> None:
        self.malformed += 1
        if len(self.examples) < QUOTED_PROBLEMS:
            self.examples.append(f"{where}: {type(error).__name__}: {str(error)[:160]}")

    def _add_request(self, line: bytes | str) -> None:
        if len(line) > MAX_LINE_BYTES:
            raise Malformed(f"line of {len(line):,} bytes is over the {MAX_LINE_BYTES:,}-byte cap")
        self._add_captured(_loads(line)["captureData"]["endpointInput"])

    def _add_captured(self, captured: dict) -> None:
        data = decoded_data(captured)
        data = data.decode("utf-8") if isinstance(data, bytes) else data
        content_type = str(captured.get("observedContentType", "application/json")).split(";")[0].strip().lower()
        if content_type in CSV_TYPES:
            self._add_csv(data)
        else:
            self._add_json(_loads(data) if isinstance(data, (str, bytes)) else data)

    def _add_csv(self, text: str) -> None:
        if "\n" not in text and '"' not in text and len(text) <= MAX_FIELD_CHARS:
            rows = [text.rstrip("\r").split(",")]  # one unquoted row, the usual real-time request: split is exact
        else:
            rows = [row for row in csv.reader(text.splitlines()) if row]
        if rows and self.features[0] in rows[0] and _is_header(rows[0], self.features):  # cheap test first
            header = [name.strip() for name in rows[0]]
            self._add_records([dict(zip(header, row)) for row in rows[1:]])
        else:
            self._add_positional(rows)

    def _add_json(self, payload) -> None:
        if isinstance(payload, dict) and "instances" in payload:
            payload = payload["instances"]
        if isinstance(payload, dict):
            if payload and all(isinstance(v, list) for v in payload.values()):
                payload = _columns_to_records(payload)
            else:
                payload = [payload]
        if not isinstance(payload, list) or not payload:
            raise Malformed("request body is not instances, records, columns or one object")
        if all(isinstance(row, dict) for row in payload):
            self._add_records(payload)
        elif all(isinstance(row, list) for row in payload):
            self._add_positional(payload)
        elif not any(isinstance(value, (dict, list)) for value in payload):
            self._add_positional([payload])  # one positional row: [v1, v2, ...]
        else:
            raise Malformed("request rows mix lists, objects and values")

    def _add_positional(self, rows: list[list]) -> None:
        wanted = len(self.features)
        if len(rows) == 1 and len(rows[0]) == wanted:
            self._positional.append(rows[0])
            self._pending += 1
            return
        if any(len(row) < wanted for row in rows):
            short = min(len(row) for row in rows)
            raise Malformed(f"a row has {short} values, the spec has {wanted} features")
        self.ignored_columns = max(self.ignored_columns, max((len(row) for row in rows), default=wanted) - wanted)
        self._positional.extend(rows)
        self._pending += len(rows)

    def _add_records(self, rows: list[dict]) -> None:
        self._records.extend(rows)
        self._pending += len(rows)

    def flush(self) -> None:
        if self._lines:
            self._read_batch()
        with _no_gc():
            self._flush()

    def _flush(self) -> None:
        columns = self._drain()
        if columns is None:
            return
        reference = self.accumulator.reference
        rows = len(next(iter(columns.values())))
        matrix = np.empty((rows, len(reference.numeric)), dtype=np.float64)
        for index, name in enumerate(reference.numeric):
            matrix[:, index] = numbers(columns[name])
        categories = [labels(columns[name]) for name in reference.categorical]
        self.accumulator.update(matrix, categories)

    def _drain(self) -> dict[str, list] | None:
        """The pending rows as one column (a list) per feature: positional rows, then records, then the CSV bodies
        parsed in bulk. Counts the absent (null) values on the way; bulk-parsed CSV fields are never null."""
        if not self._pending:
            return None
        positional, records, blocks = self._positional, self._records, self._blocks
        self._positional, self._records, self._blocks, self._pending = [], [], [], 0
        transposed = list(zip(*positional)) if positional else []
        by_record = _record_columns(records, self.features) if records else None
        columns = {}
        for index, name in enumerate(self.features):
            column = list(transposed[index]) if positional else []
            if by_record is not None:
                column.extend(by_record[index])
            if column:
                self.absent[name] = self.absent.get(name, 0) + column.count(None)
            elif name not in self.absent:
                self.absent[name] = 0
            for block in blocks:
                column.extend(block[index])
            columns[name] = column
        return columns

    def problems(self) -> tuple[list[str], list[str]]:
        """(notes, reasons that forbid a retrain)."""
        self.flush()
        notes, blocking = [], []
        if self.malformed:
            notes.append(f"{self.malformed} of {self.lines} capture lines were malformed and skipped: " + "; ".join(self.examples))
            if self.malformed > 0.1 * max(self.lines, 1):
                blocking.append(f"more than 10% of capture lines are malformed ({self.malformed}/{self.lines})")
        if self.ignored_columns:
            notes.append(f"positional requests carried up to {self.ignored_columns} column(s) beyond the spec's "
                         f"{len(self.features)} features (a label or ids); ignored")
        rows = self.accumulator.rows
        reference = self.accumulator.reference
        watched = set(reference.numeric) | set(reference.categorical)
        missing_columns = sorted(name for name, count in self.absent.items() if rows and count == rows and name in watched)
        if missing_columns:
            blocking.append(f"schema mismatch: captured requests never carry {missing_columns}")
        if self.lines == 0:
            blocking.append("the window holds no captured requests")
        return notes, blocking


@contextmanager
def _no_gc():
    """Parsing makes millions of acyclic objects (dicts, lists, strings) that would trigger the cyclic collector
    over and over for nothing (a third of the time of a JSON capture): it is paused for one batch."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Locator:
    """Where line `index` of a batch came from ("file:line"), worked out only for the lines that get quoted."""

    def __init__(self, marks: list[tuple[int, str, int | None]]) -> None:
        self.marks, self.starts = marks, [mark[0] for mark in marks]

    def __call__(self, index: int) -> str:
        start, source, first = self.marks[bisect_right(self.starts, index) - 1]
        return source if first is None else f"{source}:{first + index - start}"


def _csv_bodies(lines: list) -> list[str] | None:
    """The bodies of a batch in which every line is a capture of a one-row CSV request (SageMaker's real-time
    shape), parsed with one comprehension; None when any line needs the careful path."""
    try:
        if max(map(len, lines)) > MAX_LINE_BYTES:
            return None
        inputs = [_loads(line)["captureData"]["endpointInput"] for line in lines]
        bodies = [captured["data"] for captured in inputs
                  if captured.get("observedContentType") == "text/csv" and captured.get("encoding") == "CSV"]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    if len(bodies) != len(lines) or set(map(type, bodies)) != {str} or max(map(len, bodies)) > MAX_FIELD_CHARS \
            or any(map(str.__contains__, bodies, repeat("\n"))):
        return None
    return bodies


def _is_header(row: list[str], features: list[str]) -> bool:
    names = {value.strip() for value in row}
    return set(features) <= names


def _record_columns(records: list[dict], features: list[str]) -> list[list]:
    """One list per feature from request objects (a missing key is None): map and itemgetter run in C."""
    columns = []
    for name in features:
        try:
            columns.append(list(map(itemgetter(name), records)))
        except KeyError:
            columns.append(list(map(dict.get, records, repeat(name))))
    return columns


def _columns_to_records(columns: dict[str, list]) -> list[dict]:
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise Malformed(f"columnar request with columns of different lengths {sorted(lengths)}")
    names = list(columns)
    return [dict(zip(names, values)) for values in zip(*columns.values())]


def numbers(values: list) -> np.ndarray:
    """Floats of a captured column; missing or unreadable values are NaN. Vectorized unless a value is odd."""
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    try:
        text = np.array(["nan" if v is None else v for v in values], dtype=np.str_)
        text[np.isin(text, MISSING_LABELS)] = "nan"
        return text.astype(np.float64)
    except (TypeError, ValueError):
        return np.array([_number(v) for v in values], dtype=np.float64)


def _number(value) -> float:
    if value is None or isinstance(value, (dict, list)) or str(value).strip() in MISSING_LABELS:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return np.nan


def labels(values: list) -> list[str]:
    """Captured categorical values as strings; None is missing ('')."""
    if set(map(type, values)) == {str}:  # the usual case (every CSV field), checked in C
        return values
    return ["" if v is None else v if isinstance(v, str) else str(v) for v in values]


def model_traffic(sources: Iterable[tuple[str, Iterable[list[bytes]]]], spec) -> Iterable[tuple[str, Iterable]]:
    """The captured lines that are the model's own. A dedicated endpoint captures one model; a shared endpoint (hosting:
    shared) captures every inference component under one prefix, and neither SageMaker's record nor its S3 path names
    the component, so the model's response does: modelkit.serving writes "model" (MLOPS_MODEL, which the deploy task
    sets on a shared-hosted model's container). The control plane's splitter (lambdas/drift/split.py) files each
    model's lines under its own serving target's prefix, which the scheduled check reads as it is; `mlops drift check
    --capture` keeps a shared model's own lines of whatever files it is given (the shared endpoint's prefix too)."""
    if spec.deployment.hosting != "shared":
        return sources
    return ((name, ([line for line in batch if answered_by(line, spec.name)] for batch in batches))
            for name, batches in sources)


def answered_by(line: bytes, model: str) -> bool:
    """Whether a capture line's response names `model` (a smoke test's request is no traffic of any model)."""
    named, inference_id = answer_of(line)
    return named == model and not (inference_id or "").startswith(SMOKE_INFERENCE_ID)


SMOKE_INFERENCE_ID = naming.SMOKE_INFERENCE_ID


def answer_of(line: bytes) -> tuple[str | None, str | None]:
    """(the model a capture line's response names, the request's InferenceId); (None, None) for a line that cannot
    be read."""
    try:
        record = _loads(line)
        answer = _loads(decoded_data(record["captureData"]["endpointOutput"]))
        inference_id = (record.get("eventMetadata") or {}).get("inferenceId")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        return None, None
    named = answer.get("model") if isinstance(answer, dict) else None
    return (named if isinstance(named, str) else None), (inference_id if isinstance(inference_id, str) else None)


def _envelope(content_type: str, data: str, encoding: str, when: datetime, event_id: str) -> dict:
    return {"captureData": {"endpointInput": {"observedContentType": content_type, "mode": "INPUT",
                                              "data": data, "encoding": encoding}},
            "eventMetadata": {"eventId": event_id, "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "eventVersion": "0"}


def capture_record(rows: list[dict], when: datetime, event_id: str) -> dict:
    """The capture line SageMaker writes for one JSON request (used by the local mode and the tests)."""
    return _envelope("application/json", json.dumps({"instances": rows}), "JSON", when, event_id)


def csv_capture_record(rows: list[list], when: datetime, event_id: str, base64_encoded: bool = False) -> dict:
    """The capture line SageMaker writes for one text/csv request (no header; one line per row)."""
    text = "\n".join(",".join(str(v) for v in row) for row in rows)
    if base64_encoded:
        return _envelope("text/csv", base64.b64encode(text.encode()).decode(), "BASE64", when, event_id)
    return _envelope("text/csv", text, "CSV", when, event_id)

"""Ground-truth labels in: parsed, validated per task type, written as Model Monitor's ground-truth lines (pure).

Accepted inputs (one file, its format found from its first line):
- CSV with a header naming `inference_id` and `label` (other columns ignored);
- JSON Lines of `{"inference_id": ..., "label": ...}`;
- Model Monitor's ground-truth lines: `{"groundTruthData": {"data": "<label>", "encoding": "CSV"},
  "eventMetadata": {"eventId": "<inference id>"}, "eventVersion": "0"}`.

An id is non-empty, at most 128 printable characters (the id of a captured request, or `<id>:<row>` for a row of
a request of several rows: pipelines/modelkit/serving.py). A label must fit the spec's task: binary 0/1, multiclass
a declared class (any non-empty text when none are declared), regression a finite number, custom its label_pattern.
Malformed lines and duplicate ids (the first wins) are counted and a few are quoted; nothing here raises on bad input
except a file with no usable header or format (LabelFileError).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field

MAX_ID_CHARS = 128
QUOTED = 5
CSV_COLUMNS = ("inference_id", "label")


class LabelFileError(ValueError):
    """A label file that cannot be read at all (no header, unknown format): nothing of it is accepted."""


class BadLabel(ValueError):
    """One label line that is not usable; the message says why."""


@dataclass
class LabelBatch:
    accepted: dict[str, str] = field(default_factory=dict)  # inference id -> label (as text), first wins
    duplicates: int = 0
    malformed: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, inference_id: str, label: str) -> None:
        if inference_id in self.accepted:
            self.duplicates += 1
            self._quote(f"duplicate id {inference_id!r} (the first label is kept)")
        else:
            self.accepted[inference_id] = label

    def reject(self, where: str, error: Exception) -> None:
        self.malformed += 1
        self._quote(f"{where}: {error}")

    def _quote(self, text: str) -> None:
        if len(self.examples) < QUOTED:
            self.examples.append(text[:200])

    def counts(self) -> dict:
        return {"accepted": len(self.accepted), "duplicate": self.duplicates, "malformed": self.malformed,
                "examples": list(self.examples)}


def checked_id(value) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    text = text.strip()
    if not text:
        raise BadLabel("empty inference id")
    if len(text) > MAX_ID_CHARS:
        raise BadLabel(f"inference id of {len(text)} characters (at most {MAX_ID_CHARS})")
    if not text.isprintable():
        raise BadLabel("inference id has non-printable characters")
    return text


def checked_label(value, task) -> str:
    """The label as text, checked against the spec's task (pipelines.spec.TaskSpec)."""
    if value is None or (isinstance(value, str) and not value.strip()) or isinstance(value, (dict, list, bool)):
        raise BadLabel("no label" if value in (None, "") else f"label {str(value)[:40]!r} is not a value")
    text = str(value).strip()
    return CHECKS[task.type](text, task)


def _binary(text: str, task) -> str:
    try:
        number = float(text)
    except ValueError:
        number = None
    if number not in (0.0, 1.0):
        raise BadLabel(f"binary label {text[:40]!r} is not 0 or 1")
    return str(int(number))


def _multiclass(text: str, task) -> str:
    if task.classes and text not in task.classes:
        raise BadLabel(f"label {text[:40]!r} is not a declared class {task.classes[:10]}")
    return text


def _regression(text: str, task) -> str:
    try:
        number = float(text)
    except ValueError:
        raise BadLabel(f"regression label {text[:40]!r} is not a number") from None
    if not math.isfinite(number):
        raise BadLabel(f"regression label {text[:40]!r} is not a finite number")
    return text


def _custom(text: str, task) -> str:
    if not re.fullmatch(task.custom.label_pattern, text):
        raise BadLabel(f"label {text[:40]!r} does not match {task.custom.label_pattern!r}")
    return text


CHECKS = {"binary": _binary, "multiclass": _multiclass, "regression": _regression, "custom": _custom}


def parse(text: str, task) -> LabelBatch:
    """Every label of a file's text (CSV, JSON Lines or Model Monitor ground truth) checked against `task`."""
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise LabelFileError("the file holds no labels")
    if first.lstrip().startswith("{"):
        return _parse_json_lines(lines, task)
    return _parse_csv(text, task)


def _parse_csv(text: str, task) -> LabelBatch:
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    if not set(CSV_COLUMNS) <= set(header):
        raise LabelFileError(f"a CSV label file needs a header with {', '.join(CSV_COLUMNS)}; found {header[:6]}")
    reader.fieldnames = header
    batch = LabelBatch()
    for number, row in enumerate(reader, start=2):
        _add(batch, f"line {number}", lambda row=row: (row.get("inference_id"), row.get("label")), task)
    return batch


def _parse_json_lines(lines: list[str], task) -> LabelBatch:
    batch = LabelBatch()
    for number, line in enumerate(lines, start=1):
        if line.strip():
            _add(batch, f"line {number}", lambda line=line: id_and_label(line), task)
    return batch


def _add(batch: LabelBatch, where: str, read, task) -> None:
    try:
        raw_id, raw_label = read()
        batch.add(checked_id(raw_id), checked_label(raw_label, task))
    except (BadLabel, ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        batch.reject(where, error)


def id_and_label(line: str | bytes) -> tuple:
    """(id, label) of one JSON line: ours ({"inference_id", "label"}) or Model Monitor's ground truth."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise BadLabel("a line is not a JSON object")
    if "groundTruthData" in record:
        data = record["groundTruthData"]
        return record["eventMetadata"]["eventId"], data["data"] if isinstance(data, dict) else None
    if "inference_id" not in record:
        raise BadLabel('a JSON line needs "inference_id" and "label" (or Model Monitor\'s groundTruthData)')
    return record["inference_id"], record.get("label")


def ground_truth_line(inference_id: str, label: str) -> str:
    """One label as Model Monitor's ground-truth JSON line."""
    return json.dumps({"groundTruthData": {"data": label, "encoding": "CSV"},
                       "eventMetadata": {"eventId": inference_id}, "eventVersion": "0"})


def ground_truth_jsonl(accepted: dict[str, str]) -> str:
    return "".join(ground_truth_line(inference_id, label) + "\n" for inference_id, label in accepted.items())


def ground_truth_key(model: str, when, name: str) -> str:
    """Where `mlops labels put` files a batch: the hour of the upload, Model Monitor's layout."""
    return f"{GROUND_TRUTH}/{model}/{when:%Y/%m/%d/%H}/{name}.jsonl"


GROUND_TRUTH = "ground-truth"

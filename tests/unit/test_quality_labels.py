"""Ground-truth label files (lambdas/quality/labels.py): CSV, JSON Lines and Model Monitor's lines in, checked per task
type, counted, written as Model Monitor's ground truth; the id rule of the serving kit's responses."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from lambdas.quality import labels
from pipelines.modelkit import serving
from pipelines.spec import TaskSpec


BINARY = TaskSpec(type="binary")


def test_a_csv_file_with_the_header_is_accepted_whatever_its_column_order():
    batch = labels.parse("label,inference_id,note\n1,req-1,x\n0,req-2,y\n", BINARY)
    assert batch.accepted == {"req-1": "1", "req-2": "0"} and batch.malformed == batch.duplicates == 0


def test_a_csv_file_without_the_header_is_refused_whole():
    with pytest.raises(labels.LabelFileError, match="inference_id, label"):
        labels.parse("req-1,1\nreq-2,0\n", BINARY)


def test_an_empty_file_is_refused_whole():
    with pytest.raises(labels.LabelFileError, match="no labels"):
        labels.parse("\n\n", BINARY)


def test_json_lines_and_model_monitor_lines_are_read_alike():
    ours = json.dumps({"inference_id": "a", "label": 1})
    monitor = labels.ground_truth_line("b", "0")
    batch = labels.parse(f"{ours}\n\n{monitor}\n", BINARY)
    assert batch.accepted == {"a": "1", "b": "0"}


def test_duplicate_ids_keep_the_first_label_and_are_counted():
    batch = labels.parse("inference_id,label\na,1\na,0\na,1\n", BINARY)
    assert batch.accepted == {"a": "1"} and batch.duplicates == 2
    assert "duplicate id 'a'" in batch.examples[0]


@pytest.mark.parametrize("row, why", [
    (",1", "empty inference id"),
    ("x" * 129 + ",1", "at most 128"),
    ("a,", "no label"),
    ("a,2", "not 0 or 1"),
    ("a,yes", "not 0 or 1"),
])
def test_malformed_binary_rows_are_counted_and_quoted_never_raised(row, why):
    batch = labels.parse(f"inference_id,label\n{row}\nok,1\n", BINARY)
    assert batch.accepted == {"ok": "1"} and batch.malformed == 1 and why in batch.examples[0]


def test_malformed_json_lines_are_counted_with_their_line_numbers():
    text = '{"inference_id": "a", "label": 1}\n{not json\n[1, 2]\n{"label": 1}\n{"inference_id": "b\\u0007", "label": 0}\n'
    batch = labels.parse(text, BINARY)
    assert batch.accepted == {"a": "1"} and batch.malformed == 4
    assert [example.split(":")[0] for example in batch.examples] == ["line 2", "line 3", "line 4", "line 5"]


def test_multiclass_labels_must_be_a_declared_class_when_classes_are_declared():
    declared = TaskSpec(type="multiclass", classes=["low", "mid", "high"])
    batch = labels.parse("inference_id,label\na,low\nb,huge\n", declared)
    assert batch.accepted == {"a": "low"} and "not a declared class" in batch.examples[0]
    assert labels.parse("inference_id,label\nb,huge\n", TaskSpec(type="multiclass")).accepted == {"b": "huge"}


def test_regression_labels_must_be_finite_numbers():
    batch = labels.parse("inference_id,label\na,12.5\nb,nan\nc,inf\nd,cheap\n", TaskSpec(type="regression"))
    assert batch.accepted == {"a": "12.5"} and batch.malformed == 3


def test_custom_labels_must_match_the_declared_pattern():
    task = TaskSpec(type="custom", custom={"label_pattern": "[A-Z]{3}", "prediction_fields": ["code"]})
    batch = labels.parse("inference_id,label\na,ABC\nb,abcd\n", task)
    assert batch.accepted == {"a": "ABC"} and "does not match" in batch.examples[0]


def test_accepted_labels_are_written_as_model_monitor_ground_truth_lines():
    written = labels.ground_truth_jsonl({"req-1": "1", "req-2:3": "0"}).splitlines()
    assert json.loads(written[1]) == {"groundTruthData": {"data": "0", "encoding": "CSV"},
                                      "eventMetadata": {"eventId": "req-2:3"}, "eventVersion": "0"}
    assert labels.parse("\n".join(written), BINARY).accepted == {"req-1": "1", "req-2:3": "0"}


def test_a_batch_is_filed_under_the_hour_of_its_upload():
    when = datetime(2026, 12, 7, 21, 59, tzinfo=timezone.utc)
    assert labels.ground_truth_key("churn", when, "abc") == "ground-truth/churn/2026/12/07/21/abc.jsonl"


def test_every_response_carries_a_fresh_inference_id_per_request_beside_its_fields(monkeypatch):
    monkeypatch.setenv(serving.IDENTITY_VARIABLE, "churn")
    first, _ = serving.output_fn([{"probability": 0.2, "label": 0}, {"probability": 0.9, "label": 1}])
    second, _ = serving.output_fn([{"probability": 0.2, "label": 0}])
    first, second = json.loads(first), json.loads(second)
    assert first["model"] == "churn" and len(first["predictions"]) == 2
    assert len(first["inference_id"]) == 32 and int(first["inference_id"], 16) >= 0
    assert first["inference_id"] != second["inference_id"]

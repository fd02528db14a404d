"""Capture reading: every request format SageMaker writes, in its exact capture-line shape, and bad lines."""

import base64
import json
from datetime import datetime, timezone

import numpy as np
import pytest

from lambdas.drift import baseline, engine
from lambdas.drift.capture import CaptureScan, capture_record, csv_capture_record, line_batches
from pipelines.churn import make_dataset
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT

SPEC = load_spec(REPO_ROOT / "pipelines/churn/model.yaml")
FEATURES = SPEC.dataset.features
WHEN = datetime(2026, 11, 22, 11, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def statistics():
    statistics, _ = baseline.compute(make_dataset.generate(5000, 7), FEATURES, SPEC.dataset.categorical)
    return statistics


def traffic(count: int = 300, seed: int = 11) -> tuple[list[str], list[list]]:
    """(columns in the training file's order, feature rows + the label as a trailing column)."""
    columns = make_dataset.generate(count, seed)
    names = FEATURES + [make_dataset.LABEL]
    return names, [list(values) for values in zip(*(columns[n].tolist() for n in names))]


def envelope(content_type: str, data: str, encoding: str) -> str:
    """One capture line exactly as SageMaker writes it (endpointOutput left out: the hook reads the input)."""
    return json.dumps({"captureData": {"endpointInput": {"observedContentType": content_type, "mode": "INPUT",
                                                         "data": data, "encoding": encoding}},
                       "eventMetadata": {"eventId": "3bd2b3a4-0000-4b7c-9d1a-5d2a5c2b1c11",
                                         "inferenceTime": "2026-11-22T11:04:05Z"},
                       "eventVersion": "0"})


def scan(statistics, lines) -> CaptureScan:
    reference = engine.Reference.from_statistics(statistics, FEATURES)
    result = CaptureScan(FEATURES, set(SPEC.dataset.categorical), engine.Accumulator(reference))
    for number, line in enumerate(lines, start=1):
        result.add_line(line, f"part.jsonl:{number}")
    result.flush()
    return result


def category_total(result: CaptureScan, name: str) -> float:
    index = result.accumulator.reference.categorical.index(name)
    return float(result.accumulator.category_counts[index][:-1].sum())


def csv_line(row: list) -> str:
    return ",".join(str(v) for v in row)


def test_headerless_csv_requests_one_per_line_are_read_in_the_spec_feature_order(statistics):
    names, rows = traffic()
    result = scan(statistics, [envelope("text/csv", csv_line(row[:len(FEATURES)]), "CSV") for row in rows])
    assert (result.lines, result.malformed, result.accumulator.rows) == (300, 0, 300)
    assert category_total(result, "contract") == 300  # every row's contract is a known label, not 'unseen'
    tenure = result.accumulator.numeric_counts[result.accumulator.reference.numeric.index("tenure_months")]
    assert tenure[-1] == 0  # nothing missing: the first column really is tenure_months


def test_base64_encoded_csv_with_a_trailing_label_column_is_read_and_the_label_ignored(statistics):
    names, rows = traffic()
    lines = [envelope("text/csv", base64.b64encode(csv_line(row).encode()).decode(), "BASE64") for row in rows]
    result = scan(statistics, lines)
    assert (result.malformed, result.accumulator.rows) == (0, 300)
    notes, blocking = result.problems()
    assert not blocking and any("beyond the spec's 11 features" in note for note in notes)


def test_csv_request_with_a_header_maps_columns_by_name_whatever_their_order(statistics):
    names, rows = traffic()
    order = list(reversed(names))
    body = "\n".join([",".join(order)] + [csv_line([dict(zip(names, row))[n] for n in order]) for row in rows])
    result = scan(statistics, [envelope("text/csv; charset=utf-8", body, "CSV")])
    assert (result.malformed, result.accumulator.rows) == (0, 300)
    assert category_total(result, "region") == 300


def test_multi_row_csv_request_counts_every_row(statistics):
    names, rows = traffic()
    line = json.dumps(csv_capture_record([row[:len(FEATURES)] for row in rows], WHEN, "e1"))
    assert scan(statistics, [line]).accumulator.rows == 300


@pytest.mark.parametrize("shape", ["instances-objects", "instances-lists", "records", "columnar", "single-object"])
def test_every_json_request_shape_yields_the_same_rows(statistics, shape):
    names, rows = traffic(60)
    objects = [dict(zip(FEATURES, row)) for row in rows]
    bodies = {
        "instances-objects": [{"instances": objects}],
        "instances-lists": [{"instances": [row[:len(FEATURES)] for row in rows]}],
        "records": [objects],
        "columnar": [{name: [o[name] for o in objects] for name in FEATURES}],
        "single-object": objects,
    }[shape]
    result = scan(statistics, [envelope("application/json", json.dumps(body), "JSON") for body in bodies])
    assert (result.malformed, result.accumulator.rows) == (0, 60)
    reference = result.accumulator.reference
    whole = scan(statistics, [json.dumps(capture_record(objects, WHEN, "e"))]).accumulator
    assert np.array_equal(result.accumulator.numeric_counts, whole.numeric_counts)
    assert category_total(result, "payment_method") == 60 and reference.categorical


@pytest.mark.parametrize("bad_line, quoted", [
    (envelope("text/csv", "1," + "x" * 200_000 + ",3", "CSV"), "field larger than field limit"),
    (b'{"captureData": {"endpointInput": {"data": "\xff\xfe", "encoding": "CSV"}}}', "JSONDecodeError"),
    (envelope("application/json", "[" * 100_000 + "]" * 100_000, "JSON"), "limit"),
    (envelope("application/json", json.dumps({"instances": [{"a": 1}] * 10}).ljust(9 * 1024 * 1024), "JSON"), "cap"),
    (envelope("text/csv", "not base64!", "BASE64"), "Error"),
    (envelope("text/csv", "1,2,3", "CSV"), "3 values, the spec has 11"),
])
def test_a_bad_line_is_counted_and_quoted_never_a_crash(statistics, bad_line, quoted):
    names, rows = traffic(20)
    good = [envelope("text/csv", csv_line(row[:len(FEATURES)]), "CSV") for row in rows]
    result = scan(statistics, good[:10] + [bad_line] + good[10:])
    assert (result.lines, result.malformed, result.accumulator.rows) == (21, 1, 20)
    notes, _ = result.problems()
    assert "part.jsonl:11" in notes[0] and quoted.lower() in notes[0].lower()


def test_reading_lines_is_linear_in_their_length_and_caps_an_oversized_line():
    stream = [b"a" * 1000 + b"\n" + b"b" * 5000, b"b" * 5000 + b"\nc\n", b"d"]
    assert [len(line) for lines in line_batches(iter(stream), max_line_bytes=4000) for line in lines] == [1000, 4001, 1, 1]


def test_lines_read_in_bulk_match_the_same_rows_read_one_by_one_whatever_the_mix(statistics):
    """add_line queues lines and parses one-row CSV bodies of a batch together; every odd body (a label column,
    quotes, a short row, a header, a blank line, BASE64, multi-row) still gets the careful path, and the binned
    result equals the same rows sent as JSON objects."""
    names, rows = traffic(300)
    features = [row[:len(FEATURES)] for row in rows]
    lines = [envelope("text/csv", csv_line(row), "CSV") for row in features[:100]]
    lines += [envelope("text/csv", csv_line(row), "CSV") for row in rows[100:150]]  # + the label column
    lines += [envelope("text/csv", base64.b64encode(csv_line(row).encode()).decode(), "BASE64") for row in features[150:200]]
    quoted = [f'"{value}"' if isinstance(value, str) else str(value) for value in features[200]]
    lines += ["", envelope("text/csv", ",".join(quoted), "CSV"), "   "]
    lines += [envelope("text/csv", ",".join(FEATURES), "CSV"), envelope("text/csv", "1,2", "CSV")]
    lines += [envelope("text/csv", "\n".join(csv_line(row) for row in features[201:260]), "CSV")]
    lines += [envelope("text/csv; charset=utf-8", csv_line(row), "CSV") for row in features[260:]]
    result = scan(statistics, lines)
    assert (result.lines, result.malformed, result.accumulator.rows) == (len(lines) - 2, 1, 300)
    assert "2 values, the spec has 11" in result.examples[0]
    assert result.ignored_columns == 1
    objects = scan(statistics, [json.dumps(capture_record([dict(zip(FEATURES, row)) for row in features], WHEN, "e"))])
    assert np.array_equal(result.accumulator.numeric_counts, objects.accumulator.numeric_counts)
    for index in range(len(result.accumulator.category_counts)):
        assert np.array_equal(result.accumulator.category_counts[index], objects.accumulator.category_counts[index])


def test_batches_of_many_lines_keep_line_numbers_in_quotes_and_flush_every_row(statistics, monkeypatch):
    from lambdas.drift import capture

    monkeypatch.setattr(capture, "BATCH_LINES", 7)
    names, rows = traffic(50)
    lines = [envelope("text/csv", csv_line(row[:len(FEATURES)]), "CSV") for row in rows]
    lines[23] = envelope("text/csv", "not base64!", "BASE64")
    lines[31] = "{not json"
    result = scan(statistics, lines)
    assert (result.lines, result.malformed, result.accumulator.rows) == (50, 2, 48)
    assert result.examples[0].startswith("part.jsonl:24:") and result.examples[1].startswith("part.jsonl:32:")


def test_a_header_in_another_column_order_is_skipped_by_the_bulk_reader_as_by_the_one_by_one_reader(statistics):
    names, rows = traffic(20)
    lines = [envelope("text/csv", csv_line(row[:len(FEATURES)]), "CSV") for row in rows]
    lines.insert(5, envelope("text/csv", ",".join(reversed(FEATURES)), "CSV"))
    result = scan(statistics, lines)
    assert (result.lines, result.malformed, result.accumulator.rows) == (21, 0, 20)
    assert not any(result.accumulator.unseen)

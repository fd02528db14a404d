"""The Arrow fast path reads a batch of capture lines exactly as the careful path does, or leaves it to it."""

import io
import json

import numpy as np
import pytest

from lambdas.drift import arrow_reader, baseline, engine
from lambdas.drift.capture import CaptureScan, line_batches, read_chunks
from pipelines.churn import make_dataset
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT

pytest.importorskip("pyarrow")
SPEC = load_spec(REPO_ROOT / "pipelines/churn/model.yaml")
FEATURES = SPEC.dataset.features
CATEGORICAL = set(SPEC.dataset.categorical)
NUMERIC = [name for name in FEATURES if name not in CATEGORICAL]


@pytest.fixture(scope="module")
def statistics():
    statistics, _ = baseline.compute(make_dataset.generate(5000, 7), FEATURES, SPEC.dataset.categorical)
    return statistics


def rows(count: int = 200, seed: int = 3) -> list[list]:
    columns = make_dataset.generate(count, seed)
    return [list(values) for values in zip(*(columns[name].tolist() for name in FEATURES))]


def envelope(content_type: str, data: str, encoding: str) -> bytes:
    return json.dumps({"captureData": {"endpointInput": {"observedContentType": content_type, "mode": "INPUT",
                                                         "data": data, "encoding": encoding},
                                       "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                                          "data": "0.7", "encoding": "CSV"}},
                       "eventMetadata": {"eventId": "e", "inferenceTime": "2026-11-23T10:00:00Z"},
                       "eventVersion": "0"}).encode()


def csv_line(row: list) -> bytes:
    return envelope("text/csv", ",".join(str(value) for value in row), "CSV")


def json_line(records: list[dict]) -> bytes:
    return envelope("application/json", json.dumps({"instances": records}), "JSON")


def scan_capture(statistics: dict, data: bytes, arrow: bool, monkeypatch, features: list[str] = FEATURES,
                 categorical: set[str] = CATEGORICAL) -> tuple[CaptureScan, int]:
    """The scan of one capture file holding `data`, with or without the Arrow path; and how many batches Arrow read."""
    taken = []
    original = arrow_reader.read_batch

    def counting(*args, **kwargs):
        columns = original(*args, **kwargs)
        taken.append(columns is not None)
        return columns

    with monkeypatch.context() as patch:
        patch.setattr(arrow_reader, "read_batch", counting)
        if not arrow:
            patch.setattr(arrow_reader, "available", lambda: False)
        reference = engine.Reference.from_statistics(statistics, features)
        scan = CaptureScan(features, set(categorical), engine.Accumulator(reference))
        scan.add_source("part.jsonl", line_batches(read_chunks(io.BytesIO(data), 4096)))
        scan.problems()
    return scan, sum(taken)


def read(statistics, lines: list[bytes], arrow: bool, monkeypatch) -> tuple[CaptureScan, int]:
    return scan_capture(statistics, b"\n".join(lines) + b"\n", arrow, monkeypatch)


def assert_same_reading(statistics, lines: list[bytes], monkeypatch, arrow_batches: str) -> CaptureScan:
    fast, taken = read(statistics, lines, True, monkeypatch)
    careful, _ = read(statistics, lines, False, monkeypatch)
    assert (taken > 0) == (arrow_batches == "some"), f"Arrow read {taken} batches"
    assert (fast.lines, fast.malformed, fast.accumulator.rows, fast.ignored_columns) == \
        (careful.lines, careful.malformed, careful.accumulator.rows, careful.ignored_columns)
    assert fast.absent == careful.absent
    assert np.array_equal(fast.accumulator.numeric_counts, careful.accumulator.numeric_counts)
    for mine, theirs in zip(fast.accumulator.category_counts, careful.accumulator.category_counts):
        assert np.array_equal(mine, theirs)
    assert fast.accumulator.unseen == careful.accumulator.unseen
    return fast


def test_one_row_csv_requests_are_read_by_arrow_with_the_careful_paths_counts(statistics, monkeypatch):
    scan = assert_same_reading(statistics, [csv_line(row) for row in rows()], monkeypatch, arrow_batches="some")
    assert scan.accumulator.rows == 200


def test_csv_requests_with_a_trailing_label_column_are_read_by_arrow_and_the_extra_column_ignored(statistics, monkeypatch):
    scan = assert_same_reading(statistics, [csv_line(row + [1]) for row in rows()], monkeypatch, arrow_batches="some")
    assert scan.ignored_columns == 1


@pytest.mark.parametrize("token", ["", "nan", "NaN", "null", "None", "inf", "-inf", "Infinity", "1e400", "-0", " 1.5",
                                   "+1.5", ".5", "5.", "1_000", "0x10", "abc", "1.5e", "NA", "N/A", "\r"])
def test_an_odd_numeric_value_is_read_as_the_careful_path_reads_it(statistics, monkeypatch, token):
    lines = [csv_line(row) for row in rows(50)]
    odd = rows(1, 9)[0]
    odd[FEATURES.index(NUMERIC[0])] = token
    lines[20] = envelope("text/csv", ",".join(str(value) for value in odd), "CSV")
    fast, _ = read(statistics, lines, True, monkeypatch)
    careful, _ = read(statistics, lines, False, monkeypatch)
    assert np.array_equal(fast.accumulator.numeric_counts, careful.accumulator.numeric_counts), token
    assert (fast.malformed, fast.accumulator.rows) == (careful.malformed, careful.accumulator.rows)


@pytest.mark.parametrize("label", ["", "nan", "NaN", "None", " spaced", "trailing ", "ünïcødé", '"quoted"', "a\rb"])
def test_an_odd_label_is_counted_as_the_careful_path_counts_it(statistics, monkeypatch, label):
    lines = [csv_line(row) for row in rows(50)]
    odd = rows(1, 9)[0]
    odd[FEATURES.index(sorted(CATEGORICAL)[0])] = label
    lines[7] = envelope("text/csv", ",".join(str(value) for value in odd), "CSV")
    fast, _ = read(statistics, lines, True, monkeypatch)
    careful, _ = read(statistics, lines, False, monkeypatch)
    for mine, theirs in zip(fast.accumulator.category_counts, careful.accumulator.category_counts):
        assert np.array_equal(mine, theirs), label
    assert fast.accumulator.unseen == careful.accumulator.unseen
    assert (fast.malformed, fast.accumulator.rows) == (careful.malformed, careful.accumulator.rows)


@pytest.mark.parametrize("odd_line", [
    b"",                                                            # blank: not a request
    b"{not json",                                                   # malformed
    envelope("text/csv", "1,2", "CSV"),                             # short row
    envelope("text/csv", ",".join(FEATURES), "CSV"),                # a header
    envelope("text/csv", "a" * 70_000, "CSV"),                      # a field over the limit
    envelope("text/csv", "1,2\n3,4", "CSV"),                        # several rows
    envelope("text/csv; charset=utf-8", ",".join(map(str, [0] * len(FEATURES))), "CSV"),
    envelope("application/json", json.dumps({"instances": [[0] * len(FEATURES)]}), "JSON"),
    json.dumps({"captureData": {}}).encode(),
], ids=["blank", "not-json", "short", "header", "huge-field", "multi-row", "charset", "positional-json", "no-input"])
def test_a_batch_with_an_odd_line_is_left_to_the_careful_path_and_read_the_same(statistics, monkeypatch, odd_line):
    lines = [csv_line(row) for row in rows(60)]
    lines.insert(30, odd_line)
    assert_same_reading(statistics, lines, monkeypatch, arrow_batches="none")


def test_json_records_are_read_by_arrow_with_absent_null_and_extra_keys_counted_alike(statistics, monkeypatch):
    records = [dict(zip(FEATURES, row)) for row in rows(300)]
    del records[5][NUMERIC[1]]                     # a key not there: absent
    records[6][sorted(CATEGORICAL)[0]] = None      # an explicit null: absent too
    records[7]["request_id"] = "r-7"               # an extra key: ignored
    lines = [json_line(records[start:start + 10]) for start in range(0, 300, 10)]
    assert_same_reading(statistics, lines, monkeypatch, arrow_batches="some")


@pytest.mark.parametrize("body", [{"instances": []}, {"instances": [{"x": 1}, [1, 2]]}, {"rows": []},
                                  {"instances": [{**dict(zip(FEATURES, rows(1)[0])), NUMERIC[0]: "1.5"}]},
                                  {"instances": [{**dict(zip(FEATURES, rows(1)[0])), sorted(CATEGORICAL)[0]: 3}]}],
                         ids=["empty", "mixed", "no-instances", "number-as-text", "label-as-number"])
def test_a_json_batch_arrow_cannot_read_exactly_goes_to_the_careful_path(statistics, monkeypatch, body):
    records = [dict(zip(FEATURES, row)) for row in rows(40)]
    lines = [json_line(records[start:start + 10]) for start in range(0, 40, 10)]
    lines.append(envelope("application/json", json.dumps(body), "JSON"))
    assert_same_reading(statistics, lines, monkeypatch, arrow_batches="none")


def test_a_window_of_csv_and_json_lines_mixed_is_read_the_same(statistics, monkeypatch):
    data = rows(100)
    lines = [csv_line(row) if index % 2 else json_line([dict(zip(FEATURES, row))]) for index, row in enumerate(data)]
    assert_same_reading(statistics, lines, monkeypatch, arrow_batches="none")


def test_drift_watching_some_features_reads_positional_csv_by_the_datasets_column_order(statistics, monkeypatch):
    """drift.features picks columns by name; a CSV request carries all features in the dataset's order. Reading
    the watched ones by their position in drift.features would bin the wrong columns; and Arrow must still read the
    unwatched categorical columns as text (as numbers, every batch would fail and go line by line)."""
    from lambdas.drift import logic

    taken = []
    original = arrow_reader.read_batch
    monkeypatch.setattr(arrow_reader, "read_batch", lambda *args: taken.append(original(*args)) or taken[-1])

    watched = ["late_payments", "region"]
    spec = SPEC.model_copy(update={"drift": SPEC.drift.model_copy(update={"features": watched})})
    data = rows(400, 5)
    csv_lines = [csv_line(row) for row in data]
    json_lines = [json_line([dict(zip(FEATURES, row)) for row in data])]
    by_csv = logic.assess(statistics, spec, [("csv", csv_lines)]).scan
    by_json = logic.assess(statistics, spec, [("json", json_lines)]).scan
    assert by_csv.accumulator.rows == by_json.accumulator.rows == 400
    assert np.array_equal(by_csv.accumulator.numeric_counts, by_json.accumulator.numeric_counts)
    assert np.array_equal(by_csv.accumulator.category_counts[0], by_json.accumulator.category_counts[0])
    assert by_csv.accumulator.category_counts[0][-2:].sum() == 0  # no unseen or missing region: the right column
    assert len(taken) == 2 and all(columns is not None for columns in taken)  # both windows read by Arrow


def test_a_whole_line_over_the_cap_handed_to_add_line_is_malformed_on_both_paths(statistics, monkeypatch):
    """line_batches cuts an oversized line (so it is not JSON); a caller of add_line may hand one whole."""
    from lambdas.drift import capture

    monkeypatch.setattr(capture, "MAX_LINE_BYTES", 2000)
    lines = [csv_line(row) for row in rows(30)]
    lines[4] = envelope("text/csv", ",".join(str(value) for value in rows(1, 9)[0]), "CSV")[:-1] + b', "pad": "' + b"x" * 3000 + b'"}'
    outcomes = []
    for arrow in (True, False):
        with monkeypatch.context() as patch:
            if not arrow:
                patch.setattr(arrow_reader, "available", lambda: False)
            scan = CaptureScan(FEATURES, CATEGORICAL, engine.Accumulator(engine.Reference.from_statistics(statistics, FEATURES)))
            for number, line in enumerate(lines, start=1):
                scan.add_line(line, f"part.jsonl:{number}")
            scan.problems()
            outcomes.append((scan.malformed, scan.accumulator.rows, scan.examples[0].split(": ")[0]))
    assert outcomes[0] == outcomes[1] == (1, 29, "part.jsonl:5")

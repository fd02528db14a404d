"""Inputs on which the Arrow fast path (lambdas/drift/arrow_reader.py) and the careful, line-by-line path
(lambdas/drift/capture.py) must agree: the same counts for any bytes, and nothing raised. Each test here is one
input class that broke that contract in a first version of the fast path, found by attacking it
(test_drift_arrow_reader.py holds the ordinary cases)."""

from __future__ import annotations

import json
import random
from functools import cache

import pytest

from lambdas.drift import baseline, capture, engine
from lambdas.drift.capture import CaptureScan
from pipelines.churn import make_dataset
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT
from tests.unit.test_drift_arrow_reader import scan_capture

pytest.importorskip("pyarrow")
SPEC = load_spec(REPO_ROOT / "pipelines/churn/model.yaml")
FEATURES = list(SPEC.dataset.features)                       # the first one, tenure_months, is numeric
CATEGORICAL = tuple(SPEC.dataset.categorical)
NUMERIC = [name for name in FEATURES if name not in CATEGORICAL]
LABEL_FIRST = ["contract"] + [name for name in FEATURES if name != "contract"]   # a categorical feature first


@cache
def statistics(features: tuple[str, ...], categorical: tuple[str, ...]) -> dict:
    columns = make_dataset.generate(2000, 7)
    return baseline.compute({name: columns[name] for name in features}, list(features), list(categorical))[0]


@cache
def records(count: int = 40, seed: int = 3) -> tuple[dict, ...]:
    columns = make_dataset.generate(count, seed)
    return tuple(dict(zip(FEATURES, values)) for values in zip(*(columns[name].tolist() for name in FEATURES)))


def row(index: int, features: list[str] = FEATURES) -> list:
    return [records()[index][name] for name in features]


def body(values: list) -> str:
    return ",".join(str(value) for value in values)


def envelope(content_type: str, data, encoding: str, extra: str = "") -> bytes:
    line = json.dumps({"captureData": {"endpointInput": {"observedContentType": content_type, "mode": "INPUT",
                                                         "data": data, "encoding": encoding}},
                       "eventMetadata": {"eventId": "e", "inferenceTime": "2026-11-23T10:00:00Z"}, "eventVersion": "0"})
    return (line[:-1] + ", " + extra + "}" if extra else line).encode()


def csv_line(values: list) -> bytes:
    return envelope("text/csv", body(values), "CSV")


def json_line(body_text: str) -> bytes:
    return envelope("application/json", body_text, "JSON")


def csv_lines(count: int = 20, features: list[str] = FEATURES, extra: list | None = None) -> list[bytes]:
    return [csv_line(row(index, features) + (extra or [])) for index in range(count)]


def json_lines(count: int = 10) -> list[bytes]:
    return [json_line(json.dumps({"instances": list(records()[2 * index:2 * index + 2])})) for index in range(count)]


def scan(data: bytes, arrow: bool, monkeypatch, features: list[str], categorical: tuple[str, ...]) -> tuple[CaptureScan, int]:
    """The scan of one capture file holding `data`, with or without Arrow; and how many batches Arrow read."""
    return scan_capture(statistics(tuple(features), categorical), data, arrow, monkeypatch, features, set(categorical))


def counts(result: CaptureScan) -> dict:
    accumulator = result.accumulator
    return {"lines": result.lines, "malformed": result.malformed, "ignored_columns": result.ignored_columns,
            "absent": result.absent, "rows": accumulator.rows, "numeric_counts": accumulator.numeric_counts.tolist(),
            "category_counts": [counted.tolist() for counted in accumulator.category_counts],
            "unseen": [dict(unseen) for unseen in accumulator.unseen]}


def assert_same_reading(lines: list[bytes], monkeypatch, features: list[str] = FEATURES,
                        categorical: tuple[str, ...] = CATEGORICAL, data: bytes | None = None) -> None:
    data = b"\n".join(lines) + b"\n" if data is None else data
    careful, _ = scan(data, False, monkeypatch, features, categorical)
    fast, _ = scan(data, True, monkeypatch, features, categorical)   # must not raise either
    mine, theirs = counts(fast), counts(careful)
    differing = {key: (mine[key], theirs[key]) for key in mine if mine[key] != theirs[key]}
    assert not differing, f"Arrow vs careful: {differing}"[:3000]


def with_line(lines: list[bytes], index: int, line: bytes) -> list[bytes]:
    lines = list(lines)
    lines[index] = line
    return lines


# ---- envelopes: pyarrow's JSON reader (RapidJSON) accepts lines orjson rejects, and does not check ignored fields ----

DEEP = "[" * 1100 + "]" * 1100   # orjson refuses more than 1024 levels


def test_a_capture_line_nested_deeper_than_orjson_allows_is_malformed_with_arrow_too(monkeypatch):
    line = envelope("text/csv", body(row(5)), "CSV", f'"x": {DEEP}')
    assert_same_reading(with_line(csv_lines(), 5, line), monkeypatch)


def assert_arrow_reads_the_request_the_careful_path_refuses(lines: list[bytes], monkeypatch, rows: int) -> None:
    """The one leniency left on purpose (arrow_reader._strict_block): a NaN or Infinity token in a field the hook
    does not read. The careful path calls the line malformed; Arrow reads its request; everything else is equal."""
    data = b"\n".join(lines) + b"\n"
    careful, _ = scan(data, False, monkeypatch, FEATURES, CATEGORICAL)
    fast, taken = scan(data, True, monkeypatch, FEATURES, CATEGORICAL)
    assert taken and (careful.malformed, fast.malformed) == (1, 0)
    assert (careful.accumulator.rows, fast.accumulator.rows) == (len(lines) * rows - rows, len(lines) * rows)
    assert careful.lines == fast.lines == len(lines)


@pytest.mark.parametrize("extra", ['"x": NaN', '"x": Infinity', '"x": -Infinity'], ids=["nan", "infinity", "minus-infinity"])
def test_a_non_json_number_in_an_envelope_field_not_read_does_not_stop_arrow_reading_the_request(monkeypatch, extra):
    line = envelope("text/csv", body(row(5)), "CSV", extra)
    assert_arrow_reads_the_request_the_careful_path_refuses(with_line(csv_lines(), 5, line), monkeypatch, rows=1)


@pytest.mark.parametrize("raw", [b"\xff", b"\xed\xa0\x80"], ids=["invalid-byte", "utf8-encoded-surrogate"])
def test_a_capture_line_with_invalid_utf8_in_a_field_not_read_is_malformed_with_arrow_too(monkeypatch, raw):
    line = envelope("text/csv", body(row(5)), "CSV").replace(b'"INPUT"', b'"' + raw + b'"')
    assert_same_reading(with_line(csv_lines(), 5, line), monkeypatch)


def test_a_byte_order_mark_starting_the_capture_file_is_read_alike(monkeypatch):
    lines = csv_lines()
    assert_same_reading(with_line(lines, 0, b"\xef\xbb\xbf" + lines[0]), monkeypatch)


def test_two_capture_lines_run_together_are_not_read_as_two_requests_when_a_blank_line_evens_the_count(monkeypatch):
    lines = csv_lines()
    lines[3], lines[4] = lines[3] + b" " + lines[4], b""
    assert_same_reading(lines, monkeypatch)


# ---- JSON bodies ----

@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "2e308", "9" * 400],
                         ids=["nan", "infinity", "minus-infinity", "overflowing-float", "overflowing-integer"])
def test_a_json_body_with_a_number_orjson_rejects_is_malformed_with_arrow_too(monkeypatch, value):
    text = json.dumps({"instances": [records()[0]]}).replace(str(records()[0][NUMERIC[1]]), value, 1)
    assert_same_reading(with_line(json_lines(), 3, json_line(text)), monkeypatch)


def test_a_json_body_with_an_unread_key_nested_deeper_than_orjson_allows_is_malformed_with_arrow_too(monkeypatch):
    text = '{%s, "instances": [%s, %s]}' % (f'"x": {DEEP}', json.dumps(records()[0]), json.dumps(records()[1]))
    assert_same_reading(with_line(json_lines(), 3, json_line(text)), monkeypatch)


def test_a_non_json_number_under_a_json_key_not_read_does_not_stop_arrow_reading_the_request(monkeypatch):
    text = '{"x": NaN, "instances": [%s, %s]}' % (json.dumps(records()[0]), json.dumps(records()[1]))
    assert_arrow_reads_the_request_the_careful_path_refuses(with_line(json_lines(), 3, json_line(text)), monkeypatch, rows=2)


def test_invalid_utf8_in_a_json_record_is_malformed_with_arrow_too(monkeypatch):
    record = {**records()[0], "request_id": "@@"}
    line = json_line(json.dumps({"instances": [record]})).replace(b"@@", b"\xff")
    assert_same_reading(with_line(json_lines(), 3, line), monkeypatch)


def test_invalid_utf8_in_a_json_label_does_not_crash_the_arrow_path(monkeypatch):
    """pyarrow's JSON reader does not validate UTF-8; value_counts(...).to_pylist() then raises UnicodeDecodeError."""
    record = {**records()[0], "contract": "@@"}
    line = json_line(json.dumps({"instances": [record]})).replace(b"@@", b"\xff")
    assert_same_reading(with_line(json_lines(), 3, line), monkeypatch)


@pytest.mark.parametrize("instances", ["[null]", "[%s, null]"], ids=["only-null", "record-then-null"])
def test_a_null_among_json_instances_is_malformed_with_arrow_too(monkeypatch, instances):
    text = '{"instances": %s}' % (instances % json.dumps(records()[0]) if "%s" in instances else instances)
    assert_same_reading(with_line(json_lines(), 3, json_line(text)), monkeypatch)


def test_an_empty_json_body_and_a_body_of_two_objects_are_both_malformed_with_arrow_too(monkeypatch):
    one = json.dumps({"instances": [records()[0]]})
    lines = with_line(json_lines(), 3, json_line(""))
    assert_same_reading(with_line(lines, 4, json_line(one + " " + one)), monkeypatch)


def test_a_byte_order_mark_starting_the_first_json_body_of_a_batch_is_read_alike(monkeypatch):
    lines = json_lines()
    assert_same_reading(with_line(lines, 0, json_line("\ufeff" + json.dumps({"instances": [records()[0]]}))), monkeypatch)


# ---- CSV bodies: pyarrow's CSV reader skips a leading BOM, ends rows at "\r" and skips empty rows ----

def test_a_byte_order_mark_starting_the_first_csv_body_of_a_batch_is_read_alike(monkeypatch):
    """Arrow strips the BOM of its buffer's first bytes (tenure 21.0); the careful path reads '\\ufeff21.0' (NaN)."""
    lines = csv_lines()
    assert_same_reading(with_line(lines, 0, envelope("text/csv", "\ufeff" + body(row(0)), "CSV")), monkeypatch)


@pytest.mark.parametrize("prefix", ["\r", "\r\r"])
def test_a_carriage_return_leading_a_csv_body_stays_in_the_first_label_as_on_the_careful_path(monkeypatch, prefix):
    lines = csv_lines(features=LABEL_FIRST)
    line = envelope("text/csv", prefix + body(row(5, LABEL_FIRST)), "CSV")
    assert_same_reading(with_line(lines, 5, line), monkeypatch, features=LABEL_FIRST)


def test_a_single_feature_csv_body_split_by_a_carriage_return_is_not_read_as_two_rows(monkeypatch):
    """'' and '5\\r6' are two unreadable values for the careful path; Arrow skips the empty row and reads 5 and 6."""
    name = NUMERIC[1]
    lines = [envelope("text/csv", str(record[name]), "CSV") for record in records()[:20]]
    lines[3], lines[4] = envelope("text/csv", "", "CSV"), envelope("text/csv", "5\r6", "CSV")
    assert_same_reading(lines, monkeypatch, features=[name], categorical=())


def test_a_body_naming_every_feature_is_a_header_on_both_paths_when_a_carriage_return_is_in_the_batch(monkeypatch):
    """A '\\r' anywhere sends the careful path body by body (_add_csv), where a row holding every feature name is a
    header wherever the names are; Arrow only looks for the first feature's name in the first column."""
    lines = csv_lines(extra=["id"] * len(FEATURES))
    lines[7] = csv_line(row(7) + FEATURES)                                   # the names in the id columns
    lines[9] = envelope("text/csv", body(row(9) + ["id"] * len(FEATURES)) + "\r", "CSV")
    assert_same_reading(lines, monkeypatch)


def test_a_permuted_header_of_labels_is_read_alike_when_a_carriage_return_is_in_the_batch(monkeypatch):
    labels_only = list(CATEGORICAL)
    lines = csv_lines(features=labels_only)
    lines[2] = envelope("text/csv", body(labels_only[::-1]), "CSV")
    lines[5] = envelope("text/csv", body(row(5, labels_only)) + "\r", "CSV")
    assert_same_reading(lines, monkeypatch, features=labels_only, categorical=CATEGORICAL)


# ---- batches ----

def test_unseen_labels_are_tracked_alike_when_the_first_thousand_fill_the_tracker_in_an_earlier_batch(monkeypatch):
    """The tracker keeps the first UNSEEN_TRACKED unseen labels of each update: Arrow updates once a batch (16,384
    lines), the careful path once per CHUNK_ROWS rows, so which labels it keeps depends on the path."""
    early = [f"early-{index}" for index in range(engine.UNSEEN_TRACKED)]
    total = capture.BATCH_LINES + 4000
    lines = []
    for index in range(total):
        values = row(index % 40)
        if index < len(early):
            values[FEATURES.index("contract")] = early[index]
        elif index >= total - 50:
            values[FEATURES.index("contract")] = f"late-{index}"
        lines.append(csv_line(values))
    assert_same_reading(lines, monkeypatch)


# ---- a randomized property: any mix of odd lines is read alike ----

NUMERIC_TOKENS = ["", "nan", "None", "inf", "1e400", "-0", " 1.5", "+1.5", ".5", "0x10", "abc", "1e-400", "NAN", "\t2"]
LABEL_TOKENS = ["", "nan", "None", " x", "x ", "ünï", "\u0000", "contract", "region", "1", "\u2028", '"q"', "a\rb"]
UNREAD_FIELDS = ['"x": 1', '"x": "\\u0000"', '"x": [[[]]]']  # (NaN there: the documented leniency, tested above)


def random_line(rng: random.Random, kind: str) -> bytes:
    if kind == "csv":
        values = row(rng.randrange(40))
        for _ in range(rng.randint(0, 2)):
            index = rng.randrange(len(values))
            values[index] = rng.choice(LABEL_TOKENS if FEATURES[index] in CATEGORICAL else NUMERIC_TOKENS)
        text = rng.choice(["", "", "", "", "\r", "\ufeff"]) + body(values) + rng.choice(["", "", "", "\r", ",", ",7"])
        content_type, encoding = "text/csv", "CSV"
    else:
        chosen = [dict(record) for record in rng.sample(records(), rng.randint(1, 3))]
        for record in chosen:
            change = rng.random()
            if change < 0.1:
                record.pop(rng.choice(FEATURES))
            elif change < 0.2:
                record[rng.choice(FEATURES)] = None
            elif change < 0.25:
                record[rng.choice(NUMERIC)] = rng.choice([1, -0.0, 2 ** 64, True, "1"])
        text = json.dumps({"instances": chosen})
        text = text.replace("[{", "[null, {", 1) if rng.random() < 0.05 else text
        content_type, encoding = "application/json", "JSON"
    line = envelope(content_type, text, encoding, rng.choice(UNREAD_FIELDS) if rng.random() < 0.05 else "")
    return rng.choice([b"", b"  ", b"{}", line + b"\r", line]) if rng.random() < 0.05 else line


def test_random_batches_of_odd_lines_are_read_alike(monkeypatch):
    rng = random.Random(20240611)
    for trial in range(300):
        kind = rng.choice(["csv", "json"])
        lines = [random_line(rng, kind) for _ in range(rng.randint(1, 12))]
        try:
            assert_same_reading(lines, monkeypatch)
        except AssertionError as error:
            raise AssertionError(f"trial {trial}: {lines!r}"[:3000] + f"\n{error}") from None

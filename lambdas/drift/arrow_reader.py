"""The fast path for a batch of capture lines, in Apache Arrow: the envelopes through pyarrow's JSON reader, the
request bodies through its CSV reader (one-row CSV requests, SageMaker's real-time shape) or its JSON reader
(`{"instances": [{...}, ...]}` records), labels counted by Arrow: no Python object per line or per value
(docs/performance.md, "The Lambda's path on capture files").

It reads a batch only when it can read it exactly as the careful path in capture.py would; any other batch (a
malformed line, mixed content types, another encoding, quotes, several rows in a CSV body, an oversized body, a
value of the wrong type, a header, positional JSON) returns None and goes line by line, where problems are counted
and quoted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache
from itertools import repeat

import numpy as np

from lambdas.drift.baseline import MISSING_LABELS

pa = pc = pa_csv = pa_json = None  # imported with the first batch (~0.1 s): a window with no captures never loads Arrow
_LOADED = False

CSV = ("text/csv", "CSV")            # observedContentType, encoding
JSON = ("application/json", "JSON")
# CSV bodies with these go to the careful path: quotes need csv.reader's rules, a newline means several rows (or a
# header) in one request, Arrow ends a row at a carriage return where the careful path keeps it in the field, and
# it drops a byte-order mark that starts its buffer.
CAREFUL_CSV = '["\n\r\ufeff]'
MAX_DEPTH = 1024  # orjson's nesting limit


@dataclass
class ArrowColumns:
    numeric: np.ndarray          # rows x len(numeric names), NaN where missing
    categories: list[Counter]    # per categorical name: label -> count ('' for null)
    absent: dict[str, int]       # per feature: values that were null or not there at all (JSON records)
    extra_columns: int = 0       # CSV columns beyond the features (a label, ids): ignored


def available() -> bool:
    """Whether pyarrow can be used (it is in the drift function's bundle; without it the careful path reads all)."""
    global pa, pc, pa_csv, pa_json, _LOADED
    if not _LOADED:
        _LOADED = True
        try:
            import pyarrow
            import pyarrow.compute
            import pyarrow.csv
            import pyarrow.json
        except ImportError:  # pragma: no cover
            return False
        pa, pc, pa_csv, pa_json = pyarrow, pyarrow.compute, pyarrow.csv, pyarrow.json
    return pa is not None


def read_batch(lines: list[bytes], features: list[str], labels: set[str], numeric: list[str], categorical: list[str],
               max_line: int, max_csv_body: int) -> ArrowColumns | None:
    """Columns of the watched `numeric` and `categorical` features from a batch of capture lines, or None when the
    batch needs the careful path. `features`: every feature in the requests' positional order, `labels` those of
    them that are categorical. A line over `max_line` bytes is malformed, and a CSV body over `max_csv_body` bytes
    may hold a field over the careful path's limit: both go there."""
    if not available():
        return None
    block = _strict_block(lines, max_line)
    if block is None:
        return None
    try:
        captured = _endpoint_inputs(block, len(lines))
        if captured is None:
            return None
        content_type, bodies, encoding = (pc.struct_field(captured, [index]) for index in range(3))
        if bodies.null_count:
            return None
        if _all_equal(content_type, CSV[0]) and _all_equal(encoding, CSV[1]):
            if pc.max(pc.binary_length(bodies)).as_py() > max_csv_body or _may_hold_a_header(block, features, labels):
                return None
            plain = block.isascii() and b"\\" not in block  # then no body holds a quote, newline, CR or BOM
            return _csv_columns(bodies, len(lines), features, labels, numeric, categorical, plain)
        if _all_equal(content_type, JSON[0]) and _all_equal(encoding, JSON[1]):
            return _json_columns(bodies, len(lines), features, labels, numeric, categorical)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, UnicodeDecodeError):
        pass
    return None


def _may_hold_a_header(block: bytes, features: list[str], labels: set[str]) -> bool:
    """A header row (feature names, in any column order) can be read as data only when every feature is categorical:
    a name in a numeric column fails Arrow's conversion, and the batch goes to the careful path, which skips it."""
    return all(name in labels for name in features) and features[0].encode() in block


def _strict_block(lines: list[bytes], max_line: int) -> bytes | None:
    """The lines joined, when Arrow's JSON reader, which is looser than JSON, will read them as orjson would: every
    line starts an object (no blank line, so each line yields at least one row and the row count proves it yields
    exactly one), valid UTF-8 without a byte-order mark, and no nesting deeper than orjson's 1,024 levels (a line of
    fewer openers cannot nest deeper). One leniency is left, on purpose: a NaN or Infinity token (not JSON) in a field
    the hook does not read is skipped by Arrow, where orjson refuses the line; looking for one costs a search of every
    byte (a fifth of the CSV path's time), and the values that are read are checked (see _json_columns)."""
    longest = max(map(len, lines))
    if longest > max_line or not all(map(bytes.startswith, lines, repeat(b"{"))):
        return None
    block = b"\n".join(lines)
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if longest > MAX_DEPTH and any(line.count(b"{") + line.count(b"[") > MAX_DEPTH for line in lines):
        return None
    return block


@cache
def _envelope_options():
    """Only captureData.endpointInput's three fields are converted; everything else in a line is skipped."""
    endpoint_input = pa.struct([("observedContentType", pa.string()), ("data", pa.string()), ("encoding", pa.string())])
    schema = pa.schema([("captureData", pa.struct([("endpointInput", endpoint_input)]))])
    return pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")


def _read_json(buffer, options):
    return pa_json.read_json(pa.BufferReader(buffer), parse_options=options,
                             read_options=pa_json.ReadOptions(use_threads=False, block_size=buffer.size + 1))


def _endpoint_inputs(block: bytes, lines: int):
    envelopes = _read_json(pa.py_buffer(block), _envelope_options())
    if envelopes.num_rows != lines:  # the reader skips blank lines, which are not requests
        return None
    return pc.struct_field(envelopes.column("captureData").combine_chunks(), [0])


def _all_equal(values, expected: str) -> bool:
    return values.null_count == 0 and pc.all(pc.equal(values, expected)).as_py()


def _joined(bodies) -> "pa.Buffer":
    """The bodies one a line, as one buffer: each gets a newline appended in C, and the result's data buffer is
    already their concatenation."""
    lines = pc.binary_join_element_wise(bodies, pa.scalar(""), "\n")
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int32)[lines.offset:lines.offset + len(lines) + 1]
    return data.slice(int(bounds[0]), int(bounds[-1] - bounds[0]) - 1)  # less the last newline: no empty last row


def _types(features: list[str], labels) -> dict[str, "pa.DataType"]:
    return {name: pa.string() if name in labels else pa.float64() for name in features}


def _csv_columns(bodies, lines: int, features: list[str], labels: set[str], numeric: list[str], categorical: list[str],
                 plain: bool) -> ArrowColumns | None:
    if not plain and pc.any(pc.match_substring_regex(bodies, CAREFUL_CSV)).as_py():
        return None
    commas = pc.min_max(pc.count_substring(bodies, ",")).as_py()
    width = commas["min"] + 1
    if commas["min"] != commas["max"] or width < len(features):
        return None  # a short row is malformed; rows of several widths: the careful path sorts them
    buffer = _joined(bodies)
    names = features + [f"_extra_{index}" for index in range(width - len(features))]
    table = pa_csv.read_csv(
        pa.BufferReader(buffer),
        read_options=pa_csv.ReadOptions(column_names=names, use_threads=False, block_size=buffer.size + 1),
        parse_options=pa_csv.ParseOptions(quote_char=False, newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pa_csv.ConvertOptions(column_types=_types(features, labels), include_columns=features,
                                              null_values=list(MISSING_LABELS), strings_can_be_null=False))
    if table.num_rows != lines:
        return None
    columns = {name: table.column(name).combine_chunks() for name in numeric + categorical}
    return _columns(columns, lines, numeric, categorical, dict.fromkeys(features, 0), width - len(features))


@cache
def _records_options(features: tuple[str, ...], labels: tuple[str, ...]):
    record = pa.struct(list(_types(list(features), set(labels)).items()))
    return pa_json.ParseOptions(explicit_schema=pa.schema([("instances", pa.list_(record))]), unexpected_field_behavior="ignore")


def _json_columns(bodies, lines: int, features: list[str], labels: set[str], numeric: list[str], categorical: list[str]) -> ArrowColumns | None:
    if not pc.all(pc.starts_with(bodies, "{")).as_py():
        return None  # (so each body yields at least one row, and the row count proves it yields exactly one)
    table = _read_json(_joined(bodies), _records_options(tuple(features), tuple(sorted(labels))))
    instances = table.column("instances").combine_chunks()
    if table.num_rows != lines or instances.null_count or pc.min(pc.list_value_length(instances)).as_py() == 0:
        return None  # a body without instances, or with none: the careful path says which
    records = pc.list_flatten(instances)
    if records.null_count:
        return None  # a null among the instances is malformed
    columns = {name: pc.struct_field(records, [index]) for index, name in enumerate(features)}
    if any(pc.any(pc.or_(pc.is_inf(columns[name]), pc.is_nan(columns[name]))).as_py() for name in numeric):
        return None  # NaN, Infinity, or a number beyond float64 (2e308, 400 digits): orjson refuses them
    absent = {name: column.null_count for name, column in columns.items()}
    return _columns(columns, len(records), numeric, categorical, absent)


def _columns(columns: dict, rows: int, numeric: list[str], categorical: list[str], absent: dict[str, int],
             extra_columns: int = 0) -> ArrowColumns:
    matrix = np.empty((rows, len(numeric)), dtype=np.float64)
    for index, name in enumerate(numeric):
        matrix[:, index] = columns[name].to_numpy(zero_copy_only=False)
    labels = [_label_counts(pc.fill_null(columns[name], "")) for name in categorical]
    return ArrowColumns(matrix, labels, absent, extra_columns)


def _label_counts(column) -> Counter:
    counted = pc.value_counts(column)
    return Counter(dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist())))

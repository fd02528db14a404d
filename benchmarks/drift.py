"""The drift engine vs Evidently's data-drift preset vs one numpy pass (the floor), side by side; then the path
the Lambda really runs (`logic.assess` on SageMaker capture files) vs parsing the same bytes (its floor).

1,000,000 rows x 20 numeric + 5 categorical columns, reference vs current with drift injected in 5
columns (3 numeric, 2 categorical). The floor reads every value of both datasets once
(a column sum of each numeric matrix, one comparison pass over each categorical array).
The engine's peak RSS is measured in a fresh process (data generation included).

Capture path: 1,000,000 captured rows x 14 columns (10 numeric + 4 categorical) written as SageMaker capture
lines, one text/csv request per line (what a real-time endpoint captures), and as application/json requests of
100 rows. Its floor reads the file and parses every line and every request body into columns (numbers as
float64, labels counted) with the fastest parser measured for it (orjson or pyarrow, see capture_floor). Old
figures: the same files through the capture reader of PREVIOUS_REF. Evidently is timed on in-memory DataFrames and
end to end from the same capture files (pandas reading them, as its users would).

    python benchmarks/drift.py [--rows 1000000] [--skip-evidently] [--capture-only]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lambdas.drift import engine  # noqa: E402

NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
DRIFTED = ["num_00", "num_07", "num_13", "cat_1", "cat_3"]
LEVELS = np.array([f"level_{i}" for i in range(8)])


def make(rows: int, seed: int, drift: bool):
    rng = np.random.default_rng(seed)
    numeric = rng.normal(0, 1, (rows, len(NUMERIC)))
    numeric[:, 4::5] = rng.lognormal(0, 0.6, (rows, 4))
    categorical = [LEVELS[rng.choice(8, rows, p=np.full(8, 1 / 8))] for _ in CATEGORICAL]
    if drift:
        numeric[:, 0] += 0.5
        numeric[:, 7] *= 1.5
        numeric[:, 13] = rng.normal(0, 2, rows)  # variance doubles
        for index in (1, 3):
            categorical[index] = LEVELS[rng.choice(8, rows, p=[0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])]
    return numeric, categorical


def run_engine(reference_data, current_data) -> tuple[float, engine.DriftResult]:
    started = time.perf_counter()
    reference = engine.Reference.from_arrays(NUMERIC, reference_data[0], CATEGORICAL, reference_data[1])
    result = engine.compare(reference, current_data[0], current_data[1], engine.Thresholds(psi=0.1))
    return time.perf_counter() - started, result


def run_floor(reference_data, current_data) -> float:
    started = time.perf_counter()
    for numeric, categorical in (reference_data, current_data):
        numeric.sum(axis=0)
        for column in categorical:
            (column == column[0]).sum()
    return time.perf_counter() - started


def run_evidently(reference_data, current_data) -> tuple[float, list[str]]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    def frame(data):
        numeric, categorical = data
        return pd.DataFrame({**{n: numeric[:, i] for i, n in enumerate(NUMERIC)},
                             **{n: categorical[i] for i, n in enumerate(CATEGORICAL)}})

    reference, current = frame(reference_data), frame(current_data)
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    elapsed = time.perf_counter() - started
    drifted = []
    for metric in snapshot.dict()["metrics"]:
        name, value = metric.get("metric_name", ""), metric.get("value")
        if name.startswith("ValueDrift(") and isinstance(value, (int, float)):
            column = name.split("column=")[1].split(",")[0].rstrip(")")
            threshold = 0.1
            if value >= threshold:
                drifted.append(column)
    return elapsed, sorted(drifted)


def engine_only(rows: int) -> None:
    reference_data, current_data = make(rows, 1, False), make(rows, 2, True)
    elapsed, result = run_engine(reference_data, current_data)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": peak_mb, "drifted": sorted(result.drifted_features)}))


CAPTURE_NUMERIC = [f"n{i}" for i in range(10)]
CAPTURE_CATEGORICAL = [f"c{i}" for i in range(4)]


def capture_columns(rows: int, seed: int, shift: float = 0.0) -> dict:
    rng = np.random.default_rng(seed)
    columns = {name: np.round(rng.normal(i + shift * (i < 3), 1 + i / 10, rows), 4) for i, name in enumerate(CAPTURE_NUMERIC)}
    for i, name in enumerate(CAPTURE_CATEGORICAL):
        columns[name] = np.array([f"{name}_level_{k}" for k in range(6)])[rng.integers(0, 6, rows)]
    return columns


def capture_spec():
    from pipelines.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[1] / "pipelines/churn/model.yaml")
    dataset = spec.dataset.model_copy(update={"features": CAPTURE_NUMERIC + CAPTURE_CATEGORICAL,
                                              "categorical": CAPTURE_CATEGORICAL})
    return spec.model_copy(update={"dataset": dataset, "drift": spec.drift.model_copy(update={"features": None})})


def write_captures(folder: Path, rows: int) -> dict[str, Path]:
    from datetime import datetime, timezone

    from lambdas.drift.capture import capture_record, csv_capture_record

    columns = capture_columns(rows, 4, shift=0.5)
    names = CAPTURE_NUMERIC + CAPTURE_CATEGORICAL
    table = list(zip(*(columns[n].tolist() for n in names)))
    when = datetime(2026, 11, 22, tzinfo=timezone.utc)
    files = {"csv": folder / "csv.jsonl", "json": folder / "json.jsonl"}
    with files["csv"].open("w") as out:
        out.writelines(json.dumps(csv_capture_record([row], when, str(i))) + "\n" for i, row in enumerate(table))
    with files["json"].open("w") as out:
        for start in range(0, rows, 100):
            out.write(json.dumps(capture_record([dict(zip(names, row)) for row in table[start:start + 100]], when, str(start))) + "\n")
    return files


def capture_floor(path: Path) -> dict[str, float]:
    """Read the file and parse every line and request body into columns (numeric ones as float64, labels counted)
    with each of the fast parsers measured (issue 13), no validation, no binning: the floor is the fastest of them.

    orjson: per line (faster than one orjson call on the lines joined as an array, or a regex for the bodies); CSV
    bodies of 4,096 lines joined, split once and sliced per column, numbers through one np.array(list, float64) per
    column (faster than np.loadtxt, np.fromstring, float() or csv.reader); JSON records to columns by map(itemgetter).
    arrow: 4 MiB of lines at a time through pyarrow's JSON reader (envelopes), then its CSV reader (CSV bodies joined
    in Arrow) or its JSON reader (JSON bodies), one thread as on a 1,769 MB Lambda."""
    return {"orjson": _orjson_floor(path), "arrow": _arrow_floor(path)}


def _orjson_floor(path: Path) -> float:
    from collections import Counter
    from operator import itemgetter

    import orjson

    numeric, width, names = len(CAPTURE_NUMERIC), len(CAPTURE_NUMERIC) + len(CAPTURE_CATEGORICAL), CAPTURE_NUMERIC + CAPTURE_CATEGORICAL

    def columns(bodies: list, records: list) -> None:
        if bodies:
            fields = ",".join(bodies).split(",")
            [np.array(fields[i::width], dtype=np.float64) for i in range(numeric)]
            [Counter(fields[i::width]) for i in range(numeric, width)]
        if records:
            values = [list(map(itemgetter(name), records)) for name in names]
            [np.array(column, dtype=np.float64) for column in values[:numeric]]
            [Counter(column) for column in values[numeric:]]

    gc.disable()  # as assess does while it parses: millions of acyclic objects
    started = time.perf_counter()
    with path.open("rb") as stream:
        bodies, records = [], []
        for line in stream:
            captured = orjson.loads(line)["captureData"]["endpointInput"]
            if captured["observedContentType"] == "text/csv":
                bodies.append(captured["data"])
            else:
                records.extend(orjson.loads(captured["data"])["instances"])
            if len(bodies) >= 4096 or len(records) >= 50_000:
                columns(bodies, records)
                bodies, records = [], []
        columns(bodies, records)
    elapsed = time.perf_counter() - started
    gc.enable()
    return elapsed


def _arrow_floor(path: Path) -> float:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json

    names = CAPTURE_NUMERIC + CAPTURE_CATEGORICAL
    types = {n: pa.float64() for n in CAPTURE_NUMERIC} | {n: pa.string() for n in CAPTURE_CATEGORICAL}
    endpoint_input = pa.struct([("observedContentType", pa.string()), ("data", pa.string()), ("encoding", pa.string())])
    envelope = pa_json.ParseOptions(explicit_schema=pa.schema([("captureData", pa.struct([("endpointInput", endpoint_input)]))]),
                                    unexpected_field_behavior="ignore")
    body = pa_json.ParseOptions(explicit_schema=pa.schema([("instances", pa.list_(pa.struct(list(types.items()))))]))

    def json_table(buffer, options):
        return pa_json.read_json(pa.BufferReader(buffer), read_options=pa_json.ReadOptions(use_threads=False, block_size=buffer.size + 1),
                                 parse_options=options)

    def columns(block: bytes) -> None:
        captured = pc.struct_field(json_table(pa.py_buffer(block), envelope).column(0).combine_chunks(), [0])
        bodies = pc.binary_join_element_wise(pc.struct_field(captured, [1]), pa.scalar(""), "\n")
        _, offsets, data = bodies.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int32)[bodies.offset:bodies.offset + len(bodies) + 1]
        joined = data.slice(int(bounds[0]), int(bounds[-1] - bounds[0]))
        if pc.struct_field(captured, [0])[0].as_py() == "text/csv":
            table = pa_csv.read_csv(pa.BufferReader(joined), read_options=pa_csv.ReadOptions(
                column_names=names, use_threads=False, block_size=joined.size + 1), convert_options=pa_csv.ConvertOptions(column_types=types))
            fields = [table.column(name) for name in names]
        else:
            rows = pc.list_flatten(json_table(joined, body).column(0).combine_chunks())
            fields = [pc.struct_field(rows, [index]) for index in range(len(names))]
        [field.to_numpy() for field in fields[:len(CAPTURE_NUMERIC)]]
        [pc.value_counts(field) for field in fields[len(CAPTURE_NUMERIC):]]

    started = time.perf_counter()
    with path.open("rb") as stream:
        carry = b""
        while chunk := stream.read(4 << 20):
            block = carry + chunk
            cut = block.rfind(b"\n") + 1
            carry = block[cut:]
            if cut:
                columns(block[:cut])
        if carry.strip():
            columns(carry)
    return time.perf_counter() - started


def assess_file(path: Path, statistics: dict, capture_module=None) -> tuple[float, object]:
    from lambdas.drift import logic
    from lambdas.drift.capture import line_batches, read_chunks

    spec = capture_spec()
    started = time.perf_counter()
    if capture_module is None:
        with path.open("rb") as stream:
            assessment = logic.assess(statistics, spec, [(path.name, line_batches(read_chunks(stream)))])
    else:  # the previous reader: str lines, per-row dicts
        scan = capture_module.CaptureScan(spec.drift_features, set(CAPTURE_CATEGORICAL),
                                          engine.Accumulator(engine.Reference.from_statistics(statistics)))
        with path.open() as stream:
            for number, line in enumerate(stream):
                scan.add_line(line, str(number))
        scan.problems()
        assessment = engine.evaluate(scan.accumulator, logic.thresholds(spec.drift))
    return time.perf_counter() - started, assessment


def capture_statistics(rows: int) -> dict:
    from lambdas.drift import baseline

    statistics, _ = baseline.compute(capture_columns(rows, 3), CAPTURE_NUMERIC + CAPTURE_CATEGORICAL, CAPTURE_CATEGORICAL)
    return statistics


PREVIOUS_REF = "e229a2c"  # the capture reader before the Arrow path and line batches


def previous_capture_module(ref: str = PREVIOUS_REF):
    """The capture reader at `ref`, loaded beside the new one for the old figure."""
    import importlib.util
    import tempfile

    source = subprocess.run(["git", "show", f"{ref}:lambdas/drift/capture.py"], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout
    path = Path(tempfile.mkdtemp()) / "previous_capture.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("previous_capture", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["previous_capture"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def assess_peak(path: str, rows: int) -> None:
    elapsed, assessment = assess_file(Path(path), capture_statistics(rows))
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rows": assessment.result.rows}))


def line_length_seconds(megabytes: int) -> float:
    from lambdas.drift.capture import line_batches, read_chunks
    import io

    row = ",".join(["1.5"] * 10 + ["c0_level_1"] * 4)
    body = "\n".join([row] * (megabytes * 1024 * 1024 // (len(row) + 1)))
    line = json.dumps({"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                                          "data": body, "encoding": "CSV"}}, "eventVersion": "0"}).encode()
    statistics = capture_statistics(10_000)
    from lambdas.drift import logic

    started = time.perf_counter()
    logic.assess(statistics, capture_spec(), [("big", line_batches(read_chunks(io.BytesIO(line + b"\n"))))])
    return time.perf_counter() - started


def evidently_report_seconds(reference, current) -> float:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    started = time.perf_counter()
    Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    return time.perf_counter() - started


def pandas_capture_frame(path: Path):
    """The capture file as an Evidently user reads it: pandas' JSON-lines reader, json_normalize for the envelope,
    then pandas' CSV reader for CSV bodies or the records of JSON bodies."""
    import io

    import pandas as pd

    names = CAPTURE_NUMERIC + CAPTURE_CATEGORICAL
    captured = pd.json_normalize(pd.read_json(path, lines=True)["captureData"].tolist())
    bodies = captured["endpointInput.data"]
    if (captured["endpointInput.observedContentType"] == "text/csv").all():
        return pd.read_csv(io.StringIO("\n".join(bodies)), header=None, names=names)
    return pd.DataFrame([row for body in bodies for row in json.loads(body)["instances"]], columns=names)


def evidently_on_capture(rows: int, files: dict[str, Path]) -> dict:
    """Evidently's DataDriftPreset on the same data: given in-memory DataFrames (no parsing at all), and end to end
    from the same capture files (pandas reading them, then the report), each timed once."""
    import pandas as pd

    reference = pd.DataFrame(capture_columns(rows, 3))
    figures = {"in_memory_s": evidently_report_seconds(reference, pd.DataFrame(capture_columns(rows, 4, shift=0.5)))}
    for kind, path in files.items():
        started = time.perf_counter()
        current = pandas_capture_frame(path)
        read = time.perf_counter() - started
        figures[f"{kind}_read_s"] = read
        figures[f"{kind}_end_to_end_s"] = read + evidently_report_seconds(reference, current)
    return {name: round(value, 2) for name, value in figures.items()}


def capture_path(rows: int, skip_evidently: bool) -> dict:
    import tempfile

    folder = Path(tempfile.mkdtemp())
    files = write_captures(folder, rows)
    statistics = capture_statistics(rows)
    peak = json.loads(subprocess.run([sys.executable, __file__, "--assess-peak", str(files["csv"]), "--rows", str(rows)],
                                     capture_output=True, text=True, check=True).stdout)
    figures = {"capture_rows": rows}
    previous = previous_capture_module()
    for kind, path in files.items():
        parsers = {name: round(min(seconds), 3) for name, seconds in
                   zip(("orjson", "arrow"), zip(*(capture_floor(path).values() for _ in range(2))))}
        floor = min(parsers.values())
        runs = [assess_file(path, statistics) for _ in range(2)]
        seconds, assessment = min(runs, key=lambda run: run[0])  # the better of two, as the floor
        old_seconds, old = assess_file(path, statistics, previous)
        figures[kind] = {"floor_s": floor, "floor_by_parser_s": parsers, "assess_s": round(seconds, 3),
                         "assess_first_run_s": round(runs[0][0], 3),
                         "assess_over_floor": round(seconds / floor, 2), "rows_read": assessment.result.rows,
                         "drifted": sorted(assessment.result.drifted_features),
                         "old_assess_s": round(old_seconds, 3), "old_rows_read": old.rows}
        print(f"{kind} capture ({path.stat().st_size / 1e6:.0f} MB): floor {floor:.2f} s {parsers}, assess {seconds:.2f} s "
              f"({seconds / floor:.2f}x floor; {assessment.result.rows:,} rows; first run {runs[0][0]:.2f} s), "
              f"reader of {PREVIOUS_REF} {old_seconds:.2f} s "
              f"({old.rows:,} rows)")
    figures["assess_peak_rss_mb"] = round(peak["peak_rss_mb"])
    print(f"assess peak RSS in a fresh process (csv capture): {peak['peak_rss_mb']:.0f} MB (Lambda: 1,769 MB)")
    figures["line_seconds_by_mb"] = {mb: round(line_length_seconds(mb), 3) for mb in (1, 2, 4, 6)}
    print(f"one capture line of 1/2/4/6 MB: {figures['line_seconds_by_mb']} s")
    if not skip_evidently:
        evidently = evidently_on_capture(rows, files)
        figures["evidently"] = evidently
        print(f"evidently DataDriftPreset on in-memory DataFrames (no parsing): {evidently['in_memory_s']:.1f} s")
        for kind in files:
            end_to_end, assess_s = evidently[f"{kind}_end_to_end_s"], figures[kind]["assess_s"]
            figures[kind].update(evidently_end_to_end_over_assess=round(end_to_end / assess_s, 1),
                                 evidently_in_memory_over_assess=round(evidently["in_memory_s"] / assess_s, 1))
            print(f"{kind}: evidently end to end from the capture file {end_to_end:.1f} s (pandas reading it "
                  f"{evidently[f'{kind}_read_s']:.1f} s) = {end_to_end / assess_s:.1f}x assess; in memory "
                  f"{evidently['in_memory_s'] / assess_s:.1f}x")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--capture-only", action="store_true", help="only the Lambda's path on capture files")
    parser.add_argument("--engine-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--assess-peak", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_only:
        return engine_only(args.rows)
    if args.assess_peak:
        return assess_peak(args.assess_peak, args.rows)
    if args.capture_only:
        return print(json.dumps(capture_path(args.rows, args.skip_evidently)))

    # First, while this process is small: a forked child's ru_maxrss starts from its parent's peak.
    isolated = json.loads(subprocess.run([sys.executable, __file__, "--engine-only", "--rows", str(args.rows)],
                                         capture_output=True, text=True, check=True).stdout)
    reference_data, current_data = make(args.rows, 1, False), make(args.rows, 2, True)
    print(f"rows={args.rows:,} x {len(NUMERIC)} numeric + {len(CATEGORICAL)} categorical; drift injected in {DRIFTED}")
    floor = min(run_floor(reference_data, current_data) for _ in range(3))
    engine_seconds, result = min((run_engine(reference_data, current_data) for _ in range(3)), key=lambda r: r[0])
    print(f"floor (one numpy pass): {floor:.3f} s")
    print(f"engine:                 {engine_seconds:.3f} s  drifted={sorted(result.drifted_features)}")
    print(f"engine / floor = {engine_seconds / floor:.2f}x")
    figures = {"rows": args.rows, "floor_s": round(floor, 4), "engine_s": round(engine_seconds, 4),
               "engine_over_floor": round(engine_seconds / floor, 2),
               "engine_found_exactly_the_injected_columns": sorted(result.drifted_features) == sorted(DRIFTED)}
    if not args.skip_evidently:
        evidently_seconds, evidently_drifted = run_evidently(reference_data, current_data)
        print(f"evidently DataDriftPreset: {evidently_seconds:.3f} s  drifted={evidently_drifted}")
        print(f"evidently / engine = {evidently_seconds / engine_seconds:.1f}x")
        figures.update(evidently_s=round(evidently_seconds, 3), speedup_vs_evidently=round(evidently_seconds / engine_seconds, 1))
    print(f"engine peak RSS in a fresh process (its 2 x {args.rows:,}-row input arrays included): "
          f"{isolated['peak_rss_mb']:.0f} MB (Lambda memory budget: 1,769 MB)")
    figures["engine_peak_rss_mb"] = round(isolated["peak_rss_mb"])
    figures["capture_path"] = capture_path(args.rows, args.skip_evidently)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

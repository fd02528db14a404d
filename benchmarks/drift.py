"""The drift engine vs Evidently's data-drift preset vs one numpy pass (the floor), side by side.

1,000,000 rows x 20 numeric + 5 categorical columns, reference vs current with drift injected in 5
columns (3 numeric, 2 categorical). The floor reads every value of both datasets once
(a column sum of each numeric matrix, one comparison pass over each categorical array).
The engine's peak RSS is measured in a fresh process (data generation included).

    python benchmarks/drift.py [--rows 1000000] [--skip-evidently]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--engine-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_only:
        return engine_only(args.rows)

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
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

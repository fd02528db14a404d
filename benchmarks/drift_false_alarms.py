"""A/A false alarms of the drift hook on real data that ships inside a package (vega_datasets, no download).

Each trial shuffles a real table and splits it in two halves: the baseline is built from one half with
`lambdas/drift/baseline.py` (what training writes), and a window drawn from the other half (200 rows, the
spec's min_rows, or the whole half) goes through `logic.assess` as SageMaker capture lines, one JSON request
a line: the path the Lambda and `mlops drift check` run. Both halves come from the same data, so every drift
verdict is a false alarm. Per trial it records whether any feature had PSI or JS over the spec's thresholds,
a BH-significant KS (numeric) or chi-squared (categorical) test, and the verdict (significant AND large), and whether constraints.json's checks reported a violation.

Data (vega_datasets 0.9.0's bundled CSVs, a 0.2 MB wheel):
- airports: 3,376 US airports; latitude, longitude; state (57 labels), city (2,675 labels, mostly unique)
- seattle-weather: 1,461 days; precipitation (57% exact zeros), temp_max, temp_min, wind; weather (5 labels)

    python benchmarks/drift_false_alarms.py [--trials 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lambdas.drift import baseline, logic  # noqa: E402
from lambdas.drift.capture import capture_record  # noqa: E402
from pipelines.spec import ModelSpec, load_spec  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "airports": (["latitude", "longitude", "state", "city"], ["state", "city"]),
    "seattle-weather": (["precipitation", "temp_max", "temp_min", "wind", "weather"], ["weather"]),
}
SMALL_WINDOW = 200
TESTS = ("PSI", "JS", "KS", "chi2", "drift", "violations")


def load(name: str) -> dict[str, list]:
    """The bundled CSV's feature columns (numbers as floats), read without importing vega_datasets (or pandas)."""
    spec = importlib.util.find_spec("vega_datasets")
    if spec is None:
        raise SystemExit("vega_datasets is not installed: pip install -e '.[bench]'")
    features, categorical = DATASETS[name]
    with open(Path(spec.submodule_search_locations[0]) / "_data" / f"{name}.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    return {f: [r[f] if f in categorical else float(r[f]) for r in rows] for f in features}


def model_spec(name: str) -> ModelSpec:
    """The churn spec with the dataset's features; drift thresholds are the churn spec's (PSI 0.2, JS 0.1, p 0.01,
    min_rows 200), except that one drifted feature is enough (the default; churn asks for two)."""
    features, categorical = DATASETS[name]
    document = load_spec(REPO_ROOT / "pipelines/churn").model_dump()
    document["dataset"] = {**document["dataset"], "features": features, "categorical": categorical, "label": "label"}
    document["drift"] = {**document["drift"], "features": None, "min_drifted_features": 1}
    return ModelSpec.model_validate(document)


def capture_lines(columns: dict[str, list], rows: np.ndarray) -> list[bytes]:
    when = datetime(2026, 11, 23, tzinfo=timezone.utc)
    names = list(columns)
    return [orjson.dumps(capture_record([{n: columns[n][i] for n in names}], when, str(i))) for i in rows]


def trial(name: str, columns: dict[str, list], spec: ModelSpec, seed: int, window: int | None) -> dict[str, bool]:
    """One A/A split: which alarms went off."""
    rows = len(next(iter(columns.values())))
    order = np.random.default_rng(seed).permutation(rows)
    half = rows // 2
    reference_rows, current_rows = order[:half], order[half:]
    if window is not None:
        current_rows = current_rows[:window]
    features, categorical = DATASETS[name]
    statistics, constraints = baseline.compute({f: [columns[f][i] for i in reference_rows] for f in features},
                                               features, categorical)
    assessment = logic.assess(statistics, spec, [(name, capture_lines(columns, current_rows))], constraints=constraints)
    result, thresholds = assessment.result, logic.thresholds(spec.drift)
    numeric = [f for f in result.features if f.kind == "numeric"]
    category = [f for f in result.features if f.kind == "categorical"]
    return {"PSI": any(f.psi >= thresholds.psi for f in result.features),
            "JS": any(f.js >= thresholds.js for f in result.features),
            "KS": any(f.significant for f in numeric),
            "chi2": any(f.significant for f in category),
            "drift": result.drift, "violations": bool(result.violations)}


def run(trials: int, seed: int = 0, datasets=tuple(DATASETS), windows=(SMALL_WINDOW, None)) -> list[dict]:
    """One row per (dataset, window): the share of trials in which each alarm went off."""
    table = []
    for name in datasets:
        columns, spec = load(name), model_spec(name)
        rows = len(next(iter(columns.values())))
        for window in windows:
            outcomes = [trial(name, columns, spec, seed * 1_000_003 + t, window) for t in range(trials)]
            table.append({"dataset": name, "rows": rows, "window": window or rows - rows // 2, "trials": trials,
                          **{test: sum(o[test] for o in outcomes) / trials for test in TESTS}})
    return table


def markdown(table: list[dict]) -> str:
    lines = ["| data (rows) | window | trials | PSI >= 0.2 | JS >= 0.1 | KS (BH) | chi2 (BH) | **drift** | constraints.json violation |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        lines.append(f"| {row['dataset']} ({row['rows']:,}) | {row['window']:,} | {row['trials']} | "
                     + " | ".join(f"{row[t]:.0%}" for t in TESTS[:4]) + f" | **{row['drift']:.0%}** | {row['violations']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    started = time.perf_counter()
    table = run(arguments.trials, arguments.seed)
    print(markdown(table))
    print(f"\n{time.perf_counter() - started:.1f} s; target: drift in at most 5% of A/A trials")
    worst = max(row["drift"] for row in table)
    sys.exit(0 if worst <= 0.05 else 1)


if __name__ == "__main__":
    main()

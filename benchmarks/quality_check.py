"""The quality check's path on real files: a window's capture file and a label file read as the scheduled check reads
them (lambdas/shared/capture_files.py), joined and judged by lambdas/quality/logic.check, whose bootstrap resamples
arrays; side by side, the same check with the bootstrap resampling the prediction records (how it was first written:
training's from_predictions on each resample's records). Printed: seconds of each (best of three), the ratio, and
the joined rows per second. The labels of half the rows are flipped, so the window is a drop and the guard runs
(500 resamples).

    python benchmarks/quality_check.py [--requests 5000]     # 10 rows a request
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lambdas.quality import labels, logic  # noqa: E402
from lambdas.shared.capture_files import line_batches, read_chunks  # noqa: E402
from pipelines.spec import load_spec  # noqa: E402

START = datetime(2026, 12, 1, tzinfo=timezone.utc)
WINDOW = logic.Window(START, START + timedelta(hours=24))


def write(folder: Path, requests: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    capture, ground_truth = folder / "capture.jsonl", folder / "labels.jsonl"
    with capture.open("w") as captured, ground_truth.open("w") as labelled:
        for request in range(requests):
            truth = rng.integers(0, 2, 10)
            scores = np.clip(truth * 0.45 + rng.uniform(0.05, 0.55, 10), 0, 1)
            answer = {"predictions": [{"label": int(p >= 0.5), "probability": float(p)} for p in scores],
                      "model": "churn", "inference_id": f"r{request}"}
            captured.write(json.dumps({"captureData": {"endpointOutput": {
                "observedContentType": "application/json", "mode": "OUTPUT", "data": json.dumps(answer),
                "encoding": "JSON"}}, "eventMetadata": {"eventId": f"e{request}", "inferenceTime": "2026-12-01T01:00:00Z"},
                "eventVersion": "0"}) + "\n")
            flipped = np.where(rng.uniform(size=10) < 0.5, 1 - truth, truth)
            labelled.writelines(labels.ground_truth_line(f"r{request}:{row}", str(value)) + "\n"
                                for row, value in enumerate(flipped))
    return capture, ground_truth


def lines(path: Path):
    with path.open("rb") as stream:
        for batch in line_batches(read_chunks(stream)):
            yield from batch


def record_bootstrap(spec, joined_labels, predictions):
    """The first version: each resample picks records and recomputes every metric from them."""
    generator = np.random.default_rng(logic.BOOTSTRAP_SEED)
    values = []
    for _ in range(logic.BOOTSTRAP_SAMPLES):
        picked = generator.integers(0, len(joined_labels), len(joined_labels))
        values.append(logic.window_metrics(spec, [joined_labels[i] for i in picked],
                                           [predictions[i] for i in picked])[spec.objective.metric])
    return np.asarray(values)


def check(spec, capture: Path, ground_truth: Path) -> tuple[float, dict]:
    best, report = float("inf"), {}
    for _ in range(3):
        started = time.perf_counter()
        report = logic.check(spec, (("capture", line) for line in lines(capture)),
                             ((START + timedelta(hours=30), line) for line in lines(ground_truth)),
                             {"validation:auc": 0.9}, WINDOW)
        best = min(best, time.perf_counter() - started)
    return best, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    requests = parser.parse_args().requests
    spec = load_spec(Path(__file__).resolve().parents[1] / "pipelines" / "churn")
    with tempfile.TemporaryDirectory() as folder:
        capture, ground_truth = write(Path(folder), requests)
        arrays, report = check(spec, capture, ground_truth)
        with mock.patch.object(logic, "bootstrap", record_bootstrap):
            records, before = check(spec, capture, ground_truth)
    assert report["guard"] == before["guard"] and report["decision"] == "drop", "both paths must give one verdict"
    rows = report["labels"]["joined"]
    print(f"{rows:,} joined rows, decision {report['decision']} (bound {report['guard']['bound']:.4f}, both paths)")
    print(f"records resampled: {records:.2f} s; arrays resampled: {arrays:.2f} s; "
          f"ratio {records / arrays:.1f}x; {rows / arrays:,.0f} joined rows/s")


if __name__ == "__main__":
    main()

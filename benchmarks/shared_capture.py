"""`mlops drift check` of a shared-hosted model on the shared endpoint's raw capture vs on its own, side by side.

A dedicated endpoint's capture holds one model's requests; a shared endpoint's holds every component's under one
prefix. The scheduled check reads the model's own prefix, where the control plane's splitter files its lines
(lambdas/drift/split.py), exactly as for a dedicated endpoint; `mlops drift check --capture` given the shared prefix
keeps the lines whose answer names its model (lambdas/drift/capture.py model_traffic). Both files here hold the same
100-row JSON requests of model "a" (with the model kit's answer naming the model); the shared file interleaves as many
requests of model "b". Timed: `logic.assess` on the file (what both run), best of three. Printed: seconds, rows read,
and the ratios per request of "a" and per capture line.

    python benchmarks/shared_capture.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift import CAPTURE_CATEGORICAL, CAPTURE_NUMERIC, capture_columns, capture_spec, capture_statistics  # noqa: E402

REQUEST_ROWS = 100


def capture_line(rows: list[dict], model: str, event: str, when: datetime) -> str:
    """A SageMaker capture record of one JSON request and the model kit's answer (base64, as SageMaker writes it)."""
    answer = json.dumps({"predictions": [{"probability": 0.5, "label": 1}] * len(rows), "model": model})
    return json.dumps({"captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                          "data": json.dumps({"instances": rows}), "encoding": "JSON"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": base64.b64encode(answer.encode()).decode(), "encoding": "BASE64"}},
        "eventMetadata": {"eventId": event, "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "eventVersion": "0"})


def write(folder: Path, rows: int) -> dict[str, Path]:
    names = CAPTURE_NUMERIC + CAPTURE_CATEGORICAL
    columns = capture_columns(rows, 4, shift=0.5)
    table = [dict(zip(names, row)) for row in zip(*(columns[n].tolist() for n in names))]
    when = datetime(2026, 12, 7, tzinfo=timezone.utc)
    requests = [table[start:start + REQUEST_ROWS] for start in range(0, rows, REQUEST_ROWS)]
    files = {"dedicated": folder / "dedicated.jsonl", "shared": folder / "shared.jsonl"}
    with files["dedicated"].open("w") as out:
        out.writelines(capture_line(r, "a", f"a{i}", when) + "\n" for i, r in enumerate(requests))
    with files["shared"].open("w") as out:
        for i, request in enumerate(requests):
            out.write(capture_line(request, "a", f"a{i}", when) + "\n")
            out.write(capture_line(request, "b", f"b{i}", when) + "\n")
    return files


def assess(path: Path, statistics: dict, hosting: str) -> tuple[float, int]:
    from lambdas.drift import logic
    from lambdas.drift.capture import line_batches, model_traffic, read_chunks

    spec = capture_spec()
    spec = spec.model_copy(update={"name": "a", "deployment": spec.deployment.model_copy(update={"hosting": hosting})})
    started = time.perf_counter()
    with path.open("rb") as stream:
        sources = model_traffic([(path.name, line_batches(read_chunks(stream)))], spec)
        assessment = logic.assess(statistics, spec, sources)
    return time.perf_counter() - started, assessment.result.rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    rows = parser.parse_args().rows
    statistics = capture_statistics(rows)
    with tempfile.TemporaryDirectory() as folder:
        files = write(Path(folder), rows)
        dedicated = min(assess(files["dedicated"], statistics, "dedicated") for _ in range(3))
        shared = min(assess(files["shared"], statistics, "shared") for _ in range(3))
    assert dedicated[1] == shared[1] == rows, (dedicated, shared)
    print(json.dumps({"rows_of_the_model": rows, "requests_of_the_model": rows // REQUEST_ROWS,
                      "dedicated_s": round(dedicated[0], 3), "shared_s": round(shared[0], 3),
                      "shared_over_dedicated": round(shared[0] / dedicated[0], 2),
                      "per_capture_line_shared_over_dedicated": round(shared[0] / 2 / dedicated[0], 2)}, indent=1))


if __name__ == "__main__":
    main()

"""Wall time of the whole local lifecycle (`mlops local up`), per step, against the 90 s budget on 2 cores.

    python benchmarks/local_lifecycle.py [--rows 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.local.lifecycle import LocalLifecycle  # noqa: E402

BUDGET_S = 90.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        result = LocalLifecycle("churn", Path(workdir), rows=args.rows, say=lambda line: None).run()
    total = result.timings.pop("total_s")
    for step, seconds in result.timings.items():
        print(f"{seconds:7.2f} s  {step}")
    print(f"total {total:.1f} s on {os.cpu_count()} cores = {total / BUDGET_S:.2f} of the {BUDGET_S:.0f} s budget")
    print(json.dumps({"total_s": total, "budget_ratio": round(total / BUDGET_S, 3), "steps": result.timings}))


if __name__ == "__main__":
    main()

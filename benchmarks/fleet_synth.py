"""Synthesis time of a fleet: 1, 10 and 100 models (scaffolded folders of every framework and task type in a
temporary models root), one environment, cdk-nag and the platform's rule pack on, assets bundled as `cdk synth`
bundles them. Each app is synthesized in a fresh process (jsii keeps state); the time is measured inside it,
from building the app to the written cloud assembly, and also for the whole process. The figure that matters is
what one more model adds, between consecutive fleet sizes.

    python benchmarks/fleet_synth.py [--models 1,10,100] [--env dev] [--no-bundling]

Targets: well under 2 s per extra model (issue 14); at most 0.3 s (issue 26, once models share the control plane).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from itertools import cycle
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipelines.scaffold import scaffold  # noqa: E402

KINDS = [("regression", "xgboost"), ("binary", "sklearn"), ("multiclass", "pytorch"), ("binary", "xgboost"),
         ("regression", "byo")]
CHILD = """
import json, sys, time
started = time.perf_counter()
import aws_cdk as cdk
from stacks.app_builder import build_app
imported = time.perf_counter()
context = json.loads(open("cdk.json").read())["context"]
context.update({"env": sys.argv[2], "mlops:git_commit": "0123abc"})
if sys.argv[4] == "0":
    context["aws:cdk:bundling-stacks"] = []
assembly = build_app(cdk.App(context=context, outdir=sys.argv[3]), sys.argv[1]).synth()
print(json.dumps({"import_s": imported - started, "synth_s": time.perf_counter() - imported,
                  "stacks": len(assembly.stacks)}))
"""


def fleet(root: Path, models: int) -> Path:
    folder = root / f"fleet-{models}"
    for index, (task, framework) in zip(range(models), cycle(KINDS)):
        scaffold(f"model-{index:02d}", task, framework, folder)
    return folder


def synthesize(models_dir: Path, env: str, bundling: bool, outdir: Path) -> dict:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, str(models_dir), env, str(outdir), "1" if bundling else "0"],
                            cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "process_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="1,10,100", help="fleet sizes, comma-separated, ascending")
    parser.add_argument("--env", default="dev")
    parser.add_argument("--no-bundling", action="store_true")
    args = parser.parse_args()
    sizes = sorted({int(size) for size in args.models.split(",")})
    runs = {}
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        for size in sizes:
            runs[size] = synthesize(fleet(root, size), args.env, not args.no_bundling, root / f"out-{size}")
    for size, run in runs.items():
        print(f"{size:>4} models: {run['stacks']} stacks, synthesis {run['synth_s']:.2f} s "
              f"(process {run['process_s']:.2f} s, imports {run['import_s']:.2f} s)")
    marginal = {f"{a}->{b}": round((runs[b]["synth_s"] - runs[a]["synth_s"]) / (b - a), 3)
                for a, b in zip(sizes, sizes[1:])}
    for step, seconds in marginal.items():
        print(f"per extra model, {step}: {seconds:.2f} s (target: at most 0.3 s)")
    print(json.dumps({"runs": runs, "per_extra_model_s": marginal}))


if __name__ == "__main__":
    main()

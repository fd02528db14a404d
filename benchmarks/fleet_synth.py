"""Synthesis time of a fleet: 1 model against 10 models (scaffolded folders of every framework and task type in a
temporary models root), one environment, cdk-nag and the platform's rule pack on, assets bundled as `cdk synth`
bundles them. Each app is synthesized in a fresh process (jsii keeps state); the time is measured inside it,
from building the app to the written cloud assembly, and also for the whole process.

    python benchmarks/fleet_synth.py [--models 10] [--env dev] [--no-bundling]

Target (issue 14): well under 2 s per extra model.
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
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--env", default="dev")
    parser.add_argument("--no-bundling", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        one = synthesize(fleet(root, 1), args.env, not args.no_bundling, root / "out-1")
        many = synthesize(fleet(root, args.models), args.env, not args.no_bundling, root / "out-many")
    extra = args.models - 1
    per_model = (many["synth_s"] - one["synth_s"]) / extra
    for label, run in ((f"1 model", one), (f"{args.models} models", many)):
        print(f"{label:>10}: {run['stacks']} stacks, synthesis {run['synth_s']:.2f} s "
              f"(process {run['process_s']:.2f} s, imports {run['import_s']:.2f} s)")
    print(f"per extra model: {per_model:.2f} s (target: well under 2 s)")
    print(json.dumps({"one": one, "many": many, "models": args.models, "per_extra_model_s": round(per_model, 3)}))


if __name__ == "__main__":
    main()

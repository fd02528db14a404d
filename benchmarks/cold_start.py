"""Cold start of every Lambda handler: import and init time in a fresh interpreter with only its bundle (plus the
boto3 the runtime provides) on sys.path, as Lambda loads it; side by side with the shared bundle of an earlier
commit (all handlers, numpy and scipy in one asset) and with a bare `import boto3`.

Bundles are built for this machine's platform and Python (the deployed ones are arm64 / Python 3.13 wheels of the
same requirements; their sizes are what tests/infrastructure/test_lambda_bundle.py budgets). Lambda's environment is
set (LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME, ...), so the X-Ray SDK takes its Lambda path, as it does there.
Before the clock starts, each process imports what the runtime's bootstrap (awslambdaric) has imported when it loads
the handler, so neither figure counts stdlib modules Lambda has already loaded. Each figure is the median of --runs
fresh processes, measured interleaved so machine noise hits all alike.

The floor row is a module that does only what the project's conventions ask of every handler before any of its own
code: `import boto3`, `from pydantic import BaseModel` (events are parsed into pydantic models) and the one
powertools Logger, Tracer and Metrics setup; it runs from a handler's bundle, with the same library versions.

    python benchmarks/cold_start.py [--runs 9] [--old-ref a583568]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stacks.constructs import functions  # noqa: E402

HOST_PLATFORM = "x86_64" if os.uname().machine == "x86_64" else "arm64"
# The Lambda runtime's Python when this machine has it (bundles then carry its bytecode, as deployed), else this one.
PYTHON_VERSION = functions.runtime_version() if functions.bytecode_compiler(functions.runtime_version()) else \
    f"{sys.version_info.major}.{sys.version_info.minor}"
PYTHON = functions.bytecode_compiler(PYTHON_VERSION) or sys.executable
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")
# What awslambdaric's bootstrap (and the modules it loads) has imported before it imports the handler.
RUNTIME_BOOTSTRAP_IMPORTS = ("importlib", "json", "logging", "os", "time", "traceback", "decimal", "math", "enum")
PROBE = """
import sys, time
import {preloaded}
sys.path[:0] = {paths!r}
started = time.perf_counter()
import {module}
print(time.perf_counter() - started)
"""

FLOOR_MODULE = "cold_start_floor"
FLOOR_SOURCE = """import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from pydantic import BaseModel

logger, tracer = Logger(service="floor"), Tracer(service="floor")
metrics = Metrics(namespace="floor", service="floor")
"""


def deployed_handlers() -> list[str]:
    """Every handler of the synthesized app (bundling skipped), e.g. lambdas.approval.handlers.decide_handler."""
    import aws_cdk as cdk

    from stacks.app_builder import build_app

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    app = build_app(cdk.App(context={**context, "aws:cdk:bundling-stacks": [], "mlops:git_commit": "0"}))
    handlers = set()
    for stack in app.node.children:
        if isinstance(stack, cdk.Stack):
            template = cdk.assertions.Template.from_stack(stack)
            handlers |= {r["Properties"]["Handler"] for r in template.find_resources("AWS::Lambda::Function").values()}
    return sorted(handlers)


def runtime_dir(folder: Path) -> Path:
    """What the Lambda runtime provides: boto3 and its dependencies, installed for its Python, with bytecode."""
    target = folder / "runtime"
    requirements = folder / "runtime.txt"
    requirements.write_text("boto3\n")
    functions.pip_install(requirements, target, HOST_PLATFORM, PYTHON_VERSION)
    subprocess.run([PYTHON, "-m", "compileall", "-q", "-j", "0", str(target)], check=True, stdout=subprocess.DEVNULL)
    return target


def old_bundle(folder: Path, ref: str) -> Path:
    """The shared bundle at `ref`: every lambdas/ module, the pipelines modules, one requirements file for all."""
    source = folder / "old-source"
    source.mkdir()
    archive = subprocess.run(["git", "archive", ref, "lambdas", "pipelines"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    target = folder / "old-bundle"
    functions.pip_install(source / "lambdas/requirements.txt", target, HOST_PLATFORM, PYTHON_VERSION)
    functions.remove_runtime_provided(target)  # as it did; it kept all of scipy (its engine imported scipy.stats)
    for cache in target.rglob("__pycache__"):  # and it shipped no bytecode
        shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(source / "lambdas", target / "lambdas", dirs_exist_ok=True)
    shutil.copytree(source / "pipelines", target / "pipelines", dirs_exist_ok=True)
    return target


def new_bundle(folder: Path, module: str) -> Path:
    target = folder / f"new-{module}"
    functions._bundle(module).write(target, HOST_PLATFORM, PYTHON_VERSION)
    return target


def floor_paths(folder: Path, bundles: dict[str, Path]) -> list[Path]:
    """The floor module, on the libraries of a handler bundle that holds all three (pydantic, powertools, X-Ray)."""
    libraries = next(b for b in bundles.values() if all((b / name).is_dir() for name in
                                                         ("pydantic", "aws_lambda_powertools", "aws_xray_sdk")))
    floor = folder / "floor"
    floor.mkdir()
    (floor / f"{FLOOR_MODULE}.py").write_text(FLOOR_SOURCE)
    return [floor, libraries]


def unzipped_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def import_seconds(module: str, paths: list[Path], task_root: Path) -> float:
    env = {"PATH": os.environ["PATH"], "LAMBDA_TASK_ROOT": str(task_root), "AWS_LAMBDA_FUNCTION_NAME": "cold-start",
           "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1", "POWERTOOLS_SERVICE_NAME": "cold-start",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "PYTHONDONTWRITEBYTECODE": "1"}
    probe = PROBE.format(paths=[str(p) for p in paths], module=module, preloaded=", ".join(RUNTIME_BOOTSTRAP_IMPORTS))
    output = subprocess.run([PYTHON, "-S", "-c", probe], env=env, capture_output=True, text=True)
    if output.returncode:
        raise SystemExit(f"{module} does not import from its bundle {paths[0]}:\n{output.stderr[-2000:]}")
    return float(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--old-ref", default="a583568", help="commit of the shared bundle to compare with")
    args = parser.parse_args()
    modules = sorted({handler.rsplit(".", 1)[0] for handler in deployed_handlers()})
    folder = Path(tempfile.mkdtemp())
    runtime = runtime_dir(folder)
    old = old_bundle(folder, args.old_ref)
    new = {module: new_bundle(folder, module) for module in modules}
    floor = floor_paths(folder, new)
    samples: dict[str, list[float]] = {"boto3": [], "floor": []}
    for _ in range(args.runs):
        samples["boto3"].append(import_seconds("boto3", [runtime], folder))
        samples["floor"].append(import_seconds(FLOOR_MODULE, [*floor, runtime], floor[1]))
        for module in modules:
            samples.setdefault(f"new {module}", []).append(import_seconds(module, [new[module], runtime], new[module]))
            if (old / module.replace(".", "/")).with_suffix(".py").exists():  # handlers added since have no old figure
                samples.setdefault(f"old {module}", []).append(import_seconds(module, [old, runtime], old))
    median = {name: statistics.median(values) for name, values in samples.items()}
    boto3, floor_s = median["boto3"], median["floor"]
    print(f"Python {PYTHON_VERSION} on {HOST_PLATFORM}; bare `import boto3`: {boto3 * 1000:.0f} ms (median of {args.runs})")
    print(f"floor (boto3 + pydantic + powertools Logger/Tracer/Metrics): {floor_s * 1000:.0f} ms = {floor_s / boto3:.2f}x boto3")
    print(f"{'handler module':32} {'new ms':>7} {'x boto3':>8} {'> floor':>8} {'MB':>6} | {'old ms':>7} {'x boto3':>8} {'MB':>6}")
    old_mb = unzipped_mb(old)
    figures = {"boto3_ms": round(boto3 * 1000), "floor_ms": round(floor_s * 1000), "floor_x_boto3": round(floor_s / boto3, 2),
               "old_bundle_mb": round(old_mb, 1), "handlers": {}}
    for module in modules:
        n, o = median[f"new {module}"], median.get(f"old {module}")
        mb = unzipped_mb(new[module])
        before = f"{o * 1000:7.0f} {o / boto3:8.2f} {old_mb:6.1f}" if o else f"{'(new handler)':>23}"
        print(f"{module:32} {n * 1000:7.0f} {n / boto3:8.2f} {(n - floor_s) * 1000:+8.0f} {mb:6.1f} | {before}")
        figures["handlers"][module] = {"new_ms": round(n * 1000), "new_x_boto3": round(n / boto3, 2), "new_mb": round(mb, 1),
                                       "over_floor_ms": round((n - floor_s) * 1000),
                                       **({"old_ms": round(o * 1000), "old_x_boto3": round(o / boto3, 2)} if o else {})}
    print(json.dumps(figures))
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

"""`mlops drift check`: the drift hook's engine on local capture files or an S3 prefix, with progress.

S3 locations are read with the client given (the CLI's: the environment's session, or the local server's with
`--env local`); boto3's default client otherwise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import boto3

from lambdas.drift import logic, report
from lambdas.drift.capture import line_batches, model_traffic, read_chunks
from pipelines.spec import ModelSpec


def reads_s3(*locations: str | None) -> bool:
    return any(location and location.startswith("s3://") for location in locations)


def read_text(location: str, s3=None) -> str:
    if location.startswith("s3://"):
        bucket, _, key = location[5:].partition("/")
        return (s3 or boto3.client("s3")).get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return Path(location).read_text()


def capture_sources(location: str, s3=None) -> list[tuple[str, Callable[[], Iterable[str]]]]:
    """(name, byte lines) for a JSONL file, a folder of them, or an s3:// prefix."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        s3 = s3 or boto3.client("s3")
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for o in page.get("Contents", []) if o["Key"].endswith((".jsonl", ".json"))]
        return [(f"s3://{bucket}/{k}", lambda k=k: line_batches(read_chunks(s3.get_object(Bucket=bucket, Key=k)["Body"])))
                for k in keys]
    path = Path(location)
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise FileNotFoundError(f"no capture files at {location} (expected .jsonl data-capture files)")
    return [(str(f), lambda f=f: _file_lines(f)) for f in files]


def _file_lines(path: Path) -> Iterable[bytes]:
    with path.open("rb") as stream:
        yield from line_batches(read_chunks(stream))


def sibling_constraints(baseline: str) -> str | None:
    """constraints.json beside a local statistics.json (how training and Model Monitor write them), if it is there."""
    if baseline.startswith("s3://"):
        return None
    candidate = Path(baseline).with_name("constraints.json")
    return str(candidate) if candidate.exists() and candidate != Path(baseline) else None


def served_baseline(pipelines, model: str, stage: str = "prod") -> tuple[str, str | None, int]:
    """(statistics.json URI, constraints.json URI or None, version) registered with the version that serves `stage`
    in the client's environment (its package's DriftCheckBaselines.ModelDataQuality): what the scheduled drift hook
    scores production's captured traffic against. LookupError when nothing serves there or no baseline is
    registered: the message says to pass --baseline."""
    from lambdas.shared.release import drift_baseline_uris

    serving = [version for version in pipelines.models(model) if stage in version.serves]
    if not serving:
        raise LookupError(f"nothing serves {model} at {stage} in {pipelines.env}, so there is no registered baseline to "
                          f"compare with; fix: pass --baseline statistics.json (path or s3:// URI), or check "
                          f"`mlops models list {model} --env {pipelines.env}`")
    statistics, constraints = drift_baseline_uris(
        pipelines.sagemaker.describe_model_package(ModelPackageName=serving[0].arn))
    if not statistics:
        raise LookupError(f"version {serving[0].version} of {model} (serving {stage} in {pipelines.env}) has no "
                          "registered drift baseline; fix: pass --baseline statistics.json (path or s3:// URI)")
    return statistics, constraints or None, serving[0].version


def check(spec: ModelSpec, baseline: str, capture: str, out: Path, progress: Callable[[str], None] = lambda name: None,
          constraints: str | None = None, s3=None) -> dict:
    """`constraints`: Model Monitor's constraints.json (path or s3:// URI); by default the one beside a local baseline.
    s3: the client that reads s3:// locations."""
    sources = model_traffic(((name, lines()) for name, lines in capture_sources(capture, s3)), spec)
    constraints = constraints or sibling_constraints(baseline)
    assessment = logic.assess(json.loads(read_text(baseline, s3)), spec, sources, progress,
                              constraints=json.loads(read_text(constraints, s3)) if constraints else None)
    scan, result, blocking = assessment.scan, assessment.result, assessment.blocking
    retrain, reason = assessment.retrain, assessment.reason
    context = {"model": spec.name, "baseline": baseline, "constraints": constraints, "capture": capture, "capture_lines": scan.lines,
               "malformed_lines": scan.malformed, "blocking": blocking, "offline": True}
    verdict, why = report.decision(result, context, spec.drift)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({**report.json_report(result, context), "decision": reason,
                                                 "verdict": verdict, "run_started": False}, indent=2))
    (out / "report.html").write_text(report.html_report(result, context))
    return {"result": result, "retrain": retrain, "reason": reason, "verdict": verdict, "why": why,
            "html": out / "report.html"}

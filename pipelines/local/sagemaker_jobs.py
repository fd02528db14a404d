"""SageMaker training jobs without SageMaker: the model's source archive run as a subprocess in the /opt/ml layout.

As in a SageMaker framework container (PyTorch, XGBoost, scikit-learn; a bring-your-own image built on the
SageMaker training toolkit behaves the same), the `code` channel's sourcedir.tar.gz (the run's snapshot of the
archive synthesis builds: the model folder, modelkit/, baseline.py and mlops_spec.json) is unpacked and its
entry point run with this machine's Python, which has torch, xgboost and scikit-learn. Every other channel is
downloaded from S3 (moto in the local mode and the tests): an S3Prefix channel by prefix, a ManifestFile
channel object by object (keeping the manifest's relative paths). Outputs are uploaded where SageMaker puts
them: <S3OutputPath>/<job>/output/model.tar.gz and output.tar.gz.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3

from pipelines.local.glue import environment_snapshot
from pipelines.model_folder import write_source_archive
from pipelines.spec import find_model_dir, load_spec


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def download_channel(s3, uri: str, target: Path) -> None:
    bucket, prefix = _split(uri)
    target.mkdir(parents=True, exist_ok=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            s3.download_file(bucket, item["Key"], str(target / Path(item["Key"]).name))


def download_manifest_channel(s3, uri: str, target: Path) -> None:
    """S3DataType ManifestFile: [{"prefix": "s3://bucket/prefix/"}, "relative/key", ...]; each object lands at
    its relative path under the channel directory. A listed object that does not exist fails the job, as in
    SageMaker."""
    bucket, key = _split(uri)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    if not isinstance(manifest, list) or not manifest or not isinstance(manifest[0], dict) or "prefix" not in manifest[0]:
        raise ValueError(f"{uri} is not a SageMaker manifest ([{{\"prefix\": \"s3://...\"}}, \"key\", ...])")
    prefix_bucket, prefix = _split(manifest[0]["prefix"])
    for relative in manifest[1:]:
        path = target / relative
        if ".." in Path(relative).parts or Path(relative).is_absolute():
            raise ValueError(f"{uri}: manifest entry {relative!r} leaves the channel directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(prefix_bucket, f"{prefix}{relative}", str(path))


def tar_directory(directory: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(directory)))
    return archive


def unpack_source(model_dir: Path, root: Path) -> Path:
    """/opt/ml/code: the code channel's source archive (the run's snapshot), or, for a request without one, the
    archive built from the model folder as synthesis builds it; unpacked (SageMaker's script mode does this)."""
    channel = root / "input/data/code"
    channel.mkdir(parents=True, exist_ok=True)
    archive = next(iter(sorted(channel.glob("*.tar.gz"))), None) or \
        write_source_archive(model_dir, channel / "sourcedir.tar.gz", load_spec(model_dir))
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(code, filter="data")
    return code


def run_training_job(request: dict, model: str | Path, workdir: Path, region: str = "us-east-1",
                     log=print, extra_env: dict | None = None, credentials=None) -> dict:
    """Runs one CreateTrainingJob request locally; returns what DescribeTrainingJob would report.

    `model`: a model name (a folder under MLOPS_MODELS_DIR, default pipelines/), or the model folder itself. `credentials`
    (pipelines.local.iam.Credentials): the job role's session, used for every S3 call and given to train.py, as
    SageMaker does; without them, the caller's own."""
    model_dir = Path(model) if isinstance(model, Path) else find_model_dir(model)
    s3 = credentials.client("s3", region) if credentials else boto3.client("s3", region_name=region)
    root = workdir / request["TrainingJobName"]
    try:
        for channel in request["InputDataConfig"]:
            source = channel["DataSource"]["S3DataSource"]
            target = root / "input/data" / channel["ChannelName"]
            if source.get("S3DataType") == "ManifestFile":
                download_manifest_channel(s3, source["S3Uri"], target)
            else:
                download_channel(s3, source["S3Uri"], target)
        code = unpack_source(model_dir, root)
    except Exception as error:  # SageMaker: ClientError "Failed to download data", the job fails
        return {"TrainingJobStatus": "Failed", "FailureReason": f"ClientError: input data: {error}"[:1000]}
    config = root / "input/config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(request.get("HyperParameters", {})))
    resources = request.get("ResourceConfig") or {}
    (config / "resourceconfig.json").write_text(json.dumps({  # what SageMaker writes on each host
        "current_host": "algo-1", "hosts": [f"algo-{i + 1}" for i in range(int(resources.get("InstanceCount", 1)))],
        "current_instance_type": resources.get("InstanceType", "local")}))
    entry_point = json.loads(request.get("HyperParameters", {}).get("sagemaker_program", '"train.py"'))
    identity = credentials.environment() if credentials else {}
    env = {k: v for k, v in environment_snapshot().items() if not (identity and k == "AWS_SESSION_TOKEN")}
    env.update({"SM_ROOT": str(root), "TRAINING_JOB_NAME": request["TrainingJobName"], **identity, **(extra_env or {})})
    process = subprocess.run([sys.executable, str(code / entry_point)], env=env, cwd=code, capture_output=True,
                             text=True, timeout=request["StoppingCondition"]["MaxRuntimeInSeconds"])
    (root / "training.log").write_text(process.stdout + process.stderr)
    for line in process.stdout.splitlines():
        log(line)
    if process.returncode != 0:
        return {"TrainingJobStatus": "Failed", "FailureReason": (process.stderr or process.stdout)[-1000:]}
    output_uri = f"{request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{request['TrainingJobName']}/output/"
    bucket, prefix = _split(output_uri)
    for name, directory in (("model.tar.gz", root / "model"), ("output.tar.gz", root / "output/data")):
        s3.upload_file(str(tar_directory(directory, root / name)), bucket, f"{prefix}{name}")
    return {"TrainingJobStatus": "Completed", "ModelArtifacts": {"S3ModelArtifacts": f"{output_uri}model.tar.gz"},
            "OutputDataConfig": request["OutputDataConfig"], "log": process.stdout}


# ------------------------------------------------------------------ hyperparameter tuning
def sample_hyperparameters(ranges: dict, rng) -> dict[str, str]:
    """One point of a tuning job's ParameterRanges, as SageMaker hands it to a trial (strings; categorical values
    as the request gives them). Logarithmic scaling samples the logarithm uniformly."""
    import math

    chosen = {}
    for kind, cast in (("IntegerParameterRanges", int), ("ContinuousParameterRanges", float)):
        for item in ranges.get(kind, []):
            low, high = float(item["MinValue"]), float(item["MaxValue"])
            scaling = item.get("ScalingType", "Auto")
            if scaling == "Logarithmic":
                value = math.exp(rng.uniform(math.log(low), math.log(high)))
            elif scaling == "ReverseLogarithmic":
                value = high + low - math.exp(rng.uniform(math.log(low), math.log(high)))
            else:
                value = rng.uniform(low, high)
            chosen[item["Name"]] = str(min(max(round(value), int(low)), int(high))) if cast is int else repr(value)
    for item in ranges.get("CategoricalParameterRanges", []):
        chosen[item["Name"]] = rng.choice(item["Values"])
    return chosen


def objective_value(log: str, definitions: list[dict], metric: str) -> float | None:
    """The objective as SageMaker reads it from a trial's log: the last match of its metric definition's regex."""
    import re

    regex = next((d["Regex"] for d in definitions if d["Name"] == metric), None)
    matches = re.findall(regex, log) if regex else []
    try:
        return float(matches[-1]) if matches else None
    except ValueError:
        return None


def trial_request(tuning: dict, name: str, tuned: dict[str, str]) -> dict:
    """The CreateTrainingJob request of one trial: the tuning job's TrainingJobDefinition, its static
    hyperparameters, the values chosen for this trial and `_tuning_objective_metric` (as SageMaker adds it)."""
    definition = dict(tuning["TrainingJobDefinition"])
    static = definition.pop("StaticHyperParameters", {}) or {}
    objective = tuning["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    for field in ("DefinitionName", "TuningObjective", "HyperParameterRanges", "HyperParameterTuningResourceConfig"):
        definition.pop(field, None)
    return {"TrainingJobName": name, **definition,
            "HyperParameters": {**static, **tuned, "_tuning_objective_metric": objective},
            "Tags": tuning.get("Tags") or []}


def run_tuning_job(tuning: dict, run_trial, seed: int | None = None) -> dict:
    """Runs a CreateHyperParameterTuningJob request's trials one after another (this machine has few cores: the
    parallel limit is not used), each a local training job through run_trial(request) -> (described job, log).
    Every strategy samples at random (seeded by RandomSeed, else by the job's name): the local mode checks the
    plumbing, not SageMaker's Bayesian search; early stopping and Hyperband's resource allocation are not emulated.
    Returns {"trials": [HyperParameterTrainingJobSummary], "best": the best completed one or None}."""
    import hashlib
    import random
    from datetime import datetime, timezone

    config = tuning["HyperParameterTuningJobConfig"]
    name = tuning["HyperParameterTuningJobName"]
    objective = config["HyperParameterTuningJobObjective"]
    definitions = tuning["TrainingJobDefinition"]["AlgorithmSpecification"].get("MetricDefinitions", [])
    rng = random.Random(config.get("RandomSeed", seed if seed is not None else int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)))
    trials = []
    for index in range(int(config["ResourceLimits"].get("MaxNumberOfTrainingJobs", 1))):
        tuned = sample_hyperparameters(config.get("ParameterRanges", {}), rng)
        digest = hashlib.sha256(f"{name}/{index}/{sorted(tuned.items())}".encode()).hexdigest()[:8]
        request = trial_request(tuning, f"{name}-{index + 1:03d}-{digest}", tuned)
        started = datetime.now(timezone.utc)
        described, log = run_trial(request)
        value = objective_value(log, definitions, objective["MetricName"]) if described["TrainingJobStatus"] == "Completed" else None
        summary = {"TrainingJobName": request["TrainingJobName"], "TrainingJobArn": described.get("TrainingJobArn", ""),
                   "TuningJobName": name, "CreationTime": started, "TrainingStartTime": started,
                   "TrainingEndTime": datetime.now(timezone.utc), "TrainingJobStatus": described["TrainingJobStatus"],
                   "TunedHyperParameters": tuned, "ObjectiveStatus": "Succeeded" if value is not None else "Failed"}
        if described.get("FailureReason"):
            summary["FailureReason"] = described["FailureReason"][-1000:]
        if value is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {"Type": objective["Type"],
                                                                      "MetricName": objective["MetricName"], "Value": value}
        trials.append(summary)
    scored = [t for t in trials if "FinalHyperParameterTuningJobObjectiveMetric" in t]
    pick = max if objective["Type"] == "Maximize" else min
    best = pick(scored, key=lambda t: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]) if scored else None
    return {"trials": trials, "best": best}

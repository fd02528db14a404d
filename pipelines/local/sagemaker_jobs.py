"""SageMaker training jobs without SageMaker: train.py as a subprocess in the /opt/ml layout.

Inputs are downloaded from S3 (moto in the local mode and the tests), outputs are uploaded where
SageMaker puts them: <S3OutputPath>/<job>/output/model.tar.gz and output.tar.gz.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3

from pipelines.spec import MODELS_DIR


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def download_channel(s3, uri: str, target: Path) -> None:
    bucket, prefix = _split(uri)
    target.mkdir(parents=True, exist_ok=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            s3.download_file(bucket, item["Key"], str(target / Path(item["Key"]).name))


def tar_directory(directory: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(directory)))
    return archive


def run_training_job(request: dict, model: str, workdir: Path, region: str = "us-east-1",
                     log=print, extra_env: dict | None = None, credentials=None) -> dict:
    """Runs one CreateTrainingJob request locally; returns what DescribeTrainingJob would report.

    `credentials` (pipelines.local.iam.Credentials): the job role's session, used for every S3 call and
    given to train.py, as SageMaker does; without them, the caller's own."""
    s3 = credentials.client("s3", region) if credentials else boto3.client("s3", region_name=region)
    root = workdir / request["TrainingJobName"]
    for channel in request["InputDataConfig"]:
        if channel["ChannelName"] == "code":
            continue  # the local mode runs the model folder's own train.py
        download_channel(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], root / "input/data" / channel["ChannelName"])
    config = root / "input/config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(request.get("HyperParameters", {})))
    entry_point = json.loads(request.get("HyperParameters", {}).get("sagemaker_program", '"train.py"'))
    identity = credentials.environment() if credentials else {}
    env = {k: v for k, v in os.environ.items() if not (identity and k == "AWS_SESSION_TOKEN")}
    env.update({"SM_ROOT": str(root), **identity, **(extra_env or {})})
    process = subprocess.run([sys.executable, str(MODELS_DIR / model / entry_point)], env=env,
                             capture_output=True, text=True, timeout=request["StoppingCondition"]["MaxRuntimeInSeconds"])
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

"""SageMaker training jobs without SageMaker: the model's source archive run as a subprocess in the /opt/ml layout.

As in a SageMaker framework container (PyTorch, XGBoost, scikit-learn; a bring-your-own image built on the
SageMaker training toolkit behaves the same), the `code` channel's sourcedir.tar.gz (built here exactly as the
synthesized asset is: the model folder, modelkit/, baseline.py and mlops_spec.json) is unpacked and its
entry point run with this machine's Python, which has torch, xgboost and scikit-learn. Every other channel is
downloaded from S3 (moto in the local mode and the tests): an S3Prefix channel by prefix, a ManifestFile
channel object by object (keeping the manifest's relative paths). Outputs are uploaded where SageMaker puts
them: <S3OutputPath>/<job>/output/model.tar.gz and output.tar.gz.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3

from pipelines.model_folder import write_source_archive
from pipelines.spec import MODELS_DIR, load_spec


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
    """/opt/ml/code: the source archive built as for synthesis, unpacked (SageMaker's script mode does this)."""
    (root / "input/data/code").mkdir(parents=True, exist_ok=True)
    archive = write_source_archive(model_dir, root / "input/data/code/sourcedir.tar.gz", load_spec(model_dir))
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(code, filter="data")
    return code


def run_training_job(request: dict, model: str | Path, workdir: Path, region: str = "us-east-1",
                     log=print, extra_env: dict | None = None, credentials=None) -> dict:
    """Runs one CreateTrainingJob request locally; returns what DescribeTrainingJob would report.

    `model`: a model name under pipelines/, or the model folder itself. `credentials`
    (pipelines.local.iam.Credentials): the job role's session, used for every S3 call and given to train.py, as
    SageMaker does; without them, the caller's own."""
    model_dir = Path(model) if isinstance(model, Path) else MODELS_DIR / model
    s3 = credentials.client("s3", region) if credentials else boto3.client("s3", region_name=region)
    root = workdir / request["TrainingJobName"]
    try:
        for channel in request["InputDataConfig"]:
            if channel["ChannelName"] == "code":
                continue  # built from the model folder below, as synthesis builds the asset
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
    entry_point = json.loads(request.get("HyperParameters", {}).get("sagemaker_program", '"train.py"'))
    identity = credentials.environment() if credentials else {}
    env = {k: v for k, v in os.environ.items() if not (identity and k == "AWS_SESSION_TOKEN")}
    env.update({"SM_ROOT": str(root), **identity, **(extra_env or {})})
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

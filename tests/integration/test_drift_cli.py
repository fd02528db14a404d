import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lambdas.drift import baseline
from lambdas.drift.capture import csv_capture_record
from pipelines.churn import make_dataset
from pipelines.cli import app
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT


def shifted_csv_capture(folder: Path) -> tuple[list[str], dict]:
    """A churn baseline (statistics.json in folder) and 600 shifted rows captured as SageMaker CSV requests,
    half CSV-, half BASE64-encoded; returns the `mlops drift check` arguments and the baseline's constraints."""
    spec = load_spec(REPO_ROOT / "pipelines/churn")
    statistics, constraints = baseline.compute(make_dataset.generate(5000, 7), spec.dataset.features,
                                               spec.dataset.categorical)
    (folder / "statistics.json").write_text(json.dumps(statistics))
    shifted = make_dataset.generate(600, 9, shift=1.0)
    names = spec.dataset.features
    when = datetime(2026, 11, 22, tzinfo=timezone.utc)
    lines = [json.dumps(csv_capture_record([list(row)], when, f"e{i}", base64_encoded=i % 2 == 1))
             for i, row in enumerate(zip(*(shifted[n].tolist() for n in names)))]
    (folder / "capture").mkdir()
    (folder / "capture/part.jsonl").write_text("\n".join(lines) + "\n")
    arguments = ["drift", "check", "churn", "--capture", str(folder / "capture"),
                 "--baseline", str(folder / "statistics.json"), "--out", str(folder / "report")]
    return arguments, constraints


def test_cli_drift_check_reads_a_sagemaker_csv_capture_and_finds_the_shift(tmp_path):
    arguments, _ = shifted_csv_capture(tmp_path)
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "DRIFT over 600 rows" in result.output and "malformed" not in result.output
    written = json.loads((tmp_path / "report/report.json").read_text())
    assert {"contract", "tenure_months"} <= set(written["drifted_features"]) and written["capture_lines"] == 600


def test_cli_drift_check_applies_a_constraints_file_given_explicitly(tmp_path):
    arguments, constraints = shifted_csv_capture(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/constraints.json").write_text(json.dumps(constraints))
    without = CliRunner().invoke(app, arguments)
    assert without.exit_code == 0 and "constraints.json violation" not in without.output  # none beside the baseline
    given = CliRunner().invoke(app, arguments + ["--constraints", str(tmp_path / "elsewhere/constraints.json")])
    assert given.exit_code == 0, given.output
    assert "constraints.json violation" in given.output
    assert json.loads((tmp_path / "report/report.json").read_text())["violations"]


def test_cli_drift_check_says_an_offline_check_started_no_run_and_how_to_start_one(tmp_path):
    arguments, _ = shifted_csv_capture(tmp_path)
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "decision: DRIFT: retraining warranted, no run started" in result.output
    assert "mlops run start churn" in result.output and "retraining requested" not in result.output
    assert json.loads((tmp_path / "report/report.json").read_text())["run_started"] is False


def _no_aws_credentials(monkeypatch, tmp_path) -> None:
    empty = tmp_path / "empty-aws-config"
    empty.write_text("")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(tmp_path / "no-server"))


def test_cli_drift_check_of_s3_captures_without_aws_credentials_is_one_line_and_exit_4(tmp_path, monkeypatch):
    arguments, _ = shifted_csv_capture(tmp_path)
    _no_aws_credentials(monkeypatch, tmp_path)
    capture = "s3://mlops-dev-artifacts/data-capture/churn-dev-prod/AllTraffic/"
    result = CliRunner().invoke(app, [*arguments[:3], "--capture", capture, *arguments[5:], "--env", "dev"])
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert "error: no AWS credentials for dev" in result.output and "--env local" in result.output


def test_cli_drift_check_with_env_local_and_no_local_server_says_how_to_start_one(tmp_path, monkeypatch):
    arguments, _ = shifted_csv_capture(tmp_path)
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(tmp_path / "no-server"))
    result = CliRunner().invoke(app, [*arguments[:3], "--capture", "s3://b/data-capture/", *arguments[5:],
                                      "--env", "local"])
    assert result.exit_code == 4 and "no local server is running" in result.output


def test_cli_drift_check_of_captures_the_role_may_not_read_is_not_allowed_exit_6(tmp_path, monkeypatch):
    from botocore.exceptions import ClientError

    from pipelines import cli

    class Refusing:
        def list_objects_v2(self, **kwargs):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "User: arn:aws:sts::1:assumed-role/"
                               "mlops-dev-data-scientist/ana is not authorized to perform: s3:ListBucket"}},
                              "ListObjectsV2")

        def get_paginator(self, name):
            return type("Pages", (), {"paginate": lambda _, **kwargs: [self.list_objects_v2(**kwargs)]})()

    from pipelines.client import Pipelines

    pipelines = Pipelines(env="dev", session=__import__("boto3").Session(region_name="us-east-1"))
    pipelines._clients["s3"] = Refusing()
    monkeypatch.setattr(cli, "client", lambda env: pipelines)
    arguments, _ = shifted_csv_capture(tmp_path)
    result = CliRunner().invoke(app, [*arguments[:3], "--capture", "s3://b/data-capture/houses-dev-prod/",
                                      *arguments[5:]])
    assert result.exit_code == 6, result.output
    assert ("error: not allowed: arn:aws:sts::1:assumed-role/mlops-dev-data-scientist/ana is not authorized to "
            "perform: s3:ListBucket") in result.output


@pytest.fixture
def dev_in_moto(monkeypatch):
    """The dev environment as the CLI targets it (its account and region), emulated by moto."""
    from moto import mock_aws

    from pipelines import client as client_module

    monkeypatch.setattr(client_module, "target_environment",
                        lambda env: client_module.Target(env, "123456789012", "us-east-1"))
    with mock_aws():
        yield


def test_cli_drift_check_reads_s3_captures_with_the_environments_client(tmp_path, dev_in_moto):
    import boto3

    arguments, _ = shifted_csv_capture(tmp_path)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="data-capture/churn-dev-prod/AllTraffic/part.jsonl",
                  Body=(tmp_path / "capture/part.jsonl").read_bytes())
    result = CliRunner().invoke(app, [*arguments[:3], "--capture", "s3://artifacts/data-capture/churn-dev-prod/",
                                      *arguments[5:], "--env", "dev"])
    assert result.exit_code == 0, result.output
    assert "DRIFT over 600 rows" in result.output


def test_cli_drift_check_without_a_baseline_and_nothing_serving_says_to_pass_one(tmp_path, dev_in_moto):
    import boto3

    arguments, _ = shifted_csv_capture(tmp_path)
    boto3.client("sagemaker", region_name="us-east-1").create_model_package_group(ModelPackageGroupName="churn-dev")
    result = CliRunner().invoke(app, [*arguments[:5], *arguments[7:], "--env", "dev"])
    assert result.exit_code == 5, result.output
    assert ("nothing serves churn at prod in dev, so there is no registered baseline to compare with; fix: pass "
            "--baseline statistics.json") in " ".join(result.output.split())


def test_cli_drift_check_without_a_baseline_reads_the_one_registered_with_the_version_serving_prod(
        tmp_path, dev_in_moto, monkeypatch):
    import boto3

    from pipelines import client as client_module

    arguments, _ = shifted_csv_capture(tmp_path)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="runs/churn/r1/baseline/statistics.json",
                  Body=(tmp_path / "statistics.json").read_bytes())
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn-dev")
    package = sagemaker.create_model_package(
        ModelPackageGroupName="churn-dev", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": "s3://artifacts/m.tar.gz"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        DriftCheckBaselines={"ModelDataQuality": {"Statistics": {
            "ContentType": "application/json", "S3Uri": "s3://artifacts/runs/churn/r1/baseline/statistics.json"}}},
    )["ModelPackageArn"]
    monkeypatch.setattr(client_module.Pipelines, "serving", lambda self, model: {"prod": package})
    result = CliRunner().invoke(app, [*arguments[:5], *arguments[7:], "--env", "dev", "--output", "json"])
    assert result.exit_code == 0, result.output
    checked = json.loads(result.stdout)
    assert checked["baseline"] == "s3://artifacts/runs/churn/r1/baseline/statistics.json"
    assert checked["drift"] is True and checked["rows"] == 600 and checked["run_started"] is False

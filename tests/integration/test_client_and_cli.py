import json

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.client import Pipelines, RunInProgress
from pipelines.spec import SpecError

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console():
    from pipelines import cli
    cli.console.width = 220


@pytest.fixture
def aws(monkeypatch):
    """A dev stack's state machine and registry, and its runs API served locally with AWS_IAM auth (the
    caller signs as an IAM user holding the process's keys)."""
    from lambdas.runs.handlers import handler
    from pipelines.client import runs_api_parameter
    from pipelines.local.iam import create_admin
    from pipelines.local.lifecycle import runs_api_server
    from tests.integration.conftest import SPEC, FakeContext

    with mock_aws():
        machine = boto3.client("stepfunctions").create_state_machine(
            name="churn-dev-retraining", roleArn="arn:aws:iam::123456789012:role/sfn",
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
        boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="churn-dev")
        for name, value in {"MODEL_SPEC": SPEC.model_dump_json(), "STATE_MACHINE_ARN": machine, "AUDIT_TABLE": "mlops-dev-audit",
                            "MODEL_PACKAGE_GROUP": "churn-dev", "APPROVER_ROLE_NAME": "mlops-dev-churn-approver"}.items():
            monkeypatch.setenv(name, value)
        create_admin("123456789012", "us-east-1")
        server = runs_api_server(lambda event: handler(event, FakeContext()), "runs", "123456789012", "us-east-1")
        boto3.client("ssm").put_parameter(Name=runs_api_parameter("churn", "dev"), Value=server.url, Type="String")
        yield
        server.close()


def test_start_records_who_what_and_commit_and_refuses_a_second_run(aws):
    pipelines = Pipelines(env="dev")
    run = pipelines.start("churn", {"epochs": 3}, git_commit="abcdef1", reason="test")
    execution = boto3.client("stepfunctions").describe_execution(executionArn=run.arn)
    document = json.loads(execution["input"])
    assert document == {"model": "churn", "trigger": "manual", "requested_by": "arn:aws:iam::123456789012:user/local-admin",
                        "hyperparameters": {"epochs": 3}, "git_commit": "abcdef1", "reason": "test"}
    with pytest.raises(RunInProgress, match=f"already has a running retraining execution '{run.name}'"):
        pipelines.start("churn")


def test_unknown_model_or_hyperparameter_is_refused_before_anything_starts(aws):
    pipelines = Pipelines(env="dev")
    with pytest.raises(SpecError, match="no model named 'fraud'"):
        pipelines.start("fraud")
    with pytest.raises(SpecError, match=r"unknown hyperparameters \['epoch'\]"):
        pipelines.start("churn", {"epoch": 3})
    assert pipelines.runs("churn") == []


def test_models_list_shows_metrics_status_and_lineage(aws):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package(
        ModelPackageGroupName="churn-dev", ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": "s3://b/m.tar.gz"}],
                                "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
        CustomerMetadataProperties={"metrics": json.dumps({"validation:auc": 0.8123}), "git_commit": "abcdef1234567",
                                    "dataset_sha256": "f" * 64, "hyperparameters": '{"epochs": 3}'})
    (version,) = Pipelines(env="dev").models("churn")
    assert version.status == "PendingManualApproval" and version.metrics["validation:auc"] == 0.8123
    result = runner.invoke(app, ["models", "list", "churn"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "auc=0.8123" in result.output and "abcdef123456" in result.output and "PendingManualApproval" in result.output


def test_cli_run_start_list_and_status(aws):
    started = runner.invoke(app, ["run", "start", "churn", "--param", "epochs=4", "--reason", "cli test"])
    assert started.exit_code == 0, started.output
    assert "started manual-" in started.output
    listed = runner.invoke(app, ["run", "list", "churn"], terminal_width=200)
    assert "manual-" in listed.output and ("RUNNING" in listed.output or "SUCCEEDED" in listed.output)
    status = runner.invoke(app, ["run", "status", "churn"], terminal_width=200)
    assert status.exit_code == 0 and "status" in status.output


def test_cli_reports_a_duplicate_start_and_bad_params_clearly(aws):
    runner.invoke(app, ["run", "start", "churn"])
    again = runner.invoke(app, ["run", "start", "churn"])
    assert again.exit_code == 1 and "already has a running retraining execution" in again.output
    bad = runner.invoke(app, ["run", "start", "churn", "--param", "epochs"])
    assert bad.exit_code != 0 and "is not key=value" in bad.output


def test_cli_drift_check_on_local_capture_files_writes_the_reports(tmp_path):
    from datetime import datetime, timezone

    from lambdas.drift import baseline
    from lambdas.drift.capture import capture_record
    from pipelines.spec import load_spec
    from tests.conftest import REPO_ROOT
    from tests.support.sagemaker_layout import make_dataset

    spec = load_spec(REPO_ROOT / "pipelines/churn")
    statistics, _ = baseline.compute(make_dataset.generate(5000, 7), spec.dataset.features, spec.dataset.categorical)
    (tmp_path / "statistics.json").write_text(json.dumps(statistics))
    shifted = make_dataset.generate(1000, 9, shift=1.0)
    names = spec.dataset.features
    rows = [dict(zip(names, values)) for values in zip(*(shifted[n].tolist() for n in names))]
    when = datetime(2026, 11, 22, tzinfo=timezone.utc)
    (tmp_path / "capture").mkdir()
    (tmp_path / "capture/part.jsonl").write_text("\n".join(json.dumps(capture_record(rows[i:i + 100], when, str(i)))
                                                            for i in range(0, 1000, 100)) + "\nnot json\n")
    result = runner.invoke(app, ["drift", "check", "churn", "--capture", str(tmp_path / "capture"),
                                 "--baseline", str(tmp_path / "statistics.json"), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "DRIFT over 1,000 rows" in result.output and "drifted" in result.output
    assert "1 of 11 capture lines were malformed" in result.output
    assert (tmp_path / "report/report.html").read_text().count("<svg") == len(names)


def test_cli_drift_check_says_what_is_missing(tmp_path):
    result = runner.invoke(app, ["drift", "check", "churn", "--capture", str(tmp_path / "nothing"),
                                 "--baseline", str(tmp_path / "nope.json")])
    assert result.exit_code == 1 and "error:" in result.output


def test_cli_watch_reports_how_a_run_ended_and_fails_unless_it_succeeded(aws):
    run = Pipelines(env="dev").start("churn")
    boto3.client("stepfunctions").stop_execution(executionArn=run.arn, error="StoppedByUser", cause="testing")
    watched = runner.invoke(app, ["run", "watch", "churn", "--poll", "0"])
    assert watched.exit_code == 1 and f"{run.name}: ABORTED" in watched.output


def test_cli_watch_gives_up_at_its_timeout_while_the_run_continues(aws):
    runner.invoke(app, ["run", "start", "churn"])
    watched = runner.invoke(app, ["run", "watch", "churn", "--timeout", "0", "--poll", "0"])
    assert watched.exit_code == 3 and "is still running after 0 s" in watched.output

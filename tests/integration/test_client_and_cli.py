import json
import os
import subprocess
import sys
import time
from unittest import mock

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.client import EnvironmentProblem, Pipelines, RollbackRefused, RunInProgress, rollback
from pipelines.spec import SpecError
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.usefixtures("dev_serves_prod")  # cdk.json's dev serves nothing (training account)

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console():
    from pipelines import cli
    cli.console.width = 220


MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:churn-dev-retraining"
WAITS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}  # without execution: RUNNING until stopped


def pass_step(name: str, result: dict, result_path: str, next_state: str) -> dict:
    return {name: {"Type": "Pass", "Result": result, "ResultPath": result_path, "Next": next_state}}


def kept_champion_machine() -> dict:
    """The pipeline's path when the challenger loses, as Pass states that write what the real steps write."""
    evaluation = {"metrics": {"validation:auc": 0.79}, "objective": "validation:auc", "value": 0.79,
                  "champion_value": 0.81, "champion_arn": "arn:pkg/1", "promote": False, "reason": "does not beat"}
    return {"StartAt": "PrepareRun", "States": {
        **pass_step("PrepareRun", {"model": "churn", "trigger": "manual"}, "$.run", "ValidateData"),
        **pass_step("ValidateData", {"dataset_uri": "s3://b/k", "rows": 5000}, "$.validation", "EvaluateAgainstChampion"),
        **pass_step("EvaluateAgainstChampion", evaluation, "$.evaluation", "ChallengerWins?"),
        "ChallengerWins?": {"Type": "Choice", "Choices": [{"Variable": "$.evaluation.promote", "BooleanEquals": True,
                                                           "Next": "KeptChampion"}], "Default": "NotifyNotPromoted"},
        "NotifyNotPromoted": {"Type": "Pass", "Next": "KeptChampion"}, "KeptChampion": {"Type": "Succeed"}}}


def failing_machine() -> dict:
    """ValidateData fails (an AWS SDK task on a missing bucket), the catch notifies, the run ends RetrainingFailed."""
    return {"StartAt": "PrepareRun", "States": {
        **pass_step("PrepareRun", {"model": "churn"}, "$.run", "ValidateData"),
        "ValidateData": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                         "Parameters": {"Bucket": "no-such-bucket", "Key": "datasets/churn/train.csv"},
                         "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"}],
                         "Next": "Done"},
        "NotifyFailure": {"Type": "Pass", "Next": "RunFailed"},
        "RunFailed": {"Type": "Fail", "Error": "RetrainingFailed", "Cause": "a step failed; the notification has the reason"},
        "Done": {"Type": "Succeed"}}}


@pytest.fixture
def aws(monkeypatch):
    """A dev stack's state machine and registry, and its runs API served locally with AWS_IAM auth (the
    caller signs as an IAM user holding the process's keys). Executions stay RUNNING (moto does not execute)."""
    yield from _platform(monkeypatch, {})


@pytest.fixture
def executing(monkeypatch):
    """The same, with moto executing the state machine: `use(definition)` sets what runs."""
    def use(definition: dict) -> None:
        boto3.client("stepfunctions").update_state_machine(stateMachineArn=MACHINE, definition=json.dumps(definition))

    for _ in _platform(monkeypatch, {"stepfunctions": {"execute_state_machine": True}}):
        yield use


def _platform(monkeypatch, config: dict):
    from lambdas.runs.handlers import handler
    from pipelines.client import env_runs_api_parameter
    from pipelines.local.iam import create_admin
    from pipelines.local.lifecycle import runs_api_server
    from tests.integration.conftest import SPEC, FakeContext, act_as_control_plane

    from pipelines import client as client_module

    monkeypatch.setattr(client_module, "target_environment",
                        lambda env: client_module.Target(env, "123456789012", "us-east-1"))
    with mock_aws(config=config):
        machine = boto3.client("stepfunctions").create_state_machine(
            name="churn-dev-retraining", roleArn="arn:aws:iam::123456789012:role/sfn",
            definition=json.dumps(WAITS))["stateMachineArn"]
        boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="churn-dev")
        key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]  # the environment's key (the model proofs')
        boto3.client("kms").create_alias(AliasName="alias/mlops-dev", TargetKeyId=key)
        for name, value in {"MODEL_SPEC": SPEC.model_dump_json(), "STATE_MACHINE_ARN": machine, "AUDIT_TABLE": "mlops-dev-audit",
                            "MODEL_PACKAGE_GROUP": "churn-dev", "APPROVER_ROLE_NAME": "mlops-dev-approver",
                            "SERVING_STAGE": "prod", "SERVING_ENDPOINT": "churn-dev-prod", "KMS_KEY_ARN": key,
                            "PERSON_ROLES": json.dumps(["mlops-dev-data-scientist", "mlops-dev-approver"]),
                            "DATA_SCIENTIST_ROLE_ARN": "arn:aws:iam::123456789012:role/mlops-dev-data-scientist"}.items():
            monkeypatch.setenv(name, value)
        act_as_control_plane(monkeypatch, "churn", "dev")  # the environment's runs API, acting for the model asked
        # An access key id of AWS's length: moto reads the caller of sts:GetCallerIdentity (what the client binds its
        # model proof to) only from one, and answers a shorter one with a default user. Patched inside the mock and
        # undone before it ends (monkeypatch would restore the mock's own key after the mock has restored the
        # session's, and every later test would sign with it).
        with mock.patch.dict(os.environ, {"AWS_ACCESS_KEY_ID": "AKIALOCALADMIN000001"}):
            create_admin("123456789012", "us-east-1")
            server = runs_api_server(lambda event: handler(event, FakeContext()), "runs", "123456789012", "us-east-1")
            boto3.client("ssm").put_parameter(Name=env_runs_api_parameter("dev"), Value=server.url, Type="String")
            yield
            server.close()


def finished(name: str, timeout_s: float = 300) -> dict:  # moto's interpreter runs in a thread: wait, never judge speed
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = boto3.client("stepfunctions").describe_execution(executionArn=f"{MACHINE.replace(':stateMachine:', ':execution:')}:{name}")
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError(f"{name} still running")


def test_start_records_who_what_and_commit_and_refuses_a_second_run(aws):
    pipelines = Pipelines(env="dev")
    run = pipelines.start("churn", {"epochs": 3}, git_commit="abcdef1", reason="test")
    execution = boto3.client("stepfunctions").describe_execution(executionArn=run.arn)
    document = json.loads(execution["input"])
    assert document == {"model": "churn", "trigger": "manual", "requested_by": "arn:aws:iam::123456789012:user/local-admin",
                        "requested_by_person": "local-admin",  # an IAM user is their user name
                        "hyperparameters": {"epochs": 3}, "git_commit": "abcdef1", "reason": "test"}
    with pytest.raises(RunInProgress, match=f"already has a running retraining execution '{run.name}'"):
        pipelines.start("churn")


def test_unknown_model_or_hyperparameter_is_refused_before_anything_starts_with_a_suggestion(aws):
    pipelines = Pipelines(env="dev")
    with pytest.raises(SpecError, match="no model named 'chrun': did you mean 'churn'?"):
        pipelines.start("chrun")
    with pytest.raises(SpecError, match=r"unknown hyperparameters \['epoch'\].*'epoch': did you mean 'epochs'\?"):
        pipelines.start("churn", {"epoch": 3})
    assert pipelines.runs("churn") == []
    cli = runner.invoke(app, ["run", "start", "chrun"])
    assert cli.exit_code == 2 and "did you mean 'churn'?" in cli.output


def register_package(auc: float = 0.8123) -> str:
    return boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName="churn-dev", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": "s3://b/m.tar.gz"}],
                                "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
        CustomerMetadataProperties={"metrics": json.dumps({"validation:auc": auc}), "git_commit": "abcdef1234567",
                                    "dataset_sha256": "f" * 64, "hyperparameters": '{"epochs": 3, "learning_rate": 0.003}'}
    )["ModelPackageArn"]


def serve(package: str, endpoint: str = "churn-dev-prod") -> None:
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model(ModelName=f"{endpoint}-m1", ExecutionRoleArn="arn:aws:iam::123456789012:role/hosting",
                           Containers=[{"ModelPackageName": package}])
    sagemaker.create_endpoint_config(EndpointConfigName=f"{endpoint}-c1", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": f"{endpoint}-m1", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-c1")


def test_models_list_marks_the_version_each_stage_serves_with_metrics_and_typed_lineage(aws):
    older, served = register_package(0.80), register_package(0.8123)
    serve(served)
    versions = Pipelines(env="dev").models("churn")
    assert {v.arn: v.serves for v in versions} == {served: ["prod"], older: []}
    assert versions[0].hyperparameters == {"epochs": 3, "learning_rate": 0.003}
    result = runner.invoke(app, ["models", "list", "churn"], terminal_width=220)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "0.8123" in line)
    assert "prod" in row and "abcdef123456" in row and "Approved" in row
    assert "validation:auc" in result.output  # the spec's objective names the column
    listed = json.loads(runner.invoke(app, ["models", "list", "churn", "--output", "json"]).stdout)
    assert [(v["version"], v["serves"]) for v in listed] == [(2, ["prod"]), (1, [])]


def test_models_list_names_the_endpoint_and_url_serving_each_stage_and_how_to_call_it(aws):
    serve(register_package(0.8123))
    result = runner.invoke(app, ["models", "list", "churn"], terminal_width=220)
    assert result.exit_code == 0, result.output
    assert "prod (churn-dev-prod)" in result.output
    assert ("prod: endpoint churn-dev-prod (https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/churn-dev-prod/"
            "invocations)") in result.output
    assert "call it: mlops predict churn --stage prod --env dev --data" in result.output
    (listed,) = json.loads(runner.invoke(app, ["models", "list", "churn", "--output", "json"]).stdout)
    assert [e["endpoint"] for e in listed["endpoints"]] == ["churn-dev-prod"]


def test_models_list_names_only_the_stage_the_environment_serves(aws):
    package = register_package(0.8123)
    serve(package)
    result = runner.invoke(app, ["models", "list", "churn"], terminal_width=220)
    assert result.exit_code == 0, result.output
    assert "staging: endpoint" not in result.output and "prod: endpoint churn-dev-prod" in result.output
    assert "call it: mlops predict churn --stage prod --env dev --data" in result.output  # predict's own default


def test_run_start_follow_shows_each_step_and_the_kept_champion_outcome(executing):
    executing(kept_champion_machine())
    result = runner.invoke(app, ["run", "start", "churn", "--param", "epochs=20", "--follow", "--poll", "0.05"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    steps = [line.split()[-1] for line in lines if line.lstrip().startswith(("✓", "●", "✗"))]
    assert steps[:3] == ["PrepareRun", "ValidateData", "EvaluateAgainstChampion"] and "KeptChampion" in steps
    assert "kept champion: validation:auc 0.7900 vs champion 0.8100 (-0.0200; maximize)" in result.output


def test_a_failed_run_says_which_step_failed_and_why_in_status_list_and_watch(executing):
    executing(failing_machine())
    run = Pipelines(env="dev").start("churn")
    finished(run.name)
    status = Pipelines(env="dev").status("churn", run.name)
    assert status.outcome.kind == "failed" and status.outcome.step == "ValidateData"
    assert status.outcome.summary.startswith("failed at ValidateData: s3.NoSuchBucketException: The specified bucket")
    assert [(s.name, s.status) for s in status.steps][:2] == [("PrepareRun", "succeeded"), ("ValidateData", "failed")]
    listed = json.loads(runner.invoke(app, ["run", "list", "churn", "--output", "json"]).stdout)
    assert listed[0]["trigger"] == "manual" and listed[0]["outcome"]["kind"] == "failed"
    watched = runner.invoke(app, ["run", "watch", "churn", "--poll", "0"], terminal_width=200)
    assert watched.exit_code == 1 and "failed at ValidateData: s3.NoSuchBucketException" in watched.output
    assert "notification has the reason" not in watched.output


def test_cli_run_start_list_and_status_show_trigger_and_outcome(aws):
    started = runner.invoke(app, ["run", "start", "churn", "--param", "epochs=4", "--reason", "cli test"])
    assert started.exit_code == 0, started.output
    assert "started manual-" in started.output
    listed = runner.invoke(app, ["run", "list", "churn"], terminal_width=200)
    row = next(line for line in listed.output.splitlines() if "manual-" in line)
    assert "manual" in row and "local-admin" in row and "RUNNING" in row
    status = json.loads(runner.invoke(app, ["run", "status", "churn", "--output", "json"]).stdout)
    assert status["status"] == "RUNNING" and status["trigger"] == "manual" and status["outcome"]["kind"] == "running"


def test_cli_reports_a_duplicate_start_and_bad_params_clearly(aws):
    runner.invoke(app, ["run", "start", "churn"])
    again = runner.invoke(app, ["run", "start", "churn"])
    assert again.exit_code == 1 and "already has a running retraining execution" in again.output
    as_json = runner.invoke(app, ["run", "start", "churn", "--output", "json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["error"] == "run_in_progress"
    bad = runner.invoke(app, ["run", "start", "churn", "--param", "epochs"])
    assert bad.exit_code == 2 and "is not key=value" in bad.output


def test_run_stop_stops_the_run_and_status_says_so(executing):
    executing({"StartAt": "PrepareRun", "States": {"PrepareRun": {"Type": "Pass", "Next": "Train"},
                                                   "Train": {"Type": "Wait", "Seconds": 30, "End": True}}})
    run = Pipelines(env="dev").start("churn")
    stopped = runner.invoke(app, ["run", "stop", "churn", "--reason", "wrong dataset"])
    assert stopped.exit_code == 0, stopped.output
    status = Pipelines(env="dev").status("churn", run.name)
    # moto drops StopExecution's cause (AWS keeps it in DescribeExecution and the ExecutionAborted event)
    assert status.status == "ABORTED" and status.outcome.kind == "stopped"
    assert status.outcome.summary.startswith("stopped at ") and status.steps[-1].status == "stopped"
    again = runner.invoke(app, ["run", "stop", "churn"])
    assert again.exit_code == 5 and "is not running" in again.output


def test_run_metrics_shows_the_per_epoch_history_from_the_training_log(aws):
    run = Pipelines(env="dev").start("churn")
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    stream = f"churn-{run.name}/algo-1-1700000000"
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)
    lines = [f"epoch={e}; train:loss={1 / e:.6f};" for e in range(1, 4)] + ["validation:auc=0.812300;"]
    logs.put_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream,
                        logEvents=[{"timestamp": int(time.time() * 1000) + i, "message": line} for i, line in enumerate(lines)])
    history = json.loads(runner.invoke(app, ["run", "metrics", "churn", "--output", "json"]).stdout)
    assert [row["train:loss"] for row in history["epochs"]] == [1.0, 0.5, 0.333333]
    assert history["final"] == {"validation:auc": 0.8123} and history["objective"] == "validation:auc"
    table = runner.invoke(app, ["run", "metrics", "churn"], terminal_width=200)
    assert table.exit_code == 0 and "0.333333" in table.output and "higher is better" in table.output


def test_unknown_run_exits_5_with_a_suggestion(aws):
    run = Pipelines(env="dev").start("churn")
    result = runner.invoke(app, ["run", "status", "churn", run.name[:-1] + "x"])
    assert result.exit_code == 5 and f"did you mean '{run.name}'?" in result.output


def test_credentials_of_another_account_are_one_line_saying_what_to_set(aws, monkeypatch):
    from pipelines import client as client_module

    monkeypatch.setattr(client_module, "target_environment",
                        lambda env: client_module.Target(env, "999999999999", "us-east-1"))
    result = runner.invoke(app, ["run", "list", "churn"])
    assert result.exit_code == 4
    assert result.output.strip().splitlines() == [
        "error: your AWS credentials are for account 123456789012 (arn:aws:iam::123456789012:user/local-admin), but dev "
        "is account 999999999999 (cdk.json); fix: AWS_PROFILE=<a profile of 999999999999>, or --env for the environment "
        "you meant"]


def test_a_model_not_deployed_is_one_line(aws):
    boto3.client("ssm").delete_parameter(Name="/mlops/dev/_models/churn")  # its record: what its stack deploys
    result = runner.invoke(app, ["run", "list", "churn", "--output", "json"])
    assert result.exit_code == 4 and "is mlops-dev-churn deployed?" in json.loads(result.stdout)["message"]


def test_an_environment_without_its_control_plane_is_one_line(aws):
    boto3.client("ssm").delete_parameter(Name="/mlops/dev/_control/runs-api-url")
    result = runner.invoke(app, ["run", "list", "churn", "--output", "json"])
    assert result.exit_code == 4 and "is mlops-dev-control deployed?" in json.loads(result.stdout)["message"]


def test_region_and_account_come_from_cdk_json():
    from pipelines.client import target_environment

    assert target_environment("prod") == target_environment("prod").__class__("prod", "333333333333", "us-east-1")
    with pytest.raises(EnvironmentProblem, match="no environment 'dve' in cdk.json: did you mean 'dev'?"):
        target_environment("dve")


def test_rollback_stage_is_validated_before_anything_happens(aws):
    result = runner.invoke(app, ["rollback", "churn", "--stage", "canary"])
    assert result.exit_code == 2 and "canary" in result.output and "prod" in result.output
    with pytest.raises(RollbackRefused, match="no stage 'canary'"):
        rollback(Pipelines(env="dev"), "churn", "canary")


def test_cli_watch_reports_how_a_run_ended_and_fails_unless_it_succeeded(aws):
    run = Pipelines(env="dev").start("churn")
    boto3.client("stepfunctions").stop_execution(executionArn=run.arn, error="StoppedByUser", cause="testing")
    watched = runner.invoke(app, ["run", "watch", "churn", "--poll", "0"])
    assert watched.exit_code == 1 and f"{run.name}: stopped" in watched.output


def test_cli_watch_gives_up_at_its_timeout_while_the_run_continues(aws):
    runner.invoke(app, ["run", "start", "churn"])
    watched = runner.invoke(app, ["run", "watch", "churn", "--timeout", "0", "--poll", "0"])
    assert watched.exit_code == 3 and "is still running after 0 s" in watched.output


# ------------------------------------------------------------------ no AWS configured, as a real process
def no_aws_environment(tmp_path) -> dict:
    empty = tmp_path / "empty"
    empty.write_text("")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLOPS_"))}
    return environment | {"AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty),
                          "AWS_EC2_METADATA_DISABLED": "true", "MLOPS_LOCAL_DIR": str(tmp_path / "no-server"),
                          "COLUMNS": "100"}


def mlops(arguments: list[str], environment: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *arguments], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("arguments", [["run", "start", "churn", "--param", "epochs=20", "--follow"],
                                       ["run", "status", "churn"], ["models", "list", "churn"], ["run", "stop", "churn"],
                                       ["approve", "churn"], ["run", "metrics", "churn"]])
def test_with_no_aws_configured_every_command_says_in_one_line_what_to_set(tmp_path, arguments):
    result = mlops(arguments, no_aws_environment(tmp_path))
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines() == [
        "error: no AWS credentials for dev (account 111111111111, us-east-1); fix: `aws sso login --profile <profile>` "
        "and AWS_PROFILE=<profile>, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; or work offline: "
        "`mlops local serve`, then `--env local` (or export MLOPS_ENV=local)"]


def answering_local_server(folder) -> dict:
    """A server.json whose control port answers ready, as `mlops local serve` leaves it (nothing else served)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b'{"ready": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder.mkdir(parents=True, exist_ok=True)
    state = {"url": "http://127.0.0.1:1", "control_url": f"http://127.0.0.1:{server.server_address[1]}/",
             "account": "000000000000", "region": "us-east-1", "model": "churn", "identities": {}}
    (folder / "server.json").write_text(json.dumps(state))
    return {"server": server, "state": state}


def test_with_no_aws_credentials_and_a_local_server_running_the_error_names_env_local(tmp_path):
    environment = no_aws_environment(tmp_path)
    local = answering_local_server(tmp_path / "no-server")
    try:
        result = mlops(["run", "start", "churn"], environment)
    finally:
        local["server"].shutdown()
    assert result.returncode == 4, result.stderr
    assert result.stderr.strip().endswith("or use the local server running at http://127.0.0.1:1: add `--env local` "
                                          "(or export MLOPS_ENV=local)")


def test_with_no_aws_configured_json_output_and_the_local_env_are_one_line_too(tmp_path):
    environment = no_aws_environment(tmp_path)
    as_json = mlops(["run", "list", "churn", "--output", "json"], environment)
    assert as_json.returncode == 4 and json.loads(as_json.stdout)["error"] == "environment"
    local = mlops(["run", "list", "churn", "--env", "local"], environment)
    assert local.returncode == 4 and local.stderr.strip().startswith("error: no local server is running")
    assert len(local.stderr.strip().splitlines()) == 1


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



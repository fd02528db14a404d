"""`mlops fleet` (pipelines/fleet.py, fleet_cli.py) against moto: every model folder one row, what needs a person
first, one row with the reason for a model that cannot be read, and the totals.

The fleet: churn waits for an approval, houses' last run failed, pricing's last drift check found drift, quiet
needs nothing; each deployed (its record, machine and package group) behind the runs API served locally."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from lambdas.shared import cost, pricing
from pipelines import naming
from pipelines.cli import app
from pipelines.client import ApiError, Pipelines
from pipelines.fleet import DriftState, FleetRow
from pipelines.model_record import ModelRecord
from pipelines.spec import load_spec
from tests.integration.conftest import BUCKET
from tests.integration.test_approvals_cli import waiting_request
from tests.integration.test_client_and_cli import (MACHINE, executing, register_package, serve,  # noqa: F401 - fixtures
                                                   wide_console)
from tests.support.model_folders import copy_model_folder
from tests.support.pricing import RECORDED
from tests.support.quality_reports import put_report, quality_report

runner = CliRunner()
FAILS = {"StartAt": "Train", "States": {"Train": {"Type": "Fail", "Error": "AlgorithmError", "Cause": "out of memory"}}}
WAITS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def deploy(root, name: str, definition: dict = WAITS) -> str:
    """What the model's stack deploys that the runs API reads: its state machine, package group and record."""
    machine = boto3.client("stepfunctions").create_state_machine(
        name=naming.state_machine(name, "dev"), roleArn="arn:aws:iam::123456789012:role/sfn",
        definition=json.dumps(definition))["stateMachineArn"]
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=naming.model_package_group(name, "dev"))
    write_record(root, name, machine)
    return machine


def write_record(root, name: str, machine: str, serving: str = "") -> None:
    """The model's record as its stack writes it; serving: the stage the environment serves ("" for none)."""
    settings = {"STATE_MACHINE_ARN": machine, "MODEL_PACKAGE_GROUP": naming.model_package_group(name, "dev"),
                "AUDIT_TABLE": naming.audit_table("dev"), "ARTIFACT_BUCKET": BUCKET, "SERVING_STAGE": serving,
                "SERVING_ENDPOINT": naming.endpoint(name, "dev", serving) if serving else ""}
    record = ModelRecord(model=name, env="dev", spec=load_spec(root / name), settings=settings)
    boto3.client("ssm").put_parameter(Name=naming.model_record_parameter(name, "dev"), Value=record.model_dump_json(),
                                      Type="String", Overwrite=True)


def drift_report(model: str, stamp: str, drift: bool) -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"drift/{model}/{stamp}/report.json", Body=json.dumps(
        {"drift": drift, "drifted_features": ["tenure_months"] if drift else [], "decision": "retrain"}).encode())


@pytest.fixture
def models(executing, tmp_path):  # noqa: F811
    """The fleet's model folders (MLOPS_MODELS_DIR) and what each has done in dev."""
    root = tmp_path / "models"
    root.mkdir()
    for name, source in (("churn", "churn"), ("houses", "houses"), ("pricing", "houses"), ("quiet", "churn")):
        copy_model_folder(root, name, source)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    with mock.patch.dict(os.environ, {"MLOPS_MODELS_DIR": str(root)}):
        waiting_request()  # churn version 3 waits for a decision
        write_record(root, "churn", MACHINE)
        failing = deploy(root, "houses", FAILS)
        for name in ("pricing", "quiet"):
            deploy(root, name)
        boto3.client("stepfunctions").start_execution(stateMachineArn=failing, name="manual-1")
        finished_run(failing, "manual-1")
        drift_report("pricing", "20261201T000000Z", False)
        drift_report("pricing", "20261207T060000Z", True)  # the latest check is the one shown
        drift_report("quiet", "20261207T060000Z", False)
        yield root


def finished_run(machine: str, name: str) -> None:
    arn = machine.replace(":stateMachine:", ":execution:") + f":{name}"
    deadline = time.monotonic() + 300
    while boto3.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{name} still running"
        time.sleep(0.05)


def fleet(*arguments: str):
    return runner.invoke(app, ["fleet", "--prices", str(RECORDED), *arguments], env={"COLUMNS": "250"})


def rows_of(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["rows"]


def test_fleet_puts_the_pending_approval_first_then_the_failed_run_then_drift_then_the_rest_by_name(models):
    rows = rows_of(fleet("--output", "json"))
    assert [row["model"] for row in rows] == ["churn", "houses", "pricing", "quiet"]
    assert [row["needs"] for row in rows] == [["approval"], ["failed run"], ["drift"], []]
    churn, houses, pricing, quiet = rows
    assert churn["pending_versions"] == [3] and churn["pending"] == 1
    assert houses["last_run"] == "manual-1" and houses["last_run_outcome"] == "failed" and houses["last_run_failed"]
    assert pricing["drift"]["drift"] and pricing["drift"]["checked_at"].startswith("2026-12-07T06:00")
    assert quiet["drift"]["drift"] is False and quiet["last_run"] is None


def test_the_training_environment_serves_nothing_so_no_row_names_an_endpoint(models):
    rows = rows_of(fleet("-o", "json"))  # cdk.json's delivery: dev trains, staging and prod serve
    assert {(row["hosting"], row["stage"], row["endpoint"], row["version"]) for row in rows} == \
           {("dedicated", None, None, None)}
    assert "nothing (serves none here)" in fleet().stdout


def test_an_environment_serving_prod_shows_the_version_and_endpoint_that_serve_it(models):
    serve(register_package())
    write_record(models, "churn", MACHINE, serving="prod")
    with mock.patch("pipelines.fleet.load_delivery", return_value=None):  # a single account: it serves prod
        churn = next(row for row in rows_of(fleet("-o", "json")) if row["model"] == "churn")
    assert (churn["hosting"], churn["stage"], churn["endpoint"], churn["version"]) == \
           ("dedicated", "prod", "churn-dev-prod", 1)


def test_a_served_version_the_runs_api_cannot_give_is_a_note_and_the_row_still_shows(models):
    with mock.patch("pipelines.fleet.load_delivery", return_value=None), \
            mock.patch.object(Pipelines, "serving", side_effect=ApiError(502, "Internal Server Error")):
        rows = rows_of(fleet("-o", "json"))
        table = fleet().stdout
    churn = next(row for row in rows if row["model"] == "churn")
    assert churn["reason"] is None and churn["pending_versions"] == [3]
    assert churn["notes"] == ["served version: 502: Internal Server Error"] and "prod: unknown (see note)" in table


def test_a_shared_hosted_model_names_its_inference_component_on_the_shared_endpoint(models):
    spec = models / "quiet" / "model.yaml"
    spec.write_text(spec.read_text().replace("deployment:\n", "deployment:\n  hosting: shared\n", 1))
    with mock.patch("pipelines.fleet.load_delivery", return_value=None):
        quiet = next(row for row in rows_of(fleet("-o", "json")) if row["model"] == "quiet")
    assert quiet["hosting"] == "shared" and quiet["endpoint"] == "quiet-dev-prod on mlops-dev-shared"


def test_a_broken_model_folder_is_one_row_with_the_reason_and_the_others_still_show(models):
    (models / "broken").mkdir()
    (models / "broken" / "model.yaml").write_text("name: [unclosed\n")
    rows = rows_of(fleet("-o", "json"))
    broken = next(row for row in rows if row["model"] == "broken")
    assert broken["reason"].startswith("model.yaml does not load:") and broken["monthly"] is None
    assert len(rows) == 5 and rows[0]["model"] == "churn"


def test_a_model_the_caller_may_not_read_is_one_row_with_the_reason(models):
    original = Pipelines._model_proof
    unproven = lambda self, model: None if model == "pricing" else original(self, model)  # noqa: E731
    with mock.patch.object(Pipelines, "_model_proof", unproven):  # a session not tagged with pricing: no proof
        rows = rows_of(fleet("-o", "json"))
    pricing = next(row for row in rows if row["model"] == "pricing")
    assert pricing["reason"] and "403" in pricing["reason"] and pricing["drift"] is None
    assert [row["model"] for row in rows][:2] == ["churn", "houses"]


def test_a_model_the_registry_knows_without_a_folder_is_a_row_saying_so(models):
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="legacy-dev")
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="legacy-prod")  # another environment's
    rows = rows_of(fleet("-o", "json"))
    (legacy,) = [row for row in rows if row["model"].startswith("legacy")]
    assert legacy["model"] == "legacy" and "no model folder" in legacy["reason"]


def test_the_totals_add_the_idle_and_monthly_estimates_of_mlops_cost(models):
    document = json.loads(fleet("-o", "json").stdout)
    churn = json.loads(runner.invoke(app, ["cost", "churn", "--prices", str(RECORDED), "-o", "json"]).stdout)
    row = next(row for row in document["rows"] if row["model"] == "churn")
    assert row["idle_per_month"] == pytest.approx(churn["idle_per_month"]) and \
           row["monthly"] == pytest.approx(churn["monthly"])
    priced = [row for row in document["rows"] if row["monthly"] is not None]
    totals = document["totals"]
    assert totals["models"] == 4 and totals["priced"] == len(priced) and totals["needing_attention"] == 3
    assert totals["monthly"] == pytest.approx(sum(row["monthly"] for row in priced), abs=1e-3)
    assert totals["idle_per_month"] == pytest.approx(sum(row["idle_per_month"] for row in priced), abs=1e-3)


def test_the_table_shows_each_row_and_the_totals_row(models):
    result = fleet()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    order = [next(i for i, line in enumerate(lines) if f" {name} " in line) for name in ("churn", "houses", "pricing", "quiet")]
    assert order == sorted(order)
    total = json.loads(fleet("-o", "json").stdout)["totals"]
    assert any("total" in line and cost.usd(total["monthly"]) in line for line in lines)
    assert "3 need a person" in result.stdout and "failed" in result.stdout and "drift (1)" in result.stdout


def test_order_is_approval_then_failed_run_then_drift_even_when_a_model_has_several():
    drifted = DriftState(drift=True, drifted_features=["x"], checked_at="2026-12-07T00:00:00+00:00")
    rows = [FleetRow("a", drift=drifted), FleetRow("b", last_run_failed=True, drift=drifted),
            FleetRow("c", pending_versions=[4], drift=drifted), FleetRow("d"), FleetRow("e", reason="unreadable")]
    assert [row.model for row in sorted(rows, key=lambda row: row.order)] == ["c", "b", "a", "d", "e"]


def test_a_price_list_refusal_is_a_note_on_each_row_asked_once_not_a_failure(models):
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no pricing:GetProducts"}}, "GetProducts")
    with mock.patch.object(pricing, "get_products", side_effect=denied) as asked:
        result = runner.invoke(app, ["fleet", "-o", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["totals"]["priced"] == 0 and document["totals"]["monthly"] == 0 and asked.call_count == 1
    assert all("fix: allow pricing:GetProducts" in " ".join(row["notes"]) for row in document["rows"])


def test_an_unreadable_prices_file_is_one_line_and_exit_2(models, tmp_path):
    result = runner.invoke(app, ["fleet", "--prices", str(tmp_path / "missing.json"), "-o", "json"])
    assert result.exit_code == 2 and "no such file" in json.loads(result.stdout)["message"]


def test_the_last_quality_check_is_the_quality_column_and_a_drop_needs_a_person(models):
    s3 = boto3.client("s3")
    put_report(s3, quality_report(datetime(2026, 12, 5, 6, tzinfo=timezone.utc), model="quiet"), BUCKET)
    put_report(s3, quality_report(datetime(2026, 12, 6, 6, tzinfo=timezone.utc), "drop", value=0.71, model="quiet"),
               BUCKET)
    put_report(s3, quality_report(datetime(2026, 12, 6, 6, tzinfo=timezone.utc), "insufficient_labels", value=None,
                                  joined=0, model="houses"), BUCKET)
    with mock.patch("pipelines.fleet.datetime", wraps=datetime) as clock:
        clock.now.return_value = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
        rows = {row["model"]: row for row in rows_of(fleet("-o", "json"))}
        table = fleet().stdout
    quiet = rows["quiet"]["quality"]
    assert (quiet["decision"], quiet["summary"], quiet["value"], quiet["baseline"]) == ("drop", "drop 0.71/0.85", 0.71, 0.85)
    assert quiet["checked_at"].startswith("2026-12-06T06:00") and rows["quiet"]["needs"] == ["quality drop"]
    assert rows["houses"]["quality"]["summary"] == "no labels" and rows["churn"]["quality"] is None
    assert "drop 0.71/0.85 (2026-12-06 06:00)" in table and "no labels" in table and "4 need a person" in table


def test_a_quality_check_older_than_the_lookback_or_unreadable_is_no_state(models):
    s3 = boto3.client("s3")
    put_report(s3, quality_report(datetime(2026, 10, 1, 6, tzinfo=timezone.utc), "drop", model="quiet"), BUCKET)
    s3.put_object(Bucket=BUCKET, Key="quality/pricing/20261206T060000Z/report.json", Body=b'{"cut sh')
    with mock.patch("pipelines.fleet.datetime", wraps=datetime) as clock:
        clock.now.return_value = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
        rows = {row["model"]: row for row in rows_of(fleet("-o", "json"))}
    assert rows["quiet"]["quality"] is None and rows["quiet"]["needs"] == []
    assert rows["pricing"]["quality"] is None and any(note.startswith("quality: ") for note in rows["pricing"]["notes"])

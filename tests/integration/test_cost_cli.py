"""`mlops cost` (pipelines/cost_cli.py) through typer's CliRunner, and the cost table of the approval email."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from lambdas.shared import pricing
from pipelines.cli import app
from tests.integration.test_approval import approval, request  # noqa: F401 - the approval fixture
from tests.support.pricing import RECORDED, recorded_items

runner = CliRunner()


def cost(*arguments: str):
    return runner.invoke(app, ["cost", *arguments], env={"COLUMNS": "160"})


def test_cost_prints_the_breakdown_from_a_recorded_response():
    result = cost("churn", "--env", "staging", "--prices", str(RECORDED))
    assert result.exit_code == 0, result.output
    for expected in ("serving staging", "idle per month", "per retraining run", "per 1M predictions", "$83.95", "$84.52",
                     "$9.66", "per month, with 0.00 runs: $84.52 = 17% of the budget $500.00", "USE1-Host:ml.m5.large",
                     "smoke test endpoint (ephemeral)",
                     "at the assumed 1 req/s the staging endpoint costs $31.94 per 1M predictions"):
        assert expected in result.output


def test_cost_in_the_training_environment_prices_no_endpoint_only_the_smoke_test_per_run():
    result = cost("churn", "--prices", str(RECORDED), "-o", "json")  # dev: the training account of the delivery
    document = json.loads(result.output)
    assert document["serves"] is None and document["idle_per_month"] == pytest.approx(0.020051, abs=1e-4)
    items = {line["item"]: line["usd"] for line in document["lines"]}
    assert items["serving endpoint (none)"] == 0 and items["smoke test endpoint (ephemeral)"] == pytest.approx(0.115 / 4)
    assert not [item for item in items if "drift" in item or "capture" in item or "overlap" in item]


def test_cost_json_carries_the_totals_lines_prices_and_assumptions():
    result = cost("churn", "--env", "prod", "--prices", str(RECORDED), "--output", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    # prod serves prod: min_capacity 2 on its one endpoint (2 x 730 h x $0.115), on-demand training (no spot line)
    assert document["environment"] == "prod" and document["serves"] == "prod"
    assert document["idle_per_month"] == pytest.approx(167.90 + 0.5683, abs=0.001)
    assert not [line for line in document["lines"] if line["item"] == "managed spot saving"]
    # training, a 15-minute smoke endpoint, the 25-minute canary overlap of 2 instances, arm64 functions, transitions
    assert document["per_run_max"] == pytest.approx(1.408 + 0.115 * 15 / 60 + 2 * 0.115 * 25 / 60 + 0.0016 + 0.002,
                                                    abs=1e-4)
    assert {price["usagetype"] for price in document["prices"]} >= {"USE1-Train:ml.g5.xlarge", "USE1-Host:ml.m5.large"}
    assert document["assumptions"]["requests_per_second"] == 1.0 and document["monthly_budget"] == 500


def test_assumptions_are_options_and_move_the_figures():
    base = json.loads(cost("churn", "--env", "prod", "--prices", str(RECORDED), "-o", "json").output)
    busier = json.loads(cost("churn", "--env", "prod", "--prices", str(RECORDED), "-o", "json", "--requests-per-second", "10",
                             "--payload-kb", "4").output)
    captured = [line["usd"] for document in (base, busier) for line in document["lines"]
                if line["item"] == "data capture storage (steady state)"]
    assert captured[1] == pytest.approx(captured[0] * 20)


def test_an_estimate_past_the_budget_alert_says_what_to_set():
    result = cost("churn", "--env", "prod", "--prices", str(RECORDED), "--extra-runs", "1200")
    assert result.exit_code == 0
    assert "warning: the estimate" in result.output and "raise cost.monthly_budget_usd to at least" in result.output


def test_without_credentials_cost_fails_in_one_line_without_a_traceback(monkeypatch):
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = cost("churn")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: no AWS credentials for the Price List API; fix: aws sso login / AWS_PROFILE, or pass --prices FILE "
        "(a recorded GetProducts response)"]
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("arguments, message", [
    (["--env", "qa"], "--env qa: no such environment in cdk.json; fix: use one of dev, staging, prod"),
    (["--prices", "nowhere.json"], "nowhere.json: no such file"),
    (["--output", "yaml"], "--output yaml: use table or json"),
    (["--spot-discount", "1.5"], "spot_discount: Input should be less than 1")])
def test_bad_options_fail_with_one_clear_line(arguments, message):
    result = cost("churn", *arguments)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_an_unknown_model_is_a_spec_error_naming_the_known_ones():
    result = cost("fraud", "--prices", str(RECORDED))
    assert result.exit_code == 1 and "no model named 'fraud'" in result.output


def test_save_prices_records_what_the_api_returned_for_later_offline_use(tmp_path, monkeypatch):
    client = boto3.client("pricing", region_name="us-east-1")
    stubber = Stubber(client)
    items = recorded_items()
    for _ in range(5):  # five requests for churn in dev; each answered with everything, de-duplicated below
        stubber.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": items})
    monkeypatch.setattr(pricing, "client", lambda region, timeout_s=10: client)
    saved = tmp_path / "prices.json"
    with stubber:
        live = cost("churn", "--save-prices", str(saved), "-o", "json")
    assert live.exit_code == 0, live.output
    offline = cost("churn", "--prices", str(saved), "-o", "json")
    assert json.loads(offline.output) == json.loads(live.output)


# ------------------------------------------------------------------ the approval email

def _mailed(approval) -> list[str]:
    return [found["message"] for found in request(approval).values()]


def test_the_approval_email_carries_the_cost_table(approval, monkeypatch):
    client = boto3.client("pricing", region_name="us-east-1")
    stubber = Stubber(client)
    for _ in range(5):
        stubber.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": recorded_items()})
    monkeypatch.setattr(pricing, "client", lambda region, timeout_s=10: client)
    with stubber:
        messages = _mailed(approval)
    assert len(messages) == 2
    for message in messages:
        assert "Cost estimate of churn (us-east-1, AWS Price List on-demand USD):" in message
        assert "  per month with 4.35 runs: $85.74 (budget $500.00)" in message
        assert "Approve: " in message  # the links are still there


def test_a_price_list_failure_never_blocks_the_approval_request(approval, monkeypatch):
    """The Price List API refuses (the emulation answers it from recorded prices, so the refusal is stubbed): the
    request goes out anyway, saying why there is no estimate."""
    client = boto3.client("pricing", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("get_products", "ThrottlingException", "Rate exceeded", 400)  # one request per run
    monkeypatch.setattr(pricing, "client", lambda region, timeout_s=10: client)
    with stubber:
        messages = _mailed(approval)
    assert len(messages) == 2
    for message in messages:
        assert "Cost estimate unavailable: the Price List API refused GetProducts (ThrottlingException" in message
        assert "Approve: " in message


def test_region_prices_another_region_than_the_environments_and_says_which():
    here = cost("churn", "--prices", str(RECORDED), "--region", "us-east-1")
    assert here.exit_code == 0 and "churn in dev (us-east-1)" in here.output
    elsewhere = cost("churn", "--prices", str(RECORDED), "--region", "eu-west-1")
    assert elsewhere.exit_code == 1 and "in eu-west-1: no on-demand price in the price list" in elsewhere.output


def test_an_unknown_region_is_one_clear_line_before_any_price_is_asked_for():
    result = cost("churn", "--prices", str(RECORDED), "--region", "us-east-9")
    assert result.exit_code == 1 and "--region us-east-9: 'us-east-9' is not a region SageMaker runs in" in result.output
    assert "Traceback" not in result.output


def test_the_dedicated_churn_fleet_idles_under_260_dollars_a_month_over_dev_staging_and_prod():
    result = cost("churn", "--prices", str(RECORDED), "--all-environments", "-o", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    idle = {environment["environment"]: environment["idle_per_month"] for environment in document["environments"]}
    serves = {environment["environment"]: environment["serves"] for environment in document["environments"]}
    assert serves == {"dev": None, "staging": "staging", "prod": "prod"}
    # two prod instances and one staging instance of ml.m5.large at $0.115/h, plus drift and quality checks, capture, reconcilers
    assert document["idle_per_month"] == pytest.approx(3 * 730 * 0.115 + 1.16, abs=0.01) and document["idle_per_month"] <= 260
    assert idle["dev"] < 0.05 and idle["prod"] == pytest.approx(167.90 + 0.5683, abs=0.001)


def test_all_environments_prints_what_each_serves_and_the_sum():
    result = cost("churn", "--prices", str(RECORDED), "--all-environments")
    assert result.exit_code == 0, result.output
    for expected in ("nothing (smoke tests only)", "staging", "$84.52", "$168.47", "$253.01"):
        assert expected in result.output


def test_fleet_prints_the_markdown_table_of_dedicated_against_shared_hosting():
    result = cost("churn", "--prices", str(RECORDED), "--fleet")
    assert result.exit_code == 0, result.output
    assert "| models | hosting | dev | staging | prod | total |" in result.output
    assert "| 1 | dedicated | $0.02 | $84.52 | $168.47 | $253.01 |" in result.output
    assert "`ml.m5.xlarge` at $0.23/h" in result.output


def test_fleet_without_recorded_prices_says_how_to_pass_them():
    result = cost("churn", "--fleet")
    assert result.exit_code == 1 and "--prices" in result.output

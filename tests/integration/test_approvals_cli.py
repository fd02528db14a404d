"""`mlops approvals list` and `mlops approve` read what waits through the environment's runs API (served locally,
AWS_IAM auth), the same records the approval links decide."""

import json

import boto3
from typer.testing import CliRunner

from lambdas.approval import logic
from lambdas.shared import dal
from pipelines.cli import app
from tests.integration.test_client_and_cli import aws, wide_console  # noqa: F401 - fixtures

runner = CliRunner()
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-dev/3"


def waiting_request(execution: str = "run-3") -> None:
    boto3.client("dynamodb").create_table(
        TableName="mlops-dev-audit", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    facts = logic.ReviewFacts(model="churn", model_package_arn=PACKAGE, version=3, metric="validation:auc", value=0.8,
                              champion_value=0.8, champion_version=2, requested_by="arn:aws:iam::123456789012:user/ds",
                              expires_at=2**31)
    dal.ApprovalStore("mlops-dev-audit").create("churn", execution, {
        "status": "PENDING", "model": "churn", "model_package_arn": PACKAGE, "requested_by": facts.requested_by,
        "approvers": ["ml-lead@example.com", "head-of-ds@example.com"], "expires_at": 2**31,
        "created_at": "2026-12-07T09:00:00+00:00", "review": facts.model_dump_json(), "task_token": "encrypted"})


def test_approvals_list_reads_the_pending_request_and_its_review_through_the_runs_api(aws):  # noqa: F811
    waiting_request()
    result = runner.invoke(app, ["approvals", "list", "churn", "--output", "json"])
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)["pending"]
    assert (item["version"], item["execution"], item["created_at"]) == (3, "run-3", "2026-12-07T09:00:00+00:00")
    assert item["metric"] == "validation:auc 0.8000 (champion 0.8000, +0.0000: no change from the champion (within " \
                             "rounding) (higher is better))"
    assert "from version 2 (the champion)" in item["approving_does"] and "encrypted" not in result.stdout


def test_approve_shows_the_request_and_a_declined_prompt_changes_nothing(aws):  # noqa: F811
    waiting_request()
    result = runner.invoke(app, ["approve", "churn"], input="n\n")
    assert result.exit_code == 1 and "churn version 3, run run-3" in result.output
    assert "nothing decided" in result.output
    assert dal.ApprovalStore("mlops-dev-audit").get("churn", "run-3")["status"] == "PENDING"

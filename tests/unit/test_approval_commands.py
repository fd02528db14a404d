"""`mlops approve|reject` show what is decided and ask first; `mlops approvals list` shows what waits. The runs API
is a stand-in here (its pending view is lambdas/runs/logic.py pending_view, exercised through the real API in
tests/integration/test_approvals_cli.py)."""

import json

import pytest
from typer.testing import CliRunner

from lambdas.approval import logic
from lambdas.runs.logic import pending_view
from pipelines import cli
from pipelines.spec import DeploymentSpec

runner = CliRunner()
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-dev/7"
STARTER = "arn:aws:sts::123456789012:assumed-role/mlops-dev-data-scientist/ds@example.com"


def record(execution: str = "run-7", value: float = 0.8123) -> dict:
    facts = logic.ReviewFacts(model="churn", model_package_arn=PACKAGE, version=7, metric="validation:auc",
                              value=value, threshold=0.75, champion_value=0.79, champion_version=6,
                              metrics={"validation:auc": value}, champion_metrics={"validation:auc": 0.79},
                              requested_by=STARTER, expires_at=2**31,
                              rollout=logic.rollout_text(DeploymentSpec(min_capacity=2, canary_percent=50)))
    return {"pk": "model#churn", "sk": f"approval#{execution}", "status": "PENDING", "model_package_arn": PACKAGE,
            "requested_by": STARTER, "approvers": ["ds@example.com", "ml-lead@example.com"], "expires_at": 2**31,
            "created_at": "2026-12-07T10:00:00+00:00", "review": facts.model_dump_json(), "task_token": "secret"}


class FakeApi:
    def __init__(self, records: list[dict]) -> None:
        self.records = records

    def call(self, method: str, path: str, body=None, query=None) -> dict:
        assert (method, path) == ("GET", "/approvals")
        return {"pending": [pending_view(r) for r in self.records]}


class FakePipelines:
    def __init__(self, records: list[dict]) -> None:
        self.records, self.models = records, []

    def api(self, model: str) -> FakeApi:
        self.models.append(model)
        return FakeApi(self.records)


@pytest.fixture
def waiting(monkeypatch):
    """One run of churn waiting; `decided` collects the decisions sent."""
    from pipelines import client as client_module

    decided = []
    pipelines = FakePipelines([record()])
    monkeypatch.setattr(cli, "client", lambda env: pipelines)
    monkeypatch.setattr(client_module, "decide", lambda p, model, approve, reason, execution=None: decided.append(
        (model, approve, reason, execution)) or "2026-12-07T10:05:00+00:00")
    monkeypatch.setattr(cli.approvals_cli.console, "width", 200)
    return {"decided": decided, "pipelines": pipelines}


def test_the_pending_view_carries_when_it_was_requested_and_the_review_but_never_the_task_token():
    view = pending_view(record())
    assert view["created_at"] == "2026-12-07T10:00:00+00:00" and view["review"]["version"] == 7
    assert "task_token" not in view and "secret" not in json.dumps(view)


def test_approve_shows_version_run_metrics_against_the_champion_and_what_approving_does_then_asks(waiting):
    result = runner.invoke(cli.app, ["approve", "churn"], input="y\n")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "churn version 7, run run-7" in text
    assert "validation:auc = 0.8123 (higher is better)" in text
    assert "+0.0223: better than the champion (higher is better)" in text
    assert "shifts production traffic blue/green from version 6 (the champion)" in text
    assert "Approve churn version 7 (run run-7)? [y/N]" in text
    assert waiting["decided"] == [("churn", True, "", "run-7")]
    assert "churn: version 7 approved at 2026-12-07T10:05:00+00:00" in text


def test_answering_no_decides_nothing(waiting):
    result = runner.invoke(cli.app, ["reject", "churn", "--reason", "worse on segment X"], input="n\n")
    assert result.exit_code == 1 and waiting["decided"] == []
    assert "Rejecting ends the run" in result.output and "nothing decided" in result.output


def test_yes_decides_without_asking(waiting):
    result = runner.invoke(cli.app, ["reject", "churn", "--reason", "worse on segment X", "--yes"])
    assert result.exit_code == 0 and "[y/N]" not in result.output
    assert waiting["decided"] == [("churn", False, "worse on segment X", "run-7")]


def test_json_output_never_prompts_and_needs_yes(waiting):
    refused = runner.invoke(cli.app, ["approve", "churn", "--output", "json"])
    assert refused.exit_code == cli.EXIT_USAGE and waiting["decided"] == []
    assert json.loads(refused.stdout)["message"].startswith("--output json never asks for confirmation")
    done = runner.invoke(cli.app, ["approve", "churn", "--output", "json", "--yes"])
    assert done.exit_code == 0 and json.loads(done.stdout) == {
        "model": "churn", "decision": "approved", "decided_at": "2026-12-07T10:05:00+00:00", "execution": "run-7",
        "version": 7}


def test_several_waiting_runs_need_execution_and_name_the_list_command(waiting):
    waiting["pipelines"].records.append(record("run-8", 0.79))
    result = runner.invoke(cli.app, ["approve", "churn", "--yes"])
    assert result.exit_code == 1 and "run-7, run-8" in result.output and "mlops approvals list" in result.output
    assert runner.invoke(cli.app, ["approve", "churn", "--yes", "--execution", "run-8"]).exit_code == 0
    assert waiting["decided"] == [("churn", True, "", "run-8")]


def test_approvals_list_shows_version_run_requested_when_metric_vs_champion_and_who_may_approve(waiting):
    waiting["pipelines"].records.append(record("run-8", 0.79))
    result = runner.invoke(cli.app, ["approvals", "list", "churn"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "run-" in line]
    assert len(rows) == 2 and "2026-12-07 10:00 by ds@example.com" in rows[0]
    assert "ml-lead@example.com" in rows[0] and "ds@example.com," not in rows[0]  # the starter may not approve
    assert "0.8123 vs 0.7900: +0.0223 better (higher is better)" in rows[0] and "+0.0000 no change" in rows[1]


def test_approvals_list_as_json(waiting):
    result = runner.invoke(cli.app, ["approvals", "list", "churn", "--output", "json"])
    document = json.loads(result.stdout)
    assert result.exit_code == 0 and document["skipped"] == {}
    (item,) = document["pending"]
    assert (item["model"], item["version"], item["execution"], item["may_decide"]) == (
        "churn", 7, "run-7", ["ml-lead@example.com"])
    assert item["created_at"] == "2026-12-07T10:00:00+00:00" and item["review"]["champion_value"] == 0.79
    assert item["approving_does"].startswith("Approving deploys version 7")


def test_approvals_list_without_a_model_asks_every_model_folder(waiting):
    result = runner.invoke(cli.app, ["approvals", "list", "--output", "json"])
    assert result.exit_code == 0 and "churn" in waiting["pipelines"].models and len(waiting["pipelines"].models) > 1


def test_approvals_list_names_every_model_folder_even_beside_a_broken_spec(tmp_path, monkeypatch):
    from pipelines import approvals_cli

    for name, text in (("churn", "name: churn\n"), ("broken", "name: [unclosed\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.yaml").write_text(text)
    monkeypatch.setenv("MLOPS_MODELS_DIR", str(tmp_path))
    assert approvals_cli.model_names() == ["broken", "churn"]  # the broken one is skipped later, with its error

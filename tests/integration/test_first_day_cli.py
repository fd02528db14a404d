"""What a new user's first day needed from the CLI: where a waiting run's approval is and how to give it locally,
how to call the served model, and tables that keep their words whole on a narrow or captured console."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from lambdas.shared.run_state import Outcome, RunView
from pipelines import cli
from pipelines.cli import app

runner = CliRunner()


class WaitingThenPromoted:
    """A client whose run waits for ml-lead@example.com once, then is promoted (what the runs API shows)."""

    def __init__(self, workdir: Path | None) -> None:
        self.local = SimpleNamespace(workdir=workdir) if workdir else None
        self.calls = 0

    def status(self, model, execution=None) -> RunView:
        self.calls += 1
        waiting = Outcome(kind="waiting_for_approval", summary="waiting for approval by ml-lead@example.com",
                          approvers=["ml-lead@example.com"])
        promoted = Outcome(kind="promoted", summary="promoted version 2")
        return RunView(name="manual-1", arn="arn:run", status="RUNNING" if self.calls == 1 else "SUCCEEDED",
                       started="2026-12-07T00:00:00", outcome=waiting if self.calls == 1 else promoted)


def test_follow_in_local_mode_says_where_the_approval_links_are_and_how_to_approve_as_the_approver(monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "client", lambda env: WaitingThenPromoted(tmp_path))
    result = runner.invoke(app, ["run", "watch", "wine", "--env", "local", "--poll", "0"])
    assert result.exit_code == 0, result.output
    assert f"saved in {tmp_path / 'inbox'}" in result.output and "mlops local serve" in result.output
    assert ('approve as ml-lead@example.com: MLOPS_LOCAL_AS=ml-lead@example.com mlops approve wine --env local'
            in result.output)


def test_follow_in_aws_says_the_links_were_mailed_and_names_the_approve_command(monkeypatch):
    monkeypatch.setattr(cli, "client", lambda env: WaitingThenPromoted(None))
    result = runner.invoke(app, ["run", "watch", "wine", "--env", "dev", "--poll", "0"])
    assert result.exit_code == 0, result.output
    assert "links by email" in result.output and "mlops approve wine --env dev" in result.output

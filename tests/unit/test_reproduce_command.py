"""`mlops run reproduce` exits by the run's verdict (every metric within the tolerance), in text and JSON alike."""

import json

import pytest
from typer.testing import CliRunner

from pipelines import experiments_cli
from pipelines.cli import app


def result(verified: bool, identical: bool) -> dict:
    return {"version": 1, "model_package_arn": "arn", "run": "reproduce-1", "status": "SUCCEEDED",
            "outcome": "reproduced version 1" if verified else "did not reproduce version 1",
            "verdict": "reproduced" if verified else "not_reproduced", "verified": verified,
            "original": {"validation:auc": 0.8}, "reproduced": {"validation:auc": 0.8 if identical else 0.7},
            "difference": {"validation:auc": 0.0 if identical else -0.1}, "identical": identical}


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize(("verified", "identical", "code"), [(True, True, 0), (True, False, 0), (False, False, 1)])
def test_the_exit_code_follows_the_runs_verdict_not_exact_equality(monkeypatch, output, verified, identical, code):
    monkeypatch.setattr(experiments_cli, "_pipelines", lambda env: None)
    monkeypatch.setattr(experiments_cli, "reproduce", lambda *arguments: result(verified, identical))
    ran = CliRunner().invoke(app, ["run", "reproduce", "churn", "1", "--output", output])
    assert ran.exit_code == code, ran.output
    if output == "json":
        assert json.loads(ran.stdout)["verified"] is verified
    else:
        assert ("did not reproduce" in ran.output) is not verified

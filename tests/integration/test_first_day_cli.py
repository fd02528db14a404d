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


class FakeHosting:
    """What the local server's hosting resolves: churn's prod endpoint answers; a bad row is the model's refusal."""

    invocations = 0

    def resolve(self, endpoint, component=None):
        from pipelines.local.serving import Served

        if endpoint != "churn-local-prod":
            raise LookupError(f"Could not find endpoint {endpoint}")
        return Served(SimpleNamespace(handle=self.handle), {}, "AllTraffic", {})

    @staticmethod
    def handle(body, content_type, accept, environment=None):
        import json

        rows = json.loads(body)["instances"]
        if any("tenure_months" not in row for row in rows):
            raise ValueError("row 0 lacks tenure_months")
        return json.dumps({"predictions": [0.25] * len(rows)}), "application/json"

    def capture(self, *args):
        pass


@pytest.fixture
def local_hosting(monkeypatch):
    """A client of env local whose model hosting is the local server's own handler (pipelines/local/serving.py)."""
    import threading
    from http.server import ThreadingHTTPServer

    import boto3

    from pipelines.client import Pipelines
    from pipelines.local.serving import _Handler

    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"hosting": FakeHosting()}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    session = boto3.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")
    pipelines = Pipelines(env="local", session=session)
    pipelines.local = SimpleNamespace(urls={"hosting": f"http://127.0.0.1:{server.server_address[1]}"})
    monkeypatch.setattr(cli, "client", lambda env: pipelines)
    yield pipelines
    server.shutdown()


def test_predict_calls_the_served_model_and_prints_its_answer(local_hosting, tmp_path):
    import json

    result = runner.invoke(app, ["predict", "churn", "--env", "local", "--data", '{"instances": [{"tenure_months": 3}]}'])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"predictions": [0.25]}
    (tmp_path / "request.json").write_text('{"instances": [{"tenure_months": 3}, {"tenure_months": 9}]}')
    as_json = runner.invoke(app, ["predict", "churn", "--env", "local", "--data", f"@{tmp_path / 'request.json'}",
                                  "--output", "json"])
    document = json.loads(as_json.output)
    assert document["endpoint"] == "churn-local-prod" and document["response"] == {"predictions": [0.25, 0.25]}
    assert document["url"] == f"{local_hosting.local.urls['hosting']}/endpoints/churn-local-prod/invocations"


def test_predict_errors_are_one_line_with_their_exit_codes(local_hosting):
    missing = runner.invoke(app, ["predict", "churn", "--stage", "staging", "--env", "local", "--data", '{"instances": []}'])
    assert missing.exit_code == 5 and "local serves prod traffic, not staging" in missing.output \
        and "use --stage prod" in missing.output and len(missing.output.strip().splitlines()) == 1
    refused = runner.invoke(app, ["predict", "churn", "--env", "local", "--data", '{"instances": [{"age": 1}]}'])
    assert refused.exit_code == 1 and "churn-local-prod refused the request: row 0 lacks tenure_months" in refused.output
    not_json = runner.invoke(app, ["predict", "churn", "--env", "local", "--data", "{oops"])
    assert not_json.exit_code == 2 and "--data is not JSON" in not_json.output

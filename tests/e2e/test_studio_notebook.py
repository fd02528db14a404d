"""docs/studio.ipynb runs against the local server (`mlops local serve`), and the CLI reaches the same server from
another process: --env local, run status/stop, local down."""

import json
import os

import nbformat
import pytest
from nbclient import NotebookClient
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.local.server import down, read_state, start_in_background
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local") / "work"
    state = start_in_background(["--model", "churn", "--workdir", str(workdir), "--rows", "2000"], workdir)
    saved = dict(os.environ)
    os.environ.update({"MLOPS_LOCAL_DIR": str(workdir), "MLOPS_ENV": "local", "MLOPS_NOTEBOOK_EPOCHS": "3"})
    yield {"workdir": workdir, **state}
    os.environ.clear()
    os.environ.update(saved)
    if read_state(workdir) is not None:
        down(workdir)


@pytest.fixture(scope="module")
def notebook(server):
    document = nbformat.read(REPO_ROOT / "docs" / "studio.ipynb", as_version=4)
    NotebookClient(document, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO_ROOT / "docs")}}).execute()
    return document


def outputs(cell) -> str:
    texts = []
    for output in cell.get("outputs", []):
        texts.append(output.get("text", ""))
        texts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def test_the_notebook_follows_its_run_step_by_step_to_the_approval_wait(notebook):
    follow = next(cell for cell in notebook.cells if "pipelines.status(MODEL, run.name)" in cell.source)
    text = outputs(follow)
    for step in ("PrepareRun", "ValidateData", "Train", "EvaluateAgainstChampion", "RegisterModelPackage"):
        assert f"succeeded  {step}" in text
    assert "outcome: waiting_for_approval" in text
    assert "waiting for approval by ml-lead@example.com, risk-officer@example.com until" in text


def test_the_notebook_plots_the_per_epoch_metrics_and_lists_the_registry(notebook):
    plot = next(cell for cell in notebook.cells if "pipelines.metrics(" in cell.source)
    assert any("image/png" in output.get("data", {}) for output in plot.outputs)
    assert "train:loss" in outputs(plot) and "validation:auc" in outputs(plot)
    registry = next(cell for cell in notebook.cells if "pipelines.models(MODEL)" in cell.source)
    assert "PendingManualApproval" in outputs(registry)


def test_the_cli_in_another_process_reaches_the_local_server_and_stops_the_run(notebook, server, monkeypatch):
    status = runner.invoke(app, ["run", "status", "churn", "--env", "local", "--output", "json"])
    assert status.exit_code == 0, status.output
    waiting = json.loads(status.stdout)
    assert waiting["requested_by"].endswith("/data-scientist@example.com")
    assert waiting["outcome"]["kind"] == "waiting_for_approval"
    assert waiting["outcome"]["approvers"] == ["ml-lead@example.com", "risk-officer@example.com"]
    refused = runner.invoke(app, ["run", "stop", "churn", "--env", "local"])
    assert refused.exit_code == 6 and "not allowed" in refused.output  # StopExecution is the platform admins'
    monkeypatch.setenv("MLOPS_LOCAL_AS", "admin")
    stopped = runner.invoke(app, ["run", "stop", "churn", "--env", "local", "--reason", "notebook test done"])
    assert stopped.exit_code == 0, stopped.output
    after = json.loads(runner.invoke(app, ["run", "status", "churn", "--env", "local", "--output", "json"]).stdout)
    assert after["status"] == "ABORTED" and after["outcome"]["kind"] == "stopped"
    inbox = list((server["workdir"] / "inbox").glob("*.txt"))
    assert len(inbox) == 2 and all("Approve: http://127.0.0.1:" in path.read_text() for path in inbox)
    assert runner.invoke(app, ["local", "down", "--workdir", str(server["workdir"])]).exit_code == 0
    assert read_state(server["workdir"]) is None
    gone = runner.invoke(app, ["run", "list", "churn", "--env", "local"])
    assert gone.exit_code == 4 and "no local server is running" in gone.output

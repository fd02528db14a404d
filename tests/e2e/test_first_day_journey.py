"""A new user's first day, as they did it by hand (issue 27): `mlops new wine --task multiclass --framework sklearn`
pointed at real data (scikit-learn's bundled wine set: 178 rows, 13 features, 3 classes; no download), only files
of the model's folder edited (model.yaml's features, label, classes and min_rows; make_dataset.py's generate()),
then `mlops local serve`, `mlops run start wine --env local --follow`, the approver approving, `mlops predict`,
`mlops run reproduce wine 1` and `mlops drift check`. The folder lives outside the repository (MLOPS_MODELS_DIR),
every step goes through the CLI against a local server in the background, and no platform file changes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from sklearn.datasets import load_wine
from typer.testing import CliRunner

from pipelines import naming
from pipelines.cli import app
from pipelines.local.server import down, read_state, start_in_background
from tests.conftest import REPO_ROOT
from tests.e2e.test_scaffolded_model import platform_fingerprint

pytestmark = pytest.mark.slow
runner = CliRunner()
APPROVER = "ml-lead@example.com"
CLASSES = ["class_0", "class_1", "class_2"]
FEATURES = [name.replace("/", "_") for name in load_wine().feature_names]  # od280/od315_... is not a column name

# What the user wrote into make_dataset.py: the real rows (never resampled with replacement: duplicated rows in both
# train and validation would trip the leakage guard); `shift` moves every feature by up to two standard deviations.
MAKE_DATASET = '''"""scikit-learn's wine data set (178 real rows, 13 features, 3 cultivars), bundled with scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine

from pipelines.modelkit.data import dataset_cli, write_csv_columns

LABEL = "cultivar"
WINE = load_wine()
FEATURES = [name.replace("/", "_") for name in WINE.feature_names]
COLUMNS = FEATURES + [LABEL]


def generate(rows: int, seed: int = 7, shift: float = 0.0) -> dict:
    """Up to 178 of the real rows, in a seeded order; shift (0 to 1) moves the features (a new vineyard)."""
    order = np.random.default_rng(seed).permutation(len(WINE.target))[:min(rows, len(WINE.target))]
    data = WINE.data[order] + shift * 2.0 * WINE.data.std(axis=0)
    columns = {name: data[:, index].round(4) for index, name in enumerate(FEATURES)}
    columns[LABEL] = WINE.target_names[WINE.target[order]]
    return columns


def write_csv(columns: dict, path: Path, include_label: bool = True) -> Path:
    return write_csv_columns(columns, [c for c in COLUMNS if include_label or c != LABEL], path)


if __name__ == "__main__":
    dataset_cli(generate, write_csv, __doc__, Path(__file__).parent / "data" / "train.csv")
'''


def edit_spec(text: str) -> str:
    """The user's edits of the scaffolded model.yaml: their columns, classes and row count, a small model, and every
    request captured (the scaffold samples 20%)."""
    edits = [(r"  classes: \[.*\]", f"  classes: [{', '.join(CLASSES)}]"),
             (r"  label: .*", "  label: cultivar"),
             (r"  features: \[.*\]", f"  features: [{', '.join(FEATURES)}]"),
             (r"  categorical: \[.*\]\n", ""),
             (r"  min_rows: 500", "  min_rows: 150"),
             (r"    max_iter: \d+", "    max_iter: 20"),
             (r"  data_capture_percent: \d+", "  data_capture_percent: 100")]
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text, count=1)
        assert count == 1, f"the scaffolded model.yaml has no line matching {pattern}"
    return text


def wine_rows(count: int, shift: float = 0.0, start: int = 0) -> list[dict]:
    wine = load_wine()
    data = wine.data + shift * 2.0 * wine.data.std(axis=0)
    indices = [(start + i) % len(data) for i in range(count)]
    return [dict(zip(FEATURES, data[i].round(4).tolist())) for i in indices]


def cli(*arguments: str, person: str | None = None):
    """One `mlops ...` command as the data scientist (or as `person`: MLOPS_LOCAL_AS)."""
    saved = os.environ.pop("MLOPS_LOCAL_AS", None)
    if person:
        os.environ["MLOPS_LOCAL_AS"] = person
    try:
        return runner.invoke(app, list(arguments))
    finally:
        os.environ.pop("MLOPS_LOCAL_AS", None)
        if saved is not None:
            os.environ["MLOPS_LOCAL_AS"] = saved


def parsed(result) -> dict | list:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def journey(tmp_path_factory):
    """The whole first day once; each test below checks one step of it."""
    before = platform_fingerprint()
    models, workdir = tmp_path_factory.mktemp("models"), tmp_path_factory.mktemp("local") / "work"
    saved = dict(os.environ)
    os.environ.update({"MLOPS_MODELS_DIR": str(models), "MLOPS_LOCAL_DIR": str(workdir)})
    steps: dict = {}
    follow = None
    try:
        steps["new"] = cli("new", "wine", "--task", "multiclass", "--framework", "sklearn")
        folder = models / "wine"
        (folder / "model.yaml").write_text(edit_spec((folder / "model.yaml").read_text()))
        (folder / "make_dataset.py").write_text(MAKE_DATASET)
        steps["validate"] = cli("validate", "wine", "--output", "json")
        steps["server"] = start_in_background(["--model", "wine", "--workdir", str(workdir)], workdir)
        # `mlops run start --follow` in the user's first shell: it follows the run until it ends, so it runs beside
        # the approver's commands (a second shell) until they approve.
        follow = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "start", "wine", "--env", "local",
                                   "--follow", "--poll", "0.5"], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
        lines = []
        for line in follow.stdout:  # until it says how to approve (or ends: then the tests below say why)
            lines.append(line)
            if f"approve as {APPROVER}:" in line:
                break
        steps["pending"] = cli("approvals", "list", "--env", "local", "--output", "json", person=APPROVER)
        steps["approve"] = cli("approve", "wine", "--env", "local", "--yes", "--reason", "accuracy reviewed",
                               person=APPROVER)
        lines += follow.stdout.read()
        steps["follow"] = (follow.wait(timeout=600), "".join(lines))
        steps["status"] = cli("run", "status", "wine", "--env", "local", "--output", "json")
        steps["models"] = cli("models", "list", "wine", "--env", "local")
        steps["models_json"] = cli("models", "list", "wine", "--env", "local", "--output", "json")
        steps["predict"] = cli("predict", "wine", "--env", "local", "--output", "json",
                               "--data", json.dumps({"instances": wine_rows(5, start=0) + wine_rows(5, start=60)
                                                     + wine_rows(5, start=140)}))
        steps["reproduce"] = cli("run", "reproduce", "wine", "1", "--env", "local", "--poll", "0.5", "--output", "json")
        steps["models_after"] = cli("models", "list", "wine", "--env", "local", "--output", "json")
        steps["pending_after"] = cli("approvals", "list", "--env", "local", "--output", "json", person=APPROVER)
        steps["runs_after"] = cli("run", "list", "wine", "--env", "local", "--output", "json")
        steps["running_after"] = cli("run", "list", "wine", "--env", "local", "--status", "RUNNING", "--output", "json")
        for request in range(8):  # 8 x 30 shifted rows, all captured: past the spec's drift.min_rows (200)
            steps.setdefault("traffic", []).append(cli(
                "predict", "wine", "--env", "local", "--data",
                json.dumps({"instances": wine_rows(30, shift=1.0, start=30 * request)})))
        state = steps["server"]
        steps["capture"] = (f"s3://{naming.artifact_bucket('local', state['account'], state['region'])}/data-capture/"
                            f"{naming.endpoint('wine', 'local', 'prod')}/")
        steps["drift"] = cli("drift", "check", "wine", "--env", "local", "--capture", steps["capture"],
                             "--out", str(workdir.parent / "drift-report"), "--output", "json")
        steps["drift_text"] = cli("drift", "check", "wine", "--env", "local", "--capture", steps["capture"],
                                  "--out", str(workdir.parent / "drift-report-text"))
        steps["runs_after_drift"] = cli("run", "list", "wine", "--env", "local", "--output", "json")
        steps["workdir"], steps["folder"] = workdir, folder
        steps["platform"] = (before, platform_fingerprint())
        yield steps
    finally:
        if follow is not None and follow.poll() is None:  # the journey broke off while the run was followed
            follow.kill()
            follow.wait()
        os.environ.clear()
        os.environ.update(saved)
        if read_state(workdir) is not None:
            down(workdir)


def test_the_scaffolded_wine_folder_outside_the_repository_validates(journey):
    assert journey["new"].exit_code == 0, journey["new"].output
    assert "next: mlops validate wine" in journey["new"].output  # MLOPS_MODELS_DIR already names the folder
    validated = parsed(journey["validate"])
    assert validated["valid"] is True, validated["problems"]
    assert validated["folder"] == str(journey["folder"].resolve())


def test_run_one_waits_for_the_approver_and_the_followed_run_says_how_to_approve_locally(journey):
    _, text = journey["follow"]
    text = " ".join(text.split())
    for step in ("PrepareRun", "ValidateData", "Train", "EvaluateAgainstChampion", "RegisterModelPackage"):
        assert f"✓ {step}" in text
    assert f"⏸ waiting for approval by {APPROVER}" in text
    assert f"saved in {journey['workdir'].resolve() / 'inbox'}" in text
    assert f"approve as {APPROVER}: MLOPS_LOCAL_AS={APPROVER} mlops approve wine --env local --reason" in text


def test_the_approver_sees_version_one_pending_and_approves_it(journey):
    (pending,) = parsed(journey["pending"])["pending"]
    assert (pending["model"], pending["version"], pending["may_decide"]) == ("wine", 1, [APPROVER])
    assert pending["review"]["dataset_rows"] == 178  # the real rows, none invented
    log = " ".join((journey["workdir"].parent / "work-server.log").read_text().split())
    assert "(178 rows, population shift 0.0 (5000 asked for; the model's generate() gave 178))" in log
    assert journey["approve"].exit_code == 0, journey["approve"].output
    assert "wine: version 1 approved" in journey["approve"].output


def test_the_approved_run_ends_promoted_to_production(journey):
    code, text = journey["follow"]
    assert code == 0, text
    assert "promoted: version 1 serves production" in " ".join(text.split())
    status = parsed(journey["status"])
    assert status["status"] == "SUCCEEDED"
    assert (status["outcome"]["kind"], status["outcome"]["decided_by"]) == ("promoted", APPROVER)


def test_models_list_names_the_prod_endpoint_and_how_to_call_it(journey):
    text = " ".join(journey["models"].output.split())
    assert journey["models"].exit_code == 0, text
    assert "prod: endpoint wine-local-prod (http://127.0.0.1:" in text
    assert "call it: mlops predict wine --stage prod --env local" in text
    (version,) = parsed(journey["models_json"])
    assert version["version"] == 1 and "prod" in version["serves"]
    assert "wine-local-prod" in [endpoint["endpoint"] for endpoint in version["endpoints"]]


def test_the_served_model_names_one_of_the_three_cultivars_for_real_wine_rows(journey):
    answer = parsed(journey["predict"])
    assert answer["endpoint"] == "wine-local-prod"
    labels = [prediction["label"] for prediction in answer["response"]["predictions"]]
    assert len(labels) == 15 and set(labels) <= set(CLASSES)
    assert set(labels) == set(CLASSES)  # rows of each cultivar were sent: each is recognised at least once
    for prediction in answer["response"]["predictions"]:
        assert set(prediction["probabilities"]) == set(CLASSES)


def test_reproducing_version_one_verifies_it_and_leaves_nothing_pending_or_running(journey):
    reproduced = parsed(journey["reproduce"])
    assert (reproduced["verdict"], reproduced["verified"], reproduced["status"]) == ("reproduced", True, "SUCCEEDED")
    assert reproduced["identical"] is True, reproduced["difference"]
    assert [v["version"] for v in parsed(journey["models_after"])] == [1]  # nothing registered
    assert parsed(journey["pending_after"])["pending"] == []  # nobody asked to approve
    assert parsed(journey["running_after"]) == []  # the runs API refuses a second run only while one runs
    latest = parsed(journey["runs_after"])[0]
    assert latest["outcome"]["kind"] == "reproduced" and latest["trigger"] == "manual"


def test_a_drift_check_of_shifted_captured_traffic_reports_drift_and_starts_no_run(journey):
    assert [request.exit_code for request in journey["traffic"]] == [0] * 8
    drift = parsed(journey["drift"])
    assert drift["drift"] is True and drift["drifted_features"], drift
    assert drift["rows"] >= 200 and drift["run_started"] is False
    assert drift["baseline"].endswith("/baseline/statistics.json")  # version 1's registered baseline, by default
    text = " ".join(journey["drift_text"].output.split())
    assert journey["drift_text"].exit_code == 0, text
    assert "DRIFT" in text and "no run started" in text
    assert parsed(journey["runs_after_drift"]) == parsed(journey["runs_after"])


def test_no_platform_file_changed_on_the_way(journey):
    before, after = journey["platform"]
    assert before == after

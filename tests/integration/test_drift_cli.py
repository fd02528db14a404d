import json
from datetime import datetime, timezone
from pathlib import Path

from typer.testing import CliRunner

from lambdas.drift import baseline
from lambdas.drift.capture import csv_capture_record
from pipelines.churn import make_dataset
from pipelines.cli import app
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT


def shifted_csv_capture(folder: Path) -> tuple[list[str], dict]:
    """A churn baseline (statistics.json in folder) and 600 shifted rows captured as SageMaker CSV requests,
    half CSV-, half BASE64-encoded; returns the `mlops drift check` arguments and the baseline's constraints."""
    spec = load_spec(REPO_ROOT / "pipelines/churn")
    statistics, constraints = baseline.compute(make_dataset.generate(5000, 7), spec.dataset.features,
                                               spec.dataset.categorical)
    (folder / "statistics.json").write_text(json.dumps(statistics))
    shifted = make_dataset.generate(600, 9, shift=1.0)
    names = spec.dataset.features
    when = datetime(2026, 11, 22, tzinfo=timezone.utc)
    lines = [json.dumps(csv_capture_record([list(row)], when, f"e{i}", base64_encoded=i % 2 == 1))
             for i, row in enumerate(zip(*(shifted[n].tolist() for n in names)))]
    (folder / "capture").mkdir()
    (folder / "capture/part.jsonl").write_text("\n".join(lines) + "\n")
    arguments = ["drift", "check", "churn", "--capture", str(folder / "capture"),
                 "--baseline", str(folder / "statistics.json"), "--out", str(folder / "report")]
    return arguments, constraints


def test_cli_drift_check_reads_a_sagemaker_csv_capture_and_finds_the_shift(tmp_path):
    arguments, _ = shifted_csv_capture(tmp_path)
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "DRIFT over 600 rows" in result.output and "malformed" not in result.output
    written = json.loads((tmp_path / "report/report.json").read_text())
    assert {"contract", "tenure_months"} <= set(written["drifted_features"]) and written["capture_lines"] == 600


def test_cli_drift_check_applies_a_constraints_file_given_explicitly(tmp_path):
    arguments, constraints = shifted_csv_capture(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/constraints.json").write_text(json.dumps(constraints))
    without = CliRunner().invoke(app, arguments)
    assert without.exit_code == 0 and "constraints.json violation" not in without.output  # none beside the baseline
    given = CliRunner().invoke(app, arguments + ["--constraints", str(tmp_path / "elsewhere/constraints.json")])
    assert given.exit_code == 0, given.output
    assert "constraints.json violation" in given.output
    assert json.loads((tmp_path / "report/report.json").read_text())["violations"]


def test_cli_drift_check_says_an_offline_check_started_no_run_and_how_to_start_one(tmp_path):
    arguments, _ = shifted_csv_capture(tmp_path)
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "decision: DRIFT: retraining warranted, no run started" in result.output
    assert "mlops run start churn" in result.output and "retraining requested" not in result.output
    assert json.loads((tmp_path / "report/report.json").read_text())["run_started"] is False

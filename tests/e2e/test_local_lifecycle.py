"""The whole lifecycle offline, asserting each step's real outcome (not that the commands ran)."""


import pytest

from lambdas.shared.lineage import decode_pairs

from pipelines.local.lifecycle import LocalLifecycle
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    """churn's lifecycle, with houses' whole lifecycle running at the same time on the same control plane."""
    return LocalLifecycle("churn", tmp_path_factory.mktemp("local"), rows=3000, traffic_requests=120,
                          say=lambda line: None, alongside=["houses"]).run()


def test_first_run_succeeds_through_every_stage(lifecycle):
    first = lifecycle.runs[0]
    assert first["status"] == "SUCCEEDED" and first["input"]["trigger"] == "manual"


def test_the_package_is_registered_with_full_lineage_and_approved(lifecycle):
    first = next(v for v in lifecycle.versions if v["version"] == 1)
    assert first["status"] == "Approved"
    lineage = first["lineage"]
    assert len(lineage["git_commit"]) == 40 and len(lineage["dataset_sha256"]) == 64
    assert lineage["dataset_version_id"] not in ("", "unversioned")
    assert decode_pairs(lineage["hyperparameters"])["epochs"] == 12
    assert first["metrics"]["validation:auc"] >= 0.75
    assert lineage["execution_arn"].endswith(lifecycle.runs[0]["name"])


def test_the_approval_was_decided_by_an_approver_through_the_link_and_audited(lifecycle):
    decided = [a for a in lifecycle.approvals if a["status"] == "APPROVED"]
    assert len(decided) == 1
    assert decided[0]["decided_by"] == "ml-lead@example.com" and decided[0]["channel"] == "link"
    assert decided[0]["source_ip"] == "127.0.0.1"


def test_run_one_was_started_through_the_runs_api_as_the_signed_data_scientist(lifecycle):
    requested_by = lifecycle.runs[0]["input"]["requested_by"]
    assert requested_by == "arn:aws:sts::123456789012:assumed-role/mlops-local-data-scientist/data-scientist@example.com"
    assert next(a for a in lifecycle.approvals if a["status"] == "APPROVED")["requested_by"] == requested_by


def test_the_approved_model_serves_probabilities(lifecycle):
    assert len(lifecycle.predictions) == 3
    assert all(0 < p["probability"] < 1 and p["label"] in (0, 1) for p in lifecycle.predictions)


def test_shifted_traffic_is_captured_and_the_drift_hook_detects_it(lifecycle, tmp_path_factory):
    assert lifecycle.captured_rows >= 200
    assert lifecycle.drift["drift"] is True
    assert {"contract", "tenure_months"} <= set(lifecycle.drift["drifted_features"])
    assert "<svg" in open(lifecycle.drift_report).read()


def test_the_drift_hook_started_a_second_run_on_the_new_data(lifecycle):
    second = lifecycle.runs[1]
    assert second["input"]["trigger"] == "drift" and second["input"]["requested_by"] == "drift-hook"
    assert second["waiting_at"] == "WaitForApproval"
    versions = {v["version"]: v for v in lifecycle.versions}
    assert versions[2]["lineage"]["trigger"] == "drift" and versions[2]["status"] == "PendingManualApproval"
    assert versions[2]["lineage"]["dataset_sha256"] != versions[1]["lineage"]["dataset_sha256"]


# ------------------------------------------------------------------ a second model: XGBoost regression, beside churn
@pytest.fixture(scope="module")
def houses(lifecycle):
    return lifecycle.alongside["houses"]


def test_two_models_ran_their_lifecycles_at_the_same_time_on_one_control_plane(lifecycle, houses):
    churn_first, houses_first = lifecycle.runs[0], houses.runs[0]
    assert houses_first["started"] < churn_first["stopped"] and churn_first["started"] < houses_first["stopped"]
    assert all(":execution:churn-local-retraining:" in run["arn"] for run in lifecycle.runs)
    assert all(":execution:houses-local-retraining:" in run["arn"] for run in houses.runs)


def test_the_drift_of_one_model_never_touched_the_other(lifecycle, houses):
    for result, model in ((lifecycle, "churn"), (houses, "houses")):
        assert f"/drift/{model}/" in result.drift["html_report_uri"]
        assert result.second_run["input"]["model"] == model and result.second_run["input"]["trigger"] == "drift"
        assert f":execution:{model}-local-retraining:" in result.drift["execution_arn"]
    # each check read its own model's captures: the features it found drifting are its own model's
    for result, model in ((lifecycle, "churn"), (houses, "houses")):
        features = set(load_spec(REPO_ROOT / "pipelines" / model / "model.yaml").dataset.features)
        assert result.drift["drifted_features"] and set(result.drift["drifted_features"]) <= features


def test_the_regression_model_runs_the_whole_lifecycle_on_its_own_metric(houses):
    first = houses.runs[0]
    assert first["status"] == "SUCCEEDED", first.get("failed_step")
    assert houses.metric_columns == ["validation:rmse", "validation:mae", "validation:r2"]
    version = next(v for v in houses.versions if v["version"] == 1)
    assert version["status"] == "Approved" and version["metrics"]["validation:rmse"] <= 120
    assert "validation:auc" not in version["metrics"]


def test_the_served_regression_model_answers_prices(houses):
    assert len(houses.predictions) == 3
    assert all(set(p) == {"value"} and 30 < p["value"] < 3000 for p in houses.predictions)


def test_the_drift_run_compares_both_models_on_the_new_data(houses):
    second = houses.runs[1]
    assert second["input"]["trigger"] == "drift" and second["waiting_at"] == "WaitForApproval"
    versions = {v["version"]: v for v in houses.versions}
    lineage = versions[2]["lineage"]
    assert lineage["objective"] == "validation:rmse"
    assert lineage["champion_package_arn"] == versions[1]["arn"]  # the champion pinned when run 2 validated its data
    champion_on_new_data = float(lineage["champion_value_same_data"])
    champion_on_its_own_data = versions[1]["metrics"]["validation:rmse"]
    assert champion_on_new_data > champion_on_its_own_data  # the number the old comparison would have used
    assert float(lineage["challenger_value"]) == pytest.approx(versions[2]["metrics"]["validation:rmse"], rel=1e-5)
    assert float(lineage["challenger_value"]) < champion_on_new_data - 0.5  # the spec's margin, on the same rows


def test_both_models_kept_their_own_metric_columns(lifecycle, houses):
    assert lifecycle.metric_columns == ["validation:auc", "validation:accuracy"]
    assert {"validation:rmse"} <= set(houses.versions[0]["metrics"]) and "validation:rmse" not in lifecycle.versions[0]["metrics"]


def test_each_run_records_its_outcome_and_the_summary_shows_it_with_what_serves_production(lifecycle, capsys):
    from pipelines import cli

    first, second = lifecycle.runs[0], lifecycle.runs[1]
    assert first["outcome"]["kind"] == "promoted" and first["outcome"]["version"] == 1
    assert first["outcome"]["decided_by"] == "ml-lead@example.com"
    if second["waiting_at"]:
        assert second["outcome"]["kind"] == "waiting_for_approval" and second["outcome"]["step"] == "WaitForApproval"
    else:  # the drift-triggered challenger lost: both numbers are in the outcome
        assert second["outcome"]["kind"] in ("kept_champion", "below_threshold")
        assert second["outcome"]["value"] is not None and second["outcome"]["champion_value"] is not None
    served = {v["version"]: v["serves"] for v in lifecycle.versions}
    assert served[1] == ["prod"] and all(not v for k, v in served.items() if k != 1)
    cli.console.width = 250
    cli.print_summary(lifecycle)
    shown = capsys.readouterr().out
    assert "promoted: version 1 serves production" in shown and second["outcome"]["summary"][:40] in shown

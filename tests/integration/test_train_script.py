import json
import re
import signal

import pytest

from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT
from tests.support.sagemaker_layout import prepare, run_training

SPEC = load_spec(REPO_ROOT / "pipelines/churn/model.yaml")
FAST = {"epochs": 6, "batch_size": 256, "learning_rate": 0.003, "hidden_units": 32, "seed": 11}


def objective_from(stdout: str) -> float:
    return float(re.findall(SPEC.objective.regex, stdout)[-1])


def test_trains_on_cpu_in_the_sagemaker_layout_and_reaches_the_spec_minimum(tmp_path):
    result = run_training(prepare(tmp_path, FAST))
    auc = objective_from(result.stdout)
    assert SPEC.objective.passes_minimum(auc), f"AUC {auc} below {SPEC.objective.minimum}"
    model_dir = tmp_path / "model"
    for name in ("model.pt", "preprocessing.json", "evaluation.json", "model_card.md", "statistics.json",
                 "constraints.json", "code/inference.py", "code/modelkit/serving.py"):
        assert (model_dir / name).exists(), name
    report = json.loads((model_dir / "evaluation.json").read_text())
    assert report["metrics"]["validation:auc"] == pytest.approx(auc, abs=1e-6)
    assert report["hyperparameters"]["hidden_units"] == 32  # read from hyperparameters.json strings
    assert (tmp_path / "output/data/evaluation.json").exists()


def test_a_killed_spot_job_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    uninterrupted = run_training(prepare(tmp_path / "whole", FAST))

    interrupted_root = prepare(tmp_path / "spot", FAST)
    killed = run_training(interrupted_root, {"MLOPS_SIMULATE_SPOT_INTERRUPTION_AFTER_EPOCH": "2"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert "epoch=3;" not in killed.stdout
    assert sorted(p.name for p in (interrupted_root / "checkpoints").iterdir()) == [
        "checkpoint-epoch0001.pt", "checkpoint-epoch0002.pt"]

    resumed = run_training(interrupted_root)
    assert "checkpoint: resumed from epoch 2" in resumed.stdout
    assert "epoch=1;" not in resumed.stdout and "epoch=3;" in resumed.stdout
    assert objective_from(resumed.stdout) == pytest.approx(objective_from(uninterrupted.stdout), abs=1e-6)


def test_a_torn_checkpoint_is_skipped_not_fatal(tmp_path):
    root = prepare(tmp_path, {**FAST, "epochs": 3})
    run_training(root, {"MLOPS_SIMULATE_SPOT_INTERRUPTION_AFTER_EPOCH": "2"}, check=False)
    (root / "checkpoints/checkpoint-epoch0002.pt").write_bytes(b"torn")
    resumed = run_training(root)
    assert "skipping unreadable checkpoint-epoch0002.pt" in resumed.stdout
    assert "resumed from epoch 1" in resumed.stdout


def test_unknown_hyperparameters_stop_the_job_with_their_names(tmp_path):
    result = run_training(prepare(tmp_path, {**FAST, "epoch": 3}), check=False)
    assert result.returncode != 0
    assert "unknown hyperparameters ['epoch']" in result.stderr


@pytest.fixture(scope="module")
def trained_model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    run_training(prepare(root, {**FAST, "epochs": 3}))
    return root / "model"


def served(model_dir):
    """The artifact's own serving code, imported in isolation (as the local hosting and champion scoring do)."""
    from pipelines.modelkit.loader import ServingCode
    code = ServingCode(model_dir)
    return code.module, code.model


def test_inference_handlers_serve_predictions_from_the_artifact(trained_model_dir):
    inference, model = served(trained_model_dir)
    row = {"tenure_months": 3, "monthly_charges": 110, "total_charges": 330, "support_calls": 6, "num_products": 1,
           "age": 30, "usage_gb": 20, "late_payments": 2, "contract": "month-to-month",
           "payment_method": "electronic-check", "region": "north"}
    loyal = {**row, "tenure_months": 90, "support_calls": 0, "late_payments": 0, "contract": "two-year",
             "payment_method": "card", "monthly_charges": 40}
    body, content_type = inference.output_fn(inference.predict_fn(inference.input_fn(
        json.dumps({"instances": [row, loyal]}), "application/json"), model), "application/json")
    predictions = json.loads(body)["predictions"]
    assert content_type == "application/json"
    assert predictions[0]["probability"] > predictions[1]["probability"]
    csv_body = "tenure_months,monthly_charges,total_charges,support_calls,num_products,age,usage_gb,late_payments,contract,payment_method,region\n3,110,330,6,1,30,20,2,month-to-month,electronic-check,north\n"
    csv_rows = inference.input_fn(csv_body, "text/csv")
    assert inference.predict_fn(csv_rows, model)[0]["probability"] == pytest.approx(predictions[0]["probability"], abs=1e-5)


@pytest.mark.parametrize(("body", "content_type", "message"), [
    ("{not json", "application/json", "not valid JSON"),
    ('{"instances": []}', "application/json", "at least one row"),
    ('{"instances": [{"age": 3}]}', "application/json", "rows lack features"),
    ("a,b", "application/x-parquet", "unsupported content type"),
])
def test_inference_rejects_bad_requests_with_a_clear_message(trained_model_dir, body, content_type, message):
    inference, model = served(trained_model_dir)
    with pytest.raises(inference.BadRequest, match=message):
        inference.predict_fn(inference.input_fn(body, content_type), model)

"""Model folders of any task type and framework train in the SageMaker layout from the source archive the
platform builds, serve through their own code, and have the champion re-scored on the new data."""

import json
import os
import subprocess
import sys
import tarfile

import boto3
import numpy as np
import pytest
from moto import mock_aws

from pipelines.local.lifecycle import LocalLifecycle
from pipelines.local.sagemaker_jobs import run_training_job, unpack_source
from pipelines.model_folder import load_dataset_module
from pipelines.modelkit.loader import ServingCode
from pipelines.scaffold import scaffold
from pipelines.spec import DEFAULT_MODELS_DIR as MODELS_DIR, SpecError, load_spec

BUCKET = "mlops-dev-artifacts-123456789012-us-east-1"


def train_in_layout(model_dir, root, rows: int, hyperparameters: dict, seed: int = 7, shift: float = 0.0):
    spec = load_spec(model_dir)
    data = load_dataset_module(model_dir, spec)
    data.write_csv(data.generate(rows, seed, shift), root / "input/data/train/train.csv")
    (root / "input/config").mkdir(parents=True, exist_ok=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hyperparameters.items()}))
    code = unpack_source(model_dir, root)
    result = subprocess.run([sys.executable, str(code / "train.py")], env={**os.environ, "SM_ROOT": str(root)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((root / "model/evaluation.json").read_text()), data


def rows_of(data, count: int, seed: int, shift: float, features: list) -> list:
    columns = data.generate(count, seed, shift)
    return [dict(zip(features, values)) for values in zip(*(columns[n].tolist() for n in features))]


FAST = {"xgboost": {"num_round": 30}, "sklearn": {"max_iter": 30}, "pytorch": {"epochs": 4}}


@pytest.mark.parametrize(("task", "framework"), [("binary", "sklearn"), ("regression", "pytorch"),
                                                 ("multiclass", "xgboost")])
def test_a_scaffolded_folder_trains_and_serves_records_of_its_task_type(tmp_path, task, framework):
    folder = scaffold(f"demo-{task[:3]}", task, framework, tmp_path / "models")
    report, data = train_in_layout(folder, tmp_path / "job", 600, FAST[framework])
    spec = load_spec(folder)
    assert report["task"] == task and spec.objective.metric in report["metrics"]
    assert set(report["metrics"]) >= set(spec.metric_columns())
    explanations = report["explainability"]["explanations"]
    assert set(explanations["permutation_importance"]["label"]["global_importance"]) == set(spec.dataset.features)
    if framework == "xgboost":  # its own TreeSHAP too, one output per class of a multiclass model
        assert set(explanations["tree_shap"]) == set(spec.task.classes)
    assert report["bias"] is None  # the scaffold names no sensitive attribute
    predictions = ServingCode(tmp_path / "job/model").predict(rows_of(data, 3, 5, 0.0, spec.dataset.features))
    expected = {"binary": {"probability", "label"}, "regression": {"value"}, "multiclass": {"label", "probabilities"}}
    assert all(set(p) == expected[task] for p in predictions)
    with tarfile.open(tmp_path / "job/input/data/code/sourcedir.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"train.py", "inference.py", "make_dataset.py", "model.yaml", "mlops_spec.json", "baseline.py",
            "modelkit/finish.py"} <= names


@pytest.fixture(scope="module")
def houses_champion(tmp_path_factory):
    root = tmp_path_factory.mktemp("houses-v1")
    report, _ = train_in_layout(MODELS_DIR / "houses", root, 1500, {"num_round": 60})
    return root, report


def test_houses_predicts_prices_through_its_own_serving_code(houses_champion):
    root, report = houses_champion
    assert report["metrics"]["validation:rmse"] < 60 and report["metrics"]["validation:r2"] > 0.8
    spec = load_spec(MODELS_DIR / "houses")
    data = load_dataset_module(MODELS_DIR / "houses", spec)
    rows = rows_of(data, 2, 3, 0.0, spec.dataset.features)
    small, large = dict(rows[0], living_area_sqft=800), dict(rows[0], living_area_sqft=4000)
    values = [p["value"] for p in ServingCode(root / "model").predict([small, large])]
    assert 0 < values[0] < values[1]  # a larger house of the same kind is dearer


def test_the_champion_channel_rescores_the_served_model_on_the_new_data(houses_champion, tmp_path):
    champion_root, first = houses_champion
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        spec = load_spec(MODELS_DIR / "houses")
        data = load_dataset_module(MODELS_DIR / "houses", spec)
        data.write_csv(data.generate(1500, 11, 1.0), tmp_path / "train.csv")
        s3.upload_file(str(tmp_path / "train.csv"), BUCKET, "runs/houses/r2/data/train.csv")
        with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
            tar.add(champion_root / "model", arcname=".")
        s3.upload_file(str(tmp_path / "model.tar.gz"), BUCKET, "models/houses/r1/output/model.tar.gz")
        arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/houses-dev/1"
        s3.put_object(Bucket=BUCKET, Key="runs/houses/r2/champion/champion.json",
                      Body=json.dumps({"model_package_arn": arn, "version": 1}))
        s3.put_object(Bucket=BUCKET, Key="runs/houses/r2/champion/manifest.json", Body=json.dumps([
            {"prefix": f"s3://{BUCKET}/"}, "runs/houses/r2/champion/champion.json", "models/houses/r1/output/model.tar.gz"]))
        request = {"TrainingJobName": "houses-r2", "HyperParameters": {"num_round": "60", "sagemaker_program": '"train.py"'},
                   "InputDataConfig": [
                       {"ChannelName": "train", "DataSource": {"S3DataSource": {
                           "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/runs/houses/r2/data/"}}},
                       {"ChannelName": "champion", "DataSource": {"S3DataSource": {
                           "S3DataType": "ManifestFile", "S3Uri": f"s3://{BUCKET}/runs/houses/r2/champion/manifest.json"}}}],
                   "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models/houses/"},
                   "StoppingCondition": {"MaxRuntimeInSeconds": 300}}
        job = run_training_job(request, MODELS_DIR / "houses", tmp_path / "jobs", log=lambda line: None)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert "champion:rmse=" in job["log"]
    report = json.loads((tmp_path / "jobs/houses-r2/output/data/evaluation.json").read_text())
    champion, challenger = report["champion"], report["metrics"]
    assert champion["model_package_arn"] == arn and champion["rows"] == report["validation_rows"] == 300
    # The market moved: the champion's own-data score says nothing about these rows; on them it is much worse.
    assert champion["metrics"]["validation:rmse"] > first["metrics"]["validation:rmse"]
    assert champion["metrics"]["validation:rmse"] > challenger["validation:rmse"] + 0.5


def test_artifacts_of_two_folders_serve_side_by_side_each_with_its_own_modules(houses_champion, tmp_path):
    from tests.support.sagemaker_layout import prepare, run_training

    churn_root = prepare(tmp_path / "churn", {"epochs": 2, "hidden_units": 8}, rows=1200)
    run_training(churn_root)
    before = set(sys.modules)
    houses, churn = ServingCode(houses_champion[0] / "model"), ServingCode(churn_root / "model")
    assert houses.module.serving is not churn.module.serving  # each artifact's own modelkit copy
    assert not {"inference", "modelkit", "modelkit.serving"} & (set(sys.modules) - before)
    churn_row = {"tenure_months": 3, "monthly_charges": 110, "total_charges": 330, "support_calls": 6,
                 "num_products": 1, "age": 30, "usage_gb": 20, "late_payments": 2, "contract": "month-to-month",
                 "payment_method": "electronic-check", "region": "north"}
    assert set(churn.predict([churn_row])[0]) == {"probability", "label"}
    house = {"living_area_sqft": 1800, "lot_size_sqft": 5000, "bedrooms": 3, "bathrooms": 2, "year_built": 1990,
             "garage_spaces": 1, "distance_km": 6, "school_rating": 7, "neighbourhood": "hillcrest", "condition": "good"}
    assert np.isfinite(houses.predict([house])[0]["value"])


def test_the_local_mode_names_the_file_a_folder_lacks(tmp_path):
    folder = scaffold("half-done", "regression", "xgboost", tmp_path)
    (folder / "make_dataset.py").unlink()
    with pytest.raises(SpecError, match=r"make_dataset.py: missing; it makes labelled data for the local mode"):
        LocalLifecycle("half-done", tmp_path / "work", models_dir=tmp_path)
    (folder / "make_dataset.py").write_text("def write_csv(columns, path):\n    return path\n")
    with pytest.raises(SpecError, match=r"make_dataset.py: no function generate\('rows', 'seed', 'shift'\)"):
        LocalLifecycle("half-done", tmp_path / "work", models_dir=tmp_path)


def test_scaffolding_refuses_an_existing_folder_and_leaves_nothing_behind_on_bad_input(tmp_path):
    scaffold("prices", "regression", "xgboost", tmp_path)
    with pytest.raises(SpecError, match="already exists"):
        scaffold("prices", "binary", "sklearn", tmp_path)
    with pytest.raises(SpecError, match="approvers"):
        scaffold("prices-two", "regression", "xgboost", tmp_path, approver="not-an-email")
    assert not (tmp_path / "prices-two").exists()
    with pytest.raises(SpecError, match="a custom task declares its own checks"):
        scaffold("prices-three", "custom", "xgboost", tmp_path)

"""`mlops validate [MODEL|PATH]` (pipelines/validate_cli.py) through typer's CliRunner: a model folder checked
offline (no synthesis, no AWS call), every problem listed with its fix, exit code 2 when invalid."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipelines import validate_cli
from pipelines.cli import app
from pipelines.scaffold import scaffold

runner = CliRunner()


def validate(*arguments: str):
    return runner.invoke(app, ["validate", *arguments], env={"COLUMNS": "200"})


@pytest.fixture
def wine(tmp_path):
    return scaffold("wine", "multiclass", "sklearn", tmp_path / "models")


def edit_spec(folder, old: str, new: str) -> None:
    spec = folder / "model.yaml"
    assert old in spec.read_text()
    spec.write_text(spec.read_text().replace(old, new))


def test_a_scaffolded_folder_and_the_shipped_models_are_valid(wine):
    result = validate(str(wine))
    assert result.exit_code == 0, result.output
    assert "valid: wine" in result.output and "environments checked: dev, staging, prod" in result.output
    assert validate("churn").exit_code == 0


def test_a_typo_in_the_objective_metric_is_caught_before_training_with_the_valid_names(wine):
    edit_spec(wine, 'metric: "validation:accuracy"', 'metric: "validation:acuracy"')
    result = validate(str(wine / "model.yaml"))
    assert result.exit_code == 2
    assert "did you mean 'validation:accuracy'?" in result.output
    assert "validation:accuracy, validation:macro_f1, validation:logloss" in result.output


def test_every_problem_of_the_folder_is_listed_together(wine):
    edit_spec(wine, "instance_type: ml.m5.xlarge", "instance_type: ml.m5.xlarg")
    (wine / "inference.py").unlink()
    (wine / "train.py").write_text("def broken(:\n")
    document = json.loads(validate(str(wine), "--output", "json").output)
    assert document["valid"] is False and document["model"] is None  # the spec itself is invalid
    edit_spec(wine, "instance_type: ml.m5.xlarg", "instance_type: ml.m5.xlarge")
    result = validate(str(wine), "-o", "json")
    document = json.loads(result.output)
    assert result.exit_code == 2 and len(document["problems"]) == 2, document
    assert "inference.py: missing" in document["problems"][0]
    assert "train.py line 1: not valid Python" in document["problems"][1]


def test_an_unknown_instance_type_is_named_with_the_closest_ones(wine):
    edit_spec(wine, "instance_type: ml.m5.xlarge", "instance_type: ml.m5.xlarg")
    result = validate(str(wine))
    assert result.exit_code == 2 and "'ml.m5.xlarg' is not a SageMaker training instance type" in result.output


def test_an_environment_in_an_unknown_region_is_refused(wine, tmp_path, monkeypatch):
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"mlops:environments": {
        "dev": {"account": "111111111111", "region": "us-east-9"}}}}))
    monkeypatch.setattr(validate_cli, "CDK_JSON", cdk_json)
    result = validate(str(wine))
    assert result.exit_code == 2 and "'us-east-9' is not a region SageMaker runs in" in result.output


def test_an_unknown_model_or_a_folder_without_a_spec_is_exit_code_2(tmp_path):
    assert validate("fraud").exit_code == 2 and "no model named 'fraud'" in validate("fraud").output
    result = validate(str(tmp_path))
    assert result.exit_code == 2 and "no model.yaml there" in result.output


def test_a_dataset_outside_the_models_own_prefix_is_refused(wine):
    edit_spec(wine, "s3_prefix: datasets/wine/", "s3_prefix: datasets/churn/")
    result = validate(str(wine))
    assert result.exit_code == 2
    assert "dataset.s3_prefix 'datasets/churn/' is outside datasets/wine/" in result.output

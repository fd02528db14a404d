"""MLOPS_MODELS_DIR: model folders kept outside the repository are found by the CLI, the local mode and synthesis
alike; unset, pipelines/ as before; a folder that is not there is one clear error, not "no model named ..."."""

import json

import boto3
import pytest
from typer.testing import CliRunner

from pipelines import spec
from pipelines.cli import app
from pipelines.client import Pipelines, model_dir
from pipelines.scaffold import scaffold
from pipelines.spec import DEFAULT_MODELS_DIR, SpecError, discover_spec_files, find_model_dir, load_all_specs
from tests.conftest import REPO_ROOT

runner = CliRunner()


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A folder of models outside the repository, named by MLOPS_MODELS_DIR (set after every module is imported)."""
    scaffold("wine", "multiclass", "sklearn", tmp_path)
    monkeypatch.setenv("MLOPS_MODELS_DIR", str(tmp_path))
    return tmp_path


def test_unset_the_models_are_the_repositorys_pipelines_folder(monkeypatch):
    monkeypatch.delenv("MLOPS_MODELS_DIR", raising=False)
    assert spec.models_dir() == DEFAULT_MODELS_DIR == REPO_ROOT / "pipelines"
    assert find_model_dir("churn") == REPO_ROOT / "pipelines" / "churn"


def test_every_lookup_reads_the_variable_when_called_not_at_import(elsewhere):
    assert spec.models_dir() == elsewhere.resolve()
    assert [path.parent.name for path in discover_spec_files()] == ["wine"]
    assert [found.name for found in load_all_specs()] == ["wine"]
    assert find_model_dir("wine") == model_dir("wine") == elsewhere.resolve() / "wine"
    assert Pipelines(env="dev", session=boto3.Session(region_name="us-east-1")).models_dir == elsewhere.resolve()
    with pytest.raises(SpecError, match=r"no model named 'churn'.*MLOPS_MODELS_DIR"):
        model_dir("churn")


def test_the_cli_validates_and_scaffolds_in_the_folder_the_variable_names(elsewhere):
    validated = runner.invoke(app, ["validate", "wine", "--output", "json"])
    assert validated.exit_code == 0, validated.output
    assert json.loads(validated.stdout)["folder"] == str(elsewhere.resolve() / "wine")
    created = runner.invoke(app, ["new", "grapes", "--task", "binary", "--framework", "sklearn"])
    assert created.exit_code == 0, created.output
    assert (elsewhere / "grapes" / "model.yaml").is_file()
    assert "next: mlops validate grapes" in created.output  # the CLI already finds it: no variable to set


def test_scaffolding_into_a_folder_the_cli_does_not_read_says_to_set_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_MODELS_DIR", raising=False)
    created = runner.invoke(app, ["new", "grapes", "--models-dir", str(tmp_path)], env={"COLUMNS": "400"})
    assert created.exit_code == 0, created.output
    assert f"export MLOPS_MODELS_DIR={tmp_path.resolve()}" in " ".join(created.output.split())


def test_synthesis_reads_the_models_of_the_variables_folder(elsewhere):
    import aws_cdk as cdk

    from stacks.app_builder import validated_inputs

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    inputs = validated_inputs(cdk.App(context={**context, "env": "dev", "aws:cdk:bundling-stacks": []}))
    assert [[found.name for found in specs] for _, specs in inputs] == [["wine"]]


def test_a_models_folder_that_does_not_exist_is_one_clear_error(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv("MLOPS_MODELS_DIR", str(missing))
    with pytest.raises(SpecError, match=rf"MLOPS_MODELS_DIR={missing}: no such folder; fix: point it at the folder "
                                        r"that holds your model folders"):
        find_model_dir("wine")
    result = runner.invoke(app, ["models", "list", "wine", "--env", "local"])
    assert result.exit_code == 2
    assert f"MLOPS_MODELS_DIR={missing}: no such folder" in " ".join(result.output.split())

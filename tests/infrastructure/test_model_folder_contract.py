"""Synthesis checks every model folder against the documented contract (docs/models.md) before any construct."""

import shutil

import pytest

from pipelines.scaffold import scaffold
from pipelines.spec import SpecError
from stacks.app_builder import build_app
from tests.infrastructure.conftest import new_app


def test_synth_refuses_a_folder_holding_only_model_yaml_naming_each_missing_file(tmp_path):
    folder = scaffold("prices", "regression", "xgboost", tmp_path)
    for name in ("train.py", "inference.py"):
        (folder / name).unlink()
    with pytest.raises(SpecError) as error:
        build_app(new_app(env="dev"), tmp_path)
    message = str(error.value)
    assert "2 required file(s) missing" in message
    assert "train.py: missing; it trains in the SageMaker layout" in message
    assert "inference.py: missing; it serves the model" in message
    assert "mlops new prices --task regression --framework xgboost" in message


def test_the_entry_point_the_spec_names_is_the_file_required(tmp_path):
    folder = scaffold("prices", "regression", "xgboost", tmp_path)
    text = (folder / "model.yaml").read_text().replace("entry_point: train.py", "entry_point: fit.py")
    (folder / "model.yaml").write_text(text)
    with pytest.raises(SpecError, match="fit.py: missing"):
        build_app(new_app(env="dev"), tmp_path)


def test_a_models_root_from_the_context_synthesizes_a_scaffolded_fleet(tmp_path):
    for name, task, framework in (("prices", "regression", "xgboost"), ("leads", "binary", "sklearn")):
        scaffold(name, task, framework, tmp_path)
    shutil.copytree(tmp_path / "prices", tmp_path / "ignored-no-spec")
    (tmp_path / "ignored-no-spec" / "model.yaml").unlink()  # not a model folder: no model.yaml
    app = build_app(new_app(env="dev", **{"mlops:models_dir": str(tmp_path)}))
    stacks = [c.node.id for c in app.node.children if hasattr(c, "account")]
    assert stacks == ["mlops-dev-registry", "mlops-dev-control", "mlops-dev-leads", "mlops-dev-prices"]

"""A model's record (pipelines/model_record.py): what the control plane reads when it acts for a model."""

from __future__ import annotations

import json

import pytest

from pipelines.model_record import RECORD_VERSION, ModelRecord, RecordError, parse_record
from pipelines.spec import ModelSpec, load_spec
from tests.conftest import REPO_ROOT


def _record() -> ModelRecord:
    spec = load_spec(REPO_ROOT / "pipelines/churn/model.yaml")
    return ModelRecord(model="churn", env="dev", spec=spec, settings={"ARTIFACT_BUCKET": "b"})


def test_a_record_is_the_per_model_functions_environment():
    environment = _record().environment()
    assert environment["ARTIFACT_BUCKET"] == "b"
    assert ModelSpec.model_validate_json(environment["MODEL_SPEC"]) == _record().spec


def test_a_record_round_trips_through_its_parameter_text():
    text = _record().model_dump_json()
    assert parse_record(text, model="churn", env="dev") == _record()


def test_a_record_of_another_model_or_environment_is_refused():
    text = _record().model_dump_json()
    with pytest.raises(RecordError, match="is churn's in dev"):
        parse_record(text, model="houses", env="dev")
    with pytest.raises(RecordError, match="is churn's in dev"):
        parse_record(text, model="churn", env="prod")


def test_a_newer_record_format_says_to_deploy_the_control_plane_first():
    body = json.loads(_record().model_dump_json()) | {"version": RECORD_VERSION + 1}
    with pytest.raises(RecordError, match="deploy the control plane stack before the model stacks"):
        parse_record(json.dumps(body), model="churn", env="dev")


def test_a_damaged_record_says_to_redeploy():
    with pytest.raises(RecordError, match="not JSON.*redeploy the model's stack"):
        parse_record("{", model="churn", env="dev")


@pytest.mark.parametrize("name", ["registry", "control"])
def test_a_model_may_not_take_an_environment_stacks_name(name, tmp_path):
    from pipelines.spec import SpecError

    raw = (REPO_ROOT / "pipelines/churn/model.yaml").read_text().replace("name: churn", f"name: {name}", 1)
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.yaml").write_text(raw)
    with pytest.raises(SpecError, match="name of an environment stack"):
        load_spec(folder / "model.yaml")


def test_a_model_named_like_another_models_endpoint_is_refused():
    from pipelines.spec import SpecError, check_names_across_models

    fraud = load_spec(REPO_ROOT / "pipelines/churn/model.yaml").model_copy(update={"name": "fraud"})
    check_names_across_models([fraud, fraud.model_copy(update={"name": "fraud-eu"})], ["dev", "prod"])
    for name in ("fraud-dev-prod-eu", "fraud-dev-x", "fraud-dev"):  # fraud-dev's endpoints: fraud-dev-dev-*
        with pytest.raises(SpecError, match=f"{name}: a model name may not hold '-dev-' or end with '-dev'"):
            check_names_across_models([fraud, fraud.model_copy(update={"name": name})], ["dev", "prod"])

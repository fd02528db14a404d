from pathlib import Path

import pytest
import yaml

from pipelines.spec import SpecError, load_all_specs, load_spec, parse_environments, parse_spec

CHURN = Path(__file__).resolve().parents[2] / "pipelines" / "churn" / "model.yaml"


def churn_document() -> dict:
    return yaml.safe_load(CHURN.read_text())


def write_model(tmp_path: Path, document: dict, name: str = "churn") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    path = folder / "model.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_example_spec_is_valid_and_has_defaults():
    spec = load_spec(CHURN)
    assert spec.name == "churn"
    assert spec.training.use_spot is True
    assert spec.training.effective_max_wait_s == 2 * spec.training.max_runtime_s
    assert spec.drift_features == spec.dataset.features


def test_unknown_field_names_file_field_and_fix(tmp_path):
    document = churn_document()
    document["training"]["instance_typo"] = "ml.g5.xlarge"
    path = write_model(tmp_path, document)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    message = str(error.value)
    assert str(path) in message
    assert "training.instance_typo" in message
    assert "fix: remove it or correct its spelling" in message


@pytest.mark.parametrize(("section", "field", "value", "expected"), [
    ("training", "instance_type", "g5.xlarge", "fix: did you mean ml.g5.xlarge"),
    ("deployment", "max_capacity", 0, "greater than or equal to 1"),
    ("objective", "regex", "auc=[0-9.]+", "exactly one group"),
    ("objective", "direction", "up", "'maximize' or 'minimize'"),
    ("approval", "approvers", ["not-an-email"], "fix: list approvers as name@domain"),
    ("drift", "schedule", "every hour", "fix: use 'rate(1 hour)'"),
])
def test_bad_values_are_rejected_with_a_fix(tmp_path, section, field, value, expected):
    document = churn_document()
    document[section][field] = value
    with pytest.raises(SpecError) as error:
        load_spec(write_model(tmp_path, document))
    assert f"{section}.{field}" in str(error.value)
    assert expected in str(error.value)


def test_missing_required_section_is_named(tmp_path):
    document = churn_document()
    del document["objective"]
    with pytest.raises(SpecError, match=r"objective: required field is missing; fix: add it"):
        load_spec(write_model(tmp_path, document))


def test_capacity_bounds_are_cross_checked(tmp_path):
    document = churn_document()
    document["deployment"].update(min_capacity=5, max_capacity=2)
    with pytest.raises(SpecError, match=r"max_capacity \(2\) is below min_capacity \(5\)"):
        load_spec(write_model(tmp_path, document))


def test_spot_wait_must_cover_runtime(tmp_path):
    document = churn_document()
    document["training"].update(max_runtime_s=3600, max_wait_s=600)
    with pytest.raises(SpecError, match="max_wait_s must be >= max_runtime_s"):
        load_spec(write_model(tmp_path, document))


def test_drift_features_must_be_dataset_features(tmp_path):
    document = churn_document()
    document["drift"]["features"] = ["tenure_months", "shoe_size"]
    with pytest.raises(SpecError, match=r"\['shoe_size'\] are not dataset features"):
        load_spec(write_model(tmp_path, document))


@pytest.mark.parametrize("prefix", ["datasets/", "datasets/houses/", "data/churn/", "datasets/churn2/"])
def test_a_models_data_must_lie_under_its_own_datasets_prefix(tmp_path, prefix):
    """The shared validate task, acting for churn, reads datasets/churn/ only (stacks/constructs/pipeline_tasks.py)."""
    document = churn_document()
    document["dataset"]["s3_prefix"] = prefix
    with pytest.raises(SpecError, match=f"dataset.s3_prefix '{prefix}' is outside datasets/churn/"):
        load_spec(write_model(tmp_path, document))
    document["dataset"]["s3_prefix"] = "datasets/churn/2026/"
    (tmp_path / "ok").mkdir()
    assert load_spec(write_model(tmp_path / "ok", document)).dataset.s3_prefix == "datasets/churn/2026/"


def test_folder_and_name_must_agree(tmp_path):
    with pytest.raises(SpecError, match="differs from its folder 'fraud'"):
        load_spec(write_model(tmp_path, churn_document(), name="fraud"))


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    folder = tmp_path / "churn"
    folder.mkdir()
    (folder / "model.yaml").write_text("name: churn\ntraining: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(folder)


def test_environment_overrides_are_deep_merged_and_revalidated():
    spec = parse_spec(churn_document(), "churn", {"deployment": {"max_capacity": 8}, "training": {"use_spot": False}})
    assert spec.deployment.max_capacity == 8
    assert spec.deployment.min_capacity == 1
    assert spec.training.use_spot is False
    with pytest.raises(SpecError, match="deployment.instance_type"):
        parse_spec(churn_document(), "churn", {"deployment": {"instance_type": "m5.large"}})


def test_all_problems_of_all_models_are_reported_together(tmp_path):
    good = churn_document()
    bad = churn_document()
    bad["name"] = "fraud"
    bad["training"]["instance_type"] = "big"
    write_model(tmp_path, good)
    write_model(tmp_path, bad, name="fraud")
    with pytest.raises(SpecError) as error:
        load_all_specs(tmp_path)
    assert "fraud/model.yaml" in str(error.value) and "training.instance_type" in str(error.value)


def test_environments_require_account_and_region():
    environments = parse_environments({"mlops:environments": {"dev": {"account": "111111111111", "region": "eu-west-1"}}})
    assert environments[0].name == "dev"
    with pytest.raises(SpecError, match=r"(?s)mlops:environments.prod.*account.*12-digit"):
        parse_environments({"mlops:environments": {"prod": {"account": "123", "region": "eu-west-1"}}})
    with pytest.raises(SpecError, match="missing or empty"):
        parse_environments({})


def test_objective_comparisons_respect_direction_and_margin():
    spec = parse_spec(churn_document(), "churn", {"objective": {"champion_margin": 0.01}})
    assert spec.objective.beats(0.861, 0.85)
    assert not spec.objective.beats(0.86, 0.85)  # exactly the margin: not strictly better
    assert not spec.objective.beats(0.855, 0.85)
    assert spec.objective.beats(0.5, None)
    low = parse_spec(churn_document(), "churn", {"objective": {"metric": "validation:logloss", "direction": "minimize",
                                                               "minimum": 0.3, "regex": "validation:logloss=([0-9.]+)"}})
    assert low.objective.passes_minimum(0.2) and not low.objective.passes_minimum(0.4)

"""The spec refuses, at synth time, what SageMaker would refuse at run time, and says how to fix it."""

import pytest

from pipelines import instances
from pipelines.spec import SpecError, parse_spec
from tests.unit.test_spec import churn_document


def parse_with(section: str, **values):
    document = churn_document()
    document[section] = {**document.get(section, {}), **values}
    return parse_spec(document, "model.yaml")


@pytest.mark.parametrize(("section", "field", "value", "suggestion"), [
    ("training", "instance_type", "ml.zzz.large", None),
    ("training", "instance_type", "ml.g5.xlarg", "ml.g5.xlarge"),
    ("deployment", "instance_type", "ml.m5.larg", "ml.m5.large"),
    ("deployment", "instance_type", "ml.m9.large", None),
])
def test_instance_types_unknown_to_sagemaker_are_refused_with_the_nearest_names(section, field, value, suggestion):
    with pytest.raises(SpecError) as error:
        parse_with(section, **{field: value})
    message = str(error.value)
    assert f"{section}.{field}" in message and f"'{value}' is not a SageMaker" in message
    if suggestion:
        assert f"did you mean {suggestion}" in message


def test_a_training_only_type_is_refused_for_hosting():
    assert "ml.c5n.xlarge" in instances.known_types("training")
    assert "ml.c5n.xlarge" not in instances.known_types("hosting")
    with pytest.raises(SpecError, match="not a SageMaker hosting instance type"):
        parse_with("deployment", instance_type="ml.c5n.xlarge")


def test_batch_transform_checks_the_type_against_transform_types():
    hosting_only = sorted(instances.known_types("hosting") - instances.known_types("transform"))[0]
    with pytest.raises(SpecError, match="transform instance type"):
        parse_with("deployment", instance_type=hosting_only, batch_transform=True)


@pytest.mark.parametrize(("instance_type", "local"), [
    ("ml.g5.xlarge", True), ("ml.g4dn.xlarge", True), ("ml.p4d.24xlarge", True), ("ml.m5d.large", True),
    ("ml.trn1.2xlarge", True), ("ml.m5.large", False), ("ml.c5.xlarge", False), ("ml.p3.2xlarge", False),
    ("ml.g4ad.xlarge", False),
])
def test_local_nvme_storage_is_known_per_instance_family(instance_type, local):
    assert instances.has_local_storage(instance_type) is local


def test_every_instance_type_sagemaker_accepts_has_a_known_storage_kind():
    unclassified = {instances.family(t) for use in instances.ENUM_SHAPES for t in instances.known_types(use)
                    if instances.family(t) not in instances.LOCAL_STORAGE_FAMILIES | instances.EBS_ONLY_FAMILIES}
    # families botocore lists that the table does not decide are refused by the spec with a fix, never guessed
    for name in unclassified:
        with pytest.raises(ValueError, match="add the family"):
            instances.has_local_storage(f"ml.{name}.xlarge")


@pytest.mark.parametrize(("values", "fix"), [
    ({"min_capacity": 1, "strategy": "canary", "canary_percent": 10}, "raise min_capacity to 10"),
    ({"min_capacity": 1, "strategy": "canary", "canary_percent": 50}, "raise min_capacity to 2"),
    ({"min_capacity": 3, "strategy": "linear", "linear_step_percent": 20}, "raise min_capacity to 5"),
])
def test_canary_and_linear_steps_smaller_than_one_instance_are_refused(values, fix):
    with pytest.raises(SpecError) as error:
        parse_with("deployment", **values)
    assert "less than one instance" in str(error.value) and fix in str(error.value)


def test_linear_steps_below_ten_percent_are_refused():
    with pytest.raises(SpecError, match="linear_step_percent"):
        parse_with("deployment", min_capacity=20, max_capacity=20, strategy="linear", linear_step_percent=5)


@pytest.mark.parametrize("values", [
    {"min_capacity": 2, "strategy": "canary", "canary_percent": 50},
    {"min_capacity": 10, "max_capacity": 10, "strategy": "canary", "canary_percent": 10},
    {"min_capacity": 1, "strategy": "all_at_once"},
])
def test_steps_of_whole_instances_are_accepted(values):
    assert parse_with("deployment", **values).deployment.strategy == values["strategy"]


def test_serverless_with_data_capture_is_refused_with_the_fix():
    with pytest.raises(SpecError) as error:
        parse_with("deployment", serverless={"memory_mb": 2048}, strategy=None)
    assert "do not support data capture" in str(error.value) and "data_capture_percent: 0" in str(error.value)


def test_serverless_with_a_canary_is_refused():
    document = churn_document()
    document["deployment"].update(serverless={"memory_mb": 2048}, data_capture_percent=0, strategy="canary")
    document["drift"] = {"enabled": False}
    with pytest.raises(SpecError, match="shift traffic all at once"):
        parse_spec(document, "model.yaml")


def test_serverless_without_capture_needs_drift_monitoring_off_and_defaults_to_all_at_once():
    document = churn_document()
    document["deployment"].pop("strategy")
    document["deployment"].update(serverless={"memory_mb": 2048}, data_capture_percent=0)
    with pytest.raises(SpecError, match="drift.enabled: false"):
        parse_spec(document, "model.yaml")
    document["drift"] = {"enabled": False}
    assert parse_spec(document, "model.yaml").deployment.strategy == "all_at_once"


def test_approval_reserved_concurrency_is_off_by_default_and_can_be_turned_on():
    assert parse_with("approval").approval.reserved_concurrency is None
    assert parse_with("approval", reserved_concurrency=5).approval.reserved_concurrency == 5

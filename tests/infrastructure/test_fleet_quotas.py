"""How many models each environment's account holds before an AWS quota binds, counted from the synthesized
assembly (stacks/quotas.py; issue 26). Target: 1,000 models per account with IAM roles at 5,000 and every other
quota at its default, 450 at the 1,000-role default. Until the shared control plane lands, the floors below are
today's figures: a change that makes a model cost more of any quota fails here."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from stacks.constructs import functions
from stacks.quotas import QUOTAS, Capacity, capacity, templates_of, usage
from tests.conftest import REPO_ROOT

ROLE_LIMITS = (None, QUOTAS["iam_roles"].maximum)  # the default, and the most AWS grants on request
# (environment, role limit) -> models the account holds today; raise these as the fleet work lands.
FLOORS = {("dev", None): 52, ("dev", 5_000): 150, ("staging", None): 62, ("staging", 5_000): 150,
          ("prod", None): 70, ("prod", 5_000): 356}


def deployed_code_bytes(resource: dict) -> int:
    return functions.bundle_for(resource["Properties"]["Handler"]).zipped_bytes()


@pytest.fixture(scope="module")
def templates(whole_app_templates) -> dict[str, dict]:
    return templates_of(whole_app_templates)


@pytest.mark.slow
@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_each_environments_account_holds_no_fewer_models_than_before(templates, env):
    for limit in ROLE_LIMITS:
        held = capacity(env, templates, deployed_code_bytes, role_limit=limit)
        assert held.models >= FLOORS[(env, limit)], (
            f"{env} (IAM roles at {held.limits['iam_roles']}): {held.models} models, bound by {held.binding}; "
            f"a model adds {dict(held.per_model)}")


def test_a_stack_uses_a_quota_unit_per_counted_resource_and_default_bus_rules_only():
    template = {"Resources": {
        "Role": {"Type": "AWS::IAM::Role"}, "Other": {"Type": "AWS::IAM::Role"},
        "Nightly": {"Type": "AWS::Events::Rule", "Properties": {"ScheduleExpression": "rate(1 day)"}},
        "OnBus": {"Type": "AWS::Events::Rule", "Properties": {"EventBusName": "mlops-fleet"}},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "h"}},
        "Schedule": {"Type": "AWS::Scheduler::Schedule"}}}
    used = usage(template, code_bytes=lambda resource: 7_000_000)
    assert used == {"stacks": 1, "iam_roles": 2, "default_bus_rules": 1, "lambda_code_bytes": 7_000_000, "schedules": 1}


def test_the_binding_quota_is_the_one_that_holds_the_fewest_models():
    held = Capacity("dev", fixed=Counter(iam_roles=100), per_model=Counter(iam_roles=2, default_bus_rules=5),
                    limits={"iam_roles": 1_000, "default_bus_rules": 300, "budgets": 20_000})
    assert held.models_under("iam_roles") == 450 and held.models_under("default_bus_rules") == 60
    assert held.models_under("budgets") is None  # models use none
    assert (held.models, held.binding) == (60, "default_bus_rules")


def test_the_role_limit_applies_to_iam_roles_only(templates):
    at_default = capacity("dev", templates, lambda r: 0)
    raised = capacity("dev", templates, lambda r: 0, role_limit=5_000)
    assert raised.limits == {**at_default.limits, "iam_roles": 5_000}


def test_architecture_md_cites_every_quota_counted():
    doc = (REPO_ROOT / "docs" / "architecture.md").read_text()
    rows = {line for line in doc.splitlines() if line.startswith("| ")}
    for quota in QUOTAS.values():
        default = f"{quota.default:,}" if quota.key != "lambda_code_bytes" else "75 GB"
        assert any(quota.title in row and default in row and quota.source in row for row in rows), \
            f"docs/architecture.md: no quota-table row for {quota.title} ({default}, {quota.source})"
    assert re.search(r"1,000 models per account", doc)

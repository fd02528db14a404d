"""How many models each environment's account holds before an AWS quota binds, counted from the synthesized
assembly (stacks/quotas.py; issue 26). Target: 1,000 models per account with IAM roles at 5,000 and every other
quota at its default, 450 at the 1,000-role default; a model adds at most 2 IAM roles (its SageMaker execution role
and its state machine's), no Lambda function, no rule on the default bus and no managed policy."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from stacks.constructs import functions
from stacks.quotas import QUOTAS, Capacity, capacity, templates_of, usage
from tests.conftest import REPO_ROOT

ROLE_LIMITS = (None, QUOTAS["iam_roles"].maximum)  # the default, and the most AWS grants on request
# (environment, role limit) -> the models an account must hold (issue 26's targets).
FLOORS = {(env, limit): 1_000 if limit else 450 for env in ("dev", "staging", "prod") for limit in ROLE_LIMITS}


def deployed_code_bytes(resource: dict) -> int:
    return functions.bundle_for(resource["Properties"]["Handler"]).zipped_bytes()


@pytest.fixture(scope="module")
def templates(whole_app_templates) -> dict[str, dict]:
    return templates_of(whole_app_templates)


@pytest.mark.slow
@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_each_environments_account_holds_a_thousand_models_with_roles_raised_and_450_without(templates, env):
    for limit in ROLE_LIMITS:
        held = capacity(env, templates, deployed_code_bytes, role_limit=limit)
        assert held.models >= FLOORS[(env, limit)], (
            f"{env} (IAM roles at {held.limits['iam_roles']}): {held.models} models, bound by {held.binding}; "
            f"a model adds {dict(held.per_model)}")


@pytest.mark.slow
@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_a_model_adds_two_roles_and_no_function_default_bus_rule_or_managed_policy(templates, env):
    per_model = capacity(env, templates, deployed_code_bytes).per_model
    assert per_model["iam_roles"] <= 2, dict(per_model)
    assert per_model["lambda_code_bytes"] == 0 and per_model["default_bus_rules"] == 0, dict(per_model)
    assert per_model["managed_policies"] == 0, dict(per_model)


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

"""The runs API reads what `run metrics` and `models list` show, and nothing beyond this model's own."""

import json

import pytest

from tests.infrastructure.conftest import template_of


@pytest.fixture(scope="module")
def runs_role_statements(dev_app) -> list[dict]:
    template = template_of(dev_app, "mlops-dev-churn").to_json()
    roles = [name for name, r in template["Resources"].items()
             if r["Type"] == "AWS::IAM::Role" and name.startswith("RunsApiRunsFunctionRole")]
    policies = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
                and any(ref.get("Ref") in roles for ref in r["Properties"]["Roles"])]
    return [s for policy in policies for s in policy["Properties"]["PolicyDocument"]["Statement"]]


def resources_of(statements: list[dict], action: str) -> list[str]:
    found = [s for s in statements if action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    return [json.dumps(r) for s in found for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]


def test_training_logs_are_readable_only_for_this_models_jobs(runs_role_statements):
    (events,) = resources_of(runs_role_statements, "logs:GetLogEvents")
    assert "log-group:/aws/sagemaker/TrainingJobs:log-stream:churn-*" in events
    (streams,) = resources_of(runs_role_statements, "logs:DescribeLogStreams")
    assert "log-group:/aws/sagemaker/TrainingJobs:*" in streams


def test_serving_is_read_from_this_models_stage_endpoints_only(runs_role_statements):
    described = resources_of(runs_role_statements, "sagemaker:DescribeEndpoint")
    assert len(described) == 6
    assert all("churn-dev-staging" in r or "churn-dev-prod" in r for r in described)
    assert not any(r.endswith(':endpoint/*"') for r in described)


def test_the_runs_api_may_read_only_identity_centers_reserved_role_path(runs_role_statements):
    (roles,) = resources_of(runs_role_statements, "iam:GetRole")
    assert ":role/aws-reserved/sso.amazonaws.com/*" in roles


@pytest.mark.parametrize("role", ["DataScientistRole", "ApproverRole"])
def test_the_person_roles_take_only_the_users_own_name_as_session_name_and_source_identity(dev_app, role):
    template = template_of(dev_app, "mlops-dev-churn").to_json()
    (found,) = [r for name, r in template["Resources"].items()
                if r["Type"] == "AWS::IAM::Role" and name.startswith(f"Access{role}")]
    statements = found["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    pinned = {"StringEquals": {"sts:RoleSessionName": "${aws:username}", "sts:SourceIdentity": "${aws:username}"}}
    assert {json.dumps(s["Action"]) for s in statements} == {'"sts:AssumeRole"', '"sts:SetSourceIdentity"'}
    assert all(s["Condition"] == pinned and s["Effect"] == "Allow" for s in statements)

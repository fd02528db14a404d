"""The control plane stack (stacks/control_stack.py) and the per-model record it reads (issue 26)."""

from __future__ import annotations

import json

import pytest

from pipelines import naming
from pipelines.model_record import STANDARD_TIER_BYTES, parse_record
from stacks.constructs.control_plane import NOT_IN_MODEL_NAMES
from tests.infrastructure.conftest import template_of

# Longer than any ARN or name a Ref/GetAtt/ImportValue of a record resolves to here.
TOKEN_PLACEHOLDER = "x" * 120


@pytest.fixture(scope="module")
def control(dev_app):
    return template_of(dev_app, "mlops-dev-control").to_json()


def _record_text(template: dict) -> str:
    (parameter,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::SSM::Parameter"
                    and r["Properties"]["Name"].startswith(naming.model_records_path("dev"))]
    value = parameter["Value"]
    parts = value["Fn::Join"][1] if isinstance(value, dict) else [value]
    return "".join(part if isinstance(part, str) else TOKEN_PLACEHOLDER for part in parts)


@pytest.mark.parametrize("model", ["churn", "houses"])
def test_each_model_stack_records_what_it_deployed_within_the_free_tier(dev_app, model):
    template = template_of(dev_app, f"mlops-dev-{model}").to_json()
    text = _record_text(template)
    record = parse_record(text.replace(f'"{TOKEN_PLACEHOLDER}"', '"arn"'), model=model, env="dev")
    assert record.spec.name == model and record.settings["MODEL_PACKAGE_GROUP"] == f"{model}-dev"
    assert "MODEL_SPEC" not in record.settings  # the spec is the record's own field, not a string inside it
    assert len(text.encode()) <= STANDARD_TIER_BYTES, f"{model}'s record no longer fits SSM's free Standard tier"
    (parameter,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::SSM::Parameter"
                    and r["Properties"]["Name"] == naming.model_record_parameter(model, "dev")]
    assert parameter["Tier"] == "Intelligent-Tiering" and parameter["Type"] == "String"


def test_model_stacks_deploy_after_the_control_plane_which_deploys_after_the_registry(dev_app):
    control = dev_app.node.find_child("mlops-dev-control")
    registry = dev_app.node.find_child("mlops-dev-registry")
    assert registry in control.dependencies
    assert control in dev_app.node.find_child("mlops-dev-churn").dependencies


def _actions(statement: dict) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def _scoped_roles(template: dict) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role" and "ScopedRole" in k}


# What a scoped session may do on something every model shares, each with its reason in the construct (grant_shared):
# SageMaker List calls (no resource-level permissions) and the environment's one MLflow tracking server.
SHARED_ACTIONS = {"sagemaker:ListModelPackages", "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                  "sagemaker:DescribeMlflowTrackingServer"}


def _shared(action: str) -> bool:
    return action in SHARED_ACTIONS or action.startswith("sagemaker-mlflow:")


def test_every_model_scoped_grant_names_its_resources_or_their_partition_by_the_sessions_model_tag(control):
    roles = _scoped_roles(control)
    assert roles, "the control plane has no model-scoped role"
    for logical, policy in control["Resources"].items():
        if policy["Type"] != "AWS::IAM::Policy" or policy["Properties"]["Roles"][0]["Ref"] not in roles:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if set(_actions(statement)) <= {"kms:CreateGrant", "kms:DescribeKey"}:  # SageMaker's grants, for resources
                assert statement["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}, logical
                continue
            if all(_shared(action) for action in _actions(statement)):
                continue
            if all(action.startswith("kms:") for action in _actions(statement)):
                # the environment's one key, only as a service uses it for the session's own requests or for data
                # whose encryption context names the model's resources
                assert set(statement["Condition"]["StringEquals"]) & {
                    "kms:ViaService", "kms:EncryptionContext:model", "kms:EncryptionContext:aws:states:stateMachineArn"
                }, f"{logical}: {statement['Action']} on the key with no condition"
                continue
            resource = json.dumps(statement["Resource"])
            named_by = resource if naming.MODEL_VARIABLE in resource else json.dumps(statement.get("Condition"))
            assert naming.MODEL_VARIABLE in named_by, f"{logical}: {statement['Action']} on {resource} names no model"


def test_only_its_function_may_take_a_scoped_session_and_only_tagged_with_a_model(control):
    for logical, role in _scoped_roles(control).items():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        stem = logical[:logical.index("ScopedRole")] + "HandlerRole"
        (function_role,) = [k for k, r in control["Resources"].items()
                            if r["Type"] == "AWS::IAM::Role" and k.startswith(stem)]
        assert statement["Principal"] == {"AWS": {"Fn::GetAtt": [function_role, "Arn"]}}
        assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
        assert statement["Condition"] == {"StringLike": {f"aws:RequestTag/{naming.MODEL_TAG}": "?*"},
                                          "StringNotLike": {f"aws:RequestTag/{naming.MODEL_TAG}": NOT_IN_MODEL_NAMES},
                                          "ForAllValues:StringEquals": {"aws:TagKeys": [naming.MODEL_TAG]}}

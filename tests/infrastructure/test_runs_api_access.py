"""The environment's runs API and people's access (stacks/constructs/runs_api.py, access.py), in the control plane:
acting for a model the API reads only what `run metrics` and `models list` show of that model; the people's roles
and policies are the environment's, their model the session tag their trust takes from the user's own tags."""

import json

import pytest

from pipelines import naming
from stacks.constructs.control_plane import NOT_IN_MODEL_NAMES
from tests.infrastructure.conftest import template_of

MODEL = naming.MODEL_VARIABLE


@pytest.fixture(scope="module")
def control(dev_app) -> dict:
    return template_of(dev_app, "mlops-dev-control").to_json()["Resources"]


def _role_statements(resources: dict, prefix: str) -> list[dict]:
    roles = [name for name, r in resources.items() if r["Type"] == "AWS::IAM::Role" and name.startswith(prefix)]
    assert roles, prefix
    policies = [r for r in resources.values() if r["Type"] == "AWS::IAM::Policy"
                and any(ref.get("Ref") in roles for ref in r["Properties"]["Roles"])]
    return [s for policy in policies for s in policy["Properties"]["PolicyDocument"]["Statement"]]


@pytest.fixture(scope="module")
def scoped(control) -> list[dict]:
    return _role_statements(control, "RunsApiFunctionScopedRole")


@pytest.fixture(scope="module")
def own(control) -> list[dict]:
    return _role_statements(control, "RunsApiFunctionHandlerRole")


def resources_of(statements: list[dict], action: str) -> list[str]:
    found = [s for s in statements if action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    return [json.dumps(r) for s in found for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]


def _policy(control: dict, kind: str) -> dict:
    (policy,) = [r["Properties"] for r in control.values() if r["Type"] == "AWS::IAM::ManagedPolicy"
                 and r["Properties"]["ManagedPolicyName"] == naming.person_role("dev", kind)]
    return policy["PolicyDocument"]


def test_training_logs_are_readable_only_for_the_acting_models_jobs(scoped, own):
    (events,) = resources_of(scoped, "logs:GetLogEvents")
    assert f"log-group:/aws/sagemaker/TrainingJobs:log-stream:{MODEL}-*" in events
    (streams,) = resources_of(own, "logs:DescribeLogStreams")  # stream names only, as the function itself
    assert "log-group:/aws/sagemaker/TrainingJobs:*" in streams and not resources_of(own, "logs:GetLogEvents")


def test_serving_is_read_from_the_acting_models_stage_endpoints_only(scoped):
    described = resources_of(scoped, "sagemaker:DescribeEndpoint")
    assert len(described) == 8  # endpoint, its configs, its models, or its inference component; of either stage
    assert all(f"{MODEL}-dev-staging" in r or f"{MODEL}-dev-prod" in r for r in described)


def test_every_model_resource_of_the_scoped_role_names_the_acting_model(scoped):
    for statement in scoped:
        named = json.dumps(statement.get("Resource")) + json.dumps(statement.get("Condition", {}))
        assert MODEL in named or "kms:ViaService" in named, statement


def test_the_runs_api_itself_may_read_only_identity_centers_reserved_role_path_and_decrypt_only_proofs(own, scoped):
    (roles,) = resources_of(own, "iam:GetRole")
    assert ":role/aws-reserved/sso.amazonaws.com/*" in roles
    (decrypt,) = [s for s in own if s["Action"] == "kms:Decrypt"]
    assert decrypt["Condition"] == {"StringEquals": {"kms:EncryptionContext:purpose": naming.RUNS_API_PROOF}}
    assert not resources_of(own, "states:StartExecution") and resources_of(scoped, "states:StartExecution")


def test_one_url_and_one_parameter_for_the_environment(control, dev_app):
    (runs_url,) = [r["Properties"] for r in control.values() if r["Type"] == "AWS::Lambda::Url"
                   and r["Properties"]["TargetFunctionArn"]["Fn::GetAtt"][0].startswith("RunsApi")]
    assert runs_url["AuthType"] == "AWS_IAM"  # the approval page's is the other one (NONE: signed links)
    names = [r["Properties"]["Name"] for r in control.values() if r["Type"] == "AWS::SSM::Parameter"]
    assert naming.env_runs_api_parameter("dev") in names
    model = template_of(dev_app, "mlops-dev-churn").to_json()["Resources"]
    assert not [r for r in model.values() if r["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::Lambda::Url")
                and "RunsApi" in json.dumps(r)]
    assert not [r for r in model.values() if r["Type"] == "AWS::IAM::ManagedPolicy"]
    assert not any(name.startswith(("RunsApi", "Access")) for name in model)


@pytest.mark.parametrize("role", ["DataScientistRole", "ApproverRole"])
def test_the_person_roles_pin_the_person_and_take_the_model_tag_only_from_the_users_own_tags(control, role):
    (found,) = [r for name, r in control.items() if r["Type"] == "AWS::IAM::Role" and name.startswith(f"Access{role}")]
    statements = found["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    pinned = {"StringEquals": {"sts:RoleSessionName": "${aws:username}", "sts:SourceIdentity": "${aws:username}"}}
    by_action = {}
    for statement in statements:
        by_action.setdefault(statement["Action"], []).append(statement)
    assert set(by_action) == {"sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"}
    assert all(s["Condition"] == pinned for action in ("sts:AssumeRole", "sts:SetSourceIdentity") for s in by_action[action])
    tagging = [s["Condition"] for s in by_action["sts:TagSession"]]
    assert [c["StringEquals"] for c in tagging] == [
        {f"aws:RequestTag/{naming.MODEL_TAG}": "${aws:PrincipalTag/" + key + "}"} for key in naming.PERSON_MODEL_TAGS]
    assert all(c["ForAllValues:StringEquals"] == {"aws:TagKeys": [naming.MODEL_TAG]}
               and c["StringNotLike"] == {f"aws:RequestTag/{naming.MODEL_TAG}": NOT_IN_MODEL_NAMES} for c in tagging)


@pytest.mark.parametrize("kind", ["data-scientist", "approver", "platform-admin"])
def test_every_model_resource_of_the_peoples_policies_names_the_sessions_model(control, kind):
    shared = ("lambda:", "ssm:GetParameter", "sagemaker:ListModelPackage", "sagemaker-mlflow:", "sagemaker:DescribeMlflow",
              "sagemaker:CreatePresignedMlflow")
    for statement in _policy(control, kind)["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if all(action.startswith(shared) for action in actions) or "mlflow" in json.dumps(statement):
            continue
        named = json.dumps(statement["Resource"]) + json.dumps(statement.get("Condition", {}))
        assert MODEL in named or "kms:ViaService" in named, statement


@pytest.mark.parametrize("kind", ["data-scientist", "platform-admin"])
def test_the_model_proof_may_be_made_only_for_the_sessions_model_and_the_caller_itself(control, kind):
    (encrypt,) = [s for s in _policy(control, kind)["Statement"] if s["Action"] == "kms:Encrypt"]
    assert encrypt["Condition"] == {"StringEquals": {"kms:EncryptionContext:purpose": naming.RUNS_API_PROOF,
                                                     "kms:EncryptionContext:model": MODEL,
                                                     "kms:EncryptionContext:caller": "${aws:userid}"}}
    assert not [s for s in _policy(control, "approver")["Statement"] if s["Action"] == "kms:Encrypt"]

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


def _on_the_shared_endpoint(statement: dict) -> bool:
    """The shared endpoint itself: placing or calling a component there (each component is granted by model name)."""
    from stacks.constructs.pipeline_tasks import SHARED_ENDPOINT_DEPLOY
    resource = json.dumps(statement["Resource"])
    return resource.endswith(f':endpoint/{naming.shared_endpoint("dev")}"]]}}') and \
        set(_actions(statement)) <= {*SHARED_ENDPOINT_DEPLOY, "sagemaker:InvokeEndpoint"}


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
            if _actions(statement) == ["pricing:GetProducts"]:
                continue  # the public Price List (the approval email's cost table): no model's data
            if _on_the_shared_endpoint(statement):
                continue  # placing or calling a component there; each component is granted by the model's name
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


# ------------------------------------------------------------------ the approval links (one URL, key and table an env)
def _policy_statements(template: dict, role_prefix: str) -> list[dict]:
    return [s for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
            and r["Properties"]["Roles"][0]["Ref"].startswith(role_prefix)
            for s in r["Properties"]["PolicyDocument"]["Statement"]]


def test_the_environment_has_one_approval_url_without_iam_auth_and_no_reserved_concurrency(control):
    (url,) = [r["Properties"] for r in control["Resources"].values() if r["Type"] == "AWS::Lambda::Url"
              and r["Properties"]["TargetFunctionArn"]["Fn::GetAtt"][0].startswith("ApprovalDecideHandler")]
    assert url["AuthType"] == "NONE"  # the runs API's URL is the other one, AWS_IAM (test_runs_api_access.py)
    (decide,) = [r["Properties"] for k, r in control["Resources"].items()
                 if r["Type"] == "AWS::Lambda::Function" and k.startswith("ApprovalDecideHandler")]
    # A new account's concurrency quota is 10 and Lambda keeps all 10 unreserved: any reservation fails the stack.
    assert "ReservedConcurrentExecutions" not in decide
    assert decide["FunctionName"] == naming.control_function("dev", "approval-decide")
    assert set(decide["Environment"]["Variables"]) >= {"SIGNING_SECRET_ARN", "IDEMPOTENCY_TABLE", "MODEL_SCOPED_ROLE_ARN"}
    assert "ApprovalUrl" in control["Outputs"]


def test_the_signing_key_is_the_environments_generated_kms_encrypted_and_rotated(control):
    (secret,) = [r["Properties"] for r in control["Resources"].values() if r["Type"] == "AWS::SecretsManager::Secret"]
    assert secret["Name"] == naming.approval_signing_secret("dev") == "mlops/dev/approval-signing-key"
    assert "KmsKeyId" in secret and secret["GenerateSecretString"]["PasswordLength"] == 64
    (schedule,) = [r["Properties"] for r in control["Resources"].values()
                   if r["Type"] == "AWS::SecretsManager::RotationSchedule"]
    assert schedule["RotationLambdaARN"]["Fn::GetAtt"][0].startswith("ApprovalRotateFunction")
    (table,) = [r["Properties"] for r in control["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    assert table["TableName"] == naming.idempotency_table("dev") and table["SSESpecification"]["SSEEnabled"]


def test_the_approval_functions_own_roles_reach_the_key_and_table_and_no_model(control):
    for prefix in ("ApprovalDecideHandlerRole", "ApprovalRequestHandlerRole"):
        granted = _policy_statements(control, prefix)
        actions = {a for s in granted for a in _actions(s)}
        assert {"secretsmanager:GetSecretValue", "sts:AssumeRole"} <= actions
        assert not {a for a in actions if a.split(":")[0] in ("states", "sagemaker", "sns", "s3", "ssm")}, actions
        assert not [s for s in granted if "Audit" in json.dumps(s["Resource"]) or "audit" in json.dumps(s["Resource"])]
        # the key also encrypts every model's task tokens: the own roles use it only as a service does for them
        assert all(set(s["Condition"]["StringEquals"]) == {"kms:ViaService"}
                   for s in granted if any(a.startswith("kms:") for a in _actions(s)))
    decide_own = {a for s in _policy_statements(control, "ApprovalDecideHandlerRole") for a in _actions(s)}
    request_own = {a for s in _policy_statements(control, "ApprovalRequestHandlerRole") for a in _actions(s)}
    assert "dynamodb:UpdateItem" in decide_own and not {a for a in request_own if a.startswith("dynamodb:")}


def test_acting_for_a_model_the_decide_function_answers_only_that_models_machine_packages_and_rows(control):
    model = naming.MODEL_VARIABLE
    decide = _policy_statements(control, "ApprovalDecideScopedRole")
    callbacks = [s for s in decide if "states:SendTaskSuccess" in _actions(s)]
    assert callbacks and all(f':stateMachine:{model}-dev-retraining"' in json.dumps(s["Resource"]) for s in callbacks)
    updates = [s for s in decide if "sagemaker:UpdateModelPackage" in _actions(s)]
    assert updates and all(f"model-package/{model}-dev/*" in json.dumps(s["Resource"]) for s in updates)
    audits = [s for s in decide if "dynamodb:UpdateItem" in _actions(s)]
    assert audits and all(s["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{model}"]}}
                          for s in audits)
    tokens = [s for s in decide if _actions(s) == ["kms:Decrypt"] and "kms:EncryptionContext:model" in json.dumps(s)]
    assert tokens and tokens[0]["Condition"]["StringEquals"]["kms:EncryptionContext:model"] == model


def test_acting_for_a_model_the_request_function_reaches_only_that_models_rows_packages_release_and_topic(control):
    model = naming.MODEL_VARIABLE
    request = _policy_statements(control, "ApprovalRequestScopedRole")
    by_action = {a: s for s in request for a in _actions(s)}
    assert by_action["dynamodb:PutItem"]["Condition"] == {
        "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{model}"]}}
    assert f"model-package/{model}-dev/*" in json.dumps(by_action["sagemaker:DescribeModelPackage"]["Resource"])
    assert f"/releases/{model}/*" in json.dumps(by_action["s3:GetObject"]["Resource"])
    assert f':{model}-dev-approvals"' in json.dumps(by_action["sns:Publish"]["Resource"])
    assert by_action["kms:Encrypt"]["Condition"]["StringEquals"] == {
        "kms:EncryptionContext:purpose": "approval-task-token", "kms:EncryptionContext:model": model}
    assert by_action["pricing:GetProducts"]["Resource"] == "*"  # the public Price List: no model's data


def test_a_model_spec_cannot_reserve_the_environments_approval_concurrency_alone():
    import aws_cdk as cdk
    from aws_cdk import aws_kms as kms, aws_stepfunctions as sfn

    from pipelines.spec import parse_spec
    from stacks.constructs.approval import ApprovalHook
    from tests.integration.conftest import SPEC

    stack = cdk.Stack(cdk.App(), "s")
    spec = parse_spec(json.loads(SPEC.model_dump_json()), "dev", {"approval": {"reserved_concurrency": 3}})
    with pytest.raises(ValueError, match="overrides, not in one model's spec"):
        ApprovalHook(stack, "Approval", spec=spec, env_name="dev", key=kms.Key(stack, "K"),
                     on_rejected=sfn.Pass(stack, "P"))

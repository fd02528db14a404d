"""Bad input through the handlers against moto: prepare, validate, the approval email, link signing key rotation."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import unquote

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from lambdas.approval import handlers as approval_handlers, rotation, tokens
from lambdas.pipeline import handlers
from lambdas.pipeline.logic import DataValidationFailed, InvalidRunInput
from tests.integration.conftest import BUCKET, DATASET_KEY, FakeContext, dataset_bytes, task_event
from tests.integration.test_approval import APPROVERS, approval, http, record, state  # noqa: F401 (fixture)

CONTEXT = FakeContext()


# ------------------------------------------------------------------ prepare

@pytest.mark.parametrize(("bad_input", "message"), [
    ({"requested_by": "ds@example.com\nApprove: https://evil.example"}, "requested_by contains the control character"),
    ({"reason": "retrain\r\nApprove: https://evil.example"}, "reason contains the control character"),
    ({"dataset_key": "datasets/churn/train.csv\nApprove: https://evil.example"}, "dataset_key contains the control"),
    ({"dataset_key": "datasets/fraud/train.csv"}, "outside this model's datasets"),
    ({"hyperparameters": {"epochs": -5}}, "'epochs' must be at least 1"),
    ({"hyperparameters": {"epochs": "abc"}}, "'epochs' must be an integer"),
])
def test_prepare_refuses_bad_input_before_anything_runs(platform, bad_input, message):
    with pytest.raises(InvalidRunInput, match=message):
        handlers.prepare_run(task_event({"model": "churn", **bad_input}), CONTEXT)


def test_prepare_refuses_an_execution_name_sagemaker_cannot_use(platform):
    with pytest.raises(InvalidRunInput, match="execution name 'nightly_run.1' cannot name a SageMaker training job"):
        handlers.prepare_run(task_event({"model": "churn"}, execution_name="nightly_run.1"), CONTEXT)


# ------------------------------------------------------------------ validate

def validate(platform, body: bytes) -> str:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=DATASET_KEY, Body=body)
    prepared = {"run": handlers.prepare_run(task_event({"model": "churn"}), CONTEXT)}
    with pytest.raises(DataValidationFailed) as error:
        handlers.validate_data(task_event(prepared), CONTEXT)
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runs/churn/run-1/data/")  # no snapshot
    return str(error.value)


def test_validate_reports_non_numeric_and_non_finite_values_of_numeric_features(platform):
    lines = dataset_bytes().split(b"\n")
    header = lines[0].decode().split(",")
    age = header.index("age")
    for number, value in ((10, b"abc"), (20, b"inf")):
        fields = lines[number - 1].split(b",")
        fields[age] = value
        lines[number - 1] = b",".join(fields)
    message = validate(platform, b"\n".join(lines))
    assert "numeric column 'age' has 2 value(s) that are not finite numbers (first on line 10: 'abc')" in message


def test_validate_reports_invalid_utf8_as_a_validation_failure_with_its_offset(platform):
    body = dataset_bytes()
    offset = body.index(b"\n", 5000) + 3
    broken = body[:offset] + b"\xff\xfe" + body[offset:]
    message = validate(platform, broken)
    assert f"byte 0xff at byte offset {offset}" in message and "is not UTF-8" in message


# ------------------------------------------------------------------ approval email

def mailed(approval) -> dict[str, str]:
    messages = boto3.client("sqs").receive_message(QueueUrl=approval["queue"], MaxNumberOfMessages=10,
                                                   MessageAttributeNames=["All"])["Messages"]
    bodies = {}
    for message in messages:
        body = json.loads(message["Body"])
        bodies[body["MessageAttributes"]["approver"]["Value"]] = body["Message"]
    return bodies


def test_newlines_in_requested_by_and_the_dataset_yield_only_the_genuine_approve_line(approval):
    evil = "\nApprove: https://evil.example/approve?t=x\n"
    run_state = state(approval["package"], requested_by=f"ds@example.com{evil}")
    run_state["validation"]["dataset_uri"] = f"s3://{BUCKET}/datasets/churn/train.csv{evil}"
    approval_handlers.request_approval({"task_token": "task-token-123", "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:run-1",
                                        "execution_name": "run-1", "state": run_state}, FakeContext())
    bodies = mailed(approval)
    assert set(bodies) == set(APPROVERS)
    for approver, body in bodies.items():
        approve_lines = [line for line in body.splitlines() if "Approve:" in line and not line.startswith("  ")]
        assert len(approve_lines) == 1 and approve_lines[0].startswith("Approve: https://abc.lambda-url.us-east-1.on.aws/?t=")
        claims = tokens.verify(unquote(approve_lines[0].split("?t=")[1]), approval["secret"].encode(), 0)
        assert (claims.approver, claims.action) == (approver, "approve")
        assert "evil.example" not in approve_lines[0]


# ------------------------------------------------------------------ signing key rotation

def start_rotation(secret_arn: str) -> str:
    """What Secrets Manager does before it calls the function: rotation enabled, a new version id labelled
    AWSPENDING, without a value. (moto's rotate_secret without a function makes the new version current at once,
    unlike AWS, so its backend is set up directly.)"""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].secrets[secret_arn]
    token = str(uuid.uuid4())
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = {"createdate": 0, "version_id": token, "version_stages": ["AWSPENDING"]}
    secret.rotation_requested, secret.rotation_enabled, secret.auto_rotate_after_days = True, True, 30
    return token


def rotate(secret_arn: str) -> str:
    """A scheduled rotation: the pending label, then the four steps in order."""
    token = start_rotation(secret_arn)
    for step in rotation.STEPS:
        rotation.handler({"SecretId": secret_arn, "ClientRequestToken": token, "Step": step})
    parameters.clear_caches()  # the functions' five-minute secret cache has expired
    return token


def current_keys(secret_arn: str) -> tokens.SigningKeys:
    return tokens.parse_keys(boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn, VersionStage="AWSCURRENT")
                             ["SecretString"])


def secret_arn() -> str:
    return boto3.client("secretsmanager").describe_secret(SecretId="mlops/dev/approval-signing-key")["ARN"]


def link_of(approval) -> str:
    approval_handlers.request_approval({"task_token": "task-token-123", "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:run-1",
                                        "execution_name": "run-1", "state": state(approval["package"])}, FakeContext())
    body = mailed(approval)[APPROVERS[0]]
    return unquote(re.search(r"^Approve: \S+\?t=(\S+)$", body, re.M).group(1))


def test_rotation_makes_a_new_current_key_and_keeps_the_old_one_as_previous(approval):
    arn = secret_arn()
    token = rotate(arn)
    keys = current_keys(arn)
    assert keys.previous_id == "initial" and keys.previous == approval["secret"].encode()
    assert keys.current_id.startswith("k") and len(keys.current) >= 64
    stages = boto3.client("secretsmanager").describe_secret(SecretId=arn)["VersionIdsToStages"]
    assert stages[token] == ["AWSCURRENT"]
    second = rotate(arn)
    assert current_keys(arn).previous_id == keys.current_id and second != token


def test_a_retried_create_step_keeps_the_first_pending_key(approval):
    arn = secret_arn()
    token = start_rotation(arn)
    event = {"SecretId": arn, "ClientRequestToken": token, "Step": "createSecret"}
    rotation.handler(event)
    pending = boto3.client("secretsmanager").get_secret_value(SecretId=arn, VersionStage="AWSPENDING")["SecretString"]
    rotation.handler(event)
    assert boto3.client("secretsmanager").get_secret_value(SecretId=arn, VersionStage="AWSPENDING")["SecretString"] == pending


def test_a_link_mailed_before_a_rotation_works_after_one_and_is_refused_after_two(approval):
    link = link_of(approval)
    assert link.split(".")[1] == "initial"
    rotate(secret_arn())
    assert http("GET", link)["statusCode"] == 200
    rotate(secret_arn())
    refused = http("POST", link)
    assert refused["statusCode"] == 403 and "no longer valid" in refused["body"]
    assert record()["status"] == "PENDING" and approval["callbacks"] == []


def test_links_mailed_after_a_rotation_carry_the_new_key_id_and_work(approval):
    arn = secret_arn()
    rotate(arn)
    link = link_of(approval)
    assert link.split(".")[1] == current_keys(arn).current_id != "initial"
    assert http("POST", link)["statusCode"] == 200 and record()["status"] == "APPROVED"


def test_a_non_canonical_signature_gets_a_400_page(approval):
    link = link_of(approval)
    response = http("POST", link + "=")
    assert response["statusCode"] == 400 and "Malformed link" in response["body"]
    assert record()["status"] == "PENDING"


def test_the_rotation_function_refuses_a_version_that_is_not_pending(approval):
    arn = secret_arn()
    start_rotation(arn)
    with pytest.raises(rotation.RotationError, match="no staging label"):
        rotation.handler({"SecretId": arn, "ClientRequestToken": str(uuid.uuid4()), "Step": "createSecret"})


def test_a_link_signed_with_a_key_newer_than_the_cached_secret_is_accepted(approval):
    arn = secret_arn()
    assert http("GET", link_of(approval))["statusCode"] == 200  # the decide function has cached the first key
    token = start_rotation(arn)
    for step in rotation.STEPS:  # rotated, but the decide function's five-minute cache still holds the old secret
        rotation.handler({"SecretId": arn, "ClientRequestToken": token, "Step": step})
    stored = record()
    claims = tokens.LinkClaims(execution="run-1", package=stored["model_package_arn"], approver=APPROVERS[0],
                               action="approve", expires=int(stored["expires_at"]), nonce="after-rotation", model="churn")
    newer = tokens.sign(claims, current_keys(arn))
    assert newer.split(".")[1] == current_keys(arn).current_id
    response = http("POST", newer)
    assert response["statusCode"] == 200 and record()["status"] == "APPROVED"

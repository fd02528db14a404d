"""The environment's approval request and approval page act for one model at a time (issue 26), under enforced IAM
with the roles the CDK synthesizes: acting for churn they reach churn's approval rows, packages, released artifacts,
task tokens and approvers' topic and are denied houses'; a link signed for churn cannot decide a houses run; the
functions' own roles read the environment's signing key and keep its table, and reach no model."""

from __future__ import annotations

import json
import time
from urllib.parse import unquote, urlencode

import boto3
import pytest

from lambdas.approval import tokens
from lambdas.shared.sessions import new_session
from pipelines import naming
from pipelines.model_record import ModelRecord
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT
from tests.integration.conftest import LOCAL_ACCOUNT, LOCAL_REGION, denied, released_package, scoped_session

pytestmark = pytest.mark.slow

REQUEST, DECIDE = "ApprovalRequestHandler", "ApprovalDecideHandler"
BUCKET = naming.artifact_bucket("local", LOCAL_ACCOUNT, LOCAL_REGION)
AUDIT = naming.audit_table("local")
ARN = f"arn:aws:{{}}:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{{}}"
APPROVERS = ["ml-lead@example.com", "risk-officer@example.com"]


def _execution(model: str, name: str = "run-1") -> str:
    return ARN.format("states", f"execution:{naming.state_machine(model, 'local')}:{name}")


def _acting_for(function, model: str) -> boto3.Session:
    credentials = function.credentials.session(LOCAL_REGION).client("sts").assume_role(
        RoleArn=function.environment["MODEL_SCOPED_ROLE_ARN"], RoleSessionName=model, DurationSeconds=900,
        Tags=[{"Key": naming.MODEL_TAG, "Value": model}])["Credentials"]
    return new_session(aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                       aws_session_token=credentials["SessionToken"], region_name=LOCAL_REGION)


def _own(function) -> boto3.Session:
    return function.credentials.session(LOCAL_REGION)




def _houses() -> str:
    """What deploying houses leaves in the environment: its record, package group, approvers' topic and a released
    package; returns the package."""
    spec = load_spec(REPO_ROOT / "pipelines/houses/model.yaml")
    record = ModelRecord(model="houses", env="local", spec=spec, settings={
        "AUDIT_TABLE": AUDIT, "MODEL_PACKAGE_GROUP": "houses-local", "STATE_MACHINE_ARN":
        ARN.format("states", f"stateMachine:{naming.state_machine('houses', 'local')}")})
    boto3.client("ssm").put_parameter(Name=naming.model_record_parameter("houses", "local"),
                                      Value=record.model_dump_json(), Type="String")
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="houses-local")
    boto3.client("sns").create_topic(Name=naming.approval_topic("houses", "local"))
    release = naming.release_key("houses", "ab" * 32)  # only the key matters: reaching it is what is refused
    return sagemaker.create_model_package(
        ModelPackageGroupName="houses-local", ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/{release}"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]


def _release_writer(provisioned, model: str = "churn") -> boto3.Session:
    """The session that releases the model's artifacts: the register task acting for the model (the bucket policy lets
    no other role write releases/, the admin driver included)."""
    return scoped_session(provisioned.function_named("PipelineTasksRegister"), model)


def _pending(model: str, execution: str, package: str) -> None:
    """A PENDING approval request of `model` (as its request function stores one), written by the admin driver."""
    boto3.resource("dynamodb").Table(AUDIT).put_item(Item={
        "pk": f"model#{model}", "sk": f"approval#{execution}", "status": "PENDING", "model": model,
        "model_package_arn": package, "approvers": APPROVERS, "requested_by": "ds@example.com",
        "expires_at": int(time.time()) + 3600, "summary": "-", "task_token": "x"})


def _row(model: str, execution: str) -> dict:
    return boto3.resource("dynamodb").Table(AUDIT).get_item(Key={"pk": f"model#{model}", "sk": f"approval#{execution}"})["Item"]


def _signed(claims: tokens.LinkClaims) -> str:
    """A link signed with the environment's key (read by the admin driver)."""
    arn = boto3.client("secretsmanager").describe_secret(SecretId=naming.approval_signing_secret("local"))["ARN"]
    return tokens.sign(claims, boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def _http(decide, method: str, token: str, ip: str = "203.0.113.9") -> dict:
    body = urlencode({"t": token, "reason": "ok"}) if method == "POST" else None
    return decide.call({
        "version": "2.0", "rawPath": "/", "rawQueryString": "" if body else urlencode({"t": token}),
        "queryStringParameters": None if body else {"t": token},
        "headers": {"content-type": "application/x-www-form-urlencoded"}, "body": body, "isBase64Encoded": False,
        "requestContext": {"http": {"method": method, "path": "/", "protocol": "HTTP/1.1", "sourceIp": ip,
                                    "userAgent": "Mozilla/5.0"}, "requestId": "r", "routeKey": "$default",
                           "stage": "$default", "accountId": LOCAL_ACCOUNT, "apiId": "abc", "domainName": "x",
                           "domainPrefix": "x", "time": "t", "timeEpoch": 0}}, {})


@pytest.fixture
def gate(enforced_platform):
    provisioned = enforced_platform()
    return {"request": provisioned.function_named(REQUEST), "decide": provisioned.function_named(DECIDE),
            "houses_package": _houses(), "churn_package": released_package(
                "churn-local", b"churn weights", bucket=BUCKET, model="churn", session=_release_writer(provisioned))}


def _state(package: str) -> dict:
    return {"run": {"model": "churn", "git_commit": "abc1234", "requested_by": "ds@example.com", "trigger": "manual",
                    "execution_arn": _execution("churn"), "hyperparameters": {"epochs": "4"}},
            "validation": {"dataset_uri": f"s3://{BUCKET}/datasets/churn/train.csv", "version_id": "v1", "sha256": "f" * 64},
            "evaluation": {"metrics": {"validation:auc": 0.81}, "reason": "first model", "champion_arn": None,
                           "objective": "validation:auc", "value": 0.81, "promote": True},
            "registration": {"model_package_arn": package, "version": 1}}


def _inbox(model: str) -> str:
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName=f"inbox-{model}-approvals")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=ARN.format("sns", naming.approval_topic(model, "local")), Protocol="sqs",
                                  Endpoint=arn)
    return queue


def test_the_request_acting_for_churns_run_records_churns_request_and_mails_links_the_page_accepts(gate):
    inbox = _inbox("churn")
    assert gate["request"].call({"execution_arn": _execution("churn"), "execution_name": "run-1",
                                 "state": _state(gate["churn_package"]), "task_token": "token"}, {}) == {"requested": 2}
    stored = _row("churn", "run-1")
    assert stored["status"] == "PENDING" and stored["model_package_arn"] == gate["churn_package"]
    assert stored["artifact_sha256"] and stored["task_token"] != "token"  # bound to the bytes; the token encrypted
    messages = boto3.client("sqs").receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)["Messages"]
    bodies = [json.loads(m["Body"])["Message"] for m in messages]
    link = next(line.split("?t=")[1] for body in bodies for line in body.splitlines() if line.startswith("Approve: "))
    claims = tokens.verify(unquote(link), boto3.client("secretsmanager").get_secret_value(
        SecretId=naming.approval_signing_secret("local"))["SecretString"], int(time.time()))
    assert (claims.model, claims.execution, claims.package) == ("churn", "run-1", gate["churn_package"])
    page = _http(gate["decide"], "GET", unquote(link))
    assert page["statusCode"] == 200 and "Review churn" in page["body"]  # read acting for churn, under its grants
    assert _row("churn", "run-1")["status"] == "PENDING"  # GET changes nothing


def test_a_request_for_an_execution_of_no_retraining_machine_is_refused_before_any_session(gate):
    from lambdas.shared.tenancy import NotAModelExecution

    with pytest.raises(NotAModelExecution):
        gate["request"].call({"execution_arn": ARN.format("states", "execution:other-machine:run-1"),
                              "execution_name": "run-1", "state": _state(gate["churn_package"]), "task_token": "t"}, {})


def test_acting_for_churn_the_request_reaches_churns_rows_packages_release_tokens_and_topic_only(gate):
    churn = _acting_for(gate["request"], "churn")
    dynamodb, sagemaker, kms, s3, sns = (churn.client(s) for s in ("dynamodb", "sagemaker", "kms", "s3", "sns"))
    item = lambda model: {"pk": {"S": f"model#{model}"}, "sk": {"S": "approval#r"}}  # noqa: E731
    dynamodb.put_item(TableName=AUDIT, Item=item("churn"))
    assert "dynamodb:PutItem" in denied(lambda: dynamodb.put_item(TableName=AUDIT, Item=item("houses")))
    sagemaker.describe_model_package(ModelPackageName=gate["churn_package"])
    denied(lambda: sagemaker.describe_model_package(ModelPackageName=gate["houses_package"]))
    churn_release = sagemaker.describe_model_package(ModelPackageName=gate["churn_package"])[
        "InferenceSpecification"]["Containers"][0]["ModelDataUrl"].split(f"{BUCKET}/", 1)[1]
    s3.head_object(Bucket=BUCKET, Key=churn_release)
    houses_release = boto3.client("sagemaker").describe_model_package(ModelPackageName=gate["houses_package"])[
        "InferenceSpecification"]["Containers"][0]["ModelDataUrl"].split(f"{BUCKET}/", 1)[1]
    denied(lambda: s3.get_object(Bucket=BUCKET, Key=houses_release))
    key = gate["request"].environment["KMS_KEY_ARN"]
    context = {"model": "churn", "execution": "r", "purpose": "approval-task-token"}
    kms.encrypt(KeyId=key, Plaintext=b"t", EncryptionContext=context)
    assert "kms:Encrypt" in denied(lambda: kms.encrypt(KeyId=key, Plaintext=b"t",
                                                        EncryptionContext={**context, "model": "houses"}))
    sns.publish(TopicArn=ARN.format("sns", naming.approval_topic("churn", "local")), Message="m")
    denied(lambda: sns.publish(TopicArn=ARN.format("sns", naming.approval_topic("houses", "local")), Message="m"))


def test_acting_for_churn_the_page_reads_decides_and_answers_only_churns(gate):
    churn = _acting_for(gate["decide"], "churn")
    dynamodb, sagemaker, kms = churn.client("dynamodb"), churn.client("sagemaker"), churn.client("kms")
    _pending("churn", "run-1", gate["churn_package"])
    _pending("houses", "run-h", gate["houses_package"])
    key = lambda model, run: {"pk": {"S": f"model#{model}"}, "sk": {"S": f"approval#{run}"}}  # noqa: E731
    assert dynamodb.get_item(TableName=AUDIT, Key=key("churn", "run-1"))["Item"]["status"]["S"] == "PENDING"
    assert "dynamodb:GetItem" in denied(lambda: dynamodb.get_item(TableName=AUDIT, Key=key("houses", "run-h")))
    denied(lambda: dynamodb.update_item(TableName=AUDIT, Key=key("houses", "run-h"), UpdateExpression="SET #s = :s",
                                         ExpressionAttributeNames={"#s": "status"},
                                         ExpressionAttributeValues={":s": {"S": "APPROVED"}}))
    denied(lambda: sagemaker.update_model_package(ModelPackageArn=gate["houses_package"], ModelApprovalStatus="Approved"))
    denied(lambda: churn.client("stepfunctions").describe_execution(executionArn=_execution("houses")))
    context = {"model": "houses", "execution": "run-h", "purpose": "approval-task-token"}
    houses_token = boto3.client("kms").encrypt(KeyId=gate["decide"].environment["KMS_KEY_ARN"], Plaintext=b"t",
                                               EncryptionContext=context)["CiphertextBlob"]
    assert "kms:Decrypt" in denied(lambda: kms.decrypt(CiphertextBlob=houses_token, EncryptionContext=context))


def test_a_link_signed_for_churn_cannot_decide_or_show_a_houses_run(gate):
    _pending("houses", "run-h", gate["houses_package"])
    claims = tokens.LinkClaims("run-h", gate["houses_package"], APPROVERS[0], "approve", int(time.time()) + 3600, "n",
                               model="churn")
    for method in ("GET", "POST"):  # the page acts for churn, whose rows hold no such request
        refused = _http(gate["decide"], method, _signed(claims))
        assert refused["statusCode"] == 404 and "No approval request matches this link" in refused["body"]
    # the model claim changed to houses: the signature no longer holds
    version, key_id, payload, signature = _signed(claims).split(".")
    swapped = json.loads(tokens._unb64(payload)) | {"model": "houses"}
    forged = ".".join([version, key_id, tokens._b64(json.dumps(swapped).encode()), signature])
    assert _http(gate["decide"], "POST", forged)["statusCode"] == 403
    assert _row("houses", "run-h")["status"] == "PENDING"
    assert boto3.client("sagemaker").describe_model_package(
        ModelPackageName=gate["houses_package"])["ModelApprovalStatus"] == "PendingManualApproval"


def test_a_link_naming_no_model_or_a_model_not_deployed_here_is_refused(gate):
    base = tokens.LinkClaims("run-1", gate["churn_package"], APPROVERS[0], "approve", int(time.time()) + 3600, "n")
    assert _http(gate["decide"], "GET", _signed(base))["statusCode"] == 400  # no model claim: a link of before the move
    for model in ("houses/x", "ghost"):
        response = _http(gate["decide"], "GET", _signed(tokens.LinkClaims(**{**base.__dict__, "model": model})))
        assert response["statusCode"] in (400, 404), (model, response["statusCode"])


def test_one_models_approvers_cannot_spend_another_models_per_address_budget(gate):
    """Counters are per model and client address: churn's approvers behind one address exhausting churn's budget
    leave houses' approvers behind that same address theirs; links that do not verify count apart."""
    from lambdas.approval import logic

    _pending("churn", "run-1", gate["churn_package"])
    _pending("houses", "run-h", gate["houses_package"])
    churn_link = _signed(tokens.LinkClaims("run-1", gate["churn_package"], APPROVERS[0], "approve",
                                           int(time.time()) + 3600, "n", model="churn"))
    houses_link = _signed(tokens.LinkClaims("run-h", gate["houses_package"], APPROVERS[0], "approve",
                                            int(time.time()) + 3600, "n", model="houses"))
    budget = load_spec(REPO_ROOT / "pipelines/churn/model.yaml").approval.max_link_requests_per_minute
    limiter = boto3.resource("dynamodb").Table(naming.idempotency_table("local"))
    key, _ = logic.rate_limit_key("198.51.100.7", int(time.time()), "churn")
    limiter.put_item(Item={"id": key, "requests": budget, "expiration": int(time.time()) + 120})  # churn's budget spent
    throttled = _http(gate["decide"], "GET", churn_link, ip="198.51.100.7")
    assert throttled["statusCode"] == 429 and throttled["headers"]["Retry-After"] == "60"
    assert _http(gate["decide"], "GET", houses_link, ip="198.51.100.7")["statusCode"] == 200
    unverified, _ = logic.rate_limit_key("198.51.100.7", int(time.time()))
    limiter.put_item(Item={"id": unverified, "requests": 10_000, "expiration": int(time.time()) + 120})
    assert _http(gate["decide"], "GET", "v2.initial.garbage.sig", ip="198.51.100.7")["statusCode"] == 429
    assert _http(gate["decide"], "GET", houses_link, ip="198.51.100.7")["statusCode"] == 200


def test_the_functions_own_roles_read_the_environments_key_and_reach_no_model(gate):
    for function in (gate["request"], gate["decide"]):
        own = _own(function)
        assert own.client("secretsmanager").get_secret_value(SecretId=naming.approval_signing_secret("local"))
        dynamodb = own.client("dynamodb")
        denied(lambda: dynamodb.get_item(TableName=AUDIT, Key={"pk": {"S": "model#churn"}, "sk": {"S": "approval#r"}}))
        denied(lambda: dynamodb.put_item(TableName=AUDIT, Item={"pk": {"S": "model#churn"}, "sk": {"S": "approval#r"}}))
        denied(lambda: own.client("sagemaker").describe_model_package(ModelPackageName=gate["churn_package"]))
        denied(lambda: own.client("sagemaker").update_model_package(ModelPackageArn=gate["churn_package"],
                                                                     ModelApprovalStatus="Approved"))
        denied(lambda: own.client("sns").publish(TopicArn=ARN.format("sns", naming.approval_topic("churn", "local")),
                                                  Message="m"))
        denied(lambda: own.client("kms").encrypt(KeyId=function.environment["KMS_KEY_ARN"], Plaintext=b"t",
                                                  EncryptionContext={"model": "churn", "execution": "r",
                                                                     "purpose": "approval-task-token"}))
        denied(lambda: own.client("stepfunctions").describe_execution(executionArn=_execution("churn")))

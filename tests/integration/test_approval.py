import json
import re
import time
from urllib.parse import unquote, urlencode

import boto3
import pytest

from lambdas.approval import handlers, tokens
from lambdas.shared import dal, tenancy
from tests.integration.conftest import (BUCKET, FakeContext, act_as_control_plane, move_the_shells_region,
                                        released_package)

APPROVERS = ["ml-lead@example.com", "risk-officer@example.com"]


@pytest.fixture
def approval(platform, monkeypatch):
    dynamodb = boto3.client("dynamodb")
    for name, keys in (("mlops-dev-audit", [("pk", "HASH"), ("sk", "RANGE")]), ("mlops-dev-idempotency", [("id", "HASH")])):
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
                              AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys])
    key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    secret = boto3.client("secretsmanager").create_secret(Name="mlops/dev/approval-signing-key",
                                                          SecretString="k" * 64)["ARN"]
    topic = boto3.client("sns").create_topic(Name="churn-dev-approvals")["TopicArn"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="approver-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"})
    package = released_package()
    for name, value in {"AUDIT_TABLE": "mlops-dev-audit", "IDEMPOTENCY_TABLE": "mlops-dev-idempotency", "KMS_KEY_ARN": key,
                        "SIGNING_SECRET_ARN": secret, "APPROVAL_TOPIC_ARN": topic,
                        "APPROVAL_URL": "https://abc.lambda-url.us-east-1.on.aws/"}.items():
        monkeypatch.setenv(name, value)
    act_as_control_plane(monkeypatch)  # the environment's request and decide functions, acting for churn
    callbacks = []

    def record_callbacks(session):
        for operation in ("SendTaskSuccess", "SendTaskFailure"):
            session.events.register(
                f"provide-client-params.sfn.{operation}",
                lambda params, event_name, **kw: callbacks.append((event_name.rsplit(".", 1)[-1], dict(params))))
        return session

    boto3.setup_default_session()
    record_callbacks(boto3.DEFAULT_SESSION)  # the CLI's path answers with the caller's own session
    scoped = tenancy.scoped_session  # the decide function answers with the session acting for the model
    monkeypatch.setattr(tenancy, "scoped_session", lambda model: record_callbacks(scoped(model)))
    return {"package": package, "queue": queue, "callbacks": callbacks, "secret": "k" * 64,
            "machine": platform["state_machine"]}


def state(package: str, requested_by: str = "ds@example.com") -> dict:
    return {"run": {"model": "churn", "git_commit": "abc1234", "requested_by": requested_by, "trigger": "manual",
                    "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:run-1",
                    "hyperparameters": {"epochs": "4", "sagemaker_program": '"train.py"'}},
            "validation": {"dataset_uri": f"s3://{BUCKET}/datasets/churn/train.csv", "version_id": "v1", "sha256": "f" * 64},
            "evaluation": {"metrics": {"validation:auc": 0.81}, "reason": "validation:auc=0.8100 (no approved champion yet)",
                           "champion_arn": None, "objective": "validation:auc", "value": 0.81, "promote": True},
            "registration": {"model_package_arn": package, "version": 1}}


def request(approval, requested_by: str = "ds@example.com", **evaluation) -> dict[str, dict[str, str]]:
    document = state(approval["package"], requested_by)
    document["evaluation"].update(evaluation)
    event = {"task_token": "task-token-123", "execution_name": "run-1",
             "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:run-1",
             "state": document}
    handlers.request_approval(event, FakeContext())
    messages = boto3.client("sqs").receive_message(QueueUrl=approval["queue"], MaxNumberOfMessages=10,
                                                   MessageAttributeNames=["All"])["Messages"]
    links = {}
    for message in messages:
        body = json.loads(message["Body"])
        approver = body["MessageAttributes"]["approver"]["Value"]
        found = dict(re.findall(r"^(Approve|Reject):\s+(\S+)$", body["Message"], re.M))
        links[approver] = {k.lower(): unquote(v.split("?t=")[1]) for k, v in found.items()}
        links[approver]["message"] = body["Message"]
    return links


def http(method: str, token: str, reason: str = "", ip: str = "203.0.113.9") -> dict:
    body = urlencode({"t": token, "reason": reason}) if method == "POST" else None
    event = {"version": "2.0", "rawPath": "/", "rawQueryString": "" if body else urlencode({"t": token}),
             "queryStringParameters": None if body else {"t": token},
             "headers": {"content-type": "application/x-www-form-urlencoded"}, "body": body, "isBase64Encoded": False,
             "requestContext": {"http": {"method": method, "path": "/", "protocol": "HTTP/1.1", "sourceIp": ip,
                                         "userAgent": "Mozilla/5.0"}, "requestId": "r", "routeKey": "$default",
                                "stage": "$default", "accountId": "123456789012", "apiId": "abc", "domainName": "x",
                                "domainPrefix": "x", "time": "t", "timeEpoch": 0}}
    return handlers.decide_handler(event, FakeContext())


def record():
    return dal.ApprovalStore("mlops-dev-audit").get("churn", "run-1")


def package_status(approval) -> str:
    return boto3.client("sagemaker").describe_model_package(ModelPackageName=approval["package"])["ModelApprovalStatus"]


def test_request_stores_the_token_encrypted_and_mails_each_approver_their_own_links(approval):
    links = request(approval)
    assert set(links) == set(APPROVERS)
    assert links[APPROVERS[0]]["approve"] != links[APPROVERS[1]]["approve"]
    assert "validation:auc" in links[APPROVERS[0]]["message"] and "git commit:       abc1234" in links[APPROVERS[0]]["message"]
    stored = record()
    assert stored["status"] == "PENDING" and stored["task_token"] != "task-token-123"


def test_opening_a_link_shows_a_confirmation_page_and_changes_nothing(approval):
    links = request(approval)
    response = http("GET", links[APPROVERS[0]]["approve"])
    assert response["statusCode"] == 200 and "<button class='approve primary'" in response["body"]
    assert record()["status"] == "PENDING" and approval["callbacks"] == []


def test_approve_answers_the_run_approves_the_package_and_audits_who_when_where(approval):
    links = request(approval)
    response = http("POST", links[APPROVERS[0]]["approve"], reason="beats baseline")
    assert response["statusCode"] == 200 and "Model approved" in response["body"]
    assert approval["callbacks"] == [("SendTaskSuccess", {"taskToken": "task-token-123", "output": approval["callbacks"][0][1]["output"]})]
    assert json.loads(approval["callbacks"][0][1]["output"])["approver"] == APPROVERS[0]
    assert package_status(approval) == "Approved"
    stored = record()
    assert (stored["status"], stored["decided_by"], stored["source_ip"], stored["reason"]) == (
        "APPROVED", APPROVERS[0], "203.0.113.9", "beats baseline")


def test_a_double_click_is_idempotent(approval):
    links = request(approval)
    first = http("POST", links[APPROVERS[0]]["approve"])
    second = http("POST", links[APPROVERS[0]]["approve"])
    assert first["statusCode"] == second["statusCode"] == 200 and first["body"] == second["body"]
    assert len(approval["callbacks"]) == 1


def test_a_replayed_or_second_link_after_the_decision_is_refused(approval):
    links = request(approval)
    http("POST", links[APPROVERS[0]]["approve"])
    late = http("POST", links[APPROVERS[1]]["reject"])
    assert late["statusCode"] == 409 and "already approved by ml-lead@example.com" in late["body"]
    assert package_status(approval) == "Approved" and len(approval["callbacks"]) == 1


def test_reject_fails_the_task_with_the_reason_and_rejects_the_package(approval):
    links = request(approval)
    response = http("POST", links[APPROVERS[1]]["reject"], reason="too little data")
    assert response["statusCode"] == 200 and "Model rejected" in response["body"]
    (name, params), = approval["callbacks"]
    assert name == "SendTaskFailure" and params["error"] == "ModelRejected" and "too little data" in params["cause"]
    assert package_status(approval) == "Rejected"


def forge(approval, key: bytes, **changes) -> str:
    claims = {"execution": "run-1", "package": approval["package"], "approver": APPROVERS[0], "action": "approve",
              "expires": int(time.time()) + 3600, "nonce": "n", "model": "churn"}
    return tokens.sign(tokens.LinkClaims(**{**claims, **changes}), key)


@pytest.mark.parametrize(("make_token", "status", "text"), [
    (lambda a: forge(a, b"not-the-key"), 403, "not issued by the platform"),
    (lambda a: forge(a, b"k" * 64, expires=int(time.time()) - 1), 410, "Link expired"),
    (lambda a: forge(a, b"k" * 64, approver="eve@example.com"), 403, "not listed as an approver"),
    (lambda a: "v1.garbage", 400, "Malformed link"),
    (lambda a: "", 400, "Malformed link"),
])
def test_bad_links_get_a_clear_4xx_page_and_change_nothing(approval, make_token, status, text):
    request(approval)
    for method in ("GET", "POST"):
        response = http(method, make_token(approval))
        assert response["statusCode"] == status and text in response["body"] and "Nothing was changed" in response["body"]
        assert response["headers"]["Content-Type"].startswith("text/html")
    assert record()["status"] == "PENDING" and package_status(approval) == "PendingManualApproval"
    assert approval["callbacks"] == []


def test_a_tampered_link_is_refused(approval):
    links = request(approval)
    version, key_id, payload, signature = links[APPROVERS[0]]["reject"].split(".")
    claims = json.loads(tokens._unb64(payload))
    claims["action"] = "approve"
    tampered = ".".join([version, key_id, tokens._b64(json.dumps(claims).encode()), signature])
    assert http("POST", tampered)["statusCode"] == 403
    assert record()["status"] == "PENDING"


def test_the_person_who_started_the_run_gets_no_links_and_cannot_approve(approval):
    links = request(approval, requested_by="arn:aws:sts::123456789012:assumed-role/DataScientist/ml-lead@example.com")
    assert "approve" not in links[APPROVERS[0]] and "another approver must decide" in links[APPROVERS[0]]["message"]
    response = http("POST", forge(approval, b"k" * 64))
    assert response["statusCode"] == 403 and "cannot approve it" in response["body"]
    assert record()["status"] == "PENDING"


def test_a_run_that_no_longer_waits_closes_the_request(approval, monkeypatch):
    links = request(approval)

    def gone(*args, **kwargs):
        raise dal.TaskGone("Task Timed Out")
    monkeypatch.setattr(dal, "send_task_result", gone)
    response = http("POST", links[APPROVERS[0]]["approve"])
    assert response["statusCode"] == 410 and "no longer waits" in response["body"]
    # nothing will ever deploy it: the registry says so instead of leaving it waiting for approval
    assert record()["status"] == "EXPIRED" and package_status(approval) == "Rejected"


def test_an_unanswered_request_times_out_rejects_the_package_and_notifies(approval):
    from lambdas.pipeline import handlers as pipeline
    from tests.integration.conftest import task_event
    links = request(approval)
    timed_out = {**state(approval["package"]), "error": {"Error": "States.Timeout", "Cause": "approval window closed"}}
    result = pipeline.notify(task_event(timed_out, outcome="rejected"), FakeContext())
    assert result["subject"] == "[churn] retraining rejected"
    assert package_status(approval) == "Rejected" and record()["status"] == "EXPIRED"
    late = http("POST", links[APPROVERS[0]]["approve"])
    assert late["statusCode"] == 409 and approval["callbacks"] == []


def test_one_address_is_throttled_after_its_per_minute_budget_without_touching_the_decision(approval, monkeypatch):
    from lambdas.shared import config as lambda_config
    from pipelines.spec import parse_spec
    from tests.integration.conftest import SPEC
    spec = parse_spec(json.loads(SPEC.model_dump_json()), "test", {"approval": {"max_link_requests_per_minute": 3}})
    monkeypatch.setenv("MODEL_SPEC", spec.model_dump_json())
    lambda_config.model_spec.cache_clear()
    act_as_control_plane(monkeypatch)  # churn's record, with its budget
    links = request(approval)
    token = links["ml-lead@example.com"]["approve"]
    assert [http("GET", token, ip="198.51.100.7")["statusCode"] for _ in range(3)] == [200, 200, 200]
    throttled = http("POST", token, "looks good", ip="198.51.100.7")
    assert throttled["statusCode"] == 429 and throttled["headers"]["Retry-After"] == "60"
    assert "Too many requests" in throttled["body"] and not approval["callbacks"]
    assert http("POST", token, "looks good", ip="198.51.100.8")["statusCode"] == 200  # another address is unaffected
    assert [name for name, _ in approval["callbacks"]] == ["SendTaskSuccess"]



def throttled(operation: str):
    from botocore.exceptions import ClientError
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation)


def fail_once(monkeypatch, owner, name: str, operation: str) -> list:
    calls, original = [], getattr(owner, name)

    def flaky(*args, **kwargs):
        calls.append(name)
        if len(calls) == 1:
            raise throttled(operation)
        return original(*args, **kwargs)
    monkeypatch.setattr(owner, name, flaky)
    return calls


def test_a_throttled_registry_update_leaves_the_decision_recorded_unapplied_and_undeployable(approval, monkeypatch):
    links = request(approval)
    fail_once(monkeypatch, dal.ModelRegistry, "set_status", "UpdateModelPackage")
    response = http("POST", links[APPROVERS[0]]["approve"])
    assert response["statusCode"] == 503 and "Decision recorded" in response["body"]
    stored = record()
    assert (stored["status"], stored["applied"]) == ("APPROVED", False)
    assert package_status(approval) == "PendingManualApproval" and approval["callbacks"] == []  # the run still waits


def test_the_reconciler_applies_a_decision_left_unapplied(approval, monkeypatch):
    links = request(approval)
    fail_once(monkeypatch, dal, "send_task_result", "SendTaskSuccess")
    assert http("POST", links[APPROVERS[0]]["approve"])["statusCode"] == 503
    assert package_status(approval) == "Approved" and record()["applied"] is False
    assert handlers.reconcile("churn", "mlops-dev-audit", "churn-dev", approval["machine"]) == []  # within the grace period: a click may be in flight
    repaired = handlers.reconcile("churn", "mlops-dev-audit", "churn-dev", approval["machine"], now=time.time() + 600)
    assert repaired == [{"execution": "run-1", "action": "applied approved"}]
    assert [name for name, _ in approval["callbacks"]] == ["SendTaskSuccess"] and record()["applied"] is True


def test_the_same_click_again_completes_its_own_unapplied_decision(approval, monkeypatch):
    links = request(approval)
    fail_once(monkeypatch, dal, "send_task_result", "SendTaskSuccess")
    assert http("POST", links[APPROVERS[0]]["approve"])["statusCode"] == 503
    other = http("POST", links[APPROVERS[1]]["reject"])
    assert other["statusCode"] == 409  # another approver cannot overturn a recorded decision
    again = http("POST", links[APPROVERS[0]]["approve"])
    assert again["statusCode"] == 200 and record()["applied"] is True
    assert [name for name, _ in approval["callbacks"]] == ["SendTaskSuccess"] and package_status(approval) == "Approved"


def test_a_throttled_claim_changes_nothing_and_asks_to_try_again(approval, monkeypatch):
    links = request(approval)
    fail_once(monkeypatch, dal.ApprovalStore, "decide", "UpdateItem")
    response = http("POST", links[APPROVERS[0]]["approve"])
    assert response["statusCode"] == 503 and "Try again" in response["body"]
    assert record()["status"] == "PENDING" and package_status(approval) == "PendingManualApproval"
    assert http("POST", links[APPROVERS[0]]["approve"])["statusCode"] == 200


def test_the_reconciler_closes_a_pending_request_whose_run_ended(approval):
    request(approval)
    repaired = handlers.reconcile("churn", "mlops-dev-audit", "churn-dev", approval["machine"])
    assert repaired == [{"execution": "run-1", "action": "closed abandoned request"}]
    assert record()["status"] == "ABANDONED" and package_status(approval) == "Rejected"


def test_mlops_approvals_repair_applies_an_unapplied_decision_in_the_environments_region(approval, monkeypatch):
    """The environment is in us-east-1 (cdk.json); the shell's default region is another one."""
    from typer.testing import CliRunner

    from pipelines import cli, client

    monkeypatch.setattr(client, "target_environment", lambda env: client.Target(env, "123456789012", "us-east-1"))
    links = request(approval)
    fail_once(monkeypatch, dal, "send_task_result", "SendTaskSuccess")
    assert http("POST", links[APPROVERS[0]]["approve"])["statusCode"] == 503
    boto3.resource("dynamodb").Table("mlops-dev-audit").update_item(  # older than the grace period
        Key={"pk": "model#churn", "sk": "approval#run-1"}, UpdateExpression="SET decided_at = :t",
        ExpressionAttributeValues={":t": "2026-01-01T00:00:00+00:00"})
    move_the_shells_region(monkeypatch)
    result = CliRunner().invoke(cli.app, ["approvals", "repair", "churn", "--env", "dev"])
    assert result.exit_code == 0, result.output
    with dal.bound_to(boto3.Session(region_name="us-east-1")):
        assert "run-1: applied approved" in result.output and record()["applied"] is True


def post_raw(body, is_base64: bool = False) -> dict:
    event = {"version": "2.0", "rawPath": "/", "rawQueryString": "", "queryStringParameters": None,
             "headers": {"content-type": "application/x-www-form-urlencoded"}, "body": body, "isBase64Encoded": is_base64,
             "requestContext": {"http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9",
                                         "userAgent": "curl"}, "requestId": "r", "routeKey": "$default", "stage": "$default",
                                "accountId": "123456789012", "apiId": "abc", "domainName": "x", "domainPrefix": "x",
                                "time": "t", "timeEpoch": 0}}
    return handlers.decide_handler(event, FakeContext())


@pytest.mark.parametrize(("body", "is_base64"), [
    ("not base64 at all!", True),
    ("t=" + "x" * 9000, False),
    ("t=a&t=b", False),
    ("t=a&approver=ml-lead@example.com", False),
    ("just-some-text", False),
    ("t=%ff%fe", False),
])
def test_malformed_form_bodies_get_a_400_page_and_change_nothing(approval, body, is_base64):
    request(approval)
    response = post_raw(body, is_base64)
    assert response["statusCode"] == 400 and "Malformed" in response["body"]
    assert record()["status"] == "PENDING" and approval["callbacks"] == []


def test_requests_whose_link_does_not_verify_spend_their_own_budget_not_the_models(approval):
    from lambdas.approval import logic
    links = request(approval)
    budget = boto3.resource("dynamodb").Table("mlops-dev-idempotency")
    unverified, _ = logic.rate_limit_key("203.0.113.9", int(time.time()))
    budget.put_item(Item={"id": unverified, "requests": handlers.UNVERIFIED_REQUESTS_PER_MINUTE, "expiration": 2**31})
    assert http("GET", "v2.initial.forged.sig")["statusCode"] == 429
    assert post_raw("just-some-text", False)["statusCode"] == 429  # a body that is not the form counts there too
    assert http("GET", links[APPROVERS[0]]["approve"])["statusCode"] == 200  # churn's budget for the address
    churns, _ = logic.rate_limit_key("203.0.113.9", int(time.time()), "churn")
    assert budget.get_item(Key={"id": churns})["Item"]["requests"] == 1


def test_a_click_while_the_same_link_is_in_progress_gets_a_409_page_not_a_crash(approval, monkeypatch):
    import threading
    links = request(approval)
    original, started, released = handlers.apply_decision, threading.Event(), threading.Event()

    def held(*args, **kwargs):
        """The first click stays in progress until the second has been answered: no race with the clock."""
        started.set()
        released.wait(60)
        return original(*args, **kwargs)
    monkeypatch.setattr(handlers, "apply_decision", held)
    first = {}
    worker = threading.Thread(target=lambda: first.update(http("POST", links[APPROVERS[0]]["approve"])))
    worker.start()
    assert started.wait(60)
    try:
        second = http("POST", links[APPROVERS[0]]["approve"])
    finally:
        released.set()
        worker.join()
    assert second["statusCode"] == 409 and "being processed" in second["body"]
    assert first["statusCode"] == 200 and [name for name, _ in approval["callbacks"]] == ["SendTaskSuccess"]


def test_a_lost_applied_write_is_repaired_without_expiring_the_decision(approval, monkeypatch):
    links = request(approval)
    fail_once(monkeypatch, dal.ApprovalStore, "mark_applied", "UpdateItem")
    assert http("POST", links[APPROVERS[0]]["approve"])["statusCode"] == 503
    assert package_status(approval) == "Approved" and record()["applied"] is False

    def gone(*args, **kwargs):  # AWS: a second SendTaskSuccess for an answered task finds it gone
        raise dal.TaskGone("Task Timed Out")
    monkeypatch.setattr(dal, "send_task_result", gone)
    monkeypatch.setattr(dal, "execution_status", lambda arn: "RUNNING")  # the run heard the first answer
    repaired = handlers.reconcile("churn", "mlops-dev-audit", "churn-dev", approval["machine"], now=time.time() + 600)
    assert repaired == [{"execution": "run-1", "action": "applied approved"}]
    stored = record()
    assert (stored["status"], stored["applied"]) == ("APPROVED", True) and package_status(approval) == "Approved"



CARD = {"intended_uses": {"intended_uses": "retention outreach", "risk_rating": "High"},
        "additional_information": {"caveats_and_recommendations": "not for pricing"}}


def with_card(approval) -> dict:
    card = {"ModelCardContent": json.dumps(CARD), "ModelCardStatus": "PendingReview"}
    boto3.client("sagemaker").update_model_package(ModelPackageArn=approval["package"], ModelCard=card)
    return card


def described(approval) -> dict:
    return boto3.client("sagemaker").describe_model_package(ModelPackageName=approval["package"])


def test_the_approver_reads_the_versions_model_card_and_evidence_and_approving_approves_the_card(approval):
    from lambdas.shared import evidence
    from tests.support.evidence import with_evidence

    card = with_card(approval)
    links = request(approval, evidence=evidence.summarize(with_evidence({})).model_dump())
    assert "risk rating High; intended use: retention outreach" in links[APPROVERS[0]]["message"]
    body = http("GET", links[APPROVERS[0]]["approve"])["body"]
    assert "retention outreach" in body and "not for pricing" in body and "tenure_months" in body
    assert "<td class='num miss'>0.700</td>" in body  # region=north's disparate impact, outside 0.8-1.25
    http("POST", links[APPROVERS[0]]["approve"])
    assert described(approval)["ModelApprovalStatus"] == "Approved"
    assert described(approval)["ModelCard"] == {**card, "ModelCardStatus": "Approved"}


def test_a_rejected_versions_card_stays_for_review(approval):
    card = with_card(approval)
    links = request(approval)
    http("POST", links[APPROVERS[0]]["reject"], reason="bias in the north")
    assert described(approval)["ModelApprovalStatus"] == "Rejected" and described(approval)["ModelCard"] == card


def test_a_version_registered_before_cards_is_approved_and_its_page_says_it_has_no_card(approval):
    links = request(approval)
    assert "no model card" in http("GET", links[APPROVERS[0]]["approve"])["body"]
    http("POST", links[APPROVERS[0]]["approve"])
    assert described(approval)["ModelApprovalStatus"] == "Approved" and "ModelCard" not in described(approval)
    assert record()["model_card"] is False


def test_a_card_that_cannot_be_updated_leaves_the_approval_applied(approval, monkeypatch):
    with_card(approval)
    links = request(approval)
    def refused(*args, **kwargs):
        raise throttled("UpdateModelPackage")
    monkeypatch.setattr(dal.ModelRegistry, "set_card_status", refused)
    http("POST", links[APPROVERS[0]]["approve"])
    assert described(approval)["ModelApprovalStatus"] == "Approved" and record()["applied"] is True
    assert described(approval)["ModelCard"]["ModelCardStatus"] == "PendingReview"

"""The promotion handlers against moto, one account playing both sides (the cross-account grants are the e2e test's,
the model isolation test_control_plane_promotion_isolation.py's): control-plane functions acting for the model their
event names; the offer attests and announces once, the receive starts the model's run, the import copies with a
digest check and registers with lineage."""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest

from lambdas.promotion import handlers
from lambdas.promotion.logic import AlreadyPromoted, PromotionRefused
from lambdas.shared.release import ReleaseRefused
from pipelines.promotion import SHA256_KEY, VERSION_KEY
from pipelines.promotion import offer_source
from tests.integration.conftest import (BUCKET, SPEC, FakeContext, act_as_control_plane, approval_binding,
                                       released_package, serve_in_production, task_event)

MODEL_BYTES = b"\x1f\x8b model bytes " * 1000
ARTIFACT = f"releases/churn/{hashlib.sha256(MODEL_BYTES).hexdigest()}/model.tar.gz"
RUN = "runs/churn/run-1/"


def _audit_table(name: str) -> None:
    boto3.client("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])


@pytest.fixture
def upstream_evidence() -> bool:
    """Whether dev's package carries a model card and bias and explainability reports (a test parametrizes it)."""
    return False


def evidence_arguments() -> dict:
    """The bias and explainability reports and the model card the register step attaches, their files in the run."""
    from lambdas.shared import evidence
    from tests.support.evidence import with_evidence

    documents = evidence.documents(with_evidence({}))
    for name, document in documents.items():
        boto3.client("s3").put_object(Bucket=BUCKET, Key=f"{RUN}{name}", Body=json.dumps(document).encode())
    uri = f"s3://{BUCKET}/{RUN}"
    return {"metrics": evidence.model_metrics(f"{uri}evaluation.json", f"{uri}bias.json", f"{uri}bias/pre_training.json",
                                              f"{uri}bias/post_training.json", f"{uri}explainability.json"),
            "ModelCard": {"ModelCardContent": CARD, "ModelCardStatus": "Approved"}}


CARD = json.dumps({"intended_uses": {"risk_rating": "High", "intended_uses": "retention outreach"}})


@pytest.fixture
def upstream(platform, monkeypatch, upstream_evidence):
    """dev's side: an Approved package whose released artifact and run files are in the bucket, its approval (with the
    artifact it bound) in dev's audit table, served by production; the offer's event captured by a rule of the
    promotion bus into a queue; the offer function in dev's control plane."""
    s3 = boto3.client("s3")
    for name in ("evaluation.json", "baseline/statistics.json", "baseline/constraints.json"):
        s3.put_object(Bucket=BUCKET, Key=f"{RUN}{name}", Body=json.dumps({"file": name}).encode())
    rows = "\n".join(["tenure_months,churned", *(f"{i},0" for i in range(50))]) + "\n"
    s3.put_object(Bucket=BUCKET, Key=f"{RUN}data/train.csv", Body=rows.encode())
    carried = evidence_arguments() if upstream_evidence else {}
    arn = released_package(
        body=MODEL_BYTES, image="image", status="Approved",
        ModelMetrics=carried.get("metrics") or {"ModelQuality": {"Statistics": {
            "ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/{RUN}evaluation.json"}}},
        **({"ModelCard": carried["ModelCard"]} if carried else {}),
        DriftCheckBaselines={"ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/{RUN}baseline/statistics.json"},
            "Constraints": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/{RUN}baseline/constraints.json"}}},
        MetadataProperties={"CommitId": "0123abc", "GeneratedBy": f"arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:run-1"},
        lineage={"git_commit": "0123abc", "requested_by": "arn:aws:sts::123456789012:assumed-role/ds/alice@example.com",
                 "metrics": json.dumps({"validation:auc": 0.8}), "challenger_value": "0.8"})
    _audit_table("mlops-dev-audit")
    boto3.resource("dynamodb").Table("mlops-dev-audit").put_item(Item={
        "pk": "model#churn", "sk": "approval#run-1", "status": "APPROVED", "model_package_arn": arn,
        "decided_by": "ml-lead@example.com", **approval_binding(arn)})
    monkeypatch.setenv("AUDIT_TABLE", "mlops-dev-audit")
    serve_in_production(arn)
    queue = boto3.client("sqs").create_queue(QueueName="offers")["QueueUrl"]
    queue_arn = boto3.client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events")
    bus = events.create_event_bus(Name="mlops-prod-promotions")["EventBusArn"]
    events.put_rule(Name="offers", EventBusName="mlops-prod-promotions",
                    EventPattern=json.dumps({"source": [{"prefix": "mlops.promotion."}]}))
    events.put_targets(Rule="offers", EventBusName="mlops-prod-promotions", Targets=[{"Id": "queue", "Arn": queue_arn}])
    for name, value in {"DOWNSTREAM_ENV": "prod", "PROMOTION_ENV": "dev", "DOWNSTREAM_BUS_ARN": bus}.items():
        monkeypatch.setenv(name, value)
    act_as_control_plane(monkeypatch, "churn", "dev")
    return {"arn": arn, "queue": queue}


def run_succeeded(platform) -> dict:
    return {"version": "0", "id": "e", "source": "aws.states", "detail-type": "Step Functions Execution Status Change",
            "account": "123456789012", "time": "2026-11-23T00:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"executionArn": f"{platform['state_machine'].replace(':stateMachine:', ':execution:')}:run-1",
                       "stateMachineArn": platform["state_machine"], "status": "SUCCEEDED",
                       "name": "run-1"}}


def offer_events(upstream) -> list[dict]:
    messages = boto3.client("sqs").receive_message(QueueUrl=upstream["queue"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def offers(upstream) -> list[dict]:
    return [event["detail"] for event in offer_events(upstream)]


def test_the_offer_carries_the_approved_digest_and_announces_the_served_package_once(platform, upstream):
    result = handlers.offer(run_succeeded(platform), FakeContext())
    assert result["offered"] is True and result["sha256"] == hashlib.sha256(MODEL_BYTES).hexdigest()
    lineage = boto3.client("sagemaker").describe_model_package(ModelPackageName=upstream["arn"])["CustomerMetadataProperties"]
    assert lineage[SHA256_KEY] == hashlib.sha256(MODEL_BYTES).hexdigest()
    assert lineage[VERSION_KEY] == boto3.client("s3").head_object(Bucket=BUCKET, Key=ARTIFACT)["VersionId"]
    assert "offered_to_prod" in lineage and lineage["git_commit"] == "0123abc"  # the lineage is kept
    (event,) = offer_events(upstream)
    detail = event["detail"]
    assert detail["package_arn"] == upstream["arn"] and detail["sha256"] == lineage[SHA256_KEY] and detail["env"] == "dev"
    assert event["source"] == offer_source("churn")  # what the next stage's bus policy binds to the sender's tag
    again = handlers.offer(run_succeeded(platform), FakeContext())
    assert again == {"offered": False, "reason": f"{upstream['arn']} was already offered to prod"}
    assert offers(upstream) == []


def test_nothing_is_offered_when_production_does_not_serve_the_newest_approved_package(platform, upstream):
    newer = boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName="churn-dev", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "image", "ModelDataUrl": f"s3://{BUCKET}/{ARTIFACT}"}],
                                "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]})
    result = handlers.offer(run_succeeded(platform), FakeContext())
    assert result["offered"] is False and newer["ModelPackageArn"] in result["reason"]
    assert offers(upstream) == []


def test_no_offer_when_the_released_bytes_changed_since_approval(platform, upstream):
    """Someone who could write the release (the bucket policy lets nobody but the release writers) swapped it."""
    boto3.client("s3").put_object(Bucket=BUCKET, Key=ARTIFACT, Body=b"other bytes")
    with pytest.raises(ReleaseRefused, match="bytes changed since approval"):
        handlers.offer(run_succeeded(platform), FakeContext())
    assert offers(upstream) == []


def test_no_offer_for_a_package_whose_approval_bound_no_digest(platform, upstream):
    boto3.resource("dynamodb").Table("mlops-dev-audit").update_item(
        Key={"pk": "model#churn", "sk": "approval#run-1"}, UpdateExpression="REMOVE artifact_sha256")
    with pytest.raises(ReleaseRefused, match="records no artifact digest"):
        handlers.offer(run_succeeded(platform), FakeContext())
    assert offers(upstream) == []


@pytest.fixture
def stage(platform, upstream, monkeypatch):
    """prod's side, played in the same account: its own group and audit table; the offer made."""
    handlers.offer(run_succeeded(platform), FakeContext())
    (detail,) = offers(upstream)
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="churn-prod")
    _audit_table("mlops-prod-audit")
    for name, value in {"MODEL_PACKAGE_GROUP": "churn-prod", "AUDIT_TABLE": "mlops-prod-audit", "UPSTREAM_ENV": "dev",
                        "UPSTREAM_ACCOUNT": "123456789012", "UPSTREAM_REGION": "us-east-1", "UPSTREAM_BUCKET": BUCKET,
                        "SERVING_STAGE": "prod", "SERVING_ENDPOINT": "churn-prod-prod",
                        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:churn-prod-retraining"}.items():
        monkeypatch.setenv(name, value)
    act_as_control_plane(monkeypatch, "churn", "prod")
    return {"offer": detail, "offered_by_account": "123456789012", "offer_source": offer_source("churn")}


def prod_task(state: dict, execution_name: str) -> dict:
    """What prod's churn state machine hands its import step."""
    event = task_event(state, execution_name)
    return {**event, "execution_arn": event["execution_arn"].replace("churn-dev-retraining", "churn-prod-retraining")}


def test_the_import_copies_the_same_bytes_and_registers_them_with_the_lineage_waiting_for_approval(stage):
    state = handlers.import_package(prod_task(stage, "promo-1"), FakeContext())
    package = boto3.client("sagemaker").describe_model_package(ModelPackageName=state["registration"]["model_package_arn"])
    assert package["ModelPackageGroupName"] == "churn-prod" and package["ModelApprovalStatus"] == "PendingManualApproval"
    url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert url == f"s3://{BUCKET}/{ARTIFACT}"  # this stage's release of the same bytes: the key their sha256 names
    assert state["registration"]["artifact_sha256"] == hashlib.sha256(MODEL_BYTES).hexdigest()
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=url.split("/", 3)[3])["Body"].read()
    assert body == MODEL_BYTES
    lineage = package["CustomerMetadataProperties"]
    assert lineage[SHA256_KEY] == hashlib.sha256(MODEL_BYTES).hexdigest() and lineage["git_commit"] == "0123abc"
    assert lineage["promoted_from"] == stage["offer"]["package_arn"] and "offered_to_prod" not in lineage
    assert package["MetadataProperties"]["GeneratedBy"].endswith(":promo-1")  # the approval record's run
    sample = boto3.client("s3").get_object(Bucket=BUCKET, Key="runs/churn/promo-1/data/train.csv")["Body"].read()
    assert sample.decode().splitlines()[0] == "tenure_months,churned" and len(sample.decode().splitlines()) == 21
    assert state["run"]["requested_by"].endswith("/alice@example.com") and state["evaluation"]["value"] == 0.8


@pytest.mark.parametrize("upstream_evidence", [True])
def test_the_import_carries_the_model_card_and_the_bias_and_explainability_reports_for_review_again(stage):
    from tests.support.evidence import bias_analysis, explainability, judged_against_the_specs_bounds

    state = handlers.import_package(prod_task(stage, "promo-1"), FakeContext())
    package = boto3.client("sagemaker").describe_model_package(ModelPackageName=state["registration"]["model_package_arn"])
    promoted = f"s3://{BUCKET}/runs/churn/promo-1/promoted/"
    assert package["ModelMetrics"]["Bias"] == {name: {"ContentType": "application/json", "S3Uri": f"{promoted}{file}"}
                                               for name, file in (("Report", "bias.json"),
                                                                  ("PreTrainingReport", "bias_pre_training.json"),
                                                                  ("PostTrainingReport", "bias_post_training.json"))}
    assert package["ModelMetrics"]["Explainability"]["Report"]["S3Uri"] == f"{promoted}explainability.json"
    s3 = boto3.client("s3")
    copied = json.loads(s3.get_object(Bucket=BUCKET, Key="runs/churn/promo-1/promoted/bias.json")["Body"].read())
    assert copied == bias_analysis()
    assert json.loads(s3.get_object(Bucket=BUCKET, Key="runs/churn/promo-1/promoted/explainability.json")["Body"]
                      .read()) == explainability()
    assert package["ModelCard"] == {"ModelCardContent": CARD, "ModelCardStatus": "PendingReview"}  # reviewed again
    evaluation = state["evaluation"]
    assert evaluation["bias_report_uri"] == f"{promoted}bias.json"
    assert judged_against_the_specs_bounds(evaluation["evidence"], SPEC)
    assert evaluation["evidence"]["attributions"][0]["feature"] == "tenure_months"


def test_a_package_registered_before_cards_and_reports_is_promoted_without_them(stage):
    state = handlers.import_package(prod_task(stage, "promo-1"), FakeContext())
    package = boto3.client("sagemaker").describe_model_package(ModelPackageName=state["registration"]["model_package_arn"])
    assert set(package["ModelMetrics"]) == {"ModelQuality"} and "ModelCard" not in package
    assert state["evaluation"]["evidence"] is None and state["evaluation"]["bias_report_uri"] == ""


def test_the_same_offer_is_imported_once(stage):
    handlers.import_package(prod_task(stage, "promo-1"), FakeContext())
    with pytest.raises(AlreadyPromoted):
        handlers.import_package(prod_task(stage, "promo-2"), FakeContext())


def test_bytes_that_changed_since_the_digest_was_recorded_are_refused_and_a_later_offer_may_retry(stage):
    s3 = boto3.client("s3")
    version = boto3.client("sagemaker").describe_model_package(
        ModelPackageName=stage["offer"]["package_arn"])["CustomerMetadataProperties"][VERSION_KEY]
    s3.delete_object(Bucket=BUCKET, Key=ARTIFACT, VersionId=version)  # the recorded version is replaced...
    s3.put_object(Bucket=BUCKET, Key=ARTIFACT, Body=b"other bytes")
    boto3.client("sagemaker").update_model_package(  # ...and the registry points at the new one
        ModelPackageArn=stage["offer"]["package_arn"],
        CustomerMetadataProperties={VERSION_KEY: s3.head_object(Bucket=BUCKET, Key=ARTIFACT)["VersionId"]})
    with pytest.raises(PromotionRefused, match="changed since approval"):
        handlers.import_package(prod_task(stage, "promo-1"), FakeContext())
    listed = s3.list_object_versions(Bucket=BUCKET, Prefix="runs/churn/promo-1/promoted/").get("Versions", [])
    assert listed == []  # the checked copy is gone; nothing was released
    assert boto3.client("sagemaker").list_model_packages(ModelPackageGroupName="churn-prod")["ModelPackageSummaryList"] == []
    with pytest.raises(PromotionRefused):  # the claim was released: a retry runs (and is refused on its merits)
        handlers.import_package(prod_task(stage, "promo-2"), FakeContext())


def test_a_run_started_by_hand_in_a_promotion_stage_is_refused_with_the_reason(stage):
    with pytest.raises(PromotionRefused, match="trains nothing"):
        handlers.import_package(prod_task({"model": "churn", "trigger": "manual"}, "manual-1"), FakeContext())


def watch(monkeypatch, event: str, handler) -> None:
    """`handler` on botocore's `event` in the sessions the import acts with (the model's scoped sessions)."""
    from lambdas.shared import tenancy

    taken = tenancy.scoped_session

    def scoped_session(model: str):
        session = taken(model)
        session.events.register(event, handler)
        return session

    monkeypatch.setattr(tenancy, "scoped_session", scoped_session)


def test_the_import_copies_the_model_server_side_without_reading_its_bytes(stage, monkeypatch):
    """Issue 25: promotion streamed the artifact through the function and read it back. Up to 5 GB the copy is one
    CopyObject whose S3-computed SHA-256 is the proof; no GetObject of the model reaches S3."""
    reads = []
    watch(monkeypatch, "provide-client-params.s3.GetObject", lambda params, **kw: reads.append(params["Key"]))
    state = handlers.import_package(prod_task(stage, "promo-1"), FakeContext())
    assert state["registration"]["artifact_sha256"] == hashlib.sha256(MODEL_BYTES).hexdigest()
    assert reads and not [key for key in reads if key.endswith("model.tar.gz")], reads


def test_above_the_copy_object_limit_the_copy_is_multipart_and_its_bytes_are_hashed(stage, monkeypatch):
    """The size ceiling: above 5 GB (lowered here to 1 kB) S3's checksum covers parts, not the bytes, so the import
    hashes its copy; the proof is the same digest."""
    from lambdas.shared import dal

    monkeypatch.setattr(dal, "COPY_OBJECT_LIMIT", 1024)  # the model is 16 kB
    parts = []
    watch(monkeypatch, "provide-client-params.s3.UploadPartCopy", lambda params, **kw: parts.append(1))
    state = handlers.import_package(prod_task(stage, "promo-1"), FakeContext())
    assert parts  # the copy was multipart
    url = state["registration"]["artifact_uri"]
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=url.split(f"{BUCKET}/")[1])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == state["registration"]["artifact_sha256"] == hashlib.sha256(MODEL_BYTES).hexdigest()


def offer_on_the_bus(stage, source: str) -> dict:
    """The offer as prod's promotion bus hands it to the receive function (EventBridge sets account and id)."""
    return {"version": "0", "id": "offer-1", "source": source, "detail-type": "Model Package Offered",
            "account": "123456789012", "time": "2026-11-23T00:00:00Z", "region": "us-east-1", "resources": [],
            "detail": stage["offer"]}


def test_an_offer_starts_the_run_of_the_model_its_source_names_with_the_offer_and_its_sender(stage):
    sfn = boto3.client("stepfunctions")
    sfn.create_state_machine(name="churn-prod-retraining", roleArn="arn:aws:iam::123456789012:role/sfn",
                             definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}))
    started = handlers.receive(offer_on_the_bus(stage, offer_source("churn")), FakeContext())
    execution = sfn.describe_execution(executionArn=started["execution_arn"])
    assert execution["stateMachineArn"].endswith(":stateMachine:churn-prod-retraining")
    assert json.loads(execution["input"]) == stage
    again = handlers.receive(offer_on_the_bus(stage, offer_source("churn")), FakeContext())  # EventBridge delivers twice
    assert again == started and len(sfn.list_executions(stateMachineArn=execution["stateMachineArn"])["executions"]) == 1


@pytest.mark.parametrize("source", [offer_source("houses"), "mlops.promotion", "mlops.promotion.Churn"])
def test_an_offer_whose_source_names_another_model_or_none_starts_nothing(stage, source):
    with pytest.raises(PromotionRefused, match="names another model"):
        handlers.receive(offer_on_the_bus(stage, source), FakeContext())


def test_the_import_refuses_an_offer_without_the_source_its_sender_was_bound_to(stage):
    with pytest.raises(PromotionRefused, match="reached the churn promotion"):
        handlers.import_package(prod_task({**stage, "offer_source": offer_source("houses")}, "promo-1"), FakeContext())

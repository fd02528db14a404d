"""Promotion's control-plane functions act for one model at a time (issue 26), under enforced IAM with the roles the
CDK synthesizes, across two emulated accounts (pipelines/local/accounts.py: dev offers, prod receives and imports):
acting for churn, the offer, receive and import sessions read, offer, start and import churn and are denied houses'
objects, packages, rows, state machine and offers; the functions' own roles reach no model at all.

houses is not deployed in the emulation (it synthesizes churn alone): what it needs of houses is what deploying it
would leave, made by each account's admin; its package group's policy is churn's, synthesized, with houses' name."""

from __future__ import annotations

import json
import re

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.promotion.logic import OFFERED
from lambdas.shared.sessions import new_session
from pipelines import naming
from pipelines.local.accounts import CrossAccountPromotion
from pipelines.promotion import offer_source

pytestmark = pytest.mark.slow

DEV, PROD, REGION = "123456789012", "210987654321", "us-east-1"
DEV_BUCKET, PROD_BUCKET = naming.artifact_bucket("dev", DEV, REGION), naming.artifact_bucket("prod", PROD, REGION)
PROD_BUS = f"arn:aws:events:{REGION}:{PROD}:event-bus/mlops-prod-promotions"
OFFER, RECEIVE, IMPORT = "PromotionOffersOfferHandler", "PromotionsReceiveHandler", "PromotionsImportHandler"
DENIED = "AccessDenied|not authorized"


def _package(sagemaker, group: str) -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=group, ModelApprovalStatus="Approved", InferenceSpecification={
            "Containers": [{"Image": "image", "ModelDataUrl": f"s3://{DEV_BUCKET}/releases/x/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]})["ModelPackageArn"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Both accounts provisioned from the synthesized templates, IAM enforced, nothing trained; each model's files,
    package and audit row in dev, houses' group policy set as its registry stack would set it."""
    with CrossAccountPromotion("churn", {"dev": DEV, "prod": PROD}, tmp_path_factory.mktemp("isolation"), rows=50) as w:
        dev = w.world.accounts["dev"]
        from moto.s3.models import s3_backends

        sagemaker = dev.client("sagemaker")
        for model in ("churn", "houses"):
            for prefix in ("releases", "runs"):  # releases are written by release writers only: past the policies
                s3_backends[DEV]["global"].put_object(DEV_BUCKET, f"{prefix}/{model}/file", model.encode())
            dev.client("dynamodb").put_item(TableName=naming.audit_table("dev"), Item={
                "pk": {"S": f"model#{model}"}, "sk": {"S": "approval#run-1"}, "status": {"S": "APPROVED"}})
        sagemaker.create_model_package_group(ModelPackageGroupName="houses-dev")
        churn_group = f"arn:aws:sagemaker:{REGION}:{DEV}:model-package-group/churn-dev"
        houses_policy = json.loads(json.dumps(w.world.policies.documents[churn_group]).replace("churn", "houses"))
        w.world.policies.documents[churn_group.replace("churn", "houses")] = houses_policy
        w.packages = {model: _package(sagemaker, f"{model}-dev") for model in ("churn", "houses")}
        yield w


def _own(world, env: str, function: str) -> boto3.Session:
    return world.world.function(env, function).credentials.session(REGION)


def _acting_for(world, env: str, function: str, model: str) -> boto3.Session:
    """The function's model-scoped session for `model`, taken as lambdas/shared/tenancy.py takes it."""
    handler = world.world.function(env, function)
    credentials = _own(world, env, function).client("sts").assume_role(
        RoleArn=handler.environment["MODEL_SCOPED_ROLE_ARN"], RoleSessionName=model, DurationSeconds=900,
        Tags=[{"Key": naming.MODEL_TAG, "Value": model}])["Credentials"]
    return new_session(aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                       aws_session_token=credentials["SessionToken"], region_name=REGION)


def _offer(session: boto3.Session, model: str, claimed: str | None = None) -> dict:
    detail = {"model": claimed or model, "env": "dev", "package_arn": "-", "version": 1, "sha256": "ff" * 32,
              "source_package_arn": "-", "source_version": 1}
    return session.client("events").put_events(Entries=[{
        "Source": offer_source(claimed or model), "DetailType": OFFERED, "Detail": json.dumps(detail),
        "EventBusName": PROD_BUS}])


def _finish_prod_runs(world) -> None:
    """The runs an accepted (fake) offer started end: its digest is no recorded one."""
    for run in world.executions("prod"):
        world.world.wait_for("prod", run["executionArn"], lambda d: d["status"] != "RUNNING")


def test_the_import_session_for_churn_reads_churns_upstream_files_and_packages_and_none_of_houses(world):
    session = _acting_for(world, "prod", IMPORT, "churn")
    s3, sagemaker = session.client("s3"), session.client("sagemaker")
    for prefix in ("releases", "runs"):
        assert s3.get_object(Bucket=DEV_BUCKET, Key=f"{prefix}/churn/file")["Body"].read() == b"churn"
        with pytest.raises(ClientError, match=DENIED):
            s3.get_object(Bucket=DEV_BUCKET, Key=f"{prefix}/houses/file")
    assert sagemaker.describe_model_package(ModelPackageName=world.packages["churn"])["ModelApprovalStatus"] == "Approved"
    with pytest.raises(ClientError, match=DENIED):
        sagemaker.describe_model_package(ModelPackageName=world.packages["houses"])


def test_the_import_session_for_churn_writes_churns_copies_and_registry_in_its_stage_and_not_houses(world):
    session = _acting_for(world, "prod", IMPORT, "churn")
    s3, sagemaker = session.client("s3"), session.client("sagemaker")
    s3.put_object(Bucket=PROD_BUCKET, Key="runs/churn/promo/file", Body=b"copy")
    for key in ("runs/houses/promo/file", "releases/houses/x/model.tar.gz"):
        with pytest.raises(ClientError, match=DENIED):
            s3.put_object(Bucket=PROD_BUCKET, Key=key, Body=b"copy")
    with pytest.raises(ClientError, match=DENIED):
        sagemaker.create_model_package(ModelPackageGroupName="houses-prod", ModelApprovalStatus="PendingManualApproval")
    with pytest.raises(ClientError, match=DENIED):
        session.client("dynamodb").put_item(TableName=naming.audit_table("prod"), Item={
            "pk": {"S": "model#houses"}, "sk": {"S": "promotion#x"}})


def test_the_receive_session_for_churn_starts_churns_run_and_not_houses(world):
    sfn = _acting_for(world, "prod", RECEIVE, "churn").client("stepfunctions")
    machine = f"arn:aws:states:{REGION}:{PROD}:stateMachine:" + "{}-prod-retraining"
    with pytest.raises(ClientError, match=DENIED):
        sfn.start_execution(stateMachineArn=machine.format("houses"), input="{}")
    sfn.start_execution(stateMachineArn=machine.format("churn"), input="{}")  # refused by its import: trains nothing
    _finish_prod_runs(world)


def test_the_offer_session_for_churn_offers_churn_and_cannot_offer_for_houses_or_read_houses(world):
    session = _acting_for(world, "dev", OFFER, "churn")
    before = len(world.world.router.deliveries)
    assert _offer(session, "churn")["FailedEntryCount"] == 0
    assert [d.outcome for d in world.world.router.deliveries[before:]] == ["delivered"]  # prod's receive started it
    with pytest.raises(ClientError, match=DENIED):
        _offer(session, "churn", claimed="houses")
    sagemaker, s3 = session.client("sagemaker"), session.client("s3")
    sagemaker.describe_model_package(ModelPackageName=world.packages["churn"])
    for call in (lambda: sagemaker.describe_model_package(ModelPackageName=world.packages["houses"]),
                 lambda: sagemaker.update_model_package(ModelPackageArn=world.packages["houses"],
                                                        CustomerMetadataProperties={"offered_to_prod": "now"}),
                 lambda: s3.get_object(Bucket=DEV_BUCKET, Key="releases/houses/file"),
                 lambda: session.client("dynamodb").get_item(TableName=naming.audit_table("dev"), Key={
                     "pk": {"S": "model#houses"}, "sk": {"S": "approval#run-1"}})):
        with pytest.raises(ClientError, match=DENIED):
            call()
    assert s3.get_object(Bucket=DEV_BUCKET, Key="releases/churn/file")["Body"].read() == b"churn"
    _finish_prod_runs(world)


def test_an_offer_session_for_houses_cannot_claim_churn_either(world):
    with pytest.raises(ClientError, match=DENIED):
        _offer(_acting_for(world, "dev", OFFER, "houses"), "houses", claimed="churn")


def test_the_functions_own_roles_reach_no_model(world):
    offer, receive, importer = _own(world, "dev", OFFER), _own(world, "prod", RECEIVE), _own(world, "prod", IMPORT)
    calls = {
        "offer: describe churn's package": lambda: offer.client("sagemaker").describe_model_package(
            ModelPackageName=world.packages["churn"]),
        "offer: read churn's release": lambda: offer.client("s3").get_object(Bucket=DEV_BUCKET, Key="releases/churn/file"),
        "offer: put an offer": lambda: _offer(offer, "churn"),
        "receive: start churn's run": lambda: receive.client("stepfunctions").start_execution(
            stateMachineArn=f"arn:aws:states:{REGION}:{PROD}:stateMachine:churn-prod-retraining", input="{}"),
        "import: read churn's upstream files": lambda: importer.client("s3").get_object(
            Bucket=DEV_BUCKET, Key="releases/churn/file"),
        "import: describe churn's upstream package": lambda: importer.client("sagemaker").describe_model_package(
            ModelPackageName=world.packages["churn"]),
        "import: write churn's copies": lambda: importer.client("s3").put_object(
            Bucket=PROD_BUCKET, Key="runs/churn/promo/own", Body=b"x"),
    }
    reached = []
    for name, call in calls.items():
        try:
            call()
            reached.append(name)
        except ClientError as error:
            assert re.search(DENIED, str(error)), (name, error)  # denied, not failed for another reason
    assert reached == []


def test_a_scoped_session_is_taken_only_with_one_model_tag(world):
    handler = world.world.function("prod", IMPORT)
    sts = _own(world, "prod", IMPORT).client("sts")
    for tags in ([], [{"Key": naming.MODEL_TAG, "Value": "churn/../houses"}],
                 [{"Key": naming.MODEL_TAG, "Value": "churn"}, {"Key": "team", "Value": "x"}]):
        with pytest.raises(ClientError, match=DENIED):
            sts.assume_role(RoleArn=handler.environment["MODEL_SCOPED_ROLE_ARN"], RoleSessionName="session", Tags=tags)

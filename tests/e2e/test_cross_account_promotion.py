"""Train once, promote everywhere (issue 18), in the emulation: a model trained and approved in the dev account is
offered to the prod account, imported there (same bytes, same lineage), approved by prod's own approvers with
`mlops promote`, deployed and served, under enforced IAM; then each cross-account grant the stacks set is taken
away in turn and the promotion fails for want of it."""

from __future__ import annotations

import hashlib
import json

import pytest

from lambdas.promotion.logic import OFFERED, PromotionRefused
from pipelines import naming
from pipelines.client import DecisionRefused
from pipelines.local import iam
from pipelines.local.accounts import CrossAccountPromotion
from pipelines.promote_cli import promote, stage_overview
from pipelines.promotion import SHA256_KEY, VERSION_KEY, offer_source

pytestmark = pytest.mark.slow

DEV, PROD = "123456789012", "210987654321"
DEV_APPROVER, PROD_APPROVER, TRAINER = "ml-lead@example.com", "prod-approver@example.com", "data-scientist@example.com"
# The person who trains is also one of prod's approvers: the stage must still refuse them (no self-approval).
OVERRIDES = {"dev": {"objective": {"minimum": 0.5}, "training": {"hyperparameters": {"epochs": 4}}},  # a short run
             "prod": {"approval": {"stages": {"prod": {"approvers": [PROD_APPROVER, TRAINER]}}}}}
# The control planes' model-scoped roles the other account's policies name (a release writer in prod).
IMPORTER = f"arn:aws:iam::{PROD}:role/mlops-release-writer/mlops-prod-promotion-import-scoped"
OFFERER = f"arn:aws:iam::{DEV}:role/mlops-dev-promotion-offer-scoped"
PROD_BUS = f"arn:aws:events:us-east-1:{PROD}:event-bus/mlops-prod-promotions"
MODEL = "${aws:PrincipalTag/mlops:model}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with CrossAccountPromotion("churn", {"dev": DEV, "prod": PROD}, tmp_path_factory.mktemp("promotion"),
                               overrides=OVERRIDES) as promotion:
        promotion.trained = promotion.train(approver=DEV_APPROVER)
        assert promotion.trained["status"] == "SUCCEEDED", {k: promotion.trained.get(k) for k in ("status", "error", "cause")}
        promotion.world.execution_status_changed("dev", promotion.trained["executionArn"])  # what Step Functions sends
        (run,) = promotion.executions("prod")
        promotion.prod_run = promotion.world.wait_for("prod", run["executionArn"], lambda d: d["status"] != "RUNNING"
                                                      or promotion.pending("prod", d["name"]) is not None)
        yield promotion


def package(world, env: str, version: int = 1) -> dict:
    arn = f"arn:aws:sagemaker:us-east-1:{world.world.accounts[env].id}:model-package/churn-{env}/{version}"
    return world.world.accounts[env].client("sagemaker").describe_model_package(ModelPackageName=arn)


def stored_sha256(world, env: str, uri: str, version_id: str | None = None) -> str:
    bucket, key = uri[5:].split("/", 1)
    extra = {"VersionId": version_id} if version_id else {}
    body = world.world.accounts[env].client("s3").get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    return hashlib.sha256(body).hexdigest()


def model_data(described: dict) -> str:
    return described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]


def test_dev_approval_offers_the_package_to_prod_which_imports_the_same_bytes_and_waits_for_its_approvers(world):
    assert world.trained["status"] == "SUCCEEDED"
    assert not world.world.router.failures(), world.world.router.failures()
    assert world.prod_run["status"] == "RUNNING"
    dev, prod = package(world, "dev"), package(world, "prod")
    assert prod["ModelApprovalStatus"] == "PendingManualApproval"
    digest = dev["CustomerMetadataProperties"][SHA256_KEY]
    # The digest recorded in dev is the artifact's, and prod's own copy (in prod's bucket) has exactly those bytes.
    assert stored_sha256(world, "dev", model_data(dev), dev["CustomerMetadataProperties"][VERSION_KEY]) == digest
    # prod's own release of those bytes: the key their sha256 names, in prod's bucket (its import role a release writer)
    assert model_data(prod) == f"s3://{naming.artifact_bucket('prod', PROD, 'us-east-1')}/{naming.release_key('churn', digest)}"
    assert stored_sha256(world, "prod", model_data(prod)) == digest == prod["CustomerMetadataProperties"][SHA256_KEY]
    lineage = prod["CustomerMetadataProperties"]
    for key in ("git_commit", "execution_arn", "requested_by", "dataset_uri", "dataset_sha256", "training_job_arn", "metrics"):
        assert lineage[key] == dev["CustomerMetadataProperties"][key]
    assert lineage["promoted_from"] == dev["ModelPackageArn"] and lineage["source_version"] == "1"
    assert prod["MetadataProperties"]["CommitId"] == dev["MetadataProperties"]["CommitId"]
    record = world.pending("prod", world.prod_run["name"])
    assert [a["S"] for a in record["approvers"]["L"]] == [PROD_APPROVER, TRAINER]
    assert record["requested_by"]["S"].endswith(f"/{TRAINER}")  # who trained it, in dev


def test_in_prod_neither_the_trainer_nor_a_dev_approver_can_approve_it(world):
    with pytest.raises(DecisionRefused, match="Self-approval refused"):
        promote(world.pipelines("prod", TRAINER), world.delivery(), "churn", "1", "prod", "my own model")
    role = f"arn:aws:iam::{PROD}:role/{naming.person_role('prod', 'approver')}"
    world.people[("prod", DEV_APPROVER)] = iam.sign_in(role, DEV_APPROVER, PROD, tags={naming.MODEL_TAG: "churn"})
    with pytest.raises(DecisionRefused, match="is not mapped to an approver of churn"):
        promote(world.pipelines("prod", DEV_APPROVER), world.delivery(), "churn", "1", "prod", "approved in dev already")
    assert world.pending("prod", world.prod_run["name"]) is not None


def test_a_prod_approver_promotes_it_and_prod_serves_the_same_model_on_its_own(world):
    decided = promote(world.pipelines("prod", PROD_APPROVER), world.delivery(), "churn", "1", "prod", "reviewed the dev run")
    assert decided["package"] == package(world, "prod")["ModelPackageArn"]
    done = world.world.wait_for("prod", world.prod_run["executionArn"], lambda d: d["status"] != "RUNNING")
    assert done["status"] == "SUCCEEDED", done
    rows = world.rows()
    # dev, the training account, serves nothing (one serving endpoint per environment, and none there): prod's answers
    # are those of the very artifact dev trained and smoke-tested.
    assert world.predict("prod", rows) == world.predict_with_artifact("dev", model_data(package(world, "dev")), rows)
    prod = package(world, "prod")
    assert prod["ModelApprovalStatus"] == "Approved"
    assert prod["ApprovalDescription"].startswith(f"approved by {PROD_APPROVER} at ")
    overview = stage_overview("churn", {env: world.pipelines(env, approver) for env, approver in
                                        (("dev", DEV_APPROVER), ("prod", PROD_APPROVER))}, world.delivery())
    assert [(row["stage"], row["source_version"], row["approved_by"]) for row in overview] == [
        ("dev", 1, DEV_APPROVER), ("prod", 1, PROD_APPROVER)]
    assert overview[1]["approved_at"] == decided["decided_at"]
    assert overview[0]["sha256"] == overview[1]["sha256"] == decided["sha256"]


def test_a_package_is_offered_once(world):
    before = len(world.executions("prod"))
    world.world.execution_status_changed("dev", world.trained["executionArn"])
    assert len(world.executions("prod")) == before
    assert any(d.target.endswith(":function:" + world.world.function("dev", "PromotionOffersOfferHandler").name)
               for d in world.world.router.deliveries[-1:])


# ------------------------------------------------------------------ every cross-account grant is needed

def import_again(world, execution: str, sha256: str | None = None):
    """The prod import step, run for the dev package again (its once-only claim cleared first)."""
    dev = package(world, "dev")
    prod = world.world.accounts["prod"]
    prod.client("dynamodb").delete_item(TableName=naming.audit_table("prod"), Key={
        "pk": {"S": "model#churn"}, "sk": {"S": f"promotion#{dev['ModelPackageArn']}"}})
    offer = {"model": "churn", "env": "dev", "package_arn": dev["ModelPackageArn"], "version": 1,
             "sha256": sha256 or dev["CustomerMetadataProperties"][SHA256_KEY],
             "source_package_arn": dev["ModelPackageArn"], "source_version": 1}
    function = world.world.function("prod", "PromotionsImportHandler")
    arn = f"arn:aws:states:us-east-1:{PROD}:execution:churn-prod-retraining:{execution}"
    return prod.dispatch.invoke(function.name, {"execution_arn": arn, "execution_name": execution, "state": {
        "offer": offer, "offered_by_account": DEV, "offer_source": offer_source("churn")}})


def statement_names(part: str):
    return lambda statement: part in json.dumps(statement)


def test_with_every_grant_in_place_the_import_succeeds(world):
    state = import_again(world, "grants-all-present")
    assert state["registration"]["model_package_arn"].endswith("/churn-prod/2")


RESOURCE_GRANTS = {  # the dev account's resource policies, set by its registry stack
    "dev bucket policy": (lambda w: f"arn:aws:s3:::{naming.artifact_bucket('dev', DEV, 'us-east-1')}", "PromoteToProd"),
    "dev key policy": (lambda w: w.world.policies.bucket_keys[naming.artifact_bucket("dev", DEV, "us-east-1")],
                       "PromoteToProd"),
    "dev model package group policy": (lambda w: f"arn:aws:sagemaker:us-east-1:{DEV}:model-package-group/churn-dev",
                                       "PromoteToProd"),
}
IDENTITY_GRANTS = {  # the prod import role's own statements naming dev's resources
    "prod import role: read dev objects": statement_names(f"mlops-dev-artifacts-{DEV}-us-east-1/releases/{MODEL}/*"),
    "prod import role: decrypt with dev's key": statement_names("alias/mlops-dev"),
    "prod import role: describe dev packages": statement_names(f"{DEV}:model-package/{MODEL}-dev/*"),
}


@pytest.mark.parametrize("grant", RESOURCE_GRANTS)
def test_without_the_dev_accounts_resource_policy_the_import_is_denied(world, grant):
    resource, sid = RESOURCE_GRANTS[grant]
    with world.world.policies.without_statement(resource(world), sid):
        with pytest.raises(Exception, match="AccessDenied|not authorized"):
            import_again(world, f"without-{sid}-{len(grant)}")


@pytest.mark.parametrize("grant", IDENTITY_GRANTS)
def test_without_the_import_roles_own_statement_the_import_is_denied(world, grant):
    with world.world.role_without(IMPORTER, IDENTITY_GRANTS[grant]):
        with pytest.raises(Exception, match="AccessDenied|not authorized"):
            import_again(world, f"without-identity-{len(grant)}")


def offer_again(world, model: str = "churn") -> str:
    """An offer put on prod's promotion bus by dev's offer role acting for churn, as the offer function puts one; the
    outcome of its delivery to prod's receive function, or the error of the PutEvents."""
    offerer = world.world.function("dev", "PromotionOffersOfferHandler")
    credentials = offerer.credentials.client("sts", "us-east-1").assume_role(
        RoleArn=OFFERER, RoleSessionName="churn", DurationSeconds=900,
        Tags=[{"Key": naming.MODEL_TAG, "Value": "churn"}])["Credentials"]
    events = iam.Credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"],
                             credentials["SessionToken"]).client("events", "us-east-1")
    detail = {"model": model, "env": "dev", "package_arn": package(world, "dev")["ModelPackageArn"], "version": 1,
              "sha256": "ff" * 32, "source_package_arn": "-", "source_version": 1}
    before = len(world.world.router.deliveries)
    try:
        events.put_events(Entries=[{"Source": offer_source(model), "DetailType": OFFERED, "Detail": json.dumps(detail),
                                    "EventBusName": PROD_BUS}])
    except Exception as error:
        return str(error)
    (delivered,) = world.world.router.deliveries[before:]
    return delivered.outcome


def test_the_offer_reaches_prod_only_with_the_offer_roles_grant_and_prods_bus_policy(world):
    assert offer_again(world) == "delivered"
    with world.world.role_without(OFFERER, statement_names("mlops-prod-promotions")):
        assert "not authorized to perform: events:PutEvents" in offer_again(world)
    sid = next(s["Sid"] for s in world.world.policies.documents[PROD_BUS]["Statement"] if "OffersFromDev" in s["Sid"])
    with world.world.policies.without_statement(PROD_BUS, sid):
        assert "not authorized to perform: events:PutEvents" in offer_again(world)
    for run in world.executions("prod"):  # the delivered offer's run ends (its digest is no recorded one)
        world.world.wait_for("prod", run["executionArn"], lambda d: d["status"] != "RUNNING")


def test_an_offer_acting_for_churn_cannot_claim_to_be_another_models(world):
    assert "not authorized to perform: events:PutEvents" in offer_again(world, model="houses")  # its own role's
    # And prod's bus policy on its own: with an unconditioned PutEvents in the offer role, houses is still refused.
    iam_client, role = world.world.accounts["dev"].client("iam"), OFFERER.rsplit("/", 1)[1]
    with world.world.role_without(OFFERER, statement_names("events:source")):
        iam_client.put_role_policy(RoleName=role, PolicyName="unconditioned", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": PROD_BUS}]}))
        try:
            assert "not authorized to perform: events:PutEvents" in offer_again(world, model="houses")
            assert offer_again(world) == "delivered"
        finally:
            iam_client.delete_role_policy(RoleName=role, PolicyName="unconditioned")
    for run in world.executions("prod"):
        world.world.wait_for("prod", run["executionArn"], lambda d: d["status"] != "RUNNING")


def test_bytes_that_differ_from_the_recorded_digest_are_refused_and_their_copy_removed(world):
    dev = package(world, "dev")
    recorded = dev["CustomerMetadataProperties"][SHA256_KEY]
    sagemaker = world.world.accounts["dev"].client("sagemaker")
    sagemaker.update_model_package(ModelPackageArn=dev["ModelPackageArn"], CustomerMetadataProperties={SHA256_KEY: "0" * 64})
    try:
        with pytest.raises(PromotionRefused, match="changed since approval"):
            import_again(world, "tampered", sha256="0" * 64)
    finally:
        sagemaker.update_model_package(ModelPackageArn=dev["ModelPackageArn"], CustomerMetadataProperties={SHA256_KEY: recorded})
    bucket = naming.artifact_bucket("prod", PROD, "us-east-1")
    keys = world.world.accounts["prod"].client("s3").list_object_versions(Bucket=bucket, Prefix="models/churn/promoted/")
    assert not [v for v in keys.get("Versions", []) if "/tampered/" in v["Key"]]

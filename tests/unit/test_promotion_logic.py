"""Promotion's pure logic: the offer is only a trigger, the registry and the bytes decide."""

from __future__ import annotations

import json

import pytest

from lambdas.promotion import logic
from pipelines.promotion import SHA256_KEY, VERSION_KEY

DEV, PROD = "111111111111", "333333333333"
ARN = f"arn:aws:sagemaker:us-east-1:{DEV}:model-package/churn-dev/3"
DIGEST = "ab" * 32
BUCKET = f"mlops-dev-artifacts-{DEV}-us-east-1"


def offer(**changes) -> logic.ImportInput:
    detail = {"model": "churn", "env": "dev", "package_arn": ARN, "version": 3, "sha256": DIGEST,
              "source_package_arn": ARN, "source_version": 3, **changes.pop("detail", {})}
    return logic.ImportInput.model_validate({"offer": detail, "offered_by_account": DEV,
                                             "offer_source": "mlops.promotion.churn", **changes})


def check(received: logic.ImportInput) -> logic.Offer:
    return logic.check_offer(received, model="churn", upstream_env="dev", upstream_account=DEV, region="us-east-1",
                             group="churn-dev")


def package(**changes) -> dict:
    return {"ModelPackageArn": ARN, "ModelPackageVersion": 3, "ModelApprovalStatus": "Approved",
            "CustomerMetadataProperties": {SHA256_KEY: DIGEST, VERSION_KEY: "v1", "git_commit": "0123abc",
                                           "requested_by": "arn:aws:sts::111111111111:assumed-role/ds/alice@example.com",
                                           "metrics": json.dumps({"validation:auc": 0.81}), "challenger_value": "0.81",
                                           "objective": "validation:auc", "dataset_sha256": "cd" * 32,
                                           "hyperparameters": json.dumps({"epochs": 4})},
            "MetadataProperties": {"GeneratedBy": f"arn:aws:states:us-east-1:{DEV}:execution:churn-dev-retraining:run-1"},
            "InferenceSpecification": {"Containers": [{"ModelDataUrl": f"s3://{BUCKET}/releases/churn/{DIGEST}/model.tar.gz"}]},
            "ModelMetrics": {"ModelQuality": {"Statistics": {"S3Uri": f"s3://{BUCKET}/runs/churn/run-1/evaluation.json"}}},
            "DriftCheckBaselines": {"ModelDataQuality": {
                "Statistics": {"S3Uri": f"s3://{BUCKET}/runs/churn/run-1/baseline/statistics.json"},
                "Constraints": {"S3Uri": f"s3://{BUCKET}/runs/churn/run-1/baseline/constraints.json"}}},
            **changes}


def test_an_offer_from_the_previous_stage_naming_its_own_package_is_accepted():
    assert check(offer()).package_arn == ARN


@pytest.mark.parametrize("received, why", [
    (offer(offered_by_account=PROD), "not by dev"),
    (offer(detail={"model": "houses"}), "reached the churn promotion"),
    (offer(detail={"env": "staging"}), "reached the churn promotion"),
    (offer(offer_source="mlops.promotion.houses"), "reached the churn promotion"),  # the sender was bound to houses
    (offer(offer_source=""), "reached the churn promotion"),
    (offer(detail={"package_arn": ARN.replace(DEV, "999999999999")}), "is not version 3"),
    (offer(detail={"package_arn": ARN.replace("churn-dev", "houses-dev")}), "is not version 3"),
    (offer(detail={"version": 4}), "is not version 4"),
])
def test_an_offer_from_elsewhere_or_for_another_package_is_refused(received, why):
    with pytest.raises(logic.PromotionRefused, match=why):
        check(received)


def test_an_offer_whose_digest_is_not_hex_sha256_does_not_parse():
    with pytest.raises(ValueError):
        offer(detail={"sha256": "not-a-digest"})


def test_the_upstream_package_must_be_approved_with_the_offered_digest_recorded():
    assert logic.check_upstream(package(), check(offer()))[SHA256_KEY] == DIGEST
    with pytest.raises(logic.PromotionRefused, match="Rejected upstream"):
        logic.check_upstream(package(ModelApprovalStatus="Rejected"), check(offer()))
    with pytest.raises(logic.PromotionRefused, match="the offer says"):
        logic.check_upstream(package(), check(offer(detail={"sha256": "ef" * 32})))


def test_files_are_read_only_under_the_prefixes_the_upstream_shares():
    files = logic.upstream_files(package(), BUCKET, "churn", "train.csv")
    assert files["smoke_sample"] == f"s3://{BUCKET}/runs/churn/run-1/data/train.csv"
    escaped = package(InferenceSpecification={"Containers": [{"ModelDataUrl": f"s3://{BUCKET}/releases/churn/../../secrets/x"}]})
    other = package(InferenceSpecification={"Containers": [{"ModelDataUrl": "s3://elsewhere/models/churn/model.tar.gz"}]})
    for bad in (escaped, other):
        with pytest.raises(logic.PromotionRefused, match="lie outside"):
            logic.upstream_files(bad, BUCKET, "churn", "train.csv")


def test_the_bias_and_explainability_reports_are_copied_when_the_package_has_them_and_only_from_the_shared_prefixes():
    run = f"s3://{BUCKET}/runs/churn/run-1/"
    metrics = {**package()["ModelMetrics"], "Bias": {"Report": {"S3Uri": f"{run}bias.json"}},
               "Explainability": {"Report": {"S3Uri": f"{run}explainability.json"}}}
    files = logic.upstream_files(package(ModelMetrics=metrics), BUCKET, "churn", "train.csv")
    assert (files["bias"], files["explainability"]) == (f"{run}bias.json", f"{run}explainability.json")
    assert "bias_pre_training" not in files and "bias" not in logic.upstream_files(package(), BUCKET, "churn", "train.csv")
    keys = logic.target_keys("churn", "promo-1", "dev", 3, "train.csv")
    assert keys["bias_post_training"] == "runs/churn/promo-1/promoted/bias_post_training.json"
    stray = {**metrics, "Bias": {"PreTrainingReport": {"S3Uri": "s3://elsewhere/runs/churn/run-1/bias.json"}}}
    with pytest.raises(logic.PromotionRefused, match="lie outside"):
        logic.upstream_files(package(ModelMetrics=stray), BUCKET, "churn", "train.csv")


def test_the_promoted_card_keeps_the_content_and_asks_this_stages_approver_to_review_it():
    card = {"ModelCardContent": '{"intended_uses": {"risk_rating": "Low"}}', "ModelCardStatus": "Approved"}
    assert logic.promoted_model_card(package(ModelCard=card)) == {**card, "ModelCardStatus": "PendingReview"}
    assert logic.promoted_model_card(package()) is None


def test_the_smoke_sample_is_the_header_and_complete_rows_only():
    head = b"a,b\n1,2\n3,4\n5,"
    assert logic.smoke_sample(head, rows=20) == b"a,b\n1,2\n3,4\n"
    assert logic.smoke_sample(head, rows=1) == b"a,b\n1,2\n"
    with pytest.raises(logic.PromotionRefused, match="no complete row"):
        logic.smoke_sample(b"a,b\n1,", rows=20)


def test_a_digest_that_differs_from_the_recorded_one_refuses_the_promotion():
    logic.check_digest("copy", DIGEST, DIGEST)
    with pytest.raises(logic.PromotionRefused, match="changed since approval"):
        logic.check_digest("copy", "00" * 32, DIGEST)


def test_the_promoted_lineage_keeps_the_source_lineage_and_says_where_it_came_from():
    upstream = {**package()["CustomerMetadataProperties"], "offered_to_prod": "2026-11-23T00:00:00Z"}
    lineage = logic.promoted_lineage(upstream, upstream_arn=ARN, upstream_version=3, upstream_env="dev",
                                     upstream_account=DEV, execution_arn="arn:exec", version_id="v9")
    assert lineage["git_commit"] == "0123abc" and lineage[SHA256_KEY] == DIGEST
    assert lineage["source_package_arn"] == ARN and lineage["source_version"] == "3"
    assert lineage["promoted_from"] == ARN and lineage[VERSION_KEY] == "v9"
    assert not any(key.startswith(logic.OFFERED_TO) for key in lineage)
    second_hop = logic.promoted_lineage(lineage, upstream_arn="arn:staging/1", upstream_version=1, upstream_env="staging",
                                       upstream_account="222222222222", execution_arn="arn:exec2", version_id="v1")
    assert second_hop["source_package_arn"] == ARN and second_hop["source_version"] == "3"
    assert second_hop["promoted_from"] == "arn:staging/1"


def test_a_lineage_sagemaker_cannot_hold_is_refused():
    crowded = {f"key{i}": "x" for i in range(45)}
    with pytest.raises(logic.PromotionRefused, match="at most 50"):
        logic.promoted_lineage(crowded, upstream_arn=ARN, upstream_version=3, upstream_env="dev",
                               upstream_account=DEV, execution_arn="arn:exec", version_id="v1")


def test_the_promotion_run_carries_the_trainer_as_requester_and_the_recorded_metrics():
    lineage = logic.promoted_lineage(package()["CustomerMetadataProperties"], upstream_arn=ARN, upstream_version=3,
                                     upstream_env="dev", upstream_account=DEV, execution_arn="arn:exec", version_id="v9")
    uris = {name: f"s3://prod/{name}" for name in ("model", "evaluation", "statistics", "constraints", "smoke_sample")}
    state = logic.run_state(model="churn", lineage=lineage, execution_arn="arn:exec", execution_name="exec",
                            upstream_env="dev", upstream_version=3, uris=uris, package_arn="arn:prod/1", version=1,
                            champion_arn=None, objective="validation:auc", image="serving-image")
    assert state["run"]["requested_by"].endswith("/alice@example.com")  # who trained it cannot approve it anywhere
    assert state["run"]["trigger"] == "promotion" and state["run"]["hyperparameters"] == {"epochs": "4"}
    assert state["evaluation"]["value"] == 0.81 and state["evaluation"]["metrics"] == {"validation:auc": 0.81}
    assert state["validation"]["snapshot_uri"] == "s3://prod/smoke_sample"
    assert state["registration"] == {  # what this stage's approval binds: its own released copy, the same bytes
        "model_package_arn": "arn:prod/1", "version": 1, "artifact_uri": "s3://prod/model", "artifact_sha256": DIGEST,
        "artifact_version_id": "v9", "image": "serving-image"}


def test_only_the_newest_approved_package_that_production_serves_is_offered_once_per_stage():
    newest = package()
    assert logic.what_to_offer(None, None, "prod") == (None, "no Approved package")
    assert logic.what_to_offer(newest, "arn:other", "prod")[0] is None
    assert logic.what_to_offer(newest, ARN, "prod")[0] is newest
    offered = package(CustomerMetadataProperties={**newest["CustomerMetadataProperties"], "offered_to_prod": "t"})
    assert logic.what_to_offer(offered, ARN, "prod") == (None, f"{ARN} was already offered to prod")
    assert logic.what_to_offer(offered, ARN, "staging")[0] is offered


def test_the_offer_event_goes_to_the_next_stages_bus_its_source_naming_the_model_with_the_recorded_digest():
    bus = f"arn:aws:events:us-east-1:{PROD}:event-bus/mlops-prod-promotions"
    entry = logic.offer_event(logic.offer_of(package(), "churn", "dev", approved_sha256=DIGEST), bus)
    detail = json.loads(entry["Detail"])
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == ("mlops.promotion.churn", "Model Package Offered", bus)
    assert detail["sha256"] == DIGEST and detail["source_version"] == 3


def test_no_offer_when_the_registry_digest_is_not_the_approved_one():
    """The approval record's digest is what was approved; lineage someone rewrote (UpdateModelPackage) offers nothing."""
    with pytest.raises(logic.PromotionRefused, match="changed after approval"):
        logic.offer_of(package(), "churn", "dev", approved_sha256="cd" * 32)


def test_the_newest_approved_package_is_the_served_one_unless_a_later_version_is_approved():
    served = package()
    later = [package(ModelPackageArn=f"{ARN[:-1]}4", ModelApprovalStatus="Rejected"),
             package(ModelPackageArn=f"{ARN[:-1]}5", ModelApprovalStatus="PendingManualApproval")]
    assert logic.newest_approved(served, later) is served
    approved_later = package(ModelPackageArn=f"{ARN[:-1]}6")
    assert logic.newest_approved(served, [*later, approved_later]) is approved_later
    assert logic.newest_approved(package(ModelApprovalStatus="Rejected"), later) is None
    assert logic.newest_approved(None, []) is None


def test_where_nothing_serves_the_newest_package_a_run_released_is_offered_not_a_later_unreleased_approval():
    from pipelines import naming

    def package(version: int, status: str, released: bool) -> dict:
        return {"ModelPackageArn": f"arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-dev/{version}",
                "ModelApprovalStatus": status,
                "CustomerMetadataProperties": {naming.RELEASED_BY_KEY: f"run-{version}"} if released else {}}

    versions = [package(1, "Approved", True), package(2, "Rejected", False), package(3, "Approved", True),
                package(4, "Approved", False)]  # 4: approved, then its run was stopped before the smoke test passed
    assert logic.newest_released(versions)["ModelPackageArn"].endswith("/3")
    # A group released before the marker existed: its newest Approved package.
    assert logic.newest_released([package(1, "Approved", False), package(2, "Approved", False)])["ModelPackageArn"].endswith("/2")
    assert logic.newest_released([package(1, "Rejected", False)]) is None

"""The local emulation keeps a model package's ModelCard as SageMaker does (moto drops it): returned by
DescribeModelPackage, its status updated alone without losing its content, and AWS's refusals kept."""

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from pipelines.local.moto_extensions import MODEL_CARD_MAX_CHARS
from tests.integration.conftest import released_package

CONTENT = json.dumps({"intended_uses": {"risk_rating": "Low"}})


def describe(arn: str) -> dict:
    return boto3.client("sagemaker").describe_model_package(ModelPackageName=arn)


def test_a_card_registered_with_the_package_is_described_with_it(platform):
    arn = released_package(ModelCard={"ModelCardContent": CONTENT, "ModelCardStatus": "PendingReview"})
    assert describe(arn)["ModelCard"] == {"ModelCardContent": CONTENT, "ModelCardStatus": "PendingReview"}
    assert "ModelCard" not in describe(released_package(body=b"other bytes"))


def test_updating_the_status_alone_keeps_the_content_and_other_updates_keep_the_card(platform):
    sagemaker = boto3.client("sagemaker")
    arn = released_package(ModelCard={"ModelCardContent": CONTENT, "ModelCardStatus": "PendingReview"})
    sagemaker.update_model_package(ModelPackageArn=arn, ModelCard={"ModelCardStatus": "Approved"})
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    assert describe(arn)["ModelCard"] == {"ModelCardContent": CONTENT, "ModelCardStatus": "Approved"}


def test_a_content_longer_than_sagemaker_keeps_is_refused_and_nothing_is_registered(platform):
    with pytest.raises(ClientError, match="ModelCardContent"):
        released_package(ModelCard={"ModelCardContent": "x" * (MODEL_CARD_MAX_CHARS + 1), "ModelCardStatus": "Draft"})
    assert boto3.client("sagemaker").list_model_packages(ModelPackageGroupName="churn-dev")["ModelPackageSummaryList"] == []


def test_an_archived_cards_content_cannot_change(platform):
    sagemaker = boto3.client("sagemaker")
    arn = released_package(ModelCard={"ModelCardContent": CONTENT, "ModelCardStatus": "Archived"})
    with pytest.raises(ClientError, match="Archived"):
        sagemaker.update_model_package(ModelPackageArn=arn, ModelCard={"ModelCardContent": "{}"})
    assert describe(arn)["ModelCard"]["ModelCardContent"] == CONTENT

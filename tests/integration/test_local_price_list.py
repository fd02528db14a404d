"""The local emulation answers pricing:GetProducts from recorded prices (pipelines/local/price_list.py): the local
mode's approval email carries a real estimate instead of "Cost estimate unavailable: ... 404: Not yet implemented"."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from pipelines.local import moto_extensions
from tests.integration.test_approval import APPROVERS, approval, request  # noqa: F401 - the approval fixture
from tests.support.pricing import recorded_items

S3_IN_US_EAST_1 = {"ServiceCode": "AmazonS3", "Filters": [
    {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"},
    {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Storage"}]}


@pytest.fixture
def emulation():
    moto_extensions.install()
    with mock_aws():
        yield boto3.client("pricing", region_name="us-east-1")


def recorded_matching(service: str, **attributes) -> list[str]:
    def keeps(item: dict) -> bool:
        product = item["product"]
        fields = {**product["attributes"], "productFamily": product.get("productFamily")}
        return item["serviceCode"] == service and all(fields.get(k) == v for k, v in attributes.items())

    return [raw for raw in recorded_items() if keeps(json.loads(raw))]


def test_get_products_answers_the_recorded_items_its_filters_keep(emulation):
    answer = emulation.get_products(**S3_IN_US_EAST_1, FormatVersion="aws_v1")
    expected = recorded_matching("AmazonS3", regionCode="us-east-1", productFamily="Storage")
    assert answer["FormatVersion"] == "aws_v1" and answer["PriceList"] == expected and expected
    assert emulation.get_products(ServiceCode="AmazonS3", Filters=[
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "eu-west-3"}])["PriceList"] == []


def test_get_products_pages_by_max_results_and_next_token(emulation):
    pages = emulation.get_paginator("get_products").paginate(**S3_IN_US_EAST_1, PaginationConfig={"PageSize": 2})
    items = [item for page in pages for item in page["PriceList"]]
    assert items == recorded_matching("AmazonS3", regionCode="us-east-1", productFamily="Storage") and len(items) > 2


def test_the_approval_email_under_the_emulation_carries_a_cost_estimate(approval):  # noqa: F811
    for message in (found["message"] for found in request(approval).values()):
        assert "Cost estimate of churn (us-east-1, AWS Price List on-demand USD):" in message
        assert "per month with 4.35 runs: $85.74 (budget $500.00)" in message  # one serving endpoint
        assert "Cost estimate unavailable" not in message and "Not yet implemented" not in message


def test_enforced_iam_lets_only_a_caller_allowed_pricing_get_products_ask(emulation):
    iam = boto3.client("iam")
    keys = {}
    for user, action in (("pricer", "pricing:GetProducts"), ("reader", "s3:GetObject")):
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": action, "Resource": "*"}]}))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = boto3.client("pricing", region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                                  aws_secret_access_key=key["SecretAccessKey"])

    @set_initial_no_auth_action_count(0)  # IAM enforced from the first call, as in the local mode
    def ask(user: str) -> dict:
        return keys[user].get_products(**S3_IN_US_EAST_1)

    assert ask("pricer")["PriceList"]
    with pytest.raises(ClientError) as refused:
        ask("reader")
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "pricing:GetProducts" in refused.value.response["Error"]["Message"]

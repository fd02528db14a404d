"""Price List access (lambdas/shared/pricing.py) against botocore's Stubber: the GetProducts requests are checked
against the real service model (moto has no pricing service), answered from the recorded us-east-1 response."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.shared import cost, pricing
from pipelines.spec import load_environments, load_spec
from tests.conftest import REPO_ROOT
from tests.support.pricing import RECORDED, recorded_items, recorded_where

DEV = {environment.name: environment for environment in load_environments()}["dev"]
CHURN_DEV = load_spec(REPO_ROOT / "pipelines/churn/model.yaml", DEV.overrides)


def attributes(item: dict) -> dict:
    return item["product"]["attributes"]


def term(field: str, value: str) -> dict:
    return {"Type": "TERM_MATCH", "Field": field, "Value": value}


# What churn in dev must ask, written out by hand: one request per SageMaker instance type, one per other service.
EXPECTED = [
    ({"ServiceCode": "AmazonSageMaker", "FormatVersion": "aws_v1", "MaxResults": 100, "Filters": [
        term("regionCode", "us-east-1"), term("productFamily", "ML Instance"), term("instanceName", "ml.g5.xlarge")]},
     lambda item: item["serviceCode"] == "AmazonSageMaker" and attributes(item).get("instanceName") == "ml.g5.xlarge"),
    ({"ServiceCode": "AmazonSageMaker", "FormatVersion": "aws_v1", "MaxResults": 100, "Filters": [
        term("regionCode", "us-east-1"), term("productFamily", "ML Instance"), term("instanceName", "ml.m5.large")]},
     lambda item: item["serviceCode"] == "AmazonSageMaker" and attributes(item).get("instanceName") == "ml.m5.large"),
    ({"ServiceCode": "AmazonS3", "FormatVersion": "aws_v1", "MaxResults": 100, "Filters": [
        term("regionCode", "us-east-1"), term("productFamily", "Storage")]},
     lambda item: item["serviceCode"] == "AmazonS3" and item["product"].get("productFamily") == "Storage"),
    ({"ServiceCode": "AWSLambda", "FormatVersion": "aws_v1", "MaxResults": 100, "Filters": [
        term("regionCode", "us-east-1"), term("productFamily", "Serverless")]},
     lambda item: item["serviceCode"] == "AWSLambda"),
    ({"ServiceCode": "AmazonStates", "FormatVersion": "aws_v1", "MaxResults": 100, "Filters": [
        term("regionCode", "us-east-1"), term("productFamily", "AWS Step Functions")]},
     lambda item: item["serviceCode"] == "AmazonStates"),
]


@pytest.fixture
def stubbed():
    client = boto3.client("pricing", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def answer_all(stubber: Stubber) -> None:
    for parameters, keep in EXPECTED:
        stubber.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": recorded_where(keep)}, parameters)


def test_churn_in_dev_asks_for_five_product_sets_with_term_match_filters(stubbed):
    client, stubber = stubbed
    answer_all(stubber)
    items = pricing.fetch(CHURN_DEV, "us-east-1", pricing_client=client)
    assert sorted(items) == sorted(set(items))  # no item twice
    result = cost.estimate(CHURN_DEV, "us-east-1", items, environment="dev")
    # arm64 Lambda: drift 730 x 1769/1024 GB x 20 s x $0.0000133334 + 730 x $0.0000002; quality the same 730 / 24 times
    # (rate(1 day)); reconciler 2,920 x 0.5 GB x 1 s ...
    quality = 730 / 24 * (1769 / 1024 * 20 * 0.0000133334 + 0.0000002)
    assert result.total(cost.IDLE) == pytest.approx(730 * 0.115 + 0.197841 + 0.336446 + quality + 0.020051, abs=1e-5)
    assert result.monthly == pytest.approx(85.74, abs=0.005)


def test_the_stubbed_answers_price_exactly_like_the_recorded_file(stubbed):
    client, stubber = stubbed
    answer_all(stubber)
    fetched = cost.estimate(CHURN_DEV, "us-east-1", pricing.fetch(CHURN_DEV, "us-east-1", pricing_client=client))
    recorded = cost.estimate(CHURN_DEV, "us-east-1", pricing.load_recorded(RECORDED))
    assert fetched.as_dict() == recorded.as_dict()


def test_every_page_of_an_answer_is_read(stubbed):
    client, stubber = stubbed
    request = cost.ProductRequest("AmazonStates", (("regionCode", "us-east-1"), ("productFamily", "AWS Step Functions")))
    first, second = recorded_where(lambda item: item["serviceCode"] == "AmazonStates")[:2]
    parameters = {**EXPECTED[-1][0]}
    stubber.add_response("get_products", {"PriceList": [first], "NextToken": "page-2"}, parameters)
    stubber.add_response("get_products", {"PriceList": [second]}, {**parameters, "NextToken": "page-2"})
    assert pricing.get_products(client, request) == [first, second]


def test_access_denied_says_which_permission_is_missing(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("get_products", "AccessDeniedException", "User is not authorized to perform: pricing:GetProducts",
                             400, expected_params=EXPECTED[0][0])
    with pytest.raises(pricing.PricingUnavailable, match=r"refused GetProducts \(AccessDeniedException: User is not "
                                                         r"authorized.*\); fix: allow pricing:GetProducts"):
        pricing.fetch(CHURN_DEV, "us-east-1", pricing_client=client)


def test_without_credentials_the_error_is_one_line_with_the_fix(monkeypatch):
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup: nothing leaves the machine
    with pytest.raises(pricing.PricingUnavailable) as raised:
        pricing.fetch(CHURN_DEV, "us-east-1")
    assert "\n" not in str(raised.value) and "no AWS credentials" in str(raised.value) and "--prices FILE" in str(raised.value)


def test_a_slow_price_list_stops_at_the_deadline_between_requests(stubbed, monkeypatch):
    client, stubber = stubbed
    stubber.add_response("get_products", {"PriceList": []}, EXPECTED[0][0])
    clock = iter([0.0, 1.0, 25.0])
    monkeypatch.setattr(pricing.time, "monotonic", lambda: next(clock))
    with pytest.raises(pricing.PricingUnavailable, match="did not answer within 20 s"):
        pricing.fetch(CHURN_DEV, "us-east-1", pricing_client=client, deadline_s=20)


@pytest.mark.parametrize("region, endpoint", [("us-east-1", "us-east-1"), ("us-west-2", "us-east-1"),
                                              ("eu-west-1", "eu-central-1"), ("il-central-1", "eu-central-1"),
                                              ("ap-southeast-2", "ap-south-1"), ("sa-east-1", "us-east-1")])
def test_the_nearest_of_the_three_price_list_endpoints_answers(region, endpoint):
    assert pricing.endpoint_region(region) == endpoint
    assert pricing.client(region).meta.region_name == endpoint


def test_the_endpoint_region_is_one_the_service_model_resolves():
    for endpoint in set(pricing.PRICE_LIST_REGIONS.values()):
        assert boto3.client("pricing", region_name=endpoint).meta.endpoint_url == f"https://api.pricing.{endpoint}.amazonaws.com"


def test_cost_lines_never_raise_and_say_why_when_prices_are_missing(stubbed, monkeypatch):
    client, stubber = stubbed
    stubber.add_client_error("get_products", "ThrottlingException", "Rate exceeded\nretry later", 400)
    monkeypatch.setattr(pricing, "client", lambda region, timeout_s=10: client)
    lines = pricing.cost_lines(CHURN_DEV, "us-east-1")
    assert lines == ["Cost estimate unavailable: the Price List API refused GetProducts (ThrottlingException: "
                     "Rate exceeded retry later)"]


def test_cost_lines_report_a_price_the_list_lacks(stubbed, monkeypatch):
    client, stubber = stubbed
    for parameters, _ in EXPECTED:
        stubber.add_response("get_products", {"PriceList": []}, parameters)
    monkeypatch.setattr(pricing, "client", lambda region, timeout_s=10: client)
    (line,) = pricing.cost_lines(CHURN_DEV, "us-east-1")
    assert line.startswith("Cost estimate unavailable: SageMaker training ml.g5.xlarge in us-east-1: no on-demand price")


def test_cost_lines_give_the_table_when_the_price_list_answers(stubbed, monkeypatch):
    client, stubber = stubbed
    answer_all(stubber)
    monkeypatch.setattr(pricing, "client", lambda region, timeout_s=10: client)
    lines = pricing.cost_lines(CHURN_DEV, "us-east-1", environment="dev")
    assert lines[0] == "Cost estimate of churn (dev, us-east-1, AWS Price List on-demand USD):"
    assert "  per month with 4.35 runs: $85.74 (budget $500.00)" in lines


def test_a_recorded_response_round_trips(tmp_path):
    path = tmp_path / "prices.json"
    pricing.save_recorded(path, recorded_items())
    assert pricing.load_recorded(path) == recorded_items()
    assert json.loads(path.read_text())["FormatVersion"] == "aws_v1"


@pytest.mark.parametrize("content, message", [
    (None, "no such file; fix: record one"), ("{", "not JSON"), ('{"Items": []}', "no PriceList list"),
    ('{"FormatVersion": "aws_v2", "PriceList": []}', "FormatVersion 'aws_v2'")])
def test_a_bad_recorded_file_is_refused_with_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "prices.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message):
        pricing.load_recorded(path)


def test_cost_lines_without_a_region_say_so(monkeypatch):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert pricing.cost_lines(CHURN_DEV) == ["Cost estimate unavailable: no region to price in (AWS_REGION is not set)"]

"""A control-plane function takes a new session per model it acts for: it must not parse AWS's models again."""

import boto3

from lambdas.shared.sessions import new_session


def test_new_sessions_share_the_parsed_service_models_but_keep_their_own_credentials_and_region():
    first = new_session(aws_access_key_id="AKIAFIRST", aws_secret_access_key="one", region_name="eu-west-1")
    second = new_session(aws_access_key_id="AKIASECOND", aws_secret_access_key="two", aws_session_token="token",
                         region_name="us-east-1")
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    assert boto3.Session()._session.get_component("data_loader") is not loader  # boto3's own sessions parse anew
    assert (first.get_credentials().access_key, second.get_credentials().access_key) == ("AKIAFIRST", "AKIASECOND")
    assert second.get_credentials().token == "token" and first.get_credentials().token is None
    assert (first.region_name, second.region_name) == ("eu-west-1", "us-east-1")
    assert first.client("s3").meta.region_name == "eu-west-1"


def test_a_client_of_a_new_session_still_signs_with_that_sessions_credentials():
    session = new_session(aws_access_key_id="AKIAOWN", aws_secret_access_key="secret", region_name="us-east-1")
    client = session.client("sts")
    assert client._request_signer._credentials.access_key == "AKIAOWN"

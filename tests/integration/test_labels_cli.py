"""`mlops labels put MODEL FILE` against moto: the accepted labels land as Model Monitor ground-truth lines under
ground-truth/<model>/yyyy/mm/dd/hh/<uuid>.jsonl of the environment's artifact bucket; the counts; exit 2 and nothing
uploaded when nothing valid was given or the file cannot be read."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from unittest import mock

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from pipelines import client as client_module
from pipelines.cli import app
from tests.integration.conftest import without_aws_credentials

BUCKET = "mlops-dev-artifacts-123456789012-us-east-1"
KEY = re.compile(r"ground-truth/churn/(\d{4}/\d{2}/\d{2}/\d{2})/[0-9a-f]{32}\.jsonl")
runner = CliRunner()


@pytest.fixture
def dev_bucket():
    """The dev environment (its account and region) emulated by moto, with its artifact bucket."""
    target = client_module.Target("dev", "123456789012", "us-east-1")
    with mock_aws(), mock.patch.object(client_module, "target_environment", lambda env: target), \
            mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def uploaded(s3) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_labels_put_files_the_accepted_labels_under_the_hour_of_the_upload(tmp_path, dev_bucket):
    file = tmp_path / "labels.csv"
    file.write_text("inference_id,label\nreq-1,1\nreq-2,0\nreq-1,0\nreq-3,maybe\n")
    before = f"{datetime.now(timezone.utc):%Y/%m/%d/%H}"
    result = runner.invoke(app, ["labels", "put", "churn", str(file), "--env", "dev"])
    after = f"{datetime.now(timezone.utc):%Y/%m/%d/%H}"
    assert result.exit_code == 0, result.output
    assert "2 accepted, 1 duplicate, 1 malformed" in result.output and "not 0 or 1" in result.output
    [key] = uploaded(dev_bucket)
    assert KEY.fullmatch(key) and KEY.fullmatch(key).group(1) in {before, after}
    assert f"s3://{BUCKET}/{key}" in result.output
    lines = dev_bucket.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "req-1"}, "eventVersion": "0"},
        {"groundTruthData": {"data": "0", "encoding": "CSV"}, "eventMetadata": {"eventId": "req-2"}, "eventVersion": "0"}]


def test_labels_put_reads_json_lines_and_reports_counts_as_json(tmp_path, dev_bucket):
    file = tmp_path / "labels.jsonl"
    file.write_text('{"inference_id": "a", "label": 1}\n{"inference_id": "", "label": 0}\n')
    result = runner.invoke(app, ["labels", "put", "churn", str(file), "--env", "dev", "--output", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert (document["accepted"], document["duplicate"], document["malformed"]) == (1, 0, 1)
    assert document["location"] == f"s3://{BUCKET}/{uploaded(dev_bucket)[0]}"


def test_labels_put_with_no_valid_label_exits_2_and_uploads_nothing(tmp_path, dev_bucket):
    file = tmp_path / "labels.csv"
    file.write_text("inference_id,label\nreq-1,7\n,1\n")
    result = runner.invoke(app, ["labels", "put", "churn", str(file), "--env", "dev"])
    assert result.exit_code == 2, result.output
    assert "no valid labels (0 accepted, 0 duplicate, 2 malformed); nothing uploaded" in result.output
    assert uploaded(dev_bucket) == []


@pytest.mark.parametrize("content, message", [
    (b"req-1,1\nreq-2,0\n", "needs a header with inference_id, label"),
    (b"\xff\xfe\x00garbage", "cannot be read as UTF-8 text"),
    (b"", "holds no labels"),
])
def test_labels_put_of_an_unreadable_file_is_one_line_exit_2_and_uploads_nothing(tmp_path, dev_bucket, content,
                                                                                    message):
    file = tmp_path / "labels.csv"
    file.write_bytes(content)
    result = runner.invoke(app, ["labels", "put", "churn", str(file), "--env", "dev"])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert uploaded(dev_bucket) == []


def test_labels_put_of_a_missing_file_says_so(tmp_path, dev_bucket):
    result = runner.invoke(app, ["labels", "put", "churn", str(tmp_path / "nowhere.csv"), "--env", "dev"])
    assert result.exit_code == 2 and "no such file" in result.output


def test_labels_put_for_an_unknown_model_is_exit_2(tmp_path, dev_bucket):
    file = tmp_path / "labels.csv"
    file.write_text("inference_id,label\nreq-1,1\n")
    result = runner.invoke(app, ["labels", "put", "nosuchmodel", str(file), "--env", "dev"])
    assert result.exit_code == 2, result.output
    assert uploaded(dev_bucket) == []


def test_labels_put_refused_by_the_bucket_is_not_allowed_exit_6(tmp_path, dev_bucket):
    from botocore.exceptions import ClientError

    file = tmp_path / "labels.csv"
    file.write_text("inference_id,label\nreq-1,1\n")
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized to perform: s3:PutObject"}},
                         "PutObject")
    with mock.patch("botocore.client.BaseClient._make_api_call", side_effect=denied):
        result = runner.invoke(app, ["labels", "put", "churn", str(file), "--env", "dev"])
    assert result.exit_code == 6, result.output
    assert "not allowed" in result.output


def test_labels_put_without_aws_credentials_is_one_line_exit_4_with_the_local_mode_named(tmp_path):
    file = tmp_path / "labels.csv"
    file.write_text("inference_id,label\nreq-1,1\n")
    with without_aws_credentials(tmp_path):
        result = runner.invoke(app, ["labels", "put", "churn", str(file), "--env", "dev"])
    assert result.exit_code == 4, result.output
    assert "no AWS credentials for dev" in result.output

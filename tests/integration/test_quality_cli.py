"""`mlops quality MODEL` against moto: the newest N reports the quality check filed under quality/<model>/<stamp>/ of
the environment's artifact bucket, oldest first, the last decision's reason and page; bounded reads; a malformed
report skipped and noted; no reports yet is one line and exit 0; AccessDenied exit 6, no credentials exit 4."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from typer.testing import CliRunner

from lambdas.shared import dal
from pipelines import client as client_module
from pipelines.cli import app
from tests.support.quality_reports import BUCKET, put_report, quality_report
from tests.integration.conftest import without_aws_credentials

runner = CliRunner()
T0 = datetime(2026, 12, 1, 6, tzinfo=timezone.utc)


@pytest.fixture
def dev_bucket():
    """The dev environment (its account and region) emulated by moto, with its artifact bucket."""
    target = client_module.Target("dev", "123456789012", "us-east-1")
    with mock_aws(), mock.patch.object(client_module, "target_environment", lambda env: target), \
            mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1", "COLUMNS": "200"}):
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield s3


@pytest.fixture
def checks(dev_bucket):
    """Five daily checks of churn: within tolerance, too few labels, then a drop; and one of another model."""
    decisions = ["within_tolerance", "within_tolerance", "insufficient_labels", "not_significant", "drop"]
    values = [0.84, 0.845, None, 0.82, 0.71]
    filed = [put_report(dev_bucket, quality_report(T0 + timedelta(days=i), decision, value=value,
                                                   joined=12 if value is None else 600))
             for i, (decision, value) in enumerate(zip(decisions, values))]
    put_report(dev_bucket, quality_report(T0 + timedelta(days=9), "drop", value=0.1, model="houses"))
    return filed


def quality(*arguments: str):
    return runner.invoke(app, ["quality", *arguments, "--env", "dev"])


def test_the_table_shows_the_checks_oldest_first_then_the_last_reason_and_page(checks):
    result = quality("churn")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = [line for line in lines if "2026-12-0" in line and "→" in line]
    assert [row.split("│")[1].strip() for row in rows] == [f"2026-12-0{day} 06:00" for day in range(1, 6)]
    assert "0.71 / 0.85" in rows[-1] and "-0.14" in rows[-1] and "quality drop" in rows[-1] and "600" in rows[-1]
    assert "too few labels" in rows[2] and "– / 0.85" in rows[2] and "1.2%" in rows[2]
    assert "last decision (2026-12-05 06:00): quality drop: drop because of the numbers" in result.output
    assert f"page: s3://{BUCKET}/quality/churn/20261205T060000Z/report.html" in result.output
    assert "houses" not in result.output


def test_json_holds_each_checks_summary_and_the_last(checks):
    result = quality("churn", "--last", "2", "--output", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [check["decision"] for check in document["checks"]] == ["not_significant", "drop"]
    last = document["last"]
    assert (last["value"], last["baseline"], last["labels_joined"], last["coverage"]) == (0.71, 0.85, 600, 0.6)
    assert last["report_uri"] == f"s3://{BUCKET}/{checks[-1]}" and document["skipped"] == []
    assert document["location"] == f"s3://{BUCKET}/quality/churn/"


def test_only_the_last_n_reports_are_read(checks):
    with mock.patch.object(dal.ObjectStore, "read_bytes", autospec=True, side_effect=dal.ObjectStore.read_bytes) as read:
        result = quality("churn", "--last", "2", "-o", "json")
    assert result.exit_code == 0, result.output
    assert [call.args[1] for call in read.call_args_list] == checks[-2:]


def test_a_malformed_report_is_skipped_with_a_note_and_the_others_shown(checks, dev_bucket):
    dev_bucket.put_object(Bucket=BUCKET, Key=checks[3], Body=b'{"half a rep')
    result = quality("churn")
    assert result.exit_code == 0, result.output
    assert f"note: skipped s3://{BUCKET}/{checks[3]}: not a quality report" in result.output
    assert "quality drop" in result.output and "not significant" not in result.output
    assert json.loads(quality("churn", "-o", "json").stdout)["skipped"] == [checks[3]]


def test_no_reports_yet_is_one_line_and_exit_0(dev_bucket):
    result = quality("churn")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("churn: no quality check recorded in dev yet")
    assert f"s3://{BUCKET}/quality/churn/" in result.output and "mlops labels put churn FILE" in result.output
    assert json.loads(quality("churn", "-o", "json").stdout)["checks"] == []


def test_an_unknown_model_is_exit_2(dev_bucket):
    result = quality("chrun")
    assert result.exit_code == 2 and "did you mean 'churn'" in result.output


def test_an_environment_without_its_bucket_is_exit_4():
    target = client_module.Target("dev", "123456789012", "us-east-1")
    with mock_aws(), mock.patch.object(client_module, "target_environment", lambda env: target), \
            mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        result = quality("churn")
    assert result.exit_code == 4 and "has no artifact bucket" in result.output and "deployed" in result.output


def test_a_refused_listing_is_not_allowed_exit_6(checks):
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "User: arn:aws:sts::123456789012:assumed-role/"
                                    "mlops-dev-data-scientist/ds is not authorized to perform: s3:ListBucket"}},
                         "ListObjectsV2")
    with mock.patch.object(dal.ObjectStore, "list_keys", side_effect=denied):
        result = quality("churn", "-o", "json")
    assert result.exit_code == 6, result.output
    assert json.loads(result.stdout)["error"] == "not_allowed" and "s3:ListBucket" in result.stdout


def test_no_aws_credentials_is_one_line_exit_4(tmp_path):
    with without_aws_credentials(tmp_path):
        result = quality("churn")
    assert result.exit_code == 4, result.output
    assert "no AWS credentials for dev" in result.output


def test_env_local_without_a_local_server_says_how_to_start_one(tmp_path):
    with mock.patch.dict(os.environ, {"MLOPS_LOCAL_DIR": str(tmp_path / "no-server")}):
        result = runner.invoke(app, ["quality", "churn", "--env", "local"])
    assert result.exit_code == 4 and "no local server is running" in result.output

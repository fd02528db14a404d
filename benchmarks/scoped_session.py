"""What a control-plane task pays per invocation to act for a model (issue 27): the scoped session that
lambdas/shared/tenancy.scoped_session takes after sts:AssumeRole, and the clients a task makes from it (S3,
SageMaker, DynamoDB, SNS), side by side: a plain boto3.Session (as before) and lambdas.shared.sessions.new_session
(the process's parsed service models shared). Each round takes a fresh session of each kind, interleaved, under
moto (no network); the figure is the median of --rounds rounds.

    python benchmarks/scoped_session.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from lambdas.shared.sessions import new_session  # noqa: E402

CLIENTS = ("s3", "sagemaker", "dynamodb", "sns")


def act_for_a_model(make_session, credentials: dict) -> float:
    started = time.perf_counter()
    session = make_session(aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                           aws_session_token=credentials["SessionToken"], region_name="us-east-1")
    for service in CLIENTS:
        session.client(service)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    with mock_aws():
        credentials = boto3.client("sts").assume_role(RoleArn="arn:aws:iam::123456789012:role/scoped",
                                                      RoleSessionName="churn")["Credentials"]
        act_for_a_model(new_session, credentials)  # both warm: the default session's models parsed once
        plain, shared = [], []
        for _ in range(rounds):
            plain.append(act_for_a_model(boto3.Session, credentials))
            shared.append(act_for_a_model(new_session, credentials))
    before, after = statistics.median(plain), statistics.median(shared)
    print(f"session + {len(CLIENTS)} clients, median of {rounds}: boto3.Session {before * 1000:.1f} ms, "
          f"new_session {after * 1000:.1f} ms: {before / after:.1f}x faster")


if __name__ == "__main__":
    main()

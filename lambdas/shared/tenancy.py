"""Acting for one model from a control-plane function shared by every model of the environment.

The function's own role may do one thing: assume its model-scoped role (MODEL_SCOPED_ROLE_ARN) with the session tag
mlops:model set to the model it acts for. Every statement of the scoped role names its resources with
`${aws:PrincipalTag/mlops:model}`, so the session reaches that model's parameter, topic, objects and rows and no
other model's (AWS IAM user guide, "Passing session tags in AWS STS" and "IAM policy elements: Variables and tags").
Inside `acting_for(model)` every client of the data-access layer signs with that session.

A session is taken per invocation, not cached: an invocation acts for one model, and a cached session would outlive a
change of the role's policies by up to its duration.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import boto3
from botocore.exceptions import ClientError

from lambdas.shared import dal
from lambdas.shared.config import setting
from pipelines import naming
from pipelines.model_record import ModelRecord, parse_record

SCOPED_ROLE_SETTING = "MODEL_SCOPED_ROLE_ARN"
ENVIRONMENT_SETTING = "MLOPS_ENVIRONMENT"
SESSION_SECONDS = 900  # STS's minimum: an invocation's work, not a day's


def scoped_session(model: str) -> boto3.Session:
    """A session of the scoped role tagged with `model` (the session name is the model too, for CloudTrail)."""
    credentials = dal.client("sts").assume_role(
        RoleArn=setting(SCOPED_ROLE_SETTING), RoleSessionName=model, DurationSeconds=SESSION_SECONDS,
        Tags=[{"Key": naming.MODEL_TAG, "Value": model}])["Credentials"]
    return boto3.Session(aws_access_key_id=credentials["AccessKeyId"],
                         aws_secret_access_key=credentials["SecretAccessKey"],
                         aws_session_token=credentials["SessionToken"], region_name=boto3.Session().region_name)


@contextmanager
def acting_for(model: str) -> Iterator[None]:
    with dal.bound_to(scoped_session(model)):
        yield


def model_record(model: str) -> ModelRecord | None:
    """The model's record, read with the current session (inside acting_for: the model's own); None when no stack
    of that name is deployed in the environment."""
    env = setting(ENVIRONMENT_SETTING)
    try:
        text = dal.client("ssm").get_parameter(Name=naming.model_record_parameter(model, env))["Parameter"]["Value"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise
    return parse_record(text, model=model, env=env)

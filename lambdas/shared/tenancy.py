"""Acting for one model from a control-plane function shared by every model of the environment.

The function's own role may do one thing: assume its model-scoped role (MODEL_SCOPED_ROLE_ARN) with the session tag
mlops:model set to the model it acts for. Every statement of the scoped role names its resources with
`${aws:PrincipalTag/mlops:model}`, so the session reaches that model's record, topic, objects and rows and no other
model's (AWS IAM user guide, "Passing session tags in AWS STS" and "IAM policy elements: Variables and tags").
Inside `acting_for(model)` every client of the data-access layer signs with that session, and the handler's settings
and spec are the model's record (lambdas/shared/config.py), as a per-model function has them in its environment.

A session is taken per invocation, not cached: an invocation acts for one model, and a cached session would outlive a
change of the role's policies by up to its duration.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Iterator

import boto3
from botocore.exceptions import ClientError

from lambdas.shared import config, dal
from lambdas.shared.sessions import new_session
from pipelines import naming
from pipelines.model_record import ModelRecord, parse_record

SCOPED_ROLE_SETTING = "MODEL_SCOPED_ROLE_ARN"
ENVIRONMENT_SETTING = "MLOPS_ENVIRONMENT"
SESSION_SECONDS = 900  # STS's minimum: an invocation's work, not a day's


class ModelNotDeployed(LookupError):
    """No model of that name has a record in this environment (never deployed, or its stack was deleted)."""


class NotAModelExecution(ValueError):
    """A task event whose execution ARN is not an execution of one of this environment's retraining machines."""


def environment_name() -> str:
    return config.setting(ENVIRONMENT_SETTING)


def in_control_plane() -> bool:
    """A function of the control plane (it has a model-scoped role to act through), not a model's own function."""
    return SCOPED_ROLE_SETTING in os.environ


def model_of_execution(execution_arn: str) -> str:
    """The model a state machine task acts for: the one whose retraining machine runs the execution
    (arn:<partition>:states:<region>:<account>:execution:<model>-<env>-retraining:<name>, naming.state_machine).
    Step Functions fills the ARN in ($$.Execution.Id); only the models' machines may invoke the task functions."""
    parts = execution_arn.split(":")
    suffix = naming.state_machine("", environment_name())
    machine = parts[6] if len(parts) == 8 and parts[2] == "states" and parts[5] == "execution" else ""
    model = machine[:-len(suffix)] if machine.endswith(suffix) else ""
    if not re.fullmatch(naming.MODEL_NAME_PATTERN, model):
        raise NotAModelExecution(f"{execution_arn[:300]!r} is not an execution of a retraining state machine of "
                                 f"{environment_name()} (<model>{suffix})")
    return model


def scoped_session(model: str) -> boto3.Session:
    """A session of the scoped role tagged with `model` (the session name is the model too, for CloudTrail)."""
    sts = dal.client("sts")
    credentials = sts.assume_role(
        RoleArn=config.setting(SCOPED_ROLE_SETTING), RoleSessionName=model, DurationSeconds=SESSION_SECONDS,
        Tags=[{"Key": naming.MODEL_TAG, "Value": model}])["Credentials"]
    return new_session(aws_access_key_id=credentials["AccessKeyId"],
                       aws_secret_access_key=credentials["SecretAccessKey"],
                       aws_session_token=credentials["SessionToken"], region_name=sts.meta.region_name)


@contextmanager
def acting_for(model: str) -> Iterator[ModelRecord]:
    """The model's record, with every client signing as the model's scoped session and the record's settings in
    place; raises ModelNotDeployed when the environment has no such model."""
    with dal.bound_to(scoped_session(model)):
        record = model_record(model)
        if record is None:
            raise ModelNotDeployed(f"no model named {model} is deployed in {environment_name()}")
        with config.model_settings(record.environment()):
            yield record


def model_record(model: str) -> ModelRecord | None:
    """The model's record, read with the current session; None when no stack of that name is deployed."""
    env = environment_name()
    try:
        text = dal.client("ssm").get_parameter(Name=naming.model_record_parameter(model, env))["Parameter"]["Value"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise
    return parse_record(text, model=model, env=env)

"""Dispatch glue between moto's Step Functions interpreter and this platform's code (no new interpreter).

- Lambda: moto's docker-less Lambda echoes payloads; here an invoke of a provisioned function runs
  its real handler in-process, with the function's own (synthesized) environment variables and the
  session credentials of its own (synthesized) role.
- SageMaker `.sync` training: moto forwards CreateTrainingJob to its backend but has no `.sync`
  resolver for SageMaker; here the resolver runs the request's train.py locally in the /opt/ml
  layout and returns DescribeTrainingJob, or fails the task with the job's own failure reason.
- aws-sdk service names: Step Functions calls Application Auto Scaling `applicationautoscaling`.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import boto3

from pipelines.local.iam import Credentials

# Handlers read their configuration and credentials from the process environment; whoever else creates
# clients from it (the lifecycle driver) holds this lock so that it never sees a handler's.
ENV_LOCK = threading.RLock()


@dataclass
class LocalFunction:
    name: str
    handler: str  # dotted: package.module.function
    environment: dict[str, str] = field(default_factory=dict)
    role_arn: str = ""
    credentials: Credentials | None = None  # None: the caller's own (IAM not enforced)

    def call(self, event: Any, extra_environment: dict[str, str]) -> Any:
        module_name, function_name = self.handler.rsplit(".", 1)
        identity = self.credentials.environment() if self.credentials else {}
        with ENV_LOCK:
            saved = dict(os.environ)
            if self.credentials:
                os.environ.pop("AWS_SESSION_TOKEN", None)
            os.environ.update({**self.environment, **extra_environment, **identity, "AWS_LAMBDA_FUNCTION_NAME": self.name})
            forget_cached_credentials()
            try:
                from lambdas.shared import config

                config.model_spec.cache_clear()
                handler = getattr(importlib.import_module(module_name), function_name)
                return handler(event, _Context(self.name))
            finally:
                os.environ.clear()
                os.environ.update(saved)
                forget_cached_credentials()


def forget_cached_credentials() -> None:
    """boto3's default session keeps the credentials it first read, and Powertools' parameter providers
    keep their clients: in Lambda one process has one role, here each call has its own."""
    from aws_lambda_powertools.utilities.parameters import base

    boto3.DEFAULT_SESSION = None
    base.DEFAULT_PROVIDERS.clear()


class _Context:
    def __init__(self, name: str) -> None:
        self.function_name = name
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{name}"
        self.aws_request_id = f"local-{name}"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


class LambdaDispatch:
    """Function name -> LocalFunction; installed into moto's Lambda invoke."""

    def __init__(self, extra_environment: dict[str, str] | None = None) -> None:
        self.functions: dict[str, LocalFunction] = {}
        self.extra_environment = extra_environment or {}

    def register(self, function: LocalFunction) -> None:
        self.functions[function.name] = function

    def invoke(self, name: str, event: Any) -> Any:
        return self.functions[name].call(event, self.extra_environment)

    def install(self) -> None:
        """moto's docker-less Lambda (LambdaSimpleBackend) echoes payloads; ours run the handler."""
        from moto.awslambda_simple import models

        dispatch, original = self, models.LambdaSimpleBackend.invoke

        def invoke(backend, function_name, qualifier, body, headers, response_headers):
            name = function_name.split(":function:")[-1].split(":")[0]
            if name not in dispatch.functions:
                return original(backend, function_name, qualifier, body, headers, response_headers)
            event = json.loads(body) if body else {}
            try:
                return json.dumps(dispatch.invoke(name, event), default=str).encode()
            except Exception as error:  # a Lambda function error, as Step Functions sees it
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error),
                                   "stackTrace": traceback.format_exc().splitlines()[-5:]}).encode()

        models.LambdaSimpleBackend.invoke = invoke


def install_service_names() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import StateTaskService

    StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES["applicationautoscaling"] = "application-autoscaling"


def install_sagemaker_sync(model: str | Path, workdir: Path, log: Callable[[str], None],
                           role_credentials: Callable[[str], Credentials] | None = None,
                           admin: Credentials | None = None) -> None:
    """`arn:aws:states:::sagemaker:createTrainingJob.sync` runs train.py locally, with the session of the
    request's RoleArn when `role_credentials` is given (what SageMaker assumes for the job). model: a model name
    under pipelines/ or the model folder itself."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported import (
        StateTaskServiceUnsupported,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    from pipelines.local.sagemaker_jobs import run_training_job

    class LocalSageMaker(StateTaskServiceUnsupported):
        def __init__(self) -> None:
            super().__init__()
            self._supported_integration_patterns = {ResourceCondition.WaitForTaskToken, ResourceCondition.Sync}

        def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials):
            env.stack.pop()  # CreateTrainingJob's own answer; the resolver returns DescribeTrainingJob
            if self.resource.api_action.lower() != "createtrainingjob":
                raise RuntimeError(f"local mode runs only createTrainingJob.sync, not {self.resource.api_action}")
            region = resource_runtime_part.region
            outcome = {}

            def resolve():
                if not outcome:
                    job_role = role_credentials(normalised_parameters["RoleArn"]) if role_credentials else None
                    outcome.update(run_training_job(normalised_parameters, model, workdir, region=region, log=log,
                                                    credentials=job_role))
                    publish_training_log(normalised_parameters["TrainingJobName"], workdir, region, admin)
                name = normalised_parameters["TrainingJobName"]
                if outcome["TrainingJobStatus"] != "Completed":
                    _mark_failed(name, outcome["FailureReason"], region)
                    raise FailureEventException(FailureEvent(
                        env=env, error_name=CustomErrorName("SageMaker.TrainingJobFailed"),
                        event_type=HistoryEventType.TaskFailed,
                        event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                            resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type(),
                            error="SageMaker.TrainingJobFailed", cause=outcome["FailureReason"][-2000:]))))
                sagemaker = admin.client("sagemaker", region) if admin else boto3.client("sagemaker", region_name=region)
                described = sagemaker.describe_training_job(TrainingJobName=name)
                described.pop("ResponseMetadata", None)
                return json.loads(json.dumps(described, default=str))

            return resolve

    original = state_task_factory.state_task_service_for

    def state_task_service_for(service_name: str):
        return LocalSageMaker() if service_name == "sagemaker" else original(service_name)

    state_task_factory.state_task_service_for = state_task_service_for


TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def publish_training_log(job_name: str, workdir: Path, region: str, admin: Credentials | None = None) -> None:
    """What SageMaker does with a job's output: its lines in CloudWatch Logs, group /aws/sagemaker/TrainingJobs,
    stream <job>/algo-1-<epoch seconds> (`mlops run metrics` reads them through the runs API)."""
    import time

    path = workdir / job_name / "training.log"
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    logs = admin.client("logs", region) if admin else boto3.client("logs", region_name=region)
    try:
        logs.create_log_group(logGroupName=TRAINING_LOG_GROUP)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    stream = f"{job_name}/algo-1-{int(time.time())}"
    logs.create_log_stream(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    for start in range(0, len(lines), 5000):
        events = [{"timestamp": now, "message": line} for line in lines[start:start + 5000] if line]
        if events:
            logs.put_log_events(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream, logEvents=events)


def _mark_failed(name: str, reason: str, region: str) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends

    job = sagemaker_backends[DEFAULT_ACCOUNT_ID][region].training_jobs.get(name)
    if job is not None:
        job.training_job_status, job.failure_reason = "Failed", reason[-1000:]

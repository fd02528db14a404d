"""Dispatch glue between moto's Step Functions interpreter and this platform's code (no new interpreter).

- Lambda: moto's docker-less Lambda echoes payloads; here an invoke of a provisioned function runs
  its real handler in-process, with the function's own (synthesized) environment variables and the
  session credentials of its own (synthesized) role.
- SageMaker `.sync` training: moto forwards CreateTrainingJob to its backend but has no `.sync`
  resolver for SageMaker; here the resolver runs the request's train.py locally in the /opt/ml
  layout and returns DescribeTrainingJob, or fails the task with the job's own failure reason.
- SageMaker `.sync` hyperparameter tuning: the trials run one after another as local training jobs (each
  created in moto, so DescribeTrainingJob of the best one answers); the tuning job in moto gets the best trial
  and the counters, ListTrainingJobsForHyperParameterTuningJob lists the trials (moto lacks it).
- The training code asset: what `cdk deploy` uploads (the source archive) is put where the stack's
  SOURCE_ARCHIVE names it, for PrepareRun to snapshot.
- aws-sdk service names: Step Functions calls Application Auto Scaling `applicationautoscaling`.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
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


def environment_snapshot() -> dict[str, str]:
    """One consistent copy of os.environ: handlers on other threads swap the whole environment under ENV_LOCK, and
    copying it while they do fails (KeyError: a variable listed, then gone) or mixes two functions' settings."""
    with ENV_LOCK:
        return dict(os.environ)


class _WholeCopiesEnviron(os._Environ):
    """os.environ whose copy() and items() read one snapshot of its table. Code outside ENV_LOCK copies the
    environment too: botocore copies it whenever a new session resolves credentials (IMDSFetcher) and urllib lists it
    for proxies, from moto's Step Functions thread among others. os._Environ lists the keys first and reads each one
    after, so a handler's environment swapped out in between (its MLOPS_ENVIRONMENT gone) raised KeyError there: a
    step failed with "Exception 'MLOPS_ENVIRONMENT'". In Lambda each function has a process of its own."""

    def copy(self) -> dict[str, str]:
        return {self.decodekey(key): self.decodevalue(value) for key, value in self._data.copy().items()}

    def items(self):
        return self.copy().items()


def whole_environment_copies() -> None:
    """Installs _WholeCopiesEnviron as os.environ's class (the same object, the same variables)."""
    if type(os.environ) is os._Environ:
        os.environ.__class__ = _WholeCopiesEnviron


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
                drop_unflushed_metrics()


def drop_unflushed_metrics() -> None:
    """With metrics disabled (the local mode's default) powertools neither prints nor clears what a handler added, and
    every function shares this process: the next handler run with metrics enabled (a test's) would print them all
    into its caller's output. In Lambda an invocation's metrics never reach another function."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import is_metrics_disabled

    from lambdas.shared.observability import metrics

    if is_metrics_disabled():
        metrics.clear_metrics()


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
        whole_environment_copies()  # its functions swap the environment while other threads copy it

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

    stage_source_archives(model)
    install_tuning_trials()

    def sagemaker_client(region: str):
        return admin.client("sagemaker", region) if admin else boto3.client("sagemaker", region_name=region)

    def train(request: dict, region: str) -> dict:
        job_role = role_credentials(request["RoleArn"]) if role_credentials else None
        outcome = run_training_job(request, model, workdir, region=region, log=log, credentials=job_role)
        publish_training_log(request["TrainingJobName"], workdir, region, admin)
        if outcome["TrainingJobStatus"] != "Completed":
            _mark_failed(request["TrainingJobName"], outcome["FailureReason"], region)
        return outcome

    def tune(request: dict, region: str) -> dict:
        from pipelines.local.sagemaker_jobs import run_tuning_job

        def trial(job: dict) -> tuple[dict, str]:
            sagemaker_client(region).create_training_job(**job)  # SageMaker creates each trial job itself
            outcome = train(job, region)
            described = sagemaker_client(region).describe_training_job(TrainingJobName=job["TrainingJobName"])
            return {**described, **{k: v for k, v in outcome.items() if k in ("TrainingJobStatus", "FailureReason")}}, \
                outcome.get("log", "")

        result = run_tuning_job(request, trial)
        _record_tuning(request["HyperParameterTuningJobName"], result, region)
        return result

    class LocalSageMaker(StateTaskServiceUnsupported):
        def __init__(self) -> None:
            super().__init__()
            self._supported_integration_patterns = {ResourceCondition.WaitForTaskToken, ResourceCondition.Sync}

        def _failure(self, env, error: str, cause: str) -> FailureEventException:
            return FailureEventException(FailureEvent(
                env=env, error_name=CustomErrorName(error), event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                    resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type(), error=error,
                    cause=cause[-2000:]))))

        def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials):
            env.stack.pop()  # the Create call's own answer; the resolver returns the Describe of the finished job
            action = self.resource.api_action.lower()
            if action not in ("createtrainingjob", "createhyperparametertuningjob"):
                raise RuntimeError(f"local mode runs createTrainingJob.sync and createHyperParameterTuningJob.sync, "
                                   f"not {self.resource.api_action}")
            region, outcome = resource_runtime_part.region, {}

            def resolve():
                if action == "createhyperparametertuningjob":
                    name = normalised_parameters["HyperParameterTuningJobName"]
                    if not outcome:
                        outcome.update(tune(normalised_parameters, region))
                    if outcome["best"] is None:
                        reasons = "; ".join(t.get("FailureReason", "no objective metric in its log")[-300:]
                                            for t in outcome["trials"])
                        raise self._failure(env, "SageMaker.HyperParameterTuningJobFailed",
                                      f"no trial of {name} reached the objective: {reasons}")
                    described = sagemaker_client(region).describe_hyper_parameter_tuning_job(
                        HyperParameterTuningJobName=name)
                else:
                    name = normalised_parameters["TrainingJobName"]
                    if not outcome:
                        outcome.update(train(normalised_parameters, region))
                    if outcome["TrainingJobStatus"] != "Completed":
                        raise self._failure(env, "SageMaker.TrainingJobFailed", outcome["FailureReason"])
                    described = sagemaker_client(region).describe_training_job(TrainingJobName=name)
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


# ------------------------------------------------------------------ tuning jobs in moto
_TRIALS: dict[tuple[str, str], list[dict]] = {}  # (region, tuning job) -> its trials' summaries


def _record_tuning(name: str, result: dict, region: str) -> None:
    """moto's tuning job, as SageMaker leaves it when the search ends: status, counters, the best trial."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends

    _TRIALS[(region, name)] = result["trials"]
    job = sagemaker_backends[DEFAULT_ACCOUNT_ID][region].hyper_parameter_tuning_jobs[name]
    statuses = [t["TrainingJobStatus"] for t in result["trials"]]
    job.hyper_parameter_tuning_job_status = "Completed" if result["best"] else "Failed"
    job.failure_reason = "" if result["best"] else "no trial reached the objective"
    job.training_job_status_counters = {"Completed": statuses.count("Completed"), "InProgress": 0, "RetryableError": 0,
                                        "NonRetryableError": statuses.count("Failed"), "Stopped": 0}
    objective = [t["ObjectiveStatus"] for t in result["trials"]]
    job.objective_status_counters = {"Succeeded": objective.count("Succeeded"), "Pending": 0,
                                     "Failed": objective.count("Failed")}
    job.best_training_job = result["best"]
    job.OverallBestTrainingJob = result["best"]


def install_tuning_trials() -> None:
    """ListTrainingJobsForHyperParameterTuningJob, which moto lacks: the trials the local search ran."""
    from moto.core.responses import ActionResult
    from moto.sagemaker import responses

    def list_training_jobs_for_hyper_parameter_tuning_job(self) -> ActionResult:
        trials = _TRIALS.get((self.region, self._get_param("HyperParameterTuningJobName")), [])
        return ActionResult({"TrainingJobSummaries": trials})

    responses.SageMakerResponse.list_training_jobs_for_hyper_parameter_tuning_job = \
        list_training_jobs_for_hyper_parameter_tuning_job


# ------------------------------------------------------------------ the training code asset
def stage_source_archives(model: str | Path) -> list[str]:
    """What `cdk deploy` publishes for the training step: the model's source archive (built as synthesis builds it)
    at the S3 URI the stack's functions name in SOURCE_ARCHIVE (CDK's asset bucket). Written into moto's S3 backend
    directly: publishing assets is the deployer's act, not one of the platform's roles."""
    from moto.s3.models import s3_backends

    from pipelines.model_folder import write_source_archive
    from pipelines.spec import find_model_dir, load_spec

    model_dir = Path(model) if isinstance(model, Path) else find_model_dir(model)
    spec = load_spec(model_dir)
    targets = {uri for uri in deployed_source_archives(spec.name) if uri.startswith("s3://")}
    if not targets:
        return []
    with tempfile.TemporaryDirectory(prefix="source-") as directory:
        body = write_source_archive(model_dir, Path(directory) / "sourcedir.tar.gz", spec).read_bytes()
    for uri in sorted(targets):
        bucket, key = uri[5:].split("/", 1)
        account = bucket.split("-assets-")[1].split("-")[0] if "-assets-" in bucket else None
        backend = s3_backends[account or _default_account()]["global"]
        if bucket not in backend.buckets:
            backend.create_bucket(bucket, bucket.split("-assets-")[1].split("-", 1)[1] if account else "us-east-1")
        backend.put_object(bucket, key, body)
    return sorted(targets)


def deployed_source_archives(model: str) -> set[str]:
    """The SOURCE_ARCHIVE of every record of `model` provisioned in the emulation (any account, Region, environment:
    /mlops/<env>/_models/<model>), read from moto's backend (the deployer's view, not a platform role's)."""
    from moto.ssm.models import ssm_backends

    found = set()
    for account in list(ssm_backends):
        for region in list(ssm_backends[account]):
            parameters = ssm_backends[account][region]._parameters
            for name in list(parameters):
                if name.startswith("/mlops/") and name.endswith(f"/_models/{model}"):
                    settings = json.loads(parameters[name][-1].value).get("settings") or {}
                    found.add(settings.get("SOURCE_ARCHIVE", ""))
    return found


def _default_account() -> str:
    from moto.core import DEFAULT_ACCOUNT_ID

    return DEFAULT_ACCOUNT_ID

"""The data scientists' client, usable from a SageMaker Studio notebook or a terminal.

    from pipelines.client import Pipelines
    pipelines = Pipelines(env="dev")
    run = pipelines.start("churn", hyperparameters={"epochs": 20}, reason="new features")
    pipelines.status("churn")
    pipelines.models("churn")

Runs start, and CLI approvals are decided, through the model's runs API (a Lambda Function URL with AWS_IAM
auth): requests are signed with SigV4 (service `lambda`) using the session's credentials, and the API takes
who you are from that signature. Its URL is in the SSM parameter `runs_api_parameter(model, env)`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import boto3
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from lambdas.runs.models import RunView
from pipelines import naming
from pipelines.source import current_git_commit
from pipelines.spec import MODELS_DIR, SpecError, find_model_dir, load_spec


def runs_api_parameter(model: str, env: str) -> str:
    """The SSM parameter holding the URL of a model's runs API (the stack writes it)."""
    return f"/{naming.PROJECT}/{env}/{model}/runs-api-url"


class RunInProgress(RuntimeError):
    """One retraining run per model at a time."""


class ApiError(RuntimeError):
    """The runs API refused a request; status is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class RunsApi:
    """Signed calls to one model's runs API with the caller's own AWS credentials."""

    def __init__(self, url: str, session: boto3.Session, region: str) -> None:
        self.url, self.session, self.region = url.rstrip("/"), session, region
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=10, read=60), retries=False)

    def call(self, method: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
        url = self.url + path + (f"?{urlencode(query)}" if query else "")
        request = AWSRequest(method=method, url=url, data=json.dumps(body).encode() if body is not None else None,
                            headers={"Content-Type": "application/json"} if body is not None else {})
        credentials = self.session.get_credentials()
        if credentials is None:
            raise ApiError(403, "no AWS credentials to sign the request with (aws sso login / AWS_PROFILE)")
        SigV4Auth(credentials.get_frozen_credentials(), "lambda", self.region).add_auth(request)
        prepared = request.prepare()
        response = self.http.request(method, prepared.url, body=prepared.body, headers=dict(prepared.headers))
        try:
            document = json.loads(response.data or b"{}")
        except json.JSONDecodeError:
            document = {"message": response.data.decode(errors="replace")[:300]}
        if response.status >= 300:
            raise ApiError(response.status, document.get("message") or document.get("Message") or "refused")
        return document


RunSummary = RunView  # the runs API's own model of a run: what the client, the CLI and the notebook show


@dataclass
class ModelVersion:
    version: int
    status: str
    created: str
    metrics: dict = field(default_factory=dict)
    lineage: dict = field(default_factory=dict)
    arn: str = ""


class Pipelines:
    def __init__(self, env: str = "dev", session: boto3.Session | None = None, models_dir: Path = MODELS_DIR) -> None:
        self.env, self.models_dir = env, models_dir
        self.session = session or boto3.Session()
        self.sfn = self.session.client("stepfunctions")
        self.sagemaker = self.session.client("sagemaker")
        self.sts = self.session.client("sts")
        self.ssm = self.session.client("ssm")
        self.region = self.sfn.meta.region_name
        self._apis: dict[str, RunsApi] = {}

    # ------------------------------------------------------------ runs
    def api(self, model: str) -> RunsApi:
        """The model's runs API, its URL read once from SSM."""
        find_model_dir(model, self.models_dir)
        if model not in self._apis:
            try:
                url = self.ssm.get_parameter(Name=runs_api_parameter(model, self.env))["Parameter"]["Value"]
            except self.ssm.exceptions.ParameterNotFound:
                raise SpecError(f"{model} has no runs API in {self.env}: is mlops-{self.env}-{model} deployed?") from None
            self._apis[model] = RunsApi(url, self.session, self.region)
        return self._apis[model]

    def state_machine_arn(self, model: str) -> str:
        find_model_dir(model, self.models_dir)
        account = self.sts.get_caller_identity()["Account"]
        return f"arn:aws:states:{self.region}:{account}:stateMachine:{naming.state_machine(model, self.env)}"

    def start(self, model: str, hyperparameters: dict | None = None, git_commit: str | None = None,
              reason: str | None = None, dataset_key: str | None = None) -> RunSummary:
        """Starts a run through the runs API, which records your AWS identity as who asked for it."""
        spec = load_spec(find_model_dir(model, self.models_dir))
        unknown = sorted(set(hyperparameters or {}) - set(spec.training.hyperparameters))
        if unknown:
            raise SpecError(f"unknown hyperparameters {unknown} for {model}; known: {sorted(spec.training.hyperparameters)}")
        body = {"hyperparameters": hyperparameters or {}, "git_commit": git_commit or current_git_commit(self.models_dir),
                "reason": reason, "dataset_key": dataset_key}
        try:
            run = self.api(model).call("POST", "/runs", {k: v for k, v in body.items() if v not in (None, "")})
        except ApiError as error:
            if error.status == 409:
                raise RunInProgress(error.message) from None
            raise
        return RunSummary(name=run["name"], status=run["status"], started=run["started"], arn=run["arn"])

    def runs(self, model: str, status: str | None = None, limit: int = 20) -> list[RunSummary]:
        query = {"limit": limit} | ({"status": status} if status else {})
        return [RunSummary(**run) for run in self.api(model).call("GET", "/runs", query=query)["runs"]]

    def status(self, model: str, execution: str | None = None) -> RunSummary:
        if execution is None or execution.startswith("arn:"):
            runs = self.runs(model, limit=100)
            chosen = next((r for r in runs if execution in (None, r.name, r.arn)), None)
            if chosen is None:
                raise LookupError(f"no run {execution!r} of {model}" if execution else f"{model} has no runs yet")
            execution = chosen.name
        try:
            return RunSummary(**self.api(model).call("GET", f"/runs/{quote(execution, safe='')}"))
        except ApiError as error:
            if error.status == 404:
                raise LookupError(f"no run {execution!r} of {model}") from None
            raise

    def stop(self, model: str, execution: str, reason: str = "stopped by a person") -> None:
        """Platform admins only (StopExecution is theirs)."""
        self.sfn.stop_execution(executionArn=self.status(model, execution).arn, error="StoppedByUser", cause=reason)

    # ------------------------------------------------------------ registry
    def models(self, model: str) -> list[ModelVersion]:
        group = naming.model_package_group(model, self.env)
        summaries = self.sagemaker.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime",
                                                       SortOrder="Descending")["ModelPackageSummaryList"]
        versions = []
        for summary in summaries:
            package = self.sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            lineage = dict(package.get("CustomerMetadataProperties", {}))
            metrics = json.loads(lineage.pop("metrics", "{}"))
            versions.append(ModelVersion(version=package.get("ModelPackageVersion", 0), status=package["ModelApprovalStatus"],
                                         created=str(package["CreationTime"]), metrics=metrics, lineage=lineage,
                                         arn=package["ModelPackageArn"]))
        return versions


class DecisionRefused(RuntimeError):
    """The approval cannot be recorded (no pending request, expired, not an approver, self-approval, decided)."""


def decide(pipelines: Pipelines, model: str, approve: bool, reason: str, execution: str | None = None) -> str:
    """`mlops approve/reject` through the runs API: the API maps your signed AWS principal to an approver
    (approval.principals in the spec) and applies the same governance as the links."""
    api = pipelines.api(model)
    try:
        if execution is None:
            execution = _only_pending(api.call("GET", "/approvals")["pending"], model)
        decided = api.call("POST", f"/approvals/{quote(execution, safe='')}",
                           {"decision": "approve" if approve else "reject", "reason": reason})
    except ApiError as error:
        raise DecisionRefused(error.message) from None
    return decided["decided_at"]


def _only_pending(pending: list[dict], model: str) -> str:
    if not pending:
        raise DecisionRefused(f"no pending approval for {model}")
    if len(pending) > 1:
        raise DecisionRefused(f"several pending approvals ({', '.join(p['execution'] for p in pending)}); "
                              "name one with --execution")
    return pending[0]["execution"]


class RollbackRefused(RuntimeError):
    """Nothing to roll back to, or no production endpoint."""


def rollback(pipelines: Pipelines, model: str, stage: str = "prod") -> dict:
    """Re-deploys the approved package that preceded the one the endpoint serves (blue/green, alarms armed)."""
    import time as clock

    from lambdas.endpoint.handlers import deploy_package
    from lambdas.shared.dal import Endpoints

    spec = load_spec(find_model_dir(model, pipelines.models_dir))
    endpoints = Endpoints()
    endpoint = naming.endpoint(model, pipelines.env, stage)
    described = endpoints.describe(endpoint)
    if described is None:
        raise RollbackRefused(f"{endpoint} does not exist; nothing to roll back")
    config = endpoints.config_of(described["EndpointConfigName"])
    hosted = endpoints.model_of(config["ProductionVariants"][0]["ModelName"])
    current = (hosted.get("Containers") or [hosted.get("PrimaryContainer")])[0].get("ModelPackageName")
    approved = [v for v in pipelines.models(model) if v.status == "Approved"]
    current_version = next((v.version for v in approved if v.arn == current), None)
    older = [v for v in approved if current_version is None or v.version < current_version]
    if not older:
        raise RollbackRefused(f"{endpoint} serves version {current_version}; no older approved version to go back to")
    target = older[0]
    capture = config.get("DataCaptureConfig", {})
    result = deploy_package(spec, pipelines.env, stage, f"rollback-{clock.strftime('%Y%m%dT%H%M%S', clock.gmtime())}",
                            target.arn, role_arn=hosted["ExecutionRoleArn"], key_arn=capture.get("KmsKeyId", ""),
                            capture_uri=capture.get("DestinationS3Uri", ""))
    return {**result, "from_version": current_version, "to_version": target.version}

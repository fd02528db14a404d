"""The data scientists' client, usable from a SageMaker Studio notebook or a terminal.

    from pipelines.client import Pipelines
    pipelines = Pipelines(env="dev")
    run = pipelines.start("churn", hyperparameters={"epochs": 20}, reason="new features")
    pipelines.status("churn")
    pipelines.models("churn")
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from pipelines import naming
from pipelines.source import current_git_commit
from pipelines.spec import MODELS_DIR, SpecError, find_model_dir, load_spec


class RunInProgress(RuntimeError):
    """One retraining run per model at a time."""


@dataclass
class RunSummary:
    name: str
    status: str
    started: str
    stopped: str | None = None
    current_step: str | None = None
    error: str | None = None
    cause: str | None = None
    arn: str = ""


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
        session = session or boto3.Session()
        self.sfn = session.client("stepfunctions")
        self.sagemaker = session.client("sagemaker")
        self.sts = session.client("sts")
        self.region = self.sfn.meta.region_name

    # ------------------------------------------------------------ runs
    def state_machine_arn(self, model: str) -> str:
        find_model_dir(model, self.models_dir)
        account = self.sts.get_caller_identity()["Account"]
        return f"arn:aws:states:{self.region}:{account}:stateMachine:{naming.state_machine(model, self.env)}"

    def start(self, model: str, hyperparameters: dict | None = None, requested_by: str | None = None,
              git_commit: str | None = None, reason: str | None = None, trigger: str = "manual") -> RunSummary:
        spec = load_spec(find_model_dir(model, self.models_dir))
        unknown = sorted(set(hyperparameters or {}) - set(spec.training.hyperparameters))
        if unknown:
            raise SpecError(f"unknown hyperparameters {unknown} for {model}; known: {sorted(spec.training.hyperparameters)}")
        arn = self.state_machine_arn(model)
        running = self.runs(model, status="RUNNING")
        if running:
            raise RunInProgress(f"{model} already has a running retraining execution '{running[0].name}' "
                                f"(started {running[0].started}); wait for it or stop it first")
        document = {"model": model, "trigger": trigger,
                    "requested_by": requested_by or self._caller(), "hyperparameters": hyperparameters or {}}
        commit = git_commit or current_git_commit(self.models_dir)
        if commit:
            document["git_commit"] = commit
        if reason:
            document["reason"] = reason
        name = f"{trigger}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
        execution = self.sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(document))
        return RunSummary(name=name, status="RUNNING", started=str(execution["startDate"]), arn=execution["executionArn"])

    def runs(self, model: str, status: str | None = None, limit: int = 20) -> list[RunSummary]:
        arguments = {"stateMachineArn": self.state_machine_arn(model), "maxResults": limit}
        if status:
            arguments["statusFilter"] = status
        executions = self.sfn.list_executions(**arguments)["executions"]
        return [RunSummary(name=e["name"], status=e["status"], started=str(e["startDate"]),
                           stopped=str(e.get("stopDate") or "") or None, arn=e["executionArn"]) for e in executions]

    def status(self, model: str, execution: str | None = None) -> RunSummary:
        runs = self.runs(model, limit=100)
        chosen = next((r for r in runs if execution in (None, r.name, r.arn)), None)
        if chosen is None:
            raise LookupError(f"no run {execution!r} of {model}" if execution else f"{model} has no runs yet")
        described = self.sfn.describe_execution(executionArn=chosen.arn)
        chosen.error, chosen.cause = described.get("error"), described.get("cause")
        chosen.current_step = self._current_step(chosen.arn)
        return chosen

    def stop(self, model: str, execution: str, reason: str = "stopped by a person") -> None:
        self.sfn.stop_execution(executionArn=self.status(model, execution).arn, error="StoppedByUser", cause=reason)

    def _current_step(self, execution_arn: str) -> str | None:
        try:
            events = self.sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=50)["events"]
        except self.sfn.exceptions.ClientError:
            return None
        for event in events:
            details = event.get("stateEnteredEventDetails")
            if details:
                return details["name"]
        return None

    def _caller(self) -> str:
        try:
            return self.sts.get_caller_identity()["Arn"]
        except Exception:  # a notebook without STS access still starts runs
            return "unknown"

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
    """`mlops approve/reject`: the same governance as the links, with the caller's IAM identity as approver."""
    import time as clock

    from lambdas.approval.handlers import apply_decision
    from lambdas.approval.logic import identity
    from lambdas.approval.tokens import LinkClaims, LinkError
    from lambdas.shared.dal import ApprovalStore

    find_model_dir(model, pipelines.models_dir)
    table = naming.audit_table(pipelines.env)
    pending = [r for r in ApprovalStore(table).pending(model) if execution in (None, r["sk"].split("#", 1)[1])]
    if not pending:
        raise DecisionRefused(f"no pending approval for {model}" + (f" run {execution}" if execution else ""))
    if len(pending) > 1:
        names = ", ".join(r["sk"].split("#", 1)[1] for r in pending)
        raise DecisionRefused(f"several pending approvals ({names}); name one with --execution")
    record = pending[0]
    if clock.time() > int(record["expires_at"]):
        raise DecisionRefused("the approval window has closed; the run ends as rejected")
    caller = pipelines.sts.get_caller_identity()["Arn"]
    claims = LinkClaims(execution=record["sk"].split("#", 1)[1], package=record["model_package_arn"],
                        approver=identity(caller), action="approve" if approve else "reject",
                        expires=int(record["expires_at"]), nonce="cli")
    try:
        return apply_decision(claims, reason, {"channel": "cli", "ip": "-", "user_agent": caller}, model=model,
                              audit_table=table, package_group=naming.model_package_group(model, pipelines.env))
    except LinkError as error:
        raise DecisionRefused(f"{error.title}: {error.detail}") from None


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

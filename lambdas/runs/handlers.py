"""The environment's runs API (a Function URL with AWS_IAM auth): start runs, read them, decide approvals, for the
model the request names (query parameter `model`), acting for that model (lambdas/shared/tenancy.py).

Who calls is the principal Lambda verified from the SigV4 signature (requestContext.authorizer.iam), never a field of
the request. Who may act on the model:
- start a run: a person (lambdas/shared/identity.py) whose session is tagged with the model, shown by its proof
  (lambdas/shared/model_proof.py);
- read runs, pending approvals, serving: a session tagged with the model (its proof), or an approver of the model;
- decide: a person the model's spec names as an approver (approval.approvers, approval.principals).
The identity checks run as the function's own role before it acts for the model; the function's scoped session then
starts executions and answers task tokens, so people need no StartExecution or SendTask* rights of their own.
"""

from __future__ import annotations

import json
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.approval.handlers import apply_decision
from lambdas.approval.tokens import LinkClaims, LinkError
from lambdas.runs import logic
from lambdas.shared import dal, identity, model_proof, tenancy
from lambdas.shared.config import model_spec, setting
from lambdas.shared.observability import bind, logger, metrics, tracer
from lambdas.shared.run_state import Objective
from pipelines import naming

app = LambdaFunctionUrlResolver()


def _json(status: int, document) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(document, default=str),
                    headers={"Cache-Control": "no-store"})


@dataclass(frozen=True)
class Caller:
    """What AWS says of the caller, established as the function's own role before it acts for the model."""
    principal: str
    person: str | None  # None: a principal whose holder picks its name (lambdas.shared.identity)
    tagged_with_model: bool  # their proof showed a session tagged with the model asked about
    refusal: str = ""  # why it did not


_CALLER: ContextVar[Caller] = ContextVar("runs_api_caller")


def identify(event: dict, model: str) -> Caller:
    iam = ((event.get("requestContext") or {}).get("authorizer") or {}).get("iam") or {}
    if not iam.get("userArn") or not iam.get("callerId"):  # only reachable if the URL's auth type were changed to NONE
        raise logic.ApiError(403, "the request carries no verified AWS identity")
    principal = identity.parse(iam["userArn"])
    verified = principal is not None and principal.identity_center and dal.identity_center_role(principal.role)
    person = identity.person(principal, json.loads(setting("PERSON_ROLES")), verified)
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    try:
        model_proof.verify(dal.client("kms"), headers.get(model_proof.HEADER), setting("KMS_KEY_ARN"), model,
                           iam["callerId"])
    except model_proof.ProofRefused as refused:
        return Caller(iam["userArn"], person, False, str(refused))
    return Caller(iam["userArn"], person, True)


def _caller() -> str:
    return _CALLER.get().principal


def _person(principal: str) -> str:
    """The person AWS fixes behind the caller, or 403 with the fix: nobody starts or decides under a name they chose."""
    person = _CALLER.get().person
    if person is None:
        raise logic.ApiError(403, identity.unverified(principal, setting("DATA_SCIENTIST_ROLE_ARN")))
    return person


def _of_the_model(model: str) -> None:
    """403 unless the caller's session is tagged with the model (what a data scientist or operator of it holds)."""
    caller = _CALLER.get()
    if not caller.tagged_with_model:
        raise logic.ApiError(403, f"{caller.refusal}: your session is not shown to work on {model}; fix: take the "
                                  f"data-scientist role with the session tag {naming.MODEL_TAG}={model} (one of your "
                                  "IAM user's model tags; docs/identity.md)")


def _reader(model: str) -> None:
    """Runs and approvals are read by the model's people and by its approvers."""
    spec = model_spec()
    if not _CALLER.get().tagged_with_model and logic.approver_for(
            _caller(), spec.approval.approvers, spec.approval.principals, setting("APPROVER_ROLE_NAME")) is None:
        _of_the_model(model)


def _body() -> dict:
    try:
        body = json.loads(app.current_event.decoded_body or "{}")
    except json.JSONDecodeError:
        raise logic.ApiError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise logic.ApiError(400, "the body must be a JSON object")
    return body


@app.exception_handler(logic.ApiError)
def _refused(error: logic.ApiError) -> Response:
    logger.warning("request refused", extra={"status": error.status, "reason": error.message})
    return _json(error.status, {"message": error.message})


# ------------------------------------------------------------------ runs
@app.post("/runs")
def start_run() -> Response:
    spec, principal = model_spec(), _caller()
    request = logic.parse_run_request(_body(), spec.training.hyperparameters)
    person = _person(principal)
    _of_the_model(spec.name)
    document = logic.execution_input_json(logic.execution_input(request, spec.name, principal, person))
    machine = setting("STATE_MACHINE_ARN")
    logic.refuse_second_run(dal.running_executions(machine), spec.name)
    name = logic.execution_name()
    started = dal.client("stepfunctions").start_execution(stateMachineArn=machine, name=name, input=document)
    metrics.add_metric(name="RunsRequested", unit="Count", value=1)
    logger.info("run started", extra={"execution": name, "requested_by": principal})
    return _json(201, {"name": name, "arn": started["executionArn"], "status": "RUNNING", "started": str(started["startDate"])})


@app.get("/runs")
def list_runs() -> Response:
    _reader(model_spec().name)
    query = app.current_event.query_string_parameters or {}
    try:
        limit = min(max(int(query.get("limit", 20)), 1), 100)
    except ValueError:
        raise logic.ApiError(400, "limit must be a whole number (1-100)") from None
    arguments = {"stateMachineArn": setting("STATE_MACHINE_ARN"), "maxResults": limit}
    if query.get("status"):
        arguments["statusFilter"] = logic.check_status_filter(query["status"])
    executions = dal.client("stepfunctions").list_executions(**arguments)["executions"]
    return _json(200, {"runs": [_view(e["executionArn"]).model_dump() for e in executions]})


@app.get("/runs/<name>")
def describe_run(name: str) -> Response:
    _reader(model_spec().name)
    return _json(200, _view(_execution_arn(name), with_steps=True).model_dump())


@app.get("/runs/<name>/metrics")
def run_metrics(name: str) -> Response:
    """Per-epoch metrics of the run's training job, parsed from its log (CloudWatch Logs, as SageMaker writes it)."""
    spec = model_spec()
    _reader(spec.name)
    _describe(_execution_arn(name))  # 404 for a run that is not this model's
    job = naming.training_job(spec.name, name)
    lines = dal.training_log_lines(job, streams_client=dal.own_client("logs"))  # stream names: as the function itself
    history = logic.metric_history(lines, spec.objective.metric, spec.objective.regex)
    return _json(200, {"run": name, "training_job": job, "objective": spec.objective.metric,
                       "direction": spec.objective.direction, **history})


@app.get("/serving")
def serving() -> Response:
    """The model package the environment's serving endpoint (or inference component) serves, under the stage it
    serves (null: nothing deployed yet; no stage at all where the environment serves nothing)."""
    _reader(model_spec().name)
    stage, target = setting("SERVING_STAGE"), setting("SERVING_ENDPOINT")
    served = {stage: dal.Endpoints().served_package(target, model_spec().deployment.hosting)} if target else {}
    return _json(200, {"stages": served, "hosting": model_spec().deployment.hosting})


def _execution_arn(name: str) -> str:
    logic.check_run_name(name)
    return setting("STATE_MACHINE_ARN").replace(":stateMachine:", ":execution:") + f":{name}"


def _describe(arn: str) -> dict:
    sfn = dal.client("stepfunctions")
    try:
        return sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        raise logic.ApiError(404, f"no run {arn.rsplit(':', 1)[-1]}") from None


def _view(arn: str, with_steps: bool = False) -> logic.RunView:
    """The run's status, trigger and outcome: from its output when it succeeded, else from its history (where it
    waits, which step failed and why) and its approval record (who may decide, until when; who decided)."""
    described, spec = _describe(arn), model_spec()
    history = dal.execution_history(arn) if with_steps or logic.needs_history(described["status"]) else []
    approval = None
    if logic.needs_approval_record(history):
        approval = dal.ApprovalStore(setting("AUDIT_TABLE")).get(spec.name, described["name"])
        approval = {k: v for k, v in (approval or {}).items() if k != "task_token"}
    return logic.run_view(described, Objective.of(spec.objective), history, approval, with_steps=with_steps)


# ------------------------------------------------------------------ approvals
@app.get("/approvals")
def pending_approvals() -> Response:
    _reader(model_spec().name)
    pending = dal.ApprovalStore(setting("AUDIT_TABLE")).pending(model_spec().name)
    return _json(200, {"pending": [logic.pending_view(record) for record in pending]})


@app.post("/approvals/<execution>")
def decide(execution: str) -> Response:
    spec, principal = model_spec(), _caller()
    request = logic.parse_decision(_body())
    person = _person(principal)
    approver = logic.approver_for(principal, spec.approval.approvers, spec.approval.principals, setting("APPROVER_ROLE_NAME"))
    if approver is None:
        raise logic.ApiError(403, f"{principal} is not mapped to an approver of {spec.name}")
    logic.check_run_name(execution, "execution")
    table = setting("AUDIT_TABLE")
    record = logic.check_open(dal.ApprovalStore(table).get(spec.name, execution), execution, time.time())
    claims = LinkClaims(execution=execution, package=record["model_package_arn"], approver=approver,
                        action=request.decision, expires=int(record["expires_at"]), nonce="cli")
    http = app.current_event.request_context.http
    try:
        decided_at = apply_decision(claims, request.reason, {"channel": "cli", "ip": http.source_ip, "user_agent": principal,
                                                             "person": person},
                                    model=spec.name, audit_table=table, package_group=setting("MODEL_PACKAGE_GROUP"))
    except LinkError as error:
        raise logic.ApiError(error.status, f"{error.title}: {error.detail}") from None
    return _json(200, {"execution": execution, "decision": request.decision, "approver": approver, "decided_at": decided_at})


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    model = (event.get("queryStringParameters") or {}).get("model") or ""
    if not re.fullmatch(naming.MODEL_NAME_PATTERN, model):
        return _refusal(400, f"model: {model[:40]!r} is not a model name; name the model with ?model=<name>")
    bind(model)
    try:
        caller = identify(event, model)
        with tenancy.acting_for(model):
            token = _CALLER.set(caller)
            try:
                return app.resolve(event, context)
            finally:
                _CALLER.reset(token)
    except logic.ApiError as refused:
        return _refusal(refused.status, refused.message)
    except tenancy.ModelNotDeployed as missing:
        return _refusal(404, str(missing), code="ModelNotDeployed")


def _refusal(status: int, message: str, **extra) -> dict:
    logger.warning("request refused", extra={"status": status, "reason": message})
    return {"statusCode": status, "headers": {"Content-Type": content_types.APPLICATION_JSON, "Cache-Control": "no-store"},
            "body": json.dumps({"message": message, **extra})}

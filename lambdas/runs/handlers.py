"""The runs API (a Function URL with AWS_IAM auth): start runs, read them, decide approvals.

Who calls is the principal Lambda verified from the SigV4 signature (requestContext.authorizer.iam.userArn),
never a field of the request. The function's own role starts executions and answers task tokens, so data
scientists and approvers need no StartExecution or SendTask* rights of their own.
"""

from __future__ import annotations

import json
import time

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.approval.handlers import apply_decision
from lambdas.approval.tokens import LinkClaims, LinkError
from lambdas.runs import logic
from lambdas.shared import dal, identity
from lambdas.shared.config import model_spec, setting
from lambdas.shared.observability import bind, logger, metrics, tracer
from lambdas.shared.run_state import Objective
from pipelines import naming

app = LambdaFunctionUrlResolver()


def _json(status: int, document) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(document, default=str),
                    headers={"Cache-Control": "no-store"})


def _caller() -> str:
    iam = ((app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}).get("iam") or {}
    if not iam.get("userArn"):  # only reachable if the URL's auth type were changed to NONE
        raise logic.ApiError(403, "the request carries no verified AWS identity")
    return iam["userArn"]


def _person(principal: str) -> str:
    """The person AWS fixes behind the caller, or 403 with the fix: nobody starts or decides under a name they chose."""
    caller = identity.parse(principal)
    verified = caller is not None and caller.identity_center and dal.identity_center_role(caller.role)
    person = identity.person(caller, json.loads(setting("PERSON_ROLES")), verified)
    if person is None:
        raise logic.ApiError(403, identity.unverified(principal, setting("DATA_SCIENTIST_ROLE_ARN")))
    return person


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
    return _json(200, _view(_execution_arn(name), with_steps=True).model_dump())


@app.get("/runs/<name>/metrics")
def run_metrics(name: str) -> Response:
    """Per-epoch metrics of the run's training job, parsed from its log (CloudWatch Logs, as SageMaker writes it)."""
    spec = model_spec()
    _describe(_execution_arn(name))  # 404 for a run that is not this model's
    job = naming.training_job(spec.name, name)
    history = logic.metric_history(dal.training_log_lines(job), spec.objective.metric, spec.objective.regex)
    return _json(200, {"run": name, "training_job": job, "objective": spec.objective.metric,
                       "direction": spec.objective.direction, **history})


@app.get("/serving")
def serving() -> Response:
    """The model package each stage's endpoint serves (null: no endpoint yet)."""
    prod = setting("PROD_ENDPOINT")  # naming.endpoint(model, env, "prod"); staging is its sibling
    names = {"staging": prod.removesuffix("-prod") + "-staging", "prod": prod}
    endpoints = dal.Endpoints()
    return _json(200, {"stages": {stage: endpoints.served_package(name) for stage, name in names.items()}})


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
    bind(model_spec().name)
    return app.resolve(event, context)

"""Approval hook: the waitForTaskToken request (notify approvers) and the decide endpoint (Function URL)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.approval import logic, tokens
from lambdas.pipeline.logic import champion_metrics
from lambdas.shared import dal
from lambdas.shared.config import model_spec, setting
from lambdas.shared.events import TaskEvent, pipeline_task
from lambdas.shared.observability import bind, logger, metrics, tracer


class ApprovalRequestEvent(TaskEvent):
    task_token: str


def _context(model: str, execution: str) -> dict[str, str]:
    return {"model": model, "execution": execution, "purpose": "approval-task-token"}


@pipeline_task(ApprovalRequestEvent)
def request_approval(event: ApprovalRequestEvent, context: LambdaContext) -> dict:
    spec, state = model_spec(), event.state
    run, registration, evaluation = state["run"], state["registration"], state["evaluation"]
    expires = int(time.time() + spec.approval.timeout_hours * 3600)
    champion = None
    if evaluation.get("champion_arn"):
        champion = champion_metrics(dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")).describe(evaluation["champion_arn"]))
    summary = logic.metrics_table(evaluation["metrics"], champion)
    created = dal.ApprovalStore(setting("AUDIT_TABLE")).create(spec.name, event.execution_name, {
        "status": logic.PENDING, "model": spec.name, "model_package_arn": registration["model_package_arn"],
        "requested_by": run["requested_by"], "approvers": spec.approval.approvers, "expires_at": expires,
        "created_at": datetime.now(timezone.utc).isoformat(), "summary": summary,
        "task_token": dal.encrypt(setting("KMS_KEY_ARN"), event.task_token, _context(spec.name, event.execution_name)),
    })
    if not created:
        logger.info("approval already requested for this execution; not sending again")
        return {"requested": 0}
    key = dal.secret_bytes(setting("SIGNING_SECRET_ARN"))
    per_approver = logic.links(setting("APPROVAL_URL"), event.execution_name, registration["model_package_arn"],
                               spec.approval.approvers, run["requested_by"], expires, key)
    topic = setting("APPROVAL_TOPIC_ARN")
    for approver in spec.approval.approvers:
        body = logic.request_email(spec.name, state, champion, per_approver.get(approver), spec.approval.timeout_hours)
        dal.client("sns").publish(TopicArn=topic, Subject=f"[{spec.name}] approval requested"[:100], Message=body,
                                  MessageAttributes={"approver": {"DataType": "String", "StringValue": approver}})
    metrics.add_metric(name="ApprovalsRequested", unit="Count", value=1)
    logger.info("approval requested", extra={"approvers": len(per_approver)})
    return {"requested": len(per_approver)}


# ------------------------------------------------------------------ decisions

def apply_decision(claims: tokens.LinkClaims, reason: str, source: dict[str, str], *, model: str, audit_table: str,
                   package_group: str) -> str:
    """Checks governance, claims the request exactly once, answers the run, sets the package status.
    Shared by the link endpoint and `mlops approve/reject`."""
    store = dal.ApprovalStore(audit_table)
    record = store.get(model, claims.execution)
    logic.check_pending(record, claims)
    logic.check_governance(claims, list(record["approvers"]), record["requested_by"])
    decided_at = datetime.now(timezone.utc).isoformat()
    status = "APPROVED" if claims.action == "approve" else "REJECTED"
    try:
        store.decide(model, claims.execution, status, {
            "decided_by": claims.approver, "decided_at": decided_at, "reason": reason[:1000] or "-",
            "source_ip": source.get("ip", "-"), "user_agent": source.get("user_agent", "-")[:300], "channel": source.get("channel", "link")})
    except dal.AlreadyDecided:
        logic.check_pending(store.get(model, claims.execution), claims)  # raises the 409 with who decided
        raise
    token = dal.decrypt(record["task_token"], _context(model, claims.execution))
    registry = dal.ModelRegistry(package_group)
    description = f"{status.lower()} by {claims.approver} at {decided_at}: {reason or 'no reason given'}"
    try:
        if claims.action == "approve":
            dal.send_task_result(token, True, {"decision": "approved", "approver": claims.approver, "at": decided_at})
        else:
            dal.send_task_result(token, False, error="ModelRejected", cause=description)
    except dal.TaskGone:
        store.close(model, claims.execution, "EXPIRED")
        raise tokens.LinkError(410, "Request closed", "The run no longer waits for a decision (timed out or stopped).") from None
    registry.set_status(claims.package, "Approved" if claims.action == "approve" else "Rejected", description)
    metrics.add_metric(name="ApprovalsApproved" if claims.action == "approve" else "ApprovalsRejected", unit="Count", value=1)
    logger.info("decision recorded", extra={"decision": status, "approver": claims.approver, "source_ip": source.get("ip")})
    return decided_at


def _persistence() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(table_name=setting("IDEMPOTENCY_TABLE"))


def decide_once(request: dict, context: LambdaContext | None = None) -> dict:
    """A double click replays the first answer (powertools idempotency keyed on the link)."""
    config = IdempotencyConfig(event_key_jmespath="token", expires_after_seconds=7 * 24 * 3600)
    if context is not None:
        config.register_lambda_context(context)

    @idempotent_function(data_keyword_argument="request", persistence_store=_persistence(), config=config)
    def once(request: dict) -> dict:
        claims = tokens.verify(request["token"], dal.secret_bytes(setting("SIGNING_SECRET_ARN")), int(time.time()))
        decided_at = apply_decision(claims, request.get("reason", ""), request["source"], model=model_spec().name,
                                    audit_table=setting("AUDIT_TABLE"), package_group=setting("MODEL_PACKAGE_GROUP"))
        return {"status": 200, "html": logic.done_page("approved" if claims.action == "approve" else "rejected", claims, decided_at)}

    return once(request=request)


app = LambdaFunctionUrlResolver()


def _html(status: int, body: str) -> Response:
    return Response(status_code=status, content_type=content_types.TEXT_HTML, body=body,
                    headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                             "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"})


def _source() -> dict[str, str]:
    http = app.current_event.request_context.http
    return {"ip": http.source_ip, "user_agent": http.user_agent or "-", "channel": "link"}


@app.get("/")
def show() -> Response:
    token = (app.current_event.query_string_parameters or {}).get("t", "")
    try:
        claims = tokens.verify(token, dal.secret_bytes(setting("SIGNING_SECRET_ARN")), int(time.time()))
        record = dal.ApprovalStore(setting("AUDIT_TABLE")).get(model_spec().name, claims.execution)
        logic.check_pending(record, claims)
        logic.check_governance(claims, list(record["approvers"]), record["requested_by"])
    except tokens.LinkError as error:
        return _html(error.status, logic.error_page(error))
    return _html(200, logic.confirm_page(claims, token, record))


@app.post("/")
def decide() -> Response:
    body = app.current_event.decoded_body or ""
    form = {k: v[0] for k, v in parse_qs(body, max_num_fields=4).items()}
    if not form.get("t"):
        return _html(400, logic.error_page(tokens.LinkError(400, "Malformed link", "The request carries no link.")))
    try:
        outcome = decide_once({"token": form.get("t", ""), "reason": form.get("reason", ""), "source": _source()},
                              app.lambda_context)
    except tokens.LinkError as error:
        logger.warning("refused decision", extra={"status": error.status, "title": error.title, "source_ip": _source()["ip"]})
        return _html(error.status, logic.error_page(error))
    return _html(outcome["status"], outcome["html"])


def within_rate_limit(event: dict) -> bool:
    source_ip = ((event.get("requestContext") or {}).get("http") or {}).get("sourceIp") or "unknown"
    key, expires_at = logic.rate_limit_key(source_ip, int(time.time()))
    return dal.RateLimiter(setting("IDEMPOTENCY_TABLE")).allow(
        key, model_spec().approval.max_link_requests_per_minute, expires_at)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def decide_handler(event: dict, context: LambdaContext) -> dict:
    bind(model_spec().name)
    if not within_rate_limit(event):
        metrics.add_metric(name="ApprovalLinkThrottled", unit="Count", value=1)
        error = logic.TOO_MANY_REQUESTS
        return {"statusCode": error.status, "headers": {"Content-Type": "text/html", "Retry-After": str(logic.RATE_WINDOW_S),
                                                        "Cache-Control": "no-store"}, "body": logic.error_page(error)}
    return app.resolve(event, context)

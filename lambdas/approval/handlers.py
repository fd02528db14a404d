"""Approval hook: the waitForTaskToken request (notify approvers) and the decide endpoint (Function URL).

Both are the environment's (stacks/constructs/approval.py). The request acts for the model whose run invoked it
(lambdas/shared/events.py); the decide endpoint verifies the link with the environment's key first, then acts for the
model the signed link names (lambdas/shared/tenancy.py): a link of one model reaches no other model's request."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from lambdas.approval import logic, tokens
from lambdas.shared.lineage import champion_metrics
from lambdas.shared import dal, evidence, release, tenancy
from lambdas.shared.config import model_spec, optional_setting, setting
from lambdas.shared.events import TaskEvent, pipeline_task
from lambdas.shared.observability import bind, logger, metrics, tracer
from lambdas.shared.run_state import RunState
from pipelines import naming


class ApprovalRequestEvent(TaskEvent):
    task_token: str


def _context(model: str, execution: str) -> dict[str, str]:
    """The task token's encryption context: acting for a model, a session decrypts that model's tokens only."""
    return {"model": model, "execution": execution, "purpose": "approval-task-token"}


@pipeline_task(ApprovalRequestEvent)
def request_approval(event: ApprovalRequestEvent, context: LambdaContext) -> dict:
    spec, state = model_spec(), RunState.parse(event.state)
    run, registration, evaluation = state.run, state.registration, state.evaluation
    expires = int(time.time() + spec.approval.timeout_hours * 3600)
    registry = dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP"))
    champion = champion_metrics(registry.describe(evaluation.champion_arn)) if evaluation.champion_arn else None
    package = registry.describe(registration.model_package_arn)
    binding = _artifact_binding(package, registration.model_dump())
    facts = logic.review_facts(spec.name, state, spec.objective, champion, expires, binding, spec.deployment,
                               optional_setting("SERVING_STAGE", "prod") or None,
                               card=evidence.card_summary(package.get("ModelCard")))
    created = dal.ApprovalStore(setting("AUDIT_TABLE")).create(spec.name, event.execution_name, {
        **binding, "requested_by_person": run.requested_by_person, "model_card": bool(package.get("ModelCard")),
        "status": logic.PENDING, "model": spec.name, "model_package_arn": registration.model_package_arn,
        "requested_by": run.requested_by, "approvers": spec.approval.approvers, "expires_at": expires,
        "created_at": datetime.now(timezone.utc).isoformat(), "summary": logic.metrics_table(evaluation.metrics, champion),
        "review": facts.model_dump_json(),
        "task_token": dal.encrypt(setting("KMS_KEY_ARN"), event.task_token, _context(spec.name, event.execution_name)),
    })
    if not created:
        logger.info("approval already requested for this execution; not sending again")
        return {"requested": 0}
    key = dal.secret_bytes(setting("SIGNING_SECRET_ARN"))
    per_approver = logic.links(setting("APPROVAL_URL"), event.execution_name, registration.model_package_arn,
                               spec.approval.approvers, run.requested_by, expires, key, spec.approval.principals,
                               run.requested_by_person, model=spec.name)
    from lambdas.shared.pricing import cost_lines  # only this handler of the module needs the Price List

    cost = "\n\n" + "\n".join(cost_lines(spec, serving=optional_setting("SERVING_STAGE", "prod") or None))  # never raises
    topic = setting("APPROVAL_TOPIC_ARN")
    for approver in spec.approval.approvers:
        body = logic.request_email(facts, per_approver.get(approver), spec.approval.timeout_hours, approver)
        body += cost
        dal.client("sns").publish(TopicArn=topic, Subject=f"[{spec.name}] approval requested"[:100], Message=body,
                                  MessageAttributes={"approver": {"DataType": "String", "StringValue": approver}})
    metrics.add_metric(name="ApprovalsRequested", unit="Count", value=1)
    logger.info("approval requested", extra={"approvers": len(per_approver)})
    return {"requested": len(per_approver)}


def _artifact_binding(package: dict, registered: dict) -> dict[str, str]:
    """What the approver approves, bound in the request: the artifact's URI, sha256 and S3 version and the image,
    once the registry, the registration step and the bytes the URI holds now all agree."""
    now = dal.artifact_now(release.package_artifact(package)["artifact_uri"])
    return release.approval_binding(package, registered, now)


# ------------------------------------------------------------------ decisions

def apply_decision(claims: tokens.LinkClaims, reason: str, source: dict[str, str], *, model: str, audit_table: str,
                   package_group: str) -> str:
    """Checks governance, records the decision exactly once, then applies it: registry first, run second.
    Each step is idempotent; a step that fails (throttling) leaves the record `applied: false`, which the same
    click, or the reconciler, completes. No partial state can deploy: the deploy step needs both the APPROVED
    record and the Approved package. Shared by the link endpoint and the CLI."""
    store = dal.ApprovalStore(audit_table)
    record = store.get(model, claims.execution)
    if not logic.resumable(record, claims):
        logic.check_pending(record, claims)
        logic.check_governance(claims, list(record["approvers"]), record["requested_by"], model_spec().approval.principals,
                               record.get("requested_by_person"), source.get("person"))
        try:
            record = claim(store, model, claims, reason, source)
        except dal.ClientError:
            raise tokens.LinkError(503, "Try again", "The decision could not be recorded, and nothing changed. "
                                                     "Please try again in a minute.") from None
    try:
        complete_decision(store, model, record, package_group, setting("STATE_MACHINE_ARN"))
    except dal.ClientError as error:
        logger.warning("decision recorded, not yet applied", extra={"error": str(error)})
        raise tokens.LinkError(503, "Decision recorded", "Your decision is recorded and will be applied to the run "
                                                         "automatically within minutes; no need to click again.") from None
    metrics.add_metric(name="ApprovalsApproved" if claims.action == "approve" else "ApprovalsRejected", unit="Count", value=1)
    logger.info("decision applied", extra={"decision": record["status"], "approver": claims.approver, "source_ip": source.get("ip")})
    return str(record["decided_at"])


def claim(store: dal.ApprovalStore, model: str, claims: tokens.LinkClaims, reason: str, source: dict[str, str]) -> dict:
    fields = {"decided_by": claims.approver, "decided_at": datetime.now(timezone.utc).isoformat(),
              "reason": reason[:1000] or "-", "source_ip": source.get("ip", "-"),
              "user_agent": source.get("user_agent", "-")[:300], "channel": source.get("channel", "link"), "applied": False,
              **({"decided_by_person": source["person"]} if source.get("person") else {})}
    try:
        store.decide(model, claims.execution, logic.decision_status(claims), fields)
    except dal.AlreadyDecided:
        logic.check_pending(store.get(model, claims.execution), claims)  # raises the 409 with who decided
        raise
    return store.get(model, claims.execution)


def complete_decision(store: dal.ApprovalStore, model: str, record: dict, package_group: str, machine_arn: str) -> None:
    """Registry, then run, then `applied`. Also what the reconciler runs for a decision left unapplied."""
    execution, approved = record["sk"].split("#", 1)[1], record["status"] == "APPROVED"
    registry, package = dal.ModelRegistry(package_group), record["model_package_arn"]
    description = f"{record['status'].lower()} by {record['decided_by']} at {record['decided_at']}: {record.get('reason', '-')}"
    registry.set_status(package, "Approved" if approved else "Rejected", description)
    if approved and record.get("model_card"):
        approve_model_card(registry, package)
    token = dal.decrypt(record["task_token"], _context(model, execution))
    try:
        if approved:
            dal.send_task_result(token, True, {"decision": "approved", "approver": record["decided_by"],
                                               "at": record["decided_at"]})
        else:
            dal.send_task_result(token, False, error="ModelRejected", cause=description)
    except dal.TaskGone:
        if not execution_running(machine_arn, execution):
            if approved:
                registry.set_status(package, "Rejected", f"approved after the run had stopped waiting: {description}")
            store.close(model, execution, "EXPIRED")
            store.mark_applied(model, execution)
            raise tokens.LinkError(410, "Request closed", "The run no longer waits for a decision (timed out or stopped).") from None
    store.mark_applied(model, execution)


def approve_model_card(registry: dal.ModelRegistry, package: str) -> None:
    """The approver read the card with the version: its status becomes Approved (registered PendingReview). A card
    that cannot be updated leaves the decision applied: the card's status is the record of a review, never its gate."""
    try:
        registry.set_card_status(package, evidence.CARD_APPROVED)
    except dal.ClientError as error:
        logger.warning("the model card's status stays as registered", extra={"error": str(error)[:500]})
        metrics.add_metric(name="ModelCardUpdateFailures", unit="Count", value=1)


def execution_running(machine_arn: str, execution: str) -> bool:
    """Also tells a repeated SendTask (after a lost `applied` write) from a gone run: the task is gone in both
    cases, but a run that heard the answer is still running."""
    return dal.execution_status(f"{machine_arn.replace(':stateMachine:', ':execution:')}:{execution}") == "RUNNING"


def reconcile(model: str, audit_table: str, package_group: str, machine_arn: str, now: float | None = None) -> list[dict]:
    """Decisions recorded but never applied (a throttled or crashed click) are completed; PENDING requests of
    runs that no longer run are closed and their packages rejected. Scheduled, and `mlops approvals repair`."""
    store, now = dal.ApprovalStore(audit_table), time.time() if now is None else now
    repaired = []
    for record in store.records(model):
        execution = record["sk"].split("#", 1)[1]
        if logic.needs_repair(record, now):
            try:
                complete_decision(store, model, record, package_group, machine_arn)
                repaired.append({"execution": execution, "action": f"applied {record['status'].lower()}"})
            except tokens.LinkError:
                repaired.append({"execution": execution, "action": "closed: the run no longer waited"})
        elif record.get("status") == logic.PENDING and not execution_running(machine_arn, execution):
            store.close(model, execution, "ABANDONED")
            dal.ModelRegistry(package_group).set_status(record["model_package_arn"], "Rejected",
                                                        "the run ended before anyone decided")
            repaired.append({"execution": execution, "action": "closed abandoned request"})
    logger.info("approvals reconciled", extra={"repaired": len(repaired)})
    return repaired


def verify_link(token: str) -> tokens.LinkClaims:
    """The secret is cached for minutes: a link signed just after a rotation names a key not cached yet."""
    secret = setting("SIGNING_SECRET_ARN")
    try:
        return tokens.verify(token, dal.secret_bytes(secret), int(time.time()))
    except tokens.UnknownKey:
        return tokens.verify(token, dal.secret_bytes(secret, refresh=True), int(time.time()))


def _persistence() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(table_name=setting("IDEMPOTENCY_TABLE"))


def decide_once(request: dict, context: LambdaContext | None = None) -> dict:
    """A double click replays the first answer (powertools idempotency keyed on the link)."""
    config = IdempotencyConfig(event_key_jmespath="token", expires_after_seconds=7 * 24 * 3600)
    if context is not None:
        config.register_lambda_context(context)

    @idempotent_function(data_keyword_argument="request", persistence_store=_persistence(), config=config)
    def once(request: dict) -> dict:
        claims = verify_link(request["token"])
        decided_at = apply_decision(claims, request.get("reason", ""), request["source"], model=claims.model,
                                    audit_table=setting("AUDIT_TABLE"), package_group=setting("MODEL_PACKAGE_GROUP"))
        return {"status": 200, "html": logic.done_page("approved" if claims.action == "approve" else "rejected", claims, decided_at)}

    return once(request=request)


app = LambdaFunctionUrlResolver()


def _html(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.TEXT_HTML, body=body,
                    headers={**(headers or {}), "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                             "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"})


def _source() -> dict[str, str]:
    http = app.current_event.request_context.http
    return {"ip": http.source_ip, "user_agent": http.user_agent or "-", "channel": "link"}


def _refusal(error: tokens.LinkError) -> Response:
    retry = {"Retry-After": str(logic.RATE_WINDOW_S)} if error.status == logic.TOO_MANY_REQUESTS.status else {}
    return _html(error.status, logic.error_page(error), retry)


UNKNOWN_REQUEST = tokens.LinkError(404, "Unknown request", "No approval request matches this link.")
NO_MODEL = tokens.LinkError(400, "Malformed link", "The link names no model; open the link from your email again.")
# The per-address budget of requests whose link does not verify (no model to take a budget from): ApprovalSpec's
# default max_link_requests_per_minute.
UNVERIFIED_REQUESTS_PER_MINUTE = 30


def link_model(claims: tokens.LinkClaims) -> str:
    if not re.fullmatch(naming.MODEL_NAME_PATTERN, claims.model):
        raise NO_MODEL
    return claims.model


@contextmanager
def for_link(token: str) -> Iterator[tokens.LinkClaims]:
    """The claims of an authentic link, inside: every client acting for the model the link names and the request
    counted against that model's budget for the client address; LinkError otherwise. The link is verified with the
    function's own role (the environment's key) before any session is taken: the model comes from signed claims.
    The counters are the environment's (the function's own role keeps them), one per model and address: one model's
    approvers cannot spend another model's budget, nor can requests whose link does not verify (counted apart)."""
    limiter = dal.RateLimiter(setting("IDEMPOTENCY_TABLE"))  # made here: with the function's own credentials
    try:
        claims = verify_link(token)
        model = link_model(claims)
    except tokens.LinkError:
        _count(limiter, None, UNVERIFIED_REQUESTS_PER_MINUTE)
        raise
    try:
        with tenancy.acting_for(model):
            bind(model)
            _count(limiter, model, model_spec().approval.max_link_requests_per_minute)
            yield claims
    except tenancy.ModelNotDeployed:
        raise UNKNOWN_REQUEST from None


def _count(limiter: dal.RateLimiter, model: str | None, limit: int) -> None:
    """This request against the client address's budget of this minute (of the model, or of unverified requests)."""
    key, expires_at = logic.rate_limit_key(_source()["ip"] or "unknown", int(time.time()), model)
    if not limiter.allow(key, limit, expires_at):
        metrics.add_metric(name="ApprovalLinkThrottled", unit="Count", value=1)
        raise logic.TOO_MANY_REQUESTS


@app.get("/")
def show() -> Response:
    token = (app.current_event.query_string_parameters or {}).get("t", "")
    try:
        with for_link(token) as claims:
            record = dal.ApprovalStore(setting("AUDIT_TABLE")).get(claims.model, claims.execution)
            logic.check_pending(record, claims)
            logic.check_governance(claims, list(record["approvers"]), record["requested_by"],
                                   model_spec().approval.principals, record.get("requested_by_person"))
            other = tokens.sign(logic.counterpart(claims), dal.secret_bytes(setting("SIGNING_SECRET_ARN")))
    except tokens.LinkError as error:
        return _refusal(error)
    return _html(200, logic.confirm_page(claims, token, record, other))


MAX_FORM_BYTES = 8192
MALFORMED_FORM = tokens.LinkError(400, "Malformed request", "The request is not the approval page's form; open the "
                                                            "link from your email again.")
IN_PROGRESS = tokens.LinkError(409, "Decision in progress", "This link is being processed right now (another click "
                                                           "or tab); reload the page in a few seconds to see the outcome.")


def read_form() -> dict[str, str]:
    """The approve/reject form: a small urlencoded body with one `t` and an optional `reason`, or LinkError 400."""
    try:
        body = app.current_event.decoded_body or ""
    except (ValueError, TypeError):  # isBase64Encoded with a body that is not base64
        raise MALFORMED_FORM from None
    if not isinstance(body, str) or len(body) > MAX_FORM_BYTES:
        raise MALFORMED_FORM
    try:
        fields = parse_qs(body, max_num_fields=4, strict_parsing=bool(body), errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise MALFORMED_FORM from None
    if any(len(values) != 1 for values in fields.values()) or set(fields) - {"t", "reason"}:
        raise MALFORMED_FORM
    form = {name: values[0] for name, values in fields.items()}
    if not form.get("t"):
        raise tokens.LinkError(400, "Malformed link", "The request carries no link.")
    return form


@app.post("/")
def decide() -> Response:
    try:
        try:
            form = read_form()
        except tokens.LinkError:  # not the page's form: counted as a request whose link does not verify
            _count(dal.RateLimiter(setting("IDEMPOTENCY_TABLE")), None, UNVERIFIED_REQUESTS_PER_MINUTE)
            raise
        with for_link(form["t"]):
            outcome = decide_once({"token": form["t"], "reason": form.get("reason", ""), "source": _source()},
                                  app.lambda_context)
    except IdempotencyAlreadyInProgressError:
        return _html(IN_PROGRESS.status, logic.error_page(IN_PROGRESS))
    except tokens.LinkError as error:
        logger.warning("refused decision", extra={"status": error.status, "title": error.title, "source_ip": _source()["ip"]})
        return _refusal(error)
    return _html(outcome["status"], outcome["html"])


class RepairRequest(BaseModel):
    """A repair schedule's input (stacks/constructs/approval.py)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=naming.MODEL_NAME_PATTERN)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def reconcile_handler(event: dict, context: LambdaContext) -> dict:
    """Scheduled (the control plane's, for the model of the schedule's input): completes decisions left unapplied and
    closes requests of runs that ended, acting for that model."""
    model = RepairRequest.model_validate(event).model
    bind(model)
    with tenancy.acting_for(model):
        repaired = reconcile(model, setting("AUDIT_TABLE"), setting("MODEL_PACKAGE_GROUP"), setting("STATE_MACHINE_ARN"))
    metrics.add_metric(name="ApprovalsRepaired", unit="Count", value=len(repaired))
    return {"repaired": repaired}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def decide_handler(event: dict, context: LambdaContext) -> dict:
    """The environment's approval URL: each request acts for the model its verified link names (for_link)."""
    return app.resolve(event, context)

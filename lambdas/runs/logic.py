"""The runs API's rules: pure, no AWS calls (those are in handlers.py through lambdas.shared.dal)."""

from __future__ import annotations

import re
import time
import uuid

from pydantic import ValidationError

from lambdas.runs.models import DecisionRequest, RunRequest, RunView

IDENTITY_FIELDS = ("requested_by", "approver", "decided_by")
_ASSUMED_ROLE = re.compile(r"^arn:aws[a-z-]*:sts::\d{12}:assumed-role/(?P<role>[^/]+)/(?P<session>[^/]+)$")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def parse_run_request(body: dict, known_hyperparameters) -> RunRequest:
    refuse_identity_fields(body)
    request = _parse(RunRequest, body)
    unknown = sorted(set(request.hyperparameters) - set(known_hyperparameters))
    if unknown:
        raise ApiError(400, f"unknown hyperparameters {unknown}; known: {sorted(known_hyperparameters)}")
    return request


def parse_decision(body: dict) -> DecisionRequest:
    refuse_identity_fields(body)
    return _parse(DecisionRequest, body)


def refuse_identity_fields(body: dict) -> None:
    named = [name for name in IDENTITY_FIELDS if name in body]
    if named:
        raise ApiError(400, f"{named} may not be sent: who you are is taken from your signed AWS identity")


def _parse(model, body: dict):
    try:
        return model.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
        raise ApiError(400, f"invalid request: {problems}") from None


def execution_input(request: RunRequest, model: str, principal: str) -> dict:
    document = {"model": model, "trigger": "manual", "requested_by": principal, "hyperparameters": request.hyperparameters}
    for name in ("git_commit", "reason", "dataset_key"):
        value = getattr(request, name)
        if value:
            document[name] = value
    return document


def execution_name(now: float | None = None) -> str:
    return f"manual-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{uuid.uuid4().hex[:6]}"


def refuse_second_run(running: list[dict], model: str) -> None:
    if running:
        raise ApiError(409, f"{model} already has a running retraining execution '{running[0]['name']}' "
                            f"(started {running[0]['startDate']}); wait for it or stop it first")


def approver_for(principal: str, approvers: list[str], principals: dict[str, list[str]], approver_role: str) -> str | None:
    """The approver a caller acts as, or None. Approvers with patterns in the spec are matched by those only;
    the others by this model's approver role with the approver's email as the session name (which IAM Identity
    Center sets to the user's email, or a trust condition sts:RoleSessionName = ${aws:username} enforces)."""
    for approver in approvers:
        patterns = principals.get(approver)
        if patterns is not None and any(_matches(pattern, principal) for pattern in patterns):
            return approver
    session = _ASSUMED_ROLE.match(principal)
    if session is None or session["role"] != approver_role:
        return None
    email = session["session"].lower()
    return email if email in approvers and email not in principals else None


def _matches(pattern: str, principal: str) -> bool:
    """IAM-style: '*' matches any run of characters, everything else literally (case-sensitive, as ARNs)."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), principal) is not None


def current_step(history_newest_first: list[dict]) -> str | None:
    """The name of the state the run is in; only names leave here (history events carry task tokens)."""
    for event in history_newest_first:
        details = event.get("stateEnteredEventDetails")
        if details:
            return details["name"]
    return None


def run_view(execution: dict, described: dict | None = None, step: str | None = None) -> RunView:
    described = described or {}
    stopped = execution.get("stopDate")
    return RunView(name=execution["name"], arn=execution["executionArn"], status=execution["status"],
                   started=str(execution["startDate"]), stopped=str(stopped) if stopped else None, current_step=step,
                   error=described.get("error"), cause=described.get("cause"))


def pending_view(record: dict) -> dict:
    """A pending approval without its encrypted task token."""
    return {"execution": record["sk"].split("#", 1)[1], "model_package_arn": record.get("model_package_arn"),
            "requested_by": record.get("requested_by"), "expires_at": int(record.get("expires_at", 0))}


def check_open(record: dict | None, execution: str, now: float) -> dict:
    if record is None:
        raise ApiError(404, f"no approval request for run {execution}")
    if record.get("status") != "PENDING":
        raise ApiError(409, f"run {execution} was already {str(record.get('status', '')).lower()} by "
                            f"{record.get('decided_by', 'someone')} at {record.get('decided_at', '?')}")
    if now > int(record["expires_at"]):
        raise ApiError(410, "the approval window has closed; the run ends as rejected")
    return record

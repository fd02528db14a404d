"""The runs API's rules: pure, no AWS calls (those are in handlers.py through lambdas.shared.dal)."""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from typing import Iterable

from pydantic import ValidationError

from lambdas.approval.logic import principal_matches
from lambdas.runs.models import DecisionRequest, RunRequest, RunView
from lambdas.shared.text import one_line
from lambdas.shared.run_state import (APPROVAL_STEP, Objective, RunState, current_step, history_steps, outcome,  # noqa: F401
                                      settle)

IDENTITY_FIELDS = ("requested_by", "requested_by_person", "approver", "decided_by")
# ListExecutions statusFilter (botocore's stepfunctions model, ExecutionStatus).
STATUS_FILTERS = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
# StartExecution: at most 256 KiB of input, in UTF-8 bytes (Step Functions' service quotas, "Input or result data
# size for a task, state, or execution").
MAX_EXECUTION_INPUT_BYTES = 256 * 1024
# Execution names (StartExecution `name`): 1-80 characters, none of whitespace, brackets, wildcards, the listed
# punctuation, or control characters.
_EXECUTION_NAME = re.compile(r'^[^\s<>{}\[\]?*"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]{1,80}$')
# CreateTrainingJob HyperParameters values: at most 2,500 characters (botocore's sagemaker model).
MAX_HYPERPARAMETER_CHARS = 2500
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
        raise ApiError(400, f"unknown hyperparameters {[one_line(n, 80) for n in unknown]}; known: {sorted(known_hyperparameters)}")
    long = sorted(name for name, value in request.hyperparameters.items() if len(json.dumps(value)) > MAX_HYPERPARAMETER_CHARS)
    if long:
        raise ApiError(400, f"hyperparameters.{long[0]}: the value is over SageMaker's {MAX_HYPERPARAMETER_CHARS:,} "
                            "characters per hyperparameter")
    return request


def check_status_filter(value: str | None) -> str | None:
    if value is not None and value not in STATUS_FILTERS:
        raise ApiError(400, f"status: {one_line(value, 40)!r} is not a run status; use one of {', '.join(STATUS_FILTERS)}")
    return value


def check_run_name(name: str, field: str = "run") -> str:
    """A run (execution) name as Step Functions accepts one, checked before any call that names it."""
    if not _EXECUTION_NAME.match(name):
        raise ApiError(400, f"{field}: {one_line(name, 90)!r} is not a run name (1-80 characters, no spaces, "
                            "brackets, wildcards, control characters or \"#%\\^|~`$&,;:/); e.g. manual-20250101T120000-1a2b3c")
    return name


def execution_input_json(document: dict) -> str:
    """The execution input as StartExecution receives it, refused with 400 above Step Functions' 256 KiB, naming the
    largest field."""
    text = json.dumps(document)
    size = len(text.encode())
    if size > MAX_EXECUTION_INPUT_BYTES:
        largest = max(document, key=lambda name: len(json.dumps(document[name]).encode()))
        raise ApiError(400, f"{largest}: the run's input is {size:,} bytes, over Step Functions' "
                            f"{MAX_EXECUTION_INPUT_BYTES:,}-byte limit; fix: shorten {largest}")
    return text


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


def execution_input(request: RunRequest, model: str, principal: str, person: str) -> dict:
    """person: who AWS says the principal is (lambdas.shared.identity), compared with the approver's at decisions."""
    document = {"model": model, "trigger": "manual", "requested_by": principal, "requested_by_person": person,
                "hyperparameters": request.hyperparameters}
    for name in ("git_commit", "reason", "dataset_key", "reproduce_version", "reproduce_tolerance"):
        value = getattr(request, name)
        if value or (name == "reproduce_tolerance" and value == 0):
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
        if patterns is not None and any(principal_matches(pattern, principal) for pattern in patterns):
            return approver
    session = _ASSUMED_ROLE.match(principal)
    if session is None or session["role"] != approver_role:
        return None
    email = session["session"].lower()
    return email if email in approvers and email not in principals else None


def run_view(described: dict, objective: Objective | None = None, history: list[dict] | None = None,
             approval: dict | None = None, with_steps: bool = False) -> RunView:
    """A run as people see it: status, trigger, who asked, where it is, and its outcome. Only names, errors
    and causes leave here: never the input or output documents or history events (which carry task tokens)."""
    steps, failure = history_steps(history or [])
    started_with = RunState.parse(described.get("input"))
    ended_with = RunState.parse(described.get("output")) if described.get("status") == "SUCCEEDED" else started_with
    trigger, requested_by = _who(described.get("input"))
    stopped = described.get("stopDate")
    current = current_step(steps)
    steps = settle(steps, described["status"])
    ended = next((e[key] for e in history or [] for key in ("executionAbortedEventDetails", "executionTimedOutEventDetails")
                  if isinstance(e.get(key), dict)), {})
    result = outcome(described["status"], ended_with, objective, current=current, failure=failure, approval=approval,
                     error=described.get("error") or ended.get("error") or None,
                     cause=described.get("cause") or ended.get("cause") or None)
    return RunView(name=described["name"], arn=described["executionArn"], status=described["status"],
                   started=str(described["startDate"]), stopped=str(stopped) if stopped else None,
                   current_step=current, trigger=trigger, requested_by=requested_by, outcome=result,
                   steps=steps if with_steps else [], error=result.error or described.get("error"),
                   cause=result.cause or described.get("cause"))


def _who(document) -> tuple[str | None, str | None]:
    """(trigger, requested_by) from an execution's input: the runs API, the schedule rule or the drift hook."""
    try:
        parsed = json.loads(document) if isinstance(document, str) else (document or {})
    except ValueError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    return parsed.get("trigger"), parsed.get("requested_by")


def needs_history(status: str) -> bool:
    """Succeeded runs are explained by their output; the others by their history (the failed step, the wait)."""
    return status != "SUCCEEDED"


def needs_approval_record(history: list[dict]) -> bool:
    """Whether the run reached the approval step (so its audit record says who may decide, until when, or who did)."""
    steps, failure = history_steps(history)
    return any(step.name == APPROVAL_STEP for step in steps) or bool(failure and failure.get("state") == APPROVAL_STEP)


_METRIC = re.compile(r"(?P<name>[A-Za-z0-9_.:/-]+)=(?P<value>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*;")


def metric_history(lines: Iterable[str], objective_metric: str, objective_regex: str) -> dict:
    """Per-epoch metrics from a training job's log lines ('epoch=3; train:loss=0.41;'), and the final metrics
    (lines without an epoch, and the spec's objective regex). Values that are not finite numbers are skipped."""
    epochs: dict[int, dict[str, float]] = {}
    final: dict[str, float] = {}
    objective = re.compile(objective_regex)
    for line in lines:
        pairs = {m["name"]: m["value"] for m in _METRIC.finditer(line)}
        epoch = pairs.pop("epoch", None)
        values = {name: float(value) for name, value in pairs.items() if math.isfinite(float(value))}
        if epoch is not None and epoch.isdigit():
            epochs.setdefault(int(epoch), {}).update(values)
        else:
            final.update(values)
        found = objective.search(line)
        if found and epoch is None:
            try:
                final[objective_metric] = float(found.group(1))
            except (ValueError, IndexError):
                pass
    return {"epochs": [{"epoch": number, **values} for number, values in sorted(epochs.items())], "final": final}


def pending_view(record: dict) -> dict:
    """A pending approval without its encrypted task token: with when it was requested and the review the approver
    decides on (lambdas/approval/logic.py ReviewFacts, as the email and the page show it), for `mlops approvals list`
    and the confirmation of `mlops approve`."""
    return {"execution": record["sk"].split("#", 1)[1], "model_package_arn": record.get("model_package_arn"),
            "requested_by": record.get("requested_by"), "expires_at": int(record.get("expires_at", 0)),
            "approvers": list(record.get("approvers") or []), "created_at": record.get("created_at"),
            "review": _review_of(record)}


def _review_of(record: dict) -> dict | None:
    try:
        review = json.loads(record.get("review") or "null")
    except ValueError:
        return None
    return review if isinstance(review, dict) else None


def check_open(record: dict | None, execution: str, now: float) -> dict:
    if record is None:
        raise ApiError(404, f"no approval request for run {execution}")
    if record.get("status") != "PENDING":
        raise ApiError(409, f"run {execution} was already {str(record.get('status', '')).lower()} by "
                            f"{record.get('decided_by', 'someone')} at {record.get('decided_at', '?')}")
    if now > int(record["expires_at"]):
        raise ApiError(410, "the approval window has closed; the run ends as rejected")
    return record

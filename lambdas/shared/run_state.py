"""The run's state document, typed: what the retraining state machine carries from step to step, and what a
run's outcome is. One model shared by the pipeline's handlers, the approval hook, the runs API, the client, the
CLI, the notebook and the local mode, instead of nested dicts read by string keys.

Sections are added by the steps (ResultPath): `run` (PrepareRun), `validation` (ValidateData), `training`
(Train), `evaluation` (EvaluateAgainstChampion), `registration` (RegisterModelPackage), `approval`
(WaitForApproval), `deployment` (Deploy*), `error` (a Catch). Unknown sections are kept (extra="allow"), so a
new step never breaks a reader.

`Outcome` is what a person asks first ("what happened to my run?"): promoted, kept the champion (with both
numbers), below the spec's threshold, waiting for approval (who, until when), rejected, approval expired,
failed at step X (with the error text), stopped, refused, still running.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lambdas.shared.errors import failure_reason
from lambdas.shared.evidence import Evidence

APPROVAL_STEP = "WaitForApproval"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def decoded_hyperparameters(encoded: dict[str, str]) -> dict:
    """SageMaker's JSON-string values back to numbers and booleans; the script-mode settings left out."""
    decoded = {}
    for key, value in encoded.items():
        if key.startswith(("sagemaker_", "_")):  # script-mode settings; a tuning trial's _tuning_objective_metric
            continue
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RunConfig(_Section):
    """`$.run`: who and what started the run, and exactly what it trains with (PrepareRun)."""

    model: str
    trigger: str = "manual"
    requested_by: str = "unknown"
    requested_by_person: str | None = Field(default=None, description="The person AWS fixes behind requested_by "
                                            "(lambdas.shared.identity), for people; None for schedules and the drift hook")
    git_commit: str = Field(default="unknown", description="The deployed source's commit (what trained)")
    claimed_git_commit: str | None = Field(default=None, description="A commit the requester sent: unverified")
    execution_arn: str = ""
    execution_name: str = ""
    training_job_name: str = ""
    dataset_key: str = ""
    hyperparameters: dict[str, str] = Field(default_factory=dict, description="SageMaker's JSON-string form")
    reason: str = ""

    def typed_hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters with their types back (numbers, booleans), SageMaker's own settings left out."""
        return decoded_hyperparameters(self.hyperparameters)


class DataValidation(_Section):
    """`$.validation`: the exact dataset version the run trained on (ValidateData)."""

    dataset_uri: str
    version_id: str | None = None
    sha256: str = ""
    bytes: int = 0
    snapshot_uri: str = ""
    snapshot_prefix: str = ""
    rows: int = 0
    minority_share: float = 0.0
    null_fraction: dict[str, float] = Field(default_factory=dict)


class TrainingResult(_Section):
    """`$.training`: the Train step's ResultSelector."""

    job_name: str
    job_arn: str = ""
    model_artifacts: str = ""
    output_path: str = ""
    image_uri: str = ""


class Evaluation(_Section):
    """`$.evaluation`: the challenger against the champion on the spec's objective (EvaluateAgainstChampion)."""

    metrics: dict[str, Any] = Field(default_factory=dict, description="The evaluation report's metrics (numbers)")
    objective: str
    value: float
    champion_arn: str | None = None
    champion_value: float | None = None
    promote: bool
    reason: str = ""
    report_uri: str = ""
    baseline_statistics_uri: str = ""
    baseline_constraints_uri: str = ""
    artifact_version_id: str | None = Field(default=None, description="The S3 version of the trained model.tar.gz "
                                            "that was evaluated: the one registration releases")
    tracking_error: str | None = Field(default=None, description="Why the run is not in MLflow (the run went on)")
    validation_overlap: dict[str, Any] | None = Field(
        default=None, description="Validation rows whose features equal a training row's (the training job's "
                                  "count): train/validation leakage")
    reproduction: dict[str, Any] | None = Field(
        default=None, description="A reproduction's verdict: the version's recorded metrics, the reproduced ones, "
                                  "the tolerance and whether it reproduced (lambdas.pipeline.experiments)")
    # The evidence beside evaluation.json (lambdas.shared.evidence), attached to the registered version: "" when the
    # training job wrote no such report (older training code).
    bias_report_uri: str = Field(default="", description="bias.json: Clarify's analysis (ModelMetrics.Bias.Report)")
    pre_training_bias_uri: str = Field(default="", description="bias/pre_training.json (Bias.PreTrainingReport)")
    post_training_bias_uri: str = Field(default="", description="bias/post_training.json (Bias.PostTrainingReport)")
    explainability_report_uri: str = Field(default="", description="explainability.json (Explainability.Report)")
    model_card_uri: str = Field(default="", description="model_card.json: the card as evaluated (the registered "
                                                        "one adds the released artifact)")
    evidence: Evidence | None = Field(default=None, description="The bias and attribution reports, summarized "
                                                                "(bounded) for the model card and the approval page")


class Registration(_Section):
    """`$.registration`: the model package waiting for approval (RegisterModelPackage)."""

    model_package_arn: str
    version: int | None = None
    # The released artifact (releases/<model>/<sha256>/model.tar.gz) the package serves, and its serving image.
    artifact_uri: str | None = None
    artifact_sha256: str | None = None
    artifact_version_id: str | None = None
    image: str | None = None


class ApprovalResult(_Section):
    """`$.approval`: what SendTaskSuccess answered the approval step with."""

    decision: str = ""
    approver: str = ""
    at: str = ""


class StepError(_Section):
    """`$.error`: what a Catch put there ({"Error", "Cause"}; Cause may be null or a Lambda error document)."""

    error: str | None = Field(default=None, alias="Error")
    cause: str | None = Field(default=None, alias="Cause")

    @property
    def reason(self) -> str:
        return failure_reason({"Error": self.error, "Cause": self.cause})


class RunState(_Section):
    """The whole state document."""

    run: RunConfig | None = None
    validation: DataValidation | None = None
    training: TrainingResult | None = None
    evaluation: Evaluation | None = None
    registration: Registration | None = None
    approval: ApprovalResult | None = None
    deployment: dict[str, Any] | None = None
    error: StepError | None = None

    @classmethod
    def parse(cls, document: str | dict | None) -> RunState:
        """A state document from an execution's input/output (JSON text or dict); {} when there is none."""
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError:
                document = {}
        return cls.model_validate(document if isinstance(document, dict) else {})


# ------------------------------------------------------------------ outcomes
OutcomeKind = Literal["running", "waiting_for_approval", "promoted", "kept_champion", "below_threshold", "rejected",
                      "approval_expired", "failed", "stopped", "refused", "timed_out", "reproduced", "not_reproduced"]


class Objective(BaseModel):
    """The deciding metric as the spec defines it (pipelines.spec.ObjectiveSpec's fields that a reader needs)."""

    metric: str
    direction: Literal["maximize", "minimize"] = "maximize"
    minimum: float | None = None
    champion_margin: float = 0.0

    def passes_minimum(self, value: float) -> bool:
        if self.minimum is None:
            return True
        return value >= self.minimum if self.direction == "maximize" else value <= self.minimum

    @property
    def threshold_word(self) -> str:
        return "minimum" if self.direction == "maximize" else "maximum"

    @classmethod
    def of(cls, spec_objective) -> Objective:
        return cls(metric=spec_objective.metric, direction=spec_objective.direction, minimum=spec_objective.minimum,
                   champion_margin=spec_objective.champion_margin)


class Outcome(BaseModel):
    """How a run ended (or where it waits), with the facts that say why."""

    kind: OutcomeKind
    summary: str
    step: str | None = Field(default=None, description="The step the run failed at, or waits at")
    error: str | None = None
    cause: str | None = None
    metric: str | None = None
    direction: str | None = None
    value: float | None = None
    champion_value: float | None = None
    threshold: float | None = None
    delta: float | None = Field(default=None, description="value - champion_value")
    approvers: list[str] = Field(default_factory=list)
    expires_at: str | None = None
    decided_by: str | None = None
    model_package_arn: str | None = None
    version: int | None = None
    tracking_error: str | None = Field(default=None, description="Why the run's experiment is not in MLflow")

    @property
    def succeeded(self) -> bool:
        return self.kind in ("promoted", "kept_champion", "below_threshold", "reproduced", "not_reproduced")


class StepView(BaseModel):
    """One state the run entered, in order: never its input or output (which may carry a task token)."""

    name: str
    status: Literal["running", "succeeded", "failed", "stopped"]
    entered: str | None = None
    error: str | None = None


class RunView(BaseModel):
    """A run as the runs API shows it: no input document, no history events, so never a task token."""

    name: str
    arn: str
    status: str
    started: str
    stopped: str | None = None
    current_step: str | None = None
    trigger: str | None = None
    requested_by: str | None = None
    outcome: Outcome | None = None
    steps: list[StepView] = Field(default_factory=list)
    error: str | None = None
    cause: str | None = None


def history_steps(events: list[dict]) -> tuple[list[StepView], dict | None]:
    """The states a run entered, oldest first, each with how it ended; and its first failure that was not
    retried away ({state, error, cause}). Events may arrive in any order (moto ignores reverseOrder): sorted by
    id here."""
    steps: list[StepView] = []
    failures: list[tuple[StepView | None, dict]] = []
    for event in sorted(events, key=lambda e: int(e.get("id", 0))):
        entered, exited = event.get("stateEnteredEventDetails"), event.get("stateExitedEventDetails")
        running = next((s for s in reversed(steps) if s.status != "succeeded"), None) if steps else None
        if entered:
            steps.append(StepView(name=entered["name"], status="running", entered=_iso(event.get("timestamp"))))
        elif exited:
            step = next((s for s in reversed(steps) if s.name == exited["name"]), None)
            if step is not None and step.status == "running":
                step.status = "succeeded"
        elif any(key.endswith("ScheduledEventDetails") for key in event) and running is not None \
                and running.status == "failed":  # a Retry: the earlier failure did not end the step
            running.status, running.error = "running", None
            failures = [(step, f) for step, f in failures if step is not running]
        else:
            for key, details in event.items():
                if not (key.endswith("FailedEventDetails") or key.endswith("TimedOutEventDetails")) \
                        or key.startswith("execution"):
                    continue
                details = details if isinstance(details, dict) else {}
                error = details.get("error") or ("States.Timeout" if "TimedOut" in key else None)
                if running is not None:
                    running.status, running.error = "failed", error
                failures.append((running, {"state": running.name if running else None, "error": error,
                                           "cause": details.get("cause")}))
    return steps, failures[0][1] if failures else None


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    return str(value)


def settle(steps: list[StepView], status: str) -> list[StepView]:
    """Steps of a run that ended are no longer running: a Fail state (or the step a failure ended in) failed, the
    step a stop or the time limit interrupted stopped, a Succeed state succeeded."""
    if status == "RUNNING":
        return steps
    ended = {"FAILED": "failed", "SUCCEEDED": "succeeded"}.get(status, "stopped")
    return [step.model_copy(update={"status": ended}) if step.status == "running" else step for step in steps]


def current_step(steps: list[StepView]) -> str | None:
    running = [s for s in steps if s.status == "running"]
    return (running[-1] if running else steps[-1]).name if steps else None


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def outcome(status: str, state: RunState, objective: Objective | None, *, current: str | None = None,
            failure: dict | None = None, approval: dict | None = None, error: str | None = None,
            cause: str | None = None) -> Outcome:
    """What happened to a run: status (DescribeExecution), state (its output when it succeeded, else what is
    known), the first failure in its history, and its approval record (audit table) when it has one."""
    if status == "RUNNING":
        return _running(current, approval)
    if status == "SUCCEEDED":
        return _succeeded(state, objective)
    if status == "ABORTED":
        why = cause or "stopped"
        return Outcome(kind="stopped", summary=f"stopped{f' at {current}' if current else ''}: {why}", step=current,
                       error=error, cause=cause)
    if status == "TIMED_OUT":
        return Outcome(kind="timed_out", summary=f"timed out at {current or 'an unknown step'} (the run's time limit)",
                       step=current)
    return _failed(failure, approval, error, cause)


def _running(current: str | None, approval: dict | None) -> Outcome:
    """Waiting for approval once the request is recorded (and mailed); in the moments between entering the approval
    step and that record the run is still running, so a follower keeps polling and then names the approvers."""
    if approval and approval.get("status") == "PENDING":
        approvers = list(approval.get("approvers", []))
        expires = _epoch_iso(approval.get("expires_at"))
        who = ", ".join(approvers) if approvers else "the model's approvers"
        return Outcome(kind="waiting_for_approval", step=APPROVAL_STEP, approvers=approvers, expires_at=expires,
                       model_package_arn=approval.get("model_package_arn"),
                       summary=f"waiting for approval by {who}" + (f" until {expires}" if expires else ""))
    if current == APPROVAL_STEP and not approval:
        return Outcome(kind="running", step=current, summary="running: requesting approval")
    return Outcome(kind="running", step=current, summary=f"running: {current}" if current else "starting")


def _epoch_iso(value) -> str | None:
    if value in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(int(value), timezone.utc).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError):
        return str(value)


def _succeeded(state: RunState, objective: Objective | None) -> Outcome:
    judged = _judged(state, objective)
    if judged.tracking_error:
        judged.summary += " [not in MLflow: experiment tracking failed]"
    overlap = (state.evaluation.validation_overlap or {}) if state.evaluation else {}
    if overlap.get("shared_with_training") and overlap.get("validation_rows"):
        judged.summary += (f" [WARNING: data leakage: {overlap['shared_with_training']} of {overlap['validation_rows']} "
                           "validation rows are also training rows]")
    return judged


def _judged(state: RunState, objective: Objective | None) -> Outcome:
    evaluation = state.evaluation
    if evaluation is None:
        return Outcome(kind="promoted", summary="succeeded")
    metric = evaluation.objective
    direction = objective.direction if objective else None
    threshold = objective.minimum if objective else None
    delta = evaluation.value - evaluation.champion_value if evaluation.champion_value is not None else None
    facts = dict(metric=metric, direction=direction, value=evaluation.value, champion_value=evaluation.champion_value,
                 threshold=threshold, delta=delta, tracking_error=evaluation.tracking_error)
    if evaluation.reproduction is not None:  # a reproduction verifies a version: no champion, no approval
        verdict = evaluation.reproduction
        return Outcome(kind="reproduced" if verdict.get("reproduced") else "not_reproduced", **facts,
                       version=verdict.get("version"), model_package_arn=verdict.get("reproduces"),
                       summary=str(verdict.get("summary") or "reproduction checked"))
    if evaluation.promote:
        registration, approval = state.registration, state.approval
        version = registration.version if registration else None
        against = ("no champion yet" if evaluation.champion_value is None
                   else f"champion {_number(evaluation.champion_value)}, {_signed(delta)}")
        by = f", approved by {approval.approver}" if approval and approval.approver else ""
        return Outcome(kind="promoted", **facts, version=version, decided_by=approval.approver if approval else None,
                       model_package_arn=registration.model_package_arn if registration else None,
                       summary=f"promoted: version {version if version is not None else '?'} serves production "
                               f"({metric} {_number(evaluation.value)}, {against}{by})")
    if objective is not None and not objective.passes_minimum(evaluation.value):
        return Outcome(kind="below_threshold", **facts,
                       summary=f"below threshold: {metric} {_number(evaluation.value)} misses the spec's "
                               f"{objective.threshold_word} {_number(objective.minimum)} ({direction}); champion kept")
    if _beat_the_champion(evaluation, objective):  # kept for another reason (bias bounds, leakage): say which
        return Outcome(kind="kept_champion", **facts, summary=f"kept champion: {evaluation.reason}")
    if evaluation.champion_value is not None:
        margin = f", margin {objective.champion_margin:g}" if objective and objective.champion_margin else ""
        return Outcome(kind="kept_champion", **facts,
                       summary=f"kept champion: {metric} {_number(evaluation.value)} vs champion "
                               f"{_number(evaluation.champion_value)} ({_signed(delta)}{margin}; {direction or 'objective'})")
    return Outcome(kind="kept_champion", **facts, summary=f"not promoted: {evaluation.reason}")


def _beat_the_champion(evaluation: Evaluation, objective: Objective | None) -> bool:
    if objective is None or evaluation.champion_value is None:
        return False
    gain = evaluation.value - evaluation.champion_value
    return (gain if objective.direction == "maximize" else -gain) > objective.champion_margin


def _failed(failure: dict | None, approval: dict | None, error: str | None, cause: str | None) -> Outcome:
    if error == "RunAlreadyInProgress":
        return Outcome(kind="refused", error=error, cause=cause, step="PrepareRun",
                       summary=f"refused: {cause or 'another run of this model is in progress'}")
    failure = failure or {}
    step, failed_error = failure.get("state"), failure.get("error") or error
    text = failure_reason({"Error": failed_error, "Cause": failure.get("cause") if failure else cause})
    if step == APPROVAL_STEP and failed_error == "ModelRejected":
        who = (approval or {}).get("decided_by")
        reason = (approval or {}).get("reason")
        return Outcome(kind="rejected", step=step, error=failed_error, cause=failure.get("cause"), decided_by=who,
                       model_package_arn=(approval or {}).get("model_package_arn"),
                       summary=f"rejected{f' by {who}' if who else ''}" + (f": {reason}" if reason and reason != "-" else
                                                                            f": {failure.get('cause') or ''}".rstrip(": ")))
    if step == APPROVAL_STEP and failed_error == "States.Timeout":
        expires = _epoch_iso((approval or {}).get("expires_at"))
        return Outcome(kind="approval_expired", step=step, error=failed_error, expires_at=expires,
                       approvers=list((approval or {}).get("approvers", [])),
                       summary="approval expired: nobody decided" + (f" by {expires}" if expires else " in time"))
    if not failure:
        return Outcome(kind="failed", error=error, cause=cause,
                       summary=f"failed: {failure_reason({'Error': error, 'Cause': cause})}")
    return Outcome(kind="failed", step=step, error=failed_error, cause=failure.get("cause"),
                   summary=f"failed at {step or 'an unknown step'}: {text}")

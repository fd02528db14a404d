"""The run's typed state document and its outcome: what people see in status, watch, list, the summary and the
notebook."""

import json
from datetime import datetime, timezone

import pytest

from lambdas.runs.logic import metric_history, run_view
from lambdas.shared.run_state import Objective, RunState, history_steps, outcome

OBJECTIVE = Objective(metric="validation:auc", direction="maximize", minimum=0.75, champion_margin=0.0)
ARN = "arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:manual-1"


def entered(event_id: int, name: str) -> dict:
    return {"id": event_id, "type": "TaskStateEntered", "timestamp": datetime(2026, 1, 1, tzinfo=timezone.utc),
            "stateEnteredEventDetails": {"name": name, "input": "{}"}}


def exited(event_id: int, name: str) -> dict:
    return {"id": event_id, "type": "TaskStateExited", "stateExitedEventDetails": {"name": name, "output": "{}"}}


def failed(event_id: int, error: str, cause: str) -> dict:
    return {"id": event_id, "type": "LambdaFunctionFailed", "lambdaFunctionFailedEventDetails": {"error": error, "cause": cause}}


def scheduled(event_id: int) -> dict:
    return {"id": event_id, "type": "LambdaFunctionScheduled", "lambdaFunctionScheduledEventDetails": {"resource": "x"}}


def succeeded_state(value: float, champion: float | None, promote: bool, **extra) -> RunState:
    return RunState.parse({"run": {"model": "churn", "hyperparameters": {"epochs": "20", "learning_rate": "0.003",
                                                                       "sagemaker_program": '"train.py"'}},
                           "evaluation": {"metrics": {"validation:auc": value}, "objective": "validation:auc",
                                          "value": value, "champion_value": champion, "promote": promote,
                                          "reason": "r"}, **extra})


def test_steps_come_in_event_order_whatever_order_the_history_arrives_in():
    events = [entered(2, "PrepareRun"), exited(3, "PrepareRun"), entered(4, "ValidateData"), exited(5, "ValidateData"),
              entered(6, "Train")]
    steps, failure = history_steps(list(reversed(events)))  # newest first, or moto's oldest first: the same answer
    assert [(s.name, s.status) for s in steps] == [("PrepareRun", "succeeded"), ("ValidateData", "succeeded"),
                                                  ("Train", "running")]
    assert failure is None
    assert history_steps(events)[0] == steps


def test_a_failure_that_a_retry_recovered_from_is_not_the_run_failure():
    events = [entered(1, "ValidateData"), scheduled(2), failed(3, "Lambda.TooManyRequestsException", "slow down"),
              scheduled(4), exited(5, "ValidateData"), entered(6, "Train"), failed(7, "SageMaker.TrainingJobFailed", "OOM"),
              exited(8, "Train"), entered(9, "NotifyFailure")]
    steps, failure = history_steps(events)
    assert [(s.name, s.status) for s in steps][:2] == [("ValidateData", "succeeded"), ("Train", "failed")]
    assert failure == {"state": "Train", "error": "SageMaker.TrainingJobFailed", "cause": "OOM"}


def test_failed_at_a_step_names_the_step_and_the_error_text_not_the_notification():
    cause = json.dumps({"errorMessage": "s3://b/datasets/churn/train.csv: 12 rows, the spec requires at least 1000",
                        "errorType": "DataValidationFailed"})
    events = [entered(1, "PrepareRun"), exited(2, "PrepareRun"), entered(3, "ValidateData"),
              failed(4, "DataValidationFailed", cause), exited(5, "ValidateData"), entered(6, "NotifyFailure"),
              exited(7, "NotifyFailure"), {"id": 8, "type": "FailStateEntered", "stateEnteredEventDetails": {"name": "RunFailed"}},
              {"id": 9, "type": "ExecutionFailed", "executionFailedEventDetails": {"error": "RetrainingFailed",
                                                                                 "cause": "a step failed"}}]
    described = {"name": "manual-1", "executionArn": ARN, "status": "FAILED", "startDate": "t0", "stopDate": "t1",
                 "input": json.dumps({"model": "churn", "trigger": "drift", "requested_by": "drift-hook"}),
                 "error": "RetrainingFailed", "cause": "a step failed"}
    view = run_view(described, OBJECTIVE, events, with_steps=True)
    assert view.outcome.kind == "failed" and view.outcome.step == "ValidateData"
    assert view.outcome.summary == ("failed at ValidateData: DataValidationFailed: s3://b/datasets/churn/train.csv: "
                                    "12 rows, the spec requires at least 1000")
    assert (view.trigger, view.requested_by) == ("drift", "drift-hook")
    assert [s.status for s in view.steps] == ["succeeded", "failed", "succeeded", "failed"]
    assert "notification" not in view.outcome.summary


def test_promoted_names_the_version_both_numbers_and_the_approver():
    state = succeeded_state(0.83, 0.80, True, registration={"model_package_arn": "arn:pkg/3", "version": 3},
                            approval={"decision": "approved", "approver": "ml-lead@example.com", "at": "t"})
    result = outcome("SUCCEEDED", state, OBJECTIVE)
    assert result.kind == "promoted" and result.version == 3 and result.delta == pytest.approx(0.03)
    assert result.summary == ("promoted: version 3 serves production (validation:auc 0.8300, champion 0.8000, +0.0300, "
                              "approved by ml-lead@example.com)")
    assert result.succeeded


def test_kept_champion_shows_both_numbers_and_the_delta():
    result = outcome("SUCCEEDED", succeeded_state(0.79, 0.81, False), OBJECTIVE)
    assert (result.kind, result.value, result.champion_value) == ("kept_champion", 0.79, 0.81)
    assert result.summary == "kept champion: validation:auc 0.7900 vs champion 0.8100 (-0.0200; maximize)"


def test_below_threshold_names_the_spec_threshold_even_with_a_champion():
    result = outcome("SUCCEEDED", succeeded_state(0.70, 0.81, False), OBJECTIVE)
    assert result.kind == "below_threshold" and result.threshold == 0.75
    assert result.summary == "below threshold: validation:auc 0.7000 misses the spec's minimum 0.7500 (maximize); champion kept"


def test_below_threshold_when_lower_is_better_speaks_of_a_maximum():
    objective = Objective(metric="validation:rmse", direction="minimize", minimum=2.0)
    state = RunState.parse({"evaluation": {"objective": "validation:rmse", "value": 3.1, "promote": False}})
    assert "misses the spec's maximum 2.0000 (minimize)" in outcome("SUCCEEDED", state, objective).summary


def test_waiting_for_approval_says_who_and_until_when():
    approval = {"status": "PENDING", "approvers": ["ml-lead@example.com", "risk-officer@example.com"],
                "expires_at": 1798761600, "model_package_arn": "arn:pkg/4"}
    result = outcome("RUNNING", RunState(), OBJECTIVE, current="WaitForApproval", approval=approval)
    assert result.kind == "waiting_for_approval" and result.expires_at == "2027-01-01T00:00:00+00:00"
    assert result.summary == ("waiting for approval by ml-lead@example.com, risk-officer@example.com "
                              "until 2027-01-01T00:00:00+00:00")


def test_rejected_says_by_whom_and_why():
    approval = {"status": "REJECTED", "decided_by": "risk-officer@example.com", "reason": "AUC regressed on segment X"}
    failure = {"state": "WaitForApproval", "error": "ModelRejected", "cause": "rejected by risk-officer@example.com"}
    result = outcome("FAILED", RunState(), OBJECTIVE, failure=failure, approval=approval)
    assert result.kind == "rejected" and result.summary == "rejected by risk-officer@example.com: AUC regressed on segment X"


def test_an_approval_nobody_answered_is_expired_not_failed():
    failure = {"state": "WaitForApproval", "error": "States.Timeout", "cause": None}
    result = outcome("FAILED", RunState(), OBJECTIVE, failure=failure, approval={"expires_at": 1798761600})
    assert result.kind == "approval_expired" and "2027-01-01" in result.summary


def test_stopped_and_refused_runs():
    assert outcome("ABORTED", RunState(), OBJECTIVE, current="Train", cause="wrong data").summary == \
        "stopped at Train: wrong data"
    refused = outcome("FAILED", RunState(), OBJECTIVE, error="RunAlreadyInProgress", cause="another run is in progress")
    assert refused.kind == "refused" and not refused.succeeded


def test_hyperparameters_come_back_typed():
    state = succeeded_state(0.8, None, True)
    assert state.run.typed_hyperparameters() == {"epochs": 20, "learning_rate": 0.003}


def test_metric_history_reads_epochs_and_final_metrics_from_training_log_lines():
    lines = ["distributed: 1 host", "epoch=1; train:loss=0.693100;", "checkpoint: saved epoch 1",
             "epoch=2; train:loss=0.512000;", "epoch=3; train:loss=nan;", "validation:auc=0.812345;",
             "validation:accuracy=0.770000;"]
    history = metric_history(lines, "validation:auc", r"validation:auc=([0-9.]+)")
    assert history["epochs"] == [{"epoch": 1, "train:loss": 0.6931}, {"epoch": 2, "train:loss": 0.512}, {"epoch": 3}]
    assert history["final"] == {"validation:auc": 0.812345, "validation:accuracy": 0.77}


def test_the_approval_step_before_its_request_is_recorded_is_still_running():
    """Step Functions enters WaitForApproval before the request Lambda records and mails it: a follower that stopped
    there could not say who must approve, so it keeps polling."""
    result = outcome("RUNNING", RunState(), OBJECTIVE, current="WaitForApproval", approval=None)
    assert (result.kind, result.step, result.summary) == ("running", "WaitForApproval", "running: requesting approval")


def test_a_run_whose_experiment_tracking_failed_says_so_in_its_outcome():
    """Issue 25: a refused MLflow request showed only as a metric; the data scientist reads it in the run's outcome."""
    state = succeeded_state(0.79, 0.81, False)
    state.evaluation.tracking_error = "HTTP 403: signature mismatch"
    result = outcome("SUCCEEDED", state, OBJECTIVE)
    assert result.kind == "kept_champion" and result.tracking_error == "HTTP 403: signature mismatch"
    assert result.summary.endswith("[not in MLflow: experiment tracking failed]")
    assert outcome("SUCCEEDED", succeeded_state(0.79, 0.81, False), OBJECTIVE).tracking_error is None


def test_run_status_shows_why_the_run_is_not_in_mlflow(monkeypatch):
    from typer.testing import CliRunner

    from lambdas.shared.run_state import RunView
    from pipelines import cli

    state = succeeded_state(0.79, 0.81, False)
    state.evaluation.tracking_error = "HTTP 403: [signature] mismatch"
    run = RunView(name="r1", arn="arn:aws:states:us-east-1:111111111111:execution:m:r1", status="SUCCEEDED",
                  started="2026-12-07T09:00:00Z", outcome=outcome("SUCCEEDED", state, OBJECTIVE))
    monkeypatch.setattr(cli, "client", lambda env: type("Client", (), {"status": lambda self, m, e: run})())
    result = CliRunner().invoke(cli.app, ["run", "status", "churn"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "experiment tracking" in result.output and "FAILED: HTTP 403: [signature] mismatch" in result.output

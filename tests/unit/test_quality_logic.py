"""The quality check (lambdas/quality/logic.py): labels joined to a window's captured predictions, every bad label
counted, and a drop raised only when it is beyond the tolerance, over min_labels and significant (the bootstrap)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from lambdas.quality import labels, logic
from pipelines.modelkit.metrics import from_predictions
from pipelines.spec import QualitySpec, load_spec
from tests.conftest import REPO_ROOT

CHURN = load_spec(REPO_ROOT / "pipelines/churn")
HOUSES = load_spec(REPO_ROOT / "pipelines/houses")
START = datetime(2026, 12, 1, tzinfo=timezone.utc)
WINDOW = logic.Window(START, START + timedelta(hours=24))
ON_TIME = START + timedelta(hours=30)


def with_quality(spec, **fields):
    return spec.model_copy(update={"quality": QualitySpec(**fields)})


def capture_line(predictions: list, when: datetime, response_id: str | None = None, caller_id: str | None = None,
                 base64_encoded: bool = False) -> str:
    answer = json.dumps({"predictions": predictions, "model": "churn",
                         **({"inference_id": response_id} if response_id else {})})
    data, encoding = (base64.b64encode(answer.encode()).decode(), "BASE64") if base64_encoded else (answer, "JSON")
    metadata = {"eventId": f"e-{response_id or caller_id}", "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                **({"inferenceId": caller_id} if caller_id else {})}
    return json.dumps({"captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "data": "{}", "encoding": "JSON"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": data,
                           "encoding": encoding}}, "eventMetadata": metadata, "eventVersion": "0"})


def churn_window(rows: int, seed: int = 3, flip: bool = False):
    """rows one-row requests of calibrated churn probabilities, and their labels (flipped: the world changed)."""
    generator = np.random.default_rng(seed)
    probabilities = generator.uniform(0, 1, rows)
    truth = (generator.uniform(0, 1, rows) < probabilities).astype(int)
    truth = 1 - truth if flip else truth
    captures = [(f"part.jsonl:{i}", capture_line([{"probability": float(p), "label": int(p >= 0.5)}],
                                                 START + timedelta(minutes=i % 1000), response_id=f"r{i}"))
                for i, p in enumerate(probabilities)]
    ground_truth = [(ON_TIME, labels.ground_truth_line(f"r{i}", str(t))) for i, t in enumerate(truth)]
    auc = from_predictions("binary", truth.tolist(), [{"probability": p} for p in probabilities])["validation:auc"]
    return captures, ground_truth, auc


def test_a_clean_window_stays_quiet():
    captures, ground_truth, auc = churn_window(1000)
    report = logic.check(CHURN, captures, ground_truth, {"validation:auc": auc + 0.01}, WINDOW)
    assert report["decision"] == "within_tolerance" and report["retrain"] is False
    assert report["coverage"] == {"captured_rows": 1000, "labelled_rows": 1000, "ratio": 1.0}
    assert report["metrics"]["validation:auc"] == pytest.approx(auc)


def test_flipped_labels_stay_quiet_under_min_labels():
    captures, ground_truth, auc = churn_window(150, flip=True)
    report = logic.check(CHURN, captures, ground_truth, {"validation:auc": 0.83}, WINDOW)
    assert report["decision"] == "insufficient_labels" and "fewer than quality.min_labels (200)" in report["reason"]
    assert report["metrics"] == {} and report["retrain"] is False


def test_flipped_labels_above_min_labels_raise_a_drop_and_ask_for_retraining():
    captures, ground_truth, _ = churn_window(600, flip=True)
    report = logic.check(CHURN, captures, ground_truth, {"validation:auc": 0.83}, WINDOW)
    assert report["decision"] == "drop" and report["retrain"] is True
    assert report["delta"] < -0.5 and report["guard"]["significant"] and report["guard"]["bound"] < 0.81
    assert report["guard"]["method"] == "one-sided percentile bootstrap"


def test_a_drop_beyond_the_tolerance_in_a_small_window_is_not_significant():
    spec = with_quality(CHURN, min_labels=20, tolerance=0.02)
    captures, ground_truth, auc = churn_window(40, seed=5)
    report = logic.check(spec, captures, ground_truth, {"validation:auc": auc + 0.05}, WINDOW)
    assert report["decision"] == "not_significant" and report["retrain"] is False
    assert report["guard"]["bound"] > report["guard"]["threshold"]


def test_the_same_shortfall_over_many_labels_is_significant():
    spec = with_quality(CHURN, min_labels=20, tolerance=0.02)
    captures, ground_truth, auc = churn_window(4000, seed=5)
    report = logic.check(spec, captures, ground_truth, {"validation:auc": auc + 0.05}, WINDOW)
    assert report["decision"] == "drop"


def test_a_drop_does_not_ask_for_retraining_when_the_spec_says_not_to():
    captures, ground_truth, _ = churn_window(600, flip=True)
    report = logic.check(with_quality(CHURN, retrain=False), captures, ground_truth, {"validation:auc": 0.83}, WINDOW)
    assert report["decision"] == "drop" and report["retrain"] is False


def test_the_verdict_is_deterministic():
    captures, ground_truth, auc = churn_window(600, seed=8)
    spec = with_quality(CHURN, min_labels=20)
    first = logic.check(spec, captures, ground_truth, {"validation:auc": auc + 0.04}, WINDOW)
    assert first == logic.check(spec, captures, ground_truth, {"validation:auc": auc + 0.04}, WINDOW)
    assert first["guard"] is not None


def test_duplicate_late_unknown_and_malformed_labels_are_counted_and_quoted():
    captures, ground_truth, _ = churn_window(5)
    late = START + timedelta(hours=24 + 72, minutes=1)
    extra = [(ON_TIME, labels.ground_truth_line("r0", "0")), (ON_TIME, labels.ground_truth_line("r0", "1")),
             (late, labels.ground_truth_line("r1", "1")),
             (ON_TIME, labels.ground_truth_line("nobody", "1")), (ON_TIME, "{broken"),
             (ON_TIME, labels.ground_truth_line("r2", "7")), (ON_TIME, "")]
    counts = logic.check(CHURN, captures, extra + ground_truth[3:], {"validation:auc": 0.8}, WINDOW)["labels"]
    assert {k: counts[k] for k in ("joined", "duplicate", "late", "unknown", "malformed")} == \
        {"joined": 3, "duplicate": 1, "late": 1, "unknown": 1, "malformed": 2}
    assert any("arrived after" in e for e in counts["examples"])
    assert not any("nobody" in e for e in counts["examples"])  # unknown ids are normal (later windows, sampling)


def test_a_request_of_several_rows_is_labelled_per_row_and_the_callers_id_wins():
    line = capture_line([{"probability": 0.9, "label": 1}, {"probability": 0.1, "label": 0}], START,
                        response_id="assigned", caller_id="caller-7", base64_encoded=True)
    captures = logic.read_captures([("f:1", line)], WINDOW)
    assert set(captures.predictions) == {"caller-7:0", "caller-7:1"}
    assert captures.predictions["caller-7:1"] == {"probability": 0.1, "label": 0}
    one = logic.read_captures([("f:1", capture_line([{"probability": 0.9, "label": 1}], START, response_id="r"))], WINDOW)
    assert set(one.predictions) == {"r"}


def test_bad_outside_unidentified_and_smoke_captures_are_counted_not_joined():
    lines = [("f:1", "{not json"), ("f:2", capture_line([{"probability": 0.5}], START - timedelta(hours=25), "old")),
             ("f:3", capture_line([{"probability": 0.5}], START)),
             ("f:4", capture_line([{"probability": 0.5}], START, caller_id="mlops-smoke-1")),
             ("f:5", capture_line([], START, "empty")), ("f:6", "")]
    captures = logic.read_captures(lines, WINDOW)
    assert (captures.lines, captures.malformed, captures.outside_window, captures.unidentified_rows) == (5, 2, 1, 1)
    assert captures.predictions == {} and captures.examples[0].startswith("f:1: JSONDecodeError")


def test_a_regression_window_whose_errors_grew_raises_a_drop_on_rmse():
    generator = np.random.default_rng(4)
    truth = generator.uniform(100, 500, 800)
    predicted = truth + generator.normal(0, 60, 800)  # rmse ~60 against a baseline of 30
    captures = [(f"f:{i}", capture_line([{"value": float(v)}], START, f"h{i}")) for i, v in enumerate(predicted)]
    ground_truth = [(ON_TIME, labels.ground_truth_line(f"h{i}", f"{t:.3f}")) for i, t in enumerate(truth)]
    spec = with_quality(HOUSES, tolerance=5.0)
    report = logic.check(spec, captures, ground_truth, {"validation:rmse": 30.0}, WINDOW)
    assert report["decision"] == "drop" and report["delta"] > 25 and report["guard"]["bound"] > 35
    quiet = logic.check(spec, captures, ground_truth, {"validation:rmse": 58.0}, WINDOW)
    assert quiet["decision"] == "within_tolerance"


def test_no_baseline_metric_is_no_verdict():
    captures, ground_truth, _ = churn_window(300)
    report = logic.check(CHURN, captures, ground_truth, {"validation:rmse": 1.0}, WINDOW)
    assert report["decision"] == "no_baseline" and report["retrain"] is False


def test_model_monitor_statistics_and_constraints_round_trip():
    metrics = {"validation:auc": 0.8, "validation:accuracy": 0.7, "validation:logloss": 0.5}
    statistics = logic.monitor_statistics(CHURN, metrics, 300, objective_deviation=0.01)
    assert statistics["binary_classification_metrics"]["auc"] == {"value": 0.8, "standard_deviation": 0.01}
    assert logic.read_monitor_statistics(statistics) == {"validation:auc": 0.8, "validation:accuracy": 0.7}
    constraints = logic.monitor_constraints(CHURN, 0.83)
    assert logic.read_monitor_constraints(constraints) == {"validation:auc": (pytest.approx(0.81), "LessThanThreshold")}
    assert logic.monitor_constraints(HOUSES, 30.0)["regression_constraints"]["rmse"]["comparison_operator"] == \
        "GreaterThanThreshold"


def test_captured_answers_that_are_not_the_tasks_records_are_no_verdict_not_a_crash():
    captures = [(f"f:{i}", capture_line([{"score": 0.5}], START, f"r{i}")) for i in range(300)]
    ground_truth = [(ON_TIME, labels.ground_truth_line(f"r{i}", str(i % 2))) for i in range(300)]
    report = logic.check(CHURN, captures, ground_truth, {"validation:auc": 0.8}, WINDOW)
    assert report["decision"] == "no_metrics" and "not binary records" in report["reason"]


def test_a_label_for_the_previous_window_is_late_after_its_allowance_and_not_unknown():
    """A row captured in the window before: labelled within that window's allowance it was that window's check's
    (previous_window, not a problem); labelled after it, it is late; an id of neither window is unknown."""
    earlier = START - timedelta(hours=2)
    lines = [("f:1", capture_line([{"probability": 0.9}], earlier, "old-on-time")),
             ("f:2", capture_line([{"probability": 0.8}], earlier, "old-late")),
             ("f:3", capture_line([{"probability": 0.7}], START + timedelta(hours=1), "now"))]
    captures = logic.read_captures(lines, WINDOW)
    assert set(captures.predictions) == {"now"} and captures.earlier == {"old-on-time", "old-late"}
    allowance_of_previous = START + timedelta(hours=72)
    ground_truth = [(allowance_of_previous - timedelta(minutes=1), labels.ground_truth_line("old-on-time", "1")),
                    (allowance_of_previous + timedelta(minutes=1), labels.ground_truth_line("old-late", "1")),
                    (START + timedelta(hours=30), labels.ground_truth_line("now", "1")),
                    (START + timedelta(hours=30), labels.ground_truth_line("never-captured", "1"))]
    counts = logic.join(captures, ground_truth, WINDOW, CHURN).counts
    assert {k: counts[k] for k in ("joined", "late", "previous_window", "unknown")} == \
        {"joined": 1, "late": 1, "previous_window": 1, "unknown": 1}


def test_the_scheduled_window_ends_the_label_delay_before_the_check():
    quality = CHURN.quality
    window = logic.scheduled_window(START, quality)
    assert window.end == START - timedelta(hours=quality.label_delay_hours)
    assert window.length == timedelta(hours=quality.window_hours) and window.previous.end == window.start


def test_an_id_captured_twice_joins_no_label_and_is_counted_ambiguous():
    """A caller reusing its InferenceId (or another model's lines filed under this model) must not pick the
    prediction a label joins."""
    lines = [("f:1", capture_line([{"probability": 0.9}], START + timedelta(hours=1), caller_id="order-7")),
             ("f:2", capture_line([{"probability": 0.1}], START + timedelta(hours=2), caller_id="order-7")),
             ("f:3", capture_line([{"probability": 0.8}], START + timedelta(hours=2), caller_id="order-8"))]
    captures = logic.read_captures(lines, WINDOW)
    ground_truth = [(ON_TIME, labels.ground_truth_line("order-7", "1")), (ON_TIME, labels.ground_truth_line("order-8", "1"))]
    joined = logic.join(captures, ground_truth, WINDOW, CHURN)
    assert (joined.counts["ambiguous"], joined.counts["joined"]) == (1, 1)


def test_an_objective_on_another_channel_is_judged_under_its_own_name():
    """A spec whose objective is 'test:auc' (training writes test:* metrics) is judged on test:auc, not refused."""
    spec = CHURN.model_copy(update={"objective": CHURN.objective.model_copy(update={"metric": "test:auc"}),
                                    "quality": QualitySpec(min_labels=20)})
    captures, ground_truth, auc = churn_window(600, seed=8)
    report = logic.check(spec, captures, ground_truth, {"test:auc": auc}, WINDOW)
    assert report["objective"] == "test:auc" and report["decision"] == "within_tolerance", report["reason"]
    assert report["metrics"]["test:auc"] == pytest.approx(auc)
    assert logic.monitor_statistics(spec, report["metrics"], 10)["binary_classification_metrics"]["auc"]["value"] == \
        pytest.approx(auc)


def test_a_schedule_that_does_not_judge_each_window_once_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"judges a window every 1 h, but quality.window_hours is 24.*rate\(24 hours\)"):
        QualitySpec(schedule="rate(1 hour)")
    assert QualitySpec(schedule="rate(6 hours)", window_hours=6).window_hours == 6
    assert QualitySpec(schedule="cron(0 4 * * ? *)").schedule == "cron(0 4 * * ? *)"  # a person's cron is theirs

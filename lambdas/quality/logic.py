"""Model quality against ground truth (pure): labels joined to a window's captured predictions, the task's metrics
computed with training's own code (modelkit.metrics.from_predictions), and a verdict against the approved version's
evaluation.

The join key of a captured request is its `eventMetadata.inferenceId` (the caller's InvokeEndpoint InferenceId)
when present, else the response's "inference_id" (pipelines/modelkit/serving.py assigns one); a one-row request is
labelled by that id, row N (from 0) of a request of several rows by "<id>:<N>". The response's `predictions` list
aligns with the request's rows.

Labels (Model Monitor ground-truth lines, each with the time it arrived in S3) are counted as joined, late (a
row of this window labelled after the window's end plus quality.label_delay_hours, or a row of the window before it
labelled after that window's allowance), previous_window (a row of the window before, labelled in time: that
window's check judged it), unknown (no captured row of either window has that id: a later window's row, judged in
its turn, or a request the endpoint's capture did not sample; counted, not quoted), ambiguous (an id captured more
than once in the window: joined to none), duplicate (an id already labelled: the first wins) or malformed.

The scheduled check (lambdas/quality/handler.py) judges the window that ended quality.label_delay_hours ago, whose
labels have all had time to arrive: scheduled_window().

The verdict: a drop only when (1) at least quality.min_labels labels joined, (2) the window's objective is worse than
the baseline by more than quality.tolerance, and (3) the drop is significant: a one-sided percentile bootstrap of the
objective over the joined rows (BOOTSTRAP_SAMPLES resamples, fixed seed: the same data gives the same verdict)
whose confidence bound (the upper bound for a metric to maximize, the lower one to minimize, at quality.confidence)
is itself beyond baseline -/+ tolerance. A small window's wide bound keeps it quiet.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable

import numpy as np

from lambdas.shared.capture_files import decoded_data
from lambdas.quality import labels as label_files
from pipelines import naming
from pipelines.modelkit import metrics as metric_kit

BOOTSTRAP_SAMPLES = 500
BOOTSTRAP_SEED = 20261207
QUOTED = 5


@dataclass
class Window:
    start: datetime
    end: datetime

    def holds(self, when: datetime) -> bool:
        return self.start <= when < self.end

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def previous(self) -> "Window":
        return Window(self.start - self.length, self.start)


def scheduled_window(now: datetime, quality) -> Window:
    """The window a check at `now` judges: window_hours long, ending label_delay_hours ago."""
    end = now - timedelta(hours=quality.label_delay_hours)
    return Window(end - timedelta(hours=quality.window_hours), end)


@dataclass
class Captures:
    predictions: dict[str, dict] = field(default_factory=dict)  # row id -> prediction record
    earlier: set[str] = field(default_factory=set)  # row ids of the previous window (to tell late from unknown)
    ambiguous: set[str] = field(default_factory=set)  # row ids captured more than once: joined to none
    lines: int = 0
    malformed: int = 0
    outside_window: int = 0
    unidentified_rows: int = 0
    examples: list[str] = field(default_factory=list)

    def reject(self, where: str, error: Exception) -> None:
        self.malformed += 1
        if len(self.examples) < QUOTED:
            self.examples.append(f"{where}: {type(error).__name__}: {str(error)[:160]}")


@dataclass
class Joined:
    labels: list[str] = field(default_factory=list)
    predictions: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=lambda: dict.fromkeys(
        ("joined", "unknown", "late", "duplicate", "malformed", "previous_window", "ambiguous"), 0))
    examples: list[str] = field(default_factory=list)

    def count(self, kind: str, example: str | None = None) -> None:
        self.counts[kind] += 1
        if example and len(self.examples) < QUOTED:
            self.examples.append(example[:200])


def row_ids(request_id: str, rows: int) -> list[str]:
    """The label ids of a request's rows: the request's id for one row, "<id>:<N>" for row N of several."""
    return [request_id] if rows == 1 else [f"{request_id}:{index}" for index in range(rows)]


def capture_time(record: dict) -> datetime:
    text = record["eventMetadata"]["inferenceTime"]
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def read_captures(lines: Iterable[tuple[str, str | bytes]], window: Window) -> Captures:
    """(where, capture line) pairs -> the window's predictions by row id, and the previous window's row ids; bad lines
    counted, never raised."""
    captures = Captures()
    for where, line in lines:
        if not line.strip():
            continue
        captures.lines += 1
        try:
            _add_capture(captures, json.loads(line), window)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
            captures.reject(where, error)
    return captures


def _add_capture(captures: Captures, record: dict, window: Window) -> None:
    when = capture_time(record)
    current = window.holds(when)
    if not current and not window.previous.holds(when):
        captures.outside_window += 1
        return
    answer = json.loads(decoded_data(record["captureData"]["endpointOutput"]))
    predictions = answer["predictions"]
    if not isinstance(predictions, list) or not predictions:
        raise ValueError("the response has no predictions list")
    request_id = (record.get("eventMetadata") or {}).get("inferenceId") or answer.get("inference_id")
    if not isinstance(request_id, str) or not request_id:
        captures.unidentified_rows += len(predictions) if current else 0
        return
    if request_id.startswith(naming.SMOKE_INFERENCE_ID):
        return  # a smoke test's request is nobody's traffic
    ids = row_ids(request_id, len(predictions))
    if current:
        # An id captured twice (a caller reusing its InferenceId, or another model's lines filed here) could join a
        # label to the wrong prediction: it joins none, and is counted.
        captures.ambiguous.update(row for row in ids if row in captures.predictions)
        captures.predictions.update(zip(ids, predictions))
    else:
        captures.earlier.update(ids)


def join(captures: Captures, ground_truth: Iterable[tuple[datetime, str | bytes]], window: Window, spec) -> Joined:
    """(arrival time, ground-truth line) pairs joined to the window's predictions, every bad label counted."""
    joined, seen = Joined(), set()
    allowance = timedelta(hours=spec.quality.label_delay_hours)
    deadlines = (window.end + allowance, window.start + allowance)  # this window's, the previous one's
    for arrived, line in ground_truth:
        if not line.strip():
            continue
        try:
            raw_id, raw_label = label_files.id_and_label(line)
            inference_id = label_files.checked_id(raw_id)
            label = label_files.checked_label(raw_label, spec.task)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
            joined.count("malformed", f"malformed label: {error}")
            continue
        _place(joined, seen, inference_id, label, arrived, deadlines, captures)
    return joined


def _place(joined: Joined, seen: set, inference_id: str, label: str, arrived: datetime,
           deadlines: tuple[datetime, datetime], captures: Captures) -> None:
    if inference_id in seen:
        joined.count("duplicate", f"duplicate label for {inference_id!r} (the first is kept)")
    elif inference_id in captures.ambiguous:
        joined.count("ambiguous", f"{inference_id!r} names more than one captured prediction: joined to none")
    elif inference_id in captures.earlier:
        if arrived > deadlines[1]:
            joined.count("late", f"the label of {inference_id!r} (previous window) arrived after its allowance")
        else:
            joined.count("previous_window")
    elif inference_id not in captures.predictions:
        joined.count("unknown")  # a later window's row (judged in its turn) or a request capture did not sample
    elif arrived > deadlines[0]:
        joined.count("late", f"the label of {inference_id!r} arrived after the window's allowance")
    else:
        joined.count("joined")
        joined.labels.append(label)
        joined.predictions.append(captures.predictions[inference_id])
    seen.add(inference_id)


def classes_of(spec, labels: list[str], predictions: list[dict]) -> list[str] | None:
    """A multiclass task's classes: the spec's, else every class the labels and the predictions name (None for the
    other task types)."""
    if spec.task.type != "multiclass":
        return None
    return spec.task.classes or sorted({c for p in predictions for c in p.get("probabilities", {})} | set(labels))


def window_metrics(spec, labels: list[str], predictions: list[dict]) -> dict:
    return metric_kit.from_predictions(spec.task.type, labels, predictions, classes_of(spec, labels, predictions),
                                       spec.metric_prefix)


def bootstrap(spec, labels: list[str], predictions: list[dict]) -> np.ndarray:
    """The objective over BOOTSTRAP_SAMPLES resamples of the joined rows (fixed seed: deterministic). The records are
    turned into arrays once and each resample indexes them (training's metric functions on arrays), so a window of
    50,000 rows costs seconds, not minutes."""
    generator = np.random.default_rng(BOOTSTRAP_SEED)
    metric, truth, scores = metric_kit.arrays(spec.task.type, labels, predictions, classes_of(spec, labels, predictions))
    objective, rows = spec.objective.metric, len(labels)
    values = []
    for _ in range(BOOTSTRAP_SAMPLES):
        picked = generator.integers(0, rows, rows)
        values.append(metric(truth[picked], scores[picked], spec.metric_prefix)[objective])
    return np.asarray(values, dtype=np.float64)


def tolerance_line(spec, baseline: float) -> float:
    """The objective's value beyond which a window is worse than the baseline by more than the tolerance."""
    tolerance = spec.quality.tolerance
    return baseline - tolerance if spec.objective.direction == "maximize" else baseline + tolerance


def guard(spec, samples: np.ndarray, baseline: float) -> dict:
    """The one-sided bootstrap bound and the line it must cross for a drop to count."""
    quality, maximize = spec.quality, spec.objective.direction == "maximize"
    finite = samples[np.isfinite(samples)]
    bound = float(np.quantile(finite, quality.confidence if maximize else 1 - quality.confidence)) if finite.size else math.nan
    threshold = tolerance_line(spec, baseline)
    significant = math.isfinite(bound) and (bound < threshold if maximize else bound > threshold)
    return {"method": "one-sided percentile bootstrap", "samples": BOOTSTRAP_SAMPLES, "seed": BOOTSTRAP_SEED,
            "confidence": quality.confidence, "bound": bound, "threshold": threshold, "significant": significant,
            "standard_deviation": float(np.std(finite)) if finite.size else math.nan}


def assess(spec, captures: Captures, joined: Joined, baseline_metrics: dict, window: Window) -> dict:
    """The report: metrics, baseline, delta, guard, coverage, every count, the decision and its reason."""
    objective = spec.objective.metric
    report = {"model": spec.name, "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
              "objective": objective, "direction": spec.objective.direction, "tolerance": spec.quality.tolerance,
              "min_labels": spec.quality.min_labels, "baseline": baseline_metrics.get(objective),
              "coverage": coverage(captures, joined), "labels": {**joined.counts, "examples": joined.examples},
              "captures": {"lines": captures.lines, "malformed": captures.malformed,
                           "outside_window": captures.outside_window, "unidentified_rows": captures.unidentified_rows,
                           "examples": captures.examples},
              "metrics": {}, "delta": None, "guard": None}
    decision, reason = _verdict(spec, joined, report)
    report.update(decision=decision, reason=reason, retrain=decision == "drop" and spec.quality.retrain)
    return report


def coverage(captures: Captures, joined: Joined) -> dict:
    captured = len(captures.predictions)
    return {"captured_rows": captured, "labelled_rows": joined.counts["joined"],
            "ratio": joined.counts["joined"] / captured if captured else 0.0}


def _verdict(spec, joined: Joined, report: dict) -> tuple[str, str]:
    count, quality = joined.counts["joined"], spec.quality
    if count < quality.min_labels:
        return "insufficient_labels", f"{count} labels joined, fewer than quality.min_labels ({quality.min_labels}): no verdict"
    if spec.task.type == "custom":
        return "no_metrics", "a custom task has no built-in metrics to compute from labels"
    if report["baseline"] is None:
        return "no_baseline", f"the approved version's evaluation has no {report['objective']}"
    try:
        report["metrics"] = window_metrics(spec, joined.labels, joined.predictions)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return "no_metrics", f"the captured predictions are not {spec.task.type} records ({type(error).__name__}: {error})"
    if report["objective"] not in report["metrics"]:
        return "no_metrics", f"{report['objective']} is not one of the {spec.task.type} metrics the check computes"
    return _compare(spec, joined, report)


def _compare(spec, joined: Joined, report: dict) -> tuple[str, str]:
    objective, baseline = report["objective"], float(report["baseline"])
    value = report["metrics"][objective]
    report["delta"] = value - baseline
    worse_by = (baseline - value) if spec.objective.direction == "maximize" else (value - baseline)
    if not math.isfinite(value):
        return "no_metrics", f"{objective} is not defined on this window (e.g. one class only)"
    if worse_by <= spec.quality.tolerance:
        return "within_tolerance", f"{objective} {value:.4f} vs {baseline:.4f}: within the tolerance {spec.quality.tolerance}"
    report["guard"] = guard(spec, bootstrap(spec, joined.labels, joined.predictions), baseline)
    bound = report["guard"]["bound"]
    if not report["guard"]["significant"]:
        return "not_significant", (f"{objective} {value:.4f} is {worse_by:.4f} worse than {baseline:.4f}, but its "
                                   f"{spec.quality.confidence:.0%} bootstrap bound {bound:.4f} does not cross "
                                   f"{report['guard']['threshold']:.4f}")
    return "drop", (f"{objective} dropped to {value:.4f} from {baseline:.4f} (beyond the tolerance "
                    f"{spec.quality.tolerance}; {spec.quality.confidence:.0%} bootstrap bound {bound:.4f})")


def since_champion(window: Window, served_since: datetime | None) -> Window | None:
    """The part of the window the serving version served all of: from served_since on (its traffic before was the
    previous version's, which must not be judged against this one's evaluation); None when none of it."""
    if served_since is None or served_since <= window.start:
        return window
    return Window(served_since, window.end) if served_since < window.end else None


def not_judged(spec, window: Window, served_since: datetime) -> dict:
    """The report of a window the serving version did not serve (it was released after the window ended)."""
    report = assess(spec, Captures(), Joined(), {}, window)
    report.update(decision="new_champion", retrain=False,
                  reason=f"the serving version serves since {served_since:%Y-%m-%d %H:%M} UTC, after this window ended: "
                         "its traffic was the previous version's; the first window it served is judged in its turn")
    return report


def check(spec, capture_lines: Iterable[tuple[str, str | bytes]], ground_truth: Iterable[tuple[datetime, str | bytes]],
          baseline_metrics: dict, window: Window) -> dict:
    """One window, end to end: captures read, labels joined, the verdict."""
    captures = read_captures(capture_lines, window)
    return assess(spec, captures, join(captures, ground_truth, window, spec), baseline_metrics, window)


# ---------------------------------------------------------------- Model Monitor's model-quality files
# statistics.json: {"version": 0.0, "dataset": {"item_count": N}, "<task>_metrics": {name: {"value", "standard_deviation"}}}
# constraints.json: {"version": 0.0, "<task>_constraints": {name: {"threshold", "comparison_operator"}}}
# Mapped names: binary auc, accuracy, precision, recall, f1; multiclass accuracy; regression rmse, mae, r2. Others
# (logloss, macro_f1, mape) have no Model Monitor counterpart and are left out.
MONITOR_SECTIONS = {"binary": "binary_classification", "multiclass": "multiclass_classification", "regression": "regression"}
MONITOR_NAMES = {"binary": ("auc", "accuracy", "precision", "recall", "f1"), "multiclass": ("accuracy",),
                 "regression": ("rmse", "mae", "r2")}


def monitor_statistics(spec, metrics: dict, rows: int, objective_deviation: float | None = None) -> dict:
    """The window's metrics as Model Monitor's model-quality statistics.json (the objective's bootstrap deviation)."""
    task = spec.task.type
    section = {}
    for name in MONITOR_NAMES.get(task, ()):
        full = f"{spec.metric_prefix}{name}"
        if full in metrics:
            section[name] = {"value": metrics[full]}
            if full == spec.objective.metric and objective_deviation is not None:
                section[name]["standard_deviation"] = objective_deviation
    return {"version": 0.0, "dataset": {"item_count": rows}, f"{MONITOR_SECTIONS[task]}_metrics": section}


def read_monitor_statistics(statistics: dict, prefix: str = "validation:") -> dict:
    """Model Monitor's statistics.json -> {"<prefix><name>": value}: a baseline from Model Monitor."""
    for section in MONITOR_SECTIONS.values():
        if f"{section}_metrics" in statistics:
            return {f"{prefix}{name}": float(entry["value"])
                    for name, entry in statistics[f"{section}_metrics"].items()
                    if isinstance(entry, dict) and "value" in entry}
    return {}


def monitor_constraints(spec, baseline: float) -> dict:
    """The objective's line (baseline -/+ tolerance) as Model Monitor's model-quality constraints.json."""
    name, maximize = spec.objective.metric.rpartition(":")[2], spec.objective.direction == "maximize"
    entry = {"threshold": tolerance_line(spec, baseline),
             "comparison_operator": "LessThanThreshold" if maximize else "GreaterThanThreshold"}
    return {"version": 0.0, f"{MONITOR_SECTIONS[spec.task.type]}_constraints": {name: entry}}


def read_monitor_constraints(constraints: dict, prefix: str = "validation:") -> dict:
    """Model Monitor's constraints.json -> {"<prefix><name>": (threshold, comparison_operator)}."""
    for section in MONITOR_SECTIONS.values():
        if f"{section}_constraints" in constraints:
            return {f"{prefix}{name}": (float(entry["threshold"]), entry["comparison_operator"])
                    for name, entry in constraints[f"{section}_constraints"].items()}
    return {}

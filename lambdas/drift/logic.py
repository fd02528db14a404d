"""Pure decisions of the drift hook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from lambdas.drift import engine
from lambdas.drift.capture import CaptureScan
from lambdas.drift.engine import DriftResult, Thresholds
from pipelines.spec import DriftSpec, ModelSpec


def thresholds(spec: DriftSpec) -> Thresholds:
    return Thresholds(psi=spec.psi_threshold, js=spec.js_threshold, p_value=spec.p_value,
                      min_drifted_features=spec.min_drifted_features, min_rows=spec.min_rows)


def should_retrain(result: DriftResult, blocking: list[str], spec: DriftSpec) -> tuple[bool, str]:
    """(retrain?, why) before the cooldown, which the caller claims atomically."""
    if blocking:
        return False, "not retraining: " + "; ".join(blocking)
    if not result.drift:
        return False, f"no drift ({len(result.drifted_features)} drifted, {spec.min_drifted_features} needed)"
    if not spec.retrain:
        return False, f"drift in {result.drifted_features}, but the spec has drift.retrain off"
    return True, f"drift in {result.drifted_features}"


@dataclass
class Assessment:
    result: DriftResult
    scan: CaptureScan
    blocking: list[str]
    retrain: bool
    reason: str


def assess(statistics: dict, spec: ModelSpec, sources: Iterable[tuple[str, Iterable]],
           progress: Callable[[str], None] = lambda name: None, constraints: dict | None = None) -> Assessment:
    """Captured lines (name, lines or line_batches) against a Model Monitor baseline (statistics.json, and constraints.json when
    there is one: its checks are reported as violations): the drift hook's and the CLI's one path."""
    reference = engine.Reference.from_statistics(statistics, spec.drift_features)
    checks = engine.Constraints.from_json(constraints) if constraints else None
    # Positional requests carry every feature in the dataset's order, whichever of them drift watches.
    scan = CaptureScan(list(spec.dataset.features), set(spec.dataset.categorical), engine.Accumulator(reference, checks))
    for name, lines in sources:
        scan.add_source(name, lines)
        progress(name)
    notes, blocking = scan.problems()
    result = engine.evaluate(scan.accumulator, thresholds(spec.drift), notes)
    retrain, reason = should_retrain(result, blocking, spec.drift)
    return Assessment(result, scan, blocking, retrain, reason)

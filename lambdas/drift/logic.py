"""Pure decisions of the drift hook."""

from __future__ import annotations

from lambdas.drift.engine import DriftResult, Thresholds
from pipelines.spec import DriftSpec


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

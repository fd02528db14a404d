"""Bias and attribution reports in the shapes the training job writes into evaluation.json (SageMaker Clarify's
analysis.json: pre_/post_training_bias_metrics; a permutation-importance explanation): fixtures, not computed."""

from __future__ import annotations


def _metrics(**values) -> list[dict]:
    return [{"name": name, "description": f"{name} of the group", "value": value} for name, value in values.items()]


def bias_analysis(north_di: float = 0.7) -> dict:
    """Two facets: region (north's disparate impact north_di) and age (within the band)."""
    pre = {"label": "churned", "label_value_or_threshold": "1", "facets": {
        "region": [{"value_or_threshold": "north", "metrics": _metrics(CI=0.12, DPL=0.08)},
                   {"value_or_threshold": "south", "metrics": _metrics(CI=-0.05, DPL=0.01)}],
        "age": [{"value_or_threshold": "(60, 120]", "metrics": _metrics(CI=0.3, DPL=-0.02)}]}}
    post = {"label": "churned", "label_value_or_threshold": "1", "facets": {
        "region": [{"value_or_threshold": "north", "metrics": _metrics(DI=north_di, DPPL=0.11)},
                   {"value_or_threshold": "south", "metrics": _metrics(DI=1.02, DPPL=-0.01)}],
        "age": [{"value_or_threshold": "(60, 120]", "metrics": _metrics(DI=0.95, DPPL=0.02)}]}}
    return {"version": "1.0", "pre_training_bias_metrics": pre, "post_training_bias_metrics": post}


FEATURES = {"tenure_months": 0.09, "monthly_charges": 0.05, "support_calls": 0.07, "contract": 0.04,
            "late_payments": 0.03, "usage_gb": 0.02, "age": 0.015, "total_charges": 0.012, "num_products": 0.01,
            "payment_method": 0.005, "region": -0.001, "noise_a": 0.0004}


def explainability(importance: dict[str, float] | None = None) -> dict:
    importance = FEATURES if importance is None else importance
    return {"version": "1.0", "explanations": {"permutation_importance": {
        "metric": "validation:auc", "repeats": 5, "seed": 7, "rows": 2000,
        "label": {"global_importance": importance, "standard_deviation": {k: 0.004 for k in importance}}}}}


def with_evidence(report: dict, north_di: float = 0.7) -> dict:
    """An evaluation report as the training job with the evidence writes it."""
    return {**report, "bias": bias_analysis(north_di), "explainability": explainability()}


def judged_against_the_specs_bounds(summary: dict, spec) -> bool:
    """The fixture's evidence summarized (Evaluation.evidence as the run carries it): every group, each judged against
    the spec's bias bounds (its `bias.bounds`, or the default band where the spec sets none)."""
    from lambdas.shared import evidence

    bounds = evidence.bounds_of(getattr(spec, "bias", None))
    rows = {row["value"]: row for row in summary["bias"]}
    return (set(rows) == {"north", "south", "(60, 120]"}
            and summary["bounds"] == {name: bound.model_dump() for name, bound in bounds.items()}
            and rows["north"]["metrics"] == {"CI": 0.12, "DPL": 0.08, "DI": 0.7, "DPPL": 0.11}
            and all(row["misses"] == evidence.misses(row["metrics"], bounds) for row in rows.values()))

"""Model Monitor's constraints.json applied to the window, and baselines mixing 10- and 200-bucket features."""

import numpy as np

from lambdas.drift import baseline, engine, report


def frame(rows: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"count": rng.poisson(4, rows).astype(float), "amount": rng.gamma(2, 10, rows),
            "plan": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2])}


def assess(training: dict, window: dict, constraints: dict | None = None, statistics: dict | None = None):
    computed, computed_constraints = baseline.compute(training, list(training), ["plan"])
    reference = engine.Reference.from_statistics(statistics or computed)
    checks = engine.Constraints.from_json(constraints or computed_constraints)
    return engine.compare(reference, np.column_stack([window["count"], window["amount"]]), [window["plan"]],
                          engine.Thresholds(), checks)


def test_constraints_json_has_model_monitors_shape_and_a_same_window_violates_nothing():
    statistics, constraints = baseline.compute(frame(5000, 1), ["count", "amount", "plan"], ["plan"])
    assert {f["inferred_type"] for f in constraints["features"]} == {"Integral", "Fractional", "String"}
    assert constraints["monitoring_config"]["distribution_constraints"]["comparison_method"] in ("Robust", "Simple")
    assert assess(frame(5000, 1), frame(3000, 2)).violations == []


def test_each_check_is_reported_in_the_json_and_html_reports():
    window = frame(3000, 2)
    window["count"][:600] = np.nan                 # completeness below the baseline's 1.0
    window["count"][600:1200] = 2.5                # non-integral values in an Integral feature (20%)
    window["amount"][:10] = -1.0                   # negatives in a non-negative feature
    window["amount"][10:] = window["amount"][10:] * 3  # a distribution far past the comparison threshold
    result = assess(frame(5000, 1), window)
    checks = {(v["feature_name"], v["constraint_check_type"]) for v in result.violations}
    assert checks >= {("count", "completeness_check"), ("count", "data_type_check"),
                      ("amount", "non_negative_check"), ("amount", "baseline_drift_check")}
    assert report.json_report(result, {})["violations"] == result.violations
    assert "baseline_drift_check" in report.html_report(result, {"model": "m"})


def test_simple_comparison_uses_the_threshold_alone_and_evaluate_disabled_checks_nothing():
    _, constraints = baseline.compute(frame(5000, 1), ["count", "amount", "plan"], ["plan"])
    constraints["monitoring_config"]["distribution_constraints"].update(comparison_method="Simple", comparison_threshold=0.0)
    assert any(v["constraint_check_type"] == "baseline_drift_check" for v in assess(frame(5000, 1), frame(300, 2), constraints).violations)
    constraints["monitoring_config"]["evaluate_constraints"] = "Disabled"
    assert assess(frame(5000, 1), frame(300, 2), constraints).violations == []


def test_a_statistics_file_mixing_10_and_200_bucket_features_raises_no_false_drift():
    """Model Monitor writes 10 KLL buckets, our training 200: one file with both, against an A/A window."""
    training = frame(20_000, 1)
    statistics, _ = baseline.compute(training, ["count", "amount", "plan"], ["plan"])
    coarse, _ = baseline.compute(training, ["count", "amount", "plan"], ["plan"], bins=10)
    statistics["features"][1] = coarse["features"][1]  # 'amount' with 10 buckets, 'count' with 200
    drifted = [assess(training, frame(20_000, seed), statistics=statistics).drifted_features for seed in range(2, 12)]
    assert drifted == [[]] * 10

"""The drift report says what was decided and why, with the thresholds used, the traffic judged (requests apart from
rows) and histograms with axes and bin labels."""

import re

from lambdas.drift import report
from lambdas.drift.engine import DriftResult, FeatureResult

CONTEXT = {"model": "churn", "window_start": "2026-11-22T00:00:00", "window_end": "2026-11-23T00:00:00",
           "capture_lines": 250, "malformed_lines": 3, "blocking": []}


def feature(name: str, kind: str, psi: float, js: float, p: float, drifted: bool, significant: bool) -> FeatureResult:
    if kind == "numeric":
        histograms = dict(reference_histogram=[100.0] * 10, current_histogram=[40.0] * 5 + [160.0] * 5,
                          labels=[f"q{k}" for k in range(10)])
    else:
        histograms = dict(reference_histogram=[500.0, 300.0, 200.0], current_histogram=[200.0, 300.0, 500.0],
                          labels=["monthly", "one_year", "two_year"])
    return FeatureResult(name, kind, psi, js, "ks" if kind == "numeric" else "chi2", p, 0.0, 0.0, significant, drifted,
                         **histograms)


def drifted_result() -> DriftResult:
    features = [feature("tenure_months", "numeric", 0.45, 0.21, 1e-30, True, True),
                feature("contract", "categorical", 0.62, 0.25, 1e-40, True, True),
                feature("age", "numeric", 0.05, 0.02, 0.003, False, True),
                feature("usage_gb", "numeric", 0.01, 0.01, 0.6, False, False)]
    return DriftResult(5000, features, ["tenure_months", "contract"], True, [])


def test_the_decision_and_why_come_first_with_the_drifted_features_and_the_cooldown():
    page = report.html_report(drifted_result(), CONTEXT)
    assert "Decision: <strong>DRIFT: retraining requested</strong>" in page
    assert ("Why: 2 drifted feature(s), 2 needed: tenure_months, contract; a run starts unless one started in the "
            "last 24 h (cooldown).") in page
    assert "drifted: PSI 0.450 ≥ 0.2 and JS 0.210 ≥ 0.1, p 1.0e-30 &lt; 0.01 (BH)" in page
    assert "significant (p 3.0e-03 &lt; 0.01 (BH)) but PSI 0.050 &lt; 0.2 and JS 0.020 &lt; 0.1" in page


def test_a_blocking_problem_is_the_reason_no_run_starts():
    context = {**CONTEXT, "blocking": ["more than 10% of capture lines are malformed (40/250)"]}
    page = report.html_report(drifted_result(), context)
    assert "Decision: <strong>DRIFT, no retraining</strong>" in page
    assert "not retraining: more than 10% of capture lines are malformed (40/250)" in page


def test_the_thresholds_of_the_spec_are_shown():
    page = report.html_report(drifted_result(), CONTEXT)
    assert "&lt; 0.01 <em>and</em> PSI ≥ 0.2 or Jensen-Shannon ≥ 0.1" in page
    assert "at least 2 feature(s) drift" in page and "at least 200 rows in a 24 h window" in page


def test_rows_and_requests_are_told_apart():
    page = report.html_report(drifted_result(), CONTEXT)
    assert ("Traffic judged: <strong>5,000</strong> rows in <strong>250</strong> captured requests (capture lines, "
            "20.0 rows per request on average) of which 3 malformed and skipped.") in page
    assert "<dt>capture_lines</dt>" not in page


def test_each_histogram_has_both_axes_ticks_titles_and_a_label_per_bin():
    page = report.html_report(drifted_result(), CONTEXT)
    charts = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(charts) == 4
    numeric = next(c for c in charts if 'aria-label="tenure_months' in c)
    categorical = next(c for c in charts if 'aria-label="contract' in c)
    for chart in (numeric, categorical):
        assert chart.count("<line") >= 2 + 3  # two axes, three y ticks
        assert ">0%</text>" in chart and ">share of rows</text>" in chart
    assert ">0–10%</text>" in numeric and ">90–100%</text>" in numeric and "baseline decile bins" in numeric
    assert all(f">{label}</text>" in categorical for label in ("monthly", "one_year", "two_year"))


def test_value_edges_label_the_bins_when_the_engine_gives_them():
    base = feature("tenure_months", "numeric", 0.45, 0.21, 1e-30, True, True)
    edged = FeatureResult(**{**vars(base), "edges": [0, 2, 5, 9, 14, 20, 27, 35, 44, 56, 72]})
    labels, title = report.bin_labels(edged)
    assert labels[0] == "< 2" and labels[1] == "2–5" and labels[-1] == "≥ 56" and "value bins" in title


def test_no_drift_says_so_and_how_many_were_needed():
    result = DriftResult(800, [feature("age", "numeric", 0.05, 0.02, 0.3, False, False)], [], False, [])
    page = report.html_report(result, {**CONTEXT, "capture_lines": 40})
    assert "Decision: <strong>no drift</strong>" in page and "0 drifted feature(s), 2 needed" in page


def test_numeric_bins_are_labelled_with_the_baselines_value_edges():
    import numpy as np

    from lambdas.drift import engine

    values = np.random.default_rng(5).uniform(0, 100, (20_000, 1))
    reference = engine.Reference.from_arrays(["price"], values, [], [])
    accumulator = engine.Accumulator(reference)
    accumulator.update(values[:5_000], [])
    (feature,) = engine.evaluate(accumulator, engine.Thresholds()).features
    assert len(feature.edges) == len(feature.reference_histogram) + 1
    assert feature.edges == sorted(feature.edges) and abs(feature.edges[5] - 50) < 3  # the median of uniform(0, 100)
    labels, title = report.bin_labels(feature)
    assert title.startswith("value bins") and labels[0].startswith("< ") and labels[-1].startswith("≥ ")


def test_an_offline_check_says_it_started_nothing_and_how_to_start_a_run():
    page = report.html_report(drifted_result(), {**CONTEXT, "offline": True})
    assert "retraining requested" not in page
    assert "Decision: <strong>DRIFT: retraining warranted, no run started</strong>" in page
    assert "an offline check starts nothing" in page and "`mlops run start churn --reason drift`" in page


def test_more_violations_than_listed_says_how_many_are_shown():
    from lambdas.drift.engine import violations_note

    violations = [{"feature_name": f"f{i}", "constraint_check_type": "data_type_check"} for i in range(13)]
    note = violations_note(violations)
    assert note.startswith("13 constraints.json violation(s), 10 shown (all in the report's violations table")
    assert note.count("data_type_check") == 10
    assert violations_note(violations[:3]).startswith("3 constraints.json violation(s): f0")

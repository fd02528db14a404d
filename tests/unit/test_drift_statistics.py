"""Sound statistics: a two-sample categorical test, rare labels grouped, infinities and strict JSON."""

import json

import numpy as np
from scipy import stats

from lambdas.drift import baseline, engine, report


def noise(rows: int) -> np.ndarray:
    return np.random.default_rng(rows).normal(0, 1, (rows, 1))


def categorical_reference(values: np.ndarray) -> engine.Reference:
    return engine.Reference.from_arrays(["noise"], noise(len(values)), ["c"], [values])


def categorical_result(reference_values: np.ndarray, current_values: np.ndarray) -> engine.FeatureResult:
    reference = categorical_reference(reference_values)
    accumulator = engine.Accumulator(reference)
    accumulator.update(noise(len(current_values)), [current_values])
    return engine.evaluate(accumulator, engine.Thresholds()).features[-1]


def test_the_categorical_test_is_scipys_two_sample_contingency_test():
    rng = np.random.default_rng(3)
    labels = np.array(["a", "b", "c", "d"])
    first = labels[rng.choice(4, 3000, p=[0.4, 0.3, 0.2, 0.1])]
    second = labels[rng.choice(4, 800, p=[0.37, 0.31, 0.21, 0.11])]
    table = [[np.sum(first == label) for label in labels], [np.sum(second == label) for label in labels]]
    expected = stats.chi2_contingency(table, correction=False).pvalue
    assert abs(categorical_result(first, second).p_value - expected) < 1e-12


def test_a_high_cardinality_column_does_not_drift_against_itself():
    rng = np.random.default_rng(5)
    labels = np.array([f"user-{i}" for i in range(10_000)])
    result = categorical_result(labels[rng.integers(0, 10_000, 100_000)], labels[rng.integers(0, 10_000, 100_000)])
    assert result.p_value > 0.01 and result.psi < 0.1 and not result.drifted


def test_labels_are_counted_exactly_never_negative():
    labels = np.array([f"{i:x}" for i in range(50_000)])
    reference = categorical_reference(labels)
    counts = engine.Accumulator(reference)
    counts.update(noise(50_000), [labels[::-1].copy()])
    assert counts.category_counts[0][:-2].min() == 1 and counts.category_counts[0][-2:].tolist() == [0, 0]


def test_the_string_nan_is_missing_in_both_the_baseline_and_the_window():
    values = np.array(["x", "y", "NaN", "y"] * 500)
    result = categorical_result(values, values.copy())
    assert result.psi < 1e-6 and result.missing_reference == result.missing_current == 0.25


def test_infinities_in_training_neither_blind_the_feature_nor_break_strict_json():
    rng = np.random.default_rng(9)
    training = rng.normal(0, 1, 20_000)
    training[::500] = np.inf  # 0.2%
    statistics, _ = baseline.compute({"x": training}, ["x"], [])
    text = json.dumps(statistics, allow_nan=False)  # strict JSON, or this raises
    reference = engine.Reference.from_statistics(json.loads(text))
    accumulator = engine.Accumulator(reference)
    accumulator.update(rng.normal(1.0, 1, (5_000, 1)), [])
    result = engine.evaluate(accumulator, engine.Thresholds())
    assert result.drifted_features == ["x"] and result.features[0].missing_current == 0
    assert any("infinite" in problem for problem in result.problems)
    json.dumps(report.json_report(result, {"model": "m"}), allow_nan=False)


def test_reports_replace_nan_with_null():
    result = engine.DriftResult(10, [engine.FeatureResult("x", "numeric", float("nan"), 0.0, "ks", 1.0, 0.0, 0.0)],
                                [], False, [])
    assert json.loads(json.dumps(report.json_report(result, {}), allow_nan=False))["features"][0]["psi"] is None


def test_the_engine_evaluates_the_same_distributions_as_scipy_stats_without_importing_it():
    """The drift bundle carries scipy.special only: each statistic must equal what scipy.stats computes."""
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(11)
    p, q = rng.random((6, 10)) + 1e-6, rng.random((6, 10)) + 1e-6
    assert np.allclose(engine.jensenshannon(p, q, axis=1), jensenshannon(p, q, base=2, axis=1), atol=1e-12)
    x = np.linspace(0.0, 3.0, 31)
    assert np.allclose(engine.special().kolmogorov(x), stats.kstwobign.sf(x), atol=1e-14)
    table = rng.integers(1, 500, (2, 7))
    assert abs(engine.two_sample_chi2(table[0], table[1]) - stats.chi2_contingency(table, correction=False).pvalue) < 1e-12
    assert abs(engine.special().bdtr(930, 1000, 0.95) - stats.binom.cdf(930, 1000, 0.95)) < 1e-14


def test_the_drift_engine_imports_no_part_of_scipy_but_special():
    import subprocess
    import sys

    code = ("import sys, numpy, lambdas.drift.engine as e; e.jensenshannon(numpy.ones(2), numpy.ones(2)); "
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('scipy.')}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "special" in eval(loaded) and set(eval(loaded)) <= {
        "special", "linalg", "_lib", "_external", "_cyutility", "version", "__config__", "_distributor_init",
        "_distributor_init_local"}, loaded  # scipy.special loads scipy.linalg for one of its extension modules

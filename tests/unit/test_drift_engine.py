import numpy as np
import pytest

from lambdas.drift import baseline, engine

NUMERIC = [f"x{i}" for i in range(6)]
CATEGORICAL = ["colour", "plan"]


def sample(rows: int, seed: int, shift: dict | None = None):
    rng = np.random.default_rng(seed)
    numeric = np.column_stack([rng.normal(0, 1, rows), rng.lognormal(0, 0.7, rows), rng.uniform(0, 10, rows),
                               rng.poisson(3, rows).astype(float), rng.exponential(2, rows), rng.normal(50, 5, rows)])
    colour = rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2])
    plan = rng.choice(["basic", "pro"], rows, p=[0.7, 0.3])
    shift = shift or {}
    if "x0" in shift:
        numeric[:, 0] += shift["x0"]
    if "x2" in shift:
        numeric[:, 2] *= shift["x2"]
    if "colour" in shift:
        colour = rng.choice(["red", "green", "blue"], rows, p=shift["colour"])
    return numeric, [colour, plan]


@pytest.fixture(scope="module")
def reference():
    numeric, categorical = sample(50_000, seed=1)
    return engine.Reference.from_arrays(NUMERIC, numeric, CATEGORICAL, categorical)


def test_injected_drift_is_flagged_in_exactly_the_shifted_columns(reference):
    numeric, categorical = sample(20_000, seed=2, shift={"x0": 0.8, "x2": 1.6, "colour": [0.2, 0.3, 0.5]})
    result = engine.compare(reference, numeric, categorical, engine.Thresholds())
    assert sorted(result.drifted_features) == ["colour", "x0", "x2"]
    assert result.drift


@pytest.mark.parametrize("seed", range(10, 20))
def test_same_distribution_samples_are_not_flagged(reference, seed):
    numeric, categorical = sample(20_000, seed=seed)
    result = engine.compare(reference, numeric, categorical, engine.Thresholds())
    assert result.drifted_features == [] and not result.drift


def test_power_small_but_real_shift_is_detected_in_most_trials(reference):
    detected = sum("x0" in engine.compare(reference, *sample(5_000, seed=s, shift={"x0": 0.5}),
                                          engine.Thresholds(psi=0.1)).drifted_features for s in range(30, 50))
    assert detected >= 18  # >= 90% power at n=5,000 for a half-sigma shift


def test_streaming_chunks_give_the_same_result_as_one_pass(reference):
    numeric, categorical = sample(30_000, seed=3, shift={"x0": 0.3})
    whole = engine.compare(reference, numeric, categorical, engine.Thresholds())
    accumulator = engine.Accumulator(reference)
    for start in range(0, 30_000, 7_000):
        accumulator.update(numeric[start:start + 7_000], [c[start:start + 7_000] for c in categorical])
    streamed = engine.evaluate(accumulator, engine.Thresholds())
    assert [f.psi for f in streamed.features] == pytest.approx([f.psi for f in whole.features])


def test_model_monitor_baseline_from_training_reads_back_as_the_same_reference():
    numeric, categorical = sample(20_000, seed=4)
    columns = {**{n: numeric[:, i] for i, n in enumerate(NUMERIC)}, "colour": categorical[0], "plan": categorical[1]}
    statistics, constraints = baseline.compute(columns, NUMERIC + CATEGORICAL, CATEGORICAL)
    assert statistics["features"][0]["numerical_statistics"]["distribution"]["kll"]["buckets"][0]["lower_bound"] < 0
    assert constraints["features"][-1]["string_constraints"]["domains"] == ["basic", "pro"]
    reference = engine.Reference.from_statistics(statistics)
    assert reference.numeric == NUMERIC and reference.categorical == CATEGORICAL
    same = engine.compare(reference, *sample(20_000, seed=5), engine.Thresholds())
    shifted = engine.compare(reference, *sample(20_000, seed=5, shift={"x2": 1.6}), engine.Thresholds())
    assert same.drifted_features == [] and shifted.drifted_features == ["x2"]


def test_classic_ten_bucket_model_monitor_baselines_are_accepted():
    buckets = [{"lower_bound": float(i), "upper_bound": float(i + 1), "count": 100.0} for i in range(10)]
    statistics = {"features": [{"name": "u", "inferred_type": "Fractional", "numerical_statistics": {
        "common": {"num_present": 1000, "num_missing": 0}, "distribution": {"kll": {"buckets": buckets}}}}]}
    reference = engine.Reference.from_statistics(statistics)
    rng = np.random.default_rng(0)
    assert engine.compare(reference, rng.uniform(0, 10, (5000, 1)), [], engine.Thresholds()).drifted_features == []
    assert engine.compare(reference, rng.uniform(0, 5, (5000, 1)), [], engine.Thresholds()).drifted_features == ["u"]


def test_too_few_rows_and_rising_missing_values_are_reported_not_judged(reference):
    numeric, categorical = sample(100, seed=6)
    small = engine.compare(reference, numeric, categorical, engine.Thresholds())
    assert not small.drift and "100 rows in the window" in small.problems[0]
    numeric, categorical = sample(5_000, seed=7)
    numeric[:1000, 1] = np.nan
    result = engine.compare(reference, numeric, categorical, engine.Thresholds())
    assert any("'x1' is 20.0% missing" in p for p in result.problems)


def test_unseen_categories_count_as_drift_evidence(reference):
    numeric, categorical = sample(10_000, seed=8)
    categorical[0] = np.where(np.arange(10_000) % 3 == 0, "purple", categorical[0])
    result = engine.compare(reference, numeric, categorical, engine.Thresholds())
    assert "colour" in result.drifted_features


def test_benjamini_hochberg_controls_the_family():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205])
    assert engine.benjamini_hochberg(p, 0.05).tolist() == [True, True, False, False, False, False, False, False]

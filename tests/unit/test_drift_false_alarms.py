"""A/A false alarms on real data shipped inside a package (vega_datasets): the drift hook's path, seeded.

Both halves of each split come from the same table, so any drift verdict is a false alarm. The issue's bound is
5% of trials; 20 seeded trials per (dataset, window) may raise at most 3 (at a true rate of 5%, 4 or more happen
in ~1.6% of 20-trial runs; the seeds are fixed, so the test cannot flake). The full table: benchmarks/drift_false_alarms.py.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import drift_false_alarms as aa  # noqa: E402

TRIALS = 20


@pytest.fixture(scope="module")
def table():
    return aa.run(TRIALS, seed=7)


@pytest.mark.parametrize("dataset", list(aa.DATASETS))
@pytest.mark.parametrize("window", ["200 rows", "half the data"])
def test_a_split_of_real_data_rarely_drifts(table, dataset, window):
    rows = [row for row in table if row["dataset"] == dataset]
    row = rows[0] if window == "200 rows" else rows[1]
    assert row["drift"] * TRIALS <= 3, row


def test_a_new_label_with_real_mass_still_drifts():
    """The other side of grouping unseen labels as rare: a label the baseline never saw, carrying 30% of the
    window, keeps its own column of the two-sample table and is found."""
    columns, spec = aa.load("airports"), aa.model_spec("airports")
    from lambdas.drift import baseline, logic

    features, categorical = aa.DATASETS["airports"]
    order = np.random.default_rng(1).permutation(len(columns["state"]))
    reference, current = order[:1688], order[1688:]
    statistics, _ = baseline.compute({f: [columns[f][i] for i in reference] for f in features}, features, categorical)
    shifted = {f: list(values) for f, values in columns.items()}
    for i in current[::3]:
        shifted["state"][i] = "Atlantis"
    result = logic.assess(statistics, spec, [("w", aa.capture_lines(shifted, current))]).result
    assert result.drifted_features == ["state"]

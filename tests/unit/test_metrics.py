import sys
from itertools import product

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "pipelines" / "churn"))
import evaluate  # noqa: E402


def brute_force_auc(labels, scores):
    pairs = [(p, n) for p, n in product(scores[labels == 1], scores[labels == 0])]
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])


def test_rank_auc_matches_pairwise_definition_including_ties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.uniform(size=300) + 0.3 * labels, 1)  # rounding makes many ties
    assert evaluate.roc_auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores))


def test_auc_is_nan_for_a_single_class():
    assert np.isnan(evaluate.roc_auc(np.ones(5), np.arange(5)))


def test_metric_lines_are_read_by_the_spec_regex(capsys):
    import re
    evaluate.print_metrics({"validation:auc": 0.8123456})
    assert re.search(r"validation:auc=([0-9.]+)", capsys.readouterr().out).group(1) == "0.812346"

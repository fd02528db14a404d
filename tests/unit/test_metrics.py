import re
from itertools import product

import numpy as np
import pytest

from pipelines.modelkit import metrics
from pipelines.spec import TASK_METRICS


def brute_force_auc(labels, scores):
    pairs = [(p, n) for p, n in product(scores[labels == 1], scores[labels == 0])]
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])


def test_rank_auc_matches_pairwise_definition_including_ties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.uniform(size=300) + 0.3 * labels, 1)  # rounding makes many ties
    assert metrics.roc_auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores))


def test_auc_is_nan_for_a_single_class():
    assert np.isnan(metrics.roc_auc(np.ones(5), np.arange(5)))


def test_metric_lines_are_read_by_the_spec_regex(capsys):
    metrics.print_metrics({"validation:auc": 0.8123456})
    assert re.search(r"validation:auc=([0-9.]+)", capsys.readouterr().out).group(1) == "0.812346"


def test_champion_lines_do_not_match_the_challengers_regex(capsys):
    metrics.print_metrics({"validation:rmse": 31.5}, prefix="champion:")
    metrics.print_metrics({"validation:rmse": 27.25})
    out = capsys.readouterr().out
    assert re.findall(r"validation:rmse=([0-9.]+)", out) == ["27.250000"]
    assert "champion:rmse=31.500000;" in out


def test_regression_metrics_match_their_definitions():
    labels, values = np.array([100.0, 200.0, 300.0, 400.0]), np.array([110.0, 190.0, 330.0, 400.0])
    result = metrics.regression(labels, values)
    errors = values - labels
    assert result["validation:rmse"] == pytest.approx(np.sqrt(np.mean(errors ** 2)))
    assert result["validation:mae"] == pytest.approx(12.5)
    assert result["validation:r2"] == pytest.approx(1 - np.sum(errors ** 2) / np.sum((labels - 250) ** 2))
    assert result["validation:mape"] == pytest.approx(np.mean(np.abs(errors / labels)))


def test_multiclass_metrics_from_prediction_records():
    classes = ["low", "mid", "high"]
    predictions = [{"label": "low", "probabilities": {"low": 0.7, "mid": 0.2, "high": 0.1}},
                   {"label": "mid", "probabilities": {"low": 0.1, "mid": 0.8, "high": 0.1}},
                   {"label": "mid", "probabilities": {"low": 0.2, "mid": 0.5, "high": 0.3}}]
    result = metrics.from_predictions("multiclass", ["low", "mid", "high"], predictions, classes)
    assert result["validation:accuracy"] == pytest.approx(2 / 3)
    assert result["validation:logloss"] == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.3])))
    assert result["validation:macro_f1"] == pytest.approx(np.mean([1.0, 2 / 3, 0.0]))
    with pytest.raises(ValueError, match=r"labels \['huge'\] are not among the model's classes"):
        metrics.from_predictions("multiclass", ["huge", "mid", "low"], predictions, classes)


@pytest.mark.parametrize(("task", "labels", "predictions"), [
    ("binary", ["0", "1"], [{"probability": 0.2, "label": 0}, {"probability": 0.9, "label": 1}]),
    ("regression", ["1.5", "2.5"], [{"value": 1.0}, {"value": 3.0}]),
    ("multiclass", ["a", "b"], [{"label": "a", "probabilities": {"a": 0.9, "b": 0.1}},
                                {"label": "b", "probabilities": {"a": 0.4, "b": 0.6}}]),
])
def test_every_metric_the_kit_writes_is_one_the_spec_knows(task, labels, predictions):
    names = {name.rpartition(":")[2] for name in metrics.from_predictions(task, labels, predictions)}
    assert names == set(TASK_METRICS[task])

"""Permutation importance (modelkit.importance): the drop of the objective when one feature's column is shuffled,
larger for a feature the model uses, zero for one it ignores, either direction of the objective, seeded and capped."""

import numpy as np
import pytest

from pipelines.modelkit import finish, importance
from pipelines.modelkit.data import column_features

ROWS = [{"signal": str(i), "noise": str(i % 7)} for i in range(200)]
LABELS = [float(i) for i in range(200)]


def predict(rows: list) -> list:
    """A model that reads only 'signal'."""
    return [{"value": float(row["signal"])} for row in rows]


def rmse(labels: list, predictions: list) -> float:
    return float(np.sqrt(np.mean((np.array(labels) - np.array([p["value"] for p in predictions])) ** 2)))


def explained(**options) -> dict:
    document = importance.document(predict, ROWS, LABELS, ["signal", "noise"], rmse, "validation:rmse", "minimize",
                                   **options)
    return document["explanations"]["permutation_importance"]


def test_a_used_feature_matters_and_an_ignored_one_does_not():
    found = explained()
    assert found["label"]["global_importance"]["signal"] > 50  # shuffled, the exact model misses by ~80 on average
    assert found["label"]["global_importance"]["noise"] == 0.0
    assert found["label"]["standard_deviation"]["noise"] == 0.0
    assert (found["metric"], found["direction"], found["baseline"], found["rows"]) == ("validation:rmse", "minimize", 0.0, 200)
    assert (found["repeats"], found["seed"]) == (importance.REPEATS, importance.SEED)


def test_the_drop_is_the_baseline_minus_the_shuffled_score_when_higher_is_better():
    def negative_rmse(labels, predictions):
        return -rmse(labels, predictions)

    document = importance.document(predict, ROWS, LABELS, ["signal"], negative_rmse, "validation:score", "maximize")
    higher_is_better = document["explanations"]["permutation_importance"]["label"]["global_importance"]["signal"]
    assert higher_is_better == pytest.approx(explained()["label"]["global_importance"]["signal"])


def test_the_same_seed_gives_the_same_numbers_and_another_seed_others():
    assert explained() == explained()
    assert explained(seed=8)["label"]["global_importance"]["signal"] != explained()["label"]["global_importance"]["signal"]


def test_rows_are_capped_and_each_repeat_reshuffles():
    calls = []

    def counting(rows):
        calls.append(len(rows))
        return predict(rows)

    importance.document(counting, ROWS, LABELS, ["signal", "noise"], rmse, "m", "minimize", max_rows=50, repeats=2)
    assert calls == [50] * (1 + 2 * 2)


def test_shuffling_moves_one_column_only():
    rows = [{"a": "1", "b": "x"}, {"a": "2", "b": "y"}, {"a": "3", "b": "z"}]
    moved = importance.shuffled(rows, "a", np.array([2, 0, 1]))
    assert moved == [{"a": "3", "b": "x"}, {"a": "1", "b": "y"}, {"a": "2", "b": "z"}]
    assert rows[0] == {"a": "1", "b": "x"}  # the caller's rows are left as they were


def test_an_objective_that_is_no_number_gives_no_document():
    assert importance.document(predict, ROWS, LABELS, ["signal"], lambda labels, predictions: float("nan"),
                               "validation:auc", "maximize") is None


STATE = {"features": ["size", "zone"], "numeric": ["size"], "categorical": ["zone"], "vocabulary": {"zone": ["a", "b"]}}


def test_tree_shap_adds_up_a_features_one_hot_columns_and_averages_their_magnitude():
    assert column_features(STATE) == ["size", "zone", "zone", "zone"]  # a, b and 'other'
    contributions = np.array([[2.0, 1.0, -3.0, 0.0, 10.0],    # size 2, zone 1 - 3 = -2, expected value 10
                              [-4.0, 0.5, 0.5, 1.0, 12.0]])   # size -4, zone 2
    found = importance.tree_shap(contributions, STATE)
    assert found == {"tree_shap": {"label": {"global_shap_values": {"size": 3.0, "zone": 2.0}, "expected_value": 11.0}}}


def test_tree_shap_of_a_multiclass_model_has_one_output_per_class():
    contributions = np.zeros((3, 2, 5))
    contributions[:, 1, 0] = [1.0, -1.0, 4.0]
    found = importance.tree_shap(contributions, STATE, ["cat", "dog"])["tree_shap"]
    assert found["cat"]["global_shap_values"] == {"size": 0.0, "zone": 0.0}
    assert found["dog"]["global_shap_values"]["size"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="do not fit 4 encoded columns"):
        importance.tree_shap(np.zeros((3, 4)), STATE)


def test_the_frameworks_own_attributions_sit_beside_permutation_importance():
    permutation = {"version": "1.0", "explanations": {"permutation_importance": {"rows": 3}}}
    shap = {"tree_shap": {"label": {"global_shap_values": {"size": 3.0}, "expected_value": 11.0}}}
    assert finish.with_explanations(permutation, shap)["explanations"] == {**permutation["explanations"], **shap}
    assert finish.with_explanations(None, shap) == {"version": "1.0", "explanations": shap}
    assert finish.with_explanations(permutation, None) is permutation

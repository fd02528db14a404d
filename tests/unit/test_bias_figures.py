"""Bias figures at training time (modelkit.bias): Clarify's formulas on hand-counted groups, its analysis.json shape,
numeric and categorical facets, rows missing the attribute, and a regression's outcome by threshold."""

import numpy as np
import pytest

from pipelines.modelkit import bias
from pipelines.modelkit.contract import Task
from pipelines.modelkit.data import Split

# Facet d: 4 rows, 3 of them positive; facet a: 6 rows, 2 positive.
D = np.array([True] * 4 + [False] * 6)
POSITIVE = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0], dtype=bool)


def test_class_imbalance_is_na_minus_nd_over_their_sum():
    assert bias.class_imbalance(6, 4) == pytest.approx(0.2)
    assert bias.class_imbalance(0, 5) == -1.0
    assert bias.class_imbalance(0, 0) is None


def test_pre_training_dpl_is_qa_minus_qd():
    figures = bias.pre_training(POSITIVE, D, ~D)
    assert figures["CI"] == pytest.approx((6 - 4) / 10)
    assert figures["DPL"] == pytest.approx(2 / 6 - 3 / 4)


def test_post_training_di_is_qd_over_qa_and_dppl_is_qa_minus_qd():
    figures = bias.post_training(POSITIVE, D, ~D)
    assert figures["DI"] == pytest.approx((3 / 4) / (2 / 6))
    assert figures["DPPL"] == pytest.approx(2 / 6 - 3 / 4)


def test_figures_a_group_cannot_give_are_none():
    nobody_positive = np.zeros(10, dtype=bool)
    assert bias.post_training(nobody_positive, D, ~D) == {"DI": None, "DPPL": 0.0}
    empty = np.zeros(10, dtype=bool)
    assert bias.pre_training(POSITIVE, empty, ~empty)["DPL"] is None


def split_of(train: dict, validation: dict, label: str = "y") -> Split:
    state = {"features": [k for k in train if k != label], "label": label}
    return Split(state, train, validation, None, None, None, None)


def binary_task(**bias_section) -> Task:
    return Task(type="binary", label="y", features=["age", "region"], categorical=["region"], classes=None,
                objective="validation:auc", model="m", description="", bias=bias_section)


TRAIN = {"age": ["30", "70", "65", "", "40", "80"], "region": ["n", "s", "s", "n", "", "n"],
         "y": ["0", "1", "1", "0", "1", "0"]}
VALIDATION = {"age": ["61", "20", "90", "59"], "region": ["s", "n", "s", "n"], "y": ["1", "0", "1", "0"]}
PREDICTIONS = [{"probability": 0.9, "label": 1}, {"probability": 0.2, "label": 0}, {"probability": 0.4, "label": 0},
               {"probability": 0.7, "label": 1}]


def test_the_document_has_clarifys_sections_facets_and_metric_entries():
    task = binary_task(sensitive_attributes=[{"name": "age", "threshold": 60}, {"name": "region"}])
    document = bias.document(task, split_of(TRAIN, VALIDATION), PREDICTIONS)
    assert document["version"] == "1.0"
    pre, post = document["pre_training_bias_metrics"], document["post_training_bias_metrics"]
    assert (pre["label"], pre["label_value_or_threshold"]) == ("y", "1")
    assert [e["value_or_threshold"] for e in pre["facets"]["age"]] == ["(60, 90]"]
    assert [e["value_or_threshold"] for e in pre["facets"]["region"]] == ["n", "s"]  # every value, each vs the rest
    age = {m["name"]: m for m in pre["facets"]["age"][0]["metrics"]}
    assert age["CI"]["description"] == "Class Imbalance (CI)"
    # age > 60 in training: 70, 65, 80 (d: 2 of 3 positive); a: 30, 40 (1 of 2); the empty age is in neither.
    assert age["CI"]["value"] == pytest.approx((2 - 3) / 5)
    assert age["DPL"]["value"] == pytest.approx(1 / 2 - 2 / 3)
    south = {m["name"]: m["value"] for m in post["facets"]["region"][1]["metrics"]}
    # validation region s: predictions 1, 0 (q'd 1/2); n: 0, 1 (q'a 1/2).
    assert south == {"DI": pytest.approx(1.0), "DPPL": pytest.approx(0.0)}
    older = {m["name"]: m["value"] for m in post["facets"]["age"][0]["metrics"]}
    assert older == {"DI": pytest.approx((1 / 2) / (1 / 2)), "DPPL": pytest.approx(0.0)}


def test_listed_values_limit_the_groups_and_a_positive_label_of_0_counts_zeros():
    task = binary_task(sensitive_attributes=[{"name": "region", "values": ["s"]}], positive_label="0")
    document = bias.document(task, split_of(TRAIN, VALIDATION), PREDICTIONS)
    pre = document["pre_training_bias_metrics"]
    assert pre["label_value_or_threshold"] == "0" and [e["value_or_threshold"] for e in pre["facets"]["region"]] == ["s"]
    south = {m["name"]: m["value"] for m in pre["facets"]["region"][0]["metrics"]}
    # training s: y 1, 1 (no 0s, qd 0); the rest (n, n, n; the empty region left out): y 0, 0, 0 (qa 1).
    assert south["DPL"] == pytest.approx(1.0)


def test_no_sensitive_attributes_means_no_document():
    assert bias.document(binary_task(), split_of(TRAIN, VALIDATION), PREDICTIONS) is None
    assert bias.document(binary_task(sensitive_attributes=[]), split_of(TRAIN, VALIDATION), PREDICTIONS) is None


def test_an_attribute_missing_from_the_data_stops_the_job_naming_it():
    task = binary_task(sensitive_attributes=[{"name": "gender"}])
    with pytest.raises(SystemExit, match=r"\['gender'\] are not columns of the training data"):
        bias.document(task, split_of(TRAIN, VALIDATION), PREDICTIONS)


def test_a_column_the_model_does_not_use_can_be_the_sensitive_attribute():
    train = {**TRAIN, "gender": ["f", "m", "f", "m", "f", "m"]}
    validation = {**VALIDATION, "gender": ["f", "f", "m", "m"]}
    task = binary_task(sensitive_attributes=[{"name": "gender", "values": ["f"]}])
    document = bias.document(task, split_of(train, validation), PREDICTIONS)
    post = {m["name"]: m["value"] for m in document["post_training_bias_metrics"]["facets"]["gender"][0]["metrics"]}
    assert post["DI"] == pytest.approx((1 / 2) / (1 / 2))


def test_a_regression_counts_values_above_the_label_threshold_as_positive():
    train = {"zone": ["x", "x", "y", "y"], "price": ["100", "300", "200", "400"]}
    validation = {"zone": ["x", "y", "y"], "price": ["1", "1", "1"]}
    task = Task(type="regression", label="price", features=["zone"], categorical=["zone"], classes=None,
                objective="validation:rmse", model="m", description="", direction="minimize",
                bias={"sensitive_attributes": [{"name": "zone", "values": ["x"]}]})
    predictions = [{"value": 260.0}, {"value": 240.0}, {"value": 300.0}]
    document = bias.document(task, split_of(train, validation, "price"), predictions)
    post = document["post_training_bias_metrics"]
    assert post["label_value_or_threshold"] == "(250, 400]"  # the training labels' median, Clarify's interval
    figures = {m["name"]: m["value"] for m in post["facets"]["zone"][0]["metrics"]}
    assert figures == {"DI": pytest.approx(1.0 / 0.5), "DPPL": pytest.approx(0.5 - 1.0)}
    task = Task(**{**task.__dict__, "bias": {**task.bias, "label_threshold": 350}})
    pre = bias.document(task, split_of(train, validation, "price"), predictions)["pre_training_bias_metrics"]
    assert pre["label_value_or_threshold"] == "(350, 400]"
    assert {m["name"]: m["value"] for m in pre["facets"]["zone"][0]["metrics"]}["DPL"] == pytest.approx(0.5 - 0.0)


def test_a_custom_task_has_no_outcome_to_count():
    with pytest.raises(ValueError, match="no bias figures for task type 'custom'"):
        bias.outcome("custom", {}, [])


def test_an_attribute_of_a_group_a_row_stops_with_the_fix_not_a_report_of_thousands_of_groups():
    """A numeric column named without a threshold would be one group per distinct value."""
    from pipelines.modelkit import bias

    with pytest.raises(SystemExit, match=r"income has 1,000 distinct values.*give it a threshold"):
        bias.facets({"name": "income"}, [str(v) for v in range(600)], [str(v) for v in range(600, 1000)])

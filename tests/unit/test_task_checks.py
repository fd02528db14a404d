"""The spec's task type decides what the data validation accepts as labels and what the smoke test accepts as
predictions: one rule set per type, named in every refusal."""

import io
import json

import pytest

from lambdas.endpoint.logic import SmokeTestFailed, judge_smoke_test
from lambdas.pipeline.logic import check_dataset
from pipelines.spec import DatasetSpec, TaskSpec

DATASET = DatasetSpec(label="y", features=["x"], s3_prefix="datasets/m/", min_rows=4, min_minority_share=0.2)


def problems(labels: list, task: TaskSpec) -> list[str]:
    text = "x,y\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels))
    return check_dataset(io.StringIO(text), DATASET, task).problems


REGRESSION = TaskSpec(type="regression", label_min=0, label_max=1000)
MULTICLASS = TaskSpec(type="multiclass", classes=["low", "mid", "high"])
CUSTOM = TaskSpec(type="custom", custom={"label_pattern": "[A-Z]{3}", "prediction_fields": ["code"],
                                         "min_distinct_labels": 2})


def test_binary_labels_must_be_zero_or_one_and_the_fix_names_the_task_type():
    (problem,) = problems(["0", "1", "0", "2", "1"], TaskSpec())
    assert "must be 0 or 1 (task.type: binary)" in problem and "declare the task type" in problem
    assert problems(["0", "1", "0", "1", "1"], TaskSpec()) == []


def test_regression_accepts_prices_a_binary_check_would_refuse():
    assert problems(["250.5", "199", "310.25", "87", "420"], REGRESSION) == []
    assert problems(["250.5", "199", "310.25", "87", "420"], TaskSpec()) != []


def test_regression_names_the_first_bad_label_by_line_and_the_range():
    found = problems(["250", "n/a", "-5", "1e9", "inf", "300"], REGRESSION)
    assert "label 'y' has 2 value(s) that are not finite numbers" in found[0] and "line 3: 'n/a'" in found[0]
    assert "2 value(s) that lie outside task.label_min..label_max [0, 1000]" in found[1] and "line 4: '-5'" in found[1]


def test_a_constant_regression_label_is_refused():
    assert problems(["5", "5", "5", "5"], REGRESSION) == ["label 'y' is constant (5): nothing to learn"]


def test_regression_summary_reports_the_label_range_not_class_shares():
    text = "x,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate([100, 200, 300, 400]))
    summary = check_dataset(io.StringIO(text), DATASET, REGRESSION).summary()
    assert summary["label_range"] == [100.0, 400.0] and summary["label_mean"] == 250.0


def test_multiclass_labels_must_be_declared_classes_each_with_rows():
    assert problems(["low", "mid", "high", "low", "mid"], MULTICLASS) == []
    assert "must be one of ['low', 'mid', 'high'], found ['huge']" in problems(["low", "mid", "high", "huge"], MULTICLASS)[0]
    assert "classes ['high'] of task.classes have no rows" in problems(["low", "mid", "low", "mid"], MULTICLASS)[0]


def test_multiclass_balance_names_the_smallest_class():
    (problem,) = problems(["low"] * 6 + ["mid"] * 6 + ["high"], MULTICLASS)
    assert "minority class 'high' is 7.7% of rows" in problem


def test_too_many_distinct_labels_is_not_a_classification():
    (problem,) = problems([str(i) for i in range(1100)], TaskSpec(type="multiclass"))
    assert "more than 1000 distinct values" in problem and "task.type: regression" in problem


def test_a_custom_task_checks_its_declared_pattern_and_distinct_labels():
    assert problems(["ABC", "XYZ", "ABC", "XYZ"], CUSTOM) == []
    found = problems(["ABC", "abc", "ABC", "ABC"], CUSTOM)
    assert "do not match task.custom.label_pattern '[A-Z]{3}'" in found[0] and "line 3: 'abc'" in found[0]
    assert "1 distinct value(s), task.custom.min_distinct_labels is 2" in problems(["ABC"] * 4, CUSTOM)[0]


def body(*predictions) -> bytes:
    return json.dumps({"predictions": list(predictions)}).encode()


@pytest.mark.parametrize(("task", "good", "bad", "word"), [
    (TaskSpec(), {"probability": 0.3, "label": 0}, {"probability": 1.3, "label": 1}, "probabilities in [0, 1]"),
    (REGRESSION, {"value": 312.5}, {"value": "312.5"}, "finite numbers"),
    (REGRESSION, {"value": 312.5}, {"probability": 0.5}, "finite numbers"),
    (MULTICLASS, {"label": "mid", "probabilities": {"low": 0.2, "mid": 0.7, "high": 0.1}},
     {"label": "mid", "probabilities": {"low": 0.5, "mid": 0.7, "high": 0.1}}, "summing to 1"),
    (MULTICLASS, {"label": "mid", "probabilities": {"low": 0.2, "mid": 0.7, "high": 0.1}},
     {"label": "huge", "probabilities": {"huge": 1.0}}, "a declared class label"),
    (CUSTOM, {"code": "ABC", "score": 3}, {"score": 3}, "the declared prediction_fields"),
])
def test_the_smoke_test_checks_predictions_as_the_task_type_wants_them(task, good, bad, word):
    verdict = judge_smoke_test(200, body(good, good), 2, 10.0, 1000.0, task)
    assert verdict["rows"] == 2
    with pytest.raises(SmokeTestFailed, match=f"1 of 2 predictions are not .*{word[:12]}"):
        judge_smoke_test(200, body(good, bad), 2, 10.0, 1000.0, task)


def test_a_regression_smoke_test_reports_the_mean_prediction():
    assert judge_smoke_test(200, body({"value": 100.0}, {"value": 300.0}), 2, 10.0, 1000.0, REGRESSION)["mean_value"] == 200

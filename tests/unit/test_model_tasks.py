"""Task types and frameworks in the spec: what each allows, and the metric columns every table shows."""

from pathlib import Path

import pytest
import yaml

from pipelines.spec import SpecError, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]
HOUSES = REPO / "pipelines" / "houses" / "model.yaml"


def houses(**overrides) -> dict:
    document = yaml.safe_load(HOUSES.read_text())
    for section, values in overrides.items():
        document[section] = {**document.get(section, {}), **values} if isinstance(values, dict) else values
    return document


def refused(document: dict) -> str:
    with pytest.raises(SpecError) as error:
        parse_spec(document, "houses")
    return str(error.value)


def test_the_second_example_is_an_xgboost_regression_lower_is_better():
    spec = load_spec(HOUSES)
    assert (spec.task.type, spec.training.framework, spec.objective.direction) == ("regression", "xgboost", "minimize")
    assert spec.metric_columns() == ["validation:rmse", "validation:mae", "validation:r2"]
    assert spec.objective_heading() == "validation:rmse (lower is better)"


def test_metric_columns_follow_the_task_type_with_the_objective_first():
    churn = load_spec(REPO / "pipelines" / "churn")
    assert churn.metric_columns() == ["validation:auc", "validation:accuracy"]
    multiclass = parse_spec(houses(task={"type": "multiclass", "classes": ["a", "b", "c"], "label_min": None,
                                         "label_max": None},
                                   objective={"metric": "validation:macro_f1", "regex": "validation:macro_f1=([0-9.]+)",
                                              "direction": "maximize", "minimum": 0.5},
                                   bias={"positive_label": "a"}), "houses")  # its bias figures' favourable class
    assert multiclass.metric_columns() == ["validation:macro_f1", "validation:accuracy"]
    assert "champion:macro_f1" in multiclass.training_log_filters()
    assert "validation:auc" not in multiclass.training_log_filters()


def test_a_metric_of_another_task_type_is_refused_naming_the_right_ones():
    message = refused(houses(objective={"metric": "validation:auc", "regex": "validation:auc=([0-9.]+)",
                                        "direction": "maximize"}))
    assert "'validation:auc' is not a metric the model kit writes for regression models" in message
    assert "validation:rmse" in message and "validation:mae" in message


def test_a_metric_optimized_the_wrong_way_is_refused_with_the_fix():
    message = refused(houses(objective={"direction": "maximize", "minimum": None}))
    assert "rmse is better when lower" in message and "fix: direction: minimize" in message


def test_a_metric_the_kit_never_writes_is_refused_before_training_naming_the_closest_one():
    """Evaluation rescores the champion with the model kit's metrics: a name it does not write (a typo) would fail
    only after the training job was paid for."""
    message = refused(houses(objective={"metric": "validation:rmsee", "regex": "validation:rmsee=([0-9.]+)",
                                        "direction": "minimize"}))
    assert "did you mean 'validation:rmse'?" in message and "evaluation would fail after training" in message


@pytest.mark.parametrize(("task", "expected"), [
    ({"type": "binary", "classes": ["a", "b"], "label_min": None, "label_max": None}, "classes applies to multiclass"),
    ({"type": "multiclass", "classes": ["a", "a"], "label_min": None, "label_max": None}, "distinct labels"),
    ({"type": "regression", "label_min": 10, "label_max": 5}, "must be below label_max"),
    ({"type": "custom", "label_min": None, "label_max": None}, "add task.custom"),
    ({"type": "binary", "label_min": 0, "label_max": None}, "apply to regression"),
])
def test_fields_of_another_task_type_are_refused(task, expected):
    assert expected in refused(houses(task=task))


def test_multiclass_classes_written_as_numbers_are_labels_as_in_the_csv():
    spec = parse_spec(houses(task={"type": "multiclass", "classes": [1, 2, 3], "label_min": None, "label_max": None},
                             objective={"metric": "validation:accuracy", "regex": "validation:accuracy=([0-9.]+)",
                                        "direction": "maximize", "minimum": None}, bias={"positive_label": 1}), "houses")
    assert spec.task.classes == ["1", "2", "3"] and spec.bias.positive_label == "1"


def test_a_custom_task_declares_its_label_pattern_and_prediction_fields():
    spec = parse_spec(houses(task={"type": "custom", "label_min": None, "label_max": None, "custom": {
        "label_pattern": "[A-Z]{3}", "prediction_fields": ["tokens"], "metrics": ["validation:bleu"]}},
        objective={"metric": "validation:bleu", "regex": "validation:bleu=([0-9.]+)", "direction": "maximize",
                   "minimum": None}, bias={"sensitive_attributes": []}), "houses")  # no outcome to count: no figures
    assert spec.metric_columns() == ["validation:bleu"]
    assert "not a valid regular expression" in refused(houses(task={
        "type": "custom", "label_min": None, "label_max": None, "custom": {"label_pattern": "[", "prediction_fields": ["x"]}}))


@pytest.mark.parametrize(("framework", "version", "python"), [
    ("pytorch", "2.5", "py311"), ("xgboost", "3.0-5", "py3"), ("sklearn", "1.2-1", "py3")])
def test_each_framework_has_its_container_defaults(framework, version, python):
    document = houses()
    document["training"] = {**{k: v for k, v in document["training"].items() if k != "framework_version"},
                            "framework": framework}
    spec = parse_spec(document, "houses")
    assert (spec.training.framework_version, spec.training.py_version) == (version, python)


def test_bring_your_own_image_needs_an_ecr_image_and_serves_with_it():
    assert "needs training.image_uri" in refused(houses(training={"framework": "byo"}))
    assert "is not an ECR image URI" in refused(houses(training={"framework": "byo", "image_uri": "docker.io/me/model"}))
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/houses:7"
    spec = parse_spec(houses(training={"framework": "byo", "image_uri": image}), "houses")
    assert spec.training.serving_image_uri == image


def test_scikit_learn_on_a_gpu_instance_is_refused():
    message = refused(houses(training={"framework": "sklearn", "framework_version": "1.2-1",
                                       "instance_type": "ml.g5.xlarge"}))
    assert "CPU only" in message and "ml.m5.xlarge" in message

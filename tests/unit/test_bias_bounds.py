"""The spec's bias section (pipelines.spec.BiasSpec) and the evaluate step's judgement of its bounds
(lambdas.pipeline.logic.judge_bias): what is refused with which fix, and a missed bound keeping the champion with a
reason that names the group, the figure and the bound, in the run's outcome and its email."""

import copy
from pathlib import Path

import pytest
import yaml

from lambdas.pipeline import logic
from lambdas.shared.run_state import Objective, RunState, outcome
from pipelines.modelkit.bias_terms import METRICS
from pipelines.spec import BIAS_METRICS, BiasSpec, SpecError, load_spec, parse_spec

CHURN = Path(__file__).resolve().parents[2] / "pipelines" / "churn" / "model.yaml"
HOUSES = Path(__file__).resolve().parents[2] / "pipelines" / "houses" / "model.yaml"
AUC = Objective(metric="validation:auc", direction="maximize", minimum=0.75)


def churn_with(bias: dict, document: dict | None = None) -> object:
    document = copy.deepcopy(document or yaml.safe_load(CHURN.read_text()))
    document["bias"] = bias
    return parse_spec(document, "model.yaml")


def refusal(bias: dict, spec_path: Path = CHURN, task: dict | None = None) -> str:
    document = yaml.safe_load(spec_path.read_text())
    if task is not None:
        document["task"] = task
        if task["type"] == "multiclass":
            document["objective"].update(metric="validation:accuracy", regex="validation:accuracy=([0-9.]+)")
    with pytest.raises(SpecError) as error:
        churn_with(bias, document)
    return str(error.value)


def test_the_spec_accepts_exactly_the_metrics_the_model_kit_writes():
    assert BIAS_METRICS == {name: metric.words for name, metric in METRICS.items()}


def test_the_examples_name_their_attributes():
    churn = load_spec(CHURN)
    assert churn.bias.column_names == ["age", "region"] and churn.bias.sensitive_attributes[0].threshold == 60
    assert set(churn.bias.bounds) == {"DPPL"}
    assert load_spec(HOUSES).bias.column_names == ["neighbourhood"]


@pytest.mark.parametrize(("bias", "expected"), [
    ({"sensitive_attributes": [{"name": "region"}], "bounds": {"dppl": {"max_abs": 0.1}}},
     "'dppl' is not a bias metric the model kit computes; fix: did you mean 'DPPL'? one of CI, DPL, DI, DPPL"),
    ({"sensitive_attributes": [{"name": "region"}], "bounds": {"SPD": {"max_abs": 0.1}}},
     "'SPD' is not a bias metric the model kit computes; fix: one of CI, DPL, DI, DPPL"),
    ({"sensitive_attributes": [{"name": "region"}], "bounds": {"DI": {}}}, "a bound needs min, max or max_abs"),
    ({"sensitive_attributes": [{"name": "region"}], "bounds": {"DI": {"min": 1.25, "max": 0.8}}},
     "min (1.25) is above max (0.8); fix: swap them"),
    ({"sensitive_attributes": [{"name": "region"}], "bounds": {"DPPL": {"max_abs": -0.1}}},
     "greater than or equal to 0"),
    ({"bounds": {"DI": {"min": 0.8}}}, "bounds need sensitive_attributes to measure them on"),
    ({"sensitive_attributes": [{"name": "age"}]}, "'age' is a numeric feature; fix: add threshold"),
    ({"sensitive_attributes": [{"name": "region", "threshold": 2}]}, "'region' is categorical; fix: remove threshold"),
    ({"sensitive_attributes": [{"name": "churned"}]}, "'churned' is the label"),
    ({"sensitive_attributes": [{"name": "region"}, {"name": "region"}]}, "name a column twice"),
    ({"sensitive_attributes": [{"name": "age", "threshold": 60, "values": ["61"]}]}, "exclude each other"),
    ({"sensitive_attributes": [{"name": "region"}], "positive_label": 2}, "'2' is not a binary label; fix: '0' or '1'"),
    ({"sensitive_attributes": [{"name": "region"}], "label_threshold": 3}, "label_threshold applies to regression"),
    ({"sensitive_attributes": [{"name": "region"}], "weights": 3}, "bias.weights"),
])
def test_a_bad_bias_section_is_refused_with_the_fix(bias, expected):
    assert expected in refusal(bias)


def test_the_outcome_must_be_one_the_task_has():
    assert "positive_label applies to classification, not regression; fix: remove it (use bias.label_threshold)" in \
        refusal({"sensitive_attributes": [{"name": "neighbourhood"}], "positive_label": "1"}, HOUSES)
    multiclass = {"type": "multiclass", "classes": ["a", "b", "c"]}
    assert "a multiclass model's favourable outcome is one class; fix: name it" in \
        refusal({"sensitive_attributes": [{"name": "region"}]}, task=multiclass)
    assert "'d' is not one of task.classes" in \
        refusal({"sensitive_attributes": [{"name": "region"}], "positive_label": "d"}, task=multiclass)
    custom = {"type": "custom", "custom": {"label_pattern": "[01]", "prediction_fields": ["score"]}}
    assert "a custom task's predictions have no outcome" in refusal({"sensitive_attributes": [{"name": "region"}]},
                                                                    task=custom)


def test_a_column_outside_the_features_and_yaml_numbers_are_accepted():
    spec = churn_with({"sensitive_attributes": [{"name": "gender", "values": [1, 2]}], "positive_label": 1})
    assert spec.bias.sensitive_attributes[0].values == ["1", "2"] and spec.bias.positive_label == "1"


# ------------------------------------------------------------------ the evaluate step's judgement

def facet(value_or_threshold: str, **metrics) -> dict:
    return {"value_or_threshold": value_or_threshold,
            "metrics": [{"name": name, "description": name, "value": value} for name, value in metrics.items()]}


def figures(post: dict, pre: dict | None = None) -> dict:
    return {"version": "1.0",
            "pre_training_bias_metrics": {"label": "churned", "label_value_or_threshold": "1", "facets": pre or {}},
            "post_training_bias_metrics": {"label": "churned", "label_value_or_threshold": "1", "facets": post}}


BOUNDED = BiasSpec.model_validate({"sensitive_attributes": [{"name": "age", "threshold": 60}, {"name": "region"}],
                                   "bounds": {"DI": {"min": 0.8, "max": 1.25}, "DPPL": {"max_abs": 0.1}}})
FAIR = figures({"age": [facet("(60, 90]", DI=0.95, DPPL=0.01)],
                "region": [facet("north", DI=1.1, DPPL=-0.02), facet("south", DI=0.9, DPPL=0.02)]})
WINNER = logic.PromotionDecision(True, 0.83, 0.80, "validation:auc=0.8300 (champion 0.8000), both on the same 400 "
                                                   "validation rows")


def test_figures_inside_the_bounds_leave_the_decision_as_it_was():
    assert logic.judge_bias(WINNER, FAIR, BOUNDED) == WINNER


def test_a_disparate_impact_below_its_minimum_keeps_the_champion_and_says_where():
    unfair = copy.deepcopy(FAIR)
    unfair["post_training_bias_metrics"]["facets"]["region"][1] = facet("south", DI=0.71, DPPL=0.05)
    decision = logic.judge_bias(WINNER, unfair, BOUNDED)
    assert not decision.promote and (decision.value, decision.champion_value) == (0.83, 0.80)
    assert decision.reason == ("bias: disparate impact (DI) of region=south is 0.71, below bias.bounds.DI.min 0.8; "
                               "not promoted (objective: validation:auc=0.8300 (champion 0.8000), both on the same 400 "
                               "validation rows)")


def test_every_missed_bound_is_named_above_below_and_either_way():
    unfair = figures({"age": [facet("(60, 90]", DI=1.4, DPPL=-0.12)], "region": [facet("north", DI=1.0, DPPL=0.0)]})
    reason = logic.judge_bias(WINNER, unfair, BOUNDED).reason
    assert "disparate impact (DI) of age in (60, 90] is 1.40, above bias.bounds.DI.max 1.25" in reason
    assert ("difference in positive proportions in predicted labels (DPPL) of age in (60, 90] is -0.12, further from "
            "0 than bias.bounds.DPPL.max_abs 0.1") in reason


def test_training_that_wrote_no_figures_cannot_show_the_bounds_hold():
    decision = logic.judge_bias(WINNER, None, BOUNDED)
    assert not decision.promote
    assert decision.reason.startswith("bias: the spec bounds DI, DPPL but the training job wrote no bias figures")


def test_a_figure_that_could_not_be_measured_or_an_attribute_left_out_keeps_the_champion():
    partial = figures({"region": [facet("north", DI=None, DPPL=0.0)]})
    reason = logic.judge_bias(WINNER, partial, BOUNDED).reason
    assert "bias: disparate impact (DI) of age was not measured" in reason
    assert "disparate impact (DI) of region=north could not be measured" in reason


def test_a_long_list_of_findings_is_cut_in_the_reason():
    many = figures({"age": [facet("(60, 90]", DI=0.1, DPPL=0.5)],
                    "region": [facet(name, DI=0.1, DPPL=0.5) for name in ("e", "n", "s", "w")]})
    reason = logic.judge_bias(WINNER, many, BOUNDED).reason
    assert reason.count("bias: ") == logic.MAX_BIAS_FINDINGS and "and 5 more (see the evaluation report)" in reason


def test_without_bounds_figures_are_reported_never_judged():
    reported = BiasSpec.model_validate({"sensitive_attributes": [{"name": "region"}]})
    assert logic.judge_bias(WINNER, None, reported) == WINNER
    assert logic.judge_bias(WINNER, figures({"region": [facet("n", DI=0.01)]}), reported) == WINNER


def test_the_runs_outcome_and_its_email_carry_the_bias_reason():
    unfair = figures({"age": [facet("(60, 90]", DI=0.95, DPPL=0.01)], "region": [facet("south", DI=0.71, DPPL=0.05)]})
    decision = logic.judge_bias(WINNER, unfair, BOUNDED)
    state = {"run": {"model": "churn", "execution_arn": "e", "trigger": "manual", "requested_by": "ds"},
             "evaluation": {"metrics": {"validation:auc": 0.83}, "objective": "validation:auc", "value": decision.value,
                            "champion_value": decision.champion_value, "promote": False, "reason": decision.reason}}
    summary = outcome("SUCCEEDED", RunState.parse(state), AUC).summary
    assert summary.startswith("kept champion: bias: disparate impact (DI) of region=south is 0.71, below "
                              "bias.bounds.DI.min 0.8")
    subject, body = logic.notification(state, "not promoted")
    assert subject == "[churn] retraining not promoted"
    assert "Evaluation: bias: disparate impact (DI) of region=south is 0.71, below bias.bounds.DI.min 0.8" in body


def test_a_sensitive_column_outside_the_features_must_be_in_the_data():
    spec = churn_with({"sensitive_attributes": [{"name": "gender", "values": ["f"]}]})
    header = ",".join([*spec.dataset.features, spec.dataset.label])
    report = logic.check_dataset([header + "\n"], spec.dataset, spec.task, spec.bias.column_names)
    assert len(report.problems) == 1 and report.problems[0].startswith("missing columns ['gender'] (the header has")
    with_gender = logic.check_dataset([header + ",gender\n"], spec.dataset, spec.task, spec.bias.column_names)
    assert not any("missing columns" in problem for problem in with_gender.problems)


@pytest.mark.parametrize("hostile", [
    {"post_training_bias_metrics": {"facets": {"age": [{"value_or_threshold": 60, "metrics": [{"name": "DI", "value": 10 ** 400}]}]}}},
    {"post_training_bias_metrics": {"facets": ["not", "a", "mapping"]}},
    {"post_training_bias_metrics": {"facets": {"age": "text", "region": [7, None, {"metrics": "x"}]}}},
    {"post_training_bias_metrics": "text"},
])
def test_training_output_of_any_shape_keeps_the_champion_with_a_reason_never_a_crash(hostile):
    """evaluation.json is the training code's output: an integer too big for a float, a list for a mapping, text for a
    section are figures that could not be measured, not an exception that loses the run."""
    decision = logic.judge_bias(WINNER, hostile, BOUNDED)
    assert not decision.promote and "bias:" in decision.reason


def test_a_number_too_big_for_a_float_is_no_figure_in_the_approvers_summary():
    from lambdas.shared.evidence import finite_number

    assert finite_number(10 ** 400) is None and finite_number(float("nan")) is None and finite_number(True) is None
    assert finite_number(3) == 3.0

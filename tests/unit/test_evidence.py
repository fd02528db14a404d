"""A version's bias and attribution reports: the documents the registry attaches and the bounded summary the model
card and the approval page show, read from whatever the training job wrote."""

import json
import math

import pytest

from lambdas.shared import evidence
from tests.support.evidence import bias_analysis, explainability, with_evidence

REPORT = {"metrics": {"validation:auc": 0.81}}


def test_the_bias_analysis_is_attached_whole_and_in_its_pre_and_post_training_halves():
    documents = evidence.documents(with_evidence(REPORT))
    assert set(documents) == {"bias.json", "bias/pre_training.json", "bias/post_training.json", "explainability.json"}
    assert documents["bias.json"] == bias_analysis()
    assert set(documents["bias/pre_training.json"]) == {"version", "pre_training_bias_metrics"}
    assert set(documents["bias/post_training.json"]) == {"version", "post_training_bias_metrics"}


@pytest.mark.parametrize("report", [REPORT, {**REPORT, "bias": None, "explainability": None},
                                    {**REPORT, "bias": "text", "explainability": ["a"]}, {**REPORT, "bias": {}}])
def test_a_report_without_evidence_attaches_nothing_and_summarizes_to_none(report):
    assert evidence.documents(report) == {}
    assert evidence.summarize(report) is None


def test_each_group_carries_its_pre_and_post_training_metrics_and_disparate_impact_outside_the_band_is_flagged():
    summary = evidence.summarize(with_evidence(REPORT, north_di=0.7))
    north = summary.bias[0]  # groups outside their bounds first
    assert (north.facet, north.value, north.misses) == ("region", "north", ["DI"])
    assert north.metrics == {"CI": 0.12, "DPL": 0.08, "DI": 0.7, "DPPL": 0.11}
    assert [row.value for row in summary.flagged] == ["north"]
    assert summary.bias_rows_total == 3 and summary.bias_label == "churned"
    assert summary.metric_names == ["CI", "DPL", "DI", "DPPL"]
    assert summary.bounds_words == "DI 0.8 to 1.25"


@pytest.mark.parametrize("di, flagged", [(0.8, False), (1.25, False), (0.79, True), (1.3, True)])
def test_without_bounds_in_the_spec_disparate_impact_keeps_four_fifths_and_its_inverse(di, flagged):
    rows = evidence.summarize(with_evidence(REPORT, north_di=di)).bias
    assert next(row for row in rows if row.value == "north").flagged is flagged


class SpecBound:  # the shape of the spec's bias.bounds entries (pipelines.spec: min, max, max_abs)
    def __init__(self, min=None, max=None, max_abs=None):
        self.min, self.max, self.max_abs = min, max, max_abs


class SpecBias:
    def __init__(self, **bounds):
        self.bounds = bounds


def test_the_specs_bias_bounds_replace_the_default_band():
    bounds = evidence.bounds_of(SpecBias(DPPL=SpecBound(max_abs=0.1), CI=SpecBound(min=-0.2, max=0.2)))
    summary = evidence.summarize(with_evidence(REPORT, north_di=0.5), bounds)
    assert {(row.value, tuple(row.misses)) for row in summary.flagged} == {("north", ("DPPL",)), ("(60, 120]", ("CI",))}
    assert summary.bounds_words == "CI -0.2 to 0.2; DPPL within ±0.1"  # DI 0.5 is no longer judged
    assert evidence.bounds_of(None) == evidence.bounds_of(SpecBias()) == evidence.DEFAULT_BOUNDS


def test_a_group_without_the_bounded_figure_is_not_marked():
    bias = bias_analysis()
    del bias["post_training_bias_metrics"]
    assert evidence.summarize({"bias": bias}).flagged == []


def test_the_top_ten_features_by_absolute_importance_with_the_method_in_words():
    summary = evidence.summarize(with_evidence(REPORT))
    assert [a.feature for a in summary.attributions][:3] == ["tenure_months", "support_calls", "monthly_charges"]
    assert len(summary.attributions) == 10 and summary.features_total == 12
    assert summary.attributions[0].deviation == 0.004
    assert summary.attribution_method == "permutation importance (metric validation:auc, repeats 5, rows 2000, seed 7)"


def test_values_that_are_not_finite_numbers_are_left_out_and_strange_shapes_do_not_fail():
    bias = {"version": "1.0", "pre_training_bias_metrics": {"facets": {
        "region": [{"value_or_threshold": "north", "metrics": [{"name": "CI", "value": math.nan},
                                                               {"name": "DPL", "value": True}, "junk", {"value": 1}]},
                   "junk"], "age": "junk"}}, "post_training_bias_metrics": ["junk"]}
    explained = explainability({"a": math.inf, "b": "0.5", "c": 0.2})
    summary = evidence.summarize({"bias": bias, "explainability": explained})
    assert [(row.facet, row.metrics) for row in summary.bias] == [("region", {"CI": None, "DPL": None})]
    assert [(a.feature, a.importance) for a in summary.attributions] == [("c", 0.2)]


def test_the_summary_is_bounded_whatever_the_report_holds():
    facets = {f"f{i}" * 50: [{"value_or_threshold": "v" * 500, "metrics": [
        {"name": f"M{j}", "value": 0.5} for j in range(40)]}] for i in range(200)}
    bias = {"version": "1.0", "post_training_bias_metrics": {"label": "y" * 999, "facets": facets}}
    summary = evidence.summarize({"bias": bias, "explainability": explainability({f"x{i}": i for i in range(5000)})})
    assert len(summary.bias) == evidence.MAX_BIAS_ROWS and summary.bias_rows_total == 200
    assert all(len(row.metrics) <= evidence.MAX_METRICS_PER_ROW and len(row.facet) <= evidence.MAX_TEXT
               and len(row.value) <= evidence.MAX_TEXT for row in summary.bias)
    assert len(summary.attributions) == 10 and len(summary.bias_label) <= evidence.MAX_TEXT
    assert len(summary.model_dump_json()) < 40_000  # travels in the run's state and the approval record


def test_model_metrics_attach_only_the_reports_a_version_has():
    assert evidence.model_metrics("s3://b/e.json") == {
        "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/e.json"}}}
    full = evidence.model_metrics("s3://b/e.json", "s3://b/bias.json", "s3://b/pre.json", "", "s3://b/x.json")
    assert full["Bias"] == {"Report": {"ContentType": "application/json", "S3Uri": "s3://b/bias.json"},
                            "PreTrainingReport": {"ContentType": "application/json", "S3Uri": "s3://b/pre.json"}}
    assert full["Explainability"] == {"Report": {"ContentType": "application/json", "S3Uri": "s3://b/x.json"}}
    assert evidence.attached_reports({"ModelMetrics": full}) == {
        "bias": "s3://b/bias.json", "bias_pre_training": "s3://b/pre.json", "explainability": "s3://b/x.json"}


def test_the_card_summary_reads_the_attached_content_and_nothing_else():
    content = {"intended_uses": {"intended_uses": "retention outreach", "risk_rating": "High",
                                 "explanations_for_risk_rating": "steers offers"},
               "additional_information": {"caveats_and_recommendations": "not for pricing"}}
    card = evidence.card_summary({"ModelCardContent": json.dumps(content), "ModelCardStatus": "PendingReview"})
    assert (card.risk_rating, card.intended_use, card.limitations, card.status) == (
        "High", "retention outreach", "not for pricing", "PendingReview")
    for absent in (None, {}, {"ModelCardContent": "not json"}, {"ModelCardContent": "[1]"}):
        assert evidence.card_summary(absent) is None


def test_clarifys_shap_values_are_attributions_too():
    """A kernel_shap (Clarify) or tree_shap (the model kit's XGBoost) report alone still shows its top features."""
    from lambdas.shared.evidence import attributions

    explained = {"version": "1.0", "explanations": {"kernel_shap": {"label0": {
        "global_shap_values": {"tenure": 0.4, "charges": -0.7, "age": 0.01}, "expected_value": 0.2}}}}
    found, method, scored = attributions(explained)
    assert [a.feature for a in found] == ["charges", "tenure", "age"] and scored == 3 and method == "kernel shap"

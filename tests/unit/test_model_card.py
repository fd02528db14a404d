"""The model card every registered version carries: its content from the spec, the run and the evidence, held to
the model package model card schema's limits whatever the training job's output holds."""

import json
import math

import pytest

from lambdas.pipeline import model_card
from lambdas.shared import evidence
from lambdas.shared.run_state import RunState
from pipelines.spec import GovernanceSpec, SpecError, load_spec
from tests.conftest import REPO_ROOT
from tests.support.evidence import with_evidence

SPEC = load_spec(REPO_ROOT / "pipelines/churn/model.yaml")
RELEASE = "s3://bucket/releases/churn/" + "a" * 64 + "/model.tar.gz"


def state(**evaluation) -> RunState:
    return RunState.parse({
        "run": {"model": "churn", "git_commit": "0d3b10e", "requested_by": "ds@example.com", "trigger": "manual",
                "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:run-1",
                "hyperparameters": {"epochs": "4", "learning_rate": "0.003", "sagemaker_program": '"train.py"'}},
        "validation": {"dataset_uri": "s3://bucket/datasets/churn/train.csv", "version_id": "v7", "sha256": "f" * 64,
                       "rows": 2000, "snapshot_uri": "s3://bucket/runs/churn/run-1/data/train.csv"},
        "training": {"job_name": "job", "job_arn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/job",
                     "image_uri": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5"},
        "evaluation": {"metrics": {"validation:auc": 0.81, "validation:f1": 0.6}, "objective": "validation:auc",
                       "value": 0.81, "promote": True, "reason": "beats the champion",
                       "champion_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-dev/1",
                       "champion_metrics": {"validation:auc": 0.78}, "bias_report_uri": "s3://bucket/runs/churn/run-1/bias.json",
                       **evaluation}})


EVIDENCE = evidence.summarize(with_evidence({}))


def card(run_state: RunState | None = None, found=EVIDENCE, spec=SPEC) -> dict:
    return model_card.content(spec, run_state or state(), found, [RELEASE])


def test_the_card_carries_the_specs_intended_use_risk_rating_and_limits():
    content = card()
    uses, more = content["intended_uses"], content["additional_information"]
    assert uses["risk_rating"] == "Medium" and uses["intended_uses"] == SPEC.governance.intended_use
    assert uses["explanations_for_risk_rating"] == SPEC.governance.risk_explanation
    assert uses["purpose_of_model"] == SPEC.description
    assert more["caveats_and_recommendations"] == SPEC.governance.limitations
    assert more["ethical_considerations"] == SPEC.governance.ethical_considerations


def test_the_model_overview_holds_only_what_a_package_card_allows_and_the_lineage_is_in_custom_details():
    content = card()
    assert set(content["model_overview"]) == {"model_creator", "model_artifact"}
    assert content["model_overview"]["model_artifact"] == [RELEASE]
    assert content["additional_information"]["custom_details"] | {} == {
        "model": "churn", "task": "binary", "git_commit": "0d3b10e", "framework": "pytorch 2.5",
        "execution": "arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:run-1",
        "dataset_version": "v7", "dataset_sha256": "f" * 64, "bias_report": "s3://bucket/runs/churn/run-1/bias.json"}


def test_training_details_name_the_job_data_objective_hyperparameters_and_metrics():
    details = card()["training_details"]
    assert details["objective_function"]["function"] == {"function": "Maximize", "facet": "validation:auc",
                                                         "condition": "minimum 0.75"}
    job = details["training_job_details"]
    assert job["training_datasets"] == ["s3://bucket/datasets/churn/train.csv"]
    assert job["hyper_parameters"] == [{"name": "epochs", "value": "4"}, {"name": "learning_rate", "value": "0.003"}]
    assert {"name": "validation:auc", "value": 0.81} in job["training_metrics"]
    assert "2,000 rows, dataset version v7" in details["training_observations"]


def test_evaluation_details_set_the_candidate_beside_the_champion_and_summarize_bias_and_attributions():
    details = {d["name"]: d for d in card()["evaluation_details"]}
    assert set(details) == {"validation against the champion", "bias", "feature attributions"}
    groups = {g["name"]: g for g in details["validation against the champion"]["metric_groups"]}
    assert {"name": "validation:auc", "type": "number", "value": 0.78} in groups["champion"]["metric_data"]
    assert "region=north" in details["bias"]["evaluation_observation"]  # the flagged group
    bias_groups = {g["name"]: g["metric_data"] for g in details["bias"]["metric_groups"]}
    assert {"name": "DI", "type": "number", "value": 0.7} in bias_groups["region=north"]
    top = details["feature attributions"]["metric_groups"][0]["metric_data"]
    assert top[0]["name"] == "tenure_months" and len(top) == 10


def test_a_version_without_evidence_gets_a_card_without_those_sections():
    content = card(found=None)
    assert [d["name"] for d in content["evaluation_details"]] == ["validation against the champion"]
    model_card.check(content)


def test_a_spec_without_governance_rates_the_risk_unknown_and_leaves_the_texts_out():
    plain = SPEC.model_copy(update={"governance": GovernanceSpec()})
    content = card(spec=plain)
    assert content["intended_uses"]["risk_rating"] == "Unknown"
    assert "intended_uses" not in content["intended_uses"] and "caveats_and_recommendations" not in \
        content["additional_information"]
    model_card.check(content)


@pytest.mark.parametrize("governance", [{"risk_rating": "Severe"}, {"limitations": "x" * 2049},
                                        {"intended_use": "a\nfake line"}])
def test_the_spec_refuses_a_rating_the_card_does_not_know_and_texts_the_card_cannot_hold(governance):
    with pytest.raises(SpecError):
        load_spec(REPO_ROOT / "pipelines/churn/model.yaml", {"governance": governance})


def test_whatever_the_training_output_holds_the_card_fits_the_schema_and_100000_characters():
    hostile = state(metrics={f"metric-{i}-" + "m" * 400: (math.nan if i % 7 == 0 else i / 3) for i in range(300)},
                    champion_metrics={f"c{i}" + "c" * 300: "text " * 50 for i in range(300)}, reason="r" * 10_000)
    hostile.run.hyperparameters.update({f"h{i}" + "h" * 300: json.dumps("v" * 400) for i in range(150)})
    hostile.run.hyperparameters["empty"] = '""'
    facets = {f"f{i}" * 40: [{"value_or_threshold": "v" * 300, "metrics": [
        {"name": f"M{j}" * 30, "value": 1.0} for j in range(8)]}] for i in range(100)}
    found = evidence.summarize({"bias": {"post_training_bias_metrics": {"facets": facets}}})
    content = card(hostile, found)
    text = model_card.serialized(content)
    assert len(text) <= model_card.CARD_MAX_CHARS
    model_card.check(json.loads(text))
    assert {"name": "empty", "value": "-"} in content["training_details"]["training_job_details"]["hyper_parameters"]


@pytest.mark.parametrize("change, path", [
    (lambda c: c["model_overview"].update(model_name="churn"), "model_overview.model_name"),
    (lambda c: c["intended_uses"].update(risk_rating="Severe"), "intended_uses.risk_rating"),
    (lambda c: c["intended_uses"].update(intended_uses="x" * 2049), "intended_uses.intended_uses"),
    (lambda c: c["additional_information"]["custom_details"].update({"bad-key": "x"}), "bad-key"),
    (lambda c: c["evaluation_details"][0].update(name=""), "evaluation_details[].name"),
    (lambda c: c["model_overview"].update(model_artifact=["s3://a"] * 16), "model_overview.model_artifact"),
    (lambda c: c["evaluation_details"][0]["metric_groups"][0]["metric_data"].append(
        {"name": "m", "type": "string", "value": "v" * 64}), "metric_data[].value"),
])
def test_a_card_that_breaks_the_schema_is_refused_naming_where(change, path):
    content = card()
    change(content)
    with pytest.raises(model_card.CardInvalid, match=path.replace("[", r"\[").replace("]", r"\]")):
        model_card.serialized(content)


def test_the_registered_card_waits_for_the_versions_review():
    registered = model_card.registered(card())
    assert registered["ModelCardStatus"] == "PendingReview"
    assert json.loads(registered["ModelCardContent"]) == card()

"""Ground truth judges the served model, offline and under enforced IAM (`mlops local up --scenario quality`): the
data scientist puts labels for served traffic with `mlops labels put`'s upload, the control plane's quality check
judges each window as the model's schedule invokes it, a window of the world as trained stays quiet, and a world
whose right answers moved (while the inputs look the same) is found and starts run 2. churn (binary) and houses
(regression) at the same time, on one control plane."""

import json

import pytest

from pipelines.local.lifecycle import LocalLifecycle
from pipelines.local.quality_scenario import REQUESTS, ROWS_PER_REQUEST

pytestmark = pytest.mark.slow
QUIET = {"within_tolerance", "not_significant"}


def registered_evidence(observed: dict):
    """While the emulation is up: what each model's version 1 carries in the registry."""
    def observe(lifecycle: LocalLifecycle) -> None:
        sagemaker = lifecycle._aws("sagemaker")
        for model in ("churn", "houses"):
            arn = f"arn:aws:sagemaker:{lifecycle.region}:{lifecycle.account}:model-package/{model}-local/1"
            observed[model] = sagemaker.describe_model_package(ModelPackageName=arn)
    return observe


@pytest.fixture(scope="module")
def observed() -> dict:
    return {}


@pytest.fixture(scope="module")
def quality(tmp_path_factory, observed):
    return LocalLifecycle("churn", tmp_path_factory.mktemp("local"), rows=3000, say=lambda line: None,
                          alongside=["houses"], scenario="quality").run(then=registered_evidence(observed))


def each_model(result):
    return {"churn": result, **result.alongside}


def test_the_labels_were_put_by_the_data_scientist_under_their_models_prefix(quality):
    for model, result in each_model(quality).items():
        first, second = result.labels
        assert first["accepted"] == second["accepted"] == REQUESTS * ROWS_PER_REQUEST
        assert first["malformed"] == first["duplicate"] == 0
        assert f"/ground-truth/{model}/" in first["location"]


def test_a_window_of_the_world_as_trained_stays_quiet(quality):
    for model, result in each_model(quality).items():
        clean = result.quality[0]
        assert clean["decision"] in QUIET, (model, clean["reason"])
        assert clean["execution_arn"] is None and not clean["retrain"]
        assert clean["labels"]["joined"] >= 200, model  # the sampled captures (20%) were labelled
        assert clean["labels"]["unknown"] == REQUESTS * ROWS_PER_REQUEST - clean["labels"]["joined"], model


def test_a_changed_world_is_found_and_starts_run_two_through_the_quality_trigger(quality):
    for model, result in each_model(quality).items():
        changed = result.quality[1]
        assert changed["decision"] == "drop" and changed["retrain"], (model, changed["reason"])
        assert f":execution:{model}-local-retraining:quality-" in changed["execution_arn"]
        second = result.runs[-1]
        assert second["input"]["trigger"] == "quality" and second["input"]["requested_by"] == "quality-hook"
        assert "dropped" in second["input"]["reason"]


def test_the_quality_page_shows_both_checks_against_the_baseline(quality):
    page = open(quality.quality_report).read()  # the second check's page: its window and the one before
    assert "<svg" in page and "validation:auc" in page
    assert "drop" in page and ("within tolerance" in page or "not significant" in page)


def test_each_registered_version_carries_its_model_card_bias_and_attribution_reports(quality, observed):
    for model in ("churn", "houses"):
        package = observed[model]
        card = json.loads(package["ModelCard"]["ModelCardContent"])
        assert package["ModelCard"]["ModelCardStatus"] == "Approved", model  # approved with the version
        assert card["intended_uses"]["risk_rating"] in ("High", "Medium", "Low", "Unknown"), model
        metrics = package["ModelMetrics"]
        assert metrics["Bias"]["PreTrainingReport"]["S3Uri"].endswith(".json"), model
        assert metrics["Bias"]["PostTrainingReport"]["S3Uri"].endswith(".json"), model
        assert metrics["Explainability"]["Report"]["S3Uri"].endswith("explainability.json"), model

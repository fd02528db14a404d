"""The challenger is compared with the champion re-scored on the same validation rows, never with the number the
champion scored on its own (older) data."""

import json

from lambdas.pipeline.logic import champion_manifest, decide_promotion, evaluate_challenger, lineage, pin_champion
from pipelines.spec import ObjectiveSpec

RMSE = ObjectiveSpec(metric="validation:rmse", regex="validation:rmse=([0-9.]+)", direction="minimize",
                     champion_margin=0.5)
BUCKET, ARN = "mlops-dev-artifacts", "arn:aws:sagemaker:us-east-1:1:model-package/houses-dev/1"
PACKAGE = {"ModelPackageArn": ARN, "ModelPackageVersion": 1,
           "InferenceSpecification": {"Containers": [{"ModelDataUrl": f"s3://{BUCKET}/releases/houses/{'a' * 64}/model.tar.gz"}]},
           "CustomerMetadataProperties": {"metrics": json.dumps({"validation:rmse": 25.89})}}


def report(challenger: float, champion: float | None = None, error: str | None = None) -> dict:
    scored = {"present": True, "model_package_arn": ARN, "metrics": None if champion is None else {"validation:rmse": champion},
              "error": error, "rows": 400}
    return {"metrics": {"validation:rmse": challenger}, "champion": scored}


def test_the_issue_case_a_challenger_better_on_the_same_data_wins_though_the_old_number_was_lower():
    # Recorded on its own data the champion had 25.89; re-scored on the shifted data it has 31.2.
    decision = evaluate_challenger(report(27.74, champion=31.2), RMSE, pin_champion(PACKAGE, BUCKET, "houses"))
    assert decision.promote and decision.champion_value == 31.2
    assert "both on the same 400 validation rows" in decision.reason


def test_lower_is_better_with_the_margin():
    pinned = pin_champion(PACKAGE, BUCKET, "houses")
    assert not evaluate_challenger(report(30.9, champion=31.2), RMSE, pinned).promote  # 0.3 better, margin 0.5
    assert evaluate_challenger(report(30.6, champion=31.2), RMSE, pinned).promote


def test_a_champion_that_could_not_be_rescored_is_not_replaced_by_its_old_number():
    decision = evaluate_challenger(report(27.74, error="KeyError: 'garage_spaces'"), RMSE,
                                   pin_champion(PACKAGE, BUCKET, "houses"))
    assert not decision.promote and decision.champion_value is None
    assert "could not be re-scored on this run's validation rows (KeyError: 'garage_spaces')" in decision.reason


def test_scores_of_another_champion_than_the_pinned_one_are_not_used():
    scored = report(27.74, champion=40.0)
    scored["champion"]["model_package_arn"] = "arn:aws:sagemaker:us-east-1:1:model-package/houses-dev/9"
    assert not evaluate_challenger(scored, RMSE, pin_champion(PACKAGE, BUCKET, "houses")).promote


def test_without_a_champion_the_challenger_only_needs_the_spec_threshold():
    decision = evaluate_challenger({"metrics": {"validation:rmse": 27.7}, "champion": {"present": False}}, RMSE,
                                   pin_champion(None, BUCKET, "houses"))
    assert decision.promote and "no approved champion yet" in decision.reason


def test_the_champion_channel_lists_the_descriptor_and_the_artifact_from_one_bucket():
    pinned = pin_champion(PACKAGE, BUCKET, "houses")
    assert pinned["recorded_metrics"] == {"validation:rmse": 25.89}
    assert champion_manifest(BUCKET, "runs/houses/r2/champion/champion.json", pinned) == [
        {"prefix": f"s3://{BUCKET}/"}, "runs/houses/r2/champion/champion.json", f"releases/houses/{'a' * 64}/model.tar.gz"]
    assert champion_manifest(BUCKET, "runs/houses/r1/champion/champion.json", pin_champion(None, BUCKET, "houses")) == [
        {"prefix": f"s3://{BUCKET}/"}, "runs/houses/r1/champion/champion.json"]


def test_an_artifact_outside_the_models_prefix_is_not_handed_to_the_training_job():
    foreign = {**PACKAGE, "InferenceSpecification": {"Containers": [{"ModelDataUrl": "s3://other/models/x.tar.gz"}]}}
    pinned = pin_champion(foreign, BUCKET, "houses")
    assert pinned["artifact"] is None and "is not under s3://mlops-dev-artifacts/releases/houses/" in pinned["reason"]
    assert len(champion_manifest(BUCKET, "runs/houses/r/champion/champion.json", pinned)) == 2


def test_lineage_records_both_numbers_of_the_comparison():
    evaluation = {"metrics": {"validation:rmse": 27.7412345678}, "objective": "validation:rmse", "value": 27.7412345678,
                  "champion_value": 31.2, "champion_arn": ARN}
    state = {"run": {"git_commit": "abc1234", "execution_arn": "e", "trigger": "drift", "requested_by": "drift-hook",
                     "hyperparameters": {"eta": "0.1"}},
             "validation": {"dataset_uri": "s3://b/k", "version_id": "v", "sha256": "0" * 64, "rows": 2000},
             "training": {"job_arn": "j"}, "evaluation": evaluation}
    recorded = lineage(state)
    assert (recorded["objective"], recorded["challenger_value"], recorded["champion_value_same_data"]) == (
        "validation:rmse", "27.7412", "31.2")
    assert recorded["champion_package_arn"] == ARN
    assert all(0 < len(value) <= 256 for value in recorded.values())  # CustomerMetadataProperties' limit


ACCURACY = ObjectiveSpec(metric="validation:accuracy", regex="validation:accuracy=([0-9.]+)", direction="maximize",
                         champion_margin=0.0)


def test_a_tie_with_the_champion_keeps_the_champion_and_asks_no_approver():
    decision = decide_promotion({"validation:accuracy": 0.9722}, ACCURACY, {"validation:accuracy": 0.9722})
    assert not decision.promote and "does not beat the champion's 0.9722" in decision.reason


def test_float_noise_around_a_tie_is_not_an_improvement():
    assert not decide_promotion({"validation:accuracy": 0.9 + 1e-12}, ACCURACY, {"validation:accuracy": 0.9}).promote
    assert not decide_promotion({"validation:rmse": 31.2 - 1e-12}, RMSE.model_copy(update={"champion_margin": 0.0}),
                                {"validation:rmse": 31.2}).promote


def test_an_improvement_of_exactly_the_margin_keeps_the_champion():
    pinned = pin_champion(PACKAGE, BUCKET, "houses")
    assert not evaluate_challenger(report(30.7, champion=31.2), RMSE, pinned).promote  # 0.5 better, margin 0.5
    assert evaluate_challenger(report(30.69, champion=31.2), RMSE, pinned).promote


def test_any_strict_improvement_wins_with_a_zero_margin_and_the_first_run_needs_no_champion():
    assert decide_promotion({"validation:accuracy": 0.95}, ACCURACY, {"validation:accuracy": 0.94}).promote
    assert decide_promotion({"validation:accuracy": 0.95}, ACCURACY, None).promote


def test_the_scaffold_asks_a_classifier_for_a_real_improvement_over_the_champion():
    from pipelines.scaffold import render
    from pipelines.spec import parse_spec
    import yaml

    spec = parse_spec(yaml.safe_load(render("multiclass", "sklearn", "wine", "ml-lead@example.com")["model.yaml"]), "wine")
    assert spec.objective.champion_margin == 0.005
    assert not spec.objective.beats(0.9722, 0.9722) and not spec.objective.beats(0.975, 0.9722)
    assert spec.objective.beats(1.0, 0.9722)  # one more of 36 validation rows right

"""Every registered version carries its model card and its bias and attribution reports: EvaluateAgainstChampion
keeps them beside evaluation.json, RegisterModelPackage attaches them (ModelCard, ModelMetrics.Bias / Explainability)."""

import io
import json
import tarfile

import boto3
import pytest

from lambdas.pipeline import handlers
from tests.integration.conftest import BUCKET, DEPLOYED_COMMIT, SPEC, FakeContext, task_event
from tests.integration.test_pipeline_handlers import train
from tests.support.evidence import bias_analysis, explainability, judged_against_the_specs_bounds, with_evidence

CONTEXT = FakeContext()


@pytest.fixture
def trained_state(platform, tmp_path):
    return train(tmp_path, hyperparameters={"epochs": 4})


def write_evidence(state: dict, report_change) -> dict:
    """The job's output.tar.gz with its evaluation.json changed as training code with the bias and attribution
    reports writes it (tests/support/evidence.py: fixtures of SageMaker Clarify's shapes)."""
    training = state["training"]
    key = f"{training['output_path'].split(f'{BUCKET}/')[1].rstrip('/')}/{training['job_name']}/output/output.tar.gz"
    s3 = boto3.client("s3")
    members, out = tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())), io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info in members.getmembers():
            body = members.extractfile(info).read() if info.isfile() else None
            if info.name.lstrip("./") == "evaluation.json":
                body = json.dumps(report_change(json.loads(body))).encode()
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    s3.put_object(Bucket=BUCKET, Key=key, Body=out.getvalue())
    return state


def test_every_registered_version_carries_its_model_card_and_its_bias_and_attribution_reports(trained_state):
    state = write_evidence(trained_state, with_evidence)
    state["evaluation"] = handlers.evaluate(task_event(state), CONTEXT)
    evaluation, s3 = state["evaluation"], boto3.client("s3")
    run = f"s3://{BUCKET}/runs/churn/run-1/"

    def stored(uri: str) -> dict:
        return json.loads(s3.get_object(Bucket=BUCKET, Key=uri.split(f"{BUCKET}/")[1])["Body"].read())

    assert evaluation["bias_report_uri"] == f"{run}bias.json" and stored(evaluation["bias_report_uri"]) == bias_analysis()
    assert stored(evaluation["pre_training_bias_uri"]) == {
        "version": "1.0", "pre_training_bias_metrics": bias_analysis()["pre_training_bias_metrics"]}
    assert stored(evaluation["explainability_report_uri"]) == explainability()
    assert stored(evaluation["model_card_uri"])["intended_uses"]["risk_rating"] == "Medium"
    assert judged_against_the_specs_bounds(evaluation["evidence"], SPEC)

    registered = handlers.register(task_event(state), CONTEXT)
    package = boto3.client("sagemaker").describe_model_package(ModelPackageName=registered["model_package_arn"])
    metrics = package["ModelMetrics"]
    assert metrics["Bias"] == {name: {"ContentType": "application/json", "S3Uri": evaluation[field]} for name, field in (
        ("Report", "bias_report_uri"), ("PreTrainingReport", "pre_training_bias_uri"),
        ("PostTrainingReport", "post_training_bias_uri"))}
    assert metrics["Explainability"]["Report"]["S3Uri"] == evaluation["explainability_report_uri"]
    assert metrics["ModelQuality"]["Statistics"]["S3Uri"] == evaluation["report_uri"]
    assert package["ModelCard"]["ModelCardStatus"] == "PendingReview"
    card = json.loads(package["ModelCard"]["ModelCardContent"])
    assert card["model_overview"]["model_artifact"] == [registered["artifact_uri"]]
    assert card["additional_information"]["custom_details"]["git_commit"] == DEPLOYED_COMMIT
    assert card["intended_uses"]["intended_uses"].startswith("Rank existing customers by churn risk")
    assert {d["name"] for d in card["evaluation_details"]} >= {"bias", "feature attributions"}


def test_a_version_whose_training_wrote_no_reports_carries_its_card_and_no_bias_or_explainability(trained_state):
    state = write_evidence(trained_state, lambda report: {k: v for k, v in report.items()
                                                         if k not in ("bias", "explainability")})
    state["evaluation"] = handlers.evaluate(task_event(state), CONTEXT)
    assert state["evaluation"]["evidence"] is None and state["evaluation"]["bias_report_uri"] == ""
    package = boto3.client("sagemaker").describe_model_package(
        ModelPackageName=handlers.register(task_event(state), CONTEXT)["model_package_arn"])
    assert set(package["ModelMetrics"]) == {"ModelQuality"}
    assert json.loads(package["ModelCard"]["ModelCardContent"])["intended_uses"]["risk_rating"] == "Medium"

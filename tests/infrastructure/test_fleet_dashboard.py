"""The environment's fleet dashboard (stacks/constructs/fleet_dashboard.py) in its control-plane stack: every model on
a fixed set of SEARCH widgets, so the body does not grow with the number of models."""

from __future__ import annotations

import json

import pytest

from stacks.app_builder import build_app
from tests.infrastructure.conftest import new_app, template_of
from tests.support.model_folders import copy_model_folder

DASHBOARD_WIDGET_LIMIT, DASHBOARD_BODY_LIMIT = 500, 1_000_000  # CloudWatch PutDashboard quotas


def dashboards(template) -> dict[str, dict]:
    """Dashboard name -> its body as synthesized (an Fn::Join around the region's Ref)."""
    return {resource["Properties"]["DashboardName"]: resource["Properties"]["DashboardBody"]
            for resource in template.find_resources("AWS::CloudWatch::Dashboard").values()}


def widgets(body: dict) -> list[dict]:
    text = "".join(part if isinstance(part, str) else "us-east-1" for part in body["Fn::Join"][1])
    return json.loads(text)["widgets"]


def searches(body: dict) -> dict[str, str]:
    """Graph title -> its SEARCH expression."""
    return {widget["properties"]["title"]: widget["properties"]["metrics"][0][0]["expression"]
            for widget in widgets(body) if widget["type"] == "metric"}


def fleet_body(tmp_path, models: int) -> dict:
    root = tmp_path / f"{models}-models"
    root.mkdir()
    for index in range(models):
        copy_model_folder(root, f"model-{chr(ord('a') + index)}")
    app = build_app(new_app(env="dev"), models_dir=root)
    return dashboards(template_of(app, "mlops-dev-control"))["mlops-dev-fleet"]


def test_the_control_plane_has_one_fleet_dashboard_of_searches_over_serving_runs_drift_approvals_and_quality(dev_app):
    found = dashboards(template_of(dev_app, "mlops-dev-control"))
    assert list(found) == ["mlops-dev-fleet"]
    expressions = searches(found["mlops-dev-fleet"])
    assert expressions == {
        "Invocations by endpoint": "SEARCH('{AWS/SageMaker,EndpointName,VariantName} MetricName=\"Invocations\" AND "
                                   "EndpointName=dev AND VariantName=\"AllTraffic\"', 'Sum', 300)",
        "5xx errors by endpoint": "SEARCH('{AWS/SageMaker,EndpointName,VariantName} MetricName=\"Invocation5XXErrors\" "
                                  "AND EndpointName=dev AND VariantName=\"AllTraffic\"', 'Sum', 300)",
        "Failed retraining runs by state machine": "SEARCH('{AWS/States,StateMachineArn} MetricName=\"ExecutionsFailed\" "
                                                   "AND StateMachineArn=retraining AND StateMachineArn=dev', 'Sum', 3600)",
        "Drift: drifted features by model": "SEARCH('Namespace=\"MLOps\" (MetricName=\"DriftedFeatures\") environment=\"dev\"', 'Maximum', 3600)",
        "Drift: PSI by model and feature": "SEARCH('Namespace=\"MLOps\" (MetricName=\"FeaturePSI\") environment=\"dev\"', 'Maximum', 3600)",
        "Approvals requested, approved, rejected": "SEARCH('Namespace=\"MLOps\" (MetricName=\"ApprovalsRequested\" OR "
                                                   "MetricName=\"ApprovalsApproved\" OR MetricName=\"ApprovalsRejected\")', "
                                                   "'Sum', 3600)",
        "Quality: objective on labelled traffic by model": "SEARCH('Namespace=\"MLOps\" (MetricName=\"QualityObjective\") environment=\"dev\"', "
                                                           "'Average', 3600)",
        "Quality: drops by model": "SEARCH('Namespace=\"MLOps\" (MetricName=\"QualityDrop\") environment=\"dev\"', 'Sum', 3600)",
        "Quality: labels joined by model": "SEARCH('Namespace=\"MLOps\" (MetricName=\"LabelsJoined\") environment=\"dev\"', 'Sum', 3600)"}
    assert not any(model in json.dumps(found) for model in ("churn", "houses"))  # the searches find the models


@pytest.mark.slow
def test_the_fleet_dashboard_does_not_grow_with_the_number_of_models(tmp_path):
    one, six = fleet_body(tmp_path, 1), fleet_body(tmp_path, 6)
    assert one == six
    assert len(widgets(one)) <= DASHBOARD_WIDGET_LIMIT // 50 and len(json.dumps(one)) < DASHBOARD_BODY_LIMIT // 100

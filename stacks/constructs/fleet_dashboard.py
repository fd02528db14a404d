"""One CloudWatch dashboard per environment, `mlops-<env>-fleet`: every model on the same few widgets.

Each widget is a SEARCH expression (CloudWatch user guide, "Using search expressions in graphs"): the metrics of
models deployed after this dashboard appear without a redeploy, and the body stays the same size whatever the number
of models (a dashboard holds at most 500 widgets and a 1 MB body). A model's own page is ModelDashboard
(stacks/constructs/endpoints.py). A search returns at most 500 time series per widget.
"""

from __future__ import annotations

from aws_cdk import Duration, aws_cloudwatch as cloudwatch
from constructs import Construct

from pipelines import naming
from lambdas.endpoint.logic import VARIANT

PLATFORM_NAMESPACE = "MLOps"  # lambdas/shared/observability.py: POWERTOOLS_METRICS_NAMESPACE's default
HOUR, FIVE_MINUTES = Duration.hours(1), Duration.minutes(5)


def fleet_dashboard_name(env_name: str) -> str:
    return f"{naming.PROJECT}-{env_name}-fleet"


def search(query: str, statistic: str, period: Duration) -> cloudwatch.MathExpression:
    """SEARCH('query', statistic, period): one line per metric found (its label: the dimensions that differ)."""
    return cloudwatch.MathExpression(expression=f"SEARCH('{query}', '{statistic}', {int(period.to_seconds())})",
                                     label="", period=period)


class FleetDashboard(Construct):
    """Serving (invocations and 5xx by endpoint), runs (failed executions of the environment's retraining machines),
    drift (drifted features by model, PSI by model and feature), approvals (requested, approved, rejected) and
    quality (the objective on labelled traffic, drops, labels joined: what the scheduled quality check publishes,
    lambdas/quality/handler.py) of every model of the environment. Endpoint and machine names carry the environment (<model>-<env>-<stage>,
    <model>-<env>-retraining): the searches match that token."""

    def __init__(self, scope: Construct, construct_id: str, *, env_name: str) -> None:
        super().__init__(scope, construct_id)
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=fleet_dashboard_name(env_name))
        self.dashboard.add_widgets(cloudwatch.TextWidget(width=24, height=2, markdown=(
            f"# {env_name}: every model\n`mlops fleet --env {env_name}` lists each model with what needs a person; "
            f"a model's own page is the dashboard `{naming.PROJECT}-{env_name}-<model>`, its quality checks "
            f"`mlops quality MODEL --env {env_name}`.")))
        self.dashboard.add_widgets(
            graph("Invocations by endpoint", search(endpoints(env_name, "Invocations"), "Sum", FIVE_MINUTES)),
            graph("5xx errors by endpoint", search(endpoints(env_name, "Invocation5XXErrors"), "Sum", FIVE_MINUTES)),
            graph("Failed retraining runs by state machine", search(
                f'{{AWS/States,StateMachineArn}} MetricName="ExecutionsFailed" AND StateMachineArn=retraining AND '
                f"StateMachineArn={env_name}", "Sum", HOUR)))
        self.dashboard.add_widgets(
            graph("Drift: drifted features by model",
                  search(of_environment(platform("DriftedFeatures"), env_name), "Maximum", HOUR)),
            graph("Drift: PSI by model and feature",
                  search(of_environment(platform("FeaturePSI"), env_name), "Maximum", HOUR)),
            graph("Approvals requested, approved, rejected", search(
                platform("ApprovalsRequested", "ApprovalsApproved", "ApprovalsRejected"), "Sum", HOUR)))
        self.dashboard.add_widgets(
            graph("Quality: objective on labelled traffic by model",
                  search(of_environment(platform("QualityObjective"), env_name), "Average", HOUR)),
            graph("Quality: drops by model", search(of_environment(platform("QualityDrop"), env_name), "Sum", HOUR)),
            graph("Quality: labels joined by model",
                  search(of_environment(platform("LabelsJoined"), env_name), "Sum", HOUR)))


def endpoints(env_name: str, metric: str) -> str:
    """The metric of the environment's endpoints (<model>-<env>-<stage>), their one variant."""
    return f'{{AWS/SageMaker,EndpointName,VariantName}} MetricName="{metric}" AND EndpointName={env_name} ' \
           f'AND VariantName="{VARIANT}"'


def platform(*metrics: str) -> str:
    """Metrics the platform's functions emit (any dimensions: model, feature, service)."""
    names = " OR ".join(f'MetricName="{metric}"' for metric in metrics)
    return f'Namespace="{PLATFORM_NAMESPACE}" ({names})'


def of_environment(query: str, env_name: str) -> str:
    """Only this environment's series (the drift and quality checks name their environment: environments may share an
    account)."""
    return f'{query} environment="{env_name}"'


def graph(title: str, expression: cloudwatch.MathExpression) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=[expression], width=8, height=6,
                                  legend_position=cloudwatch.LegendPosition.RIGHT)

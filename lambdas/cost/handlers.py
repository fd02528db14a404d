"""The control plane's cost-anomaly router: the environment's one anomaly monitor (a dimensional monitor on the
mlops:model cost allocation tag) publishes every anomaly to the environment's topic; this function sends each to its
model's notification topic, acting for that model (lambdas/shared/tenancy.py), when the impact reaches the model's
threshold. Anomalies no model owns go to the platform topic."""

from __future__ import annotations

from aws_lambda_powertools.utilities.parser import envelopes, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.cost import logic
from lambdas.cost.models import Anomaly
from lambdas.shared import dal, tenancy
from lambdas.shared.config import setting
from lambdas.shared.observability import bind, logger, metrics, tracer

PLATFORM_TOPIC_SETTING = "PLATFORM_TOPIC_ARN"


def route_anomaly(anomaly: Anomaly) -> logic.Routing:
    env = tenancy.environment_name()
    model = logic.model_of(anomaly.dimension_value)
    routing = logic.route(anomaly, None, None, env)  # no model: the platform's
    if model is not None:
        bind(model, anomaly.anomaly_id)
        try:
            with tenancy.acting_for(model) as record:
                routing = logic.route(anomaly, model, record, env)
                if routing.to == "model":
                    dal.publish(setting("NOTIFICATION_TOPIC_ARN"), *logic.message(anomaly, model, env, routing))
        except tenancy.ModelNotDeployed:
            routing = logic.route(anomaly, model, None, env)
    if routing.to == "platform":
        dal.publish(setting(PLATFORM_TOPIC_SETTING), *logic.message(anomaly, model, env, routing))
    logger.info("cost anomaly routed", extra={"anomaly_id": anomaly.anomaly_id, "to": routing.to, "reason": routing.reason})
    return routing


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> list[dict]:
    """An SNS delivery (one record); a message that is not an anomaly fails the invocation, and the failure queue
    keeps it with the error."""
    return [route_anomaly(anomaly).__dict__ for anomaly in parse(event=event, model=Anomaly, envelope=envelopes.SnsEnvelope)]

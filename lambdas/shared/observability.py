"""The one powertools setup every handler shares: structured logs keyed by model and execution."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "mlops")
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MLOps"), service=SERVICE)


def bind(model: str, execution_id: str | None = None) -> None:
    """Every following log line of this invocation carries the model and the execution id."""
    logger.append_keys(model=model, execution_id=execution_id or "-")
    metrics.add_dimension(name="model", value=model)

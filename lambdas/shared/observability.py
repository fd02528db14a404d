"""The one powertools setup every handler shares: structured logs keyed by model and execution."""

from __future__ import annotations

import functools
import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

# An invocation that counted nothing (a status check, a refused request) is normal: powertools' warning about it was
# a line in every such invocation's log and in the local mode's output.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "mlops")
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MLOps"), service=SERVICE)


def bind(model: str, execution_id: str | None = None) -> None:
    """Every following log line of this invocation carries the model and the execution id."""
    logger.append_keys(model=model, execution_id=execution_id or "-")
    metrics.dimension_set.pop("model", None)  # an earlier invocation's model, left when it flushed no metrics
    metrics.add_dimension(name="model", value=model)  # (powertools warns about overwriting a dimension otherwise)


def task_handler(model, bind_to):
    """The one decorator stack of every task handler: context logs, tracing, metrics flush, the parsed
    event, and the model/execution keys (bind_to(event) -> (model, execution id))."""
    from aws_lambda_powertools.utilities.parser import event_parser

    def decorate(function):
        @functools.wraps(function)
        def bound(event, context):
            bind(*bind_to(event))
            return function(event, context)

        parsed = event_parser(bound, model=model)
        return logger.inject_lambda_context(log_event=False)(tracer.capture_lambda_handler(metrics.log_metrics(parsed)))

    return decorate

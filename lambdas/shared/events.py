"""The event every Step Functions task handler receives, and the decorator that binds it to the logs."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import BaseModel

from lambdas.shared.config import model_spec
from lambdas.shared.observability import task_handler


class TaskEvent(BaseModel):
    """Every task gets the execution's identity and the whole state document."""

    execution_arn: str
    execution_name: str
    state: dict[str, Any]


def pipeline_task(model: type[TaskEvent] = TaskEvent):
    """task_handler keyed by this function's model and the execution name."""
    return task_handler(model, lambda event: (model_spec().name, event.execution_name))

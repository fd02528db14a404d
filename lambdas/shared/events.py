"""The event every Step Functions task handler receives, and the decorator that binds it to its model and logs."""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.parser import BaseModel

from lambdas.shared import tenancy
from lambdas.shared.config import model_spec
from lambdas.shared.observability import task_handler


class TaskEvent(BaseModel):
    """Every task gets the execution's identity and the whole state document."""

    execution_arn: str
    execution_name: str
    state: dict[str, Any]


def task_model(event: TaskEvent) -> str:
    """The model the task runs for: a control-plane function learns it from the execution that invoked it, a model's
    own function has its spec."""
    return tenancy.model_of_execution(event.execution_arn) if tenancy.in_control_plane() else model_spec().name


def pipeline_task(model: type[TaskEvent] = TaskEvent):
    """task_handler keyed by the task's model and the execution name; in the control plane, the handler runs acting
    for that model (lambdas/shared/tenancy.py)."""
    def decorate(function):
        @functools.wraps(function)
        def for_model(event: TaskEvent, context):
            if not tenancy.in_control_plane():
                return function(event, context)
            with tenancy.acting_for(task_model(event)):
                return function(event, context)

        return task_handler(model, lambda event: (task_model(event), event.execution_name))(for_model)

    return decorate

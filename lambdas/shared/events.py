"""The event every Step Functions task handler receives, and the decorator that binds it to its model and logs."""

from __future__ import annotations

import functools
from typing import Any

from datetime import datetime

from aws_lambda_powertools.utilities.parser import BaseModel
from pydantic import ConfigDict, Field

from lambdas.shared import tenancy
from lambdas.shared.config import model_spec
from lambdas.shared.observability import task_handler
from pipelines import naming


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


class ScheduledCheck(BaseModel):
    """A monitor schedule's input (the drift or the quality check; stacks/constructs/schedules.py): the model, and
    Scheduler's context attributes <aws.scheduler.scheduled-time> and <aws.scheduler.execution-id> (EventBridge
    Scheduler user guide, "Adding context attributes")."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=naming.MODEL_NAME_PATTERN)
    scheduled_time: datetime
    execution_id: str = Field(default="-", max_length=128)

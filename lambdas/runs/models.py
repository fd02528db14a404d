"""What callers of the runs API may send. Identity is never among it: it comes from the signed request."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lambdas.pipeline.logic import RunRequest  # noqa: F401  (POST /runs: the run-input fields a person may set)
from lambdas.shared.run_state import Outcome, RunView, StepView  # noqa: F401  (a run as the API shows it)


class DecisionRequest(BaseModel):
    """POST /approvals/{execution}. The approver is the caller's IAM principal, mapped through the spec."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=1000)

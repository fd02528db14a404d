"""What callers of the runs API may send. Identity is never among it: it comes from the signed request."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_GIT_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


class RunRequest(BaseModel):
    """POST /runs. The model is the stack's; who asks is the caller's IAM principal."""

    model_config = ConfigDict(extra="forbid")
    hyperparameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    reason: str | None = Field(default=None, max_length=2000)
    git_commit: str | None = None
    dataset_key: str | None = Field(default=None, max_length=1024)

    @field_validator("git_commit")
    @classmethod
    def _commit(cls, value: str | None) -> str | None:
        if value is not None and not _GIT_COMMIT.match(value):
            raise ValueError(f"'{value}' is not a git commit hash (7-40 hex characters)")
        return value

    @field_validator("dataset_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith(("/", "s3://")) or ".." in value):
            raise ValueError("dataset_key is a key inside the artifact bucket, e.g. datasets/churn/train.csv")
        return value


class DecisionRequest(BaseModel):
    """POST /approvals/{execution}. The approver is the caller's IAM principal, mapped through the spec."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=1000)


class RunView(BaseModel):
    """A run as the API shows it: no input, no history events, so never a task token."""

    name: str
    arn: str
    status: str
    started: str
    stopped: str | None = None
    current_step: str | None = None
    error: str | None = None
    cause: str | None = None

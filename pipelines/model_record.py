"""A model's record: what its stack deployed, for the control plane's functions that act for it.

The model stack writes it at deploy time as an SSM parameter (naming.model_record_parameter); a shared function that
learns a model's name from its event (a schedule's payload, an anomaly's tag value, an execution's input) reads the
record through the model's scoped session (lambdas/shared/tenancy.py) and runs with it as a per-model function runs
with its environment.

Why SSM Parameter Store: a native CloudFormation resource (no custom resource, so no function per model stack),
versioned by SSM on every deployment (GetParameterHistory shows what a model ran with and when), readable by one
IAM path per model (`parameter/mlops/<env>/_models/<model>`, named with the session tag's policy variable), free in
the Standard tier up to 4 KB (Intelligent-Tiering moves a larger record to Advanced, 8 KB, instead of failing the
deployment). S3 would need a deployment custom resource; DynamoDB one too, and has no history of its own.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipelines.spec import ModelSpec

RECORD_VERSION = 1
STANDARD_TIER_BYTES = 4096  # SSM PutParameter: Standard tier values up to 4 KB, Advanced up to 8 KB
ADVANCED_TIER_BYTES = 8192


class ModelRecord(BaseModel):
    """settings: the names and values a per-model function reads from its environment (lambdas/shared/config.py),
    MODEL_SPEC excepted: the spec is a field of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(default=RECORD_VERSION, description="The record format; a reader refuses a newer one")
    model: str
    env: str
    spec: ModelSpec
    settings: dict[str, str] = Field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The record as a per-model function's environment variables."""
        return {**self.settings, "MODEL_SPEC": self.spec.model_dump_json()}


def compact_body(record: ModelRecord) -> dict:
    """The record as JSON with its spec as written (the fields a model.yaml and cdk.json's overrides set; a reader
    fills the others back with their defaults), so a record fits SSM's free Standard tier (4 KB) as specs grow; the
    whole spec when that would not read back as the same spec."""
    body = record.model_dump(mode="json")
    written = record.spec.model_dump(mode="json", exclude_unset=True)
    if ModelSpec.model_validate(written) == record.spec:
        body["spec"] = written
    return body


class RecordError(ValueError):
    pass


def parse_record(text: str, *, model: str, env: str) -> ModelRecord:
    """The record of `model` in `env`, refused with the reason when it is not that model's or not one this code reads."""
    try:
        body: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecordError(f"the record of {model} in {env} is not JSON ({error}); fix: redeploy the model's stack") from None
    if isinstance(body, dict) and isinstance(body.get("version"), int) and body["version"] > RECORD_VERSION:
        raise RecordError(f"the record of {model} in {env} has format {body['version']}, newer than this control plane "
                          f"reads ({RECORD_VERSION}); fix: deploy the control plane stack before the model stacks")
    record = ModelRecord.model_validate(body)
    if (record.model, record.env) != (model, env):
        raise RecordError(f"the record at {model}'s parameter in {env} is {record.model}'s in {record.env}")
    return record

"""Physical names shared by the stacks, the handlers, the client and the local mode.

Names are derived, never configured, so a data scientist's client finds what `cdk deploy` made.
"""

from __future__ import annotations

PROJECT = "mlops"


def model_package_group(model: str, env: str) -> str:
    return f"{model}-{env}"


def state_machine(model: str, env: str) -> str:
    return f"{model}-{env}-retraining"


def endpoint(model: str, env: str, stage: str) -> str:
    """stage is 'staging' (smoke-tested first) or 'prod'."""
    return f"{model}-{env}-{stage}"


def audit_table(env: str) -> str:
    return f"{PROJECT}-{env}-audit"


def idempotency_table(env: str) -> str:
    return f"{PROJECT}-{env}-idempotency"


def artifact_bucket(env: str, account: str, region: str) -> str:
    return f"{PROJECT}-{env}-artifacts-{account}-{region}"


def approval_secret(model: str, env: str) -> str:
    return f"{PROJECT}/{env}/{model}/approval-signing-key"


def training_job(model: str, execution_name: str) -> str:
    # SageMaker job names: 63 characters, letters, digits and hyphens.
    return f"{model}-{execution_name}"[:63].rstrip("-")


def registry_stack(env: str) -> str:
    return f"{PROJECT}-{env}-registry"


def model_stack(model: str, env: str) -> str:
    return f"{PROJECT}-{env}-{model}"

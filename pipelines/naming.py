"""Physical names shared by the stacks, the handlers, the client and the local mode.

Names are derived, never configured, so a data scientist's client finds what `cdk deploy` made.
"""

from __future__ import annotations

import hashlib

PROJECT = "mlops"
# A model's name (pipelines/spec.py): it goes into stack, bucket prefix, role and session-tag values.
MODEL_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"
SAGEMAKER_NAME_LIMIT = 63


def sagemaker_name(*parts: str) -> str:
    """A SageMaker resource name (63 characters at most) that stays unique when it must be shortened:
    a plain cut could give two executions or two stages one name, and SageMaker refuses an existing name."""
    name = "-".join(part.strip("-") for part in parts if part)
    if len(name) <= SAGEMAKER_NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:SAGEMAKER_NAME_LIMIT - 9].rstrip('-')}-{digest}"


def model_package_group(model: str, env: str) -> str:
    return f"{model}-{env}"


def state_machine(model: str, env: str) -> str:
    return f"{model}-{env}-retraining"


def endpoint(model: str, env: str, stage: str) -> str:
    """The model's serving target for a stage ('prod' or 'staging'; an environment serves at most one,
    pipelines.promotion.serving_stage): its endpoint (hosting: dedicated) or its inference component on the
    environment's shared endpoint (hosting: shared); SageMaker keeps the two kinds of name apart."""
    return f"{model}-{env}-{stage}"


SMOKE = "smoke"
# The InferenceId of the smoke test's request (SageMaker records it in a shared endpoint's data capture): its rows are
# no model's traffic (lambdas/drift/split.py).
SMOKE_INFERENCE_ID = "mlops-smoke-"


def smoke_target(model: str, env: str, execution: str) -> str:
    """The endpoint (or inference component) a run creates to smoke-test its model, and deletes after the test."""
    return sagemaker_name(model, env, SMOKE, execution)


# The container variable that makes a model's responses name it (modelkit.serving IDENTITY_VARIABLE: the artifact's
# serving code imports nothing of the platform, so it keeps its own copy of the name).
MODEL_IDENTITY_VARIABLE = "MLOPS_MODEL"


def shared_endpoint(env: str) -> str:
    """The environment's endpoint whose instances host every shared-hosted model's inference components."""
    return f"{PROJECT}-{env}-shared"


def audit_table(env: str) -> str:
    return f"{PROJECT}-{env}-audit"


def idempotency_table(env: str) -> str:
    return f"{PROJECT}-{env}-idempotency"


def artifact_bucket(env: str, account: str, region: str) -> str:
    return f"{PROJECT}-{env}-artifacts-{account}-{region}"


# Released model artifacts: content-addressed and immutable (the artifact bucket's policy lets only the platform's
# release writers put them and nobody delete them; stacks/constructs/storage.py).
RELEASES = "releases"
DATASETS = "datasets"  # datasets/<model>/: a model's training data (pipelines.spec refuses a prefix outside it)
# The IAM path of the roles that may write releases (the register and promotion-import functions): the bucket
# policy names the path, so the roles need no names known to the registry stack.
RELEASE_WRITER_PATH = f"/{PROJECT}-release-writer/"


# Set on a package (CustomerMetadataProperties) by the run that released it, once the run succeeded: its smoke test
# passed and (where the environment serves) its serving target took it. In an environment that serves nothing it marks
# what was released there: an Approved package of a run stopped or timed out after approval is not.
RELEASED_BY_KEY = "released_by_run"

# The lineage keys (CustomerMetadataProperties) of the released artifact: its sha256 and its S3 version.
ARTIFACT_SHA256_KEY = "model_data_sha256"
ARTIFACT_VERSION_KEY = "model_data_version_id"


def release_key(model: str, sha256: str) -> str:
    """Where the artifact whose bytes hash to sha256 lives once registered: the key is derived from the bytes."""
    return f"{RELEASES}/{model}/{sha256}/model.tar.gz"


def model_role(model: str, env: str, purpose: str) -> str:
    """A role with a fixed name (other stacks, accounts or people name it): mlops-<env>-<model>-<purpose>."""
    return f"{PROJECT}-{env}-{model}-{purpose}"


def sagemaker_role_name(model: str, env: str) -> str:
    """The model's one SageMaker execution role (its training jobs and endpoints): the control plane's deploy task may
    pass it to SageMaker by this name (iam:PassRole on the session's model)."""
    return model_role(model, env, "sagemaker")


def approval_signing_secret(env: str) -> str:
    """The environment's approval-link signing key (the control plane's, stacks/constructs/approval.py)."""
    return f"{PROJECT}/{env}/approval-signing-key"


def approval_topic(model: str, env: str) -> str:
    """A model's approval emails: one subscription per approver, filtered on the approver attribute."""
    return f"{model}-{env}-approvals"


def training_job(model: str, execution_name: str) -> str:
    # SageMaker job names: 63 characters, letters, digits and hyphens.
    return sagemaker_name(model, execution_name)


def schedule(model: str, env: str, kind: str) -> str:
    """An EventBridge Scheduler schedule of a model (64 characters at most, unique in the account's default group)."""
    return sagemaker_name(PROJECT, env, model, kind)


def scheduler_role(env: str) -> str:
    return f"{PROJECT}-{env}-scheduler"


def failure_queue(model: str, env: str) -> str:
    """A model's queue of failed asynchronous invocations and undelivered schedules."""
    return f"{model}-{env}-async-failures"


def registry_stack(env: str) -> str:
    return f"{PROJECT}-{env}-registry"


def control_stack(env: str) -> str:
    """The environment's control plane: the functions every model of the environment shares (stacks/control_stack.py)."""
    return f"{PROJECT}-{env}-control"


def control_function(env: str, purpose: str) -> str:
    """A control-plane function other stacks invoke by name (a model's schedules): mlops-<env>-control-<purpose>."""
    return f"{control_stack(env)}-{purpose}"


# Model names a stack name of the environment already takes (mlops-<env>-<model> would collide).
RESERVED_MODEL_NAMES = ("registry", "control")


def notification_topic(model: str, env: str) -> str:
    return f"{model}-{env}-notifications"


def model_record_parameter(model: str, env: str) -> str:
    """The SSM parameter holding a model's record (pipelines/model_record.py): what the model stack deployed, read by
    the control plane's functions when they act for the model."""
    return f"{model_records_path(env)}{model}"


def model_records_path(env: str) -> str:
    """'_' is outside model names: no model's own parameters (/mlops/<env>/<model>/...) can share this path."""
    return f"/{PROJECT}/{env}/_models/"


def platform_topic(env: str) -> str:
    """What concerns the platform engineers of an environment rather than one model's owners."""
    return f"{PROJECT}-{env}-platform-notifications"


def cost_anomaly_topic(env: str) -> str:
    """Where the environment's Cost Anomaly Detection subscription publishes (the control plane routes each anomaly
    on to its model's topic)."""
    return f"{PROJECT}-{env}-cost-anomalies"


# The session tag a control-plane function's model-scoped session carries (its value: the model's name), and the
# policy variable the scoped roles' statements name resources with.
MODEL_TAG = "mlops:model"
MODEL_VARIABLE = "${aws:PrincipalTag/" + MODEL_TAG + "}"


def model_stack(model: str, env: str) -> str:
    return f"{PROJECT}-{env}-{model}"


TUNING_NAME_LIMIT = 32  # CreateHyperParameterTuningJob: HyperParameterTuningJobName is 1-32 characters


def tuning_prefix(model: str) -> str:
    """What every tuning job (and so every trial: '<tuning job>-NNN-<hash>') of a model is named with."""
    return model[:TUNING_NAME_LIMIT - 11].rstrip("-")


def tuning_job(model: str, execution_name: str) -> str:
    """A hyperparameter tuning job name (32 characters at most) unique per execution: the model prefix and a hash."""
    digest = hashlib.sha256(f"{model}/{execution_name}".encode()).hexdigest()[:10]
    return f"{tuning_prefix(model)}-{digest}"


def tracking_server(env: str) -> str:
    """The environment's MLflow tracking server (one per environment, shared by its models)."""
    return f"{PROJECT}-{env}"


# People (docs/identity.md): per environment, a role and a managed policy of each kind, shared by every model; the
# model a person's session acts on is its MODEL_TAG session tag, which the role's trust takes only from one of the
# IAM user's own tags below (a person working on several models holds several).
PERSON_KINDS = ("data-scientist", "approver", "platform-admin")
PERSON_MODEL_TAGS = (MODEL_TAG, f"{MODEL_TAG}-2", f"{MODEL_TAG}-3")
# The encryption context purpose of a runs API caller's proof of their model (lambdas/runs/proof.py).
RUNS_API_PROOF = "runs-api-caller"


def person_role(env: str, kind: str) -> str:
    """An environment's role for people of one kind (PERSON_KINDS): mlops-<env>-<kind>; its managed policy too."""
    return f"{PROJECT}-{env}-{kind}"


def env_runs_api_parameter(env: str) -> str:
    """The SSM parameter holding the URL of the environment's runs API ('_' is outside model names)."""
    return f"/{PROJECT}/{env}/_control/runs-api-url"


def environment_key_alias(env: str) -> str:
    """The environment's KMS key (stacks/registry_stack.py)."""
    return f"alias/{PROJECT}-{env}"

"""Which account plays which role (cdk.json's `mlops:delivery`), the names promotion shares across accounts, and
the spec a promotion stage runs with.

```json
"mlops:delivery": {
  "training": "dev",                     // trains and registers: the one source of every artifact
  "promotion": ["staging", "prod"],      // receive the approved artifact, in this order
  "tooling": "dev",                      // hosts the CDK pipeline (default: the training environment)
  "source": {"connection_arn": "arn:aws:codeconnections:...", "repository": "owner/repo", "branch": "main"}
}
```

Every cross-account name is derived here (roles, buses, buckets, groups), never looked up: a stack in one
account can name the exact principal or resource of another without a deployment-time lookup, and the
constructs on both sides agree by construction. docs/promotion.md explains the mechanism.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from pipelines import naming
from pipelines.spec import REPO_ROOT, EnvironmentSpec, ModelSpec, SpecError, _format_errors, _Strict, parse_environments

CONTEXT_KEY = "mlops:delivery"
EVENT_SOURCE = "mlops.promotion"
OFFERED = "Model Package Offered"
SHA256_KEY, VERSION_KEY = naming.ARTIFACT_SHA256_KEY, naming.ARTIFACT_VERSION_KEY
_CONNECTION = re.compile(r"^arn:aws(-[a-z]+)*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_CODECOMMIT = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]{1,255}$")


class ConnectionSource(_Strict):
    """A Git host (GitHub, GitLab, Bitbucket) through a CodeStar / CodeConnections connection of the tooling account."""

    connection_arn: str
    repository: str = Field(description="owner/name")
    branch: str = "main"

    @model_validator(mode="after")
    def _shape(self) -> ConnectionSource:
        if not _CONNECTION.match(self.connection_arn):
            raise ValueError(f"connection_arn '{self.connection_arn}' is not a CodeConnections ARN; fix: copy it from "
                             "the console (arn:aws:codeconnections:<region>:<account>:connection/<id>)")
        if not _REPOSITORY.match(self.repository):
            raise ValueError(f"repository '{self.repository}' is not owner/name; fix: e.g. example-org/mlops-platform")
        _check_branch(self.branch)
        return self


class CodeCommitSource(_Strict):
    """A CodeCommit repository of the tooling account."""

    codecommit_repository: str
    branch: str = "main"

    @model_validator(mode="after")
    def _shape(self) -> CodeCommitSource:
        if not _CODECOMMIT.match(self.codecommit_repository):
            raise ValueError(f"codecommit_repository '{self.codecommit_repository}' is not a repository name; "
                             "fix: letters, digits, '.', '_' or '-'")
        _check_branch(self.branch)
        return self


def _check_branch(branch: str) -> None:
    if not _BRANCH.match(branch) or ".." in branch:
        raise ValueError(f"branch '{branch}' is not a Git branch name; fix: e.g. main")


class DeliverySpec(_Strict):
    training: str = Field(description="The environment that trains and registers")
    promotion: list[str] = Field(default_factory=list, description="Environments that receive the artifact, in order")
    tooling: str | None = Field(default=None, description="The environment whose account hosts the CDK pipeline")
    source: ConnectionSource | CodeCommitSource | None = Field(default=None, description="The pipeline's Git source")

    @field_validator("promotion")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"promotion lists an environment twice ({value}); fix: list each stage once")
        return value

    @model_validator(mode="after")
    def _training_is_not_a_stage(self) -> DeliverySpec:
        if self.training in self.promotion:
            raise ValueError(f"'{self.training}' trains, so it cannot also receive promotions; fix: remove it from promotion")
        return self


class Delivery:
    """The validated roles with their environments' accounts and regions."""

    def __init__(self, spec: DeliverySpec, environments: dict[str, EnvironmentSpec]) -> None:
        self.spec, self.environments = spec, environments

    @property
    def order(self) -> list[str]:
        """training first, then each promotion stage."""
        return [self.spec.training, *self.spec.promotion]

    @property
    def tooling(self) -> EnvironmentSpec:
        return self.environments[self.spec.tooling or self.spec.training]

    def upstream(self, env: str) -> EnvironmentSpec | None:
        """The environment a promotion stage receives from (None for the training environment and strangers)."""
        order = self.order
        return self.environments[order[order.index(env) - 1]] if env in order[1:] else None

    def downstream(self, env: str) -> EnvironmentSpec | None:
        order = self.order
        return self.environments[order[order.index(env) + 1]] if env in order[:-1] else None

    def receives(self, env: str) -> bool:
        return self.upstream(env) is not None


def _validated(raw: Any, source: str) -> DeliverySpec:
    try:
        return DeliverySpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_errors(f"{source}: {CONTEXT_KEY}", exc)) from None


def named_environments(spec: DeliverySpec) -> list[str]:
    return [spec.training, *spec.promotion, *([spec.tooling] if spec.tooling else [])]


def parse_delivery(context: dict[str, Any], environments: list[EnvironmentSpec], source: str = "cdk.json") -> Delivery | None:
    """cdk.json's mlops:delivery against the environments; None when there is none (absent or {}). Every environment
    it names must exist; stages may be in other regions than the training environment (each grant names the region
    of the resource it is about)."""
    raw = context.get(CONTEXT_KEY)
    if not raw:
        return None
    spec, known = _validated(raw, source), {env.name: env for env in environments}
    unknown = sorted({name for name in named_environments(spec) if name not in known})
    if unknown:
        raise SpecError(f"{source}: {CONTEXT_KEY} names {unknown}, which are not in mlops:environments; "
                        f"fix: use {', '.join(known)}")
    return Delivery(spec, known)


def delivery_for_app(context: dict[str, Any], environments: list[EnvironmentSpec],
                     selected: list[str]) -> tuple[Delivery | None, str | None]:
    """The roles an app of the `selected` environments is built with, or None and why, when the app's own
    mlops:environments (the local mode's, a test's, a notebook's) lacks environments the delivery names. cdk.json
    itself is checked strictly by `load_delivery` (the CLI) and tests/unit/test_promotion_config.py."""
    raw = context.get(CONTEXT_KEY)
    if not raw:
        return None, None
    missing = sorted(set(named_environments(_validated(raw, "cdk.json"))) - {env.name for env in environments})
    if missing:
        return None, f"{CONTEXT_KEY} names {missing}, which this app's mlops:environments lacks: built without promotion"
    return applies_to(parse_delivery(context, environments), selected), None


def load_delivery(cdk_json: Path = REPO_ROOT / "cdk.json") -> Delivery | None:
    """The delivery roles of cdk.json (for the CLI; the app reads its context)."""
    context = json.loads(cdk_json.read_text()).get("context", {})
    return parse_delivery(context, parse_environments(context, str(cdk_json)), str(cdk_json))


def applies_to(delivery: Delivery | None, selected: list[str]) -> Delivery | None:
    """The delivery roles when the synthesized environments take part in them: an app of only other environments
    (the local mode's `local`) is built standalone."""
    return delivery if delivery and any(name in delivery.order for name in selected) else None


def serving_stage(environment: EnvironmentSpec, delivery: Delivery | None) -> str | None:
    """The one traffic an environment serves per model, so it keeps at most one always-on endpoint per model:
    cdk.json's `serves`, else, with a delivery, nothing in the training environment (it only trains and smoke-tests),
    prod in the last promotion stage and staging (integration traffic) in the others; without one (a single
    account, the local mode), prod. None: no serving endpoint (the smoke test's ephemeral one only)."""
    if environment.serves:
        return None if environment.serves == "none" else environment.serves
    if delivery is None or environment.name not in delivery.order or not delivery.spec.promotion:
        return "prod"
    if environment.name == delivery.spec.training:
        return None
    return "prod" if environment.name == delivery.spec.promotion[-1] else "staging"


def stage_spec(spec: ModelSpec, env: str, delivery: Delivery | None) -> ModelSpec:
    """The spec a promotion stage runs with: its own approvers (approval.stages[env], else approval.approvers), no
    schedule and no drift-triggered retraining (it trains nothing; drift is still measured and reported)."""
    if delivery is None or not delivery.receives(env):
        return spec
    stage = spec.approval.stages.get(env)
    approval = spec.approval.model_copy(update={"approvers": stage.approvers, "principals": stage.principals}) if stage \
        else spec.approval
    return spec.model_copy(update={
        "approval": approval, "retraining": spec.retraining.model_copy(update={"schedule": None}),
        "drift": spec.drift.model_copy(update={"retrain": False})})


def spec_in(folder: Path, environment: EnvironmentSpec, delivery: Delivery | None) -> ModelSpec:
    """A model folder's spec as an environment runs it: cdk.json's overrides, then the promotion stage's rules (a
    stage trains nothing, so it has no retraining schedule)."""
    from pipelines.spec import load_spec

    return stage_spec(load_spec(folder, environment.overrides), environment.name, delivery)


# ------------------------------------------------------------------ names shared by both sides of a promotion

# The control-plane functions of promotion (naming.control_function) and their model-scoped roles, which the other
# account's policies name: the offering stage's offer role puts offers on the next stage's bus, the receiving stage's
# import role reads the previous stage's registry and files. Both act for one model at a time (session tag mlops:model).
OFFER, RECEIVE, IMPORT = "promotion-offer", "promotion-receive", "promotion-import"


def scoped_role_name(env: str, purpose: str) -> str:
    """The model-scoped role of a promotion function in `env` (at most 64 characters: env names are short)."""
    return f"{naming.PROJECT}-{env}-{purpose}-scoped"


def offer_source(model: str) -> str:
    """The offer event's source names its model: the next stage's bus policy admits an offer only from the offer
    role's session tagged with that model (events:source = mlops.promotion.${aws:PrincipalTag/mlops:model})."""
    return f"{EVENT_SOURCE}.{model}"


def model_of_source(source: str) -> str | None:
    """The model an offer's source names, or None when it is no offer source."""
    model = source.removeprefix(f"{EVENT_SOURCE}.") if source.startswith(f"{EVENT_SOURCE}.") else ""
    return model if re.fullmatch(naming.MODEL_NAME_PATTERN, model) else None


def promotion_bus(env: str) -> str:
    """The receiving environment's one promotion bus (EventBridge allows 100 buses an account: one per model would cap
    the fleet)."""
    return f"{naming.PROJECT}-{env}-promotions"


def role_arn(environment: EnvironmentSpec, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{environment.account}:role{path}{name}"


def import_role_arn(environment: EnvironmentSpec) -> str:
    """The import function's model-scoped role: it writes the stage's releases, so it lies under the release writers'
    path."""
    return role_arn(environment, scoped_role_name(environment.name, IMPORT), naming.RELEASE_WRITER_PATH)


def offer_role_arn(environment: EnvironmentSpec) -> str:
    return role_arn(environment, scoped_role_name(environment.name, OFFER))


def bus_arn(environment: EnvironmentSpec, name: str) -> str:
    return f"arn:aws:events:{environment.region}:{environment.account}:event-bus/{name}"


def bucket_of(environment: EnvironmentSpec) -> str:
    return naming.artifact_bucket(environment.name, environment.account, environment.region)


def promotion_bus_arn(environment: EnvironmentSpec) -> str:
    return bus_arn(environment, promotion_bus(environment.name))


def package_arn_prefix(model: str, environment: EnvironmentSpec) -> str:
    """Every version of the model's package group in that environment: <prefix><version>."""
    group = naming.model_package_group(model, environment.name)
    return f"arn:aws:sagemaker:{environment.region}:{environment.account}:model-package/{group}/"


def key_alias(env: str) -> str:
    """The alias of the environment's key (stacks/registry_stack.py): what another account's grant names."""
    return f"alias/{naming.PROJECT}-{env}"


def promoted_prefixes(model: str) -> tuple[str, str]:
    """Where an artifact bucket keeps a model's released artifacts (read by the endpoints) and its run files
    (reports, baselines, smoke-test rows): the prefixes the next stage may read."""
    return f"{naming.RELEASES}/{model}/", f"runs/{model}/"

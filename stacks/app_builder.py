"""Builds the whole app: validate every spec and environment first, then one set of stacks each."""

from __future__ import annotations

import os
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from pipelines import naming
from pipelines.source import current_git_commit
from pipelines.spec import MODELS_DIR, EnvironmentSpec, ModelSpec, SpecError, load_all_specs, parse_environments
from stacks.model_stack import ModelStack
from stacks.nag import acknowledge_scoped_wildcards
from stacks.nag_rules import MlopsServiceChecks
from stacks.registry_stack import RegistryStack


def selected_environments(app: cdk.App) -> list[dict]:
    """cdk.json's environments, or the one `-c env=NAME` picks, with `-c account=`/`-c region=` applied to it.

    An account written as "current" is the one the CDK CLI found credentials for (CDK_DEFAULT_ACCOUNT), so a
    first deployment needs no edit of cdk.json."""
    raw = app.node.try_get_context("mlops:environments")
    if not isinstance(raw, dict) or not raw:
        return parse_environments({"mlops:environments": raw})  # raises the missing-environments error
    only = app.node.try_get_context("env")
    overrides = {k: app.node.try_get_context(k) for k in ("account", "region") if app.node.try_get_context(k)}
    if overrides and not only:
        raise SpecError(f"-c {'/'.join(overrides)}=... applies to one environment; fix: add -c env=NAME")
    if only and only not in raw:
        raise SpecError(f"-c env={only}: no such environment in cdk.json; fix: use one of {', '.join(raw)}")
    chosen = {only: raw[only]} if only else raw
    return [{"name": name, **(body or {}), **(overrides if name == only else {})} for name, body in chosen.items()]


def resolve_current_account(body: dict) -> dict:
    if str(body.get("account")) != "current":
        return body
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    if not account:
        raise SpecError(f"cdk.json: mlops:environments.{body['name']}.account is 'current' but no AWS credentials "
                        "were found; fix: configure credentials (aws sso login / AWS_PROFILE) or pass -c account=123456789012")
    return {**body, "account": account}


def validated_inputs(app: cdk.App, models_dir: Path = MODELS_DIR) -> list[tuple[EnvironmentSpec, list[ModelSpec]]]:
    """Every environment with its models' specs (overrides applied); raises SpecError before any construct."""
    bodies = [resolve_current_account(body) for body in selected_environments(app)]
    environments = parse_environments({"mlops:environments": {b.pop("name"): b for b in bodies}})
    return [(env, load_all_specs(models_dir, env.overrides)) for env in environments]


def source_commit(app: cdk.App) -> str:
    """The commit the app is synthesized from (context mlops:git_commit overrides, for reproducible builds)."""
    pinned = app.node.try_get_context("mlops:git_commit")
    return str(pinned) if pinned else current_git_commit() or "unknown"


def build_app(app: cdk.App, models_dir: Path = MODELS_DIR) -> cdk.App:
    inputs = validated_inputs(app, models_dir)
    commit = source_commit(app)
    for environment, specs in inputs:
        aws_env = cdk.Environment(account=environment.account, region=environment.region)
        registry = RegistryStack(app, naming.registry_stack(environment.name), environment=environment,
                                 specs=specs, env=aws_env)
        cdk.Tags.of(registry).add("mlops:environment", environment.name)
        for spec in specs:
            stack = ModelStack(app, naming.model_stack(spec.name, environment.name), environment=environment,
                               spec=spec, registry=registry, env=aws_env, source_commit=commit)
            cdk.Tags.of(stack).add("mlops:environment", environment.name)
            cdk.Tags.of(stack).add("mlops:model", spec.name)
    acknowledge_scoped_wildcards(app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    cdk.Validations.of(app).add_plugins(MlopsServiceChecks(app))
    return app


"""Builds the whole app: validate every spec and environment first, then one set of stacks each."""

from __future__ import annotations

import os
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from pipelines import naming
from pipelines.promotion import CONTEXT_KEY, Delivery, delivery_for_app, stage_spec
from pipelines.source import current_git_commit
from pipelines.spec import (EnvironmentSpec, ModelSpec, SpecError, check_names_across_models, load_all_specs,
                            models_dir as configured_models_dir, parse_environments)
from stacks.constructs.promotion import PromotionSourceGrants
from stacks.control_stack import ControlPlaneStack
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


def validated_inputs(app: cdk.App, models_dir: Path | None = None) -> list[tuple[EnvironmentSpec, list[ModelSpec]]]:
    """Every environment with its models' specs (overrides applied); raises SpecError before any construct."""
    bodies = [resolve_current_account(body) for body in selected_environments(app)]
    environments = parse_environments({"mlops:environments": {b.pop("name"): b for b in bodies}})
    inputs = [(env, load_all_specs(models_dir, env.overrides)) for env in environments]
    for _, specs in inputs:
        check_names_across_models(specs, [env.name for env in environments])
    return inputs


def source_commit(app: cdk.App) -> str:
    """The commit the app is synthesized from (context mlops:git_commit overrides, for reproducible builds)."""
    pinned = app.node.try_get_context("mlops:git_commit")
    return str(pinned) if pinned else current_git_commit() or "unknown"


def delivery_of(app: cdk.App, environments: list[EnvironmentSpec]) -> Delivery | None:
    """cdk.json's mlops:delivery (which environment trains, which receive promotions, which hosts the pipeline),
    checked against every environment of cdk.json; None when the synthesized environments take no part in it."""
    raw = app.node.try_get_context("mlops:environments") or {}
    selected = {env.name: env for env in environments}
    others = [resolve_current_account({"name": name, **(body or {})}) for name, body in raw.items() if name not in selected]
    everyone = [*selected.values(), *parse_environments({"mlops:environments": {b.pop("name"): b for b in others}})] \
        if others else list(selected.values())
    delivery, why_not = delivery_for_app({CONTEXT_KEY: app.node.try_get_context(CONTEXT_KEY)}, everyone, list(selected))
    if why_not:
        cdk.Annotations.of(app).add_info(why_not)
    return delivery


def build_environment(scope, environment: EnvironmentSpec, specs: list[ModelSpec], *, commit: str, models_dir: Path,
                      delivery: Delivery | None) -> list[cdk.Stack]:
    """One environment's registry and model stacks in scope (the app, or a stage of the platform's pipeline), with
    the same stack names either way: a pipeline takes over the stacks a laptop deployed."""
    aws_env = cdk.Environment(account=environment.account, region=environment.region)
    specs = [stage_spec(spec, environment.name, delivery) for spec in specs]
    name = naming.registry_stack(environment.name)
    registry = RegistryStack(scope, name, stack_name=name, environment=environment, specs=specs, env=aws_env)
    cdk.Tags.of(registry).add("mlops:environment", environment.name)
    downstream = delivery.downstream(environment.name) if delivery else None
    if downstream:
        PromotionSourceGrants(registry, "PromotionGrants", specs=specs, environment=environment, downstream=downstream,
                              bucket=registry.bucket, key=registry.key, groups=registry.groups)
    name = naming.control_stack(environment.name)
    control = ControlPlaneStack(scope, name, stack_name=name, environment=environment, registry=registry, env=aws_env,
                                delivery=delivery, specs=specs)
    cdk.Tags.of(control).add("mlops:environment", environment.name)
    stacks: list[cdk.Stack] = [registry, control]
    for spec in specs:
        name = naming.model_stack(spec.name, environment.name)
        stack = ModelStack(scope, name, stack_name=name, environment=environment, spec=spec, registry=registry,
                           env=aws_env, source_commit=commit, model_dir=models_dir / spec.name, delivery=delivery)
        stack.node.add_dependency(control)  # the control plane reads the record format the model stack writes
        cdk.Tags.of(stack).add("mlops:environment", environment.name)
        cdk.Tags.of(stack).add("mlops:model", spec.name)
        stacks.append(stack)
    return stacks


def build_app(app: cdk.App, models_dir: Path | None = None) -> cdk.App:
    """models_dir: the folder of model folders (default: the context value mlops:models_dir, else the environment's
    MLOPS_MODELS_DIR, else pipelines/; pipelines.spec.models_dir()).
    `-c pipeline=true`: the platform's CDK pipeline (stacks/pipeline_stack.py), which deploys every environment of
    mlops:delivery in order, instead of the environments' stacks themselves."""
    models_dir = Path(models_dir or app.node.try_get_context("mlops:models_dir") or configured_models_dir())
    inputs = validated_inputs(app, models_dir)
    commit = source_commit(app)
    delivery = delivery_of(app, [environment for environment, _ in inputs])
    if str(app.node.try_get_context("pipeline") or "").lower() in ("true", "1", "yes"):
        from stacks.pipeline_stack import PipelineStack

        PipelineStack.for_app(app, delivery=delivery, inputs=dict((env.name, (env, specs)) for env, specs in inputs),
                              build=lambda scope, env, specs: build_environment(
                                  scope, env, specs, commit=commit, models_dir=models_dir, delivery=delivery))
    else:
        for environment, specs in inputs:
            build_environment(app, environment, specs, commit=commit, models_dir=models_dir, delivery=delivery)
    acknowledge_scoped_wildcards(app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    cdk.Validations.of(app).add_plugins(MlopsServiceChecks(app))
    return app

"""Builds the whole app: validate every spec and environment first, then one set of stacks each."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from pipelines import naming
from pipelines.source import current_git_commit
from pipelines.spec import MODELS_DIR, EnvironmentSpec, ModelSpec, load_all_specs, parse_environments
from stacks.model_stack import ModelStack
from stacks.nag import acknowledge_scoped_wildcards
from stacks.registry_stack import RegistryStack


def validated_inputs(app: cdk.App, models_dir: Path = MODELS_DIR) -> list[tuple[EnvironmentSpec, list[ModelSpec]]]:
    """Every environment with its models' specs (overrides applied); raises SpecError before any construct."""
    environments = parse_environments({"mlops:environments": app.node.try_get_context("mlops:environments")})
    only = app.node.try_get_context("env")
    if only:
        environments = [e for e in environments if e.name == only]
        if not environments:
            from pipelines.spec import SpecError
            raise SpecError(f"-c env={only}: no such environment in cdk.json; fix: use one of its mlops:environments")
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
    return app


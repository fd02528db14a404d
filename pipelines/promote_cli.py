"""`mlops promote MODEL VERSION --to STAGE`: approve, as yourself, a model version's promotion into a stage.

VERSION is the version the training environment registered (each stage keeps it in the lineage as
`source_version`), or `latest`: the newest package waiting in that stage. Packages reach a stage by themselves
(docs/promotion.md): when the previous stage's run succeeds, it offers what its production serves, and the stage
imports it and waits for its own approvers. This command is that approval. It goes through the stage's runs API,
signed with your credentials for the stage's account: the API maps your principal to one of the stage's approvers
(approval.stages.<stage> in the spec), refuses the person who trained the model, records who, when and why in the
stage's audit table, and the stage's run deploys the package. Registered by pipelines/cli.py.

`stage_overview` is what serves each stage and who approved it, for `mlops models list` and notebooks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import typer

from pipelines import naming
from pipelines.client import APPROVED_BY
from pipelines.promotion import SHA256_KEY, Delivery, load_delivery
from pipelines.spec import SpecError



def delivery_stage(delivery: Delivery | None, stage: str) -> str:
    """The environment `stage` receives from; SpecError when it receives nothing."""
    upstream = delivery.upstream(stage) if delivery else None
    if upstream is None:
        stages = ", ".join(delivery.spec.promotion) if delivery else "none (no mlops:delivery in cdk.json)"
        raise SpecError(f"--to {stage}: not a promotion stage; fix: use one of {stages}")
    return upstream.name


@dataclass(frozen=True)
class StageVersion:
    """One package of a stage's registry, as promotion reads it."""

    arn: str
    version: int
    status: str
    lineage: dict
    approval_description: str = ""

    @property
    def approved(self) -> tuple[str | None, str | None]:
        """(who, when) from the ApprovalDescription the approval hook writes ("approved by X at T: why")."""
        found = APPROVED_BY.match(self.approval_description)
        return (found["who"], found["at"]) if found else (None, None)


def stage_versions(sagemaker, model: str, env: str) -> list[StageVersion]:
    """The stage's packages of the model, newest first: ListModelPackages sorted explicitly (SortBy CreationTime,
    SortOrder Descending: the API's default order is ascending), each described."""
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=naming.model_package_group(model, env), SortBy="CreationTime", SortOrder="Descending")
    versions = []
    for summary in (item for page in pages for item in page["ModelPackageSummaryList"]):
        described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        versions.append(StageVersion(described["ModelPackageArn"], described.get("ModelPackageVersion", 0),
                                     described["ModelApprovalStatus"], dict(described.get("CustomerMetadataProperties") or {}),
                                     described.get("ApprovalDescription") or ""))
    return versions


def find_version(versions: list, version: str):
    """The stage's package of a training version (lineage source_version), or with `latest` the newest one waiting
    (versions come newest first: ListModelPackages SortBy CreationTime, SortOrder Descending)."""
    if version == "latest":
        return next((v for v in versions if v.status == "PendingManualApproval"), None)
    if not version.isdigit():
        raise SpecError(f"VERSION '{version}': a version number of the training environment, or latest")
    return next((v for v in versions if v.lineage.get("source_version") == version), None)


def promote(pipelines, delivery: Delivery | None, model: str, version: str, stage: str, reason: str) -> dict:
    """Approves the stage's pending promotion of `version` through the stage's runs API (pipelines: a
    pipelines.client.Pipelines of that stage). DecisionRefused when there is none to approve."""
    from pipelines.client import DecisionRefused, decide

    upstream = delivery_stage(delivery, stage)
    found = find_version(stage_versions(pipelines.sagemaker, model, stage), version)
    if found is None:
        raise LookupError(f"{model} version {version} has not reached {stage}: {upstream} offers a version to {stage} "
                          f"when its run that deployed it succeeds; `mlops models list {model} --env {upstream}`")
    if found.status != "PendingManualApproval":
        raise DecisionRefused(f"{model} version {version} is {found.status} in {stage} (package {found.arn}); "
                              "nothing to approve")
    execution = found.lineage["promotion_execution_arn"].rsplit(":", 1)[1]
    decided_at = decide(pipelines, model, True, reason or f"promote {model} {version} to {stage}", execution)
    return {"model": model, "version": version, "stage": stage, "package": found.arn, "execution": execution,
            "sha256": found.lineage.get(SHA256_KEY), "decided_at": decided_at}


def stage_overview(model: str, clients: dict, delivery: Delivery) -> list[dict]:
    """Per environment of the delivery order: the version its serving endpoint serves (the runs API's /serving) or,
    where it serves nothing (the training account), the version it released last (its newest Approved one: a
    failed release rejects its package); its training version, sha256, where it came from, and who approved it there
    and when (the stage's registry). clients: env -> pipelines.client.Pipelines with credentials for that account."""
    rows = []
    for env in delivery.order:
        pipelines = clients[env]
        stages = pipelines.serving(model)
        served = next(iter(stages.values()), None)
        versions = stage_versions(pipelines.sagemaker, model, env)
        serving = next((v for v in versions if v.arn == served), None) if stages else \
            next((v for v in versions if v.status == "Approved"), None)
        row = {"stage": env, "serves": None, "serving_stage": next(iter(stages), None)}
        if serving is not None:
            who, when = serving.approved
            row.update(serves=serving.arn if stages else None, released=serving.arn, version=serving.version,
                       source_version=int(serving.lineage.get("source_version", serving.version)),
                       sha256=serving.lineage.get(SHA256_KEY), promoted_from=serving.lineage.get("promoted_from"),
                       approved_by=who, approved_at=when)
        rows.append(row)
    return rows


def promote_command(model: str = typer.Argument(..., metavar="MODEL", help="Model folder under pipelines/."),
                    version: str = typer.Argument(..., metavar="VERSION",
                                                  help="The training environment's version number, or latest."),
                    to: str = typer.Option(..., "--to", help="The stage: an environment of mlops:delivery.promotion."),
                    reason: str = typer.Option("", "--reason", help="Why (kept in the stage's audit trail)."),
                    output: str = typer.Option("text", "--output", "-o", help="text, or json.")) -> None:
    """Approve a model version's promotion into a stage, as yourself (the stage's approvers; not who trained it)."""
    from pipelines.client import Pipelines, model_dir

    model_dir(model)
    result = promote(Pipelines(env=to), load_delivery(), model, version, to, reason)
    if output == "json":
        print(json.dumps(result, indent=1))
        return
    typer.echo(f"{model} version {version}: promotion to {to} approved at {result['decided_at']} "
               f"(package {result['package']}, sha256 {str(result['sha256'])[:12]}...); {to} deploys it now")

"""Promotion of an approved model package into the next stage's account. Pure: no AWS calls.

The offer that crosses accounts is a trigger, never a source of truth: the importing stage checks it against the
upstream registry (status, digest) and reads every byte from the upstream bucket itself, under the prefixes the
upstream grants, then proves its own copy has the recorded sha256.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Iterable

from pydantic import BaseModel, Field

from lambdas.shared.evidence import CARD_REGISTERED, Evidence, attached_reports
from lambdas.shared.lineage import checked, decode_pairs, encode_pairs
from lambdas.shared.release import drift_baseline_uris, was_released
from pipelines.promotion import OFFERED, SHA256_KEY, VERSION_KEY, offer_source, promoted_prefixes

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
SMOKE_SAMPLE_BYTES = 64 * 1024  # header and rows for the smoke test: SMOKE_ROWS lines fit with room to spare
MAX_METADATA_ENTRIES = 50  # CreateModelPackage CustomerMetadataProperties (botocore: CustomerMetadataMap max 50)
OFFERED_TO = "offered_to_"  # upstream marker: offered to <env> at <time> (one offer per package and stage)


class PromotionRefused(RuntimeError):
    """The offer or the upstream package cannot be promoted; nothing was registered."""


class AlreadyPromoted(RuntimeError):
    """This stage already received (or is receiving) that upstream package."""


class Offer(BaseModel):
    """The detail of a `Model Package Offered` event."""

    model: str
    env: str = Field(description="The offering (upstream) environment")
    package_arn: str
    version: int = Field(ge=1)
    sha256: str = Field(pattern=_SHA256.pattern)
    source_package_arn: str = Field(description="The package the training environment registered")
    source_version: int = Field(ge=1)


class ImportInput(BaseModel):
    """The promotion run's input, as the receive function builds it: the offer, the account that sent it
    (EventBridge's own `account` field, which a sender cannot set) and the source the bus policy bound to the
    sender's model."""

    offer: Offer
    offered_by_account: str
    offer_source: str = ""


def check_offer(received: ImportInput, *, model: str, upstream_env: str, upstream_account: str, region: str,
                group: str) -> Offer:
    offer = received.offer
    if received.offered_by_account != upstream_account:
        raise PromotionRefused(f"offered by account {received.offered_by_account}, not by {upstream_env} "
                               f"({upstream_account}): only the previous stage promotes into this one")
    if offer.model != model or offer.env != upstream_env or received.offer_source != offer_source(model):
        raise PromotionRefused(f"an offer of {offer.model} from {offer.env} reached the {model} promotion from {upstream_env}")
    expected = f"arn:aws:sagemaker:{region}:{upstream_account}:model-package/{group}/{offer.version}"
    if offer.package_arn.lower() != expected.lower():
        raise PromotionRefused(f"{offer.package_arn} is not version {offer.version} of {group} in {upstream_account}")
    return offer


def check_upstream(package: dict, offer: Offer) -> dict[str, str]:
    """The upstream package's lineage, when it is Approved and its recorded digest is the offered one."""
    arn = package.get("ModelPackageArn", offer.package_arn)
    if package.get("ModelApprovalStatus") != "Approved":
        raise PromotionRefused(f"{arn} is {package.get('ModelApprovalStatus')} upstream, not Approved; nothing promoted")
    lineage = dict(package.get("CustomerMetadataProperties") or {})
    if lineage.get(SHA256_KEY) != offer.sha256 or not lineage.get(VERSION_KEY):
        raise PromotionRefused(f"{arn} records sha256 {lineage.get(SHA256_KEY)!r} (version {lineage.get(VERSION_KEY)!r}), "
                               f"the offer says {offer.sha256}: nothing promoted")
    return lineage


def container(package: dict) -> dict:
    return (package.get("InferenceSpecification") or {}).get("Containers", [{}])[0]


def producing_execution_name(package: dict) -> str:
    generated_by = (package.get("MetadataProperties") or {}).get("GeneratedBy", "")
    if ":execution:" not in generated_by:
        raise PromotionRefused(f"{package.get('ModelPackageArn')} names no producing run (MetadataProperties.GeneratedBy)")
    return generated_by.rsplit(":", 1)[1]


def upstream_files(package: dict, bucket: str, model: str, dataset_file: str) -> dict[str, str]:
    """name -> s3 URI of what a stage copies: the model data, the evaluation report, the drift baseline, the
    smoke-test rows (the head of the producing run's data snapshot) and the bias and explainability reports the
    package carries (EVIDENCE; none for a package registered before them). Each must lie in the upstream bucket under
    the prefixes it grants (releases/<model>/, runs/<model>/): lineage never sends the import elsewhere."""
    statistics, constraints = drift_baseline_uris(package)
    files = {"model": container(package).get("ModelDataUrl", ""),
             "evaluation": (((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}).get("S3Uri", ""),
             "statistics": statistics, "constraints": constraints,
             "smoke_sample": f"s3://{bucket}/runs/{model}/{producing_execution_name(package)}/data/{dataset_file}",
             **attached_reports(package)}
    allowed = tuple(f"s3://{bucket}/{prefix}" for prefix in promoted_prefixes(model))
    stray = {name: uri for name, uri in files.items() if not uri.startswith(allowed) or ".." in uri}
    if stray:
        raise PromotionRefused(f"{package.get('ModelPackageArn')}: {stray} lie outside {' and '.join(allowed)}, which "
                               "the upstream stage shares; nothing promoted")
    return files


def target_keys(model: str, execution: str, upstream_env: str, upstream_version: int, dataset_file: str) -> dict[str, str]:
    """Where this stage keeps its copies: the run files under runs/<model>/<this run>/ (the smoke test and the drift
    hook read there), the model first there too (checked, then released under releases/<model>/<sha256>/)."""
    run = f"runs/{model}/{execution}/"
    return {"model": f"{run}promoted/{upstream_env}-v{upstream_version}/model.tar.gz",
            "evaluation": f"{run}promoted/evaluation.json", "statistics": f"{run}promoted/statistics.json",
            "constraints": f"{run}promoted/constraints.json", "smoke_sample": f"{run}data/{dataset_file}",
            **{name: f"{run}promoted/{name}.json" for name in EVIDENCE}}


EVIDENCE = ("bias", "bias_pre_training", "bias_post_training", "explainability")  # lambdas.shared.evidence.attached_reports
JSON_FILES = ("evaluation", "statistics", "constraints", *EVIDENCE)  # copied as they are, when the package has them


def promoted_model_card(upstream: dict) -> dict[str, str] | None:
    """The upstream version's model card, for this stage's approver to review again (its content kept whole: the
    same bytes, the same evidence), or None for a package registered before cards."""
    card = upstream.get("ModelCard") or {}
    if not card.get("ModelCardContent"):
        return None
    return {"ModelCardContent": card["ModelCardContent"], "ModelCardStatus": CARD_REGISTERED}


def smoke_sample(head: bytes, rows: int) -> bytes:
    """The header and at most `rows` complete lines of a CSV file's head (a cut last line is dropped)."""
    lines = head.split(b"\n")
    complete = lines[:-1] if not head.endswith(b"\n") else lines
    kept = [line for line in complete if line.strip()][:rows + 1]
    if len(kept) < 2:
        raise PromotionRefused("the producing run's data snapshot has no complete row for the smoke test")
    return b"\n".join(kept) + b"\n"


def check_digest(name: str, measured: str, recorded: str) -> None:
    if measured != recorded:
        raise PromotionRefused(f"the {name} read has sha256 {measured}, the registry records {recorded}: "
                               "the bytes changed since approval; nothing promoted")


def promoted_lineage(upstream: dict[str, str], *, upstream_arn: str, upstream_version: int, upstream_env: str,
                     upstream_account: str, execution_arn: str, version_id: str) -> dict[str, str]:
    """The upstream lineage, kept whole (git commit, run, requester, dataset and its digest, metrics, the artifact's
    sha256), plus where this copy came from; upstream offer markers are dropped."""
    kept = {key: value for key, value in upstream.items() if not key.startswith(OFFERED_TO)}
    for structured in ("metrics", "hyperparameters"):  # a package registered with JSON lineage is re-written
        if structured in kept:
            kept[structured] = encode_pairs(decode_pairs(kept[structured]))
    lineage = {**kept, "promoted_from": upstream_arn, "promoted_from_env": upstream_env,
               "promoted_from_account": upstream_account, "promoted_from_version": str(upstream_version),
               "source_package_arn": upstream.get("source_package_arn", upstream_arn),
               "source_version": upstream.get("source_version", str(upstream_version)),
               "promotion_execution_arn": execution_arn, VERSION_KEY: version_id}
    if len(lineage) > MAX_METADATA_ENTRIES:
        raise PromotionRefused(f"the promoted lineage has {len(lineage)} entries; SageMaker keeps at most "
                               f"{MAX_METADATA_ENTRIES}")
    return checked(lineage)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "none") else None
    except ValueError:
        return None


def run_state(*, model: str, lineage: dict[str, str], execution_arn: str, execution_name: str, upstream_env: str,
              upstream_version: int, uris: dict[str, str], package_arn: str, version: int | None,
              champion_arn: str | None, objective: str, image: str = "", evidence: Evidence | None = None) -> dict:
    """The state document a promotion run carries into the approval hook and the deployment, shaped like a
    retraining run's (lambdas.shared.run_state.RunState): the requester stays the person who trained it (so they
    cannot approve it in any stage), the metrics are the recorded ones, the snapshot is the smoke-test sample."""
    metrics = decode_pairs(lineage.get("metrics"))
    value = _number(lineage.get("challenger_value"))
    return {
        "run": {"model": model, "trigger": "promotion", "requested_by": lineage.get("requested_by", "unknown"),
                "git_commit": lineage.get("git_commit", "unknown"), "execution_arn": execution_arn,
                "execution_name": execution_name,
                "hyperparameters": {k: json.dumps(v) for k, v in decode_pairs(lineage.get("hyperparameters")).items()},
                "reason": f"promotion of {upstream_env} version {upstream_version} "
                          f"(trained as {lineage.get('source_package_arn', '?')})"},
        "validation": {"dataset_uri": lineage.get("dataset_uri", ""), "version_id": lineage.get("dataset_version_id"),
                       "sha256": lineage.get("dataset_sha256", ""), "rows": int(_number(lineage.get("dataset_rows")) or 0),
                       "snapshot_uri": uris["smoke_sample"]},
        "evaluation": {"metrics": metrics, "objective": lineage.get("objective") if lineage.get("objective") not in
                       (None, "none") else objective,
                       "value": value if value is not None else float(metrics.get(objective, 0.0)),
                       "champion_arn": champion_arn, "promote": True,
                       "reason": f"approved in {upstream_env}; the same bytes (sha256 {lineage[SHA256_KEY][:12]}...)",
                       "report_uri": uris["evaluation"], "baseline_statistics_uri": uris["statistics"],
                       "baseline_constraints_uri": uris["constraints"], "bias_report_uri": uris.get("bias", ""),
                       "pre_training_bias_uri": uris.get("bias_pre_training", ""),
                       "post_training_bias_uri": uris.get("bias_post_training", ""),
                       "explainability_report_uri": uris.get("explainability", ""),
                       "evidence": evidence.model_dump() if evidence else None},
        "registration": {"model_package_arn": package_arn, "version": version, "artifact_uri": uris["model"],
                         "artifact_sha256": lineage[SHA256_KEY], "artifact_version_id": lineage[VERSION_KEY],
                         "image": image},
        "promotion": {"from_env": upstream_env, "from_version": upstream_version, SHA256_KEY: lineage[SHA256_KEY]},
    }


# ------------------------------------------------------------------ the offering side

def offer_of(package: dict, model: str, env: str, approved_sha256: str) -> Offer:
    """The offer of a package whose approval recorded `approved_sha256` (the gate checked the bytes): the registry's
    lineage must say the same, since the next stage checks its copy against the lineage and the offer both."""
    lineage = package.get("CustomerMetadataProperties") or {}
    if lineage.get(SHA256_KEY) != approved_sha256:
        raise PromotionRefused(f"{package['ModelPackageArn']} records sha256 {lineage.get(SHA256_KEY)!r}, its approval "
                               f"{approved_sha256}: the registry was changed after approval; nothing offered")
    version = int(package["ModelPackageVersion"])
    return Offer(model=model, env=env, package_arn=package["ModelPackageArn"], version=version,
                 sha256=approved_sha256, source_package_arn=lineage.get("source_package_arn", package["ModelPackageArn"]),
                 source_version=int(lineage.get("source_version", version)))


def offer_event(offer: Offer, bus_arn: str) -> dict:
    """PutEvents entry on the next stage's promotion bus (by ARN: another account's), its source naming the model."""
    return {"Source": offer_source(offer.model), "DetailType": OFFERED, "Detail": offer.model_dump_json(),
            "EventBusName": bus_arn}


def offer_marker(downstream: str, now: datetime | None = None) -> dict[str, str]:
    return {f"{OFFERED_TO}{downstream}": (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def newest_approved(served: dict | None, later: Iterable[dict]) -> dict | None:
    """The newest Approved package among the one production serves and those registered after it (a package
    registered before the served one is older: versions grow with registration)."""
    newest = served if served and served.get("ModelApprovalStatus") == "Approved" else None
    for package in later:
        if package.get("ModelApprovalStatus") == "Approved":
            newest = package
    return newest


def newest_released(packages: Iterable[dict]) -> dict | None:
    """Where the stage serves nothing: the newest Approved package a run released (naming.RELEASED_BY_KEY), or, in a
    group released before that marker existed (no package carries it), the newest Approved one."""
    approved = [p for p in packages if p.get("ModelApprovalStatus") == "Approved"]
    released = [p for p in approved if was_released(p)]
    return (released or approved or [None])[-1]


def what_to_offer(newest_approved: dict | None, served_arn: str | None, downstream: str) -> tuple[dict | None, str]:
    """The package to offer after a successful run: the newest Approved one (newest_approved), only when this
    stage's production endpoint serves it, and once per next stage."""
    if newest_approved is None:
        return None, "no Approved package"
    arn = newest_approved["ModelPackageArn"]
    if served_arn != arn:
        return None, f"the newest Approved package {arn} is not what production serves ({served_arn}); nothing offered"
    if f"{OFFERED_TO}{downstream}" in (newest_approved.get("CustomerMetadataProperties") or {}):
        return None, f"{arn} was already offered to {downstream}"
    return newest_approved, f"offering {arn} to {downstream}"

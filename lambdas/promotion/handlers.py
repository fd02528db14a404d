"""Promotion across accounts (docs/promotion.md), thin handlers:

Control-plane functions (issue 26), each acting for one model at a time (lambdas/shared/tenancy.py):

- `offer` (every stage that has a next one): after a successful run of one of this stage's state machines, acting for
  that machine's model, offers the package its production serves, the newest Approved one, to the next stage: a
  `Model Package Offered` event put on the next account's promotion bus, its source naming the model (the bus
  admits it only from the offer role's session tagged with that model), then the offer recorded on the package.
- `receive` (every promotion stage): an offer on this stage's promotion bus starts the offered model's run, acting for
  that model (its scoped role may start that model's machine only).
- `import_package` (every promotion stage): the first step of the stage's promotion run. Checks the offer against
  the upstream registry, copies the artifact and run files into this account's bucket with a digest check, and
  registers the package in this account's registry (PendingManualApproval), lineage kept; the stage's own
  approval hook and deployment follow. Production never reads the upstream account once this step is done.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from lambdas.endpoint.logic import SMOKE_ROWS
from lambdas.promotion import dal as promotion_dal
from lambdas.promotion import logic
from lambdas.shared import dal, evidence, release, tenancy
from lambdas.shared.config import model_spec, setting
from lambdas.shared.events import TaskEvent, pipeline_task
from lambdas.shared.observability import logger, metrics, task_handler
from pipelines import naming
from pipelines.promotion import SHA256_KEY, VERSION_KEY, model_of_source, offer_source


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@pipeline_task(TaskEvent)
def import_package(event: TaskEvent, context: LambdaContext) -> dict:
    spec = model_spec()
    if "offer" not in event.state:
        raise logic.PromotionRefused(f"this stage receives {spec.name} from {setting('UPSTREAM_ENV')} and trains nothing; "
                                     "its runs start from its promotion bus, not from `mlops run start`")
    offer = logic.check_offer(logic.ImportInput.model_validate(event.state), model=spec.name,
                              upstream_env=setting("UPSTREAM_ENV"), upstream_account=setting("UPSTREAM_ACCOUNT"),
                              region=setting("UPSTREAM_REGION"),
                              group=naming.model_package_group(spec.name, setting("UPSTREAM_ENV")))
    claims = promotion_dal.PromotionClaims(setting("AUDIT_TABLE"))
    if not claims.claim(spec.name, offer.package_arn, event.execution_arn, _now()):
        raise logic.AlreadyPromoted(f"{offer.package_arn} was already promoted into this stage (or is being)")
    try:
        state = _import(spec, offer, event)
    except Exception:
        claims.release(spec.name, offer.package_arn, event.execution_arn)  # a later offer may try again
        raise
    metrics.add_metric(name="PackagesPromoted", unit="Count", value=1)
    logger.info("package promoted", extra={"from": offer.package_arn, "to": state["registration"]["model_package_arn"],
                                           SHA256_KEY: offer.sha256})
    return state


def _import(spec, offer: logic.Offer, event: TaskEvent) -> dict:
    package = promotion_dal.describe_package(offer.package_arn)
    lineage = logic.check_upstream(package, offer)
    files = logic.upstream_files(package, setting("UPSTREAM_BUCKET"), spec.name, spec.dataset.file_name)
    bucket, upstream_env = setting("ARTIFACT_BUCKET"), setting("UPSTREAM_ENV")
    keys = logic.target_keys(spec.name, event.execution_name, upstream_env, offer.version, spec.dataset.file_name)
    # A server-side copy of the recorded upstream version; S3's SHA-256 of the copy is the proof of its bytes.
    copied = dal.copy_version(files["model"], lineage[VERSION_KEY], bucket, keys["model"])
    try:
        logic.check_digest("copy of the upstream model data", copied.sha256, offer.sha256)
    except logic.PromotionRefused:
        promotion_dal.delete_version(bucket, keys["model"], copied.version_id)
        raise
    # The checked copy becomes this stage's release: the key its sha256 names, never overwritten or deleted.
    released = dal.seal_release(copied.uri, copied.version_id, bucket, lambda sha256: naming.release_key(spec.name, sha256))
    copies = {name: promotion_dal.read_bytes(files[name]) for name in logic.JSON_FILES if name in files}
    uris = {"model": released.uri, **{name: promotion_dal.put_bytes(bucket, keys[name], body, "application/json")
                                      for name, body in copies.items()}}
    head = promotion_dal.head_bytes(files["smoke_sample"], None, logic.SMOKE_SAMPLE_BYTES)
    uris["smoke_sample"] = promotion_dal.put_bytes(bucket, keys["smoke_sample"], logic.smoke_sample(head, SMOKE_ROWS), "text/csv")
    promoted = logic.promoted_lineage(lineage, upstream_arn=offer.package_arn, upstream_version=offer.version,
                                      upstream_env=upstream_env, upstream_account=setting("UPSTREAM_ACCOUNT"),
                                      execution_arn=event.execution_arn, version_id=released.version_id)
    arn, version = _register(spec, package, promoted, uris, event.execution_arn, upstream_env, offer)
    champion = dal.Endpoints().served_package(setting("SERVING_ENDPOINT"), spec.deployment.hosting) \
        if setting("SERVING_ENDPOINT") else None
    return logic.run_state(model=spec.name, lineage=promoted, execution_arn=event.execution_arn,
                           execution_name=event.execution_name, upstream_env=upstream_env, upstream_version=offer.version,
                           uris=uris, package_arn=arn, version=version, champion_arn=champion,
                           objective=spec.objective.metric, image=setting("INFERENCE_IMAGE"),
                           evidence=evidence.summarize_documents(_json(copies.get("bias")), _json(copies.get("explainability")),
                                                         evidence.bounds_of(getattr(spec, "bias", None))))


def _json(body: bytes | None) -> dict | None:
    """A copied report, read for its summary (what cannot be read is not summarized: the copy is kept either way)."""
    try:
        document = json.loads(body) if body else None
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _register(spec, upstream: dict, lineage: dict[str, str], uris: dict[str, str], execution_arn: str,
              upstream_env: str, offer: logic.Offer) -> tuple[str, int | None]:
    """The package in this account's registry: this account's serving image (the same framework image; a
    bring-your-own image must be in this account's reach), this account's copies, the upstream lineage."""
    source = logic.container(upstream)
    specification = {key: value for key, value in (upstream.get("InferenceSpecification") or {}).items()
                     if key != "Containers"}
    registry = dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP"))
    arn = registry.create(
        ModelPackageDescription=f"{spec.name}: {upstream_env} version {offer.version}, sha256 {offer.sha256}"[:1024],
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={**specification, "Containers": [{
            "Image": setting("INFERENCE_IMAGE"), "ModelDataUrl": uris["model"], "Environment": source.get("Environment", {})}]},
        ModelMetrics=evidence.model_metrics(uris["evaluation"], uris.get("bias", ""), uris.get("bias_pre_training", ""),
                                            uris.get("bias_post_training", ""), uris.get("explainability", "")),
        **({"ModelCard": card} if (card := logic.promoted_model_card(upstream)) else {}),
        DriftCheckBaselines={"ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": uris["statistics"]},
            "Constraints": {"ContentType": "application/json", "S3Uri": uris["constraints"]}}},
        MetadataProperties={"CommitId": (upstream.get("MetadataProperties") or {}).get("CommitId", "unknown"),
                            "GeneratedBy": execution_arn},
        CustomerMetadataProperties=lineage,
        Tags=[{"Key": "mlops:model", "Value": spec.name}, {"Key": "mlops:promoted-from", "Value": offer.package_arn}])
    return arn, registry.describe(arn).get("ModelPackageVersion")


# ------------------------------------------------------------------ the offering side

class ExecutionDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    execution_arn: str = Field(alias="executionArn")
    state_machine_arn: str = Field(alias="stateMachineArn")
    status: Literal["SUCCEEDED"]
    name: str = ""


class ExecutionSucceeded(EventBridgeModel):
    """EventBridge's `Step Functions Execution Status Change` of this stage's own state machine (the rule filters)."""

    detail: ExecutionDetail


def _offered_model(event: ExecutionSucceeded) -> str:
    """The model whose retraining machine ran the execution (the rule matches every machine of the environment)."""
    return tenancy.model_of_execution(event.detail.execution_arn)


@task_handler(ExecutionSucceeded, lambda event: (_offered_model(event), event.detail.name))
def offer(event: ExecutionSucceeded, context: LambdaContext) -> dict:
    with tenancy.acting_for(_offered_model(event)):
        return _offer(event)


def _released() -> tuple[dict | None, str | None]:
    """(the newest Approved package, what this stage released): what its serving endpoint serves, or, where the
    stage serves nothing (a training account), the newest package a successful run released (logic.newest_released);
    found version by version (no ListModelPackages: see versions_after)."""
    target = setting("SERVING_ENDPOINT")
    if not target:
        newest = logic.newest_released(promotion_dal.versions_after(promotion_dal.before_first_version(
            setting("STATE_MACHINE_ARN"), setting("MODEL_PACKAGE_GROUP"))))
        return newest, newest["ModelPackageArn"] if newest else None
    served_arn = dal.Endpoints().served_package(target, model_spec().deployment.hosting)
    served = promotion_dal.describe_package(served_arn) if served_arn else None
    return logic.newest_approved(served, promotion_dal.versions_after(served) if served else []), served_arn


def _offer(event: ExecutionSucceeded) -> dict:
    if event.detail.state_machine_arn != setting("STATE_MACHINE_ARN"):
        return {"offered": False, "reason": f"{event.detail.state_machine_arn} is not this model's state machine"}
    spec, downstream = model_spec(), setting("DOWNSTREAM_ENV")
    newest, served_arn = _released()
    package, reason = logic.what_to_offer(newest, served_arn, downstream)
    if package is None:
        logger.info("nothing offered", extra={"reason": reason})
        return {"offered": False, "reason": reason}
    offered = logic.offer_of(package, spec.name, setting("PROMOTION_ENV"), _approved_digest(spec, package))
    promotion_dal.put_event(logic.offer_event(offered, setting("DOWNSTREAM_BUS_ARN")))
    promotion_dal.record_metadata(offered.package_arn, logic.offer_marker(downstream))
    metrics.add_metric(name="PackagesOffered", unit="Count", value=1)
    logger.info("package offered", extra={"package": offered.package_arn, "to": downstream, SHA256_KEY: offered.sha256})
    return {"offered": True, "reason": reason, **offered.model_dump()}


class OfferReceived(EventBridgeModel):
    """An offer on this stage's promotion bus; EventBridge sets `account`, and the bus policy bound `source` to the
    sender's model."""

    detail: logic.Offer


def _received_model(event: OfferReceived) -> str:
    model = model_of_source(event.source)
    if model is None or event.detail.model != model:
        raise logic.PromotionRefused(f"an offer of {event.detail.model!r} came with the source {event.source!r}, "
                                     f"which names another model (or none): not started")
    return model


@task_handler(OfferReceived, lambda event: (_received_model(event), event.id))
def receive(event: OfferReceived, context: LambdaContext) -> dict:
    model = _received_model(event)
    with tenancy.acting_for(model):
        arn = promotion_dal.start_execution(setting("STATE_MACHINE_ARN"), f"promotion-{event.id}"[:80], {
            "offer": event.detail.model_dump(), "offered_by_account": event.account,
            "offer_source": offer_source(model)})
    logger.info("promotion run started", extra={"execution": arn, "from": event.detail.package_arn})
    return {"execution_arn": arn}


def _approved_digest(spec, package: dict) -> str:
    """The sha256 the approval recorded, once the package still serves that artifact and its bytes are unchanged
    (the deploy gate's own check): the offer carries what was approved, not what lies there now."""
    execution = logic.producing_execution_name(package)
    approval = dal.ApprovalStore(setting("AUDIT_TABLE")).get(spec.name, execution) or {}
    now = dal.artifact_now(release.package_artifact(package)["artifact_uri"])
    return release.check_artifact(package, approval, now)["artifact_sha256"]

"""The shared endpoint's captured traffic, filed by model: each capture file SageMaker writes under
data-capture/<shared endpoint>/ is split into the lines each model answered, written under that model's own serving
target's prefix (data-capture/<model>-<env>-<stage>/AllTraffic/, where a dedicated endpoint would capture).

A shared endpoint captures every inference component's requests under one prefix, and neither SageMaker's record nor
its S3 path names the component; the model kit's answer names its model (MLOPS_MODEL: lambdas/drift/capture.py). Split
once as each file lands (an S3 "Object Created" event through EventBridge), each model's drift check then reads its own
prefix only: the model-scoped grants hold as for dedicated hosting, a data scientist reads their model's captures, and
the fleet's traffic is read once, not once per model. The smoke test's requests (InferenceId mlops-smoke-*) are no
model's traffic; lines naming no model are counted, never filed.
"""

from __future__ import annotations

import re

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.drift.capture import SMOKE_INFERENCE_ID, answer_of
from lambdas.shared import dal
from lambdas.shared.config import setting
from lambdas.shared.observability import logger, metrics, tracer
from pipelines import naming

_MODEL_NAME = re.compile(naming.MODEL_NAME_PATTERN)
CAPTURED = "/AllTraffic/"


def split_lines(lines: list[bytes]) -> tuple[dict[str, list[bytes]], dict[str, int]]:
    """({model: its lines}, counts of the lines filed under no model: smoke-test requests and unnamed answers)."""
    by_model: dict[str, list[bytes]] = {}
    counts = {"smoke_test": 0, "unattributed": 0}
    for line in lines:
        if not line.strip():
            continue
        model, inference_id = answer_of(line)
        if (inference_id or "").startswith(SMOKE_INFERENCE_ID):
            counts["smoke_test"] += 1
        elif model is None or not _MODEL_NAME.match(model):
            counts["unattributed"] += 1
        else:
            by_model.setdefault(model, []).append(line)
    return by_model, counts


def target_key(source_key: str, model: str, env: str, stage: str) -> str:
    """data-capture/<shared>/AllTraffic/yyyy/mm/dd/hh/<file> -> data-capture/<model>-<env>-<stage>/AllTraffic/yyyy/..."""
    return f"data-capture/{naming.endpoint(model, env, stage)}{CAPTURED}{source_key.split(CAPTURED, 1)[1]}"


def split_file(store: dal.ObjectStore, key: str, env: str, stage: str) -> dict:
    by_model, counts = split_lines(store.read_bytes(key).split(b"\n"))
    for model, lines in by_model.items():
        store.put_bytes(target_key(key, model, env, stage), b"\n".join(lines) + b"\n", "application/jsonl")
    return {"source": key, "lines": {model: len(lines) for model, lines in by_model.items()}, **counts}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=S3EventNotificationEventBridgeModel)
def handler(event: S3EventNotificationEventBridgeModel, context: LambdaContext) -> dict:
    key, prefix = event.detail.object.key, f"data-capture/{naming.shared_endpoint(setting('ENVIRONMENT'))}{CAPTURED}"
    if event.detail.bucket.name != setting("ARTIFACT_BUCKET") or not key.startswith(prefix):
        logger.warning("not a capture file of the shared endpoint; nothing split", extra={"key": key})
        return {"source": key, "split": False}
    result = split_file(dal.ObjectStore(setting("ARTIFACT_BUCKET")), key, setting("ENVIRONMENT"), setting("SERVING_STAGE"))
    metrics.add_metric(name="UnattributedCaptureLines", unit="Count", value=result["unattributed"])
    logger.info("shared capture split by model", extra=result)
    return {**result, "split": True}

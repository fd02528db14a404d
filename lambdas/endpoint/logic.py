"""Pure deployment logic: SageMaker request bodies from the spec, and the smoke test's verdict."""

from __future__ import annotations

import csv
import io
import json
import math

from lambdas.shared.release import ReleaseRefused  # noqa: F401 (the deploy gate's refusal)
from pipelines import instances, naming
from pipelines.spec import DeploymentSpec, TaskSpec

VARIANT = "AllTraffic"
SMOKE_ROWS = 20


class SmokeTestFailed(RuntimeError):
    """The new model did not serve sample rows correctly; the run stops and the old model stays."""


def producing_execution(package: dict) -> str:
    """The name of the run that registered a package (its MetadataProperties.GeneratedBy execution ARN)."""
    generated_by = (package.get("MetadataProperties") or {}).get("GeneratedBy", "")
    if ":execution:" not in generated_by:
        raise ReleaseRefused(f"{package.get('ModelPackageArn')} was not registered by a retraining run; "
                             "only packages with an audited approval are deployed")
    return generated_by.rsplit(":", 1)[1]


def check_release(package: dict, approval: dict | None, approvers: list[str],
                  principals: dict[str, list[str]] | None = None) -> dict:
    """The gate where it acts: deployed only if the registry says Approved AND the audit record shows the decision
    of a listed approver who did not start the run. A task token answered without the approval hook resumes a
    run, but cannot pass here."""
    from lambdas.approval.logic import identity, self_approval

    arn = package.get("ModelPackageArn")
    if package.get("ModelApprovalStatus") != "Approved":
        raise ReleaseRefused(f"{arn} is {package.get('ModelApprovalStatus')}, not Approved; nothing was deployed")
    if not approval or approval.get("status") != "APPROVED" or approval.get("model_package_arn") != arn:
        raise ReleaseRefused(f"{arn} has no APPROVED decision in the audit trail; nothing was deployed")
    decided_by = identity(str(approval.get("decided_by", "")))
    if decided_by not in {identity(a) for a in approvers}:
        raise ReleaseRefused(f"{arn} was approved by {decided_by!r}, who is not a listed approver; nothing was deployed")
    if self_approval(decided_by, str(approval.get("requested_by", "")), principals, approval.get("requested_by_person"),
                     approval.get("decided_by_person")):
        raise ReleaseRefused(f"{arn} was approved by the person who started its run; nothing was deployed")
    return {"approved_by": decided_by, "approved_at": approval.get("decided_at")}


def alarm_names(endpoint: str) -> list[str]:
    return [f"{endpoint}-5xx-rate", f"{endpoint}-p99-latency"]


def resource_names(model: str, env: str, stage: str, execution: str) -> dict[str, str]:
    """Each stage gets its own SageMaker model and config: CreateModel refuses a name that already exists. The smoke
    stage's endpoint (or inference component) is the run's own, deleted after the test."""
    endpoint = naming.smoke_target(model, env, execution) if stage == naming.SMOKE else naming.endpoint(model, env, stage)
    name = naming.sagemaker_name(endpoint, execution) if stage != naming.SMOKE else endpoint
    return {"endpoint": endpoint, "model": name, "config": name}  # models and endpoint configs: separate namespaces


def endpoint_config(names: dict, deployment: DeploymentSpec, capture_uri: str, key_arn: str, tags: list[dict],
                    smoke: bool = False) -> dict:
    """smoke: the run's ephemeral test endpoint: one instance, nothing captured (its rows are not traffic)."""
    variant = {"VariantName": VARIANT, "ModelName": names["model"]}
    if deployment.serverless:
        variant["ServerlessConfig"] = {"MemorySizeInMB": deployment.serverless.memory_mb,
                                       "MaxConcurrency": deployment.serverless.max_concurrency}
    else:
        variant.update(InstanceType=deployment.instance_type, InitialInstanceCount=1 if smoke else deployment.min_capacity)
    request = {"EndpointConfigName": names["config"], "ProductionVariants": [variant], "Tags": tags}
    if deployment.data_capture_percent > 0 and not smoke:  # never on serverless: the spec refuses it
        request["DataCaptureConfig"] = capture_config(deployment.data_capture_percent, capture_uri, key_arn)
    volume_key = None if deployment.serverless else instances.volume_key(deployment.instance_type, key_arn)
    if volume_key:  # serverless variants and instances with local NVMe storage take no volume key
        request["KmsKeyId"] = volume_key
    return request


def capture_config(percent: int, capture_uri: str, key_arn: str) -> dict:
    return {"EnableCapture": True, "InitialSamplingPercentage": percent, "DestinationS3Uri": capture_uri,
            "KmsKeyId": key_arn, "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"], "CsvContentTypes": ["text/csv"]}}


def inference_component(names: dict, deployment: DeploymentSpec, shared_endpoint: str, tags: list[dict],
                        smoke: bool = False) -> dict:
    """CreateInferenceComponent: the model on the shared endpoint with its own compute per copy. A serving
    component starts at min_copies (0: no capacity held until a request asks for it; the smoke test proved the
    model serves) and its autoscaling moves it within min_copies..max_copies; the smoke test's has one copy."""
    copies = 1 if smoke else deployment.shared.min_copies
    return {"InferenceComponentName": names["endpoint"], "EndpointName": shared_endpoint, "VariantName": VARIANT,
            "Specification": component_specification(names["model"], deployment),
            "RuntimeConfig": {"CopyCount": copies}, "Tags": tags}


def component_specification(model_name: str, deployment: DeploymentSpec) -> dict:
    return {"ModelName": model_name, "ComputeResourceRequirements": {
        "NumberOfCpuCoresRequired": deployment.shared.cpus, "MinMemoryRequiredInMb": deployment.shared.memory_mb}}


def component_deployment_policy(deployment: DeploymentSpec, component: str) -> dict:
    """UpdateInferenceComponent's rolling update, the inference-component form of blue/green: new copies replace
    old ones a batch at a time (canary: canary_percent first, then the rest; linear: linear_step_percent each
    wait; all_at_once: every copy in one batch), rolled back all copies at once when an alarm fires. A percentage
    batch must be 5-50% of the copies (UpdateInferenceComponent's RollingUpdatePolicy), so "all" is a copy count."""
    percent = {"canary": deployment.canary_percent, "linear": deployment.linear_step_percent}.get(deployment.strategy)
    every_copy = {"Type": "COPY_COUNT", "Value": deployment.shared.max_copies}
    return {
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": max(5, percent)} if percent else every_copy,
            "WaitIntervalInSeconds": deployment.wait_minutes * 60,
            "MaximumExecutionTimeoutInSeconds": min(28800, max(600, (deployment.wait_minutes * 10 + deployment.bake_minutes) * 60 + 1800)),
            "RollbackMaximumBatchSize": every_copy},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarm_names(component)]},
    }


def deployment_policy(deployment: DeploymentSpec, endpoint: str) -> dict:
    """Blue/green with canary or linear shifting, rolled back automatically when an alarm fires."""
    if deployment.strategy == "canary":
        routing = {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": deployment.canary_percent},
                   "WaitIntervalInSeconds": deployment.wait_minutes * 60}
    elif deployment.strategy == "linear":
        routing = {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": deployment.linear_step_percent},
                   "WaitIntervalInSeconds": deployment.wait_minutes * 60}
    else:  # all_at_once, and always for serverless endpoints (the spec refuses other strategies there)
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    return {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing,
                                  "TerminationWaitInSeconds": deployment.bake_minutes * 60,
                                  "MaximumExecutionTimeoutInSeconds": max(600, (deployment.wait_minutes * 10 + deployment.bake_minutes) * 60 + 1800)},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarm_names(endpoint)]},
    }


def sample_rows(csv_text: str, features: list[str], limit: int = SMOKE_ROWS) -> list[dict]:
    reader = csv.DictReader(io.StringIO(csv_text))
    rows = []
    for row in reader:
        rows.append({name: row[name] for name in features})
        if len(rows) == limit:
            break
    return rows


def judge_smoke_test(status: int, body: bytes, rows: int, latency_ms: float, max_latency_ms: float,
                     task: TaskSpec | None = None, names_model: str | None = None) -> dict:
    """The smoke-test endpoint's answer to the sample rows, checked as the spec's task type wants it (its latency only
    reported, against max_latency_ms): binary
    {"probability" in [0, 1], "label" 0/1}, multiclass {"label" (a declared class), "probabilities" summing to 1},
    regression {"value" a finite number}, custom: every declared prediction field."""
    task = task or TaskSpec()
    if status != 200:
        raise SmokeTestFailed(f"the endpoint answered HTTP {status}: {body[:300]!r}")
    try:
        answer = json.loads(body)
        predictions = answer["predictions"]
    except (ValueError, KeyError, TypeError):
        raise SmokeTestFailed(f"the endpoint's answer is not {{'predictions': [...]}}: {body[:300]!r}") from None
    if names_model and answer.get("model") != names_model:
        raise SmokeTestFailed(
            f"the answer names model {answer.get('model')!r}, not {names_model!r}: a shared endpoint's data capture "
            f"tells each model's traffic by the \"model\" its responses carry ({naming.MODEL_IDENTITY_VARIABLE}, "
            "modelkit.serving.output_fn); retrain with this platform's modelkit, or write it in your output_fn")
    if not isinstance(predictions, list) or len(predictions) != rows:
        raise SmokeTestFailed(f"{len(predictions) if isinstance(predictions, list) else 'no list of'} predictions "
                              f"for {rows} rows")
    check, summarize = RESPONSE_CHECKS[task.type]
    bad = [p for p in predictions if not isinstance(p, dict) or not check(p, task)]
    if bad:
        raise SmokeTestFailed(f"{len(bad)} of {rows} predictions are not {RESPONSE_WORDS[task.type]} "
                              f"(task.type: {task.type}), e.g. {str(bad[0])[:200]}")
    # Latency is reported, never judged here: one request's wall-clock time depends on the machine that sends it
    # (a busy laptop in the local mode), and the endpoint's p99-latency CloudWatch alarm, which rolls a blue/green
    # deployment back, judges latency on the real traffic.
    return {"rows": rows, "latency_ms": round(latency_ms, 1), "slower_than_alarm": latency_ms > max_latency_ms,
            **summarize(predictions, task)}


def _number(value, low: float = -math.inf, high: float = math.inf) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high


def _binary(prediction: dict, task: TaskSpec) -> bool:
    return _number(prediction.get("probability"), 0.0, 1.0) and prediction.get("label", 0) in (0, 1)


def _multiclass(prediction: dict, task: TaskSpec) -> bool:
    probabilities = prediction.get("probabilities")
    if not isinstance(probabilities, dict) or not probabilities or "label" not in prediction:
        return False
    if task.classes is not None and (str(prediction["label"]) not in task.classes
                                     or set(map(str, probabilities)) - set(task.classes)):
        return False
    return all(_number(p, 0.0, 1.0) for p in probabilities.values()) and abs(sum(probabilities.values()) - 1) <= 1e-3


def _regression(prediction: dict, task: TaskSpec) -> bool:
    return _number(prediction.get("value"))


def _custom(prediction: dict, task: TaskSpec) -> bool:
    return all(field in prediction for field in task.custom.prediction_fields)


def _mean(predictions: list, field: str) -> float:
    return round(sum(float(p[field]) for p in predictions) / len(predictions), 4)


def _labels(predictions: list, task: TaskSpec) -> dict:
    counts: dict[str, int] = {}
    for prediction in predictions:
        counts[str(prediction["label"])] = counts.get(str(prediction["label"]), 0) + 1
    return {"predicted_labels": dict(sorted(counts.items()))}


RESPONSE_CHECKS = {
    "binary": (_binary, lambda predictions, task: {"mean_probability": _mean(predictions, "probability")}),
    "multiclass": (_multiclass, _labels),
    "regression": (_regression, lambda predictions, task: {"mean_value": _mean(predictions, "value")}),
    "custom": (_custom, lambda predictions, task: {}),
}
RESPONSE_WORDS = {"binary": "probabilities in [0, 1] with a 0/1 label",
                  "multiclass": "a declared class label with probabilities summing to 1",
                  "regression": "finite numbers ({\"value\": x})", "custom": "objects with the declared prediction_fields"}

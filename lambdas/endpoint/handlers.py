"""Deployment steps of the retraining run: deploy (create or blue/green update), smoke test, roll back."""

from __future__ import annotations

import json
import time
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.endpoint import logic
from lambdas.shared import dal, release
from lambdas.shared.config import model_spec, setting
from lambdas.shared.errors import failure_reason
from lambdas.shared.events import TaskEvent, pipeline_task
from lambdas.shared.observability import logger, metrics
from pipelines import naming


class StageEvent(TaskEvent):
    stage: str


def deploy_package(spec, env: str, stage: str, execution: str, package_arn: str, *, role_arn: str, key_arn: str,
                   capture_uri: str) -> dict:
    """Creates the endpoint, or moves it to the package with the spec's blue/green policy (the run and `mlops rollback`)."""
    model = spec.name
    release = verify_release(spec, env, package_arn)
    names = logic.resource_names(model, env, stage, execution)
    tags = [{"Key": "mlops:model", "Value": model}, {"Key": "mlops:package", "Value": package_arn}]
    endpoints = dal.Endpoints()
    shared = spec.deployment.hosting == "shared"
    endpoints.create_model(names["model"], role_arn, package_arn, tags, isolated=not spec.deployment.serverless,
                           environment={naming.MODEL_IDENTITY_VARIABLE: model} if shared else None)
    if shared:
        deployed = deploy_component(endpoints, spec, env, stage, names, tags)
        logger.info("deployment started", extra={"stage": stage, **deployed, **release})
        return {**deployed, "package_arn": package_arn, **release}
    smoke = stage == naming.SMOKE
    endpoints.create_config(logic.endpoint_config(names, spec.deployment, capture_uri, key_arn, tags, smoke=smoke))
    existing = None if smoke else endpoints.describe(names["endpoint"])
    if existing is None:
        endpoints.create(names["endpoint"], names["config"], tags)
        action, previous = "created", None
    else:
        previous = existing["EndpointConfigName"]
        endpoints.update(names["endpoint"], names["config"], logic.deployment_policy(spec.deployment, names["endpoint"]))
        action = "updated (blue/green)"
    logger.info("deployment started", extra={"stage": stage, "endpoint": names["endpoint"], "action": action, **release})
    return {**names, "hosting": "dedicated", "action": action, "previous_config": previous, "package_arn": package_arn,
            **release}


def deploy_component(endpoints: dal.Endpoints, spec, env: str, stage: str, names: dict, tags: list[dict]) -> dict:
    """hosting: shared: the model as an inference component of the environment's shared endpoint, created, or
    moved to the new model by a rolling update that the component's alarms roll back. "config" is what
    DescribeInferenceComponent reports once this model serves (its Specification.ModelName)."""
    shared, deployment = naming.shared_endpoint(env), spec.deployment
    smoke = stage == naming.SMOKE
    existing = None if smoke else endpoints.describe_component(names["endpoint"])
    if existing is None:
        endpoints.create_component(logic.inference_component(names, deployment, shared, tags, smoke=smoke))
        action, previous = "created", None
    else:
        previous = existing["Specification"]["ModelName"]
        endpoints.update_component(names["endpoint"], logic.component_specification(names["model"], deployment),
                                   logic.component_deployment_policy(deployment, names["endpoint"]))
        action = "updated (rolling)"
    return {"endpoint": names["endpoint"], "model": names["model"], "config": names["model"], "hosting": "shared",
            "shared_endpoint": shared, "action": action, "previous_config": previous}


def verify_release(spec, env: str, package_arn: str) -> dict:
    """Reads the registry, the audit trail and the artifact itself (never the run's state) and refuses a package
    that is not approved, or whose artifact or image is not exactly the one approved."""
    package = dal.ModelRegistry(naming.model_package_group(spec.name, env)).describe(package_arn)
    approval = dal.ApprovalStore(naming.audit_table(env)).get(spec.name, logic.producing_execution(package))
    verdict = logic.check_release(package, approval, spec.approval.approvers, spec.approval.principals)
    now = dal.artifact_now(release.package_artifact(package)["artifact_uri"])
    return {**verdict, **release.check_artifact(package, approval, now)}


@pipeline_task(StageEvent)
def deploy(event: StageEvent, context: LambdaContext) -> dict:
    state = event.state
    result = deploy_package(model_spec(), setting("ENVIRONMENT"), event.stage, event.execution_name,
                            state["registration"]["model_package_arn"], role_arn=setting("ENDPOINT_ROLE_ARN"),
                            key_arn=setting("KMS_KEY_ARN"), capture_uri=f"s3://{setting('ARTIFACT_BUCKET')}/data-capture")
    metrics.add_metric(name="Deployments", unit="Count", value=1)
    return result


@pipeline_task(StageEvent)
def smoke_test(event: StageEvent, context: LambdaContext) -> dict:
    spec, state = model_spec(), event.state
    bucket, key = dal.parse_s3_uri(state["validation"]["snapshot_uri"])
    rows = logic.sample_rows(dal.ObjectStore(bucket).read_bytes(key).decode(), spec.dataset.features)
    deployed = state["deployment"][event.stage]
    endpoint = deployed["endpoint"]
    started = time.perf_counter()
    status, body = invoke_target(deployed, json.dumps({"instances": rows}).encode(), event.execution_name)
    latency_ms = (time.perf_counter() - started) * 1000
    verdict = logic.judge_smoke_test(status, body, len(rows), latency_ms,
                                     max_latency_ms=max(spec.deployment.alarms.max_p99_latency_ms * 10, 2000),
                                     task=spec.task, names_model=spec.name if deployed.get("hosting") == "shared" else None)
    if verdict["slower_than_alarm"]:
        logger.warning("smoke test answered slower than the latency alarm's threshold; the endpoint's p99 alarm judges "
                       "latency on real traffic", extra={"endpoint": endpoint, **verdict})
    logger.info("smoke test passed", extra={"endpoint": endpoint, **verdict})
    return verdict


def invoke_target(deployed: dict, body: bytes, execution: str) -> tuple[int, bytes]:
    """A deployed stage's endpoint, or its inference component on the shared endpoint, whose data capture records
    every component's requests: the smoke test's InferenceId tells its rows from traffic (lambdas/drift/split.py)."""
    if deployed.get("hosting") == "shared":
        return dal.Endpoints.invoke(deployed["shared_endpoint"], body, component=deployed["endpoint"],
                                    inference_id=f"{naming.SMOKE_INFERENCE_ID}{execution}"[:64])
    return dal.Endpoints.invoke(deployed["endpoint"], body)


@pipeline_task(TaskEvent)
def restore_after_failure(event: TaskEvent, context: LambdaContext) -> dict:
    """Any failure once a package was approved (deployment, smoke test, alarm rollback, autoscaling, batch):
    every stage this run touched serves what it served before (or goes away if it served nothing), and the
    package is rejected, so it never becomes the champion or the drift baseline."""
    state = event.state
    endpoints = dal.Endpoints()
    deployed = state.get("deployment") or {}
    actions = {stage: restore_stage(endpoints, deployed[stage]) for stage in ("prod", "staging", naming.SMOKE)
               if isinstance(deployed.get(stage), dict) and deployed[stage].get("endpoint")}
    package = state["registration"]["model_package_arn"]
    reason = failure_reason(state.get("error"))
    dal.ModelRegistry(setting("MODEL_PACKAGE_GROUP")).set_status(package, "Rejected", f"release failed: {reason}")
    metrics.add_metric(name="Rollbacks", unit="Count", value=1)
    logger.warning("release failed: stages restored, package rejected", extra={"restored": actions, "reason": reason})
    return {"restored": actions, "package_status": "Rejected", "reason": reason}


def restore_stage(endpoints: dal.Endpoints, deployed: dict) -> str:
    if deployed.get("hosting") == "shared":
        return restore_component(endpoints, deployed)
    endpoint, previous = deployed["endpoint"], deployed.get("previous_config")
    current = endpoints.describe(endpoint)
    if current is None:
        return "absent"
    if previous and current["EndpointConfigName"] == previous:
        return f"serves {previous} already (rolled back by its alarms)"
    if previous:
        endpoints.update(endpoint, previous, None)
        return f"restored {previous}"
    endpoints.delete(endpoint)
    return "deleted (it served nothing before this run)"


def restore_component(endpoints: dal.Endpoints, deployed: dict) -> str:
    """The inference-component form of restore_stage: back to the model it served, or gone if it served none."""
    name, previous = deployed["endpoint"], deployed.get("previous_config")
    current = endpoints.describe_component(name)
    if current is None:
        return "absent"
    serving = current["Specification"]["ModelName"]
    if previous and serving == previous:
        return f"serves {previous} already (rolled back by its alarms)"
    if previous:
        endpoints.update_component(name, {"ModelName": previous, "ComputeResourceRequirements":
                                          current["Specification"]["ComputeResourceRequirements"]}, None)
        return f"restored {previous}"
    endpoints.delete_component(name)
    return "deleted (it served nothing before this run)"

"""The control plane's shared functions act for one model at a time (issue 26), under enforced IAM with the roles
the CDK synthesizes: acting for churn, a function reaches churn's record and topic and nothing of another model's;
its own role reaches no model at all; only it may take a model-scoped session, and only with the model tag."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from pipelines import naming
from pipelines.model_record import ModelRecord
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT
from tests.integration.conftest import LOCAL_ACCOUNT, LOCAL_REGION, denied, scoped_session, without_role_action

pytestmark = pytest.mark.slow

ROUTER = "CostAnomaliesRouterHandlerFunction"
TOPIC = f"arn:aws:sns:{LOCAL_REGION}:{LOCAL_ACCOUNT}:" + "{}"


def _anomaly(value: str, impact: float = 120.0) -> dict:
    message = {"anomalyId": f"anomaly-{value}", "dimensionalValue": value, "anomalyStartDate": "2026-12-01T00:00:00Z",
               "impact": {"totalImpact": impact, "totalActualSpend": impact + 10, "totalExpectedSpend": 10},
               "rootCauses": [{"service": "Amazon SageMaker", "region": LOCAL_REGION}]}
    topic = TOPIC.format(naming.cost_anomaly_topic("local"))
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": f"{topic}:sub",
                         "Sns": {"Type": "Notification", "MessageId": "m-1", "TopicArn": topic, "Subject": None,
                                 "Message": json.dumps(message), "Timestamp": "2026-12-03T10:00:00.000Z",
                                 "SignatureVersion": "1", "Signature": "c2ln", "MessageAttributes": {},
                                 "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
                                 "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}}]}


def _inbox(topic_name: str) -> str:
    """An SQS queue subscribed (as the admin driver) to the topic."""
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName=f"inbox-{topic_name}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=TOPIC.format(topic_name), Protocol="sqs", Endpoint=arn)
    return queue


def _subjects(queue: str) -> list[str]:
    messages = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]).get("Subject") for m in messages]


def _second_model() -> None:
    """What deploying a second model, houses, leaves in the environment: its topic and its record."""
    boto3.client("sns").create_topic(Name=naming.notification_topic("houses", "local"))
    spec = load_spec(REPO_ROOT / "pipelines/houses/model.yaml")
    record = ModelRecord(model="houses", env="local", spec=spec,
                         settings={"NOTIFICATION_TOPIC_ARN": TOPIC.format(naming.notification_topic("houses", "local"))})
    boto3.client("ssm").put_parameter(Name=naming.model_record_parameter("houses", "local"),
                                      Value=record.model_dump_json(), Type="String")


@pytest.fixture
def control_plane(enforced_platform):
    provisioned = enforced_platform(adjust=None)
    return provisioned, provisioned.function_named(ROUTER)


def _scoped_role(function) -> str:
    return function.environment["MODEL_SCOPED_ROLE_ARN"]


def _as_function(function):
    return function.credentials.session(LOCAL_REGION)


def _acting_for(function, model: str, **tags) -> boto3.Session:
    return scoped_session(function, model, **tags)


def test_an_anomaly_reaches_its_models_topic_from_a_session_acting_for_that_model(control_plane):
    _, router = control_plane
    churn, platform = _inbox(naming.notification_topic("churn", "local")), _inbox(naming.platform_topic("local"))
    assert router.call(_anomaly("churn", impact=120.0), {}) == [
        {"to": "model", "reason": "impact $120.00 is at least churn's threshold $50.00"}]
    assert _subjects(churn) == ["[local] cost anomaly: churn $120.00"] and _subjects(platform) == []


def test_an_anomaly_below_the_models_threshold_is_told_to_nobody(control_plane):
    _, router = control_plane
    churn = _inbox(naming.notification_topic("churn", "local"))
    assert router.call(_anomaly("mlops:model$churn", impact=49.99), {})[0]["to"] == "none"
    assert _subjects(churn) == []


def test_spend_of_a_model_not_deployed_here_goes_to_the_platform_topic(control_plane):
    _, router = control_plane
    platform = _inbox(naming.platform_topic("local"))
    assert router.call(_anomaly("ghost"), {})[0]["to"] == "platform"
    assert router.call(_anomaly("mlops:model$"), {})[0]["to"] == "platform"
    assert _subjects(platform) == ["[local] cost anomaly: ghost $120.00", "[local] cost anomaly: mlops:model$ $120.00"]


def test_acting_for_churn_the_router_reaches_churns_record_and_topic_and_not_another_models(control_plane):
    _, router = control_plane
    _second_model()
    churn = _acting_for(router, "churn")
    assert json.loads(churn.client("ssm").get_parameter(
        Name=naming.model_record_parameter("churn", "local"))["Parameter"]["Value"])["model"] == "churn"
    churn.client("sns").publish(TopicArn=TOPIC.format(naming.notification_topic("churn", "local")), Message="m")
    with pytest.raises(ClientError, match="AccessDenied.*ssm:GetParameter"):
        churn.client("ssm").get_parameter(Name=naming.model_record_parameter("houses", "local"))
    with pytest.raises(ClientError, match="AuthorizationError|AccessDenied"):
        churn.client("sns").publish(TopicArn=TOPIC.format(naming.notification_topic("houses", "local")), Message="m")
    houses = _acting_for(router, "houses")  # the same function acting for houses: houses' own, and only those
    houses.client("sns").publish(TopicArn=TOPIC.format(naming.notification_topic("houses", "local")), Message="m")
    with pytest.raises(ClientError, match="AuthorizationError|AccessDenied"):
        houses.client("sns").publish(TopicArn=TOPIC.format(naming.notification_topic("churn", "local")), Message="m")


def test_the_routers_own_role_reaches_no_model(control_plane):
    _, router = control_plane
    with pytest.raises(ClientError, match="AuthorizationError|AccessDenied"):
        _as_function(router).client("sns").publish(TopicArn=TOPIC.format(naming.notification_topic("churn", "local")),
                                                   Message="m")
    with pytest.raises(ClientError, match="AccessDenied"):
        _as_function(router).client("ssm").get_parameter(Name=naming.model_record_parameter("churn", "local"))


def test_a_scoped_session_needs_the_model_tag_and_no_other(control_plane):
    _, router = control_plane
    sts = _as_function(router).client("sts")
    with pytest.raises(ClientError, match="AccessDenied"):
        sts.assume_role(RoleArn=_scoped_role(router), RoleSessionName="untagged")
    with pytest.raises(ClientError, match="AccessDenied"):
        _acting_for(router, "churn", team="risk")
    for value in ("houses/x", "churn.x", "a:b"):  # characters of tag values no model name has ('/' reaches prefixes)
        with pytest.raises(ClientError, match="AccessDenied"):
            sts.assume_role(RoleArn=_scoped_role(router), RoleSessionName="sneaky",
                            Tags=[{"Key": naming.MODEL_TAG, "Value": value}])


def test_no_other_role_may_take_the_routers_scoped_session(control_plane):
    provisioned, router = control_plane
    validate = provisioned.function_named("PipelineTasksValidate")  # another control-plane function
    with pytest.raises(ClientError, match="AccessDenied"):
        validate.credentials.client("sts", LOCAL_REGION).assume_role(
            RoleArn=_scoped_role(router), RoleSessionName="churn", Tags=[{"Key": naming.MODEL_TAG, "Value": "churn"}])


# ------------------------------------------------------------------ the drift check
DRIFT = "DriftChecks"
BUCKET = naming.artifact_bucket("local", LOCAL_ACCOUNT, LOCAL_REGION)
AUDIT = naming.audit_table("local")


def _capture_key(model: str) -> str:
    return f"data-capture/{naming.endpoint(model, 'local', 'prod')}/AllTraffic/2026/12/07/10/part.jsonl"




def test_acting_for_churn_the_drift_check_reads_writes_and_starts_only_churns(enforced_platform):
    provisioned = enforced_platform()
    drift = provisioned.function_named(DRIFT)
    for model in ("churn", "houses"):
        boto3.client("s3").put_object(Bucket=BUCKET, Key=_capture_key(model), Body=b"{}")
    churn = _acting_for(drift, "churn")
    s3, dynamodb, sagemaker = churn.client("s3"), churn.client("dynamodb"), churn.client("sagemaker")
    assert s3.get_object(Bucket=BUCKET, Key=_capture_key("churn"))["Body"].read() == b"{}"
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=_capture_key("churn").rsplit("/", 4)[0] + "/")["KeyCount"] == 1
    s3.put_object(Bucket=BUCKET, Key="drift/churn/r/report.json", Body=b"{}")
    dynamodb.update_item(TableName=AUDIT, Key={"pk": {"S": "model#churn"}, "sk": {"S": "drift#cooldown"}},
                         UpdateExpression="SET last_triggered = :t", ExpressionAttributeValues={":t": {"N": "1"}})
    assert "s3:GetObject" in denied(lambda: s3.get_object(Bucket=BUCKET, Key=_capture_key("houses")))
    denied(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix=_capture_key("houses").rsplit("/", 4)[0] + "/"))
    denied(lambda: s3.list_objects_v2(Bucket=BUCKET))  # no prefix: not a listing of churn's captures
    denied(lambda: s3.put_object(Bucket=BUCKET, Key="drift/houses/r/report.json", Body=b"{}"))
    denied(lambda: dynamodb.update_item(
        TableName=AUDIT, Key={"pk": {"S": "model#houses"}, "sk": {"S": "drift#cooldown"}},
        UpdateExpression="SET last_triggered = :t", ExpressionAttributeValues={":t": {"N": "1"}}))
    denied(lambda: sagemaker.describe_endpoint(EndpointName=naming.endpoint("houses", "local", "prod")))
    denied(lambda: churn.client("stepfunctions").start_execution(
        stateMachineArn=f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:stateMachine:houses-local-retraining"))


def test_the_drift_checks_own_role_reaches_no_models_captures(enforced_platform):
    drift = enforced_platform().function_named(DRIFT)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=_capture_key("churn"), Body=b"{}")
    denied(lambda: _as_function(drift).client("s3").get_object(Bucket=BUCKET, Key=_capture_key("churn")))


def test_a_drift_schedule_for_a_model_not_deployed_here_fails_naming_it(enforced_platform):
    drift = enforced_platform().function_named(DRIFT)
    with pytest.raises(LookupError, match="no model named ghost is deployed in local"):
        drift.call({"model": "ghost", "scheduled_time": "2026-12-07T10:00:00Z", "execution_id": "e"}, {})


# ------------------------------------------------------------------ the quality check
QUALITY = "QualityChecks"


def test_acting_for_churn_the_quality_check_reads_labels_and_writes_reports_of_churn_only(enforced_platform):
    quality = enforced_platform().function_named(QUALITY)
    for model in ("churn", "houses"):
        for key in (_capture_key(model), f"ground-truth/{model}/2026/12/07/10/l.jsonl", f"quality/{model}/t/report.json"):
            boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"{}")
    churn = _acting_for(quality, "churn")
    s3, dynamodb = churn.client("s3"), churn.client("dynamodb")
    for key in ("runs/churn/r/evaluation.json", "runs/churn/r/source/train.csv"):
        boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"{}")
    for key in (_capture_key("churn"), "ground-truth/churn/2026/12/07/10/l.jsonl", "quality/churn/t/report.json",
                "runs/churn/r/evaluation.json"):
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"{}"
    denied(lambda: s3.get_object(Bucket=BUCKET, Key="runs/churn/r/source/train.csv"))  # a run's data: not the check's
    for prefix in ("ground-truth/churn/2026/12/07/10/", "quality/churn/"):
        assert s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["KeyCount"] == 1
    s3.put_object(Bucket=BUCKET, Key="quality/churn/r/report.json", Body=b"{}")
    dynamodb.update_item(TableName=AUDIT, Key={"pk": {"S": "model#churn"}, "sk": {"S": "drift#cooldown"}},
                         UpdateExpression="SET last_triggered = :t", ExpressionAttributeValues={":t": {"N": "1"}})
    for key in (_capture_key("houses"), "ground-truth/houses/2026/12/07/10/l.jsonl", "quality/houses/t/report.json"):
        assert "s3:GetObject" in denied(lambda key=key: s3.get_object(Bucket=BUCKET, Key=key))
    denied(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="ground-truth/houses/"))
    denied(lambda: s3.put_object(Bucket=BUCKET, Key="quality/houses/r/report.json", Body=b"{}"))
    denied(lambda: s3.put_object(Bucket=BUCKET, Key="ground-truth/churn/2026/12/07/10/forged.jsonl", Body=b"{}"))
    denied(lambda: dynamodb.update_item(
        TableName=AUDIT, Key={"pk": {"S": "model#houses"}, "sk": {"S": "drift#cooldown"}},
        UpdateExpression="SET last_triggered = :t", ExpressionAttributeValues={":t": {"N": "1"}}))
    denied(lambda: churn.client("stepfunctions").start_execution(
        stateMachineArn=f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:stateMachine:houses-local-retraining"))


def test_the_quality_checks_own_role_reaches_no_models_labels(enforced_platform):
    quality = enforced_platform().function_named(QUALITY)
    boto3.client("s3").put_object(Bucket=BUCKET, Key="ground-truth/churn/2026/12/07/10/l.jsonl", Body=b"{}")
    denied(lambda: _as_function(quality).client("s3").get_object(
        Bucket=BUCKET, Key="ground-truth/churn/2026/12/07/10/l.jsonl"))


# ------------------------------------------------------------------ the approval repair
def test_acting_for_churn_the_approval_repair_reads_and_applies_only_churns_decisions(enforced_platform):
    repair = enforced_platform().function_named("ApprovalRepair")
    churn = _acting_for(repair, "churn")
    dynamodb, sagemaker = churn.client("dynamodb"), churn.client("sagemaker")
    query = lambda model: dynamodb.query(  # noqa: E731  (what dal.ApprovalStore.records sends)
        TableName=AUDIT, KeyConditionExpression="(#n0 = :v0 AND begins_with(#n1, :v1))",
        ExpressionAttributeNames={"#n0": "pk", "#n1": "sk"},
        ExpressionAttributeValues={":v0": {"S": f"model#{model}"}, ":v1": {"S": "approval#"}})
    assert query("churn")["Items"] == []
    assert "dynamodb:Query" in denied(lambda: query("houses"))
    denied(lambda: dynamodb.update_item(
        TableName=AUDIT, Key={"pk": {"S": "model#houses"}, "sk": {"S": "approval#r"}},
        UpdateExpression="SET applied = :t", ExpressionAttributeValues={":t": {"BOOL": True}}))
    houses_package = f"arn:aws:sagemaker:{LOCAL_REGION}:{LOCAL_ACCOUNT}:model-package/houses-local/1"
    denied(lambda: sagemaker.update_model_package(ModelPackageArn=houses_package, ModelApprovalStatus="Approved"))
    denied(lambda: churn.client("stepfunctions").describe_execution(
        executionArn=f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:execution:houses-local-retraining:r"))


def test_a_repair_schedule_naming_no_model_is_refused_before_any_session(enforced_platform):
    from pydantic import ValidationError

    repair = enforced_platform().function_named("ApprovalRepair")
    with pytest.raises(ValidationError, match="model"):
        repair.call({}, {})


def test_a_failed_drift_check_tells_the_models_owners_and_keeps_failing_for_the_failure_queue(enforced_platform):
    drift = enforced_platform(without_role_action("DriftChecksScoped", "sagemaker:DescribeEndpoint")).function_named(DRIFT)
    churn = _inbox(naming.notification_topic("churn", "local"))
    with pytest.raises(ClientError, match="sagemaker:DescribeEndpoint"):
        drift.call({"model": "churn", "scheduled_time": "2026-12-07T10:00:00Z", "execution_id": "e"}, {})
    assert _subjects(churn) == ["[local] drift check of churn failed"]


def test_acting_for_churn_the_repair_decrypts_churns_task_tokens_only(enforced_platform):
    """The request function encrypts each task token with the model in its encryption context."""
    repair = enforced_platform().function_named("ApprovalRepair")
    key = repair.environment["KMS_KEY_ARN"]

    def token_of(model: str) -> bytes:
        return boto3.client("kms").encrypt(KeyId=key, Plaintext=b"task-token", EncryptionContext={
            "model": model, "execution": "r", "purpose": "approval-task-token"})["CiphertextBlob"]

    kms = _acting_for(repair, "churn").client("kms")
    context = {"model": "churn", "execution": "r", "purpose": "approval-task-token"}
    assert kms.decrypt(CiphertextBlob=token_of("churn"), EncryptionContext=context)["Plaintext"] == b"task-token"
    assert "kms:Decrypt" in denied(lambda: kms.decrypt(CiphertextBlob=token_of("houses"),
                                                        EncryptionContext={**context, "model": "houses"}))


# ------------------------------------------------------------------ the retraining tasks
def _task(provisioned, name: str):
    return provisioned.function_named(f"PipelineTasks{name.title()}")


def _put(key: str, body: bytes = b"{}") -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)


def _package_arn(model: str) -> str:
    return f"arn:aws:sagemaker:{LOCAL_REGION}:{LOCAL_ACCOUNT}:model-package/{naming.model_package_group(model, 'local')}/1"


def _machine_arn(model: str) -> str:
    return f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:stateMachine:{naming.state_machine(model, 'local')}"


def test_acting_for_churn_prepare_reads_only_churns_runs_executions_and_packages(enforced_platform):
    prepare = _task(enforced_platform(), "prepare")
    for model in ("churn", "houses"):
        _put(f"runs/{model}/r1/code/sourcedir.tar.gz")
    churn = _acting_for(prepare, "churn")
    s3, sfn, sagemaker = churn.client("s3"), churn.client("stepfunctions"), churn.client("sagemaker")
    s3.get_object(Bucket=BUCKET, Key="runs/churn/r1/code/sourcedir.tar.gz")
    sfn.list_executions(stateMachineArn=_machine_arn("churn"))
    assert "s3:GetObject" in denied(lambda: s3.get_object(Bucket=BUCKET, Key="runs/houses/r1/code/sourcedir.tar.gz"))
    assert "states:ListExecutions" in denied(lambda: sfn.list_executions(stateMachineArn=_machine_arn("houses")))
    assert "sagemaker:DescribeModelPackage" in denied(
        lambda: sagemaker.describe_model_package(ModelPackageName=_package_arn("houses")))


def test_acting_for_churn_validate_reads_churns_data_and_champion_and_not_another_models(enforced_platform):
    validate = _task(enforced_platform(), "validate")
    for model in ("churn", "houses"):
        _put(f"datasets/{model}/train.csv", b"a,b\n")
    s3, sagemaker = (lambda session: (session.client("s3"), session.client("sagemaker")))(_acting_for(validate, "churn"))
    assert s3.get_object(Bucket=BUCKET, Key="datasets/churn/train.csv")["Body"].read() == b"a,b\n"
    s3.put_object(Bucket=BUCKET, Key="runs/churn/r1/data/train.csv", Body=b"a,b\n")
    assert "s3:GetObject" in denied(lambda: s3.get_object(Bucket=BUCKET, Key="datasets/houses/train.csv"))
    assert "s3:PutObject" in denied(lambda: s3.put_object(Bucket=BUCKET, Key="runs/houses/r1/data/x", Body=b""))
    assert "sagemaker:DescribeEndpoint" in denied(
        lambda: sagemaker.describe_endpoint(EndpointName=naming.endpoint("houses", "local", "prod")))


def test_acting_for_churn_evaluate_reads_churns_trained_models_only(enforced_platform):
    evaluate = _task(enforced_platform(), "evaluate")
    for model in ("churn", "houses"):
        _put(f"models/{model}/job/output/output.tar.gz")
    s3 = _acting_for(evaluate, "churn").client("s3")
    s3.get_object(Bucket=BUCKET, Key="models/churn/job/output/output.tar.gz")
    s3.put_object(Bucket=BUCKET, Key="runs/churn/r1/evaluation.json", Body=b"{}")
    assert "s3:GetObject" in denied(lambda: s3.get_object(Bucket=BUCKET, Key="models/houses/job/output/output.tar.gz"))
    assert "s3:PutObject" in denied(lambda: s3.put_object(Bucket=BUCKET, Key="runs/houses/r1/evaluation.json", Body=b""))


def test_acting_for_churn_evaluate_keeps_the_evidence_beside_the_report_in_churns_run_only(enforced_platform):
    s3 = _acting_for(_task(enforced_platform(), "evaluate"), "churn").client("s3")
    for name in ("bias.json", "bias/pre_training.json", "bias/post_training.json", "explainability.json",
                 "model_card.json"):  # lambdas.pipeline.handlers.EVIDENCE_FIELDS and the card
        s3.put_object(Bucket=BUCKET, Key=f"runs/churn/r1/{name}", Body=b"{}")
        assert "s3:PutObject" in denied(lambda: s3.put_object(Bucket=BUCKET, Key=f"runs/houses/r1/{name}", Body=b""))


def test_acting_for_churn_register_releases_and_registers_churns_only(enforced_platform):
    register = _task(enforced_platform(), "register")
    churn = _acting_for(register, "churn")
    s3, sagemaker = churn.client("s3"), churn.client("sagemaker")
    s3.put_object(Bucket=BUCKET, Key="releases/churn/abc/model.tar.gz", Body=b"m")  # a release writer (its path)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="releases/churn/abc/model.tar.gz")["KeyCount"] == 1
    denied(lambda: s3.put_object(Bucket=BUCKET, Key="releases/houses/abc/model.tar.gz", Body=b"m"))
    denied(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="releases/houses/"))
    denied(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/churn/"))  # listing is for releases only
    sagemaker.create_model_package(  # with its card and reports: the same CreateModelPackage action
        ModelPackageGroupName=naming.model_package_group("churn", "local"), ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/releases/churn/abc/model.tar.gz"}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
        ModelMetrics={"Bias": {"Report": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/runs/churn/r1/bias.json"}},
                      "Explainability": {"Report": {"ContentType": "application/json",
                                                    "S3Uri": f"s3://{BUCKET}/runs/churn/r1/explainability.json"}}},
        ModelCard={"ModelCardContent": "{}", "ModelCardStatus": "PendingReview"})
    assert "sagemaker:CreateModelPackage" in denied(lambda: sagemaker.create_model_package(
        ModelPackageGroupName=naming.model_package_group("houses", "local"), ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/releases/houses/m"}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}))


def test_acting_for_churn_notify_tells_and_closes_churns_runs_only(enforced_platform):
    notify = _task(enforced_platform(), "notify")
    _second_model()
    churn = _acting_for(notify, "churn")
    sns, dynamodb, sagemaker = churn.client("sns"), churn.client("dynamodb"), churn.client("sagemaker")
    sns.publish(TopicArn=TOPIC.format(naming.notification_topic("churn", "local")), Message="m")
    dynamodb.get_item(TableName=AUDIT, Key={"pk": {"S": "model#churn"}, "sk": {"S": "approval#r"}})
    denied(lambda: sns.publish(TopicArn=TOPIC.format(naming.notification_topic("houses", "local")), Message="m"))
    denied(lambda: dynamodb.get_item(TableName=AUDIT, Key={"pk": {"S": "model#houses"}, "sk": {"S": "approval#r"}}))
    assert "sagemaker:UpdateModelPackage" in denied(lambda: sagemaker.update_model_package(
        ModelPackageArn=_package_arn("houses"), ModelApprovalStatus="Rejected"))


@pytest.mark.parametrize("task", ["prepare", "validate", "evaluate", "register", "notify"])
def test_a_retraining_tasks_own_role_reaches_no_models_objects(enforced_platform, task):
    function = _task(enforced_platform(), task)
    _put("runs/churn/r1/code/sourcedir.tar.gz")
    assert "s3:GetObject" in denied(lambda: _as_function(function).client("s3").get_object(
        Bucket=BUCKET, Key="runs/churn/r1/code/sourcedir.tar.gz"))


def test_a_task_event_from_no_retraining_machine_of_this_environment_is_refused_before_any_session(enforced_platform):
    from lambdas.shared.tenancy import NotAModelExecution

    prepare = _task(enforced_platform(), "prepare")
    for machine in ("churn-prod-retraining", "churn-local-other"):
        with pytest.raises(NotAModelExecution, match="is not an execution of a retraining state machine of local"):
            prepare.call({"execution_arn": f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:execution:{machine}:r",
                          "execution_name": "r", "state": {"model": "churn"}}, {})


def test_only_a_models_state_machine_role_may_invoke_the_retraining_tasks(enforced_platform):
    """moto authorizes Invoke as lambda:Invoke; the emulation checks AWS's action, lambda:InvokeFunction."""
    provisioned = enforced_platform()
    prepare = _task(provisioned, "prepare")
    machine_role = next(arn for arn in provisioned.role_credentials if "RetrainingStateMachineRole" in arn)
    as_machine = provisioned.role_credentials.of(machine_role).client("lambda", LOCAL_REGION)
    answer = as_machine.invoke(FunctionName=prepare.name, Payload=b"{}")  # allowed: the handler refuses the event
    assert answer["StatusCode"] == 200 and answer.get("FunctionError")
    as_drift = _as_function(provisioned.function_named(DRIFT)).client("lambda")  # another control-plane function
    assert "lambda:InvokeFunction" in denied(lambda: as_drift.invoke(FunctionName=prepare.name, Payload=b"{}"))


def test_acting_for_churn_deploy_creates_and_passes_churns_only(enforced_platform):
    deploy = _task(enforced_platform(), "deploy")
    churn = _acting_for(deploy, "churn")
    sagemaker = churn.client("sagemaker")
    role = lambda model: f"arn:aws:iam::{LOCAL_ACCOUNT}:role/{naming.sagemaker_role_name(model, 'local')}"  # noqa: E731
    container = {"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/releases/churn/abc/model.tar.gz"}
    sagemaker.create_model(ModelName="churn-local-staging-r1", ExecutionRoleArn=role("churn"), PrimaryContainer=container)
    assert "sagemaker:CreateModel" in denied(lambda: sagemaker.create_model(
        ModelName="houses-local-staging-r1", ExecutionRoleArn=role("churn"), PrimaryContainer=container))
    assert "sagemaker:UpdateEndpoint" in denied(lambda: sagemaker.update_endpoint(
        EndpointName=naming.endpoint("houses", "local", "prod"), EndpointConfigName="houses-local-prod-r1"))
    assert "dynamodb:GetItem" in denied(lambda: churn.client("dynamodb").get_item(
        TableName=AUDIT, Key={"pk": {"S": "model#houses"}, "sk": {"S": "approval#r"}}))
    denied(lambda: churn.client("s3").get_object(Bucket=BUCKET, Key="releases/houses/abc/model.tar.gz"))
    # CreateModel naming houses' execution role: the session may not pass it (the emulation checks iam:PassRole)
    assert "iam:PassRole" in denied(lambda: sagemaker.create_model(
        ModelName="churn-local-staging-r2", ExecutionRoleArn=role("houses"), PrimaryContainer=container))


def test_acting_for_churn_smoke_and_rollback_reach_churns_endpoints_only(enforced_platform):
    provisioned = enforced_platform()
    smoke = _acting_for(_task(provisioned, "smoke"), "churn").client("sagemaker-runtime")
    assert "sagemaker:InvokeEndpoint" in denied(lambda: smoke.invoke_endpoint(
        EndpointName=naming.endpoint("houses", "local", "staging"), Body=b"{}", ContentType="application/json"))
    rollback = _acting_for(_task(provisioned, "rollback"), "churn").client("sagemaker")
    assert "sagemaker:DeleteEndpoint" in denied(lambda: rollback.delete_endpoint(
        EndpointName=naming.endpoint("houses", "local", "staging")))
    assert "sagemaker:UpdateModelPackage" in denied(lambda: rollback.update_model_package(
        ModelPackageArn=_package_arn("houses"), ModelApprovalStatus="Rejected"))

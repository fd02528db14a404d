"""The environment's runs API and people's access (issue 26), under enforced IAM with the roles and policies the CDK
synthesizes: acting for churn, the runs API reaches churn's executions, rows, packages and training logs and none of
houses'; a person's session works on the model its tag names, which their IAM user's own tags decide, and a session
tagged churn reads churn's run reports, can prove churn to the API, and gets nothing of houses' either way."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.shared import model_proof
from pipelines import naming
from pipelines.client import ApiError, Pipelines, RunsApi, env_runs_api_parameter
from pipelines.model_record import ModelRecord
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT
from tests.integration.conftest import LOCAL_ACCOUNT, LOCAL_REGION, denied, released_package, scoped_session

pytestmark = pytest.mark.slow

ARN = f"arn:aws:{{}}:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{{}}"
MACHINE = {model: ARN.format("states", f"stateMachine:{naming.state_machine(model, 'local')}") for model in ("churn", "houses")}
BUCKET = naming.artifact_bucket("local", LOCAL_ACCOUNT, LOCAL_REGION)
AUDIT = naming.audit_table("local")
SCIENTIST_ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/{naming.person_role('local', 'data-scientist')}"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def _houses_deployed() -> None:
    """What deploying a second model, houses, leaves in the environment that matters here: its record, its machine."""
    spec = load_spec(REPO_ROOT / "pipelines/houses/model.yaml")
    boto3.client("stepfunctions").create_state_machine(
        name=naming.state_machine("houses", "local"), roleArn=f"arn:aws:iam::{LOCAL_ACCOUNT}:role/any",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))
    record = ModelRecord(model="houses", env="local", spec=spec, settings={
        "STATE_MACHINE_ARN": MACHINE["houses"], "AUDIT_TABLE": AUDIT, "MODEL_PACKAGE_GROUP": "houses-local",
        "SERVING_STAGE": "prod", "SERVING_ENDPOINT": naming.endpoint("houses", "local", "prod")})
    boto3.client("ssm").put_parameter(Name=naming.model_record_parameter("houses", "local"),
                                      Value=record.model_dump_json(), Type="String")


@pytest.fixture
def platform(enforced_platform):
    """The platform with the environment's runs API served (AWS_IAM), houses deployed beside churn, and a data
    scientist whose IAM user is tagged churn, on the environment's data-scientist role."""
    from pipelines.local import iam
    from pipelines.local.lifecycle import runs_api_server

    provisioned = enforced_platform()
    runs = provisioned.function_named("RunsApiFunction")
    server = runs_api_server(lambda event: runs.call(event, {}), runs.name, LOCAL_ACCOUNT, LOCAL_REGION)
    boto3.client("ssm").put_parameter(Name=env_runs_api_parameter("local"), Value=server.url, Type="String",
                                      Overwrite=True)
    _houses_deployed()
    scientist = iam.person(SCIENTIST_ROLE, "ds@example.com", LOCAL_REGION, model="churn")
    yield {"provisioned": provisioned, "runs": runs, "server": server, "scientist": scientist}
    server.close()


def _acting_for(function, model: str) -> boto3.Session:
    return scoped_session(function, model)




def _query(dynamodb, model: str):
    return dynamodb.query(TableName=AUDIT, KeyConditionExpression="pk = :pk",
                          ExpressionAttributeValues={":pk": {"S": f"model#{model}"}})


def _training_logs() -> dict[str, str]:
    """A training job's log stream of each model, as SageMaker writes them (jobs named <model>-<execution>)."""
    logs, streams = boto3.client("logs"), {}
    logs.create_log_group(logGroupName=LOG_GROUP)
    for model in ("churn", "houses"):
        streams[model] = f"{model}-manual-1/algo-1-1700000000"
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=streams[model])
        logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=streams[model],
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": "epoch=1; train:loss=0.5;"}])
    return streams


# ------------------------------------------------------------------ the runs API acting for a model
def test_acting_for_churn_the_runs_api_reaches_churns_executions_rows_packages_and_logs_and_no_houses(platform):
    churn = _acting_for(platform["runs"], "churn")
    sfn, dynamodb, sagemaker, logs = (churn.client(s) for s in ("stepfunctions", "dynamodb", "sagemaker", "logs"))
    streams = _training_logs()
    started = sfn.start_execution(stateMachineArn=MACHINE["churn"], name="manual-1", input="{}")["executionArn"]
    assert [e["name"] for e in sfn.list_executions(stateMachineArn=MACHINE["churn"])["executions"]] == ["manual-1"]
    assert sfn.describe_execution(executionArn=started)["name"] == "manual-1"
    assert _query(dynamodb, "churn")["Items"] == []
    package = released_package("churn-local", bucket=BUCKET,
                               session=scoped_session(platform["provisioned"].function_named("PipelineTasksRegister"), "churn"))
    sagemaker.update_model_package(ModelPackageArn=package, ModelApprovalStatus="Rejected")
    assert logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=streams["churn"], startFromHead=True)["events"]

    houses_run = MACHINE["houses"].replace(":stateMachine:", ":execution:") + ":r"
    assert "states:StartExecution" in denied(lambda: sfn.start_execution(stateMachineArn=MACHINE["houses"], input="{}"))
    denied(lambda: sfn.list_executions(stateMachineArn=MACHINE["houses"]))
    denied(lambda: sfn.describe_execution(executionArn=houses_run))
    denied(lambda: sfn.get_execution_history(executionArn=houses_run))
    assert "dynamodb:Query" in denied(lambda: _query(dynamodb, "houses"))
    denied(lambda: dynamodb.update_item(TableName=AUDIT, Key={"pk": {"S": "model#houses"}, "sk": {"S": "approval#r"}},
                                         UpdateExpression="SET applied = :t", ExpressionAttributeValues={":t": {"BOOL": True}}))
    denied(lambda: sagemaker.update_model_package(ModelPackageArn=ARN.format("sagemaker", "model-package/houses-local/1"),
                                                   ModelApprovalStatus="Approved"))
    denied(lambda: sagemaker.describe_endpoint(EndpointName=naming.endpoint("houses", "local", "prod")))
    assert "logs:GetLogEvents" in denied(lambda: logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=streams["houses"]))


def test_acting_for_churn_the_runs_api_decrypts_churns_task_tokens_only(platform):
    key = platform["runs"].environment["KMS_KEY_ARN"]
    context = {"model": "churn", "execution": "r", "purpose": "approval-task-token"}
    tokens = {model: boto3.client("kms").encrypt(KeyId=key, Plaintext=b"token", EncryptionContext={**context, "model": model})
              ["CiphertextBlob"] for model in ("churn", "houses")}
    kms = _acting_for(platform["runs"], "churn").client("kms")
    assert kms.decrypt(CiphertextBlob=tokens["churn"], EncryptionContext=context)["Plaintext"] == b"token"
    denied(lambda: kms.decrypt(CiphertextBlob=tokens["houses"], EncryptionContext={**context, "model": "houses"}))


def test_the_runs_apis_own_role_reaches_no_models_runs_or_rows(platform):
    own = platform["runs"].credentials.session(LOCAL_REGION)
    denied(lambda: own.client("stepfunctions").start_execution(stateMachineArn=MACHINE["churn"], input="{}"))
    denied(lambda: _query(own.client("dynamodb"), "churn"))


# ------------------------------------------------------------------ through the API: the caller's model
def test_a_churn_data_scientist_starts_and_reads_churns_runs_and_gets_403_for_houses(platform):
    pipelines = Pipelines(env="local", session=platform["scientist"].session(LOCAL_REGION))
    run = pipelines.start("churn")
    assert [r.name for r in pipelines.runs("churn")] == [run.name]
    for attempt in (lambda: pipelines.start("houses"), lambda: pipelines.runs("houses"),
                    lambda: pipelines.api("houses").call("GET", "/approvals")):
        with pytest.raises(ApiError) as refused:
            attempt()
        assert refused.value.status == 403 and "not shown to work on houses" in refused.value.message
    assert boto3.client("stepfunctions").list_executions(stateMachineArn=MACHINE["houses"])["executions"] == []


def test_a_proof_for_churn_or_another_callers_proof_gets_nothing_of_another_model(platform):
    from pipelines.local import iam

    scientist = platform["scientist"].session(LOCAL_REGION)
    caller = scientist.client("sts").get_caller_identity()["UserId"]
    churn_proof = model_proof.make(scientist.client("kms"), caller, naming.environment_key_alias("local"), "churn")
    replayed = RunsApi(platform["server"].url, scientist, LOCAL_REGION, "houses", prove=lambda model: churn_proof)
    with pytest.raises(ApiError) as refused:
        replayed.call("GET", "/runs")
    assert refused.value.status == 403 and "not made by your session for houses" in refused.value.message
    colleague = iam.person(SCIENTIST_ROLE, "other@example.com", LOCAL_REGION, model="churn").session(LOCAL_REGION)
    borrowed = RunsApi(platform["server"].url, colleague, LOCAL_REGION, "churn", prove=lambda model: churn_proof)
    with pytest.raises(ApiError) as not_theirs:
        borrowed.call("POST", "/runs", {})
    assert not_theirs.value.status == 403 and "not made by your session" in not_theirs.value.message


def test_a_session_may_make_a_proof_only_for_its_own_model_and_itself(platform):
    scientist = platform["scientist"].session(LOCAL_REGION)
    kms, caller = scientist.client("kms"), scientist.client("sts").get_caller_identity()["UserId"]
    alias = naming.environment_key_alias("local")
    assert model_proof.make(kms, caller, alias, "churn")
    assert "kms:Encrypt" in denied(lambda: model_proof.make(kms, caller, alias, "houses"))
    denied(lambda: model_proof.make(kms, "AROAOTHERROLEID00000:someone@example.com", alias, "churn"))


# ------------------------------------------------------------------ the people's policies and trust
def _report(model: str) -> str:
    key = f"runs/{model}/manual-1/report.json"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"{}")
    return key


def test_a_churn_tagged_session_reads_churns_run_reports_runs_and_packages_and_none_of_houses(platform):
    scientist = platform["scientist"].session(LOCAL_REGION)
    s3, sfn, sagemaker = scientist.client("s3"), scientist.client("stepfunctions"), scientist.client("sagemaker")
    churn, houses = _report("churn"), _report("houses")
    assert s3.get_object(Bucket=BUCKET, Key=churn)["Body"].read() == b"{}"
    assert sfn.list_executions(stateMachineArn=MACHINE["churn"])["executions"] == []
    assert "s3:GetObject" in denied(lambda: s3.get_object(Bucket=BUCKET, Key=houses))
    denied(lambda: sfn.list_executions(stateMachineArn=MACHINE["houses"]))
    denied(lambda: sfn.describe_execution(executionArn=MACHINE["houses"].replace(":stateMachine:", ":execution:") + ":r"))
    denied(lambda: sagemaker.describe_model_package(ModelPackageName=ARN.format("sagemaker", "model-package/houses-local/1")))


def _user(name: str, **tags: str):
    """An IAM user tagged by the platform engineers (tag keys with '_' for '-': model_2 is mlops:model-2)."""
    from pipelines.local import iam

    client = boto3.client("iam")
    client.create_user(UserName=name, Tags=[{"Key": f"mlops:{k.replace('_', '-')}", "Value": v} for k, v in tags.items()])
    client.put_user_policy(UserName=name, PolicyName="assume", PolicyDocument=json.dumps({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                       "Resource": SCIENTIST_ROLE}]}))
    key = client.create_access_key(UserName=name)["AccessKey"]
    return iam.Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def _as(user, name: str, *tags: tuple[str, str]):
    from pipelines.local import iam

    granted = user.client("sts", LOCAL_REGION).assume_role(
        RoleArn=SCIENTIST_ROLE, RoleSessionName=name, SourceIdentity=name,
        **({"Tags": [{"Key": k, "Value": v} for k, v in tags]} if tags else {}))["Credentials"]
    return iam.Credentials(granted["AccessKeyId"], granted["SecretAccessKey"], granted["SessionToken"]).session(LOCAL_REGION)


def test_a_person_takes_a_session_tagged_only_with_a_model_their_user_is_tagged_with(platform):
    pat = _user("pat@example.com", model="churn")
    assert _as(pat, "pat@example.com", (naming.MODEL_TAG, "churn"))
    for tags in ([(naming.MODEL_TAG, "houses")], [(naming.MODEL_TAG, "churn"), ("team", "risk")],
                 [(naming.MODEL_TAG, "churn/../houses")]):
        with pytest.raises(ClientError, match="AccessDenied"):
            _as(pat, "pat@example.com", *tags)


def test_a_person_on_several_models_holds_a_tag_for_each_and_takes_one_session_per_model(platform):
    sam = _user("sam@example.com", model="churn", model_2="houses")
    houses = _as(sam, "sam@example.com", (naming.MODEL_TAG, "houses"))
    houses_report, churn_report = _report("houses"), _report("churn")
    assert houses.client("s3").get_object(Bucket=BUCKET, Key=houses_report)["Body"].read() == b"{}"
    denied(lambda: houses.client("s3").get_object(Bucket=BUCKET, Key=churn_report))  # one model per session
    churn = _as(sam, "sam@example.com", (naming.MODEL_TAG, "churn"))
    assert churn.client("s3").get_object(Bucket=BUCKET, Key=churn_report)["Body"].read() == b"{}"


def test_an_untagged_session_is_a_person_of_no_model(platform):
    lee = _as(_user("lee@example.com"), "lee@example.com")
    denied(lambda: lee.client("s3").get_object(Bucket=BUCKET, Key=_report("churn")))
    with pytest.raises(ApiError) as refused:
        Pipelines(env="local", session=lee).start("churn")
    assert refused.value.status == 403 and "not shown to work on churn" in refused.value.message


def _capture(model: str) -> str:
    key = f"data-capture/{naming.endpoint(model, 'local', 'prod')}/AllTraffic/2026/12/07/10/part.jsonl"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"{}\n")
    return key


def test_a_churn_tagged_session_lists_and_reads_churns_captured_requests_and_none_of_houses(platform):
    s3 = platform["scientist"].session(LOCAL_REGION).client("s3")
    churn, houses = _capture("churn"), _capture("houses")
    churn_prefix, houses_prefix = churn.rsplit("AllTraffic/", 1)[0], houses.rsplit("AllTraffic/", 1)[0]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=churn_prefix)
    assert [o["Key"] for o in listed["Contents"]] == [churn]
    assert s3.get_object(Bucket=BUCKET, Key=churn)["Body"].read() == b"{}\n"
    assert "s3:ListBucket" in denied(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix=houses_prefix))
    assert "s3:ListBucket" in denied(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="data-capture/"))
    assert "s3:GetObject" in denied(lambda: s3.get_object(Bucket=BUCKET, Key=houses))


def test_a_churn_tagged_session_puts_churns_labels_and_none_of_houses(platform):
    """`mlops labels put` under enforced IAM: the session's model's ground-truth prefix only, written, never read."""
    s3 = platform["scientist"].session(LOCAL_REGION).client("s3")
    key = "ground-truth/{}/2026/12/07/10/labels.jsonl"
    s3.put_object(Bucket=BUCKET, Key=key.format("churn"), Body=b'{"groundTruthData": {}}\n')
    assert "s3:PutObject" in denied(lambda: s3.put_object(Bucket=BUCKET, Key=key.format("houses"), Body=b"{}\n"))
    assert "s3:GetObject" in denied(lambda: s3.get_object(Bucket=BUCKET, Key=key.format("churn")))


def test_a_churn_tagged_session_reads_churns_quality_and_drift_reports_and_none_of_houses(platform):
    """`mlops quality` (history.recent_reports) and the fleet's drift and quality columns, read as the data scientist
    under enforced IAM: the session's model's quality/ and drift/ reports, listed and read; none of houses'."""
    from datetime import datetime, timezone

    from lambdas.quality import history
    from lambdas.shared import dal
    from pipelines import fleet
    from tests.support.quality_reports import put_report, quality_report

    checked = datetime(2026, 12, 7, 6, tzinfo=timezone.utc)
    keys = {model: put_report(boto3.client("s3"), quality_report(checked, "drop", value=0.7, model=model), BUCKET)
            for model in ("churn", "houses")}
    for model in ("churn", "houses"):
        boto3.client("s3").put_object(Bucket=BUCKET, Key=f"drift/{model}/20261207T060000Z/report.json",
                                      Body=b'{"drift": true}')
    pipelines = Pipelines(env="local", session=platform["scientist"].session(LOCAL_REGION))
    now = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
    with pipelines.handler_calls():
        store = dal.ObjectStore(BUCKET)
        found = history.recent_reports(store, "churn")
        assert [report["model"] for report in found] == ["churn"] and found.skipped == []
        assert "s3:ListBucket" in denied(lambda: history.recent_reports(store, "houses"))
        assert "s3:GetObject" in denied(lambda: store.read_bytes(keys["houses"]))
    assert fleet.last_quality_check(pipelines, "churn", now).summary == "drop 0.7/0.85"
    assert fleet.last_drift_check(pipelines, "churn", now).drift is True
    for family in ("quality", "drift"):
        assert "s3:ListBucket" in denied(lambda: fleet.latest_report(pipelines, f"{family}/houses/", now))

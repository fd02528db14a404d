"""Identity comes from AWS: under enforced IAM, people hold only the synthesized managed policies of their
role and reach runs and approvals through the runs API, whose Function URL checks their SigV4 signature."""

import json
import time
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError

from pipelines import naming
from pipelines.client import ApiError, Pipelines, RunsApi, decide, runs_api_parameter
from tests.integration.conftest import LOCAL_ACCOUNT, LOCAL_REGION

pytestmark = pytest.mark.slow

MACHINE = f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:stateMachine:churn-local-retraining"
DATA_SCIENTIST, APPROVER = "ds@example.com", "ml-lead@example.com"


@pytest.fixture
def people(enforced_platform):
    """The platform with its runs API served (AWS_IAM), a data scientist and an approver signed in."""
    from pipelines.local import iam
    from pipelines.local.lifecycle import runs_api_server

    provisioned = enforced_platform()
    runs = provisioned.function_named("RunsApiRunsFunction")
    server = runs_api_server(lambda event: runs.call(event, {}), runs.name, LOCAL_ACCOUNT, LOCAL_REGION)
    boto3.client("ssm").put_parameter(Name=runs_api_parameter("churn", "local"), Value=server.url, Type="String",
                                      Overwrite=True)
    scientist = iam.person("local-data-scientist", [provisioned.managed_policy("AccessDataScientist")], DATA_SCIENTIST,
                           LOCAL_ACCOUNT, LOCAL_REGION)
    approver = iam.sign_in(f"arn:aws:iam::{LOCAL_ACCOUNT}:role/mlops-local-churn-approver", APPROVER, LOCAL_ACCOUNT)
    yield {"provisioned": provisioned, "server": server, "scientist": scientist, "approver": approver}
    server.close()


def _pipelines(credentials) -> Pipelines:
    return Pipelines(env="local", session=credentials.session(LOCAL_REGION))


def _execution_input(run_arn: str) -> dict:
    return json.loads(boto3.client("stepfunctions").describe_execution(executionArn=run_arn)["input"])


def test_a_data_scientist_starts_a_run_through_the_api_recorded_as_their_principal(people):
    run = _pipelines(people["scientist"]).start("churn", {"epochs": 3}, git_commit="abcdef1", reason="identity")
    assert _execution_input(run.arn) == {
        "model": "churn", "trigger": "manual", "hyperparameters": {"epochs": 3}, "git_commit": "abcdef1",
        "reason": "identity",
        "requested_by": f"arn:aws:sts::{LOCAL_ACCOUNT}:assumed-role/local-data-scientist/{DATA_SCIENTIST}"}
    assert [r.name for r in _pipelines(people["scientist"]).runs("churn")] == [run.name]


def test_the_api_refuses_a_second_run_in_progress_with_409(people):
    from pipelines.client import RunInProgress

    pipelines = _pipelines(people["scientist"])
    first = pipelines.start("churn")
    with pytest.raises(RunInProgress, match=f"already has a running retraining execution '{first.name}'"):
        pipelines.start("churn")


def test_requested_by_in_the_body_is_refused_with_400(people):
    api = _pipelines(people["scientist"]).api("churn")
    with pytest.raises(ApiError) as refused:
        api.call("POST", "/runs", {"requested_by": "someone-else@example.com"})
    assert refused.value.status == 400 and "requested_by" in refused.value.message
    assert boto3.client("stepfunctions").list_executions(stateMachineArn=MACHINE)["executions"] == []


def test_an_unsigned_or_badly_signed_request_gets_403(people):
    url = people["server"].url + "runs"
    unsigned = urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned, timeout=10)
    assert refused.value.code == 403
    forged = people["scientist"].__class__(people["scientist"].access_key_id, "not-the-secret",
                                           people["scientist"].session_token)
    with pytest.raises(ApiError) as bad_signature:
        RunsApi(people["server"].url, forged.session(LOCAL_REGION), LOCAL_REGION).call("GET", "/runs")
    assert bad_signature.value.status == 403
    assert boto3.client("stepfunctions").list_executions(stateMachineArn=MACHINE)["executions"] == []


def test_a_caller_without_invoke_function_url_gets_403(people):
    from pipelines.local import iam

    nobody = iam.sign_in(f"arn:aws:iam::{LOCAL_ACCOUNT}:role/mlops-local-churn-approver", "x@example.com", LOCAL_ACCOUNT)
    boto3.client("iam").detach_role_policy(RoleName="mlops-local-churn-approver",
                                           PolicyArn=people["provisioned"].managed_policy("AccessApprover"))
    with pytest.raises(ApiError) as refused:
        RunsApi(people["server"].url, nobody.session(LOCAL_REGION), LOCAL_REGION).call("GET", "/runs")
    assert refused.value.status == 403 and "InvokeFunctionUrl" in refused.value.message


@pytest.mark.parametrize("call", [
    lambda sfn: sfn.start_execution(stateMachineArn=MACHINE, input="{}"),
    lambda sfn: sfn.send_task_success(taskToken="any-token", output="{}"),
    lambda sfn: sfn.send_task_failure(taskToken="any-token", error="x"),
    lambda sfn: sfn.get_execution_history(executionArn=MACHINE.replace(":stateMachine:", ":execution:") + ":run-1"),
], ids=["StartExecution", "SendTaskSuccess", "SendTaskFailure", "GetExecutionHistory"])
def test_a_data_scientist_has_no_direct_step_functions_rights_that_start_decide_or_read_tokens(people, call):
    with pytest.raises(ClientError, match="AccessDenied"):
        call(people["scientist"].client("stepfunctions", LOCAL_REGION))


def _waiting_approval(people, requested_by: str, monkeypatch) -> str:
    """A real task token (a machine waiting on it) behind a real approval request for `requested_by`."""
    from moto.core.config import default_user_config

    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    sqs, sfn = boto3.client("sqs"), boto3.client("stepfunctions")
    queue = sqs.create_queue(QueueName="tokens")["QueueUrl"]
    waiter = sfn.create_state_machine(name="waits", roleArn=f"arn:aws:iam::{LOCAL_ACCOUNT}:role/any", definition=json.dumps(
        {"StartAt": "Wait", "States": {"Wait": {"Type": "Task", "End": True,
                                               "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                                               "Parameters": {"QueueUrl": queue, "MessageBody.$": "$$.Task.Token"}}}}))
    execution = sfn.start_execution(stateMachineArn=waiter["stateMachineArn"], name="run-7")["executionArn"]
    token = None
    for _ in range(50):
        messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])
        if messages:
            token = messages[0]["Body"]
            break
        time.sleep(0.1)
    assert token, "the waiting machine sent no token"
    package = boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName="churn-local", ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "x", "ModelDataUrl": "s3://b/m.tar.gz"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]
    state = {"run": {"model": "churn", "requested_by": requested_by, "git_commit": "abcdef1", "hyperparameters": {},
                     "trigger": "manual", "execution_arn": execution},
             "validation": {"dataset_uri": "s3://b/d.csv", "version_id": "1", "sha256": "f" * 64},
             "evaluation": {"metrics": {"validation:auc": 0.8}, "reason": "first model", "champion_arn": None,
                            "objective": "validation:auc", "value": 0.8, "promote": True},
             "registration": {"model_package_arn": package}}
    people["provisioned"].function_named("ApprovalRequestFunction").call(
        {"execution_arn": execution, "execution_name": "run-7", "state": state, "task_token": token}, {})
    return execution


def test_an_approver_approves_through_the_api_as_their_mapped_identity(people, monkeypatch):
    execution = _waiting_approval(people, f"arn:aws:sts::{LOCAL_ACCOUNT}:assumed-role/local-data-scientist/{DATA_SCIENTIST}",
                                  monkeypatch)
    decide(_pipelines(people["approver"]), "churn", True, "metrics reviewed")
    record = boto3.resource("dynamodb").Table(naming.audit_table("local")).get_item(
        Key={"pk": "model#churn", "sk": "approval#run-7"})["Item"]
    assert (record["status"], record["decided_by"], record["channel"]) == ("APPROVED", APPROVER, "cli")
    assert boto3.client("stepfunctions").describe_execution(executionArn=execution)["status"] == "SUCCEEDED"


def test_an_approver_cannot_approve_their_own_run(people, monkeypatch):
    own = f"arn:aws:sts::{LOCAL_ACCOUNT}:assumed-role/mlops-local-churn-approver/{APPROVER}"
    _waiting_approval(people, own, monkeypatch)
    from pipelines.client import DecisionRefused

    with pytest.raises(DecisionRefused, match="Self-approval refused"):
        decide(_pipelines(people["approver"]), "churn", True, "mine", execution="run-7")


def test_a_data_scientist_gets_403_from_the_approvals_route(people, monkeypatch):
    _waiting_approval(people, "arn:aws:sts::111111111111:assumed-role/other/someone@example.com", monkeypatch)
    with pytest.raises(ApiError) as refused:
        _pipelines(people["scientist"]).api("churn").call("POST", "/approvals/run-7", {"decision": "approve"})
    assert refused.value.status == 403 and "not mapped to an approver" in refused.value.message

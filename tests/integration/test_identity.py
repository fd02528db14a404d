"""Identity comes from AWS: under enforced IAM, people hold only the synthesized managed policies of their
role and reach runs and approvals through the environment's runs API, whose Function URL checks their SigV4 signature,
for the model their session is tagged with."""

import json
import time
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError

from pipelines import naming
from pipelines.client import ApiError, Pipelines, RunsApi, decide, env_runs_api_parameter
from tests.integration.conftest import LOCAL_ACCOUNT, LOCAL_REGION, released_package, scoped_session

pytestmark = pytest.mark.slow

MACHINE = f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:stateMachine:churn-local-retraining"
DATA_SCIENTIST, APPROVER = "ds@example.com", "ml-lead@example.com"
SCIENTIST_ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/mlops-local-data-scientist"
APPROVER_ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/mlops-local-approver"


@pytest.fixture
def people(enforced_platform):
    """The platform with its runs API served (AWS_IAM), a data scientist and an approver signed in."""
    from pipelines.local import iam
    from pipelines.local.lifecycle import runs_api_server

    provisioned = enforced_platform()
    runs = provisioned.function_named("RunsApiFunction")
    server = runs_api_server(lambda event: runs.call(event, {}), runs.name, LOCAL_ACCOUNT, LOCAL_REGION)
    boto3.client("ssm").put_parameter(Name=env_runs_api_parameter("local"), Value=server.url, Type="String",
                                      Overwrite=True)
    scientist = iam.person(SCIENTIST_ROLE, DATA_SCIENTIST, LOCAL_REGION, model="churn")
    approver = iam.person(APPROVER_ROLE, APPROVER, LOCAL_REGION, model="churn")
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
        "reason": "identity", "requested_by_person": DATA_SCIENTIST,
        "requested_by": f"arn:aws:sts::{LOCAL_ACCOUNT}:assumed-role/mlops-local-data-scientist/{DATA_SCIENTIST}"}
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

    nobody = iam.sign_in(APPROVER_ROLE, "x@example.com", LOCAL_ACCOUNT)
    boto3.client("iam").detach_role_policy(RoleName="mlops-local-approver",
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


def _waiting_approval(people, requested_by: str, monkeypatch, person: str | None = None) -> str:
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
    token, deadline = None, time.monotonic() + 300  # moto's interpreter sends it from a thread: wait, never judge speed
    while token is None and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])
        if messages:
            token = messages[0]["Body"]
        else:
            time.sleep(0.1)
    assert token, "the waiting machine sent no token"
    registrar = scoped_session(people["provisioned"].function_named("PipelineTasksRegister"), "churn")  # a release writer
    package = released_package("churn-local", bucket=naming.artifact_bucket("local", LOCAL_ACCOUNT, LOCAL_REGION),
                               session=registrar)
    state = {"run": {"model": "churn", "requested_by": requested_by, "requested_by_person": person,
                     "git_commit": "abcdef1", "hyperparameters": {}, "trigger": "manual", "execution_arn": execution},
             "validation": {"dataset_uri": "s3://b/d.csv", "version_id": "1", "sha256": "f" * 64},
             "evaluation": {"metrics": {"validation:auc": 0.8}, "reason": "first model", "champion_arn": None,
                            "objective": "validation:auc", "value": 0.8, "promote": True},
             "registration": {"model_package_arn": package}}
    # The environment's request function acts for the model whose retraining machine runs the execution; the token
    # is the waiting machine's (a run of churn's machine named alike).
    churns_run = f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:execution:{naming.state_machine('churn', 'local')}:run-7"
    people["provisioned"].function_named("ApprovalRequestHandler").call(
        {"execution_arn": churns_run, "execution_name": "run-7", "state": state, "task_token": token}, {})
    return execution


def test_an_approver_approves_through_the_api_as_their_mapped_identity(people, monkeypatch):
    execution = _waiting_approval(people, f"arn:aws:sts::{LOCAL_ACCOUNT}:assumed-role/mlops-local-data-scientist/{DATA_SCIENTIST}",
                                  monkeypatch)
    decide(_pipelines(people["approver"]), "churn", True, "metrics reviewed")
    record = boto3.resource("dynamodb").Table(naming.audit_table("local")).get_item(
        Key={"pk": "model#churn", "sk": "approval#run-7"})["Item"]
    assert (record["status"], record["decided_by"], record["channel"]) == ("APPROVED", APPROVER, "cli")
    assert boto3.client("stepfunctions").describe_execution(executionArn=execution)["status"] == "SUCCEEDED"


def test_an_approver_cannot_approve_their_own_run(people, monkeypatch):
    own = f"arn:aws:sts::{LOCAL_ACCOUNT}:assumed-role/mlops-local-approver/{APPROVER}"
    _waiting_approval(people, own, monkeypatch)
    from pipelines.client import DecisionRefused

    with pytest.raises(DecisionRefused, match="Self-approval refused"):
        decide(_pipelines(people["approver"]), "churn", True, "mine", execution="run-7")


def test_a_data_scientist_gets_403_from_the_approvals_route(people, monkeypatch):
    _waiting_approval(people, "arn:aws:sts::111111111111:assumed-role/other/someone@example.com", monkeypatch)
    with pytest.raises(ApiError) as refused:
        _pipelines(people["scientist"]).api("churn").call("POST", "/approvals/run-7", {"decision": "approve"})
    assert refused.value.status == 403 and "not mapped to an approver" in refused.value.message


# ------------------------------------------------------------------ a person is who AWS says, not a name they pick

def _user(name: str, may_assume: list[str]):
    """An IAM user (keys of their own) allowed to assume the given roles and set a source identity."""
    from pipelines.local import iam

    client = boto3.client("iam")
    try:
        client.create_user(UserName=name)
    except client.exceptions.EntityAlreadyExistsException:  # the people fixture's approver: the same person
        pass
    client.put_user_policy(UserName=name, PolicyName="assume", PolicyDocument=json.dumps({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"], "Resource": may_assume}]}))
    key = client.create_access_key(UserName=name)["AccessKey"]
    return iam.Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def _team_role(people, name: str = "team-ds", path: str = "/") -> str:
    """A role of the customer's own with the data-scientist policy, trusting the account: no session name pinned."""
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"AWS": f"arn:aws:iam::{LOCAL_ACCOUNT}:root"}}]}
    arn = boto3.client("iam").create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    boto3.client("iam").attach_role_policy(RoleName=name, PolicyArn=people["provisioned"].managed_policy("AccessDataScientist"))
    return arn


def _session(credentials, role_arn: str, session_name: str, **extra):
    from pipelines.local import iam

    granted = credentials.client("sts", LOCAL_REGION).assume_role(RoleArn=role_arn, RoleSessionName=session_name,
                                                                    **extra)["Credentials"]
    return iam.Credentials(granted["AccessKeyId"], granted["SecretAccessKey"], granted["SessionToken"])


def test_a_run_started_under_a_session_name_the_caller_chose_is_refused_before_it_starts(people):
    """The attack: an approver who also holds the data-scientist policy on a role of their own starts a run as
    'intern@example.com', then approves it as themselves. The start is refused: that role fixes no person."""
    team = _team_role(people)
    lead = _user(APPROVER, [team, SCIENTIST_ROLE])
    as_intern = _session(lead, team, "intern@example.com")
    with pytest.raises(ApiError) as refused:
        _pipelines(as_intern).start("churn")
    assert refused.value.status == 403 and "does not identify a person" in refused.value.message
    assert "--source-identity" in refused.value.message  # the one-line fix
    assert boto3.client("stepfunctions").list_executions(stateMachineArn=MACHINE)["executions"] == []


@pytest.mark.parametrize("session_name, extra", [
    ("intern@example.com", {"SourceIdentity": "intern@example.com"}),  # another person's name
    (APPROVER, {}),  # no source identity
    (APPROVER, {"SourceIdentity": "intern@example.com"}),  # a source identity that is not the user
], ids=["other-name", "no-source-identity", "other-source-identity"])
def test_the_data_scientist_role_takes_only_the_users_own_name_as_session_and_source_identity(people, session_name, extra):
    lead = _user(APPROVER, [SCIENTIST_ROLE])
    with pytest.raises(ClientError, match="AccessDenied"):
        _session(lead, SCIENTIST_ROLE, session_name, **extra)
    assert _session(lead, SCIENTIST_ROLE, APPROVER, SourceIdentity=APPROVER)  # their own name: allowed


def test_a_role_session_cannot_chain_into_the_data_scientist_role_under_any_name(people):
    """Role sessions have no aws:username, so the pinned trust refuses them, whatever names they ask for."""
    team = _team_role(people)
    boto3.client("iam").put_role_policy(RoleName="team-ds", PolicyName="chain", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                                                "Resource": SCIENTIST_ROLE}]}))
    lead = _user(APPROVER, [team, SCIENTIST_ROLE])
    with pytest.raises(ClientError, match="AccessDenied"):  # the team role's trust allows no sts:SetSourceIdentity
        _session(lead, team, APPROVER, SourceIdentity=APPROVER)
    chained = _session(lead, team, APPROVER)
    for name, extra in (("intern@example.com", {"SourceIdentity": "intern@example.com"}),
                        (APPROVER, {"SourceIdentity": APPROVER}), (APPROVER, {})):
        with pytest.raises(ClientError, match="AccessDenied.*AssumeRole"):
            _session(chained, SCIENTIST_ROLE, name, **extra)


def test_no_person_approves_a_run_they_started_whatever_role_they_decide_with(people, monkeypatch):
    """ml-lead starts through the data-scientist role (person ml-lead@example.com), then decides through the
    approver role: refused, the same person."""
    from pipelines.client import DecisionRefused

    starter = iam_person(SCIENTIST_ROLE, APPROVER, model="churn")
    run = _pipelines(starter).start("churn")
    started = _execution_input(run.arn)
    assert started["requested_by_person"] == APPROVER
    boto3.client("stepfunctions").stop_execution(executionArn=run.arn)
    _waiting_approval(people, started["requested_by"], monkeypatch, person=started["requested_by_person"])
    with pytest.raises(DecisionRefused, match="Self-approval refused"):
        decide(_pipelines(people["approver"]), "churn", True, "mine", execution="run-7")


def iam_person(role_arn: str, name: str, model: str | None = None):
    from pipelines.local import iam

    return iam.person(role_arn, name, LOCAL_REGION, model=model)


def test_an_identity_center_session_is_a_person_only_under_identity_centers_reserved_path(people):
    from pipelines.local import iam

    look_alike = _team_role(people, "AWSReservedSSO_DataScience_0123abcd")
    with pytest.raises(ApiError) as refused:
        _pipelines(iam.sign_in(look_alike, "pat@example.com", LOCAL_ACCOUNT)).start("churn")
    assert refused.value.status == 403
    genuine = _team_role(people, "AWSReservedSSO_DataScience_4567cdef", path="/aws-reserved/sso.amazonaws.com/")
    # Identity Center passes the user's attributes for access control as session tags: here mlops:model
    run = _pipelines(iam.sign_in(genuine, "pat@example.com", LOCAL_ACCOUNT, tags={naming.MODEL_TAG: "churn"})).start("churn")
    assert _execution_input(run.arn)["requested_by_person"] == "pat@example.com"
    boto3.client("stepfunctions").stop_execution(executionArn=run.arn)
    with pytest.raises(ApiError) as untagged:  # a person, but not shown to work on churn
        _pipelines(iam.sign_in(genuine, "sam@example.com", LOCAL_ACCOUNT, tags={naming.MODEL_TAG: "houses"})).start("churn")
    assert untagged.value.status == 403 and "not shown to work on churn" in untagged.value.message


def test_the_recorded_commit_is_the_deployed_one_and_the_callers_is_only_claimed(people):
    """A data scientist sends any hex commit; PrepareRun, as its own role, records the deployed source's commit."""
    run = _pipelines(people["scientist"]).start("churn", git_commit="deadbee")
    prepare = people["provisioned"].function_named("PipelineTasksPrepare")
    config = prepare.call({"execution_arn": run.arn, "execution_name": run.name, "state": _execution_input(run.arn)}, {})
    deployed = json.loads(boto3.client("ssm").get_parameter(  # the commit the model stack was synthesized from
        Name=naming.model_record_parameter("churn", "local"))["Parameter"]["Value"])["settings"]["SOURCE_GIT_COMMIT"]
    assert config["git_commit"] == deployed != "deadbee"
    assert config["claimed_git_commit"] == "deadbee"


@pytest.mark.parametrize("method, path, body, field", [
    ("GET", "/runs?status=running", None, "status"),
    ("GET", "/runs/" + "x" * 81, None, "run"),
    ("GET", "/runs/" + "x" * 81 + "/metrics", None, "run"),
    ("POST", "/approvals/" + "x" * 81, {"decision": "approve"}, "execution"),
    ("POST", "/runs", {"reason": "fine\u202eexe.txt"}, "reason"),
], ids=["status-filter", "long-run-name", "long-metrics-name", "long-execution-name", "bidi-reason"])
def test_requests_aws_would_refuse_get_a_400_naming_the_field(people, method, path, body, field):
    caller = people["approver"] if path.startswith("/approvals") else people["scientist"]
    with pytest.raises(ApiError) as refused:
        _pipelines(caller).api("churn").call(method, path, body)
    assert refused.value.status == 400 and field in refused.value.message

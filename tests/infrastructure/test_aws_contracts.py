"""What AWS itself would refuse at the first `cdk deploy` or run, read off the synthesized templates."""

import json
import re
from collections import defaultdict

import pytest

from pipelines.local.cfn import state_machine_definitions
from stacks.constructs.retraining import TRANSIENT_ERRORS
from stacks.constructs.sagemaker_retries import BROAD_BUDGET_S, BROAD_NAMES, JOB_QUOTA, JOB_REFUSED, SDK_REFUSED, total_wait_s
from tests.infrastructure.conftest import new_app, template_of
from tests.infrastructure.test_model_stack import flat, schedules, statements


@pytest.fixture(scope="module")
def registry(dev_app):
    return template_of(dev_app, "mlops-dev-registry").to_json()


@pytest.fixture(scope="module")
def model(serving_dev_app):
    return template_of(serving_dev_app, "mlops-dev-churn").to_json()


def key_policy(registry) -> list[dict]:
    (key,) = [r for r in registry["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    return key["Properties"]["KeyPolicy"]["Statement"]


def service_statements(registry) -> dict[str, dict]:
    return {s["Principal"]["Service"]: s for s in key_policy(registry) if "Service" in s.get("Principal", {})}


def test_cloudwatch_logs_may_use_the_key_for_this_accounts_log_groups_only(registry):
    logs = service_statements(registry)["logs.us-east-1.amazonaws.com"]
    assert {"kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"} <= set(logs["Action"])
    condition = flat(logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
    assert condition == "arn:<AWS::Partition>:logs:us-east-1:111111111111:log-group:*"


def test_the_model_stacks_log_groups_are_encrypted_with_that_key(model):
    groups = [r["Properties"] for r in model["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert groups and all("KmsKeyId" in g for g in groups)


@pytest.mark.parametrize("service", ["cloudwatch.amazonaws.com", "events.amazonaws.com", "sns.amazonaws.com",
                                     "delivery.logs.amazonaws.com"])
def test_every_other_service_grant_is_bound_to_this_account_and_its_own_resources(registry, service):
    statement = service_statements(registry)[service]
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == "111111111111"
    assert ":111111111111:" in flat(statement["Condition"]["ArnLike"]["aws:SourceArn"])


@pytest.mark.parametrize("task", ["PipelineTasksDeployScopedRole", "PipelineTasksRollbackScopedRole"])
def test_tasks_creating_kms_encrypted_endpoint_configs_may_create_grants_for_sagemaker(dev_app, task):
    control = template_of(dev_app, "mlops-dev-control").to_json()
    grants = [s for s in statements(control, task) if "kms:CreateGrant" in s["Action"]]
    assert grants and all(s["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}} for s in grants)
    assert all("Fn::ImportValue" in json.dumps(s["Resource"]) for s in grants)  # the registry's key, not '*'


def test_the_state_machine_creating_kms_encrypted_training_jobs_may_create_grants(model):
    grants = [s for s in statements(model, "RetrainingStateMachineRole") if "kms:CreateGrant" in s["Action"]]
    assert grants and grants[0]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_the_endpoint_execution_role_may_describe_exactly_the_rollback_alarms(model):
    (describe,) = [s for s in statements(model, "SageMakerExecution") if "cloudwatch:DescribeAlarms" in s["Action"]]
    alarms = sorted(flat(r).rsplit(":", 1)[1] for r in describe["Resource"])
    assert alarms == sorted(["churn-dev-prod-5xx-rate", "churn-dev-prod-p99-latency"])
    for name in alarms:
        assert any(r["Properties"].get("AlarmName") == name for r in model["Resources"].values()
                   if r["Type"] == "AWS::CloudWatch::Alarm")
    assert not [s for s in statements(model, "Function") if "cloudwatch:DescribeAlarms" in s["Action"]]


def test_the_drift_check_keeps_failed_async_invocations_in_an_alarmed_queue(model, dev_app):
    control = template_of(dev_app, "mlops-dev-control").to_json()["Resources"]
    (invoke_config,) = [r["Properties"] for r in control.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"
                        and r["Properties"]["FunctionName"]["Ref"].startswith("DriftChecks")]
    queue_ref = invoke_config["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert control[queue_ref]["Type"] == "AWS::SQS::Queue" and "KmsMasterKeyId" in control[queue_ref]["Properties"]
    assert invoke_config["MaximumRetryAttempts"] == 0  # the next scheduled check is the retry: one message a failure
    alarms = [r["Properties"] for r in control.values() if r["Type"] == "AWS::CloudWatch::Alarm"
              and queue_ref in json.dumps(r["Properties"].get("Dimensions"))]
    assert alarms and alarms[0]["Threshold"] == 1 and alarms[0]["AlarmActions"]
    # what Scheduler cannot deliver goes to the model's own queue
    resources = model["Resources"]
    drift = schedules(model)["Drift check"]
    model_queue = drift["Target"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert resources[model_queue]["Type"] == "AWS::SQS::Queue"


@pytest.mark.parametrize("check", ["drift", "quality"])
def test_a_monitor_schedule_sends_what_its_check_parses(model, check):
    """Scheduler puts its context attributes in the input it sends (EventBridge Scheduler user guide, "Adding context
    attributes"); the check's event model must accept the result (a payload of {} failed every check in AWS)."""
    from lambdas.shared.events import ScheduledCheck

    schedule = schedules(model)[f"{check.title()} check"]
    assert schedule["Target"]["Arn"].endswith(f":function:mlops-dev-control-{check}")
    sent = schedule["Target"]["Input"].replace("<aws.scheduler.scheduled-time>", "2026-12-07T10:15:00Z").replace(
        "<aws.scheduler.execution-id>", "d1f7c9e2-5b7a-4c3e-9a1b-2f3e4d5c6b7a")
    parsed = ScheduledCheck.model_validate_json(sent)
    assert (parsed.model, parsed.scheduled_time.isoformat()) == ("churn", "2026-12-07T10:15:00+00:00")


def test_the_retraining_schedule_target_keeps_its_failures_too(model):
    schedule = schedules(model)["Periodic retraining"]
    assert schedule["Target"]["Arn"] == {"Ref": next(k for k, r in model["Resources"].items()
                                                     if r["Type"] == "AWS::StepFunctions::StateMachine")}
    assert "DeadLetterConfig" in schedule["Target"] and schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 2
    assert json.loads(schedule["Target"]["Input"]) == {"model": "churn", "trigger": "schedule", "requested_by": "schedule"}


def test_schedules_run_as_the_environments_one_scheduler_role_allowed_only_its_models_targets(model, registry):
    """EventBridge Scheduler User Guide, "Set up the execution role" (trust, aws:SourceAccount) and "Configuring a
    dead-letter queue" (the execution role sends to the queue: sqs:SendMessage, and the key of an encrypted one)."""
    assert {flat(s["Target"]["RoleArn"]) for s in schedules(model).values()} == {
        "arn:aws:iam::111111111111:role/mlops-dev-scheduler"}
    (role_id, role), = [(k, r) for k, r in registry["Resources"].items() if r["Type"] == "AWS::IAM::Role"
                        and r["Properties"].get("RoleName") == "mlops-dev-scheduler"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "111111111111"}}
    granted = {s["Action"] if isinstance(s["Action"], str) else tuple(s["Action"]): flat(s["Resource"])
               for s in statements(registry, "SchedulerRole")}
    # the three control-plane functions schedules invoke, and none of the tasks that trust their event's execution
    assert {r.rpartition(":function:")[2] for r in granted["lambda:InvokeFunction"].split()} == {
        "mlops-dev-control-drift", "mlops-dev-control-quality", "mlops-dev-control-approval-repair"}
    (key,) = [s for s in statements(registry, "SchedulerRole") if "kms:Decrypt" in s["Action"]]
    assert key["Condition"] == {"StringEquals": {"kms:ViaService": "sqs.us-east-1.amazonaws.com"}}
    assert granted["states:StartExecution"].endswith(":stateMachine:*-dev-retraining")
    assert granted["sqs:SendMessage"].endswith(":*-dev-async-failures")
    # A model stack has no function of its own: the schedules invoke the control plane's, which are named
    # mlops-<env>-control-<purpose> (inside the invoke grant's mlops-<env>-*).
    assert not [k for k, r in model["Resources"].items() if r["Type"] == "AWS::Lambda::Function"]
    targets = {flat(s["Target"]["Arn"]) for s in schedules(model).values()}
    assert {t.rpartition(":function:")[2] for t in targets if ":function:" in t} == {
        "mlops-dev-control-drift", "mlops-dev-control-quality", "mlops-dev-control-approval-repair"}


def test_reserved_concurrency_is_a_spec_setting():
    from stacks.app_builder import build_app
    app = build_app(new_app(env="dev", **{"mlops:environments": {"dev": {
        "account": "111111111111", "region": "us-east-1", "overrides": {"approval": {"reserved_concurrency": 3}}}}}))
    decide = [r["Properties"] for k, r in template_of(app, "mlops-dev-control").to_json()["Resources"].items()
              if r["Type"] == "AWS::Lambda::Function" and k.startswith("ApprovalDecideHandler")]
    assert decide[0]["ReservedConcurrentExecutions"] == 3


def test_account_and_region_come_from_the_command_line_without_editing_cdk_json():
    from stacks.app_builder import build_app
    app = build_app(new_app(env="dev", account="444455556666", region="eu-west-1"))
    registry = app.node.find_child("mlops-dev-registry")
    assert (registry.account, registry.region) == ("444455556666", "eu-west-1")
    from pipelines.spec import discover_spec_files

    models = [f"mlops-dev-{path.parent.name}" for path in discover_spec_files()]
    assert [c.node.id for c in app.node.children if hasattr(c, "account")] == ["mlops-dev-registry", "mlops-dev-control",
                                                                            *models]


def test_an_account_override_without_an_environment_is_refused():
    from pipelines.spec import SpecError
    from stacks.app_builder import build_app
    with pytest.raises(SpecError, match="add -c env=NAME"):
        build_app(new_app(account="444455556666"))


def test_current_account_comes_from_the_cdk_cli_credentials(monkeypatch):
    from pipelines.spec import SpecError
    from stacks.app_builder import build_app
    environments = {"dev": {"account": "current", "region": "us-east-1"}}
    monkeypatch.delenv("CDK_DEFAULT_ACCOUNT", raising=False)
    with pytest.raises(SpecError, match="no AWS credentials were found"):
        build_app(new_app(env="dev", **{"mlops:environments": environments}))
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "777788889999")
    app = build_app(new_app(env="dev", **{"mlops:environments": environments}))
    assert app.node.find_child("mlops-dev-registry").account == "777788889999"



def test_the_approval_repair_runs_on_a_schedule_and_keeps_its_failures(model, dev_app):
    from lambdas.approval.handlers import RepairRequest

    schedule = schedules(model)["Approval repair"]
    assert re.fullmatch(r"cron\(\d{1,2}/15 \* \* \* \? \*\)", schedule["ScheduleExpression"])  # every 15 minutes
    assert "DeadLetterConfig" in schedule["Target"]
    assert schedule["Target"]["Arn"].endswith(":function:mlops-dev-control-approval-repair")
    assert RepairRequest.model_validate_json(schedule["Target"]["Input"]).model == "churn"
    control = template_of(dev_app, "mlops-dev-control").to_json()["Resources"]
    assert [r for r in control.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"
            and r["Properties"]["FunctionName"]["Ref"].startswith("ApprovalRepair")]


def test_a_model_adds_no_rule_to_the_default_bus_for_its_schedules(model):
    scheduled = [r for r in model["Resources"].values() if r["Type"] == "AWS::Events::Rule"
                 and "ScheduleExpression" in r["Properties"]]
    assert not scheduled
    assert {s["Name"] for s in (r["Properties"] for r in model["Resources"].values()
                                if r["Type"] == "AWS::Scheduler::Schedule")} == {
        "mlops-dev-churn-retraining", "mlops-dev-churn-drift", "mlops-dev-churn-quality", "mlops-dev-churn-reconcile"}


@pytest.fixture(scope="module")
def control(dev_app):
    return template_of(dev_app, "mlops-dev-control").to_json()


@pytest.mark.parametrize("policy", ["AccessDataScientist", "AccessApprover", "AccessPlatformAdmin"])
def test_the_people_may_call_the_aws_iam_runs_api_with_both_actions_lambda_requires(control, policy):
    """Lambda developer guide, "Control access to Lambda function URLs": "Starting in October 2025, new function
    URLs will require both lambda:InvokeFunctionUrl and lambda:InvokeFunction permissions." InvokeFunction only
    through the URL: a direct Invoke could forge requestContext.authorizer.iam.userArn (who started or decided)."""
    (document,) = [r["Properties"]["PolicyDocument"] for logical, r in control["Resources"].items()
                   if r["Type"] == "AWS::IAM::ManagedPolicy" and logical.startswith(policy)]
    by_action = {}
    for statement in document["Statement"]:
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            if action.startswith("lambda:"):
                by_action.setdefault(action, []).append(statement)
    assert set(by_action) == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    (url,), (invoke,) = by_action["lambda:InvokeFunctionUrl"], by_action["lambda:InvokeFunction"]
    assert url["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}
    assert invoke["Condition"] == {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}
    assert invoke["Resource"] == url["Resource"] and "RunsApiFunctionHandler" in json.dumps(url["Resource"])


@pytest.mark.parametrize("policy", ["AccessDataScientist", "AccessPlatformAdmin"])
def test_people_reading_executions_may_decrypt_them_with_the_state_machines_key(control, policy):
    """The state machine is encrypted with the registry key; botocore's sfn model (DescribeExecution /
    DescribeStateMachine includedData): "If your state machine definition is encrypted with a KMS key, callers must
    have kms:Decrypt permission". A Decrypt scoped to kms:ViaService s3 does not cover Step Functions."""
    (document,) = [r["Properties"]["PolicyDocument"] for logical, r in control["Resources"].items()
                   if r["Type"] == "AWS::IAM::ManagedPolicy" and logical.startswith(policy)]
    decrypts = [s for s in document["Statement"] if s["Action"] == "kms:Decrypt"]
    machine = ":states:us-east-1:111111111111:stateMachine:<aws:PrincipalTag/mlops:model>-dev-retraining"
    contexts = [s.get("Condition", {}).get("StringEquals", {}).get("kms:EncryptionContext:aws:states:stateMachineArn")
                for s in decrypts]
    assert any(context is not None and flat(context).startswith("arn:") and flat(context).endswith(machine)
               for context in contexts)


# Source condition keys each service principal is documented to send when it assumes a role, and where. A trust
# condition on a key the service does not send refuses every AssumeRole, which no emulation shows.
DOCUMENTED_TRUST_CONDITIONS = {
    # Step Functions Developer Guide, "Cross-service confused deputy prevention": the execution role's trust policy
    # with aws:SourceArn (the state machine) and aws:SourceAccount.
    "states.amazonaws.com": {"aws:SourceArn", "aws:SourceAccount"},
    # EventBridge User Guide, "Cross-service confused deputy prevention": a rule target's role trust with
    # aws:SourceArn (the rule) and aws:SourceAccount.
    "events.amazonaws.com": {"aws:SourceArn", "aws:SourceAccount"},
    # SageMaker Developer Guide, "Cross-service confused deputy prevention", documents them per feature (training,
    # processing, inference, ...) and not for MLflow tracking servers, whose IAM guide ("Set up IAM permissions for
    # MLflow") trusts sagemaker.amazonaws.com without conditions; the platform's SageMaker roles use none.
    # EventBridge Scheduler User Guide, "Set up the execution role" and "Cross-service confused deputy prevention".
    "scheduler.amazonaws.com": {"aws:SourceArn", "aws:SourceAccount"},
    "sagemaker.amazonaws.com": set(),
    "lambda.amazonaws.com": set(),
    "codebuild.amazonaws.com": set(),
    "codepipeline.amazonaws.com": set(),
}


def test_role_trusts_condition_a_service_only_on_keys_aws_documents_that_service_sends(whole_app_templates):
    used = defaultdict(set)
    for stack, path in whole_app_templates.items():
        for logical_id, resource in json.loads(path.read_text())["Resources"].items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            for statement in resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
                services = statement.get("Principal", {}).get("Service", [])
                keys = {key for block in statement.get("Condition", {}).values() for key in block}
                for service in [services] if isinstance(services, str) else services:
                    assert service in DOCUMENTED_TRUST_CONDITIONS, f"{stack}/{logical_id}: {service}: no doc recorded"
                    undocumented = keys - DOCUMENTED_TRUST_CONDITIONS[service]
                    assert not undocumented, f"{stack}/{logical_id}: {service} is not documented to send {undocumented}"
                    used[service] |= keys
    assert used["states.amazonaws.com"] == {"aws:SourceArn", "aws:SourceAccount"}  # the guard stays where it works


# How Step Functions names SageMaker's errors, per integration (stacks/constructs/sagemaker_retries.py has the
# sources): a retrier naming anything else never matches.
SAGEMAKER_ERROR_NAMES = {"sync": {JOB_QUOTA, JOB_REFUSED, "SageMaker.ResourceInUseException"},
                         "sdk": {SDK_REFUSED, "SageMaker.ResourceNotFoundException", "SageMaker.ResourceInUseException",
                                 "SageMaker.ResourceLimitExceededException"}}
# Step Functions developer guide, "Handling transient Lambda service exceptions" and the lambda:invoke integration.
LAMBDA_ERROR_NAMES = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                      "Lambda.TooManyRequestsException", "Lambda.ClientExecutionTimeoutException"}


def task_states(whole_app_templates) -> list[tuple[str, str, dict]]:
    found = []
    for stack, path in whole_app_templates.items():
        for definition in state_machine_definitions(json.loads(path.read_text())).values():
            found += [(stack, name, state) for name, state in _states(definition) if state["Type"] == "Task"]
    return found


def _states(definition: dict):
    for name, state in definition["States"].items():
        yield name, state
        for branch in state.get("Branches", []) + ([state["Iterator"]] if "Iterator" in state else []):
            yield from _states(branch)


def integration(resource: str) -> str | None:
    if ":states:::sagemaker:" in resource:
        return "sync"
    return "sdk" if ":states:::aws-sdk:sagemaker:" in resource else None


def test_sagemaker_states_retry_only_names_step_functions_raises_and_permanent_refusals_fail_within_a_minute(
        whole_app_templates):
    sagemaker_states = [(stack, name, state, integration(json.dumps(state["Resource"])))
                        for stack, name, state in task_states(whole_app_templates)]
    sagemaker_states = [entry for entry in sagemaker_states if entry[3]]
    assert {name for _, name, _, _ in sagemaker_states} >= {"Train", "TuneHyperparameters", "DescribeBestTrial",
                                                             "DescribeStagingEndpoint", "DescribeProdEndpoint"}
    for stack, name, state, kind in sagemaker_states:
        assert state.get("Retry"), f"{stack}/{name}: no retrier"
        for retrier in state["Retry"]:
            unknown = set(retrier["ErrorEquals"]) - SAGEMAKER_ERROR_NAMES[kind]
            assert not unknown, f"{stack}/{name}: {unknown} is never raised by a SageMaker {kind} task"
            wait = total_wait_s(retrier["IntervalSeconds"], retrier["MaxAttempts"], retrier["BackoffRate"])
            if set(retrier["ErrorEquals"]) & set(BROAD_NAMES):
                assert wait <= BROAD_BUDGET_S, f"{stack}/{name}: a validation error would be retried for {wait} s"
        if kind == "sync":
            assert any(JOB_QUOTA in r["ErrorEquals"] for r in state["Retry"]), f"{stack}/{name}: a full quota fails the run"


def test_lambda_states_retry_only_the_errors_the_lambda_integration_raises(whole_app_templates):
    assert set(TRANSIENT_ERRORS) <= LAMBDA_ERROR_NAMES
    for stack, name, state in task_states(whole_app_templates):
        if ":states:::lambda:invoke" in json.dumps(state["Resource"]):
            for retrier in state.get("Retry", []):
                assert set(retrier["ErrorEquals"]) <= LAMBDA_ERROR_NAMES | {"ClientError"}, f"{stack}/{name}: {retrier}"

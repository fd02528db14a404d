"""MlopsServiceChecks (stacks/nag_rules.py): per rule, a tiny violating app fails synthesis with the rule id,
a compliant variant synthesizes. Only this pack is registered, so AwsSolutions findings do not interfere."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs

from stacks.nag import acknowledge
from stacks.nag_rules import RULES, MlopsServiceChecks

ACCOUNT, REGION = "111111111111", "us-east-1"
ENV = cdk.Environment(account=ACCOUNT, region=REGION)


def tiny_app() -> tuple[cdk.App, cdk.Stack]:
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    return app, cdk.Stack(app, "Tiny", env=ENV)


def synth(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(MlopsServiceChecks(app))
    app.synth()


def assert_fails(app: cdk.App, rule: str) -> None:
    with pytest.raises(Exception, match=rf"(?s)ValidationFailed.*Mlops-{rule}") as failure:
        synth(app)
    assert "Rule threw an error" not in str(failure.value)  # a crashing rule also names its id


def function(scope, id_: str, **props) -> lambda_.Function:
    return lambda_.Function(scope, id_, runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                            code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"), **props)


def logs_statement(**overrides) -> iam.PolicyStatement:
    props = dict(
        principals=[iam.ServicePrincipal(f"logs.{REGION}.amazonaws.com")],
        actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        resources=["*"],
        conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:*"}},
    )
    return iam.PolicyStatement(**{**props, **overrides})


def test_every_rule_cites_the_aws_documentation_it_follows():
    for rule in RULES:
        assert "docs.aws.amazon.com" in rule.explanation, rule.rule_id
    assert MlopsServiceChecks().rule_ids == [f"Mlops-{r.suffix}" for r in RULES]


# 1. LogGroupKeyPolicy -- the key lives in another stack, as the registry key does for the model stacks.
def cross_stack_log_group(*statements: iam.PolicyStatement) -> cdk.App:
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    registry = cdk.Stack(app, "Registry", env=ENV)
    key = kms.Key(registry, "Key", enable_key_rotation=True)
    for statement in statements:
        key.add_to_resource_policy(statement)
    model = cdk.Stack(app, "Model", env=ENV)
    logs.LogGroup(model, "Logs", encryption_key=key)
    return app


def test_log_group_key_policy_fails_without_the_logs_statement_on_the_imported_key():
    assert_fails(cross_stack_log_group(), "LogGroupKeyPolicy")


def test_log_group_key_policy_fails_without_the_encryption_context_condition():
    assert_fails(cross_stack_log_group(logs_statement(conditions={"StringEquals": {"aws:SourceAccount": ACCOUNT}})),
                 "LogGroupKeyPolicy")


def test_log_group_key_policy_passes_with_the_documented_statement():
    synth(cross_stack_log_group(logs_statement()))


# 2. KmsServiceGrantSourceCondition
def test_service_grant_without_source_condition_fails():
    app, stack = tiny_app()
    kms.Key(stack, "Key", enable_key_rotation=True).grant_encrypt_decrypt(iam.ServicePrincipal("sns.amazonaws.com"))
    assert_fails(app, r"KmsServiceGrantSourceCondition\[Service::sns.amazonaws.com\]")


def test_service_grant_with_source_account_passes():
    app, stack = tiny_app()
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    key.add_to_resource_policy(iam.PolicyStatement(
        principals=[iam.ServicePrincipal("sns.amazonaws.com"), iam.ServicePrincipal("events.amazonaws.com")],
        actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"],
        conditions={"StringEquals": {"aws:SourceAccount": ACCOUNT}}))
    key.add_to_resource_policy(logs_statement())  # logs: the encryption-context condition is enough
    synth(app)


# 3. SageMakerKmsCreateGrant
def deployer(stack: cdk.Stack, *extra: iam.PolicyStatement) -> iam.Role:
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    sns.Topic(stack, "Topic", master_key=key)  # the stack's resources use a KMS key
    role = iam.Role(stack, "Deployer", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:CreateEndpointConfig", "sagemaker:CreateEndpoint",
                                                    "sagemaker:UpdateEndpoint"],
                                           resources=[f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/m-*"]))
    for statement in extra:
        role.add_to_policy(statement)
    return role


def test_endpoint_caller_without_create_grant_fails():
    app, stack = tiny_app()
    deployer(stack)
    assert_fails(app, r"SageMakerKmsCreateGrant\[sagemaker:CreateEndpoint\]")


def test_endpoint_caller_with_create_grant_for_aws_resources_passes():
    app, stack = tiny_app()
    deployer(stack, iam.PolicyStatement(actions=["kms:CreateGrant"], resources=["*"],
                                        conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}))
    synth(app)


@pytest.mark.parametrize("grant_on_execution_role", [False, True])
def test_training_job_create_grant_may_sit_on_the_caller_or_the_passed_role(grant_on_execution_role):
    app, stack = tiny_app()
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    execution = iam.Role(stack, "Execution", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    key.grant_encrypt_decrypt(execution)
    caller = iam.Role(stack, "StateMachineRole", assumed_by=iam.ServicePrincipal("states.amazonaws.com"))
    caller.add_to_policy(iam.PolicyStatement(actions=["sagemaker:CreateTrainingJob"],
                                             resources=[f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/m-*"]))
    execution.grant_pass_role(caller)
    if grant_on_execution_role:
        key.grant(execution, "kms:CreateGrant")
        synth(app)
    else:
        assert_fails(app, r"SageMakerKmsCreateGrant\[sagemaker:CreateTrainingJob\]")


# 4. AlarmRollbackDescribeAlarms: the model's execution role, passed by the UpdateEndpoint caller.
def blue_green(*hosting_statements: iam.PolicyStatement) -> cdk.App:
    app, stack = tiny_app()
    hosting = iam.Role(stack, "Hosting", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    for statement in hosting_statements:
        hosting.add_to_policy(statement)
    caller = iam.Role(stack, "Deployer", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    caller.add_to_policy(iam.PolicyStatement(actions=["sagemaker:CreateModel", "sagemaker:UpdateEndpoint"],
                                             resources=[f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/m-*"]))
    hosting.grant_pass_role(caller)
    return app


def test_execution_role_without_describe_alarms_fails():
    assert_fails(blue_green(), "AlarmRollbackDescribeAlarms")


def test_execution_role_with_describe_alarms_passes():
    synth(blue_green(iam.PolicyStatement(actions=["cloudwatch:DescribeAlarms"],
                                         resources=[f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:m-*"])))


# 5. AsyncFunctionFailureDestination
@pytest.mark.parametrize("source", ["events", "sns"])
def test_async_function_without_failure_destination_fails(source):
    app, stack = tiny_app()
    fn = function(stack, "Drift")
    if source == "events":
        events.Rule(stack, "Schedule", schedule=events.Schedule.rate(cdk.Duration.hours(1)),
                    targets=[targets.LambdaFunction(fn)])
    else:
        sns.Topic(stack, "Topic").add_subscription(subscriptions.LambdaSubscription(fn))
    assert_fails(app, "AsyncFunctionFailureDestination")


def test_a_schedule_naming_a_function_by_its_arn_makes_it_asynchronous_too():
    """The model stacks' schedules name the control plane's functions by ARN (another stack's): the rule resolves
    the ARN through the function's name."""
    from aws_cdk import aws_scheduler as scheduler

    app, stack = tiny_app()
    function(stack, "Drift", function_name="mlops-dev-control-drift")
    scheduler.CfnSchedule(stack, "DriftOfChurn", schedule_expression="rate(1 hour)",
                          flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                          target=scheduler.CfnSchedule.TargetProperty(
                              arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mlops-dev-control-drift",
                              role_arn=f"arn:aws:iam::{ACCOUNT}:role/mlops-dev-scheduler"))
    assert_fails(app, "AsyncFunctionFailureDestination")


def test_async_function_with_on_failure_destination_passes():
    app, stack = tiny_app()
    failures = sqs.Queue(stack, "Failures", enforce_ssl=True)
    fn = function(stack, "Drift", on_failure=destinations.SqsDestination(failures))
    events.Rule(stack, "Schedule", schedule=events.Schedule.rate(cdk.Duration.hours(1)),
                targets=[targets.LambdaFunction(fn)])
    synth(app)


def test_rule_target_dead_letter_queue_covers_the_rule():
    app, stack = tiny_app()
    fn = function(stack, "Drift")
    events.Rule(stack, "Schedule", schedule=events.Schedule.rate(cdk.Duration.hours(1)),
                targets=[targets.LambdaFunction(fn, dead_letter_queue=sqs.Queue(stack, "Dlq", enforce_ssl=True))])
    synth(app)


def test_synchronously_invoked_function_is_not_concerned():
    app, stack = tiny_app()
    function(stack, "Step")
    synth(app)


# 6. NoReservedConcurrency
def test_reserved_concurrency_fails():
    app, stack = tiny_app()
    function(stack, "Decide", reserved_concurrent_executions=5)
    assert_fails(app, "NoReservedConcurrency")


def test_reserved_concurrency_passes_when_acknowledged_explicitly():
    app, stack = tiny_app()
    fn = function(stack, "Decide", reserved_concurrent_executions=5)
    acknowledge(fn, {"Mlops-NoReservedConcurrency": "this account's concurrency quota is 1000, raised for it"})
    synth(app)


def test_a_sagemaker_list_call_scoped_to_a_resource_fails():
    app, stack = tiny_app()
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:ListModelPackages"],
                                           resources=["arn:aws:sagemaker:us-east-1:111111111111:model-package-group/g"]))
    assert_fails(app, "StarOnlyActionScoped")


def test_a_sagemaker_list_call_on_star_and_list_tags_scoped_pass():
    app, stack = tiny_app()
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"]))
    role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:ListTags"],
                                           resources=["arn:aws:sagemaker:us-east-1:111111111111:model/m"]))
    synth(app)


def cmk_table_reader(*statements: iam.PolicyStatement) -> cdk.App:
    from aws_cdk import aws_dynamodb as dynamodb, aws_kms as kms
    app, stack = tiny_app()
    key = kms.Key(stack, "K", enable_key_rotation=True)
    table = dynamodb.Table(stack, "T", table_name="audit", encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
                           encryption_key=key, partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING))
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[table.table_arn]))
    for statement in statements:
        role.add_to_policy(statement)
    return app


def test_reading_a_cmk_encrypted_table_without_decrypt_on_its_key_fails():
    assert_fails(cmk_table_reader(), "DynamoDBKeyAccess")


def test_reading_a_cmk_encrypted_table_with_decrypt_via_dynamodb_passes():
    synth(cmk_table_reader(iam.PolicyStatement(actions=["kms:Decrypt"], resources=["*"], conditions={
        "StringEquals": {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}})))

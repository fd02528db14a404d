"""The approval hook: the run waits on a task token while approvers get signed single-use links by email.

Links hit a Lambda Function URL without IAM auth on purpose: approvers click from an email client.
Authenticity comes from the HMAC-signed link (key in Secrets Manager), bound to execution, package,
approver and action, with expiry; decisions are claimed atomically once; the page does nothing on
GET (mail scanners are harmless); each client address is rate-limited (a DynamoDB counter: reserved concurrency, off by default, is refused
by Lambda in accounts whose concurrency quota is 10).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack, aws_dynamodb as dynamodb, aws_iam as iam, aws_kms as kms
from aws_cdk import aws_lambda as lambda_, aws_secretsmanager as secretsmanager, aws_sns as sns
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns_subscriptions as subscriptions, aws_stepfunctions as sfn, aws_stepfunctions_tasks as tasks
from constructs import Construct

from lambdas.shared.cost import RECONCILE_SCHEDULE
from pipelines import naming
from pipelines.spec import SIGNING_KEY_ROTATION_DAYS, ModelSpec
from stacks.constructs.functions import PlatformFunction
from stacks.constructs.retraining import TASK_PAYLOAD, TRANSIENT_ERRORS
from stacks.nag import acknowledge


class ApprovalHook(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, env_name: str, key: kms.IKey,
                 environment: dict[str, str], audit_table: dynamodb.ITable,
                 machine_arn: str, package_arns: list[str], on_rejected: sfn.IChainable,
                 bucket: s3.IBucket | None = None) -> None:
        """bucket: the artifact bucket, whose released artifact the request binds (its current version and digest)."""
        super().__init__(scope, construct_id)
        model, self.model, self.env_name = spec.name, spec.name, env_name
        self.topic = sns.Topic(self, "Topic", topic_name=f"{model}-{env_name}-approvals", master_key=key, enforce_ssl=True)
        for approver in spec.approval.approvers:
            self.topic.add_subscription(subscriptions.EmailSubscription(approver, filter_policy={
                "approver": sns.SubscriptionFilter.string_filter(allowlist=[approver])}))
        self.secret = secretsmanager.Secret(
            self, "SigningKey", secret_name=naming.approval_secret(model, env_name), encryption_key=key,
            description=f"HMAC key signing the approval links of {model} ({env_name})",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True))
        self._rotate_signing_key(key)
        self.idempotency = dynamodb.Table(
            self, "Idempotency", table_name=f"{naming.idempotency_table(env_name)}-{model}",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key, time_to_live_attribute="expiration", removal_policy=RemovalPolicy.DESTROY,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True))

        shared = {**environment, "AUDIT_TABLE": audit_table.table_name, "KMS_KEY_ARN": key.key_arn,
                  "SIGNING_SECRET_ARN": self.secret.secret_arn}
        self.decide = PlatformFunction(self, "DecideFunction", handler="lambdas.approval.handlers.decide_handler", key=key,
                                       environment={**shared, "IDEMPOTENCY_TABLE": self.idempotency.table_name},
                                       description="Approve/reject links: verifies, records, answers the run")
        if spec.approval.reserved_concurrency:  # opt-in: needs an account concurrency quota above 10
            self.decide.function.node.default_child.add_property_override(
                "ReservedConcurrentExecutions", spec.approval.reserved_concurrency)
            acknowledge(self.decide.function, {"Mlops-NoReservedConcurrency": (
                "approval.reserved_concurrency was set in the spec for an account whose concurrency quota leaves "
                "10 unreserved executions beside it")})
        self.url = self.decide.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
        self.request = PlatformFunction(self, "RequestFunction", handler="lambdas.approval.handlers.request_approval",
                                        key=key, description="Stores the task token and mails signed links",
                                        environment={**shared, "APPROVAL_TOPIC_ARN": self.topic.topic_arn,
                                                     "APPROVAL_URL": self.url.url})
        self._grant(model, key, audit_table, machine_arn, package_arns)
        if bucket is not None:
            bucket.grant_read(self.request.role, f"{naming.RELEASES}/{model}/*")

        self.state = tasks.LambdaInvoke(
            self, "WaitForApproval", lambda_function=self.request.function,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object({**TASK_PAYLOAD, "task_token": sfn.JsonPath.task_token}),
            task_timeout=sfn.Timeout.duration(Duration.seconds(int(spec.approval.timeout_hours * 3600))),
            result_path="$.approval", retry_on_service_exceptions=False)
        self.state.add_retry(errors=TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=6, backoff_rate=2)
        self.state.add_catch(on_rejected, errors=["States.Timeout", "ModelRejected"], result_path="$.error")

    def schedule_repair(self, schedules) -> None:
        """Every 15 minutes (at the model's own minutes of the quarter hour), the control plane's approval repair for
        this model (stacks/constructs/approval_repair.py)."""
        from stacks.constructs.approval_repair import ApprovalRepair

        schedules.add("reconcile", RECONCILE_SCHEDULE, target_arn=ApprovalRepair.function_arn(self, self.env_name),
                      payload={"model": self.model}, description=f"Approval repair of {self.model}")

    def _rotate_signing_key(self, key: kms.IKey) -> None:
        """Rotation keeps the previous key verifying (links carry a key id), so links in flight survive one rotation;
        the period is at least approval.timeout_hours (the spec caps it there). The function has a role of its own
        with exactly what the four rotation steps call: Describe/Get/Put/UpdateSecretVersionStage on this secret and
        the key through Secrets Manager only. (CfnRotationSchedule rather than secret.add_rotation_schedule: that
        one grants through the key's policy, a cycle with the registry stack that owns the key, and adds
        GetRandomPassword on '*', which this function does not call.)"""
        self.rotation = PlatformFunction(
            self, "RotateFunction", handler="lambdas.approval.rotation.handler", key=key, environment={},
            description="Rotates the approval-link signing key (new current key, the old one kept as previous)")
        role, function = self.rotation.role, self.rotation.function
        role.add_to_policy(iam.PolicyStatement(
            actions=["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue",
                     "secretsmanager:UpdateSecretVersionStage"], resources=[self.secret.secret_arn]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{Stack.of(self).region}.amazonaws.com"}}))
        permission = lambda_.CfnPermission(
            self, "RotateInvokePermission", action="lambda:InvokeFunction", function_name=function.function_arn,
            principal="secretsmanager.amazonaws.com", source_account=Stack.of(self).account,
            source_arn=self.secret.secret_arn)  # only this secret's rotation may invoke it
        schedule = secretsmanager.CfnRotationSchedule(
            self, "Rotation", secret_id=self.secret.secret_arn, rotation_lambda_arn=function.function_arn,
            rotation_rules=secretsmanager.CfnRotationSchedule.RotationRulesProperty(
                schedule_expression=f"rate({SIGNING_KEY_ROTATION_DAYS} days)"))
        schedule.add_dependency(permission)
        schedule.node.add_dependency(role)

    def _grant(self, model, key, audit_table, machine_arn, package_arns) -> None:
        own_items = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{model}"]}}
        request, decide = self.request.role, self.decide.role
        executions = machine_arn.replace(":stateMachine:", ":execution:") + ":*"
        decide.add_to_policy(iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[executions]))
        # Identity-policy statements, not key grants: the key lives in the registry stack (no cross-stack cycle).
        request.add_to_policy(iam.PolicyStatement(actions=["kms:Encrypt"], resources=[key.key_arn]))
        decide.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key.key_arn]))
        for role in (request, decide):
            role.add_to_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                                                   resources=[self.secret.secret_arn]))
            role.add_to_policy(iam.PolicyStatement(
                actions=["kms:Decrypt"], resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{Stack.of(self).region}.amazonaws.com"}}))
        self.topic.grant_publish(request)
        request.add_to_policy(iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[audit_table.table_arn],
                                                  conditions=own_items))
        request.add_to_policy(iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=package_arns))
        decide.add_to_policy(iam.PolicyStatement(actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
                                                 resources=[audit_table.table_arn], conditions=own_items))
        self.idempotency.grant_read_write_data(decide)
        decide.add_to_policy(iam.PolicyStatement(actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                                                 resources=[machine_arn]))
        decide.add_to_policy(iam.PolicyStatement(actions=["sagemaker:UpdateModelPackage"], resources=package_arns))

"""The approval gate: the run waits on a task token while approvers get signed single-use links by email.

Per environment, in the control plane (ApprovalLinks): one approval URL (the decide function), one signing secret
with its rotation, one idempotency and rate-limit table, and the request function; both functions act for one model
at a time (stacks/constructs/control_plane.py). Per model (ApprovalHook): the approvers' topic and the state
machine's task step, which invokes the environment's request function by name.

Links hit a Lambda Function URL without IAM auth on purpose: approvers click from an email client. Authenticity
comes from the HMAC-signed link (the environment's key in Secrets Manager), bound to model, execution, package,
approver and action, with expiry; the decide function verifies it with its own role before anything else and then
acts for the model the link names, so a link signed for one model reaches no other model's request. Decisions are
claimed atomically once; the page does nothing on GET (mail scanners are harmless); each client address is
rate-limited per model (a DynamoDB counter: reserved concurrency is refused by Lambda in accounts whose concurrency
quota is 10).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack, aws_dynamodb as dynamodb, aws_iam as iam, aws_kms as kms
from aws_cdk import aws_lambda as lambda_, aws_secretsmanager as secretsmanager, aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions, aws_stepfunctions as sfn, aws_stepfunctions_tasks as tasks
from constructs import Construct

from lambdas.shared.cost import RECONCILE_SCHEDULE
from pipelines import naming
from pipelines.spec import SIGNING_KEY_ROTATION_DAYS, ModelSpec
from stacks.constructs.budgets import grant_price_list_read
from stacks.constructs.control_plane import ModelScopedFunction, control_function_arn, model_arn
from stacks.constructs.functions import PlatformFunction
from stacks.constructs.retraining import TASK_PAYLOAD, TRANSIENT_ERRORS
from stacks.nag import acknowledge

MODEL = naming.MODEL_VARIABLE
REQUEST, DECIDE = "approval-request", "approval-decide"
TASK_TOKEN_CONTEXT = "approval-task-token"  # the encryption context's purpose (lambdas/approval/handlers.py)


def reserved_concurrency(overrides: dict) -> int | None:
    """The environment's approval.reserved_concurrency (cdk.json's mlops:environments.<env>.overrides): the approval
    URL is the environment's, so its reservation is too; a model's spec cannot set it alone (ApprovalHook)."""
    return (overrides.get("approval") or {}).get("reserved_concurrency")


class ApprovalLinks(Construct):
    """The environment's approval functions, secret and table (the control stack's)."""

    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, key: kms.IKey, bucket_name: str,
                 reserved_concurrency: int | None = None) -> None:
        """reserved_concurrency: the environment's approval.reserved_concurrency (reserved_concurrency())."""
        super().__init__(scope, construct_id)
        self.env_name, self.key = env_name, key
        self.secret = secretsmanager.Secret(
            self, "SigningKey", secret_name=naming.approval_signing_secret(env_name), encryption_key=key,
            description=f"HMAC key signing the approval links of every model of {env_name}",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True))
        self._rotate_signing_key(key)
        # Decisions already answered (powertools idempotency, keyed on the link) and the per-address counters.
        self.idempotency = dynamodb.Table(
            self, "Idempotency", table_name=naming.idempotency_table(env_name),
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key, time_to_live_attribute="expiration", removal_policy=RemovalPolicy.DESTROY,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True))
        shared = {"AUDIT_TABLE": naming.audit_table(env_name), "KMS_KEY_ARN": key.key_arn,
                  "SIGNING_SECRET_ARN": self.secret.secret_arn}
        self.decide = ModelScopedFunction(
            self, "Decide", handler="lambdas.approval.handlers.decide_handler", key=key, env_name=env_name,
            environment={**shared, "IDEMPOTENCY_TABLE": self.idempotency.table_name},
            description="Approve/reject links: verifies, then records and answers the run of the model the link names",
            function_name=naming.control_function(env_name, DECIDE))
        if reserved_concurrency:  # opt-in: needs an account concurrency quota above 10
            self.decide.function.node.default_child.add_property_override("ReservedConcurrentExecutions",
                                                                          reserved_concurrency)
            acknowledge(self.decide.function, {"Mlops-NoReservedConcurrency": (
                "approval.reserved_concurrency was set in the environment's overrides for an account whose "
                "concurrency quota leaves 10 unreserved executions beside it")})
        self.url = self.decide.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
        self.request = ModelScopedFunction(
            self, "Request", handler="lambdas.approval.handlers.request_approval", key=key, env_name=env_name,
            environment={**shared, "APPROVAL_URL": self.url.url},
            description="Stores a model's task token and mails its approvers signed links",
            function_name=naming.control_function(env_name, REQUEST))
        self._grant_own_roles(key)
        self._grant_request(bucket_name)
        self._grant_decide()

    def _grant_own_roles(self, key: kms.IKey) -> None:
        """The secret is the environment's, read with each function's own role (a link is verified before the
        decide function knows which model to act for); the decide function's own role keeps the table."""
        for role in (self.request.role, self.decide.role):
            role.add_to_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                                                   resources=[self.secret.secret_arn]))
            role.add_to_policy(iam.PolicyStatement(
                actions=["kms:Decrypt"], resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{Stack.of(self).region}.amazonaws.com"}}))
        # Not grant_read_write_data: that grants the key for any use, and the key also encrypts every model's task
        # tokens; the table's items are the function's own (answered links, counters), the key only through DynamoDB.
        self.decide.role.add_to_policy(iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            resources=[self.idempotency.table_arn]))
        self.decide.role.add_to_policy(iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{Stack.of(self).region}.amazonaws.com"}}))

    def _grant_request(self, bucket_name: str) -> None:
        request, env_name = self.request, self.env_name
        request.grant_for_model(["dynamodb:PutItem"], model_arn(self, "dynamodb", f"table/{naming.audit_table(env_name)}"),
                                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{MODEL}"]}})
        request.grant_key_through("dynamodb", ["kms:Decrypt", "kms:GenerateDataKey*"])
        request.grant_for_model(["kms:Encrypt"], self.key.key_arn, conditions={"StringEquals": {
            "kms:EncryptionContext:purpose": TASK_TOKEN_CONTEXT, "kms:EncryptionContext:model": MODEL}})
        group = naming.model_package_group(MODEL, env_name)
        request.grant_for_model(["sagemaker:DescribeModelPackage"], model_arn(self, "sagemaker", f"model-package/{group}/*"))
        # The released artifact the request binds (its current version and digest).
        partition = Stack.of(self).partition
        request.grant_for_model(["s3:GetObject", "s3:GetObjectVersion"],
                                f"arn:{partition}:s3:::{bucket_name}/{naming.RELEASES}/{MODEL}/*")
        request.grant_key_through("s3", ["kms:Decrypt"])
        request.grant_for_model(["sns:Publish"], model_arn(self, "sns", naming.approval_topic(MODEL, env_name)))
        request.grant_key_through("sns")
        grant_price_list_read(request.scoped_role)  # the cost table of the approval email

    def _grant_decide(self) -> None:
        decide, env_name = self.decide, self.env_name
        machine = naming.state_machine(MODEL, env_name)
        decide.grant_for_model(["states:DescribeExecution"], model_arn(self, "states", f"execution:{machine}:*"))
        decide.grant_for_model(["states:SendTaskSuccess", "states:SendTaskFailure"],
                               model_arn(self, "states", f"stateMachine:{machine}"))
        decide.grant_model_state_machine_key()
        decide.grant_for_model(["dynamodb:GetItem", "dynamodb:UpdateItem"],
                               model_arn(self, "dynamodb", f"table/{naming.audit_table(env_name)}"),
                               conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{MODEL}"]}})
        decide.grant_key_through("dynamodb", ["kms:Decrypt", "kms:GenerateDataKey*"])
        decide.grant_for_model(["kms:Decrypt"], self.key.key_arn, conditions={"StringEquals": {
            "kms:EncryptionContext:purpose": TASK_TOKEN_CONTEXT, "kms:EncryptionContext:model": MODEL}})
        decide.grant_for_model(["sagemaker:UpdateModelPackage"], model_arn(
            self, "sagemaker", f"model-package/{naming.model_package_group(MODEL, env_name)}/*"))

    def _rotate_signing_key(self, key: kms.IKey) -> None:
        """Rotation keeps the previous key verifying (links carry a key id), so links in flight survive one rotation;
        the period is at least approval.timeout_hours (the spec caps it there). The function has a role of its own
        with exactly what the four rotation steps call: Describe/Get/Put/UpdateSecretVersionStage on this secret and
        the key through Secrets Manager only. (CfnRotationSchedule rather than secret.add_rotation_schedule: that
        one grants through the key's policy, a cycle with the registry stack that owns the key, and adds
        GetRandomPassword on '*', which this function does not call.)"""
        self.rotation = PlatformFunction(
            self, "RotateFunction", handler="lambdas.approval.rotation.handler", key=key, environment={},
            description="Rotates the approval-link signing key (new current key, the old one kept as previous)",
            function_name=naming.control_function(self.env_name, "approval-rotate"))
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
        schedule.add_resource_dependency(permission)  # (CfnResource.add_dependency: deprecated, warns at every synth)
        schedule.node.add_dependency(role)

    @staticmethod
    def request_function_arn(scope: Construct, env_name: str) -> str:
        return control_function_arn(scope, env_name, REQUEST)


class ApprovalHook(Construct):
    """A model's part: its approvers' topic and the task step that waits for the decision."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, env_name: str, key: kms.IKey,
                 on_rejected: sfn.IChainable, environment_reserved_concurrency: int | None = None) -> None:
        super().__init__(scope, construct_id)
        if spec.approval.reserved_concurrency != environment_reserved_concurrency:
            raise ValueError(f"{spec.name}: approval.reserved_concurrency applies to the approval URL every model of "
                             f"{env_name} shares; fix: set it in cdk.json's mlops:environments.{env_name}.overrides, "
                             "not in one model's spec")
        model, self.model, self.env_name = spec.name, spec.name, env_name
        self.topic = sns.Topic(self, "Topic", topic_name=naming.approval_topic(model, env_name), master_key=key,
                               enforce_ssl=True)
        for approver in spec.approval.approvers:
            self.topic.add_subscription(subscriptions.EmailSubscription(approver, filter_policy={
                "approver": sns.SubscriptionFilter.string_filter(allowlist=[approver])}))
        request = lambda_.Function.from_function_arn(self, "Request", ApprovalLinks.request_function_arn(self, env_name))
        self.state = tasks.LambdaInvoke(
            self, "WaitForApproval", lambda_function=request,
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

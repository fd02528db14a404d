"""Encryption and storage building blocks: a rotating KMS key, TLS-only buckets, the audit table."""

from __future__ import annotations

import jsii
from aws_cdk import Aspects, Aws, Duration, IAspect, RemovalPolicy, Stack, aws_dynamodb as dynamodb, aws_iam as iam
from aws_cdk import aws_kms as kms, aws_s3 as s3
from constructs import Construct, IConstruct

from pipelines import naming

SOURCE_CONDITION_KEYS = ("aws:SourceAccount", "aws:SourceArn")


@jsii.implements(IAspect)
class BindServiceGrantsToAccount:
    """Service-principal statements CDK adds to a key policy by itself (a state machine's log delivery:
    `delivery.logs.amazonaws.com` kms:Decrypt*) carry no confused-deputy condition; bind them to this account.
    An aspect, because model stacks add them after the key is built."""

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, kms.CfnKey):
            return
        stack = Stack.of(node)
        for index, statement in enumerate(stack.resolve(node.key_policy).get("Statement", [])):
            service = (statement.get("Principal") or {}).get("Service")
            conditions = condition_keys(statement.get("Condition") or {})
            if isinstance(service, str) and not conditions & set(SOURCE_CONDITION_KEYS) and not service.startswith("logs."):
                node.add_property_override(f"KeyPolicy.Statement.{index}.Condition", {
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:{service.split('.')[-3]}:{stack.region}:{stack.account}:*"}})


def condition_keys(conditions: dict) -> set[str]:
    return {key for operator in conditions.values() for key in operator}


class EncryptionKey(Construct):
    """One customer-managed key per environment, rotated yearly, usable by the services that store data."""

    def __init__(self, scope: Construct, construct_id: str, *, alias: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self, "Key", alias=alias, enable_key_rotation=True, removal_policy=RemovalPolicy.RETAIN,
            description="Encrypts every artifact, table, topic, secret and volume of this MLOps environment",
        )
        self._allow_log_groups()
        Aspects.of(self.key).add(BindServiceGrantsToAccount())
        # Services that use the key on this account's behalf, each only for its own resources in this account
        # (confused-deputy prevention: aws:SourceAccount and aws:SourceArn).
        for service, source_arn in (
                ("cloudwatch", self._arn("cloudwatch", "alarm:*")),  # alarm actions publishing to encrypted topics
                ("events", self._arn("events", "rule/*")),  # rules delivering to encrypted topics and queues
                ("sns", self._arn("sns", "*"))):  # topics delivering to encrypted queues
            self._allow_service(service, ["kms:Decrypt", "kms:GenerateDataKey*"],
                                {"StringEquals": {"aws:SourceAccount": Stack.of(self).account}, "ArnLike": {"aws:SourceArn": source_arn}})
        # Budget and cost-anomaly alerts publishing to encrypted topics (stacks/constructs/budgets.py): Budgets signs as
        # arn:<partition>:budgets::<account>:budget/<name> (no region); Cost Anomaly Detection documents only SourceAccount.
        account = Stack.of(self).account
        self._allow_service("budgets", ["kms:Decrypt", "kms:GenerateDataKey*"], {
            "StringEquals": {"aws:SourceAccount": account}, "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:budgets::{account}:*"}})
        self._allow_service("costalerts", ["kms:Decrypt", "kms:GenerateDataKey*"], {"StringEquals": {"aws:SourceAccount": account}})

    def _arn(self, service: str, resource: str) -> str:
        stack = Stack.of(self)
        return f"arn:{Aws.PARTITION}:{service}:{stack.region}:{stack.account}:{resource}"

    def _allow_service(self, service: str, actions: list[str], conditions: dict) -> None:
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid=f"Allow{service.title().replace('.', '')}", actions=actions, resources=["*"], conditions=conditions,
            principals=[iam.ServicePrincipal(f"{service}.amazonaws.com")]))

    def _allow_log_groups(self) -> None:
        """CloudWatch Logs encrypts log groups with this key only where the key policy lets the regional logs
        principal use it for this account's log groups ("Encrypt log data in CloudWatch Logs using AWS KMS");
        without it CreateLogGroup with KmsKeyId fails, and with it every model stack's log groups."""
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="AllowCloudWatchLogs", principals=[iam.ServicePrincipal(f"logs.{Stack.of(self).region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"], conditions={"ArnLike": {
                "kms:EncryptionContext:aws:logs:arn": self._arn("logs", "log-group:*")}}))


class AccessLogBucket(Construct):
    """Destination of S3 server access logs: SSE-S3 because log delivery cannot write SSE-KMS objects."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self, "Bucket", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True, removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(400), noncurrent_version_expiration=Duration.days(30))],
        )


class ArtifactBucket(Construct):
    """Versioned, KMS-encrypted, TLS-only bucket for datasets, model artifacts, captures and reports."""

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, bucket_name: str,
                 access_logs: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self, "Bucket", bucket_name=bucket_name, encryption=s3.BucketEncryption.KMS, encryption_key=key,
            bucket_key_enabled=True, enforce_ssl=True, versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs, server_access_logs_prefix="artifacts/",
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(7)),
                s3.LifecycleRule(id="expire-old-versions", noncurrent_version_expiration=Duration.days(90)),
                s3.LifecycleRule(id="age-data-capture", prefix="data-capture/", expiration=Duration.days(365),
                                 transitions=[s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                                            transition_after=Duration.days(30))]),
                s3.LifecycleRule(id="expire-checkpoints", prefix="checkpoints/", expiration=Duration.days(30)),
            ],
        )
        # Object events to EventBridge: the control plane splits the shared endpoint's captures by model as they land
        # (stacks/constructs/capture_split.py). Set on the bucket itself: the L2 property would add CDK's notification
        # custom resource (a Lambda function with an AWS managed policy) for what CloudFormation sets natively.
        self.bucket.node.default_child.add_property_override(
            "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)
        self._protect_releases()

    def _protect_releases(self) -> None:
        """Released artifacts (releases/<model>/<sha256>/model.tar.gz) are written once, by the release writers (the
        roles under naming.RELEASE_WRITER_PATH: the register and promotion-import functions), and deleted by nobody:
        an approval names one S3 version of one key, and that version stays the current one. An explicit Deny in the
        bucket policy binds every principal of every account, whatever its identity policies allow (IAM policy
        evaluation logic). Not S3 Object Lock: once on it can never be turned off for the bucket, and a retention
        period in compliance mode would keep a release nobody may keep (an artifact trained on data that must be
        erased) past any decision to remove it; the policy keeps that decision with whoever may change the policy."""
        stack = Stack.of(self)
        releases = self.bucket.arn_for_objects(f"{naming.RELEASES}/*")
        writers = f"arn:{Aws.PARTITION}:iam::{stack.account}:role{naming.RELEASE_WRITER_PATH}*"
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="ReleasesWrittenOnlyByReleaseWriters", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject", "s3:PutObjectAcl", "s3:PutObjectVersionAcl", "s3:PutObjectRetention",
                     "s3:PutObjectLegalHold", "s3:RestoreObject"],
            resources=[releases], conditions={"ArnNotLike": {"aws:PrincipalArn": writers}}))
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="ReleasesNeverDeleted", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=["s3:DeleteObject", "s3:DeleteObjectVersion"], resources=[releases]))


class AuditTable(Construct):
    """Who did what, when: pipeline events, approval requests and decisions. Point-in-time recovery on."""

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, table_name: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self, "Table", table_name=table_name,
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key, point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            time_to_live_attribute="expires_at", removal_policy=RemovalPolicy.RETAIN,
        )

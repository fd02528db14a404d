"""Encryption and storage building blocks: a rotating KMS key, TLS-only buckets, the audit table."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, aws_dynamodb as dynamodb, aws_iam as iam, aws_kms as kms, aws_s3 as s3
from constructs import Construct


class EncryptionKey(Construct):
    """One customer-managed key per environment, rotated yearly, usable by the services that store data."""

    def __init__(self, scope: Construct, construct_id: str, *, alias: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self, "Key", alias=alias, enable_key_rotation=True, removal_policy=RemovalPolicy.RETAIN,
            description="Encrypts every artifact, table, topic, secret and volume of this MLOps environment",
        )
        # Services that encrypt on the account's behalf (alarm and notification topics, log groups).
        for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com", "sns.amazonaws.com"):
            self.key.grant_encrypt_decrypt(iam.ServicePrincipal(service))


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

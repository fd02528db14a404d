from aws_cdk.assertions import Match
import pytest

from tests.infrastructure.conftest import template_of


@pytest.fixture(scope="module")
def registry(dev_app):
    return template_of(dev_app, "mlops-dev-registry")


def test_kms_key_rotates_and_is_retained(registry):
    registry.has_resource("AWS::KMS::Key", {
        "Properties": {"EnableKeyRotation": True}, "DeletionPolicy": "Retain"})


def test_artifact_bucket_is_kms_encrypted_versioned_private_and_logged(registry):
    registry.has_resource_properties("AWS::S3::Bucket", {
        "BucketName": "mlops-dev-artifacts-111111111111-us-east-1",
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [{
            "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": Match.any_value()},
            "BucketKeyEnabled": True}]},
        "VersioningConfiguration": {"Status": "Enabled"},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "LoggingConfiguration": {"DestinationBucketName": Match.any_value(), "LogFilePrefix": "artifacts/"},
        "LifecycleConfiguration": {"Rules": Match.array_with([
            Match.object_like({"Id": "abort-incomplete-uploads", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}),
            Match.object_like({"Id": "age-data-capture", "Prefix": "data-capture/"}),
        ])},
    })


def test_every_bucket_denies_plain_http(registry):
    policies = registry.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == len(registry.find_resources("AWS::S3::Bucket")) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements)


def test_ecr_repository_scans_on_push_with_immutable_tags_and_kms(registry):
    registry.has_resource_properties("AWS::ECR::Repository", {
        "ImageScanningConfiguration": {"ScanOnPush": True},
        "ImageTagMutability": "IMMUTABLE",
        "EncryptionConfiguration": {"EncryptionType": "KMS", "KmsKey": Match.any_value()},
    })


def test_one_model_package_group_per_model(registry):
    from pipelines.spec import discover_spec_files

    models = sorted(path.parent.name for path in discover_spec_files())
    groups = registry.find_resources("AWS::SageMaker::ModelPackageGroup")
    assert sorted(g["Properties"]["ModelPackageGroupName"] for g in groups.values()) == [f"{m}-dev" for m in models]
    assert {"churn", "houses"} <= set(models)


def test_audit_table_is_encrypted_with_the_key_and_recoverable(registry):
    registry.has_resource_properties("AWS::DynamoDB::Table", {
        "TableName": "mlops-dev-audit",
        "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": Match.any_value()},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "BillingMode": "PAY_PER_REQUEST",
    })


def test_releases_are_written_only_by_the_release_writers_and_deleted_by_nobody(registry):
    """An explicit Deny for every principal: the approved bytes cannot change under any identity policy."""
    (policy,) = [p for p in registry.find_resources("AWS::S3::BucketPolicy").values()
                 if "Releases" in str(p["Properties"]["PolicyDocument"])]
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    writes, deletes = statements["ReleasesWrittenOnlyByReleaseWriters"], statements["ReleasesNeverDeleted"]
    for statement in (writes, deletes):
        assert statement["Effect"] == "Deny" and statement["Principal"] == {"AWS": "*"}
        assert str(statement["Resource"]).count("/releases/*") == 1
    assert "s3:PutObject" in writes["Action"] and "s3:PutObjectRetention" in writes["Action"]
    assert str(writes["Condition"]["ArnNotLike"]["aws:PrincipalArn"]).count(":role/mlops-release-writer/*") == 1
    assert sorted(deletes["Action"]) == ["s3:DeleteObject", "s3:DeleteObjectVersion"] and "Condition" not in deletes

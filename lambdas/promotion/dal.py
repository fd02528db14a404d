"""The AWS calls of promotion: reading another account's registry and bucket (under the grants its stacks set), the
once-per-package claim, the offer event (the server-side copy of the model is lambdas.shared.dal.copy_version)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Iterator

from botocore.exceptions import ClientError

from lambdas.shared.dal import client, conditional_write, parse_s3_uri


def versions_after(package: dict) -> Iterator[dict]:
    """The packages registered in the package's group after it, version by version, until a version that does not
    exist: DescribeModelPackage on the group's own versions, since ListModelPackages has no resource-level permissions
    and a session acting for one model may not list another's packages."""
    group = package["ModelPackageArn"].rsplit("/", 1)[0]
    version = package["ModelPackageVersion"]
    while True:
        version += 1
        try:
            yield client("sagemaker").describe_model_package(ModelPackageName=f"{group}/{version}")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ValidationException":  # "... does not exist"
                return
            raise


def before_first_version(state_machine_arn: str, group: str) -> dict:
    """A stand-in for version 0 of a group in the state machine's account and region, for versions_after."""
    _, partition, _, region, account = state_machine_arn.split(":")[:5]
    return {"ModelPackageArn": f"arn:{partition}:sagemaker:{region}:{account}:model-package/{group}/0",
            "ModelPackageVersion": 0}


def describe_package(arn: str) -> dict:
    """A package of this or another account (by ARN: the other account's group policy decides), in its own region,
    with the session the handler acts with."""
    return client("sagemaker", region_name=arn.split(":")[3]).describe_model_package(ModelPackageName=arn)


def head_bytes(uri: str, version_id: str | None, limit: int) -> bytes:
    """The first `limit` bytes of an object (one ranged GET)."""
    bucket, key = parse_s3_uri(uri)
    extra = {"VersionId": version_id} if version_id else {}
    return client("s3").get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limit - 1}", **extra)["Body"].read()


def put_bytes(bucket: str, key: str, body: bytes, content_type: str) -> str:
    """A small object with its SHA-256 checksum, which S3 verifies on receipt."""
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, ChecksumSHA256=checksum)
    return f"s3://{bucket}/{key}"


def read_bytes(uri: str) -> bytes:
    bucket, key = parse_s3_uri(uri)
    return client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def delete_version(bucket: str, key: str, version_id: str) -> None:
    extra = {"VersionId": version_id} if version_id != "null" else {}
    client("s3").delete_object(Bucket=bucket, Key=key, **extra)


@dataclass
class PromotionClaims:
    """One promotion per upstream package and stage, whatever EventBridge delivers twice: a conditional put in the
    audit table (pk model#<model>, sk promotion#<upstream package ARN>), released when the import fails."""

    table: str

    def claim(self, model: str, upstream_arn: str, execution_arn: str, at: str) -> bool:
        return conditional_write(
            client("dynamodb").put_item, TableName=self.table, ConditionExpression="attribute_not_exists(pk)",
            Item={"pk": {"S": f"model#{model}"}, "sk": {"S": f"promotion#{upstream_arn}"},
                  "execution_arn": {"S": execution_arn}, "claimed_at": {"S": at}})

    def release(self, model: str, upstream_arn: str, execution_arn: str) -> None:
        conditional_write(
            client("dynamodb").delete_item, TableName=self.table,
            Key={"pk": {"S": f"model#{model}"}, "sk": {"S": f"promotion#{upstream_arn}"}},
            ConditionExpression="execution_arn = :mine", ExpressionAttributeValues={":mine": {"S": execution_arn}})


def record_metadata(package_arn: str, properties: dict[str, str]) -> None:
    """Adds keys to a package's CustomerMetadataProperties (UpdateModelPackage merges them)."""
    client("sagemaker").update_model_package(ModelPackageArn=package_arn, CustomerMetadataProperties=properties)


def start_execution(machine_arn: str, name: str, document: dict) -> str:
    """A run of the machine; an execution of that name already started (a delivery repeated) is that run."""
    import json

    sfn = client("stepfunctions")
    try:
        return sfn.start_execution(stateMachineArn=machine_arn, name=name, input=json.dumps(document))["executionArn"]
    except sfn.exceptions.ExecutionAlreadyExists:
        return f"{machine_arn.replace(':stateMachine:', ':execution:')}:{name}"


def put_event(entry: dict) -> None:
    failed = client("events").put_events(Entries=[entry])
    if failed.get("FailedEntryCount"):
        raise RuntimeError(f"EventBridge refused the event: {failed['Entries']}")

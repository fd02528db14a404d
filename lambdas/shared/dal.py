"""The small data-access layer: every AWS call the handlers make goes through here."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from lambdas.shared.release import was_released
from lambdas.shared.sessions import new_session
from pipelines import naming

_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"})


# In Lambda: the function's own credentials and region (boto3's default session). Handler code the CLI runs
# (`mlops rollback`, `mlops approvals repair`) is bound to the CLI's session instead: the environment's region
# from cdk.json, or the local server.
_BOUND: ContextVar[tuple[object, str | None]] = ContextVar("dal_session", default=(boto3, None))


@contextmanager
def bound_to(session: boto3.Session, endpoint_url: str | None = None) -> Iterator[None]:
    """Every client and resource made inside comes from `session` (and `endpoint_url`, when given)."""
    token = _BOUND.set((session, endpoint_url))
    try:
        yield
    finally:
        _BOUND.reset(token)


def current_session() -> boto3.Session:
    """The session clients are made from now (a control-plane function's scoped session while it acts for a model)."""
    session, _ = _BOUND.get()
    return new_session() if session is boto3 else session


def client(service: str, endpoint_url: str | None = None, region_name: str | None = None):
    """region_name: another Region's endpoint (a resource named by ARN there), with the same session."""
    session, bound_url = _BOUND.get()
    return session.client(service, config=_CONFIG, endpoint_url=endpoint_url or bound_url, region_name=region_name)


def own_client(service: str):
    """A client of the function's own credentials even while bound to a model's session: for the calls a control-plane
    function makes as itself (listing a log group's streams has no per-model resource to scope a grant to)."""
    return boto3.client(service, config=_CONFIG)


def resource(service: str):
    session, bound_url = _BOUND.get()
    return session.resource(service, config=_CONFIG, endpoint_url=bound_url)


def conditional_write(write, **request) -> bool:
    """One conditional DynamoDB write: True when applied, False when its condition did not hold."""
    try:
        write(**request)
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


@dataclass
class ObjectStore:
    bucket: str

    def __post_init__(self) -> None:
        self.s3 = client("s3")

    def lines(self, key: str) -> Iterator[str]:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        for line in body.iter_lines():
            yield line.decode("utf-8")

    def open(self, key: str, version_id: str | None = None):
        """A streaming body (file-like) of one object version."""
        extra = {"VersionId": version_id} if version_id else {}
        return self.s3.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]

    def head(self, key: str, version_id: str | None = None) -> dict:
        return self.s3.head_object(Bucket=self.bucket, Key=key, **({"VersionId": version_id} if version_id else {}))

    def read_bytes(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def read_json(self, key: str) -> dict:
        return json.loads(self.read_bytes(key))

    def put_json(self, key: str, document: dict) -> str:
        return self.put_bytes(key, json.dumps(document, indent=2, default=str).encode(), "application/json")

    def put_bytes(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return self.uri(key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def copy(self, source_key: str, version_id: str | None, target_key: str) -> str:
        source = {"Bucket": self.bucket, "Key": source_key, **({"VersionId": version_id} if version_id else {})}
        self.s3.copy_object(Bucket=self.bucket, Key=target_key, CopySource=source)
        return f"s3://{self.bucket}/{target_key}"

    def copy_in(self, source_uri: str, target_key: str) -> str:
        """Copies an object from any bucket this role may read (a CDK asset, another run's snapshot) into this one."""
        bucket, key = parse_s3_uri(source_uri)
        self.s3.copy_object(Bucket=self.bucket, Key=target_key, CopySource={"Bucket": bucket, "Key": key})
        return f"s3://{self.bucket}/{target_key}"

    def list_keys(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        for item in self.list_objects(prefix, start_after):
            yield item["Key"]

    def list_objects(self, prefix: str, start_after: str | None = None) -> Iterator[dict]:
        """ListObjectsV2's entries (Key, LastModified, Size, ...) under the prefix (after start_after: keys sort in
        UTF-8 binary order, so a time-stamped folder name bounds a listing to the folders after it)."""
        extra = {"StartAfter": start_after} if start_after else {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, **extra):
            yield from page.get("Contents", [])


_CHUNK = 8 * 1024 * 1024
# One CopyObject copies at most 5 GB (S3 API reference, CopyObject); boto3's managed copy goes multipart above this.
COPY_OBJECT_LIMIT = 5 * 1024 ** 3


def version_argument(version_id: str | None) -> dict:
    """{"VersionId": ...} for a real S3 version id; nothing for none, "null" (an unversioned object's) or "absent"
    (dal.artifact_now's word for no object)."""
    return {"VersionId": version_id} if version_id and version_id not in ("null", "absent") else {}


def object_sha256(bucket: str, key: str, version_id: str | None = None) -> str:
    """sha256 of one object version, streamed."""
    body = client("s3").get_object(Bucket=bucket, Key=key, **version_argument(version_id))["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Release:
    """A registered model artifact: where it lies, the S3 version that holds it, and the sha256 of its bytes."""

    uri: str
    version_id: str
    sha256: str


def stored_sha256(bucket: str, key: str, head: dict) -> str:
    """The sha256 of the object version `head` describes: S3's own full-object checksum (computed by S3 when the
    object was written with ChecksumAlgorithm SHA256) where it has one, else the bytes hashed as they stream. A
    multipart object's checksum is a checksum of part checksums (S3 marks it `-<parts>` and ChecksumType COMPOSITE),
    not the bytes' sha256; its ETag ends in `-<parts>` too, which is checked as well (moto returns a multipart
    object's checksum without either mark)."""
    checksum = head.get("ChecksumSHA256") or ""
    multipart = "-" in checksum or "-" in str(head.get("ETag", "")) or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT"
    if checksum and not multipart:
        return base64.b64decode(checksum).hex()
    return object_sha256(bucket, key, head.get("VersionId"))


def current_object(bucket: str, key: str) -> dict | None:
    """HeadObject of the current version, with its checksum; None when there is none (deleted or never written)."""
    try:
        return client("s3").head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def listed(bucket: str, key: str) -> bool:
    """Whether the bucket holds an object at exactly this key (a listing of the key as prefix)."""
    found = client("s3").list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents") or []
    return bool(found) and found[0]["Key"] == key


def copy_version(source_uri: str, source_version_id: str | None, bucket: str, key: str) -> Release:
    """A server-side copy of one object version (from any bucket the caller may read, another account's too), S3
    computing the copy's SHA-256: the bytes never pass through the caller. Up to COPY_OBJECT_LIMIT one CopyObject,
    whose full-object checksum is the sha256 of the bytes; above it a multipart copy, whose bytes are hashed as they
    stream (the one case the caller reads them)."""
    source_bucket, source_key = parse_s3_uri(source_uri)
    client("s3").copy({"Bucket": source_bucket, "Key": source_key, **version_argument(source_version_id)}, bucket, key,
                      ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                      Config=TransferConfig(multipart_threshold=COPY_OBJECT_LIMIT, use_threads=False))
    head = current_object(bucket, key)
    return Release(f"s3://{bucket}/{key}", head.get("VersionId") or "null", stored_sha256(bucket, key, head))


def seal_release(source_uri: str, source_version_id: str | None, bucket: str, key_for) -> Release:
    """Copies one version of a trained artifact to the key its sha256 names (`key_for(sha256)`), server-side; the
    copy's SHA-256, computed by S3, must equal the source's (S3's own checksum where the source has one, else its
    bytes hashed). A release that exists already (a retried step) is kept, never overwritten: its recorded version
    stays the current one."""
    source_bucket, source_key = parse_s3_uri(source_uri)
    source = client("s3").head_object(Bucket=source_bucket, Key=source_key, ChecksumMode="ENABLED",
                                      **version_argument(source_version_id))
    digest = stored_sha256(source_bucket, source_key, source)
    key = key_for(digest)
    # Listed first: without s3:ListBucket on the whole bucket (a writer may list its model's releases only), S3
    # answers HeadObject of a missing key with 403, not 404 (S3 API reference, HeadObject "Permissions").
    stored = current_object(bucket, key) if listed(bucket, key) else None
    released = copy_version(source_uri, source_version_id, bucket, key) if stored is None else \
        Release(f"s3://{bucket}/{key}", stored.get("VersionId") or "null", stored_sha256(bucket, key, stored))
    if released.sha256 != digest:
        raise ReleaseMismatch(f"s3://{bucket}/{key} holds bytes with sha256 {released.sha256}, not the trained "
                              f"artifact's {digest}: not registered")
    return released


class ReleaseMismatch(RuntimeError):
    """A release key does not hold the bytes its name promises."""


def current_version(uri: str) -> str:
    """The S3 version id an object URI names now ("null" in an unversioned bucket)."""
    bucket, key = parse_s3_uri(uri)
    return client("s3").head_object(Bucket=bucket, Key=key).get("VersionId") or "null"


def artifact_now(uri: str | None) -> dict:
    """What an artifact URI serves now: {"version_id", "sha256"} of its current version ("absent" when there is
    none, or the URI is no S3 URI)."""
    head = None
    if uri and uri.startswith("s3://"):
        bucket, key = parse_s3_uri(uri)
        head = current_object(bucket, key)
    if head is None:
        return {"version_id": "absent", "sha256": "absent"}
    return {"version_id": head.get("VersionId") or "null", "sha256": stored_sha256(bucket, key, head)}


def read_member_from_tarball(uri: str, member: str, version_id: str | None = None) -> bytes:
    """One file out of a SageMaker model.tar.gz / output.tar.gz (of one version of it, when given)."""
    bucket, key = parse_s3_uri(uri)
    body = client("s3").get_object(Bucket=bucket, Key=key, **version_argument(version_id))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        for info in tar.getmembers():
            if info.name.lstrip("./") == member:
                return tar.extractfile(info).read()
    raise FileNotFoundError(f"{member} is not in {uri}")


@dataclass
class ModelRegistry:
    group: str

    def __post_init__(self) -> None:
        self.sagemaker = client("sagemaker")

    def champion(self, serving_target: str, hosting: str) -> dict | None:
        """The package the environment's serving endpoint (or inference component) serves, described: never merely
        the newest Approved one, which may be a package whose deployment failed. An environment that serves nothing
        (serving_target "": the training account of a multi-account delivery) has released its newest Approved
        package: a release that fails (smoke test included) rejects its package (RestoreAfterFailedRelease)."""
        if not serving_target:
            return self.newest_released()
        served = Endpoints().served_package(serving_target, hosting)
        return self.describe(served) if served else None

    def newest(self, status: str) -> dict | None:
        """The newest package with this status, described; one list and one describe call."""
        summaries = self.sagemaker.list_model_packages(
            ModelPackageGroupName=self.group, ModelApprovalStatus=status, SortBy="CreationTime", SortOrder="Descending",
            MaxResults=1)["ModelPackageSummaryList"]
        return self.describe(summaries[0]["ModelPackageArn"]) if summaries else None

    def newest_released(self, page_size: int = 20) -> dict | None:
        """The newest Approved package its run released (naming.RELEASED_BY_KEY): where nothing serves, the champion.
        A group released before the marker existed (none carries it): its newest Approved package."""
        pages = self.sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=self.group, ModelApprovalStatus="Approved", SortBy="CreationTime",
            SortOrder="Descending", PaginationConfig={"PageSize": page_size})
        newest = None
        for summary in (item for page in pages for item in page["ModelPackageSummaryList"]):
            package = self.describe(summary["ModelPackageArn"])
            newest = newest or package
            if was_released(package):
                return package
        return newest

    def mark_released(self, arn: str, execution: str) -> None:
        self.sagemaker.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={naming.RELEASED_BY_KEY: execution})

    def describe(self, arn: str) -> dict:
        return self.sagemaker.describe_model_package(ModelPackageName=arn)

    def create(self, **arguments) -> str:
        return self.sagemaker.create_model_package(ModelPackageGroupName=self.group, **arguments)["ModelPackageArn"]

    def set_status(self, arn: str, status: str, description: str) -> None:
        self.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status,
                                            ApprovalDescription=description[:1024])

    def set_card_status(self, arn: str, status: str) -> None:
        """The model card's status alone (UpdateModelPackage ModelCard without content keeps the content)."""
        self.sagemaker.update_model_package(ModelPackageArn=arn, ModelCard={"ModelCardStatus": status})


def tuning_trials(tuning_job_name: str, limit: int = 500) -> list[dict]:
    """The training jobs a hyperparameter tuning job launched (summaries: tuned hyperparameters, objective, status)."""
    sagemaker, trials, token = client("sagemaker"), [], None
    while len(trials) < limit:
        page = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=tuning_job_name, MaxResults=100, **({"NextToken": token} if token else {}))
        trials += page.get("TrainingJobSummaries", [])
        token = page.get("NextToken")
        if not token:
            break
    return trials[:limit]


def running_executions(state_machine_arn: str) -> list[dict]:
    sfn = client("stepfunctions")
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn, statusFilter="RUNNING")
    return [execution for page in pages for execution in page["executions"]]


def execution_history(execution_arn: str, limit: int = 10000) -> list[dict]:
    """An execution's history, oldest first (sorted by event id: moto ignores reverseOrder, so no reader may rely on
    the service's order), at most `limit` events. A retraining run has a few hundred."""
    sfn = client("stepfunctions")
    events, token = [], None
    while len(events) < limit:
        page = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000, **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            break
    return sorted(events, key=lambda event: int(event["id"]))


TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def training_log_lines(job_name: str, limit: int = 20000, streams_client=None) -> Iterator[str]:
    """The lines a training job printed (CloudWatch Logs, /aws/sagemaker/TrainingJobs, streams named
    `<job>/algo-<n>-<epoch>`), oldest first; nothing when the job has not logged yet. streams_client: the client that
    lists the streams (the current session's by default)."""
    logs = client("logs")
    try:
        streams = (streams_client or logs).describe_log_streams(logGroupName=TRAINING_LOG_GROUP, logStreamNamePrefix=f"{job_name}/")
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return
        raise
    produced = 0
    for stream in sorted(streams.get("logStreams", []), key=lambda s: s["logStreamName"])[:1]:  # algo-1: the leader
        token = None
        while produced < limit:
            page = logs.get_log_events(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream["logStreamName"],
                                       startFromHead=True, **({"nextToken": token} if token else {}))
            for event in page["events"]:
                produced += 1
                yield event["message"]
            if not page["events"] or page.get("nextForwardToken") in (None, token):
                break
            token = page["nextForwardToken"]


def publish(topic_arn: str, subject: str, message: str) -> None:
    client("sns").publish(TopicArn=topic_arn, Subject=subject[:100], Message=message)


def start_execution(state_machine_arn: str, name: str, document: dict) -> str:
    return client("stepfunctions").start_execution(stateMachineArn=state_machine_arn, name=name,
                                                   input=json.dumps(document))["executionArn"]


@dataclass
class AuditLog:
    """The drift cooldown marker in the audit table, claimed atomically."""

    table: str

    def __post_init__(self) -> None:
        self.dynamodb = client("dynamodb")

    def claim_cooldown(self, model: str, now_epoch: int, cooldown_seconds: int) -> bool:
        """True when this caller may trigger now (and marks it); False while the cooldown runs."""
        return conditional_write(
            self.dynamodb.update_item,
            TableName=self.table, Key={"pk": {"S": f"model#{model}"}, "sk": {"S": "drift#cooldown"}},
            UpdateExpression="SET last_triggered = :now",
            ConditionExpression="attribute_not_exists(last_triggered) OR last_triggered <= :threshold",
            ExpressionAttributeValues={":now": {"N": str(now_epoch)}, ":threshold": {"N": str(now_epoch - cooldown_seconds)}})

    def release_cooldown(self, model: str, claimed_epoch: int, cooldown_seconds: int) -> None:
        """Gives back a claim that started nothing: last_triggered goes back to an expired value, only if it is still
        this caller's claim (the claim succeeded, so the previous value had expired too)."""
        conditional_write(
            self.dynamodb.update_item,
            TableName=self.table, Key={"pk": {"S": f"model#{model}"}, "sk": {"S": "drift#cooldown"}},
            UpdateExpression="SET last_triggered = :expired", ConditionExpression="last_triggered = :claimed",
            ExpressionAttributeValues={":expired": {"N": str(claimed_epoch - cooldown_seconds)},
                                       ":claimed": {"N": str(claimed_epoch)}})


def encrypt(key_id: str, text: str, context: dict[str, str]) -> str:
    blob = client("kms").encrypt(KeyId=key_id, Plaintext=text.encode(), EncryptionContext=context)["CiphertextBlob"]
    return base64.b64encode(blob).decode()


def decrypt(ciphertext: str, context: dict[str, str]) -> str:
    """Symmetric ciphertexts name their key; the encryption context must match."""
    return client("kms").decrypt(CiphertextBlob=base64.b64decode(ciphertext), EncryptionContext=context)["Plaintext"].decode()


def secret_bytes(secret_id: str, refresh: bool = False) -> bytes:
    """The secret's current value (AWSCURRENT, named: the emulation's default version lags a rotation), cached five
    minutes (refresh: fetch now, e.g. for a key id not yet seen)."""
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_secret(secret_id, max_age=300, force_fetch=refresh, VersionStage="AWSCURRENT").encode()


@dataclass
class RotatingSecret:
    """The Secrets Manager calls of a rotation function: versions by staging label (AWSCURRENT, AWSPENDING)."""

    secret_id: str

    def __post_init__(self) -> None:
        self.secretsmanager = client("secretsmanager")

    def describe(self) -> dict:
        return self.secretsmanager.describe_secret(SecretId=self.secret_id)

    def value(self, stage: str, version_id: str | None = None) -> str | None:
        """The string of the version with this label (and id); None when there is none."""
        extra = {"VersionId": version_id} if version_id else {}
        try:
            return self.secretsmanager.get_secret_value(SecretId=self.secret_id, VersionStage=stage, **extra)["SecretString"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise

    def put_pending(self, version_id: str, value: str) -> None:
        self.secretsmanager.put_secret_value(SecretId=self.secret_id, ClientRequestToken=version_id, SecretString=value,
                                             VersionStages=["AWSPENDING"])

    def make_current(self, version_id: str, current_version_id: str) -> None:
        """AWSCURRENT moves to version_id (the old one becomes AWSPREVIOUS); its AWSPENDING label is dropped, so the
        next rotation does not find one in progress."""
        self.secretsmanager.update_secret_version_stage(SecretId=self.secret_id, VersionStage="AWSCURRENT",
                                                        MoveToVersionId=version_id, RemoveFromVersionId=current_version_id)
        self.secretsmanager.update_secret_version_stage(SecretId=self.secret_id, VersionStage="AWSPENDING",
                                                        RemoveFromVersionId=version_id)


def identity_center_role(role_name: str) -> bool:
    """Whether an AWSReservedSSO_ role is IAM Identity Center's: it lies under the IAM path only Identity Center
    creates roles in (the runs function may GetRole there and nowhere else, so any other role is AccessDenied)."""
    from lambdas.shared.identity import IDENTITY_CENTER_PATH

    try:
        return client("iam").get_role(RoleName=role_name)["Role"].get("Path") == IDENTITY_CENTER_PATH
    except ClientError as error:
        if error.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException", "NoSuchEntity"):
            return False
        raise


class TaskGone(RuntimeError):
    """The run no longer waits for this token (timed out, stopped, or already answered)."""


def execution_status(execution_arn: str) -> str:
    """RUNNING, SUCCEEDED, FAILED, ...; ABSENT for an execution Step Functions no longer knows."""
    try:
        return client("stepfunctions").describe_execution(executionArn=execution_arn)["status"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ExecutionDoesNotExist":
            return "ABSENT"
        raise


def send_task_result(token: str, success: bool, output: dict | None = None, error: str = "", cause: str = "") -> None:
    sfn = client("stepfunctions")
    try:
        if success:
            sfn.send_task_success(taskToken=token, output=json.dumps(output or {}))
        else:
            sfn.send_task_failure(taskToken=token, error=error, cause=cause[:32768])
    except ClientError as failure:
        if failure.response["Error"]["Code"] in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken"):
            raise TaskGone(failure.response["Error"]["Message"]) from None
        raise


class AlreadyDecided(RuntimeError):
    pass


@dataclass
class RateLimiter:
    """Fixed-window request counts per client in a DynamoDB table (partition key `id`, TTL `expiration`).

    Works wherever the function runs, unlike reserved concurrency, which Lambda refuses in accounts whose
    concurrency quota is 10."""

    table: str

    def __post_init__(self) -> None:
        self.dynamodb = client("dynamodb")

    def allow(self, key: str, limit: int, expires_at: int) -> bool:
        return conditional_write(
            self.dynamodb.update_item,
            TableName=self.table, Key={"id": {"S": key}}, UpdateExpression="ADD #n :one SET #e = :e",
            ConditionExpression="attribute_not_exists(#n) OR #n < :limit",
            ExpressionAttributeNames={"#n": "requests", "#e": "expiration"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": str(limit)}, ":e": {"N": str(expires_at)}})


@dataclass
class ApprovalStore:
    """Approval requests in the audit table: pk model#<model>, sk approval#<execution>."""

    table: str

    def __post_init__(self) -> None:
        self.dynamodb = resource("dynamodb").Table(self.table)

    def create(self, model: str, execution: str, item: dict) -> bool:
        """False for a retried request: the first one stands."""
        return conditional_write(self.dynamodb.put_item, ConditionExpression="attribute_not_exists(pk)",
                                 Item={"pk": f"model#{model}", "sk": f"approval#{execution}", **item})

    def get(self, model: str, execution: str) -> dict | None:
        return self.dynamodb.get_item(Key={"pk": f"model#{model}", "sk": f"approval#{execution}"}).get("Item")

    def pending(self, model: str) -> list[dict]:
        from boto3.dynamodb.conditions import Attr, Key

        response = self.dynamodb.query(KeyConditionExpression=Key("pk").eq(f"model#{model}") & Key("sk").begins_with("approval#"),
                                       FilterExpression=Attr("status").eq("PENDING"))
        return response["Items"]

    def records(self, model: str) -> list[dict]:
        """Every approval record of a model (one page per 1 MB; a model has one record per run)."""
        from boto3.dynamodb.conditions import Key

        condition = Key("pk").eq(f"model#{model}") & Key("sk").begins_with("approval#")
        response = self.dynamodb.query(KeyConditionExpression=condition)
        items = response["Items"]
        while "LastEvaluatedKey" in response:
            response = self.dynamodb.query(KeyConditionExpression=condition, ExclusiveStartKey=response["LastEvaluatedKey"])
            items += response["Items"]
        return items

    def mark_applied(self, model: str, execution: str) -> None:
        """The decision reached the registry and the run: nothing left to repair."""
        self.dynamodb.update_item(Key={"pk": f"model#{model}", "sk": f"approval#{execution}"},
                                  UpdateExpression="SET applied = :yes", ExpressionAttributeValues={":yes": True})

    def close(self, model: str, execution: str, status: str) -> None:
        self.dynamodb.update_item(Key={"pk": f"model#{model}", "sk": f"approval#{execution}"},
                                  UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                                  ExpressionAttributeValues={":s": status})

    def decide(self, model: str, execution: str, status: str, fields: dict) -> None:
        """PENDING -> status exactly once; AlreadyDecided for every later caller."""
        names = {f"#{k}": k for k in fields} | {"#status": "status"}
        values = {f":{k}": v for k, v in fields.items()} | {":status": status, ":pending": "PENDING"}
        if not conditional_write(
                self.dynamodb.update_item, Key={"pk": f"model#{model}", "sk": f"approval#{execution}"},
                UpdateExpression="SET #status = :status, " + ", ".join(f"#{k} = :{k}" for k in fields),
                ConditionExpression="#status = :pending", ExpressionAttributeNames=names, ExpressionAttributeValues=values):
            raise AlreadyDecided(execution)


def _unless_absent(describe, **request) -> dict | None:
    """A SageMaker Describe call's answer, or None when there is no such resource (SageMaker says so with a
    ValidationException)."""
    try:
        return describe(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
            return None
        raise


class Endpoints:
    """SageMaker hosting calls. SAGEMAKER_RUNTIME_URL points InvokeEndpoint elsewhere (the local mode's server)."""

    def __init__(self) -> None:
        self.sagemaker = client("sagemaker")

    def describe(self, name: str) -> dict | None:
        return _unless_absent(self.sagemaker.describe_endpoint, EndpointName=name)

    def create_model(self, name: str, role_arn: str, package_arn: str, tags: list[dict], isolated: bool = True,
                     environment: dict | None = None) -> None:
        """isolated: network isolation, which serverless endpoints do not support (SageMaker's feature exclusions);
        environment: container variables set over the package's own."""
        container = {"ModelPackageName": package_arn, **({"Environment": environment} if environment else {})}
        self.sagemaker.create_model(ModelName=name, ExecutionRoleArn=role_arn, Tags=tags, Containers=[container],
                                    EnableNetworkIsolation=isolated)

    def create_config(self, request: dict) -> None:
        self.sagemaker.create_endpoint_config(**request)

    def create(self, name: str, config: str, tags: list[dict]) -> None:
        self.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config, Tags=tags)

    def update(self, name: str, config: str, deployment: dict | None) -> None:
        extra = {"DeploymentConfig": deployment} if deployment else {}
        self.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=config, **extra)

    def delete(self, name: str) -> None:
        self.sagemaker.delete_endpoint(EndpointName=name)

    def config_of(self, config: str) -> dict:
        return self.sagemaker.describe_endpoint_config(EndpointConfigName=config)

    def model_of(self, model: str) -> dict:
        return self.sagemaker.describe_model(ModelName=model)

    def describe_component(self, name: str) -> dict | None:
        return _unless_absent(self.sagemaker.describe_inference_component, InferenceComponentName=name)

    def create_component(self, request: dict) -> None:
        self.sagemaker.create_inference_component(**request)

    def update_component(self, name: str, specification: dict, deployment: dict | None) -> None:
        extra = {"DeploymentConfig": deployment} if deployment else {}
        self.sagemaker.update_inference_component(InferenceComponentName=name, Specification=specification, **extra)

    def delete_component(self, name: str) -> None:
        self.sagemaker.delete_inference_component(InferenceComponentName=name)

    def served_model(self, target: str, hosting: str) -> tuple[str, dict] | None:
        """(SageMaker model name, endpoint config or {}) of what a serving target serves now: the endpoint of that name
        (hosting: dedicated) or the inference component of that name (shared), as the spec's hosting says: a model
        moved to shared keeps its old endpoint of the same name until deleted. None when there is none."""
        if hosting == "shared":
            component = self.describe_component(target)
            return (component["Specification"]["ModelName"], {}) if component else None
        described = self.describe(target)
        if described is None:
            return None
        config = self.config_of(described["EndpointConfigName"])
        return config["ProductionVariants"][0]["ModelName"], config

    def served_package(self, target: str, hosting: str) -> str | None:
        """The model package a serving target serves now (served_model), None when there is none."""
        served = self.served_model(target, hosting)
        if served is None:
            return None
        model = self.model_of(served[0])
        return (model.get("Containers") or [model.get("PrimaryContainer") or {}])[0].get("ModelPackageName")

    @staticmethod
    def invoke(name: str, body: bytes, content_type: str = "application/json",
               component: str | None = None, inference_id: str | None = None) -> tuple[int, bytes]:
        """component: the inference component to call on endpoint `name` (hosting: shared); inference_id: recorded
        with the request in the endpoint's data capture (eventMetadata.inferenceId)."""
        import os

        runtime = client("sagemaker-runtime", endpoint_url=os.environ.get("SAGEMAKER_RUNTIME_URL"))
        extra = {**({"InferenceComponentName": component} if component else {}),
                 **({"InferenceId": inference_id} if inference_id else {})}
        try:
            response = runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType=content_type,
                                               Accept="application/json", **extra)
            return 200, response["Body"].read()
        except ClientError as error:
            return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)), str(error).encode()

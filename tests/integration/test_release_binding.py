"""Approval binds the exact bytes (issue 24), under enforced IAM with the synthesized roles: registration releases the
evaluated artifact under a key its sha256 names, which the training role cannot overwrite or delete; what was
approved is what deploys; an artifact swapped by anyone who got past the bucket policy is never deployed."""

import hashlib
import io
import tarfile

import boto3
import pytest
from botocore.exceptions import ClientError

from pipelines import naming
from tests.integration.conftest import LOCAL_ACCOUNT, LOCAL_REGION, scoped_session

pytestmark = pytest.mark.slow

BUCKET = naming.artifact_bucket("local", LOCAL_ACCOUNT, LOCAL_REGION)
EXECUTION = f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:execution:churn-local-retraining:run-1"
OUTPUT_KEY = "models/churn/churn-run-1/output/model.tar.gz"


def _tarball(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.pt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _role_session(provisioned, logical_prefix: str):
    """The session of the provisioned role whose logical id starts so (the training job's role, ...)."""
    arns = [values["Arn"] for stack in provisioned.values.values() for logical, values in stack.items()
            if logical.startswith(logical_prefix) and "RoleId" in values]
    assert len(arns) == 1, arns
    return provisioned.role_credentials.of(arns[0])


@pytest.fixture
def approved(enforced_platform):
    """A run's trained artifact (written by the training role), registered by the register function (as its role),
    its approval requested by the request function (which binds the artifact), then approved."""
    provisioned = enforced_platform()
    training = _role_session(provisioned, "SageMakerExecutionRole")
    trained = _tarball(b"the trained weights")
    version = training.client("s3", LOCAL_REGION).put_object(Bucket=BUCKET, Key=OUTPUT_KEY, Body=trained)["VersionId"]
    state = {"run": {"model": "churn", "trigger": "manual", "requested_by": "ds@example.com", "git_commit": "0d3b10e",
                     "execution_arn": EXECUTION, "execution_name": "run-1", "hyperparameters": {"epochs": "4"}},
             "validation": {"dataset_uri": f"s3://{BUCKET}/datasets/churn/train.csv", "version_id": "v1",
                            "sha256": "f" * 64, "rows": 1000},
             "training": {"job_name": "churn-run-1", "job_arn": "arn:job", "model_artifacts": f"s3://{BUCKET}/{OUTPUT_KEY}"},
             "evaluation": {"metrics": {"validation:auc": 0.8}, "objective": "validation:auc", "value": 0.8,
                            "promote": True, "reason": "first model", "report_uri": f"s3://{BUCKET}/runs/churn/run-1/e.json",
                            "baseline_statistics_uri": f"s3://{BUCKET}/runs/churn/run-1/s.json",
                            "baseline_constraints_uri": f"s3://{BUCKET}/runs/churn/run-1/c.json",
                            "artifact_version_id": version}}
    event = {"execution_arn": EXECUTION, "execution_name": "run-1", "state": state}
    state["registration"] = provisioned.function_named("PipelineTasksRegister").call(event, {})
    provisioned.function_named("ApprovalRequestHandler").call({**event, "task_token": "token"}, {})
    package = state["registration"]["model_package_arn"]
    boto3.client("sagemaker").update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")
    boto3.resource("dynamodb").Table(naming.audit_table("local")).update_item(
        Key={"pk": "model#churn", "sk": "approval#run-1"}, UpdateExpression="SET #s = :s, decided_by = :d",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": "APPROVED", ":d": "risk-officer@example.com"})
    return {"provisioned": provisioned, "state": state, "training": training, "trained": trained}


def _deploy(approved, stage: str) -> dict:
    event = {"execution_arn": EXECUTION, "execution_name": "run-1", "state": approved["state"], "stage": stage}
    return approved["provisioned"].function_named("PipelineTasksDeploy").call(event, {})


def _served_bytes(package_arn: str) -> bytes:
    url = boto3.client("sagemaker").describe_model_package(
        ModelPackageName=package_arn)["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    return boto3.client("s3").get_object(Bucket=BUCKET, Key=url.split(f"{BUCKET}/")[1])["Body"].read()


def test_registration_releases_the_evaluated_bytes_under_the_key_their_sha256_names(approved):
    registration, digest = approved["state"]["registration"], hashlib.sha256(approved["trained"]).hexdigest()
    assert registration["artifact_uri"] == f"s3://{BUCKET}/{naming.release_key('churn', digest)}"
    assert registration["artifact_sha256"] == digest
    record = boto3.resource("dynamodb").Table(naming.audit_table("local")).get_item(
        Key={"pk": "model#churn", "sk": "approval#run-1"})["Item"]
    assert (record["artifact_sha256"], record["artifact_uri"]) == (digest, registration["artifact_uri"])


def test_the_training_role_cannot_overwrite_or_delete_a_release_nor_delete_job_output(approved):
    s3 = approved["training"].client("s3", LOCAL_REGION)
    release = approved["state"]["registration"]["artifact_uri"].split(f"{BUCKET}/")[1]
    for attempt in (lambda: s3.put_object(Bucket=BUCKET, Key=release, Body=_tarball(b"poisoned")),
                    lambda: s3.put_object(Bucket=BUCKET, Key="releases/churn/" + "0" * 64 + "/model.tar.gz", Body=b"x"),
                    lambda: s3.delete_object(Bucket=BUCKET, Key=release),
                    lambda: s3.delete_object(Bucket=BUCKET, Key=OUTPUT_KEY)):
        with pytest.raises(ClientError, match="AccessDenied"):
            attempt()


def test_nobody_but_the_release_writers_may_write_a_release_not_even_an_admin(approved):
    """The bucket policy's explicit Deny binds every principal, whatever its identity policies allow."""
    release = approved["state"]["registration"]["artifact_uri"].split(f"{BUCKET}/")[1]
    with pytest.raises(ClientError, match="AccessDenied"):
        boto3.client("s3").put_object(Bucket=BUCKET, Key=release, Body=b"admin's bytes")
    with pytest.raises(ClientError, match="AccessDenied"):
        boto3.client("s3").delete_object(Bucket=BUCKET, Key=release)


def test_the_job_output_overwritten_after_approval_changes_nothing_that_deploys(approved):
    """The attack on today's main: the training role rewrites the approved run's model.tar.gz; the package served
    it. Now the package serves the release, whose bytes the approval bound."""
    approved["training"].client("s3", LOCAL_REGION).put_object(Bucket=BUCKET, Key=OUTPUT_KEY, Body=_tarball(b"poisoned"))
    deployed = _deploy(approved, "staging")
    assert deployed["artifact_sha256"] == hashlib.sha256(approved["trained"]).hexdigest()
    assert _served_bytes(approved["state"]["registration"]["model_package_arn"]) == approved["trained"]


def test_a_release_swapped_past_the_bucket_policy_is_never_deployed(approved):
    """Whoever could rewrite the bucket policy (an account admin) removes it and swaps the release: the deploy
    gate hashes the current version and refuses, so the run fails (and notifies) with nothing deployed."""
    from lambdas.shared.release import ReleaseRefused

    release = approved["state"]["registration"]["artifact_uri"].split(f"{BUCKET}/")[1]
    boto3.client("s3").delete_bucket_policy(Bucket=BUCKET)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=release, Body=_tarball(b"poisoned"))
    with pytest.raises(ReleaseRefused, match="bytes changed since approval; nothing was deployed"):
        _deploy(approved, "staging")
    assert boto3.client("sagemaker").list_endpoints()["Endpoints"] == []


def test_a_package_repointed_to_other_bytes_after_approval_is_never_deployed(approved):
    """UpdateModelPackage can change a package's container (and its lineage): the gate compares the approval's
    record, which only the platform writes, with what the package serves now."""
    from lambdas.shared.release import ReleaseRefused

    package = approved["state"]["registration"]["model_package_arn"]
    other = approved["state"]["registration"]["artifact_uri"].replace("releases/churn/", "releases/churn/x")
    boto3.client("sagemaker").update_model_package(ModelPackageArn=package, InferenceSpecification={
        "Containers": [{"Image": approved["state"]["registration"]["image"], "ModelDataUrl": other}],
        "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]})
    with pytest.raises(ReleaseRefused, match="the approver approved"):
        _deploy(approved, "staging")


def test_a_copy_needs_read_on_its_source_as_aws_authorizes_it(approved):
    """CopyObject is authorized as s3:PutObject on the target and s3:GetObject(Version) on the source (S3 API
    reference); the emulation checks both. The register task acting for churn may write churn's releases but not read
    churn's run files."""
    registrar = scoped_session(approved["provisioned"].function_named("PipelineTasksRegister"), "churn").client("s3")
    boto3.client("s3").put_object(Bucket=BUCKET, Key="runs/churn/run-9/secret.csv", Body=b"not the registrar's")
    with pytest.raises(ClientError, match="AccessDenied.*s3:GetObject"):
        registrar.copy_object(Bucket=BUCKET, Key="releases/churn/" + "1" * 64 + "/model.tar.gz",
                              CopySource={"Bucket": BUCKET, "Key": "runs/churn/run-9/secret.csv"})

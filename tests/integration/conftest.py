from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from lambdas.shared import config as lambda_config
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT, once_per_session
from tests.support.sagemaker_layout import make_dataset

SPEC = load_spec(REPO_ROOT / "pipelines/churn/model.yaml")
BUCKET = "mlops-dev-artifacts-123456789012-us-east-1"
DEPLOYED_COMMIT = "0d3b10e"  # SOURCE_GIT_COMMIT: the commit the stack (and its training code) was synthesized from
DATASET_KEY = "datasets/churn/train.csv"


@dataclass
class FakeContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def move_the_shells_region(monkeypatch, region: str = "eu-west-3") -> None:
    """The shell's default region becomes another one than the environment's (us-east-1 in cdk.json's stand-in):
    code the CLI runs must call AWS with the client's session, not boto3's default one."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def dataset_bytes(rows: int = 2000, seed: int = 7, **overrides) -> bytes:
    columns = make_dataset.generate(rows, seed)
    columns.update(overrides)
    buffer = io.StringIO()
    names = make_dataset.COLUMNS
    buffer.write(",".join(names) + "\n")
    for row in zip(*(columns[n].tolist() for n in names)):
        buffer.write(",".join(str(v) for v in row) + "\n")
    return buffer.getvalue().encode()


@pytest.fixture
def platform(monkeypatch):
    from pipelines.local import moto_extensions

    moto_extensions.install()  # the same emulation fixes the local mode uses
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=BUCKET, Key=DATASET_KEY, Body=dataset_bytes())
        s3.put_object(Bucket=BUCKET, Key="cdk-assets/sourcedir.tar.gz", Body=b"the deployed source archive")
        boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="churn-dev")
        topic = boto3.client("sns").create_topic(Name="churn-dev-notifications")["TopicArn"]
        machine = boto3.client("stepfunctions").create_state_machine(
            name="churn-dev-retraining", roleArn="arn:aws:iam::123456789012:role/sfn",
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
        hyperparameters = {k: json.dumps(v) for k, v in SPEC.training.hyperparameters.items()}
        hyperparameters["sagemaker_program"] = json.dumps("train.py")
        env = {"ARTIFACT_BUCKET": BUCKET, "MODEL_PACKAGE_GROUP": "churn-dev", "NOTIFICATION_TOPIC_ARN": topic,
               "STATE_MACHINE_ARN": machine, "MODEL_SPEC": SPEC.model_dump_json(),
               "TRAINING_HYPERPARAMETERS": json.dumps(hyperparameters),
               "INFERENCE_IMAGE": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.5-cpu-py311",
               "SERVING_STAGE": "prod", "SERVING_ENDPOINT": "churn-dev-prod", "SOURCE_ARCHIVE": f"s3://{BUCKET}/cdk-assets/sourcedir.tar.gz",
               "SOURCE_GIT_COMMIT": DEPLOYED_COMMIT}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        lambda_config.model_spec.cache_clear()
        yield {"bucket": BUCKET, "topic": topic, "state_machine": machine, **env}


# What a model stack writes into its record (stacks/model_stack.py): the per-model settings a function has.
RECORD_SETTINGS = ("ARTIFACT_BUCKET", "MODEL_PACKAGE_GROUP", "STATE_MACHINE_ARN", "NOTIFICATION_TOPIC_ARN",
                   "TRAINING_HYPERPARAMETERS", "INFERENCE_IMAGE", "AUDIT_TABLE", "SOURCE_GIT_COMMIT", "SERVING_STAGE", "SERVING_ENDPOINT",
                   "SOURCE_ARCHIVE", "TRACKING_SERVER", "CAPTURE_PREFIX", "APPROVAL_TOPIC_ARN")


def act_as_control_plane(monkeypatch, model: str = "churn", env: str = "dev") -> None:
    """A control-plane function's environment for this platform: a model-scoped role to take sessions of, and the
    model's record written from the settings in the environment now (as its stack would deploy them)."""
    import os

    from pipelines import naming
    from pipelines.model_record import ModelRecord
    from pipelines.spec import ModelSpec

    iam, name = boto3.client("iam"), f"control-scoped-{model}"
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                                                     "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]}))
    monkeypatch.setenv("MODEL_SCOPED_ROLE_ARN", iam.get_role(RoleName=name)["Role"]["Arn"])
    monkeypatch.setenv("MLOPS_ENVIRONMENT", env)
    record = ModelRecord(model=model, env=env, spec=ModelSpec.model_validate_json(os.environ["MODEL_SPEC"]),
                         settings={k: os.environ[k] for k in RECORD_SETTINGS if k in os.environ})
    boto3.client("ssm").put_parameter(Name=naming.model_record_parameter(model, env), Value=record.model_dump_json(),
                                      Type="String", Overwrite=True)


def released_package(group: str = "churn-dev", body: bytes = b"model bytes", *, bucket: str = BUCKET,
                     model: str | None = None, image: str = "x", status: str = "PendingManualApproval",
                     lineage: dict | None = None, session=None, **arguments) -> str:
    """A model package registered as the register step registers one: its artifact released under
    releases/<model>/<sha256>/ (with S3's SHA-256 checksum), the lineage recording that sha256 and S3 version."""
    import hashlib

    from pipelines import naming

    model = model or group.rsplit("-", 1)[0]
    digest = hashlib.sha256(body).hexdigest()
    key = naming.release_key(model, digest)
    clients = session or boto3
    s3 = clients.client("s3")
    try:  # the same bytes released before: the release stays as it is (as dal.seal_release keeps it)
        version = s3.head_object(Bucket=bucket, Key=key).get("VersionId") or "null"
    except ClientError:
        version = s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256").get("VersionId") or "null"
    return clients.client("sagemaker").create_model_package(
        ModelPackageGroupName=group, ModelApprovalStatus=status,
        InferenceSpecification={"Containers": [{"Image": image, "ModelDataUrl": f"s3://{bucket}/{key}"}],
                                "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
        CustomerMetadataProperties={**(lineage or {}), naming.ARTIFACT_SHA256_KEY: digest,
                                    naming.ARTIFACT_VERSION_KEY: version}, **arguments)["ModelPackageArn"]


def approval_binding(package_arn: str) -> dict[str, str]:
    """The artifact fields an approval request records for a package (lambdas.shared.release.FIELDS)."""
    from lambdas.shared.release import package_artifact

    return package_artifact(boto3.client("sagemaker").describe_model_package(ModelPackageName=package_arn))


def task_event(state: dict, execution_name: str = "run-1", **extra) -> dict:
    arn = f"arn:aws:states:us-east-1:123456789012:execution:churn-dev-retraining:{execution_name}"
    return {"execution_arn": arn, "execution_name": execution_name, "state": state, **extra}


# ------------------------------------------------------------------ enforced IAM, synthesized roles
LOCAL_ACCOUNT, LOCAL_REGION = "123456789012", "us-east-1"


@pytest.fixture(scope="session")
def local_templates(tmp_path_factory) -> dict[str, dict]:
    """The registry and churn stacks as the CDK app synthesizes them (local environment, moto's account)."""
    from unittest import mock

    from pipelines.local.lifecycle import synthesize

    def templates() -> dict[str, dict]:
        with mock.patch.dict("os.environ", {"MLOPS_LOCAL_DIR": str(tmp_path_factory.mktemp("local-templates"))}):
            return synthesize("churn", LOCAL_ACCOUNT, LOCAL_REGION)

    return once_per_session(tmp_path_factory, "local-templates", templates)


@pytest.fixture
def enforced_platform(local_templates, tmp_path, monkeypatch):
    """Opt-in: `start(adjust)` provisions the synthesized stacks into moto (optionally after `adjust`
    takes grants away from the templates) and enforces IAM; handlers then run as their own roles through
    `provisioned.function_named(prefix).call(event, {})`, with their synthesized environment."""
    import copy

    from pipelines.local import iam, moto_extensions
    from pipelines.local.glue import LambdaDispatch, stage_source_archives
    from pipelines.local.provision import Provisioner

    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(tmp_path))
    moto_extensions.install()
    with mock_aws(), contextlib.ExitStack() as enforcement:
        def start(adjust=None):
            templates = copy.deepcopy(local_templates)
            if adjust:
                adjust(templates)
            urls = {k: "http://127.0.0.1:9/" for template in templates.values()
                    for k, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
            provisioner = Provisioner(LOCAL_ACCOUNT, LOCAL_REGION, LambdaDispatch(), urls)
            for stack, template in templates.items():
                provisioner.provision(stack, template)
            stage_source_archives("churn")  # what cdk deploy publishes: the training code PrepareRun snapshots
            iam.create_admin(LOCAL_ACCOUNT, LOCAL_REGION)
            provisioner.assume_roles()
            enforcement.enter_context(iam.enforced())
            return provisioner.result

        yield start


def without_role_action(function_prefix: str, action: str):
    """A template adjustment: the role of the function whose logical id starts so loses `action`."""
    from pipelines.local.iam import without_action

    def adjust(templates: dict[str, dict]) -> None:
        for template in templates.values():
            for logical, resource in template["Resources"].items():
                if resource["Type"] == "AWS::IAM::Policy" and logical.startswith(f"{function_prefix}Role"):
                    properties = resource["Properties"]
                    properties["PolicyDocument"] = without_action(properties["PolicyDocument"], action)
    return adjust


def serve_in_production(package_arn: str, execution: str = "r1", endpoint: str = "churn-dev-prod") -> None:
    """What a successful release leaves behind: the production endpoint serving package_arn (the champion)."""
    sagemaker = boto3.client("sagemaker")
    name = f"{endpoint}-{execution}"
    sagemaker.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/endpoint",
                           Containers=[{"ModelPackageName": package_arn}])
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    if any(e["EndpointName"] == endpoint for e in sagemaker.list_endpoints()["Endpoints"]):
        sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=name)
    else:
        sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=name)


def scoped_session(function, model: str, **tags) -> boto3.Session:
    """A control-plane function's model-scoped session (stacks/constructs/control_plane.py), as lambdas/shared/tenancy
    takes it: its own role assumes its scoped role with the model tag (and any extra tags, to show they are refused)."""
    from lambdas.shared.sessions import new_session
    from pipelines import naming

    credentials = function.credentials.client("sts", LOCAL_REGION).assume_role(
        RoleArn=function.environment["MODEL_SCOPED_ROLE_ARN"], RoleSessionName=model, DurationSeconds=900,
        Tags=[{"Key": naming.MODEL_TAG, "Value": model}, *({"Key": k, "Value": v} for k, v in tags.items())])["Credentials"]
    return new_session(aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                       aws_session_token=credentials["SessionToken"], region_name=LOCAL_REGION)


def denied(call) -> str:
    """Runs call, which AWS must refuse: AccessDenied (or SNS's AuthorizationError); the refusal's text, which names
    the action. moto answers DynamoDB's and SageMaker's denials in the query protocol's XML (code "403"); the
    message is AWS's."""
    import pytest
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        call()
    assert refused.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException", "AuthorizationError") \
        or "is not authorized to perform" in str(refused.value), refused.value
    return str(refused.value)


@pytest.fixture
def dev_serves_prod(monkeypatch):
    """cdk.json's dev is the training account of a multi-account delivery and serves nothing; these tests serve from
    it, as a single-account dev (or `serves: prod`) does."""
    from pipelines.client import Pipelines

    monkeypatch.setattr(Pipelines, "serving_stage", lambda self: "prod")


def without_aws_credentials(tmp_path):
    """A context where no AWS credentials can be found (no environment variables, empty config files, no instance
    metadata, no local server) and the client targets dev in account 123456789012."""
    import os
    from unittest import mock

    from pipelines import client as client_module

    empty = tmp_path / "empty-aws-config"
    empty.write_text("")
    unset = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SECURITY_TOKEN")
    environment = {name: value for name, value in os.environ.items() if name not in unset}
    environment.update(AWS_CONFIG_FILE=str(empty), AWS_SHARED_CREDENTIALS_FILE=str(empty),
                       AWS_EC2_METADATA_DISABLED="true", MLOPS_LOCAL_DIR=str(tmp_path / "no-server"))
    target = client_module.Target("dev", "123456789012", "us-east-1")
    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch.dict(os.environ, environment, clear=True))
    stack.enter_context(mock.patch.object(client_module, "target_environment", lambda env: target))
    return stack

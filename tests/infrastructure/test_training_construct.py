import tarfile

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms, aws_s3 as s3, aws_stepfunctions as sfn
from aws_cdk.assertions import Template

from pipelines.local.cfn import state_machine_definitions
from pipelines.spec import load_spec
from stacks.constructs.training import TrainingJob, resolve_training_image, write_source_archive
from tests.conftest import REPO_ROOT

MODEL_DIR = REPO_ROOT / "pipelines" / "churn"


def synth_training(overrides: dict | None = None) -> tuple[dict, dict]:
    spec = load_spec(MODEL_DIR, overrides)
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "T", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    key = kms.Key(stack, "K", enable_key_rotation=True)
    bucket = s3.Bucket(stack, "B", encryption_key=key)
    job = TrainingJob(stack, "Training", spec=spec, bucket=bucket, key=key, model_dir=MODEL_DIR)
    machine = sfn.StateMachine(stack, "M", definition_body=sfn.DefinitionBody.from_chainable(job.state))
    job.grant_start(machine)
    template = Template.from_stack(stack).to_json()
    definition = next(iter(state_machine_definitions(template).values()))
    return template, definition["States"]["Train"]


@pytest.fixture(scope="module")
def spot_task():
    return synth_training()


def test_training_runs_synchronously_on_the_spec_gpu_instance(spot_task):
    _, task = spot_task
    assert task["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    resources = task["Parameters"]["ResourceConfig"]
    assert resources["InstanceType"] == "ml.g5.xlarge" and resources["InstanceCount"] == 1
    assert task["Parameters"]["OutputDataConfig"]["KmsKeyId"].startswith("${K")


def test_no_volume_key_is_sent_for_an_instance_with_local_nvme_storage(spot_task):
    # CreateTrainingJob refuses VolumeKmsKeyId for instance types with local storage (ml.g5: NVMe).
    _, task = spot_task
    assert "VolumeKmsKeyId" not in task["Parameters"]["ResourceConfig"]


def test_ebs_backed_training_instances_get_the_volume_key():
    _, task = synth_training({"training": {"instance_type": "ml.p3.2xlarge"}})
    assert task["Parameters"]["ResourceConfig"]["VolumeKmsKeyId"].startswith("${K")


def test_the_state_machine_may_create_kms_grants_for_sagemaker_only(spot_task):
    template, _ = spot_task
    statements = [s for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
                  for s in r["Properties"]["PolicyDocument"]["Statement"]]
    (grant,) = [s for s in statements if "kms:CreateGrant" in s["Action"]]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_image_is_the_regional_pytorch_gpu_dlc(spot_task):
    _, task = spot_task
    image = task["Parameters"]["AlgorithmSpecification"]["TrainingImage"]
    assert image == "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.5-gpu-py311"
    assert resolve_training_image(load_spec(MODEL_DIR, {"training": {"instance_type": "ml.m5.xlarge"}}).training,
                                  "eu-west-1").endswith("2.5-cpu-py311")


def test_spot_training_has_checkpoints_and_max_wait(spot_task):
    _, task = spot_task
    parameters = task["Parameters"]
    assert parameters["EnableManagedSpotTraining"] is True
    assert parameters["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert parameters["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert "/checkpoints/churn/{}/" in parameters["CheckpointConfig"]["S3Uri.$"]


def test_metric_definitions_come_from_the_spec(spot_task):
    _, task = spot_task
    definitions = task["Parameters"]["AlgorithmSpecification"]["MetricDefinitions"]
    assert {"Name": "validation:auc", "Regex": "validation:auc=([0-9.]+)"} in definitions


def test_outputs_are_kms_encrypted_and_isolated(spot_task):
    _, task = spot_task
    parameters = task["Parameters"]
    assert parameters["OutputDataConfig"]["KmsKeyId"].startswith("${K")
    assert parameters["EnableNetworkIsolation"] is True
    assert parameters["EnableInterContainerTrafficEncryption"] is False
    channels = {c["ChannelName"]: c for c in parameters["InputDataConfig"]}
    assert set(channels) == {"train", "code"}  # code as a channel: isolated containers cannot fetch it


def test_multi_instance_on_demand_in_a_vpc_encrypts_traffic():
    _, task = synth_training({"training": {"instance_count": 4, "use_spot": False, "subnet_ids": ["subnet-1"],
                                           "security_group_ids": ["sg-1"]}})
    parameters = task["Parameters"]
    assert parameters["EnableInterContainerTrafficEncryption"] is True
    assert parameters["ResourceConfig"]["InstanceCount"] == 4
    assert "EnableManagedSpotTraining" not in parameters and "CheckpointConfig" not in parameters
    assert parameters["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}


def test_state_machine_may_only_create_this_models_training_jobs(spot_task):
    template, _ = spot_task
    statements = [s for p in template["Resources"].values() if p["Type"] == "AWS::IAM::Policy"
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    create = next(s for s in statements if "sagemaker:CreateTrainingJob" in s["Action"])
    assert create["Resource"]["Fn::Join"][1][-1].endswith(":111111111111:training-job/churn-*")


def test_source_archive_holds_the_model_folder_and_baseline_writer_not_data(tmp_path):
    (MODEL_DIR / "data").mkdir(exist_ok=True)
    archive = write_source_archive(MODEL_DIR, tmp_path / "sourcedir.tar.gz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"train.py", "evaluate.py", "features.py", "inference.py", "baseline.py", "model.yaml"} <= names
    assert not any(name.startswith("data") for name in names)
    again = write_source_archive(MODEL_DIR, tmp_path / "again.tar.gz")
    assert tarfile.open(again).getnames() == tarfile.open(archive).getnames()

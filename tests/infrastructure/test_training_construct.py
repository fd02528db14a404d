import json
import tarfile

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms, aws_s3 as s3, aws_stepfunctions as sfn
from aws_cdk.assertions import Template

from pipelines.local.cfn import state_machine_definitions
from pipelines.spec import load_spec
from pipelines.model_folder import source_fingerprint
from pipelines.spec import SpecError
from stacks.constructs.sagemaker_access import ModelExecutionRole
from stacks.constructs.training import TrainingJob, resolve_inference_image, resolve_training_image, write_source_archive
from tests.conftest import REPO_ROOT

MODEL_DIR = REPO_ROOT / "pipelines" / "churn"


def synth_training(overrides: dict | None = None, model_dir=MODEL_DIR) -> tuple[dict, dict]:
    spec = load_spec(model_dir, overrides)
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "T", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    key = kms.Key(stack, "K", enable_key_rotation=True)
    bucket = s3.Bucket(stack, "B", encryption_key=key)
    role = ModelExecutionRole(stack, "Execution", model=spec.name, env_name="dev").role
    job = TrainingJob(stack, "Training", spec=spec, bucket=bucket, key=key, model_dir=model_dir, role=role)
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
    names = [d["Name"] for d in definitions]
    assert {"validation:accuracy", "champion:auc", "train:loss"} <= set(names) and len(names) == len(set(names))


def test_outputs_are_kms_encrypted_and_isolated(spot_task):
    _, task = spot_task
    parameters = task["Parameters"]
    assert parameters["OutputDataConfig"]["KmsKeyId"].startswith("${K")
    assert parameters["EnableNetworkIsolation"] is True
    assert parameters["EnableInterContainerTrafficEncryption"] is False
    channels = {c["ChannelName"]: c for c in parameters["InputDataConfig"]}
    assert set(channels) == {"train", "code", "champion"}  # code as a channel: isolated containers cannot fetch it


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
    # Step Functions' documented policy for createTrainingJob.sync (developer guide, "IAM policies for Amazon
    # SageMaker AI") and CDK's own SageMakerCreateTrainingJob grant include sagemaker:ListTags.
    assert {"sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob", "sagemaker:AddTags",
            "sagemaker:ListTags"} <= set(create["Action"])


def test_source_archive_holds_the_folder_the_model_kit_the_baseline_writer_and_the_spec_not_data(tmp_path):
    (MODEL_DIR / "data").mkdir(exist_ok=True)
    spec = load_spec(MODEL_DIR, {"training": {"use_spot": False}})
    archive = write_source_archive(MODEL_DIR, tmp_path / "sourcedir.tar.gz", spec)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        packed_spec = json.loads(tar.extractfile("mlops_spec.json").read())
    assert {"train.py", "inference.py", "make_dataset.py", "baseline.py", "model.yaml", "mlops_spec.json",
            "modelkit/__init__.py", "modelkit/finish.py", "modelkit/torchloop.py"} <= names
    assert packed_spec["training"]["use_spot"] is False  # the environment's spec, overrides applied
    assert not any(name.startswith("data") for name in names)
    again = write_source_archive(MODEL_DIR, tmp_path / "again.tar.gz", spec)
    assert again.read_bytes() == archive.read_bytes()


def test_the_code_asset_changes_with_the_spec_and_the_kit_not_only_with_the_folder():
    base = load_spec(MODEL_DIR)
    assert source_fingerprint(MODEL_DIR, base) == source_fingerprint(MODEL_DIR, load_spec(MODEL_DIR))
    assert source_fingerprint(MODEL_DIR, base) != source_fingerprint(MODEL_DIR, load_spec(MODEL_DIR, {
        "training": {"hyperparameters": {"epochs": 3}}}))


def test_the_champion_channel_is_the_manifest_validate_data_pinned(spot_task):
    _, task = spot_task
    (champion,) = [c for c in task["Parameters"]["InputDataConfig"] if c["ChannelName"] == "champion"]
    source = champion["DataSource"]["S3DataSource"]
    assert source["S3DataType"] == "ManifestFile" and source["S3Uri.$"] == "$.validation.champion_manifest_uri"


HOUSES = REPO_ROOT / "pipelines" / "houses"


def test_an_xgboost_model_trains_and_serves_in_the_sagemaker_xgboost_containers():
    template, task = synth_training(model_dir=HOUSES)
    image = task["Parameters"]["AlgorithmSpecification"]["TrainingImage"]
    assert image == "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5"
    assert resolve_inference_image(load_spec(HOUSES), "eu-west-1") == image
    assert {"Name": "champion:rmse", "Regex": "champion:rmse=(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)"} in \
        task["Parameters"]["AlgorithmSpecification"]["MetricDefinitions"]


def test_scikit_learn_and_bring_your_own_images_are_resolved_offline():
    sklearn = load_spec(HOUSES, {"training": {"framework": "sklearn", "framework_version": "1.2-1"}})
    assert resolve_training_image(sklearn.training, "us-east-1") == \
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    own = "123456789012.dkr.ecr.us-east-1.amazonaws.com/houses:7"
    byo = load_spec(HOUSES, {"training": {"framework": "byo", "image_uri": own}})
    assert resolve_training_image(byo.training, "us-east-1") == resolve_inference_image(byo, "us-east-1") == own


def test_a_framework_version_the_catalogue_lacks_names_the_versions_it_has():
    spec = load_spec(HOUSES, {"training": {"framework_version": "0.9-9"}})
    with pytest.raises(SpecError, match=r"no SageMaker xgboost training image for version '0.9-9'.*fix: one of .*3.0-5"):
        resolve_training_image(spec.training, "us-east-1")


def test_the_execution_role_writes_outputs_checkpoints_and_captures_deletes_nothing_and_only_reads_releases(dev_app):
    import json as _json

    from tests.infrastructure.conftest import template_of

    template = template_of(dev_app, "mlops-dev-churn").to_json()
    roles = [n for n, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role" and n.startswith("SageMakerExecutionRole")]
    statements = [s for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
                  and any(ref.get("Ref") in roles for ref in r["Properties"]["Roles"])
                  for s in r["Properties"]["PolicyDocument"]["Statement"]]
    s3 = [s for s in statements if any(a.startswith("s3:") for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))]
    assert s3 and not any("Delete" in _json.dumps(s["Action"]) for s in s3)
    writes = [_json.dumps(s["Resource"]) for s in s3 if "s3:PutObject" in s["Action"]]
    # the one execution role also hosts: data capture and batch output (stacks/constructs/endpoints.py)
    assert writes and all(any(prefix in w for prefix in ("/models/churn/*", "/checkpoints/churn/*", "/batch/churn/output/*",
                                                         "/data-capture/churn-dev-")) for w in writes), writes
    assert not any("/releases/" in w for w in writes)
    assert any("/releases/churn/*" in _json.dumps(s["Resource"]) for s in s3 if "s3:GetObject*" in s["Action"])

"""Tuning in the retraining machine (checked against botocore's CreateHyperParameterTuningJob shape) and the MLflow
tracking server as code: one per environment that has it, its own role, access for the pipeline and data scientists."""

import botocore.session
import pytest
from botocore.validate import ParamValidator

from pipelines.local.cfn import state_machine_definitions
from tests.infrastructure.conftest import new_app, template_of

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")


@pytest.fixture(scope="module")
def houses(dev_app) -> dict:
    return template_of(dev_app, "mlops-dev-houses").to_json()


@pytest.fixture(scope="module")
def states(houses) -> dict:
    (definition,) = state_machine_definitions(houses).values()
    return definition["States"]


def _sample(parameters):
    """A request as the state would send it: every "X.$" path replaced by a value of the field's kind."""
    samples = {"HyperParameterTuningJobName": "houses-0123456789", "StaticHyperParameters": {"seed": "7"},
               "S3Uri": "s3://bucket/runs/houses/run/data/", "TrainingJobName": "houses-run"}
    if isinstance(parameters, dict):
        return {key.removesuffix(".$"): samples.get(key.removesuffix(".$"), "s3://bucket/checkpoints/houses/run/")
                if key.endswith(".$") else _sample(value) for key, value in parameters.items()}
    if isinstance(parameters, list):
        return [_sample(item) for item in parameters]
    return parameters


def _enums_and_limits(value, shape, where="") -> list[str]:
    """What botocore's own validator leaves to the service: enum members, maximum lengths and list sizes."""
    problems = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, item in value.items():
            problems += _enums_and_limits(item, shape.members[name], f"{where}.{name}")
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in shape.metadata and len(value) > shape.metadata["max"]:
            problems.append(f"{where}: {len(value)} items > {shape.metadata['max']}")
        problems += [p for item in value for p in _enums_and_limits(item, shape.member, f"{where}[]")]
    elif shape.type_name == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            problems.append(f"{where}: {value!r} not in {shape.enum}")
        if "max" in shape.metadata and len(value) > shape.metadata["max"] and not value.startswith("${"):
            problems.append(f"{where}: longer than {shape.metadata['max']}")
    return problems


def test_the_tuning_request_is_a_valid_create_hyper_parameter_tuning_job(states):
    task = states["TuneHyperparameters"]
    assert task["Resource"] == "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync"
    request = _sample(task["Parameters"])
    shape = SAGEMAKER.operation_model("CreateHyperParameterTuningJob").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert _enums_and_limits(request, shape) == []


def test_the_search_comes_from_the_spec_and_the_objective_from_its_metric(states):
    config = states["TuneHyperparameters"]["Parameters"]["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian" and config["RandomSeed"] == 7
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "validation:rmse"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 3}
    assert config["TrainingJobEarlyStoppingType"] == "Off"
    assert config["ParameterRanges"] == {
        "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "3", "MaxValue": "6", "ScalingType": "Auto"}],
        "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05", "MaxValue": "0.3",
                                       "ScalingType": "Logarithmic"}]}


def test_every_trial_is_the_spot_training_job_with_checkpoints_and_the_objective_regex(states):
    train, tune = states["Train"]["Parameters"], states["TuneHyperparameters"]["Parameters"]
    trial = tune["TrainingJobDefinition"]
    assert trial["EnableManagedSpotTraining"] is True and trial["CheckpointConfig"] == train["CheckpointConfig"]
    assert trial["StoppingCondition"] == train["StoppingCondition"] and trial["EnableNetworkIsolation"] is True
    assert trial["InputDataConfig"] == train["InputDataConfig"] and trial["RoleArn"] == train["RoleArn"]
    metrics = {d["Name"]: d["Regex"] for d in trial["AlgorithmSpecification"]["MetricDefinitions"]}
    assert metrics["validation:rmse"] == "validation:rmse=([0-9.]+)"
    assert trial["StaticHyperParameters.$"] == "$.run.static_hyperparameters"


def test_a_run_tunes_or_trains_and_either_way_evaluation_gets_the_same_training_fields(states):
    choice = states["Tune?"]
    (branch,) = choice["Choices"]
    assert branch == {"Variable": "$.run.tune", "BooleanEquals": True, "Next": "TuneHyperparameters"}
    assert choice["Default"] == "Train" and states["TuneHyperparameters"]["Next"] == "DescribeBestTrial"
    assert states["DescribeBestTrial"]["Next"] == states["Train"]["Next"] == "EvaluateAgainstChampion"
    best = states["DescribeBestTrial"]
    assert best["Parameters"] == {"TrainingJobName.$": "$.tuning.best_training_job"}
    assert set(states["Train"]["ResultSelector"]) <= set(best["ResultSelector"]) and best["ResultPath"] == "$.training"
    for name in ("TuneHyperparameters", "DescribeBestTrial"):
        assert states[name]["Catch"][0]["Next"] == "NotifyFailure"


def test_a_model_without_tuning_has_no_choice(dev_app):
    (definition,) = state_machine_definitions(template_of(dev_app, "mlops-dev-churn").to_json()).values()
    assert "Tune?" not in definition["States"] and definition["States"]["ValidateData"]["Next"] == "Train"


def _statements(template: dict, resource_type: str = "AWS::IAM::Policy") -> dict[str, list[dict]]:
    found = {}
    for logical, resource in template["Resources"].items():
        if resource["Type"] == resource_type:
            found[logical] = resource["Properties"]["PolicyDocument"]["Statement"]
    return found


def _actions(statement) -> list[str]:
    actions = statement["Action"]
    return actions if isinstance(actions, list) else [actions]


def test_the_machine_may_run_this_models_tuning_jobs_only(houses):
    statements = [s for group in _statements(houses).values() for s in group]
    (tuning,) = [s for s in statements if "sagemaker:CreateHyperParameterTuningJob" in _actions(s)]
    assert "hyper-parameter-tuning-job/houses-*" in str(tuning["Resource"])
    assert "sagemaker:ListTags" in _actions(tuning)  # Step Functions' documented policy for tuning .sync tasks
    lists = [s for s in statements if "sagemaker:ListTrainingJobsForHyperParameterTuningJob" in _actions(s)]
    assert lists and all(s["Resource"] == "*" for s in lists)  # a List call: authorized on '*' only


@pytest.fixture(scope="module")
def control(dev_app) -> dict:
    return template_of(dev_app, "mlops-dev-control").to_json()


def test_only_the_evaluate_and_register_tasks_and_data_scientists_reach_the_tracking_server(houses, control):
    assert not [logical for logical, statements in _statements(houses).items()
                if any(a.startswith("sagemaker-mlflow:") for s in statements for a in _actions(s))]
    users = {logical for logical, statements in _statements(control).items()
             if any(a.startswith("sagemaker-mlflow:") for s in statements for a in _actions(s))}
    assert len(users) == 2 and all(u.startswith(("PipelineTasksEvaluateScoped", "PipelineTasksRegisterScoped")) for u in users)
    for statements in _statements(control).values():
        for statement in statements:
            if any(a.startswith("sagemaker-mlflow:") for a in _actions(statement)):
                assert "mlflow-tracking-server/mlops-dev" in str(statement["Resource"])
    people = {logical for template in (houses, control)
              for logical, statements in _statements(template, "AWS::IAM::ManagedPolicy").items()
              if any(a.startswith("sagemaker-mlflow:") for s in statements for a in _actions(s))}
    assert len(people) == 1 and next(iter(people)).startswith("AccessDataScientist")


def test_each_environment_that_trains_gets_one_tracking_server_storing_under_its_own_prefix(dev_app):
    registry = template_of(dev_app, "mlops-dev-registry").to_json()
    (server,) = [r for r in registry["Resources"].values() if r["Type"] == "AWS::SageMaker::MlflowTrackingServer"]
    properties = server["Properties"]
    assert properties["TrackingServerName"] == "mlops-dev" and properties["TrackingServerSize"] == "Small"
    assert properties["AutomaticModelRegistration"] is False
    assert str(properties["ArtifactStoreUri"]).endswith("/mlflow/dev/']]}")
    role = next(r for k, r in registry["Resources"].items() if r["Type"] == "AWS::IAM::Role" and k.startswith("ExperimentsServiceRole"))
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert "Condition" not in trust  # none AWS documents for MLflow (test_aws_contracts.py, service trusts)
    policy = next(s for k, s in _statements(registry).items() if k.startswith("ExperimentsServiceRoleDefaultPolicy"))
    objects = [s for s in policy if any(a.startswith("s3:") for a in _actions(s))]
    assert all("/mlflow/dev/*" in str(s["Resource"]) or "s3:List" in str(s["Action"]) for s in objects)


def test_an_environment_with_its_server_off_has_none(tmp_path):
    import aws_cdk as cdk

    from pipelines.spec import EnvironmentSpec, load_spec
    from stacks.registry_stack import RegistryStack
    from tests.conftest import REPO_ROOT

    environment = EnvironmentSpec(name="prod", account="333333333333", region="us-east-1",
                                  experiments={"enabled": False})
    stack = RegistryStack(new_app(), "R", environment=environment, specs=[load_spec(REPO_ROOT / "pipelines/houses")],
                          env=cdk.Environment(account="333333333333", region="us-east-1"))
    types = {r["Type"] for r in cdk.assertions.Template.from_stack(stack).to_json()["Resources"].values()}
    assert "AWS::SageMaker::MlflowTrackingServer" not in types and "AWS::S3::Bucket" in types


def test_data_scientists_may_write_only_mlflow_artifacts_and_their_models_labels(control):
    """Issue 25: the MLflow client uploads a notebook's artifacts straight to the artifact store with the caller's
    credentials (not through the tracking server): exactly mlflow/<env>/ and the key through S3. Issue 29: `mlops
    labels put` writes the session's model's ground truth, and nothing else."""
    (statements,) = [s for logical, s in _statements(control, "AWS::IAM::ManagedPolicy").items()
                     if logical.startswith("AccessDataScientist")]
    writes = {str(s["Resource"]): set(_actions(s)) for s in statements if "s3:PutObject" in _actions(s)}
    (mlflow,) = [r for r in writes if r.count("/mlflow/dev/*") == 1]
    (labels,) = [r for r in writes if r.endswith("/ground-truth/${aws:PrincipalTag/mlops:model}/*")]
    assert len(writes) == 2 and writes[mlflow] == {"s3:GetObject", "s3:PutObject"} and writes[labels] == {"s3:PutObject"}
    listings = [s["Condition"]["StringLike"]["s3:prefix"] for s in statements if "s3:ListBucket" in _actions(s)]
    assert ["mlflow/dev/*"] in listings  # the other listing: the model's own captures (test_runs_api_access.py)
    assert all(prefixes == ["mlflow/dev/*"] or all(p.startswith(("data-capture/", "drift/", "quality/")) for p in prefixes)
               for prefixes in listings), listings  # the model's own captures, drift and quality reports (mlops fleet)
    (key,) = [s for s in statements if "kms:GenerateDataKey" in _actions(s)]
    assert key["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}

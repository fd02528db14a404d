"""Tuning fields of a run, what a run logs to MLflow, reading a version back for reproduction, the local search."""

import json
import random

import pytest

from lambdas.shared.lineage import decode_pairs

from lambdas.pipeline import experiments, logic
from pipelines.local import sagemaker_jobs
from pipelines.modelkit import contract, tracking as kit
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT

HOUSES = load_spec(REPO_ROOT / "pipelines" / "houses")
BUCKET = "mlops-dev-artifacts-111111111111-us-east-1"


def test_a_tuned_run_keeps_the_searched_hyperparameters_out_of_the_static_ones():
    fields = experiments.tuning_fields(HOUSES.tuning, {"eta": '0.1', "seed": "7", "sagemaker_program": '"train.py"'},
                                       {}, "houses", "manual-1")
    assert fields["tune"] is True and fields["static_hyperparameters"] == {"seed": "7", "sagemaker_program": '"train.py"'}
    assert fields["tuning_job_name"].startswith("houses-") and len(fields["tuning_job_name"]) <= 32


def test_a_run_may_not_override_what_the_search_decides():
    with pytest.raises(logic.InvalidRunInput, match="searched by the tuning job"):
        experiments.tuning_fields(HOUSES.tuning, {}, {"eta": 0.2}, "houses", "manual-1")


def test_a_reproduction_trains_once_even_when_the_spec_tunes():
    assert experiments.tuning_fields(HOUSES.tuning, {}, {}, "houses", "manual-1", reproduction=True) == {"tune": False}


def package(**lineage) -> dict:
    base = {"dataset_uri": f"s3://{BUCKET}/datasets/houses/train.csv", "dataset_version_id": "v-1",
            "dataset_sha256": "ab" * 32, "source_uri": f"s3://{BUCKET}/runs/houses/manual-1/code/sourcedir.tar.gz",
            "git_commit": "0123abc"}
    return {"ModelPackageVersion": 3, "ModelPackageArn": "arn:aws:sagemaker:us-east-1:111111111111:model-package/houses-dev/3",
            "CustomerMetadataProperties": {**base, **lineage}}


REPORT = {"hyperparameters": {"eta": 0.1, "max_depth": 5, "seed": 7}, "metrics": {"validation:rmse": 27.5}}


def test_a_version_is_reproduced_from_its_snapshot_its_dataset_version_and_its_complete_hyperparameters():
    found = experiments.reproduction_of(package(), REPORT, BUCKET, "houses", HOUSES.dataset)
    assert (found.dataset_key, found.dataset_version_id, found.version) == ("datasets/houses/train.csv", "v-1", 3)
    assert found.hyperparameters == REPORT["hyperparameters"] and found.metrics == REPORT["metrics"]
    encoded = experiments.reproduced_hyperparameters(found, {"sagemaker_program": '"train.py"', "eta": "0.3"})
    assert encoded == {"sagemaker_program": '"train.py"', "eta": "0.1", "max_depth": "5", "seed": "7"}


@pytest.mark.parametrize("lineage, report, expected", [
    ({"dataset_version_id": "unversioned"}, REPORT, "unversioned dataset"),
    ({"source_uri": "none"}, REPORT, "has no source_uri"),
    ({"source_uri": f"s3://{BUCKET}/runs/churn/x/code/sourcedir.tar.gz"}, REPORT, "not a run snapshot of houses"),
    ({"dataset_uri": "s3://elsewhere/datasets/houses/train.csv"}, REPORT, "outside this environment"),
    ({"dataset_uri": f"s3://{BUCKET}/datasets/churn/train.csv"}, REPORT, "outside this model's datasets"),
    ({}, {"metrics": {}}, "hyperparameters (evaluation report)"),
])
def test_a_version_that_cannot_be_reproduced_exactly_is_refused_saying_why(lineage, report, expected):
    with pytest.raises(logic.InvalidRunInput, match=expected.replace("(", r"\(").replace(")", r"\)")):
        experiments.reproduction_of(package(**lineage), report, BUCKET, "houses", HOUSES.dataset)


def test_a_reproduction_request_may_not_carry_its_own_hyperparameters_or_data():
    with pytest.raises(ValueError, match="reproduction trains with the version's own"):
        logic.RunRequest(reproduce_version=2, hyperparameters={"eta": 0.2})
    assert logic.RunRequest(reproduce_version=2).reproduce_version == 2


def test_the_version_arn_comes_from_the_machines_own_partition_region_and_account():
    arn = experiments.version_arn("arn:aws-cn:states:cn-north-1:222222222222:stateMachine:houses-dev-retraining",
                                  "houses-dev", 4)
    assert arn == "arn:aws-cn:sagemaker:cn-north-1:222222222222:model-package/houses-dev/4"


STATE = {"run": {"execution_name": "manual-1", "execution_arn": "arn:exec", "git_commit": "0123abc", "trigger": "manual",
                 "requested_by": "me", "source_uri": "s3://b/runs/houses/manual-1/code/sourcedir.tar.gz",
                 "hyperparameters": {"eta": "0.1"}},
         "validation": {"dataset_uri": "s3://b/datasets/houses/train.csv", "version_id": "v-1", "sha256": "ab", "rows": 10},
         "training": {"job_arn": "arn:job", "model_artifacts": "s3://b/models/houses/job/output/model.tar.gz"},
         "tuning": {"job_arn": "arn:tuning", "strategy": "Bayesian", "best_training_job": "houses-x-002-abcd"}}
EVALUATION = {"hyperparameters": {"eta": 0.1, "seed": 7}, "metrics": {"validation:rmse": 27.5, "validation:r2": float("nan")},
              "champion": {"metrics": {"validation:rmse": 30.0}}, "system": {"instance_type": "ml.m5.xlarge"},
              "history": [{"epoch": 1, "validation:rmse": 40.0}, {"epoch": 2, "validation:rmse": 28.0}]}


def test_a_run_logs_every_epoch_its_final_scores_after_them_and_its_lineage_as_tags():
    record = experiments.run_record(HOUSES, STATE, EVALUATION, {"promote": True, "reason": "better", "champion_arn": None})
    by_step = {(m["key"], m["step"], bool(m.get("final"))): m["value"] for m in record.metrics}
    assert by_step[("validation:rmse", 1, False)] == 40.0 and by_step[("validation:rmse", 2, False)] == 28.0
    assert by_step[("validation:rmse", 2, True)] == 27.5 and by_step[("champion:rmse", 2, True)] == 30.0
    assert not any(m["key"] == "validation:r2" for m in record.metrics)  # NaN is not a number MLflow keeps
    assert record.params == {"eta": "0.1", "seed": "7"} and record.run_name == "manual-1"
    tags = record.tags
    assert tags[experiments.RUN_TAG] == "manual-1" and tags["mlflow.source.git.commit"] == "0123abc"
    assert tags["mlops.dataset_version_id"] == "v-1" and tags["system.instance_type"] == "ml.m5.xlarge"
    assert tags["mlops.tuning_job_arn"] == "arn:tuning" and tags["mlops.promote"] == "true"


def test_trials_become_child_runs_with_the_values_the_search_chose():
    summaries = [{"TrainingJobName": "houses-x-001-aaaa", "TrainingJobArn": "arn:1", "TrainingJobStatus": "Completed",
                  "TunedHyperParameters": {"eta": "0.12", "max_depth": "4"},
                  "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "validation:rmse", "Value": 29.1}},
                 {"TrainingJobName": "houses-x-002-bbbb", "TrainingJobStatus": "Failed", "FailureReason": "oom",
                  "TunedHyperParameters": {"eta": "0.3", "max_depth": "6"}}]
    first, second = experiments.trial_records(summaries, HOUSES, "parent-id", best="houses-x-001-aaaa")
    assert first.tags["mlflow.parentRunId"] == "parent-id" and first.tags["mlops.best_trial"] == "true"
    assert first.params == {"eta": "0.12", "max_depth": "4"} and first.metrics[0]["value"] == 29.1
    assert second.status == "FAILED" and second.metrics == [] and second.tags["mlops.failure_reason"] == "oom"


def test_lineage_records_the_tuning_job_the_best_trial_and_the_trials_own_hyperparameters():
    state = {**STATE, "training": {**STATE["training"], "hyperparameters": {
        "eta": "0.123", "max_depth": "4", "_tuning_objective_metric": "validation:rmse", "sagemaker_program": '"train.py"'}},
             "run": {**STATE["run"], "model": "houses"},
             "evaluation": {"metrics": {"validation:rmse": 27.5}, "mlflow_run_id": "run-1", "mlflow_experiment_id": "1"},
             "tuning": {**STATE["tuning"], "best_objective": {"Value": 27.5}, "training_job_counts": {"Completed": 3}}}
    lineage = logic.lineage(state)
    assert decode_pairs(lineage["hyperparameters"]) == {"eta": 0.123, "max_depth": 4}
    assert lineage["tuning_best_trial"] == "houses-x-002-abcd" and lineage["tuning_trials_completed"] == "3"
    assert lineage["mlflow_run_id"] == "run-1" and lineage["source_uri"].endswith("code/sourcedir.tar.gz")


RANGES = {"IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "3", "MaxValue": "6", "ScalingType": "Auto"}],
          "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05", "MaxValue": "0.3",
                                         "ScalingType": "Logarithmic"}],
          "CategoricalParameterRanges": [{"Name": "booster", "Values": ['"gbtree"', '"dart"']}]}


def test_the_local_search_stays_inside_the_ranges_and_repeats_with_its_seed():
    draws = [sagemaker_jobs.sample_hyperparameters(RANGES, random.Random(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    many = [sagemaker_jobs.sample_hyperparameters(RANGES, random.Random(seed)) for seed in range(50)]
    assert all(3 <= int(d["max_depth"]) <= 6 and 0.05 <= float(d["eta"]) <= 0.3 for d in many)
    assert {d["booster"] for d in many} == {'"gbtree"', '"dart"'}


def test_a_trial_is_the_definitions_training_job_with_its_values_and_the_objective_name():
    tuning = {"HyperParameterTuningJobName": "houses-x",
              "HyperParameterTuningJobConfig": {"HyperParameterTuningJobObjective": {"Type": "Minimize",
                                                                                      "MetricName": "validation:rmse"}},
              "TrainingJobDefinition": {"StaticHyperParameters": {"seed": "7"}, "RoleArn": "arn:role",
                                        "AlgorithmSpecification": {"TrainingImage": "img"}}}
    request = sagemaker_jobs.trial_request(tuning, "houses-x-001-abcd", {"eta": "0.1"})
    assert request["HyperParameters"] == {"seed": "7", "eta": "0.1", "_tuning_objective_metric": "validation:rmse"}
    assert request["TrainingJobName"] == "houses-x-001-abcd" and request["RoleArn"] == "arn:role"


def test_the_objective_is_the_last_value_the_metric_definition_reads_from_the_log():
    log = "epoch=1; validation:rmse=40.0;\nchampion:rmse=31.0;\nvalidation:rmse=28.5;\n"
    definitions = [{"Name": "validation:rmse", "Regex": "validation:rmse=([0-9.]+)"}]
    assert sagemaker_jobs.objective_value(log, definitions, "validation:rmse") == 28.5
    assert sagemaker_jobs.objective_value("nothing", definitions, "validation:rmse") is None


def test_each_training_job_keeps_its_own_checkpoints(monkeypatch, tmp_path):
    monkeypatch.delenv("TRAINING_JOB_NAME", raising=False)
    assert contract.job_checkpoints(tmp_path) == tmp_path
    monkeypatch.setenv("TRAINING_JOB_NAME", "houses-x-002-abcd")
    assert contract.job_checkpoints(tmp_path) == tmp_path / "houses-x-002-abcd"


def test_a_tuning_trials_objective_setting_is_not_an_unknown_hyperparameter(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Hyperparameters:
        eta: float = 0.3

    paths = contract.Paths.from_environment()
    paths = contract.Paths(**{**vars(paths), "hyperparameters": tmp_path / "hyperparameters.json"})
    paths.hyperparameters.write_text(json.dumps({"eta": "0.1", "_tuning_objective_metric": "validation:rmse"}))
    assert contract.read_hyperparameters(paths, Hyperparameters(), []).eta == 0.1


def test_history_keeps_every_epoch_and_thins_very_long_runs_keeping_the_last(capsys):
    history = kit.History()
    history.log(1, **{"train:loss": 0.5})
    assert "epoch=1; train:loss=0.500000;" in capsys.readouterr().out
    rounds = {"validation": {"rmse": [float(i) for i in range(2500)]}}
    thinned = kit.History.from_xgboost(rounds, {"validation": "validation:"}, rounds_before=10).as_list()
    assert len(thinned) == kit.MAX_EPOCHS_KEPT and thinned[0]["epoch"] == 11 and thinned[-1]["epoch"] == 2510


def test_a_tracking_failure_is_in_the_end_of_run_email_not_only_a_metric():
    """Issue 25: a refused MLflow request showed only as a TrackingFailures metric."""
    from lambdas.pipeline.logic import notification

    state = {"run": {"model": "houses", "execution_arn": "arn:exec", "trigger": "manual", "requested_by": "ds"},
             "evaluation": {"reason": "validation:rmse=25.1", "tracking_error": "HTTP 403: signature mismatch"}}
    subject, body = notification(state, "succeeded")
    assert "Experiment tracking: FAILED: HTTP 403: signature mismatch" in body
    assert "Experiment tracking" not in notification({**state, "evaluation": {"reason": "x"}}, "succeeded")[1]

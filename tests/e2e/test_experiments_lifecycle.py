"""Tuning, experiment tracking and exact reproduction, offline: the houses model (3 seeded trials) through the
local emulation with its MLflow tracking server, then `mlops run reproduce` of the registered version on CPU."""

import json

import pytest

from lambdas.shared.lineage import decode_pairs
from typer.testing import CliRunner

from lambdas.pipeline.experiments import PACKAGE_TAG, RUN_TAG
from pipelines.local.lifecycle import LocalLifecycle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from pipelines import experiments_cli
    from pipelines.client import Pipelines

    found = {}

    def then(lifecycle):
        found["run"] = lifecycle._run_pipeline(trigger_approval=True)  # tuned, approved, deployed: the champion
        pipelines = Pipelines(env="local", session=lifecycle.data_scientist.session(lifecycle.region),
                              models_dir=lifecycle.models_dir)
        found["versions"] = pipelines.models("houses", with_serving=False)
        found["reproduction"] = experiments_cli.reproduce(pipelines, "houses", 1, poll=0.5)
        found["versions_after_reproduction"] = [v.version for v in pipelines.models("houses", with_serving=False)]
        client, experiment = experiments_cli.tracking_client(pipelines, "houses")
        found.update(pipelines=pipelines, client=client, experiment=experiment,
                     runs=experiments_cli.experiments(pipelines, "houses", trials=True))
        found["trials"] = lifecycle._aws("sagemaker").list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=found["versions"][0].lineage["tuning_job_arn"].rsplit("/", 1)[1])
        runner = CliRunner()
        from pipelines import cli

        original = experiments_cli._pipelines
        experiments_cli._pipelines = lambda env: pipelines
        try:
            found["compare"] = runner.invoke(cli.app, ["experiments", "compare", "houses", "v1",
                                                       found["reproduction"]["run"], "--env", "local", "-o", "json"])
            found["list"] = runner.invoke(cli.app, ["experiments", "list", "houses", "--env", "local", "--trials",
                                                    "-o", "json"])
            found["table"] = runner.invoke(cli.app, ["experiments", "list", "houses", "--env", "local"])
        finally:
            experiments_cli._pipelines = original

    LocalLifecycle("houses", tmp_path_factory.mktemp("experiments"), rows=1500, say=lambda line: None).run(
        then=then, setup_only=True)
    return found


def test_the_tuned_run_registers_its_best_trial_with_the_tuning_lineage(world):
    assert world["run"]["status"] == "SUCCEEDED", world["run"].get("failed_step")
    (version,) = [v for v in world["versions"] if v.version == 1]
    lineage = version.lineage
    trials = world["trials"]["TrainingJobSummaries"]
    assert lineage["tuning_strategy"] == "Bayesian" and lineage["tuning_trials_completed"] == "3" and len(trials) == 3
    best = min(trials, key=lambda t: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert lineage["tuning_best_trial"] == best["TrainingJobName"]
    assert lineage["training_job_arn"].endswith(f"/{best['TrainingJobName']}")  # evaluated and registered: the best
    recorded = decode_pairs(lineage["hyperparameters"])
    assert recorded["max_depth"] == int(best["TunedHyperParameters"]["max_depth"])
    assert recorded["eta"] == pytest.approx(float(best["TunedHyperParameters"]["eta"]))
    assert float(lineage["tuning_best_objective"]) == pytest.approx(version.metrics["validation:rmse"], rel=1e-4)


def test_the_versions_mlflow_run_is_found_from_the_registry_and_back(world):
    client, experiment = world["client"], world["experiment"]
    (version,) = [v for v in world["versions"] if v.version == 1]
    run = client.run(version.lineage["mlflow_run_id"])  # registry -> MLflow
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags[PACKAGE_TAG] == version.arn and tags["mlops.model_package_version"] == "1"
    back = client.run_tagged(experiment, PACKAGE_TAG, version.arn)  # MLflow -> registry
    assert back["info"]["run_id"] == version.lineage["mlflow_run_id"]
    assert tags[RUN_TAG] == world["run"]["name"] and tags["mlops.tuning_best_trial"] == version.lineage["tuning_best_trial"]


def test_the_run_logs_every_round_its_system_and_its_trials_as_child_runs(world):
    client = world["client"]
    (version,) = [v for v in world["versions"] if v.version == 1]
    run_id = version.lineage["mlflow_run_id"]
    rounds = client.metric_history(run_id, "validation:rmse")
    assert len({m["step"] for m in rounds}) == 150  # per boosting round, and the final score after the last one
    latest = {m["key"]: m["value"] for m in client.run(run_id)["data"]["metrics"]}
    assert latest["validation:rmse"] == pytest.approx(version.metrics["validation:rmse"], rel=1e-6)
    tags = {t["key"]: t["value"] for t in client.run(run_id)["data"]["tags"]}
    assert tags["system.instance_type"] == "ml.m5.xlarge" and tags["mlops.dataset_version_id"] == version.lineage[
        "dataset_version_id"]
    children = [r for r in world["runs"] if r.parent == run_id]
    assert len(children) == 3 and sum(r.tags["mlops.best_trial"] == "true" for r in children) == 1
    assert all({"eta", "max_depth"} == set(r.params) and "validation:rmse" in r.metrics for r in children)


def test_reproducing_the_version_on_cpu_gives_the_identical_metric(world):
    reproduction = world["reproduction"]
    assert reproduction["status"] == "SUCCEEDED" and reproduction["identical"], reproduction
    assert reproduction["verdict"] == "reproduced" and reproduction["verified"]  # judged by the run, registered nowhere
    assert world["versions_after_reproduction"] == [1]  # no version registered, none awaiting approval
    assert reproduction["reproduced"]["validation:rmse"] == reproduction["original"]["validation:rmse"]
    assert set(reproduction["difference"].values()) == {0.0}
    (run,) = [r for r in world["runs"] if r.name == reproduction["run"]]
    assert run.tags["mlops.reproduces"] == reproduction["model_package_arn"]
    original = next(r for r in world["runs"] if r.name == world["run"]["name"])
    assert run.params == original.params  # the complete hyperparameters, the seed included
    assert run.tags["mlops.dataset_sha256"] == original.tags["mlops.dataset_sha256"]
    assert "mlops.tuning_job_arn" not in run.tags  # a reproduction trains once


def test_the_cli_lists_and_compares_runs_side_by_side(world):
    assert world["compare"].exit_code == 0, world["compare"].output
    compared = json.loads(world["compare"].output)["runs"]
    assert [r["name"] for r in compared] == [world["run"]["name"], world["reproduction"]["run"]]
    assert compared[0]["metrics"]["validation:rmse"] == compared[1]["metrics"]["validation:rmse"]
    listed = json.loads(world["list"].output)
    assert world["reproduction"]["run"] in {r["name"] for r in listed}
    assert sum(r["tags"].get("mlflow.parentRunId") is not None for r in listed) == 3  # the trials, with --trials
    assert world["table"].exit_code == 0 and "houses experiments (local)" in world["table"].output

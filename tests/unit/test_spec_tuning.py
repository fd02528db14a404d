"""The spec's tuning: and experiments: blocks, and an environment's tracking server: typed, checked, clear errors."""

import pytest

from pipelines.spec import SpecError, load_spec, parse_environments, parse_spec
from tests.conftest import REPO_ROOT

HOUSES = REPO_ROOT / "pipelines" / "houses"


def houses_with(tuning: dict | None, **training) -> dict:
    document = load_spec(HOUSES).model_dump(mode="json", exclude_none=True)
    document["training"].update(training)
    document["tuning"] = tuning
    return document


def problems(tuning: dict, **training) -> str:
    with pytest.raises(SpecError) as error:
        parse_spec(houses_with(tuning, **training), "houses/model.yaml")
    return str(error.value)


def test_the_houses_spec_tunes_two_hyperparameters_with_a_seeded_bayesian_search():
    tuning = load_spec(HOUSES).tuning
    assert tuning.sagemaker_strategy == "Bayesian" and tuning.max_jobs == 3 and tuning.random_seed == 7
    assert set(tuning.ranges) == {"max_depth", "eta"} and tuning.ranges["eta"].scaling == "logarithmic"


def test_strategy_is_case_insensitive_and_maps_to_sagemakers_names():
    spec = parse_spec(houses_with({"strategy": "Random", "max_jobs": 2, "ranges": {"eta": {"min": 0.1, "max": 0.2}}}), "x")
    assert spec.tuning.sagemaker_strategy == "Random"


def test_tuning_an_undeclared_hyperparameter_names_it_and_the_known_ones():
    message = problems({"max_jobs": 2, "ranges": {"gamma": {"min": 0, "max": 1}}})
    assert "tuning.ranges.gamma: not a hyperparameter" in message and "max_depth" in message


def test_a_range_outside_what_a_run_may_set_is_refused():
    message = problems({"max_jobs": 2, "ranges": {"max_depth": {"min": 2, "max": 40}}})
    assert "tuning.ranges.max_depth" in message and "at most 16" in message


def test_an_integer_hyperparameter_needs_whole_bounds():
    assert "whole-number bounds" in problems({"max_jobs": 2, "ranges": {"max_depth": {"min": 2.5, "max": 6}}})


def test_values_must_have_the_hyperparameters_type():
    assert "must be an integer" in problems({"max_jobs": 2, "ranges": {"max_depth": {"values": [3, "deep"]}}})


@pytest.mark.parametrize("tuning, expected", [
    ({"max_jobs": 2, "max_parallel_jobs": 3, "ranges": {"eta": {"min": 0.1, "max": 0.2}}}, "max_parallel_jobs (3) exceeds"),
    ({"max_jobs": 2, "ranges": {"eta": {"min": 0.2, "max": 0.1}}}, "swap them"),
    ({"max_jobs": 2, "ranges": {"eta": {"min": 0, "max": 0.1, "scaling": "logarithmic"}}}, "needs min > 0"),
    ({"max_jobs": 2, "ranges": {"eta": {"min": 0.1}}}, "needs both min and max"),
    ({"max_jobs": 2, "ranges": {"eta": {"min": 0.1, "max": 0.2, "values": [0.1]}}}, "either min and max"),
    ({"max_jobs": 2, "strategy": "hyperband", "early_stopping": True, "hyperband": {"max_resource": 10},
      "ranges": {"eta": {"min": 0.1, "max": 0.2}}}, "refuses early stopping"),
    ({"max_jobs": 2, "strategy": "hyperband", "ranges": {"eta": {"min": 0.1, "max": 0.2}}}, "hyperband needs the resource"),
    ({"max_jobs": 2, "hyperband": {"max_resource": 10}, "ranges": {"eta": {"min": 0.1, "max": 0.2}}}, "applies to strategy hyperband"),
    ({"max_jobs": 0, "ranges": {"eta": {"min": 0.1, "max": 0.2}}}, "tuning.max_jobs"),
    ({"max_jobs": 2, "ranges": {}}, "tuning.ranges"),
])
def test_impossible_searches_are_refused_with_the_fix(tuning, expected):
    assert expected in problems(tuning)


def test_a_search_longer_than_a_state_machine_may_run_is_refused():
    message = problems({"max_jobs": 500, "ranges": {"eta": {"min": 0.1, "max": 0.2}}}, max_runtime_s=28 * 24 * 3600)
    assert "one-year limit" in message and "tuning.max_runtime_s" in message


def test_experiments_default_to_tracked_under_the_models_name_and_refuse_odd_names():
    assert load_spec(HOUSES).experiments.enabled and load_spec(HOUSES).experiments.experiment is None
    document = houses_with(None)
    document["experiments"] = {"experiment": "bad\\name"}
    with pytest.raises(SpecError, match="experiments.experiment"):
        parse_spec(document, "x")


def test_an_environment_configures_its_tracking_server_and_refuses_unknown_sizes():
    base = {"account": "111111111111", "region": "us-east-1"}
    (default,) = parse_environments({"mlops:environments": {"dev": base}})
    assert not default.experiments.enabled  # billed by the hour: only where cdk.json asks for one
    (on,) = parse_environments({"mlops:environments": {"dev": {**base, "experiments": {"enabled": True}}}})
    assert on.experiments.enabled and on.experiments.size == "Small"
    with pytest.raises(SpecError, match="experiments.size"):
        parse_environments({"mlops:environments": {"dev": {**base, "experiments": {"size": "Huge"}}}})
    with pytest.raises(SpecError, match="weekly_maintenance_window_start"):
        parse_environments({"mlops:environments": {"dev": {**base, "experiments": {"weekly_maintenance_window_start": "Sunday"}}}})

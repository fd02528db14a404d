"""hosting: shared, end to end offline: two models as inference components of the environment's one shared endpoint,
each deployed (smoke-tested on its own component first), predicting from zero copies, captured on the one endpoint,
drift-checked on its own traffic only, retrained by drift, and rolled back with `mlops rollback`."""

import shutil

import pytest
import yaml

from pipelines import naming
from pipelines.local.lifecycle import LocalLifecycle
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
MODELS = ("churn", "houses")


def shared_models(folder):
    """churn and houses as they are, with deployment.hosting: shared."""
    for model in MODELS:
        shutil.copytree(REPO_ROOT / "pipelines" / model, folder / model, ignore=shutil.ignore_patterns("__pycache__"))
        spec_file = folder / model / "model.yaml"
        spec = yaml.safe_load(spec_file.read_text())
        spec.setdefault("deployment", {})["hosting"] = "shared"
        spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def after_the_lifecycle(observed: dict):
    """While the emulation is up: what the shared endpoint holds, then `mlops rollback` of churn when its drift run
    promoted version 2."""
    def observe(lifecycle: LocalLifecycle) -> None:
        from lambdas.shared.dal import Endpoints
        from pipelines.client import Pipelines, rollback

        sagemaker = lifecycle._aws("sagemaker")
        observed["components"] = {c["InferenceComponentName"]: c["EndpointName"] for c in
                                  sagemaker.list_inference_components()["InferenceComponents"]}
        observed["endpoints"] = sorted(e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"])
        pipelines = Pipelines(env="local", session=lifecycle.driver_session(), models_dir=lifecycle.models_dir)
        observed["before"] = {v.version: v.serves for v in pipelines.models("churn")}
        if observed["before"].get(2) == ["prod"]:
            observed["rollback"] = rollback(pipelines, "churn")
            with pipelines.handler_calls():
                observed["after"] = Endpoints().served_package(naming.endpoint("churn", "local", "prod"), "shared")
            observed["versions"] = {v.version: v.arn for v in pipelines.models("churn", with_serving=False)}
    return observe


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    observed: dict = {}
    lifecycle = LocalLifecycle("churn", tmp_path_factory.mktemp("local"), rows=3000, traffic_requests=150,
                               say=lambda line: None, alongside=["houses"], approve_second_run=True,
                               models_dir=shared_models(tmp_path_factory.mktemp("models")))
    return lifecycle.run(then=after_the_lifecycle(observed)), observed


def test_each_model_is_an_inference_component_of_the_one_shared_endpoint_and_no_endpoint_of_its_own(shared):
    result, observed = shared
    assert result.runs[0]["status"] == "SUCCEEDED"
    assert observed["endpoints"] == [naming.shared_endpoint("local")]  # the smoke components were deleted too
    assert observed["components"] == {naming.endpoint(m, "local", "prod"): "mlops-local-shared" for m in MODELS}


def test_a_component_at_zero_copies_answers_after_scaling_out_and_names_its_model(shared):
    result, _ = shared
    assert result.served_by == "churn" and result.alongside["houses"].served_by == "houses"
    assert len(result.predictions) == 3 and 0 <= result.predictions[0]["probability"] <= 1


def test_the_drift_check_reads_only_its_own_models_traffic_from_the_shared_capture(shared):
    result, _ = shared
    houses = result.alongside["houses"]
    # Both models' requests are captured under one prefix; each check counted exactly its own model's rows.
    assert result.drift["rows"] == result.captured_rows > 0
    assert houses.drift["rows"] == houses.captured_rows > 0
    assert result.drift["drift"] is True and result.drift["execution_arn"]


def test_the_drift_run_rolls_the_component_to_version_2_and_mlops_rollback_brings_version_1_back(shared):
    result, observed = shared
    assert result.second_run["status"] == "SUCCEEDED"
    assert observed["before"].get(2) == ["prod"], (
        f"the drift-triggered run did not promote version 2 (outcome {result.second_run.get('outcome')}): "
        f"nothing to roll back from; serving {observed['before']}")
    assert observed["rollback"]["action"] == "updated (rolling)"
    assert (observed["rollback"]["from_version"], observed["rollback"]["to_version"]) == (2, 1)
    assert observed["after"] == observed["versions"][1]

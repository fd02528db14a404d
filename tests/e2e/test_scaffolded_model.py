"""`mlops new` makes a folder that runs the whole local lifecycle as it is: nothing of the platform is edited."""

import hashlib

import pytest

from pipelines.local.lifecycle import LocalLifecycle
from pipelines.scaffold import scaffold
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
PLATFORM = ("pipelines", "stacks", "lambdas", "cdk.json", "app.py")


def platform_fingerprint() -> str:
    digest = hashlib.sha256()
    for top in PLATFORM:
        root = REPO_ROOT / top
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO_ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory):
    before = platform_fingerprint()
    models = tmp_path_factory.mktemp("models")
    scaffold("demo-prices", "regression", "xgboost", models)
    result = LocalLifecycle("demo-prices", tmp_path_factory.mktemp("work"), rows=800, traffic_requests=100,
                            say=lambda line: None, models_dir=models).run()
    return result, before, platform_fingerprint()


def test_a_scaffolded_regression_model_runs_the_lifecycle_with_no_platform_file_touched(scaffolded):
    result, before, after = scaffolded
    assert before == after
    assert result.runs[0]["status"] == "SUCCEEDED", result.runs[0].get("failed_step")
    assert all(set(p) == {"value"} for p in result.predictions)
    assert result.drift["drift"] is True


def test_the_scaffolded_models_drift_run_rescored_its_champion(scaffolded):
    result, _, _ = scaffolded
    second = result.runs[1]
    assert second["input"]["trigger"] == "drift" and second["waiting_at"] == "WaitForApproval"
    lineage = next(v for v in result.versions if v["version"] == 2)["lineage"]
    assert lineage["champion_value_same_data"] != "none"
    assert float(lineage["challenger_value"]) < float(lineage["champion_value_same_data"])

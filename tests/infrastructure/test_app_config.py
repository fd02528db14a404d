import pytest

from pipelines.spec import SpecError
from stacks.app_builder import build_app
from tests.infrastructure.conftest import new_app


def test_unknown_environment_is_refused_before_any_stack():
    app = new_app(env="qa")
    with pytest.raises(SpecError, match="-c env=qa: no such environment"):
        build_app(app)
    assert not app.node.children


def test_bad_environment_override_names_the_field_and_builds_nothing():
    app = new_app(**{"mlops:environments": {"dev": {
        "account": "111111111111", "region": "us-east-1",
        "overrides": {"deployment": {"min_capacity": 9, "max_capacity": 2}}}}})
    with pytest.raises(SpecError, match=r"churn/model.yaml.*\n.*deployment: .*max_capacity \(2\)"):
        build_app(app)
    assert not app.node.children

"""Under enforced IAM, a grant missing from a construct stops the local lifecycle with AccessDenied (here: the
control plane's validate task, acting for churn, loses s3:GetObject)."""

import pytest

from pipelines.local.iam import without_action
from pipelines.local.lifecycle import LifecycleError, LocalLifecycle

pytestmark = pytest.mark.slow


def _validate_role_loses(action: str):
    def adjust(templates: dict[str, dict]) -> None:
        for template in templates.values():
            for logical, resource in template["Resources"].items():
                if resource["Type"] == "AWS::IAM::Policy" and logical.startswith("PipelineTasksValidateScopedRole"):
                    properties = resource["Properties"]
                    properties["PolicyDocument"] = without_action(properties["PolicyDocument"], action)
    return adjust


def test_validate_without_get_object_on_datasets_fails_run_one_with_access_denied_naming_the_action(tmp_path):
    lifecycle = LocalLifecycle("churn", tmp_path, rows=300, traffic_requests=0, say=lambda line: None,
                               adjust_templates=_validate_role_loses("s3:GetObject"))
    with pytest.raises(LifecycleError) as failure:
        lifecycle.run()
    failed_step = lifecycle.result.runs[0]["failed_step"]
    assert failed_step["state"] == "ValidateData"
    assert "AccessDenied" in failed_step["cause"] and "s3:GetObject" in failed_step["cause"]
    assert "PipelineTasksValidateScopedRole" in failed_step["cause"]  # the session acting for churn
    assert "run 1 ended FAILED" in str(failure.value)

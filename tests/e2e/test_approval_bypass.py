"""An attacker who reads the task token from the execution history and answers it resumes the run, but
cannot deploy: the deploy step re-checks the registry and the audit trail (issue: governance bypass)."""

import json

import pytest

from pipelines import naming
from pipelines.local.lifecycle import LOCAL_ENV, LifecycleError, LocalLifecycle

pytestmark = pytest.mark.slow


class TokenThief(LocalLifecycle):
    """Instead of an approver clicking a link, SendTaskSuccess with the token found in the history."""

    def _decide_as_approver(self, execution_arn: str = "") -> None:
        sfn = self._aws("stepfunctions")
        execution_arn = execution_arn or sfn.list_executions(
            stateMachineArn=self.provisioned.state_machines[naming.state_machine(self.model, LOCAL_ENV)])["executions"][0]["executionArn"]
        history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        scheduled = [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in history
                     if e.get("taskScheduledEventDetails") and "task_token" in e["taskScheduledEventDetails"]["parameters"]]
        token = scheduled[-1]["Payload"]["task_token"]
        sfn.send_task_success(taskToken=token, output=json.dumps({"decision": "approved", "approver": "ml-lead@example.com"}))


@pytest.fixture(scope="module")
def bypass(tmp_path_factory):
    lifecycle = TokenThief("churn", tmp_path_factory.mktemp("bypass"), rows=1500, traffic_requests=0,
                           say=lambda line: None)
    with pytest.raises(LifecycleError, match="run 1 ended FAILED"):
        lifecycle.run()
    return lifecycle


def test_answering_the_token_directly_resumes_the_run_but_the_deploy_step_refuses(bypass):
    failed = bypass.result.runs[0]["failed_step"]
    assert failed["state"] == "DeploySmokeTarget" and "ReleaseRefused" in failed["cause"]
    assert "nothing was deployed" in failed["cause"]


def test_nothing_is_deployed_and_the_registry_and_audit_trail_stay_consistent(bypass):
    history = json.loads(next((bypass.workdir).glob("history-*.json")).read_text())
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if e.get("stateEnteredEventDetails")]
    assert "DeployProd" not in entered and entered[-2:] == ["NotifyFailure", "RunFailed"]
    assert "RestoreAfterFailedRelease" in entered
    assert bypass.endpoints_after == []
    assert bypass.package_statuses_after == ["Rejected"]  # never Approved, never the champion
    assert bypass.approval_status_after == "ABANDONED"  # no decision was made; the request is closed


@pytest.fixture(scope="module", autouse=True)
def _capture_outcome():
    """Read what the emulation holds before the lifecycle closes it (hooked into _close)."""
    original = LocalLifecycle._close

    def close(self):
        if isinstance(self, TokenThief):
            from lambdas.shared.dal import ApprovalStore
            sagemaker = self._aws("sagemaker")
            self.endpoints_after = sagemaker.list_endpoints()["Endpoints"]
            group = naming.model_package_group(self.model, LOCAL_ENV)
            self.package_statuses_after = [p["ModelApprovalStatus"] for p in sagemaker.list_model_packages(
                ModelPackageGroupName=group)["ModelPackageSummaryList"]]
            with self._as_driver():
                records = ApprovalStore(naming.audit_table(LOCAL_ENV)).records(self.model)
            self.approval_status_after = records[0]["status"] if records else None
        original(self)

    LocalLifecycle._close = close
    yield
    LocalLifecycle._close = original

"""Self-approval through approval.principals: the starter is whoever their principal ARN maps to, not only the
ARN's last segment. An approver mapped by an IAM-user pattern (arn:aws:iam::...:user/mlead -> ml-lead@...) who
starts a run as that user must not be able to approve it, by link, through the runs API, or at the deploy gate."""

import pytest

from lambdas.approval import logic
from lambdas.approval.tokens import LinkClaims, LinkError
from lambdas.endpoint.logic import ReleaseRefused, check_release

APPROVERS = ["ml-lead@example.com", "risk@example.com"]
PRINCIPALS = {"ml-lead@example.com": ["arn:aws:iam::123456789012:user/mlead"]}
STARTER = "arn:aws:iam::123456789012:user/mlead"  # ml-lead's own IAM user, mapped to them by the spec
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-dev/3"


def _claims(approver: str) -> LinkClaims:
    return LinkClaims("manual-1", PACKAGE, approver, "approve", 2**31, "n")


def test_an_approver_mapped_by_pattern_cannot_approve_the_run_they_started():
    with pytest.raises(LinkError) as refused:
        logic.check_governance(_claims("ml-lead@example.com"), APPROVERS, STARTER, PRINCIPALS)
    assert refused.value.status == 403 and "Self-approval" in refused.value.title


def test_another_approver_may_approve_it():
    logic.check_governance(_claims("risk@example.com"), APPROVERS, STARTER, PRINCIPALS)


def test_the_starter_gets_no_links_even_when_mapped_by_pattern():
    links = logic.links("https://x/", "manual-1", PACKAGE, APPROVERS, STARTER, 2**31, b"k" * 32, PRINCIPALS)
    assert set(links) == {"risk@example.com"}


def test_the_deploy_gate_refuses_a_release_approved_by_the_pattern_mapped_starter():
    package = {"ModelPackageArn": PACKAGE, "ModelApprovalStatus": "Approved"}
    record = {"status": "APPROVED", "model_package_arn": PACKAGE, "decided_by": "ml-lead@example.com",
              "requested_by": STARTER}
    with pytest.raises(ReleaseRefused, match="started its run"):
        check_release(package, record, APPROVERS, PRINCIPALS)
    assert check_release(package, {**record, "decided_by": "risk@example.com"}, APPROVERS, PRINCIPALS)["approved_by"] \
        == "risk@example.com"


def test_without_patterns_the_session_name_is_the_starter_as_before():
    starter = "arn:aws:sts::123456789012:assumed-role/mlops-dev-churn-approver/ML-Lead@example.com"
    with pytest.raises(LinkError):
        logic.check_governance(_claims("ml-lead@example.com"), APPROVERS, starter)

"""Who decides is a person AWS fixes, not a name they chose (lambdas/shared/identity.py), and no person approves a
run they started, whatever role or session name each step used (lambdas/approval/logic.py, the deploy gate)."""

import pytest

from lambdas.approval import logic
from lambdas.approval.tokens import LinkClaims, LinkError
from lambdas.endpoint.logic import ReleaseRefused, check_release
from lambdas.shared import identity

ROLES = ["mlops-dev-churn-data-scientist", "mlops-dev-churn-approver"]
APPROVERS = ["ml-lead@example.com", "risk@example.com"]
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-dev/3"


def _person(arn: str, verified: bool = False) -> str | None:
    return identity.person(identity.parse(arn), ROLES, verified)


def test_an_iam_user_is_their_user_name():
    assert _person("arn:aws:iam::123456789012:user/team/Pat@example.com") == "pat@example.com"


def test_a_session_of_a_pinned_platform_role_is_its_session_name():
    assert _person("arn:aws:sts::123456789012:assumed-role/mlops-dev-churn-data-scientist/pat@example.com") == \
        "pat@example.com"


def test_a_session_of_any_other_role_is_nobody_whatever_its_name_says():
    assert _person("arn:aws:sts::123456789012:assumed-role/team-ds/ml-lead@example.com") is None


def test_an_identity_center_session_is_a_person_only_when_its_role_is_verified_under_the_reserved_path():
    arn = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_DataScience_0123abcd/pat@example.com"
    assert _person(arn) is None  # a look-alike role anyone could name so
    assert _person(arn, verified=True) == "pat@example.com"


@pytest.mark.parametrize("arn", ["arn:aws:iam::123456789012:root", "arn:aws:sts::123456789012:federated-user/bob",
                                 "not an arn"])
def test_roots_federated_users_and_garbage_are_nobody(arn):
    assert _person(arn) is None


def test_the_refusal_names_the_one_line_fix():
    message = identity.unverified("arn:aws:sts::1:assumed-role/x/y", "arn:aws:iam::1:role/mlops-dev-churn-data-scientist")
    assert "--source-identity" in message and "--role-session-name" in message and "IAM Identity Center" in message


def _claims(approver: str) -> LinkClaims:
    return LinkClaims("manual-1", PACKAGE, approver, "approve", 2**31, "n")


def test_an_approver_cannot_approve_a_run_started_under_another_session_name_by_the_same_person():
    """ml-lead started as an IAM user (person 'mlead'); their approval.principals pattern names that user."""
    principals = {"ml-lead@example.com": ["arn:aws:sts::123456789012:assumed-role/mlops-dev-churn-approver/mlead"]}
    starter = "arn:aws:sts::123456789012:assumed-role/mlops-dev-churn-data-scientist/mlead"
    with pytest.raises(LinkError) as refused:
        logic.check_governance(_claims("ml-lead@example.com"), APPROVERS, starter, principals, starter_person="mlead")
    assert refused.value.title == "Self-approval refused"


def test_the_deciding_person_is_compared_with_the_starting_person_whatever_the_approver_email():
    with pytest.raises(LinkError):
        logic.check_governance(_claims("risk@example.com"), APPROVERS, "arn:aws:iam::1:user/pat", None,
                               starter_person="pat", decider_person="pat")
    logic.check_governance(_claims("risk@example.com"), APPROVERS, "arn:aws:iam::1:user/pat", None,
                           starter_person="pat", decider_person="risk@example.com")


def test_no_link_is_mailed_to_an_approver_who_is_the_starting_person():
    links = logic.links("https://x/", "manual-1", PACKAGE, APPROVERS, "arn:aws:iam::1:user/ml-lead@example.com",
                        2**31, b"k" * 32, None, starter_person="ml-lead@example.com")
    assert set(links) == {"risk@example.com"}


def test_the_deploy_gate_refuses_a_decision_by_the_starting_person():
    package = {"ModelPackageArn": PACKAGE, "ModelApprovalStatus": "Approved"}
    record = {"status": "APPROVED", "model_package_arn": PACKAGE, "decided_by": "risk@example.com",
              "requested_by": "arn:aws:iam::1:user/pat", "requested_by_person": "pat", "decided_by_person": "pat"}
    with pytest.raises(ReleaseRefused, match="started its run"):
        check_release(package, record, APPROVERS)
    assert check_release(package, {**record, "decided_by_person": "risk@example.com"}, APPROVERS)["approved_by"] == \
        "risk@example.com"


def test_a_principal_pattern_that_matches_any_session_name_is_refused_by_the_spec():
    from pipelines.spec import ApprovalSpec

    with pytest.raises(ValueError, match="match any user or session name"):
        ApprovalSpec(approvers=["ml-lead@example.com"],
                     principals={"ml-lead@example.com": ["arn:aws:sts::123456789012:assumed-role/Approvers/*"]})

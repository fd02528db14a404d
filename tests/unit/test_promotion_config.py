"""mlops:delivery (which account plays which role), the spec a stage runs with, and the emulation's evaluation of
the cross-account policies the stacks write."""

from __future__ import annotations

import json

import pytest

from pipelines.local.accounts import caller_of, evaluate, target_input
from pipelines.promote_cli import delivery_stage, find_version
from pipelines.promotion import (IMPORT, OFFER, RECEIVE, applies_to, load_delivery, model_of_source, offer_source,
                                 parse_delivery, promotion_bus, scoped_role_name, stage_spec)
from pipelines.spec import EnvironmentSpec, SpecError, load_spec

ENVIRONMENTS = [EnvironmentSpec(name=name, account=account, region="us-east-1")
                for name, account in (("dev", "111111111111"), ("staging", "222222222222"), ("prod", "333333333333"))]
CONNECTION = "arn:aws:codeconnections:us-east-1:111111111111:connection/00000000-0000-4000-8000-000000000000"


def delivery(**raw):
    return parse_delivery({"mlops:delivery": {"training": "dev", "promotion": ["staging", "prod"], **raw}}, ENVIRONMENTS)


def test_each_stage_receives_from_the_one_before_it():
    roles = delivery()
    assert roles.order == ["dev", "staging", "prod"]
    assert roles.upstream("staging").name == "dev" and roles.upstream("prod").name == "staging"
    assert roles.upstream("dev") is None and roles.downstream("prod") is None
    assert roles.downstream("dev").account == "222222222222"
    assert roles.tooling.name == "dev"


@pytest.mark.parametrize("raw, message", [
    ({"promotion": ["staging", "qa"]}, "names \\['qa'\\], which are not in mlops:environments"),
    ({"promotion": ["dev", "prod"]}, "cannot also receive promotions"),
    ({"promotion": ["prod", "prod"]}, "lists an environment twice"),
    ({"source": {"connection_arn": "arn:aws:iam::1:role/x", "repository": "a/b"}}, "not a CodeConnections ARN"),
    ({"source": {"connection_arn": CONNECTION, "repository": "no-owner"}}, "is not owner/name"),
    ({"source": {"codecommit_repository": "repo", "branch": "a..b"}}, "not a Git branch name"),
])
def test_a_wrong_delivery_names_the_field_and_the_fix(raw, message):
    with pytest.raises(SpecError, match=message):
        delivery(**raw)


def test_a_stage_may_be_in_another_region_and_its_grants_name_each_side_in_its_own():
    elsewhere = [*ENVIRONMENTS[:2], EnvironmentSpec(name="prod", account="333333333333", region="eu-west-1")]
    roles = parse_delivery({"mlops:delivery": {"training": "dev", "promotion": ["staging", "prod"]}}, elsewhere)
    assert roles.upstream("prod").region == "us-east-1" and roles.downstream("staging").region == "eu-west-1"


def test_an_app_of_other_environments_is_built_without_promotion():
    assert applies_to(delivery(), ["local"]) is None
    assert applies_to(delivery(), ["prod"]) is not None
    assert parse_delivery({}, ENVIRONMENTS) is None


def test_the_repository_cdk_json_plays_dev_as_training_and_tooling():
    roles = load_delivery()
    assert roles.spec.training == "dev" and roles.order[-1] == "prod" and roles.tooling.name == "dev"


def test_a_stage_runs_with_its_own_approvers_and_never_trains_on_a_schedule_or_drift():
    spec = load_spec("pipelines/churn", {"approval": {"stages": {"prod": {"approvers": ["Risk@Example.com"]}}}})
    prod = stage_spec(spec, "prod", delivery())
    assert prod.approval.approvers == ["risk@example.com"]
    assert prod.retraining.schedule is None and prod.drift.retrain is False and prod.drift.enabled
    staging = stage_spec(spec, "staging", delivery())
    assert staging.approval.approvers == spec.approval.approvers  # no stage entry: the spec's approvers
    assert stage_spec(spec, "dev", delivery()) is spec


def test_stage_approvers_follow_the_approver_rules():
    with pytest.raises(SpecError, match="not email addresses"):
        load_spec("pipelines/churn", {"approval": {"stages": {"prod": {"approvers": ["risk-team"]}}}})
    with pytest.raises(SpecError, match="not environment names"):
        load_spec("pipelines/churn", {"approval": {"stages": {"Prod!": {"approvers": ["a@example.com"]}}}})


def test_names_shared_across_accounts_fit_their_limits():
    assert max(len(scoped_role_name("b" * 16, purpose)) for purpose in (OFFER, RECEIVE, IMPORT)) <= 64
    assert promotion_bus("prod") == "mlops-prod-promotions"  # one bus an environment, whatever the number of models


def test_an_offer_source_names_one_model_and_nothing_else():
    assert model_of_source(offer_source("churn")) == "churn"
    for source in ("mlops.promotion", "mlops.promotion.", "mlops.promotion.Churn", "mlops.promotion.a.b", "other.churn"):
        assert model_of_source(source) is None


# ------------------------------------------------------------------ the emulation's policy evaluation

IMPORTER = "arn:aws:iam::333333333333:role/mlops-prod-churn-import"
GRANT = {"Statement": [{"Sid": "PromoteChurnToProd", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
                        "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": "arn:aws:s3:::dev-bucket/releases/churn/*",
                        "Condition": {"StringEquals": {"aws:PrincipalArn": IMPORTER}}},
                       {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": "*",
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def context(principal: str) -> tuple[dict, dict]:
    caller = caller_of(principal)
    return {**caller, "aws:SecureTransport": "true"}, caller


def test_a_resource_policy_grants_exactly_the_named_role_of_the_other_account():
    session = "arn:aws:sts::333333333333:assumed-role/mlops-prod-churn-import/run"
    assert evaluate(GRANT, "s3:GetObject", "arn:aws:s3:::dev-bucket/releases/churn/m.tar.gz", *context(session)) == "allow"
    other_role = "arn:aws:sts::333333333333:assumed-role/mlops-prod-churn-deploy/run"
    assert evaluate(GRANT, "s3:GetObject", "arn:aws:s3:::dev-bucket/releases/churn/m.tar.gz", *context(other_role)) is None
    assert evaluate(GRANT, "s3:GetObject", "arn:aws:s3:::dev-bucket/runs/churn/x", *context(session)) is None
    assert evaluate(GRANT, "s3:PutObject", "arn:aws:s3:::dev-bucket/releases/churn/x", *context(session)) is None


def test_an_explicit_deny_wins_and_conditions_must_hold():
    session = "arn:aws:sts::333333333333:assumed-role/mlops-prod-churn-import/run"
    plain, caller = context(session)
    assert evaluate(GRANT, "s3:GetObject", "arn:aws:s3:::dev-bucket/releases/churn/x", {**plain, "aws:SecureTransport": "false"},
                    caller) == "deny"
    by_alias = {"Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:aws:kms:us-east-1:111111111111:key/*",
                               "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/mlops-dev"]},
                                             "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}}]}
    key = "arn:aws:kms:us-east-1:111111111111:key/1234"
    via_s3 = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    assert evaluate(by_alias, "kms:Decrypt", key, {**via_s3, "kms:ResourceAliases": ["alias/mlops-dev"]}) == "allow"
    assert evaluate(by_alias, "kms:Decrypt", key, {**via_s3, "kms:ResourceAliases": ["alias/other"]}) is None
    assert evaluate(by_alias, "kms:Decrypt", key, {"kms:ResourceAliases": ["alias/mlops-dev"]}) is None


def test_input_transformer_quotes_strings_outside_quotes_and_inserts_objects():
    target = {"InputTransformer": {"InputPathsMap": {"detail": "$.detail", "account": "$.account"},
                                   "InputTemplate": '{"offer":<detail>,"offered_by_account":<account>,"note":"from <account>"}'}}
    event = {"account": "111111111111", "detail": {"model": "churn", "version": 3}}
    assert target_input(target, event) == {"offer": {"model": "churn", "version": 3}, "offered_by_account": "111111111111",
                                           "note": "from 111111111111"}


# ------------------------------------------------------------------ mlops promote

class Version:
    def __init__(self, source: str, status: str) -> None:
        self.lineage, self.status = {"source_version": source}, status


def test_promote_finds_the_stage_package_of_a_training_version_or_the_newest_waiting_one():
    versions = [Version("7", "PendingManualApproval"), Version("6", "Approved")]  # newest first
    assert find_version(versions, "6") is versions[1]
    assert find_version(versions, "latest") is versions[0]
    assert find_version(versions, "5") is None
    with pytest.raises(SpecError, match="a version number"):
        find_version(versions, "v6")


def test_promote_refuses_a_stage_that_receives_no_promotions():
    assert delivery_stage(delivery(), "prod") == "staging"
    with pytest.raises(SpecError, match="not a promotion stage; fix: use one of staging, prod"):
        delivery_stage(delivery(), "dev")


def test_an_app_whose_own_environments_lack_the_delivery_stages_is_built_without_promotion_and_says_why():
    from pipelines.promotion import delivery_for_app

    context = {"mlops:delivery": {"training": "dev", "promotion": ["staging", "prod"]}}
    roles, why = delivery_for_app(context, ENVIRONMENTS[:1], ["dev"])
    assert roles is None and "['prod', 'staging']" in why and "without promotion" in why
    roles, why = delivery_for_app(context, ENVIRONMENTS, ["prod"])
    assert roles.upstream("prod").name == "staging" and why is None
    with pytest.raises(SpecError, match="training"):
        delivery_for_app({"mlops:delivery": {"promotion": ["prod"]}}, ENVIRONMENTS, ["dev"])


def test_mlops_promote_to_the_training_environment_is_a_usage_error_naming_the_stages():
    from typer.testing import CliRunner

    from pipelines.cli import EXIT_USAGE, app

    result = CliRunner().invoke(app, ["promote", "churn", "3", "--to", "dev", "--output", "json"])
    assert result.exit_code == EXIT_USAGE
    assert json.loads(result.stdout)["message"] == "--to dev: not a promotion stage; fix: use one of staging, prod"

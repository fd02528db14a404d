"""Promotion across accounts as the stacks set it: exact principals on both sides, a stage that trains nothing."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

from stacks.app_builder import build_app
from tests.infrastructure.conftest import new_app, template_of

DEV, STAGING, PROD = "111111111111", "222222222222", "333333333333"
STAGING_IMPORTER = f"arn:aws:iam::{STAGING}:role/mlops-release-writer/mlops-staging-churn-import"


@pytest.fixture(scope="module")
def prod_app():
    return build_app(new_app(env="prod"))


def resources(template: Template, kind: str) -> dict:
    return template.find_resources(kind)


def statements_with_sid(document: dict, sid: str) -> list[dict]:
    return [s for s in document["Statement"] if s.get("Sid") == sid]


def bucket_statements(template: Template) -> list[dict]:
    return [s for policy in resources(template, "AWS::S3::BucketPolicy").values()
            for s in policy["Properties"]["PolicyDocument"]["Statement"]]


def test_the_training_account_shares_the_models_files_with_the_next_stages_import_role_only(dev_app):
    registry = template_of(dev_app, "mlops-dev-registry")
    (grant,) = statements_with_sid({"Statement": bucket_statements(registry)}, "PromoteChurnToStaging")
    assert grant["Principal"] == {"AWS": f"arn:aws:iam::{STAGING}:root"}
    assert grant["Condition"] == {"StringEquals": {"aws:PrincipalArn": STAGING_IMPORTER}}
    assert grant["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    objects = json.dumps(grant["Resource"])
    assert "/releases/churn/*" in objects and "/models/churn/*" not in objects and "/runs/churn/*" in objects and "datasets" not in objects


def test_the_training_accounts_key_decrypts_for_that_role_only_through_s3(dev_app):
    registry = template_of(dev_app, "mlops-dev-registry")
    key = next(iter(resources(registry, "AWS::KMS::Key").values()))["Properties"]["KeyPolicy"]
    (grant,) = statements_with_sid(key, "PromoteChurnToStaging")
    assert grant["Action"] == "kms:Decrypt" and grant["Principal"] == {"AWS": f"arn:aws:iam::{STAGING}:root"}
    assert grant["Condition"] == {"StringEquals": {"aws:PrincipalArn": STAGING_IMPORTER,
                                                   "kms:ViaService": "s3.us-east-1.amazonaws.com"}}


def test_the_training_registry_lets_that_role_describe_the_models_packages_only(dev_app):
    registry = template_of(dev_app, "mlops-dev-registry")
    groups = {r["Properties"]["ModelPackageGroupName"]: r["Properties"] for r in
              resources(registry, "AWS::SageMaker::ModelPackageGroup").values()}
    (statement,) = groups["churn-dev"]["ModelPackageGroupPolicy"]["Statement"]
    assert statement["Action"] == ["sagemaker:DescribeModelPackage"]
    assert statement["Resource"] == f"arn:aws:sagemaker:us-east-1:{DEV}:model-package/churn-dev/*"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalArn": STAGING_IMPORTER}}


def test_a_successful_run_in_dev_offers_to_stagings_bus_through_a_role_allowed_only_that(dev_app):
    stack = template_of(dev_app, "mlops-dev-churn")
    rules = {k: r["Properties"] for k, r in resources(stack, "AWS::Events::Rule").items()}
    on_success = next(r for k, r in rules.items() if k.startswith("OfferOnRunSucceeded"))
    assert on_success["EventPattern"] == {
        "source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["SUCCEEDED"], "stateMachineArn": [f"arn:aws:states:us-east-1:{DEV}:stateMachine:churn-dev-retraining"]}}
    forward = next(r for k, r in rules.items() if k.startswith("OfferForwardOffers"))
    bus = f"arn:aws:events:us-east-1:{STAGING}:event-bus/mlops-staging-churn-promotions"
    assert forward["Targets"][0]["Arn"] == bus and "DeadLetterConfig" in forward["Targets"][0]
    roles = resources(stack, "AWS::IAM::Role")
    forwarder = next(r for k, r in roles.items() if k.startswith("OfferForwarderRole"))["Properties"]
    assert forwarder["RoleName"] == "mlops-dev-churn-offer"
    policy = next(r for k, r in resources(stack, "AWS::IAM::Policy").items() if k.startswith("OfferForwarderRole"))
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": "events:PutEvents", "Effect": "Allow", "Resource": bus}]


def test_the_offer_function_may_put_only_promotion_events_on_its_own_default_bus(dev_app):
    stack = template_of(dev_app, "mlops-dev-churn")
    policy = next(r for k, r in resources(stack, "AWS::IAM::Policy").items() if k.startswith("OfferOfferFunctionRole"))
    put = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Action"] == "events:PutEvents"]
    assert put == [{"Action": "events:PutEvents", "Effect": "Allow",
                    "Resource": f"arn:aws:events:us-east-1:{DEV}:event-bus/default",
                    "Condition": {"StringEquals": {"events:source": "mlops.promotion"}}}]


def test_a_promotion_stage_trains_nothing_and_starts_with_the_import(prod_app):
    stack = template_of(prod_app, "mlops-prod-churn")
    machine = next(iter(resources(stack, "AWS::StepFunctions::StateMachine").values()))
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    assert '\\"StartAt\\":\\"ImportPackage\\"' in definition
    for training_step in ("PrepareRun", "ValidateData", "Train", "RegisterModelPackage"):
        assert f'\\"{training_step}\\"' not in definition
    assert "WaitForApproval" in definition and "DeployProd" in definition and "SmokeTestStaging" in definition
    handlers = {r["Properties"]["Handler"] for r in resources(stack, "AWS::Lambda::Function").values()}
    assert "lambdas.promotion.handlers.import_package" in handlers
    assert not {h for h in handlers if h.startswith("lambdas.pipeline.") and not h.endswith(".notify")}
    assert not [r for r in resources(stack, "AWS::Events::Rule").values() if "Periodic retraining" in
                r["Properties"].get("Description", "")]


def test_the_stage_runs_its_spec_without_a_retraining_schedule_or_drift_triggered_runs(prod_app):
    stack = template_of(prod_app, "mlops-prod-churn")
    function = next(r for r in resources(stack, "AWS::Lambda::Function").values()
                    if r["Properties"]["Handler"] == "lambdas.promotion.handlers.import_package")
    spec = json.loads(function["Properties"]["Environment"]["Variables"]["MODEL_SPEC"])
    assert spec["drift"]["retrain"] is False and spec["drift"]["enabled"] is True
    assert spec["retraining"]["schedule"] is None


def test_the_promotion_bus_accepts_only_the_previous_stages_forwarder_and_starts_this_stages_run(prod_app):
    stack = template_of(prod_app, "mlops-prod-churn")
    (policy,) = resources(stack, "AWS::Events::EventBusPolicy").values()
    statement = policy["Properties"]["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{STAGING}:root"}
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalArn": f"arn:aws:iam::{STAGING}:role/mlops-staging-churn-offer"}}
    assert statement["Action"] == "events:PutEvents"
    rule = next(r["Properties"] for k, r in resources(stack, "AWS::Events::Rule").items() if k.startswith("PromotionStartPromotion"))
    assert rule["EventPattern"]["account"] == [STAGING] and rule["EventPattern"]["detail"] == {"model": ["churn"], "env": ["staging"]}
    assert rule["Targets"][0]["Arn"] == f"arn:aws:states:us-east-1:{PROD}:stateMachine:churn-prod-retraining"


def test_the_import_role_has_the_name_the_previous_stage_grants_and_reads_only_its_shared_files(prod_app):
    stack = template_of(prod_app, "mlops-prod-churn")
    role = next(r for k, r in resources(stack, "AWS::IAM::Role").items() if k.startswith("PromotionImportFunctionRole"))
    assert role["Properties"]["RoleName"] == "mlops-prod-churn-import"
    assert role["Properties"]["Path"] == "/mlops-release-writer/"  # it writes this stage's releases
    policy = next(r for k, r in resources(stack, "AWS::IAM::Policy").items() if k.startswith("PromotionImportFunctionRole"))
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    upstream = f"mlops-staging-artifacts-{STAGING}-us-east-1"
    reads = next(s for s in statements if s["Action"] == ["s3:GetObject", "s3:GetObjectVersion"])
    assert reads["Resource"] == [f"arn:aws:s3:::{upstream}/releases/churn/*", f"arn:aws:s3:::{upstream}/runs/churn/*"]
    decrypt = next(s for s in statements if s["Action"] == "kms:Decrypt" and STAGING in json.dumps(s["Resource"]))
    assert decrypt["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": ["alias/mlops-staging"]}
    assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    describe = next(s for s in statements if s["Action"] == "sagemaker:DescribeModelPackage")
    assert describe["Resource"] == f"arn:aws:sagemaker:us-east-1:{STAGING}:model-package/churn-staging/*"


def test_the_last_stage_offers_nothing_further(prod_app):
    stack = template_of(prod_app, "mlops-prod-churn")
    assert not [k for k in resources(stack, "AWS::Events::Rule") if k.startswith("Offer")]
    registry = template_of(prod_app, "mlops-prod-registry")
    assert not [s for s in bucket_statements(registry) if str(s.get("Sid", "")).startswith("Promote")]

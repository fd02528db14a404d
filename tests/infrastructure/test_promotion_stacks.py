"""Promotion across accounts as the stacks set it: exact principals on both sides, a stage that trains nothing."""

from __future__ import annotations

import json

import pytest

from pipelines.spec import ModelSpec
from aws_cdk.assertions import Template

from stacks.app_builder import build_app
from tests.infrastructure.conftest import new_app, template_of

DEV, STAGING, PROD = "111111111111", "222222222222", "333333333333"
STAGING_IMPORTER = f"arn:aws:iam::{STAGING}:role/mlops-release-writer/mlops-staging-promotion-import-scoped"
MODEL = "${aws:PrincipalTag/mlops:model}"


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


def named(template: Template, kind: str, prefix: str) -> dict:
    (found,) = [r for k, r in resources(template, kind).items() if k.startswith(prefix)]
    return found


def policy_statements(template: Template, prefix: str) -> list[dict]:
    return literal(named(template, "AWS::IAM::Policy", prefix)["Properties"]["PolicyDocument"]["Statement"])


def literal(value):
    """The template value with the partition (a Ref in ARNs the control plane builds) resolved to aws."""
    if isinstance(value, list):
        return [literal(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"Fn::Join"} and value["Fn::Join"][0] == "":
            return "".join("aws" if part == {"Ref": "AWS::Partition"} else literal(part) for part in value["Fn::Join"][1])
        return {k: literal(v) for k, v in value.items()}
    return value


def test_one_bucket_statement_shares_every_models_files_with_the_next_stages_import_role_acting_for_that_model(dev_app):
    registry = template_of(dev_app, "mlops-dev-registry")
    (grant,) = statements_with_sid({"Statement": bucket_statements(registry)}, "PromoteToStaging")
    assert grant["Principal"] == {"AWS": f"arn:aws:iam::{STAGING}:root"}
    assert grant["Condition"] == {"StringEquals": {"aws:PrincipalArn": STAGING_IMPORTER}}
    assert grant["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    objects = json.dumps(grant["Resource"])
    assert f"/releases/{MODEL}/*" in objects and f"/runs/{MODEL}/*" in objects
    assert "churn" not in objects and "/models/" not in objects and "datasets" not in objects
    assert len([s for s in bucket_statements(registry) if "Promote" in str(s.get("Sid", ""))]) == 1  # whatever the models


def test_the_training_accounts_key_decrypts_for_that_role_only_through_s3_in_one_statement(dev_app):
    registry = template_of(dev_app, "mlops-dev-registry")
    key = next(iter(resources(registry, "AWS::KMS::Key").values()))["Properties"]["KeyPolicy"]
    (grant,) = [s for s in key["Statement"] if "Promote" in s.get("Sid", "")]
    assert grant["Sid"] == "PromoteToStaging"
    assert grant["Action"] == "kms:Decrypt" and grant["Principal"] == {"AWS": f"arn:aws:iam::{STAGING}:root"}
    assert grant["Condition"] == {"StringEquals": {"aws:PrincipalArn": STAGING_IMPORTER,
                                                   "kms:ViaService": "s3.us-east-1.amazonaws.com"}}


def test_each_model_package_group_lets_that_role_describe_its_packages_only_acting_for_its_model(dev_app):
    registry = template_of(dev_app, "mlops-dev-registry")
    groups = {r["Properties"]["ModelPackageGroupName"]: r["Properties"] for r in
              resources(registry, "AWS::SageMaker::ModelPackageGroup").values()}
    assert len(groups) > 1  # every model's group, each with its own model in the condition
    for name, group in groups.items():
        (statement,) = group["ModelPackageGroupPolicy"]["Statement"]
        model = name.removesuffix("-dev")
        assert statement["Action"] == ["sagemaker:DescribeModelPackage"]
        assert statement["Resource"] == f"arn:aws:sagemaker:us-east-1:{DEV}:model-package/{name}/*"
        assert statement["Condition"] == {"StringEquals": {"aws:PrincipalArn": STAGING_IMPORTER,
                                                           "aws:PrincipalTag/mlops:model": model}}


def test_one_rule_offers_after_a_successful_run_of_any_model_of_the_environment(dev_app):
    control = template_of(dev_app, "mlops-dev-control")
    rule = literal(named(control, "AWS::Events::Rule", "PromotionOffersOnRunSucceeded")["Properties"])
    assert rule["EventPattern"] == {
        "source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["SUCCEEDED"], "stateMachineArn": [
            {"wildcard": f"arn:aws:states:us-east-1:{DEV}:stateMachine:*-dev-retraining"}]}}
    function = named(control, "AWS::Lambda::Function", "PromotionOffersOfferHandler")["Properties"]
    assert function["Handler"] == "lambdas.promotion.handlers.offer"
    assert function["FunctionName"] == "mlops-dev-control-promotion-offer"
    assert "DeadLetterConfig" in rule["Targets"][0]


def test_the_offer_role_puts_offers_on_the_next_stages_one_bus_only_with_the_source_naming_its_model(dev_app):
    control = template_of(dev_app, "mlops-dev-control")
    role = named(control, "AWS::IAM::Role", "PromotionOffersOfferScopedRole")["Properties"]
    assert role["RoleName"] == "mlops-dev-promotion-offer-scoped"
    put = [s for s in policy_statements(control, "PromotionOffersOfferScopedRole") if s["Action"] == "events:PutEvents"]
    assert put == [{"Action": "events:PutEvents", "Effect": "Allow",
                    "Resource": f"arn:aws:events:us-east-1:{STAGING}:event-bus/mlops-staging-promotions",
                    "Condition": {"StringEquals": {"events:source": f"mlops.promotion.{MODEL}"}}}]
    own = policy_statements(control, "PromotionOffersOfferHandlerRole")
    assert [s["Action"] for s in own if "sts:AssumeRole" in s["Action"]] == [["sts:AssumeRole", "sts:TagSession"]]
    assert not [s for s in own if any(a.startswith(("events:", "s3:", "sagemaker:", "dynamodb:")) for a in s["Action"])]


def test_no_model_stack_keeps_a_promotion_function_role_bus_or_rule(dev_app, prod_app):
    for app, env in ((dev_app, "dev"), (prod_app, "prod")):
        stack = template_of(app, f"mlops-{env}-churn")
        assert not resources(stack, "AWS::Events::EventBus") and not resources(stack, "AWS::Events::EventBusPolicy")
        assert not resources(stack, "AWS::Events::Rule")
        handlers = {r["Properties"]["Handler"] for r in resources(stack, "AWS::Lambda::Function").values()}
        assert not [h for h in handlers if h.startswith("lambdas.promotion.")]
        assert not [k for k in resources(stack, "AWS::IAM::Role") if "Promotion" in k or "Offer" in k or "Forward" in k]


def test_a_promotion_stage_trains_nothing_and_starts_with_the_control_planes_import(prod_app):
    stack = template_of(prod_app, "mlops-prod-churn")
    machine = next(iter(resources(stack, "AWS::StepFunctions::StateMachine").values()))
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    assert '\\"StartAt\\":\\"ImportPackage\\"' in definition
    assert f"function:mlops-prod-control-promotion-import" in definition
    for training_step in ("PrepareRun", "ValidateData", "Train", "RegisterModelPackage"):
        assert f'\\"{training_step}\\"' not in definition
    assert "WaitForApproval" in definition and "DeployProd" in definition and "SmokeTest" in definition
    handlers = {r["Properties"]["Handler"] for r in resources(stack, "AWS::Lambda::Function").values()}
    assert not {h for h in handlers if h.startswith("lambdas.pipeline.") and not h.endswith(".notify")}
    assert not [r for r in resources(stack, "AWS::Events::Rule").values() if "Periodic retraining" in
                r["Properties"].get("Description", "")]


def test_the_stage_runs_its_spec_without_a_retraining_schedule_or_drift_triggered_runs(prod_app):
    stack = template_of(prod_app, "mlops-prod-churn")
    (record,) = [r for r in resources(stack, "AWS::SSM::Parameter").values()
                 if r["Properties"]["Name"] == "/mlops/prod/_models/churn"]
    # the record the control plane acts from (the names of deployed resources in it are references: placeholders here)
    parts = record["Properties"]["Value"]["Fn::Join"][1]
    written = json.loads("".join(part if isinstance(part, str) else "ref" for part in parts))["spec"]
    spec = ModelSpec.model_validate(written)  # the record keeps the spec as written; a reader fills the defaults
    assert spec.drift.retrain is False and spec.drift.enabled is True
    assert spec.retraining.schedule is None and "schedule" not in written.get("retraining", {})


def test_the_one_promotion_bus_admits_an_offer_only_from_the_previous_stages_offer_role_tagged_with_its_model(prod_app):
    control = template_of(prod_app, "mlops-prod-control")
    (bus,) = resources(control, "AWS::Events::EventBus").values()
    assert bus["Properties"]["Name"] == "mlops-prod-promotions"
    (policy,) = resources(control, "AWS::Events::EventBusPolicy").values()
    statement = policy["Properties"]["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{STAGING}:root"}
    assert statement["Condition"] == {"StringEquals": {
        "aws:PrincipalArn": f"arn:aws:iam::{STAGING}:role/mlops-staging-promotion-offer-scoped",
        "events:source": f"mlops.promotion.{MODEL}"}}
    assert statement["Action"] == "events:PutEvents"
    rule = named(control, "AWS::Events::Rule", "PromotionsStartPromotion")["Properties"]
    assert rule["EventPattern"] == {"source": [{"prefix": "mlops.promotion."}], "detail-type": ["Model Package Offered"],
                                    "account": [STAGING]}
    receive = named(control, "AWS::Lambda::Function", "PromotionsReceiveHandler")["Properties"]
    assert rule["Targets"][0]["Arn"]["Fn::GetAtt"][0].startswith("PromotionsReceiveHandler")
    assert receive["Handler"] == "lambdas.promotion.handlers.receive"


def test_the_receive_role_starts_only_the_machine_of_the_model_it_acts_for(prod_app):
    control = template_of(prod_app, "mlops-prod-control")
    start = [s for s in policy_statements(control, "PromotionsReceiveScopedRole") if s["Action"] == "states:StartExecution"]
    assert [s["Resource"] for s in start] == [f"arn:aws:states:us-east-1:{PROD}:stateMachine:{MODEL}-prod-retraining"]


def test_the_import_role_has_the_name_the_previous_stage_grants_and_reads_only_the_files_of_its_model(prod_app):
    control = template_of(prod_app, "mlops-prod-control")
    role = named(control, "AWS::IAM::Role", "PromotionsImportScopedRole")["Properties"]
    assert role["RoleName"] == "mlops-prod-promotion-import-scoped"
    assert role["Path"] == "/mlops-release-writer/"  # it writes this stage's releases
    statements = policy_statements(control, "PromotionsImportScopedRole")
    upstream = f"mlops-staging-artifacts-{STAGING}-us-east-1"
    reads = next(s for s in statements if s["Action"] == ["s3:GetObject", "s3:GetObjectVersion"])
    assert reads["Resource"] == [f"arn:aws:s3:::{upstream}/releases/{MODEL}/*", f"arn:aws:s3:::{upstream}/runs/{MODEL}/*"]
    decrypt = next(s for s in statements if s["Action"] == "kms:Decrypt" and STAGING in json.dumps(s["Resource"]))
    assert decrypt["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": ["alias/mlops-staging"]}
    assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    describe = next(s for s in statements if s["Action"] == "sagemaker:DescribeModelPackage" and STAGING in s["Resource"])
    assert describe["Resource"] == f"arn:aws:sagemaker:us-east-1:{STAGING}:model-package/{MODEL}-staging/*"


def test_the_last_stage_offers_nothing_further(prod_app):
    control = template_of(prod_app, "mlops-prod-control")
    assert not [k for k in resources(control, "AWS::Events::Rule") if k.startswith("PromotionOffers")]
    registry = template_of(prod_app, "mlops-prod-registry")
    assert not [s for s in bucket_statements(registry) if str(s.get("Sid", "")).startswith("Promote")]

"""The platform deploys itself: the CDK pipeline synthesizes cdk-nag clean, with its stages and approval."""

from __future__ import annotations

import json
import os
import re
import subprocess

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from pipelines.promotion import parse_delivery
from pipelines.spec import EnvironmentSpec, SpecError
from stacks.app_builder import build_app
from stacks.nag import acknowledge_scoped_wildcards
from stacks.pipeline_stack import PIPELINE_STACK, PipelineStack
from stacks.constructs.functions import RUNTIME
from tests.conftest import REPO_ROOT
from tests.infrastructure.conftest import CONTEXT, new_app
from tests.support.validators import synthesized_templates

# The repository's pipeline: every environment's stacks and the pipeline, synthesized with cdk-nag (~15 s).
whole_pipeline = pytest.mark.slow
ENVIRONMENTS = {name: EnvironmentSpec(name=name, account=account, region="us-east-1")
                for name, account in (("dev", "111111111111"), ("staging", "222222222222"), ("prod", "333333333333"))}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The repository's pipeline (cdk.json), synthesized with cdk-nag: synthesis fails on any open finding."""
    app = build_app(cdk.App(outdir=str(tmp_path_factory.mktemp("pipeline")),
                            context={**CONTEXT, "aws:cdk:bundling-stacks": [], "mlops:git_commit": "0123abc",
                                     "pipeline": "true"}))
    assembly = app.synth()
    stack = app.node.find_child(PIPELINE_STACK)
    return {"assembly": assembly, "template": Template.from_stack(stack).to_json(), "stack": stack}


def resources(template: dict, kind: str) -> dict:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def stages(template: dict) -> list[dict]:
    return next(iter(resources(template, "AWS::CodePipeline::Pipeline").values()))["Properties"]["Stages"]


def buildspec(template: dict, logical_prefix: str) -> dict:
    project = next(r for k, r in resources(template, "AWS::CodeBuild::Project").items() if k.startswith(logical_prefix))
    return json.loads(project["Properties"]["Source"]["BuildSpec"])


@whole_pipeline
def test_the_pipeline_deploys_dev_then_staging_then_production_behind_a_manual_approval(pipeline):
    names = [stage["Name"] for stage in stages(pipeline["template"])]
    assert names == ["Source", "Build", "UpdatePipeline", "Assets", "Dev", "Staging", "Prod"]
    prod = stages(pipeline["template"])[-1]["Actions"]
    first = min(prod, key=lambda action: action["RunOrder"])
    assert first["ActionTypeId"]["Category"] == "Approval" and first["ActionTypeId"]["Provider"] == "Manual"
    assert all(a["RunOrder"] > first["RunOrder"] for a in prod if a is not first)  # nothing deploys before it
    for stage in stages(pipeline["template"])[4:6]:
        assert not any(a["ActionTypeId"]["Category"] == "Approval" for a in stage["Actions"])


@whole_pipeline
def test_each_stage_deploys_its_environment_into_its_own_account_then_smoke_tests_the_outputs(pipeline):
    for stage, account in zip(stages(pipeline["template"])[4:], ("111111111111", "222222222222", "333333333333")):
        deploys = [a for a in stage["Actions"] if a["ActionTypeId"]["Provider"] == "CloudFormation"]
        assert {a["Configuration"]["StackName"] for a in deploys} >= {f"mlops-{stage['Name'].lower()}-registry",
                                                                       f"mlops-{stage['Name'].lower()}-churn"}
        assert all(f":iam::{account}:role/cdk-" in json.dumps(a["RoleArn"]) for a in deploys)
        last = max(stage["Actions"], key=lambda action: action["RunOrder"])
        assert last["Name"] == f"SmokeTest{stage['Name']}" and last["ActionTypeId"]["Provider"] == "CodeBuild"
        variables = json.loads(last["Configuration"]["EnvironmentVariables"])
        names = {variable["name"] for variable in variables}
        prefix = f"MLOPS_{stage['Name'].upper()}"
        assert {f"{prefix}_CONTROL_RUNS_API_URL", f"{prefix}_CONTROL_APPROVAL_URL"} <= names  # one of each an env
        assert all(variable["value"].startswith("#{") for variable in variables)  # the deployed stack's outputs


@whole_pipeline
def test_the_smoke_test_expects_iam_auth_on_the_runs_api_and_a_refused_empty_link(pipeline):
    commands = buildspec(pipeline["template"], "PipelineStagingSmokeTestStaging")["phases"]["build"]["commands"]
    runs_api = next(c for c in commands if "MLOPS_STAGING_CONTROL_RUNS_API_URL\"" in c)
    approval = next(c for c in commands if "MLOPS_STAGING_CONTROL_APPROVAL_URL\"" in c)
    assert runs_api.endswith('test "$code" = "403"') and approval.endswith('test "$code" = "400"')


@whole_pipeline
def test_synth_runs_the_projects_tests_then_synthesizes_the_pipeline_app_through_make(pipeline):
    spec = buildspec(pipeline["template"], "PipelineBuildSynth")
    assert spec["phases"]["install"]["commands"] == ["make setup"]
    assert spec["phases"]["build"]["commands"] == ["make test", "make synth SYNTH_ARGS='-c pipeline=true'"]
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(rf"^CDK_OUT\s*\?=\s*{re.escape(spec['artifacts']['base-directory'])}$", makefile, re.M)


@whole_pipeline
def test_every_codebuild_step_runs_on_an_image_with_the_lambda_runtimes_python(pipeline):
    # aws/aws-codebuild-docker-images, ubuntu/standard/8.0/runtimes.yml: python 3.10-3.14 and nodejs 22/24 as
    # runtime versions; standard:7.0's stop at python 3.12, so bundles built there would ship no 3.13 bytecode.
    projects = resources(pipeline["template"], "AWS::CodeBuild::Project").values()
    assert {p["Properties"]["Environment"]["Image"] for p in projects} == {"aws/codebuild/standard:8.0"}
    spec = buildspec(pipeline["template"], "PipelineBuildSynth")
    assert spec["phases"]["install"]["runtime-versions"] == {"python": RUNTIME.name.removeprefix("python"),
                                                             "nodejs": "22"}


@whole_pipeline
def test_the_pipeline_updates_itself_before_it_deploys_anything(pipeline):
    update = next(stage for stage in stages(pipeline["template"]) if stage["Name"] == "UpdatePipeline")
    assert [a["Name"] for a in update["Actions"]] == ["SelfMutate"]
    mutate = buildspec(pipeline["template"], "PipelineUpdatePipelineSelfMutation")
    assert any("deploy" in command and PIPELINE_STACK in command for command in mutate["phases"]["build"]["commands"])


@whole_pipeline
def test_the_source_is_the_configured_connection_and_artifacts_are_encrypted_for_the_target_accounts(pipeline):
    source = stages(pipeline["template"])[0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    delivery = CONTEXT["mlops:delivery"]["source"]
    assert source["Configuration"]["ConnectionArn"] == delivery["connection_arn"]
    assert source["Configuration"]["FullRepositoryId"] == delivery["repository"]
    assert source["Configuration"]["BranchName"] == delivery["branch"]
    keys = resources(pipeline["template"], "AWS::KMS::Key")
    assert keys and all(key["Properties"]["EnableKeyRotation"] for key in keys.values())
    buckets = resources(pipeline["template"], "AWS::S3::Bucket")
    artifacts = next(b for k, b in buckets.items() if k.startswith("PipelineArtifactsBucket"))
    assert artifacts["Properties"]["LoggingConfiguration"]["LogFilePrefix"] == "pipeline-artifacts/"


@whole_pipeline
def test_the_pipeline_lives_in_the_tooling_account(pipeline):
    assert pipeline["stack"].account == "111111111111"
    assert {stack.stack_name for stack in pipeline["assembly"].stacks} == {PIPELINE_STACK}


# ------------------------------------------------------------------ small pipelines: each check in isolation

def small_pipeline(source: dict, stage_stack=None) -> cdk.App:
    """A pipeline whose stages hold one small stack each (stage_stack(scope) adds resources to it)."""
    flags = {k: v for k, v in CONTEXT.items() if not k.startswith("mlops:")}
    app = cdk.App(context={**flags, "aws:cdk:bundling-stacks": []})
    delivery = parse_delivery({"mlops:delivery": {"training": "dev", "promotion": ["prod"], "source": source}},
                              list(ENVIRONMENTS.values()))

    def build(scope, environment, specs):
        stack = cdk.Stack(scope, f"mlops-{environment.name}-registry")
        cdk.CfnWaitConditionHandle(stack, "Placeholder")  # a stack needs a resource
        if stage_stack:
            stage_stack(stack)
        return [stack]

    PipelineStack.for_app(app, delivery=delivery, inputs={n: (e, []) for n, e in ENVIRONMENTS.items()}, build=build)
    acknowledge_scoped_wildcards(app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def test_the_synth_steps_commands_pass_in_a_shell_with_a_bare_path(bundled_assembly_dir):
    """CodeBuild runs the buildspec in a plain shell: no venv, no CDK CLI, no Node 22 on its PATH. The commands, as
    synthesized, must find everything through make. `make test` only collects here (it is the suite running this)."""
    app = small_pipeline({"codecommit_repository": "mlops-platform"})
    spec = buildspec(Template.from_stack(app.node.find_child(PIPELINE_STACK)).to_json(), "PipelineBuildSynth")
    script = "\n".join(spec["phases"]["install"]["commands"] + spec["phases"]["build"]["commands"])
    out = bundled_assembly_dir
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin", "CDK_OUT": str(out),
           "PYTEST_ADDOPTS": "--collect-only"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, f"{script}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert re.search(r"^\d+ tests collected", result.stdout, re.M), result.stdout[-2000:]
    stages = {name: artifact for name, artifact in json.loads((out / "manifest.json").read_text())["artifacts"].items()
              if artifact["type"] == "cdk:cloud-assembly"}
    assert PIPELINE_STACK in synthesized_templates(out)
    assert {name.removeprefix(f"assembly-{PIPELINE_STACK}-") for name in stages} == {"Dev", "Staging", "Prod"}


def test_a_codecommit_repository_can_be_the_source():
    app = small_pipeline({"codecommit_repository": "mlops-platform", "branch": "release"})
    template = Template.from_stack(app.node.find_child(PIPELINE_STACK)).to_json()
    source = stages(template)[0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeCommit"
    assert source["Configuration"]["RepositoryName"] == "mlops-platform"
    assert source["Configuration"]["BranchName"] == "release"
    app.synth()  # cdk-nag clean


def test_an_open_finding_in_a_stage_stack_fails_the_pipelines_synthesis():
    app = small_pipeline({"codecommit_repository": "mlops-platform"},
                         stage_stack=lambda stack: s3.Bucket(stack, "NoLogsNoTls"))
    with pytest.raises(Exception, match=r"(?s)ValidationFailed.*AwsSolutions-S10"):
        app.synth()


def test_the_pipeline_needs_a_source_and_every_stage_synthesized():
    with pytest.raises(SpecError, match="needs mlops:delivery with training, promotion and source"):
        build_app(new_app(pipeline="true", **{"mlops:delivery": {"training": "dev", "promotion": ["prod"]}}))
    with pytest.raises(SpecError, match="were not synthesized; fix: drop -c env"):
        build_app(new_app(pipeline="true", env="dev"))

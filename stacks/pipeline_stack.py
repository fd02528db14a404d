"""The platform deploys itself: a CDK pipeline (aws_cdk.pipelines.CodePipeline) in the tooling account.

Source (a CodeConnections connection to a Git host, or CodeCommit; cdk.json mlops:delivery.source) -> Synth (the
project's tests, then `make synth SYNTH_ARGS='-c pipeline=true'`) -> UpdatePipeline (self-mutation) -> Assets -> one stage per
environment of mlops:delivery in order (training, then each promotion stage), each deploying that environment's
registry and model stacks into its own account and checking their outputs; the last stage (production) waits for a
manual approval first. Cross-account deployments use CDK's bootstrap roles in each target account, which trust the
tooling account (`cdk bootstrap --trust`, docs/deploy.md).
"""

from __future__ import annotations

import re
from typing import Callable

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild, aws_codecommit as codecommit, aws_iam as iam, aws_s3 as s3, pipelines
from constructs import Construct

from pipelines.promotion import CodeCommitSource, Delivery
from pipelines.spec import EnvironmentSpec, ModelSpec, SpecError
from stacks.constructs.functions import runtime_version
from stacks.constructs.storage import AccessLogBucket
from stacks.nag import acknowledge, wildcard_findings

PIPELINE_STACK = "mlops-pipeline"
# Through make, whose PATH holds the project's venv, Node 22 and the CDK CLI (a CodeBuild shell has none of them).
INSTALL_COMMANDS = ["make setup"]
SYNTH_COMMANDS = ["make test", "make synth SYNTH_ARGS='-c pipeline=true'"]
SYNTH_OUTPUT = "cdk.out"  # the Makefile's CDK_OUT
# Ubuntu 24.04 standard:8.0 installs CPython 3.13 (the Lambda runtime's: the bundles ship its bytecode) and Node 22
# as buildspec runtime versions (aws/aws-codebuild-docker-images, ubuntu/standard/8.0/runtimes.yml); standard:7.0
# stops at Python 3.12.
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_8_0
RUNTIME_VERSIONS = {"python": runtime_version(), "nodejs": "22"}
# What a stage's stacks answer when they are up: an unsigned call of the runs API is refused by Lambda's IAM auth
# (403), a link without a token gets the approval page's "malformed link" answer (400).
SMOKE_EXPECTATIONS = {"RUNS_API_URL": 403, "APPROVAL_URL": 400}
# IAM wildcards CDK Pipelines itself writes, reviewed: (construct path, finding) patterns and why each is right.
_PROJECT = r"<[A-Za-z0-9]+>"
_PARTITION = r"(aws|<AWS::Partition>)"
PIPELINE_WILDCARDS = [
    (r".*", rf"^Resource::arn:{_PARTITION}:logs:[a-z0-9-]+:\d{{12}}:log-group:/aws/codebuild/{_PROJECT}:\*$",
     "a CodeBuild project writes its logs to its own log group"),
    (r".*", rf"^Resource::arn:{_PARTITION}:codebuild:[a-z0-9-]+:\d{{12}}:report-group/{_PROJECT}-\*$",
     "a CodeBuild project's test reports go to its own report groups"),
    (r".*", r"^Resource::<PipelineArtifactsBucket[A-Z0-9]+\.Arn>/\*$",
     "objects of the pipeline's own artifact bucket (KMS-encrypted, TLS only)"),
    (r".*/UpdatePipeline/SelfMutation/", r"^Resource::arn:\*:iam::\d{12}:role/\*$",
     "self-mutation assumes CDK's bootstrap roles of the tooling account only: the statement is conditioned on the "
     "iam:ResourceTag/aws-cdk:bootstrap-role tag (deploy, file- and image-publishing) that only bootstrap roles carry"),
    (r".*/Assets/FileRole/", rf"^Resource::(\*|arn:{_PARTITION}:logs:[a-z0-9-]+:\d{{12}}:log-group:/aws/codebuild/\*|"
                               rf"arn:{_PARTITION}:codebuild:[a-z0-9-]+:\d{{12}}:report-group/\*)$",
     "CDK Pipelines shares one asset-publishing role among its asset CodeBuild projects, whose names it generates "
     "per asset (start/stop builds, their logs and reports)"),
    (r".*/UpdatePipeline/SelfMutation/", r"^Resource::\*$",
     "self-mutation runs cdk deploy of the pipeline stack: cloudformation:DescribeStacks and s3:ListBucket, which "
     "CDK's deployment of a stack calls on its own stack and staging bucket"),
]

class PipelineStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, delivery: Delivery,
                 inputs: dict[str, tuple[EnvironmentSpec, list[ModelSpec]]],
                 build: Callable[[Construct, EnvironmentSpec, list[ModelSpec]], list[cdk.Stack]], **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.pipeline = pipelines.CodePipeline(
            self, "Pipeline", pipeline_name="mlops-platform", self_mutation=True, cross_account_keys=True,
            enable_key_rotation=True, publish_assets_in_parallel=False,
            synth=pipelines.CodeBuildStep(
                "Synth", input=self._source(delivery), install_commands=INSTALL_COMMANDS, commands=SYNTH_COMMANDS,
                primary_output_directory=SYNTH_OUTPUT,
                partial_build_spec=codebuild.BuildSpec.from_object(
                    {"phases": {"install": {"runtime-versions": RUNTIME_VERSIONS}}}),
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE,
                                                             compute_type=codebuild.ComputeType.MEDIUM)),
            code_build_defaults=pipelines.CodeBuildOptions(build_environment=codebuild.BuildEnvironment(
                build_image=BUILD_IMAGE)))
        self.stages: dict[str, cdk.Stage] = {}
        order = delivery.order
        for position, env_name in enumerate(order):
            environment, specs = inputs[env_name]
            stage = cdk.Stage(self, _title(env_name), env=cdk.Environment(account=environment.account,
                                                                         region=environment.region))
            stacks = build(stage, environment, specs)
            self.stages[env_name] = stage
            last = position == len(order) - 1 and position > 0  # production: the last of several stages
            smoke = self._smoke_test(env_name, stacks)
            self.pipeline.add_stage(
                stage, post=[smoke] if smoke else [],
                pre=[pipelines.ManualApprovalStep(f"Approve{_title(env_name)}", comment=(
                    f"Deploy the platform to {env_name} ({environment.account}): {order[position - 1]} is deployed "
                    "and its outputs answered the smoke test"))] if last else [])
        self.pipeline.build_pipeline()
        _log_artifact_access(self, self.pipeline)
        _acknowledge_pipeline_findings(self.pipeline)

    @classmethod
    def for_app(cls, app: cdk.App, *, delivery: Delivery | None, inputs, build) -> PipelineStack:
        if delivery is None or delivery.spec.source is None:
            raise SpecError("cdk.json: -c pipeline=true needs mlops:delivery with training, promotion and source; "
                            "fix: see docs/deploy.md")
        missing = [name for name in delivery.order if name not in inputs]
        if missing:
            raise SpecError(f"-c pipeline=true deploys {delivery.order}; {missing} were not synthesized; fix: drop -c env")
        tooling = delivery.tooling
        return cls(app, PIPELINE_STACK, delivery=delivery, inputs=inputs, build=build,
                   env=cdk.Environment(account=tooling.account, region=tooling.region),
                   description="The MLOps platform's own CDK pipeline (stacks/pipeline_stack.py)")

    def _source(self, delivery: Delivery) -> pipelines.CodePipelineSource:
        source = delivery.spec.source
        if isinstance(source, CodeCommitSource):
            repository = codecommit.Repository.from_repository_name(self, "Repository", source.codecommit_repository)
            return pipelines.CodePipelineSource.code_commit(repository, source.branch)
        return pipelines.CodePipelineSource.connection(source.repository, source.branch,
                                                       connection_arn=source.connection_arn, trigger_on_push=True)

    @staticmethod
    def _smoke_test(env_name: str, stacks: list[cdk.Stack]) -> pipelines.ShellStep | None:
        """The control plane's runs API and approval URL, from the stack outputs, answer as deployed stacks do."""
        outputs, commands = {}, []
        for stack in stacks:
            runs_api, approval = getattr(stack, "runs_api", None), stack.node.try_find_child("ApprovalUrl")
            found = {**({"RUNS_API_URL": runs_api.node.find_child("Url")} if runs_api is not None else {}),
                     **({"APPROVAL_URL": approval} if approval is not None else {})}
            prefix = re.sub(r"[^A-Z0-9]", "_", stack.stack_name.upper())
            for name, output in found.items():
                variable = f"{prefix}_{name}"
                outputs[variable] = output
                commands.append(f'code=$(curl -s -o /dev/null -w "%{{http_code}}" "${variable}"); echo "{variable}: $code"; '
                                f'test "$code" = "{SMOKE_EXPECTATIONS[name]}"')
        return pipelines.ShellStep(f"SmokeTest{_title(env_name)}", env_from_cfn_outputs=outputs, commands=commands) \
            if commands else None


def _title(name: str) -> str:
    return "".join(part.title() for part in re.split(r"[^A-Za-z0-9]", name) if part)


def _acknowledge_pipeline_findings(pipeline: pipelines.CodePipeline) -> None:
    """The pipeline's own roles: CDK Pipelines' wildcards are acknowledged only where a reviewed pattern covers them;
    anything else fails synthesis."""
    for node in pipeline.node.find_all():
        if isinstance(node, iam.CfnPolicy):
            document = cdk.Stack.of(node).resolve(node.policy_document)
            for finding in wildcard_findings(document):
                reason = next((why for path, pattern, why in PIPELINE_WILDCARDS
                               if re.match(path, node.node.path + "/") and re.match(pattern, finding)), None)
                if reason:
                    acknowledge(node, {f"AwsSolutions-IAM5[{finding}]": f"{reason}."})


def _log_artifact_access(scope: Construct, pipeline: pipelines.CodePipeline) -> None:
    """Server access logs of CDK Pipelines' artifact bucket, into an access-log bucket of this stack (the bucket is
    made by CDK Pipelines, so its logging is set on the L1 resource and the log delivery allowed explicitly)."""
    artifacts = pipeline.pipeline.artifact_bucket
    logs = AccessLogBucket(scope, "ArtifactAccessLogs").bucket
    artifacts.node.default_child.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
        destination_bucket_name=logs.bucket_name, log_file_prefix="pipeline-artifacts/")
    logs.add_to_resource_policy(iam.PolicyStatement(
        sid="S3ServerAccessLogs", principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")], actions=["s3:PutObject"],
        resources=[logs.arn_for_objects("pipeline-artifacts/*")],
        conditions={"ArnLike": {"aws:SourceArn": artifacts.bucket_arn},
                    "StringEquals": {"aws:SourceAccount": cdk.Stack.of(scope).account}}))

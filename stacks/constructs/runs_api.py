"""The runs API: one function behind a Function URL with AWS_IAM auth, the only way people start runs and
decide approvals from the CLI. Lambda verifies the SigV4 signature and hands the handler the caller's
principal ARN; the function's own role starts executions and answers task tokens.

Clients find the URL in an SSM parameter with a derived name (pipelines.naming.runs_api_parameter): one
GetParameter a policy can scope to that parameter alone, where DescribeStacks would expose every output.
"""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, CfnOutput, Stack, aws_iam as iam, aws_kms as kms, aws_lambda as lambda_, aws_ssm as ssm
from constructs import Construct

from lambdas.shared.dal import TRAINING_LOG_GROUP
from lambdas.shared.identity import IDENTITY_CENTER_PATH
from pipelines import naming
from pipelines.naming import runs_api_parameter
from pipelines.spec import ModelSpec
from stacks.constructs.functions import PlatformFunction


class RunsApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, env_name: str, key: kms.IKey,
                 environment: dict[str, str], audit_table_arn: str, machine_arn: str,
                 package_arns: list[str]) -> None:
        super().__init__(scope, construct_id)
        stack, model = Stack.of(self), spec.name
        person_roles = [naming.data_scientist_role_name(model, env_name), naming.approver_role_name(model, env_name)]
        self.runs = PlatformFunction(self, "RunsFunction", handler="lambdas.runs.handlers.handler", key=key,
                                     environment={**environment, "APPROVER_ROLE_NAME": person_roles[1],
                                                  "PERSON_ROLES": json.dumps(person_roles),
                                                  "DATA_SCIENTIST_ROLE_ARN": stack.format_arn(
                                                      service="iam", region="", resource="role",
                                                      resource_name=person_roles[0])},
                                     description="Runs API: starts runs and records CLI approvals as the signed caller")
        self.function = self.runs.function
        self.url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
        self.parameter = ssm.StringParameter(self, "UrlParameter", parameter_name=runs_api_parameter(spec.name, env_name),
                                             string_value=self.url.url,
                                             description=f"URL of the {spec.name} runs API (AWS_IAM, SigV4 service lambda)")
        self.executions_arn = Stack.of(self).format_arn(
            service="states", resource="execution", arn_format=ArnFormat.COLON_RESOURCE_NAME,
            resource_name=f"{naming.state_machine(spec.name, env_name)}:*")
        self._grant(spec.name, key, audit_table_arn, machine_arn, package_arns)
        # Identity Center's permission-set roles are people only under its reserved path (lambdas.shared.identity):
        # GetRole there, and nowhere else, tells them from a look-alike AWSReservedSSO_ role anyone could create.
        self.runs.role.add_to_policy(iam.PolicyStatement(actions=["iam:GetRole"], resources=[stack.format_arn(
            service="iam", region="", resource="role", resource_name=f"{IDENTITY_CENTER_PATH.strip('/')}/*")]))
        self._grant_serving_read(spec.name, env_name)
        CfnOutput(self, "Url", value=self.url.url, description="Runs API (AWS_IAM): mlops run start / approve / reject")

    def _grant_serving_read(self, model: str, env_name: str) -> None:
        """`mlops models list` marks what serves each stage: endpoint -> config -> model -> package."""
        stack, endpoints = Stack.of(self), [naming.endpoint(model, env_name, stage) for stage in ("staging", "prod")]
        self.runs.role.add_to_policy(iam.PolicyStatement(
            actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
            resources=[stack.format_arn(service="sagemaker", resource=kind, resource_name=name + suffix)
                       for name in endpoints for kind, suffix in (("endpoint", ""), ("endpoint-config", "-*"),
                                                                  ("model", "-*"))]))

    def _grant(self, model: str, key: kms.IKey, audit_table_arn: str, machine_arn: str, package_arns: list[str]) -> None:
        role = self.runs.role
        role.add_to_policy(iam.PolicyStatement(actions=["states:StartExecution", "states:ListExecutions"],
                                               resources=[machine_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["states:DescribeExecution", "states:GetExecutionHistory"],
                                               resources=[self.executions_arn]))
        # What apply_decision needs: the approval record, the task token's key, the answer, the package status.
        role.add_to_policy(iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"], resources=[audit_table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{model}"]}}))
        role.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key.key_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                                               resources=[machine_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:UpdateModelPackage"], resources=package_arns))
        # `mlops run metrics`: the per-epoch lines of this model's training jobs (SageMaker's log group, streams
        # named <job>/algo-<n>-<time>, jobs named <model>-<execution>).
        stack = Stack.of(self)
        log_group = stack.format_arn(service="logs", resource="log-group", arn_format=ArnFormat.COLON_RESOURCE_NAME,
                                     resource_name=f"{TRAINING_LOG_GROUP}")
        role.add_to_policy(iam.PolicyStatement(actions=["logs:DescribeLogStreams"], resources=[f"{log_group}:*"]))
        role.add_to_policy(iam.PolicyStatement(actions=["logs:GetLogEvents"],
                                               resources=[f"{log_group}:log-stream:{model}-*"]))

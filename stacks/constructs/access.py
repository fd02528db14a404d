"""Roles as code: per environment, the customer-managed policies and roles of the people who use the platform,
shared by every model (attribute-based access: AWS IAM user guide, "Define permissions based on attributes with ABAC
authorization", "Passing session tags in AWS STS").

A person's session works on one model: its session tag mlops:model (naming.MODEL_TAG), and every statement that
touches a model's resources names them with `${aws:PrincipalTag/mlops:model}`. The person cannot choose the tag: the
person roles' trust takes it only equal to one of the IAM user's own tags mlops:model, mlops:model-2, mlops:model-3
(naming.PERSON_MODEL_TAGS), which platform engineers set; IAM Identity Center sets it from the user's attributes for
access control. A session without the tag reaches no model's resources.

- DataScientist: call the runs API (start runs, read them), prove the session's model to it, read the model's
  executions, packages, run reports, drift reports and quality reports, and list and read the requests its own endpoints captured (what
  `mlops drift check --capture s3://...` reads as the person). No StartExecution (runs start through the API, which records the signed
  caller), no SendTask* (decisions go through the API's approver check), no GetExecutionHistory (history events
  carry task tokens).
- Approver: call the runs API (decisions: the API maps the caller to an approver of the model's spec) and review the
  model's packages; nothing else that decides.
- PlatformAdmin: what operators need of the model: executions (history, stop), packages, reports, the API.

The approver role is what `approval.principals` defaults to: an IAM user assumes it with their user name as the
session name (the trust condition makes that the only session name they can choose), and the runs API accepts the
session as the approver whose email it is. docs/identity.md explains the model.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack, aws_iam as iam, aws_kms as kms, aws_lambda as lambda_, aws_s3 as s3
from constructs import Construct

from pipelines import naming
from stacks.constructs.control_plane import NOT_IN_MODEL_NAMES, model_arn
from stacks.constructs.experiments import data_scientist_statements
from stacks.nag import acknowledge, wildcard_findings

MODEL = naming.MODEL_VARIABLE


class AccessPolicies(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, runs_api, bucket: s3.IBucket,
                 key: kms.IKey, tracking_server_arn: str | None = None) -> None:
        """tracking_server_arn: the environment's MLflow tracking server, which data scientists use (and only they)."""
        super().__init__(scope, construct_id)
        machine = naming.state_machine(MODEL, env_name)
        machine_arn, group = model_arn(self, "states", f"stateMachine:{machine}"), naming.model_package_group(MODEL, env_name)
        executions_arn = model_arn(self, "states", f"execution:{machine}:*")
        package_arns = [model_arn(self, "sagemaker", f"model-package-group/{group}"),
                        model_arn(self, "sagemaker", f"model-package/{group}/*")]
        use_api = lambda: [*self._invoke(runs_api.function), iam.PolicyStatement(  # noqa: E731 (fresh statements per policy)
            actions=["ssm:GetParameter"], resources=[runs_api.parameter.parameter_arn])]
        review = lambda: [iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=package_arns),  # noqa: E731
                          iam.PolicyStatement(actions=["sagemaker:ListModelPackages", "sagemaker:ListModelPackageGroups"],
                                              resources=["*"])]
        decrypt_via_s3 = lambda: iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key.key_arn], conditions={  # noqa: E731
            "StringEquals": {"kms:ViaService": f"s3.{Stack.of(self).region}.amazonaws.com"}})
        list_runs = lambda: iam.PolicyStatement(actions=["states:ListExecutions", "states:DescribeStateMachine"],  # noqa: E731
                                                resources=[machine_arn])
        # The state machine is encrypted with the registry key: DescribeStateMachine/DescribeExecution return its
        # definition and the execution's data only to callers allowed kms:Decrypt (botocore's sfn model, includedData).
        decrypt_runs = lambda: iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key.key_arn], conditions={  # noqa: E731
            "StringEquals": {"kms:EncryptionContext:aws:states:stateMachineArn": machine_arn}})
        self.data_scientist = self._policy("DataScientist", naming.person_role(env_name, "data-scientist"),
                                           f"Data scientists ({env_name}) of the session's model: start and read runs, "
                                           "read models", [
            *use_api(), self._prove_model(key), *review(), list_runs(), decrypt_via_s3(), decrypt_runs(),
            iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[executions_arn]),
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"runs/{MODEL}/*")]),
            *self._read_captures(env_name, bucket), *self._read_reports(bucket, "drift"),
            *self._read_reports(bucket, "quality"), *self._put_labels(bucket, key),
            *(data_scientist_statements(tracking_server_arn, (bucket, key, env_name)) if tracking_server_arn else [])])
        self.approver = self._policy("Approver", naming.person_role(env_name, "approver"),
                                     f"Approvers ({env_name}): decide through the runs API, review the session's "
                                     "model's packages", [*use_api(), *review()])
        self.platform_admin = self._policy("PlatformAdmin", naming.person_role(env_name, "platform-admin"),
                                           f"Platform operators ({env_name}) of the session's model: runs, history, "
                                           "stop, registry", [
            *use_api(), self._prove_model(key), *review(), list_runs(), decrypt_via_s3(), decrypt_runs(),
            iam.PolicyStatement(actions=["states:DescribeExecution", "states:GetExecutionHistory", "states:StopExecution"],
                                resources=[executions_arn]),
            iam.PolicyStatement(actions=["sagemaker:UpdateModelPackage"], resources=package_arns),
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{p}/{MODEL}/*")
                                                                     for p in ("runs", "models")]),
            *self._read_reports(bucket, "drift"), *self._read_reports(bucket, "quality")])
        self.approver_role = self._person_role("ApproverRole", naming.person_role(env_name, "approver"),
                                               f"Approvers ({env_name}); session name = source identity = IAM user "
                                               "name = approver email; session tag mlops:model from the user's tags")
        self.approver.attach_to_role(self.approver_role)
        self.data_scientist_role = self._person_role(
            "DataScientistRole", naming.person_role(env_name, "data-scientist"),
            f"Data scientists ({env_name}); session name = source identity = IAM user name; session tag "
            "mlops:model from the user's tags")
        self.data_scientist.attach_to_role(self.data_scientist_role)
        for name, policy in (("DataScientist", self.data_scientist), ("Approver", self.approver),
                             ("PlatformAdmin", self.platform_admin)):
            CfnOutput(self, f"{name}PolicyArn", value=policy.managed_policy_arn)
        CfnOutput(self, "ApproverRoleArn", value=self.approver_role.role_arn)
        CfnOutput(self, "DataScientistRoleArn", value=self.data_scientist_role.role_arn)

    def _person_role(self, construct_id: str, name: str, description: str) -> iam.Role:
        """A role whose sessions are a person: IAM users of this account assume it only with their user name as both
        the session name and the source identity (sts:SetSourceIdentity), which no session can change afterwards
        and every role it chains to inherits (IAM User Guide, "Monitor and control actions taken with assumed
        roles"). The runs API takes the session name of these roles as the person (lambdas.shared.identity).
        The session's model tag must equal one of the user's own model tags (one statement each: a tag the user
        lacks leaves its statement unresolved, matching nothing), and no other tag may be passed."""
        pinned = {"StringEquals": {"sts:RoleSessionName": "${aws:username}", "sts:SourceIdentity": "${aws:username}"}}
        role = iam.Role(self, construct_id, role_name=name, max_session_duration=Duration.hours(1), description=description,
                        assumed_by=iam.AccountRootPrincipal().with_conditions(pinned))
        role.assume_role_policy.add_statements(iam.PolicyStatement(
            actions=["sts:SetSourceIdentity"], principals=[iam.AccountRootPrincipal()], conditions=pinned))
        for user_tag in naming.PERSON_MODEL_TAGS:
            role.assume_role_policy.add_statements(iam.PolicyStatement(
                actions=["sts:TagSession"], principals=[iam.AccountRootPrincipal()], conditions={
                    "StringEquals": {f"aws:RequestTag/{naming.MODEL_TAG}": "${aws:PrincipalTag/" + user_tag + "}"},
                    "StringNotLike": {f"aws:RequestTag/{naming.MODEL_TAG}": NOT_IN_MODEL_NAMES},
                    "ForAllValues:StringEquals": {"aws:TagKeys": [naming.MODEL_TAG]}}))
        return role

    @staticmethod
    def _read_captures(env_name: str, bucket: s3.IBucket) -> list[iam.PolicyStatement]:
        """The session's model's captured requests, of its staging and production endpoints only (the prefixes the
        endpoints write: data-capture/<model>-<env>-<stage>/AllTraffic/); no other model's, no other prefix."""
        prefixes = [f"data-capture/{naming.endpoint(MODEL, env_name, stage)}/" for stage in ("staging", "prod")]
        return [iam.PolicyStatement(actions=["s3:GetObject"],
                                    resources=[bucket.arn_for_objects(f"{p}AllTraffic/*") for p in prefixes]),
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn], conditions={
                    "StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}})]

    @staticmethod
    def _read_reports(bucket: s3.IBucket, family: str) -> list[iam.PolicyStatement]:
        """The checks a scheduled hook recorded for the session's model (<family>/<model>/<stamp>/): drift, what `mlops
        fleet` shows as the model's drift; quality, what `mlops quality` and the fleet's quality column read."""
        prefix = f"{family}/{MODEL}/"
        return [iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{prefix}*")]),
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                                    conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}})]

    @staticmethod
    def _put_labels(bucket: s3.IBucket, key: kms.IKey) -> list[iam.PolicyStatement]:
        """`mlops labels put`: the session's model's ground truth (ground-truth/<model>/, lambdas/quality/labels.py),
        written only, under the bucket's key through S3."""
        return [iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"ground-truth/{MODEL}/*")]),
                iam.PolicyStatement(actions=["kms:GenerateDataKey"], resources=[key.key_arn], conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{Stack.of(bucket).region}.amazonaws.com"}})]

    @staticmethod
    def _prove_model(key: kms.IKey) -> iam.PolicyStatement:
        """The runs API cannot see session tags (a Function URL's requestContext carries none): the caller proves
        theirs by encrypting under the environment's key with the model and their own user id in the encryption
        context, which KMS lets only a session tagged with that model do (lambdas/runs/proof.py)."""
        return iam.PolicyStatement(actions=["kms:Encrypt"], resources=[key.key_arn], conditions={"StringEquals": {
            "kms:EncryptionContext:purpose": naming.RUNS_API_PROOF, "kms:EncryptionContext:model": MODEL,
            "kms:EncryptionContext:caller": "${aws:userid}"}})

    def _policy(self, construct_id: str, name: str, description: str, statements) -> iam.ManagedPolicy:
        policy = iam.ManagedPolicy(self, construct_id, managed_policy_name=name, description=description,
                                   statements=statements)
        _acknowledge_reviewed_wildcards(policy)
        return policy

    @staticmethod
    def _invoke(function: lambda_.IFunction) -> list[iam.PolicyStatement]:
        """Calling the AWS_IAM Function URL. Since October 2025 Lambda requires both lambda:InvokeFunctionUrl and
        lambda:InvokeFunction for new function URLs (Lambda developer guide, "Control access to Lambda function
        URLs"; CDK's grant_invoke_url emits the same pair). InvokeFunction is only through the URL
        (lambda:InvokedViaFunctionUrl): a direct Invoke could carry a forged requestContext.authorizer.iam.userArn,
        i.e. start runs or decide approvals as somebody else."""
        return [iam.PolicyStatement(actions=["lambda:InvokeFunctionUrl"], resources=[function.function_arn],
                                    conditions={"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}),
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function.function_arn],
                                    conditions={"Bool": {"lambda:InvokedViaFunctionUrl": "true"}})]


def _acknowledge_reviewed_wildcards(policy: iam.ManagedPolicy) -> None:
    """stacks.nag reviews the wildcards of inline policies app-wide; managed policies go through the same
    reviewed patterns here. A wildcard no pattern covers stays a finding and fails synthesis."""
    cfn = policy.node.default_child
    document = Stack.of(policy).resolve(cfn.policy_document)
    for finding, reason in wildcard_findings(document).items():
        if reason:
            acknowledge(cfn, {f"AwsSolutions-IAM5[{finding}]": f"{reason}."})

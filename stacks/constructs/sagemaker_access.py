"""What every SageMaker container role needs, whatever it runs: its image, its log family, its metrics."""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Stack, aws_iam as iam
from constructs import Construct

from pipelines import naming


def grant_container_basics(role: iam.Role, image_uri: str, log_family: str) -> None:
    """Pull image_uri (a DLC or our ECR image), write /aws/sagemaker/<log_family>* logs and SageMaker metrics."""
    stack = Stack.of(role)
    registry_account, repository = image_uri.split(".", 1)[0], image_uri.split("/", 1)[1].split(":")[0]
    role.add_to_policy(iam.PolicyStatement(
        actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
        resources=[f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{registry_account}:repository/{repository}"]))
    role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
    role.add_to_policy(iam.PolicyStatement(
        actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
        resources=[stack.format_arn(service="logs", resource="log-group", resource_name=f"/aws/sagemaker/{log_family}*",
                                    arn_format=ArnFormat.COLON_RESOURCE_NAME)]))
    role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"],
                                           conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}))


class ModelExecutionRole(Construct):
    """The model's one SageMaker execution role: its training jobs and its endpoints assume it (stacks/constructs/
    training.py and endpoints.py add what each needs). Named, so the control plane's deploy task can pass it for the
    session's model only."""

    def __init__(self, scope: Construct, construct_id: str, *, model: str, env_name: str) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(self, "Role", role_name=naming.sagemaker_role_name(model, env_name),
                             assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                             description=f"SageMaker training jobs and endpoints of {model} ({env_name})")


def grant_key_through_s3(role: iam.Role, key_arn: str) -> None:
    """The environment's key as S3 uses it for the role's own objects (kms:ViaService): what a job or endpoint reads
    and writes is what its S3 grants name. Never a direct Encrypt: the role runs the model owner's code, and a direct
    Encrypt under an encryption context of its choosing could forge what the key vouches for (the runs API's caller
    proof, lambdas/shared/model_proof.py). Volume encryption is SageMaker's, through grants its callers create."""
    stack = Stack.of(role)
    role.add_to_policy(iam.PolicyStatement(
        actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}}))

"""What every SageMaker container role needs, whatever it runs: its image, its log family, its metrics."""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Stack, aws_iam as iam


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

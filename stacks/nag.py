"""cdk-nag 3 findings are acknowledged through CDK's validation framework; every one carries a reason.

IAM wildcards are not acknowledged one by one in constructs: `acknowledge_scoped_wildcards` reads
every IAM policy of the app, finds the wildcards exactly as cdk-nag's IAM5 rule does, and
acknowledges only those matching the reviewed patterns below. Anything else still fails synthesis.
"""

from __future__ import annotations

import json
import re

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import IConstruct

# Actions with no resource-level permissions: '*' is the only possible resource.
RESOURCE_STAR_ACTIONS = {
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions",
    "xray:GetSamplingRules": "X-Ray has no resource-level permissions",
    "xray:GetSamplingTargets": "X-Ray has no resource-level permissions",
    **{f"logs:{action}": "Step Functions log delivery (vended logs) supports only '*' resources"
       for action in ("CreateLogDelivery", "DeleteLogDelivery", "DescribeLogGroups", "DescribeResourcePolicies",
                      "GetLogDelivery", "ListLogDeliveries", "PutResourcePolicy", "UpdateLogDelivery")},
    "ecr:GetAuthorizationToken": "ECR authorization tokens are account-wide by design",
    "pricing:GetProducts": "the Price List API has no resource-level permissions (public prices)",
    "sagemaker:ListModelPackages": "SageMaker List* calls have no resource-level permissions (API permissions reference)",
    "sagemaker:ListModelPackageGroups": "SageMaker List* calls have no resource-level permissions (API permissions "
                                        "reference)",
    "sagemaker:ListTrainingJobsForHyperParameterTuningJob": "SageMaker List* calls have no resource-level permissions "
                                                            "(API permissions reference)",
    "sagemaker-mlflow:AccessUI": "MLflow UI access has no resource-level permissions; the UI opens only through a "
                                 "presigned URL, which is granted per tracking server",
    "sagemaker:ListTags": "read-only tag listing CDK's transform-job task grants on '*' (the job name is decided at run time)",
    "cloudwatch:PutMetricData": "PutMetricData has no resource ARN; statements carry a namespace condition",
    "ec2:CreateNetworkInterface": "SageMaker VPC mode manages ENIs it names at run time",
    "ec2:CreateNetworkInterfacePermission": "SageMaker VPC mode manages ENIs it names at run time",
    "ec2:DeleteNetworkInterface": "SageMaker VPC mode manages ENIs it names at run time",
    "ec2:DeleteNetworkInterfacePermission": "SageMaker VPC mode manages ENIs it names at run time",
    "ec2:DescribeNetworkInterfaces": "Describe calls have no resource-level permissions",
    "ec2:DescribeVpcs": "Describe calls have no resource-level permissions",
    "ec2:DescribeDhcpOptions": "Describe calls have no resource-level permissions",
    "ec2:DescribeSubnets": "Describe calls have no resource-level permissions",
    "ec2:DescribeSecurityGroups": "Describe calls have no resource-level permissions",
}
SCOPED_WILDCARDS = [
    (r"^Action::kms:(ReEncrypt|GenerateDataKey)\*$",
     "CDK's KMS grant: data keys and re-encryption under this environment's own key, never another key"),
    (r"^Action::s3:(GetObject|GetBucket|List|DeleteObject|Abort|PutObjectLegalHold|PutObjectRetention|PutObjectTagging|PutObjectVersionTagging)\*$",
     "CDK's S3 grant action families, applied only to the prefixes listed in the same statement"),
    (r"^Resource::.*/(runs|models|releases|checkpoints|data-capture|drift|quality|datasets|ground-truth)/[a-z0-9-]*/?\*$",
     "object keys under this model's own prefixes of the artifact bucket"),
    (r"^Resource::.*:iam::[0-9]+:role/aws-reserved/sso\.amazonaws\.com/\*$",
     "iam:GetRole on IAM Identity Center's reserved role path only: tells its permission-set roles from look-alikes"),
    (r"^Resource::.*/mlflow/[a-z0-9-]+/\*$", "the environment's MLflow artifact store prefix, for its tracking server"),
    (r"^Resource::.*/datasets/\*$", "the data validation step reads the datasets prefix only"),
    (r"^Resource::.*/runs/[a-z0-9-]*/\*/evaluation\.json$",
     "the evaluation reports of this model's runs only (the quality check's baseline), not their data snapshots"),
    (r"^Resource::.*/data-capture/[a-z0-9-]+/AllTraffic/\*$", "captured requests of this model's own endpoint"),
    (r"^Resource::.*/data-capture/\*-[a-z0-9-]+-(prod|staging)/AllTraffic/\*$",
     "the capture splitter files each shared-hosted model's lines of the shared endpoint's capture under that "
     "model's own prefix (PutObject only); it runs no model's code"),
    (r"^Resource::.*/batch/[a-z0-9-]+/(input|output)/\*$", "this model's batch-transform input and output prefixes"),
    (r"^Resource::.*:sagemaker:.*:transform-job/\*$",
     "CDK's transform-job task: the job name is formed from the execution name at run time"),
    (r"^Resource::arn:(<AWS::Partition>|aws):s3:::cdk-[a-z0-9]+-assets-.*/\*$",
     "the CDK asset bucket objects holding this model's training code"),
    (r"^Resource::.*:log-group:/aws/sagemaker/(TrainingJobs|Endpoints)\*$", "SageMaker writes job and endpoint logs to its own log group families"),
    (r"^Resource::.*:log-group:/aws/sagemaker/TrainingJobs:(\*|log-stream:[a-z0-9-]+-\*)$",
     "the runs API lists SageMaker's training-job log streams and reads those of this model's own jobs"),
    (r"^Resource::.*:application-autoscaling:.*:scalable-target/\*$",
     "scalable-target ids are generated at registration; the statement only registers this endpoint's target and policy"),
    (r"^Resource::.*:role/aws-service-role/sagemaker\.application-autoscaling\.amazonaws\.com/\*$",
     "the service-linked role Application Auto Scaling creates for SageMaker, limited by an iam:AWSServiceName condition"),
    (r"^Resource::<[A-Za-z0-9]+\.Arn>:\*$", "log streams inside this function's own log group"),
    (r"^Resource::.*:(model-package/[a-z0-9-]+/\*|training-job/[a-z0-9-]+-\*|hyper-parameter-tuning-job/[a-z0-9-]+-\*|endpoint/[a-z0-9-]+-\*|endpoint-config/[a-z0-9-]+-\*|inference-component/[a-z0-9-]+-\*|model/[a-z0-9-]+-\*)$",
     "SageMaker resources named after this model only"),
    (r"^Resource::.*:execution:[a-z0-9-]+-retraining:\*$", "executions of this model's own state machine"),
    (r"^Resource::.*:alarm:\*-[a-z0-9-]+-\*$",
     "the shared endpoint's role reads (DescribeAlarms only) the rollback alarms of the components it hosts"),
    (r"^Resource::arn:(<AWS::Partition>|aws):lambda:[a-z0-9-]+:\d{12}:function:mlops-[a-z0-9-]+-\*$",
     "the environment's schedules start its model stacks' functions, which CloudFormation names after their stack "
     "(mlops-<env>-<model>-...)"),
    (r"^Resource::arn:(<AWS::Partition>|aws):lambda:[a-z0-9-]+:\d{12}:function:mlops-[a-z0-9-]+-control-[a-z0-9-]+:\*$",
     "the versions and aliases of one control-plane function a model's state machine invokes by name (CDK's "
     "LambdaInvoke grants the function and its qualifiers)"),
    (r"^Resource::arn:(<AWS::Partition>|aws):states:[a-z0-9-]+:\d{12}:stateMachine:\*-[a-z0-9-]+-retraining$",
     "the environment's schedules start its models' retraining state machines"),
    (r"^Resource::arn:(<AWS::Partition>|aws):sqs:[a-z0-9-]+:\d{12}:\*-[a-z0-9-]+-async-failures$",
     "undelivered schedules go to their model's failure queue"),
]


def acknowledge(scope: IConstruct, reasons: dict[str, str]) -> None:
    """reasons maps a rule id (optionally with its finding, 'AwsSolutions-IAM5[Action::s3:*]') to why it is fine."""
    for rule_id, reason in reasons.items():
        if len(reason.strip()) < 20:
            raise ValueError(f"cdk-nag acknowledgment of {rule_id} needs a real reason, got {reason!r}")
        cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def flatten(reference) -> str:
    """cdk-nag's flattenCfnReference, so finding ids match the rule's."""
    if reference is None:
        return ""
    if isinstance(reference, str):
        return reference.replace("${", "<").replace("}", ">")
    if isinstance(reference, dict):
        if "Fn::Join" in reference:
            delimiter, items = reference["Fn::Join"]
            return delimiter.join(flatten(item) for item in items)
        if "Fn::Sub" in reference:
            return flatten(reference["Fn::Sub"])
        if "Fn::GetAtt" in reference:
            resource, attribute = reference["Fn::GetAtt"]
            return f"<{flatten(resource)}.{flatten(attribute)}>"
        if "Fn::ImportValue" in reference:
            return flatten(reference["Fn::ImportValue"])
        if "Ref" in reference:
            return f"<{flatten(reference['Ref'])}>"
    return json.dumps(reference, separators=(",", ":"))


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def wildcard_findings(document: dict) -> dict[str, str | None]:
    """IAM5 finding -> reason (None when no reviewed pattern covers it)."""
    findings: dict[str, str | None] = {}
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        actions = _as_list(statement.get("Action", []))
        for action in actions:
            if "*" in action:
                findings[f"Action::{action}"] = _reason(f"Action::{action}")
        for resource in map(flatten, _as_list(statement.get("Resource", []))):
            if resource == "*":
                reasons = [RESOURCE_STAR_ACTIONS.get(a) for a in actions]
                findings.setdefault("Resource::*", None)
                if all(reasons) and findings["Resource::*"] is not False:
                    findings["Resource::*"] = "; ".join(sorted(set(reasons)))
                else:
                    findings["Resource::*"] = False  # one unreviewed action spoils it for the whole policy
            elif "*" in resource:
                findings[f"Resource::{resource}"] = _reason(f"Resource::{resource}")
    return {k: (v or None) for k, v in findings.items()}


# A control-plane grant names the model by the session's tag (stacks/constructs/control_plane.py): reviewed as the same
# grant written for one model.
_SESSION_MODEL = "<aws:PrincipalTag/mlops:model>"


def _reason(finding: str) -> str | None:
    scoped = _SESSION_MODEL in finding
    finding = finding.replace(_SESSION_MODEL, "session-model")
    reason = next((reason for pattern, reason in SCOPED_WILDCARDS if re.match(pattern, finding)), None)
    return f"{reason} (the model is the session's mlops:model tag)" if reason and scoped else reason


def acknowledge_scoped_wildcards(app: cdk.App) -> None:
    for node in app.node.find_all():
        if isinstance(node, iam.CfnPolicy):
            document = cdk.Stack.of(node).resolve(node.policy_document)
            for finding, reason in wildcard_findings(document).items():
                if reason:
                    acknowledge(node, {f"AwsSolutions-IAM5[{finding}]": f"{reason}."})

"""Promotion across accounts, pull-based (docs/promotion.md): the offering stage grants, the receiving stage pulls.
Per environment, in the control plane, whatever the number of models (issue 26):

- `PromotionSourceGrants` (offering stage's registry stack): one statement in the bucket policy and one in the key
  policy let the next stage's import role (aws:PrincipalArn, no wildcard), acting for model M (its session tag),
  read M's artifacts and run files (`${aws:PrincipalTag/mlops:model}` in the Resource) and decrypt them through S3;
  each model package group's policy lets it describe that group's packages when its session is tagged with the
  group's model.
- `PromotionOffers` (offering stage's control plane): one rule on the default bus matches a successful run of any of
  the environment's retraining machines; the offer function acts for that machine's model and puts the offer on
  the next stage's promotion bus itself, its source naming the model.
- `PromotionReceiver` (receiving stage's control plane): the one promotion bus, whose policy admits an offer of model
  M only from the previous stage's offer role tagged M; the rule that hands every offer to the receive function,
  which starts M's state machine acting for M; and the import function, the first step of M's promotion run.

Cross-account principals are the other account's root with an aws:PrincipalArn condition naming the exact role:
a policy naming a role ARN directly is refused while that role does not exist yet (the stages deploy in order),
and would silently stop matching once the role is re-created (IAM keeps the old role's unique id).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack, aws_events as events, aws_events_targets as targets, aws_iam as iam
from aws_cdk import aws_kms as kms, aws_lambda as lambda_, aws_s3 as s3, aws_sagemaker as sagemaker
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from pipelines import naming
from pipelines import promotion as names
from pipelines.spec import EnvironmentSpec, ModelSpec
from stacks.constructs.control_plane import ModelScopedFunction, control_function_arn, model_arn
from stacks.constructs.retraining import lambda_step
from stacks.nag import acknowledge

MODEL = naming.MODEL_VARIABLE
EXECUTION_STATUS = "Step Functions Execution Status Change"


def _exactly(role_arn: str) -> dict:
    return {"StringEquals": {"aws:PrincipalArn": role_arn}}


def _title(*parts: str) -> str:
    return "".join(part.replace("-", " ").title().replace(" ", "") for part in parts)


class PromotionSourceGrants(Construct):
    """The offering stage's resource policies for the next stage's import role: one statement per policy, whatever the
    number of models (a bucket policy holds at most 20 KB)."""

    SID = "PromoteTo{}"

    def __init__(self, scope: Construct, construct_id: str, *, specs: list[ModelSpec], environment: EnvironmentSpec,
                 downstream: EnvironmentSpec, bucket: s3.IBucket, key: kms.IKey,
                 groups: dict[str, sagemaker.CfnModelPackageGroup]) -> None:
        super().__init__(scope, construct_id)
        region, importer = Stack.of(self).region, names.import_role_arn(downstream)
        sid, account = self.SID.format(_title(downstream.name)), iam.AccountPrincipal(downstream.account)
        # S3 bucket policies take policy variables in Resource (Amazon S3 user guide, "Bucket policy examples":
        # ${aws:PrincipalTag/...}): the session tagged M reads releases/M/ and runs/M/ only.
        bucket.add_to_resource_policy(iam.PolicyStatement(
            sid=sid, principals=[account], actions=["s3:GetObject", "s3:GetObjectVersion"], conditions=_exactly(importer),
            resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in names.promoted_prefixes(MODEL)]))
        # The key decrypts only what S3 serves that session (the objects above).
        key.add_to_resource_policy(iam.PolicyStatement(
            sid=sid, principals=[account], actions=["kms:Decrypt"], resources=["*"],
            conditions={"StringEquals": {"aws:PrincipalArn": importer, "kms:ViaService": f"s3.{region}.amazonaws.com"}}))
        # A group's policy names its own packages literally and the model as a condition on the session's tag (a global
        # key, valid in any resource policy): whether SageMaker substitutes policy variables is not documented.
        for spec in specs:
            groups[spec.name].model_package_group_policy = {"Version": "2012-10-17", "Statement": [{
                "Sid": sid, "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{downstream.account}:root"},
                "Action": ["sagemaker:DescribeModelPackage"],
                "Condition": {"StringEquals": {"aws:PrincipalArn": importer, f"aws:PrincipalTag/{naming.MODEL_TAG}": spec.name}},
                "Resource": f"{names.package_arn_prefix(spec.name, environment)}*"}]}


def _packages(function: ModelScopedFunction, env_name: str) -> list[str]:
    group = naming.model_package_group(MODEL, env_name)
    return [model_arn(function, "sagemaker", f"model-package-group/{group}"),
            model_arn(function, "sagemaker", f"model-package/{group}/*")]


def _objects(env_name: str, stack: Stack, prefix: str) -> str:
    return f"arn:{stack.partition}:s3:::{naming.artifact_bucket(env_name, stack.account, stack.region)}/{prefix}"


def _audit_rows(function: ModelScopedFunction, env_name: str, actions: list[str]) -> None:
    function.grant_for_model(actions, model_arn(function, "dynamodb", f"table/{naming.audit_table(env_name)}"),
                             conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{MODEL}"]}})
    function.grant_key_through("dynamodb")


class PromotionOffers(Construct):
    """After a successful run of any model of the environment: the newest Approved package, if production serves it,
    offered to the next stage's promotion bus."""

    def __init__(self, scope: Construct, construct_id: str, *, environment: EnvironmentSpec,
                 downstream: EnvironmentSpec, key: kms.IKey, failures) -> None:
        super().__init__(scope, construct_id)
        env_name, stack = environment.name, Stack.of(self)
        bus = names.promotion_bus_arn(downstream)
        self.offers = ModelScopedFunction(
            self, "Offer", handler="lambdas.promotion.handlers.offer", key=key, env_name=env_name,
            timeout=Duration.minutes(15), function_name=naming.control_function(env_name, names.OFFER),
            environment={"DOWNSTREAM_ENV": downstream.name, "PROMOTION_ENV": env_name, "DOWNSTREAM_BUS_ARN": bus},
            description=f"Offers the package a model's production serves to {downstream.name}, its sha256 recorded")
        self.function = self.offers.function
        self.offers.scoped_role.node.default_child.role_name = names.scoped_role_name(env_name, names.OFFER)
        self._grant(env_name, stack, bus)
        failures.keep_failures_of(self.function)
        machines = model_arn(self, "states", f"stateMachine:*{naming.state_machine('', env_name)}")
        events.Rule(self, "OnRunSucceeded", description=f"{env_name}: offer what a successful run deployed",
                    event_pattern=events.EventPattern(source=["aws.states"], detail_type=[EXECUTION_STATUS], detail={
                        "status": ["SUCCEEDED"], "stateMachineArn": events.Match.wildcard(machines)}),
                    targets=[targets.LambdaFunction(self.function, retry_attempts=2, dead_letter_queue=failures.queue)])

    def _grant(self, env_name: str, stack: Stack, bus: str) -> None:
        grant = self.offers.grant_for_model
        grant(["sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"], *_packages(self.offers, env_name))
        # No ListModelPackages: it authorizes against "*" only and would list every model's packages; the offer
        # describes the served package's later versions instead (lambdas/promotion/dal.py versions_after).
        self.offers.grant_read_served()
        grant(["s3:GetObject", "s3:GetObjectVersion"], _objects(env_name, stack, f"{naming.RELEASES}/{MODEL}/*"))
        self.offers.grant_key_through("s3", ["kms:Decrypt"])
        _audit_rows(self.offers, env_name, ["dynamodb:GetItem"])  # the approval record: the digest approved
        # An offer names its model in its source; the next stage's bus policy checks the same (docs/promotion.md).
        grant(["events:PutEvents"], bus, conditions={"StringEquals": {"events:source": names.offer_source(MODEL)}})


class PromotionReceiver(Construct):
    """The receiving side: the bus, the rule, the receive function that starts the offered model's run, and the import
    function whose step heads every model's state machine in this stage."""

    def __init__(self, scope: Construct, construct_id: str, *, environment: EnvironmentSpec,
                 upstream: EnvironmentSpec, key: kms.IKey, failures) -> None:
        super().__init__(scope, construct_id)
        env_name = environment.name
        self.bus = events.EventBus(self, "Bus", event_bus_name=names.promotion_bus(env_name),
                                   description=f"Offers from {upstream.name}, every model's")
        offerer = names.offer_role_arn(upstream)
        # Policy variables in a condition take the requester's values (IAM user guide, "Policy variables"): an offer
        # of model M is admitted only from the offer role's session tagged M.
        self.bus.add_to_resource_policy(iam.PolicyStatement(
            sid=_title("Offers", "from", upstream.name), principals=[iam.AccountPrincipal(upstream.account)],
            actions=["events:PutEvents"], resources=[self.bus.event_bus_arn], conditions={"StringEquals": {
                "aws:PrincipalArn": offerer, "events:source": names.offer_source(MODEL)}}))
        self.receive = ModelScopedFunction(
            self, "Receive", handler="lambdas.promotion.handlers.receive", key=key, env_name=env_name, environment={
                "UPSTREAM_ENV": upstream.name, "UPSTREAM_ACCOUNT": upstream.account},
            function_name=naming.control_function(env_name, names.RECEIVE),
            description=f"Starts the promotion run of the model an offer from {upstream.name} names")
        self.receive.grant_for_model(["states:StartExecution"], model_arn(
            self, "states", f"stateMachine:{naming.state_machine(MODEL, env_name)}"))
        self.receive.grant_model_state_machine_key()
        failures.keep_failures_of(self.receive.function)
        events.Rule(self, "StartPromotion", event_bus=self.bus, description=f"promote what {upstream.name} offers",
                    event_pattern=events.EventPattern(source=events.Match.prefix(f"{names.EVENT_SOURCE}."),
                                                      detail_type=[names.OFFERED], account=[upstream.account]),
                    targets=[targets.LambdaFunction(self.receive.function, retry_attempts=3,
                                                    dead_letter_queue=failures.queue)])
        self.importer = ModelScopedFunction(
            self, "Import", handler="lambdas.promotion.handlers.import_package", key=key, env_name=env_name,
            timeout=Duration.minutes(15), memory_mb=1024, function_name=naming.control_function(env_name, names.IMPORT),
            environment={"UPSTREAM_ENV": upstream.name, "UPSTREAM_ACCOUNT": upstream.account,
                         "UPSTREAM_REGION": upstream.region, "UPSTREAM_BUCKET": names.bucket_of(upstream)},
            description=f"Copies the package {upstream.name} offers (digest checked) and registers it here")
        # The name and path the previous stage's policies grant (they cannot reference a role of another account).
        scoped = self.importer.scoped_role.node.default_child
        scoped.role_name, scoped.path = names.scoped_role_name(env_name, names.IMPORT), naming.RELEASE_WRITER_PATH
        self._grant_upstream(upstream)
        self._grant_own(env_name)

    def _grant_upstream(self, upstream: EnvironmentSpec) -> None:
        """Identity side of the cross-account reads; the upstream's PromotionSourceGrants is the resource side."""
        grant = self.importer.grant_for_model
        grant(["sagemaker:DescribeModelPackage"], f"{names.package_arn_prefix(MODEL, upstream)}*")
        bucket = names.bucket_of(upstream)
        grant(["s3:GetObject", "s3:GetObjectVersion"],
              *[f"arn:aws:s3:::{bucket}/{prefix}*" for prefix in names.promoted_prefixes(MODEL)])
        keys = f"arn:aws:kms:{upstream.region}:{upstream.account}:key/*"
        # The key is shared by every model: what the session decrypts is what S3 serves it (the objects above).
        self.importer.scoped_role.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt"], resources=[keys], conditions={
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": [names.key_alias(upstream.name)]},
            "StringEquals": {"kms:ViaService": f"s3.{upstream.region}.amazonaws.com"}}))
        acknowledge(self.importer.scoped_role.node.find_child("DefaultPolicy").node.default_child, {
            f"AwsSolutions-IAM5[Resource::{keys}]": (
                f"the {upstream.name} account's key is named by its alias (kms:ResourceAliases "
                f"{names.key_alias(upstream.name)}): its id is generated in that account and unknown here; decrypt "
                "through S3 only")})

    def _grant_own(self, env_name: str) -> None:
        grant, stack = self.importer.grant_for_model, Stack.of(self)
        releases, runs = names.promoted_prefixes(MODEL)
        # The copy, read back, removed when its digest differs; then released (never deleted: the bucket policy).
        grant(["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
               "s3:AbortMultipartUpload"], _objects(env_name, stack, f"{runs}*"))
        grant(["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:AbortMultipartUpload"],
              _objects(env_name, stack, f"{releases}*"))
        # It lists the model's releases to tell a release that exists (a retried step) from one to copy
        # (lambdas/shared/dal.py seal_release).
        grant(["s3:ListBucket"], f"arn:{stack.partition}:s3:::{naming.artifact_bucket(env_name, stack.account, stack.region)}",
              conditions={"StringLike": {"s3:prefix": [f"{releases}*"]}})
        self.importer.grant_key_through("s3")
        grant(["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:AddTags"],
              *_packages(self.importer, env_name))
        self.importer.grant_read_served()
        _audit_rows(self.importer, env_name, ["dynamodb:PutItem", "dynamodb:DeleteItem"])


def import_step(scope: Construct, env_name: str) -> sfn.TaskStateBase:
    """The head of a promotion stage's state machine: the control plane's import function, by name."""
    function = lambda_.Function.from_function_arn(scope, "ImportFunction",
                                                  control_function_arn(scope, env_name, names.IMPORT))
    step = lambda_step(scope, "ImportPackage", function, "$")
    step.add_catch(sfn.Succeed(scope, "AlreadyPromoted"), errors=["AlreadyPromoted"])
    return step

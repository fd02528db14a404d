"""Promotion across accounts, pull-based (docs/promotion.md): the offering stage grants, the receiving stage pulls.

- `PromotionSourceGrants` (offering stage's registry stack): its bucket policy, key policy and model package group
  policy let exactly the next stage's import role (aws:PrincipalArn, no wildcard) read the model's artifacts and
  run files, decrypt them through S3, and describe the packages.
- `PromotionOffer` (offering stage's model stack): after a successful run, the offer function attests and offers the
  package production serves; a rule forwards the offer to the next stage's bus with a role allowed exactly that.
- `PromotionImport` (receiving stage's model stack): the promotion bus (accepting only the previous stage's forwarder
  role), the rule that starts this stage's state machine, and the import function whose role is the one the
  previous stage grants; its step replaces training at the head of the state machine.

Cross-account principals are the other account's root with an aws:PrincipalArn condition naming the exact role:
a policy naming a role ARN directly is refused while that role does not exist yet (the stages deploy in order),
and would silently stop matching once the role is re-created (IAM keeps the old role's unique id).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack, aws_events as events, aws_events_targets as targets, aws_iam as iam
from aws_cdk import aws_kms as kms, aws_s3 as s3, aws_sagemaker as sagemaker, aws_stepfunctions as sfn
from constructs import Construct

from pipelines import naming
from pipelines import promotion as names
from pipelines.spec import EnvironmentSpec, ModelSpec
from stacks.constructs.functions import PlatformFunction
from stacks.constructs.registry import grant_read_champion
from stacks.constructs.retraining import lambda_step
from stacks.nag import acknowledge

EXECUTION_STATUS = "Step Functions Execution Status Change"


def _exactly(role_arn: str) -> dict:
    return {"StringEquals": {"aws:PrincipalArn": role_arn}}


def _title(*parts: str) -> str:
    return "".join(part.replace("-", " ").title().replace(" ", "") for part in parts)


class PromotionSourceGrants(Construct):
    """The offering stage's resource policies for the next stage's import role of each model."""

    def __init__(self, scope: Construct, construct_id: str, *, specs: list[ModelSpec], environment: EnvironmentSpec,
                 downstream: EnvironmentSpec, bucket: s3.IBucket, key: kms.IKey,
                 groups: dict[str, sagemaker.CfnModelPackageGroup]) -> None:
        super().__init__(scope, construct_id)
        region = Stack.of(self).region
        for spec in specs:
            model = spec.name
            importer = names.import_role_arn(downstream, model)
            sid = _title("Promote", model, "to", downstream.name)
            bucket.add_to_resource_policy(iam.PolicyStatement(
                sid=sid, principals=[iam.AccountPrincipal(downstream.account)],
                actions=["s3:GetObject", "s3:GetObjectVersion"], conditions=_exactly(importer),
                resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in names.promoted_prefixes(model)]))
            key.add_to_resource_policy(iam.PolicyStatement(
                sid=sid, principals=[iam.AccountPrincipal(downstream.account)], actions=["kms:Decrypt"], resources=["*"],
                conditions={"StringEquals": {"aws:PrincipalArn": importer, "kms:ViaService": f"s3.{region}.amazonaws.com"}}))
            groups[model].model_package_group_policy = {"Version": "2012-10-17", "Statement": [{
                "Sid": sid, "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{downstream.account}:root"},
                "Action": ["sagemaker:DescribeModelPackage"], "Condition": _exactly(importer),
                "Resource": f"{names.package_arn_prefix(model, environment)}*"}]}


class PromotionOffer(Construct):
    """After each successful run: the newest Approved package, if production serves it, offered to the next stage."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, environment: EnvironmentSpec,
                 downstream: EnvironmentSpec, key: kms.IKey, bucket: s3.IBucket, machine_arn: str,
                 package_arns: list[str], environment_variables: dict[str, str], failures,
                 audit_table_arn: str) -> None:
        super().__init__(scope, construct_id)
        model, stack = spec.name, Stack.of(self)
        self.function = PlatformFunction(
            self, "OfferFunction", handler="lambdas.promotion.handlers.offer", key=key, timeout=Duration.minutes(15),
            environment={**environment_variables, "DOWNSTREAM_ENV": downstream.name, "PROMOTION_ENV": environment.name},
            description=f"Offers the package production serves to {downstream.name}, its sha256 recorded")
        self._grant(self.function.role, model, environment.name, bucket, package_arns, audit_table_arn, key.key_arn)
        failures.keep_failures_of(self.function.function)
        events.Rule(self, "OnRunSucceeded", description=f"{model}: offer what a successful run deployed",
                    event_pattern=events.EventPattern(source=["aws.states"], detail_type=[EXECUTION_STATUS],
                                                      detail={"status": ["SUCCEEDED"], "stateMachineArn": [machine_arn]}),
                    targets=[targets.LambdaFunction(self.function.function, retry_attempts=2,
                                                    dead_letter_queue=failures.queue)])
        bus = names.bus_arn(downstream, names.promotion_bus(model, downstream.name))
        self.forwarder = iam.Role(
            self, "ForwarderRole", role_name=names.forwarder_role_name(model, environment.name),
            description=f"EventBridge forwards {model} offers to {downstream.name}",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com").with_conditions(
                {"StringEquals": {"aws:SourceAccount": stack.account}}))
        self.forwarder.add_to_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[bus]))
        events.Rule(self, "ForwardOffers", description=f"{model}: offers go to {downstream.name}'s promotion bus",
                    event_pattern=events.EventPattern(source=[names.EVENT_SOURCE], detail_type=[names.OFFERED],
                                                      account=[stack.account],
                                                      detail={"model": [model], "env": [environment.name]}),
                    targets=[targets.EventBus(events.EventBus.from_event_bus_arn(self, "NextStageBus", bus),
                                              role=self.forwarder, dead_letter_queue=failures.queue)])

    def _grant(self, role: iam.IRole, model: str, env_name: str, bucket: s3.IBucket, package_arns: list[str],
               audit_table_arn: str, key_arn: str) -> None:
        stack = Stack.of(self)
        role.add_to_policy(iam.PolicyStatement(
            actions=["sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"], resources=package_arns))
        role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"]))
        grant_read_served(role, model, env_name)
        bucket.grant_read(role, f"{naming.RELEASES}/{model}/*")  # the released bytes, checked before they are offered
        role.add_to_policy(iam.PolicyStatement(  # the approval record: the digest the approver approved
            actions=["dynamodb:GetItem"], resources=[audit_table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{model}"]}}))
        role.add_to_policy(iam.PolicyStatement(
            actions=["kms:Decrypt"], resources=[key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{stack.region}.amazonaws.com"}}))
        role.add_to_policy(iam.PolicyStatement(
            actions=["events:PutEvents"], resources=[stack.format_arn(service="events", resource="event-bus",
                                                                      resource_name="default")],
            conditions={"StringEquals": {"events:source": names.EVENT_SOURCE}}))


def grant_read_served(role: iam.IRole, model: str, env_name: str) -> None:
    """What production serves: endpoint -> config -> model -> package (the model stack's champion read)."""
    grant_read_champion(role, model, env_name)


class PromotionImport(Construct):
    """The receiving side: bus, rule, import function; `step` heads this stage's state machine."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: ModelSpec, environment: EnvironmentSpec,
                 upstream: EnvironmentSpec, key: kms.IKey, bucket: s3.IBucket, machine_arn: str,
                 package_arns: list[str], audit_table_arn: str, environment_variables: dict[str, str], failures) -> None:
        super().__init__(scope, construct_id)
        model = spec.name
        self.bus = events.EventBus(self, "Bus", event_bus_name=names.promotion_bus(model, environment.name),
                                   description=f"Offers of {model} from {upstream.name}")
        forwarder = names.role_arn(upstream, names.forwarder_role_name(model, upstream.name))
        self.bus.add_to_resource_policy(iam.PolicyStatement(
            sid=_title("Offers", "from", upstream.name), principals=[iam.AccountPrincipal(upstream.account)],
            actions=["events:PutEvents"], resources=[self.bus.event_bus_arn], conditions=_exactly(forwarder)))
        events.Rule(self, "StartPromotion", event_bus=self.bus, description=f"{model}: promote what {upstream.name} offers",
                    event_pattern=events.EventPattern(source=[names.EVENT_SOURCE], detail_type=[names.OFFERED],
                                                      account=[upstream.account],
                                                      detail={"model": [model], "env": [upstream.name]}),
                    targets=[targets.SfnStateMachine(
                        sfn.StateMachine.from_state_machine_arn(self, "Machine", machine_arn), retry_attempts=3,
                        dead_letter_queue=failures.queue, input=events.RuleTargetInput.from_object(
                            {"offer": events.EventField.from_path("$.detail"),
                             "offered_by_account": events.EventField.account}))])
        self.function = PlatformFunction(
            self, "ImportFunction", handler="lambdas.promotion.handlers.import_package", key=key,
            timeout=Duration.minutes(15), memory_mb=1024, environment={
                **environment_variables, "UPSTREAM_ENV": upstream.name, "UPSTREAM_ACCOUNT": upstream.account,
                "UPSTREAM_REGION": upstream.region, "UPSTREAM_BUCKET": names.bucket_of(upstream),
                "UPSTREAM_GROUP": naming.model_package_group(model, upstream.name)},
            description=f"Copies the package {upstream.name} offers (digest checked) and registers it here",
            role_path=naming.RELEASE_WRITER_PATH)
        # The name the previous stage's policies grant (they cannot reference a role of another account's stack).
        self.function.role.node.default_child.role_name = names.import_role_name(model, environment.name)
        self._grant_upstream(self.function.role, model, upstream)
        self._grant_own(self.function.role, model, environment.name, bucket, key, package_arns, audit_table_arn)
        self.step = lambda_step(self, "ImportPackage", self.function.function, "$")
        self.step.add_catch(sfn.Succeed(self, "AlreadyPromoted"), errors=["AlreadyPromoted"])

    def _grant_upstream(self, role: iam.IRole, model: str, upstream: EnvironmentSpec) -> None:
        """Identity side of the cross-account reads; the upstream's PromotionSourceGrants is the resource side."""
        role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"],
                                               resources=[f"{names.package_arn_prefix(model, upstream)}*"]))
        bucket = names.bucket_of(upstream)
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[
            f"arn:aws:s3:::{bucket}/{prefix}*" for prefix in names.promoted_prefixes(model)]))
        keys = f"arn:aws:kms:{upstream.region}:{upstream.account}:key/*"
        role.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt"], resources=[keys], conditions={
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": [names.key_alias(upstream.name)]},
            "StringEquals": {"kms:ViaService": f"s3.{upstream.region}.amazonaws.com"}}))
        acknowledge(role.node.find_child("DefaultPolicy").node.default_child, {f"AwsSolutions-IAM5[Resource::{keys}]": (
            f"the {upstream.name} account's key is named by its alias (kms:ResourceAliases {names.key_alias(upstream.name)}):"
            " its id is generated in that account and unknown here; decrypt through S3 only")})

    def _grant_own(self, role: iam.IRole, model: str, env_name: str, bucket: s3.IBucket, key: kms.IKey,
                   package_arns: list[str], audit_table_arn: str) -> None:
        releases, runs = names.promoted_prefixes(model)
        bucket.grant_read_write(role, f"{runs}*")  # the copy, read back, removed when its digest differs
        bucket.grant_read(role, f"{releases}*")
        bucket.grant_put(role, f"{releases}*")  # then released (never deleted: the bucket policy)
        role.add_to_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:AddTags"],
            resources=package_arns))
        grant_read_served(role, model, env_name)
        role.add_to_policy(iam.PolicyStatement(
            actions=["dynamodb:PutItem", "dynamodb:DeleteItem"], resources=[audit_table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{model}"]}}))
        role.add_to_policy(iam.PolicyStatement(
            actions=["kms:Decrypt"], resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{Stack.of(self).region}.amazonaws.com"}}))

"""A control-plane function: one function an environment's models share, which acts for one model at a time.

Its own role may only assume its model-scoped role, with the session tag mlops:model (and no other tag). The scoped
role's statements name every resource with `${aws:PrincipalTag/mlops:model}`: acting for model A, the function
reaches A's record, topic, objects and rows and nothing of model B's (lambdas/shared/tenancy.py). Two roles an
environment per shared function, whatever the number of models (AWS IAM user guide, "Define permissions based on
attributes with ABAC authorization", "Passing session tags in AWS STS").
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_iam as iam, aws_kms as kms
from constructs import Construct

from pipelines import naming
from stacks.constructs.functions import PlatformFunction


# The characters an STS tag value may hold and a model name (naming.MODEL_NAME_PATTERN) may not, as IAM globs.
NOT_IN_MODEL_NAMES = [f"*{character}*" for character in "/:._=+@ "]


def model_arn(scope: Construct, service: str, resource: str) -> str:
    """An ARN of the environment's account and Region whose resource part names the session's model."""
    stack = Stack.of(scope)
    return f"arn:{Aws.PARTITION}:{service}:{stack.region}:{stack.account}:{resource}"


def control_function_arn(scope: Construct, env_name: str, purpose: str) -> str:
    """A control-plane function as another stack's schedules target it: by name (naming.control_function)."""
    stack = Stack.of(scope)
    return f"arn:{stack.partition}:lambda:{stack.region}:{stack.account}:function:" \
           f"{naming.control_function(env_name, purpose)}"


class ModelScopedFunction(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, handler: str, key: kms.IKey, env_name: str,
                 environment: dict[str, str], description: str, timeout: Duration = Duration.minutes(1),
                 memory_mb: int = 512, function_name: str | None = None, scoped_role_path: str | None = None) -> None:
        """scoped_role_path: the scoped role's IAM path (naming.RELEASE_WRITER_PATH: a bucket policy lets the roles
        under it write releases)."""
        super().__init__(scope, construct_id)
        self.env_name, self.key = env_name, key
        self.handler = PlatformFunction(self, "Handler", handler=handler, key=key, description=description,
                                        timeout=timeout, memory_mb=memory_mb, function_name=function_name,
                                        environment={"MLOPS_ENVIRONMENT": env_name, **environment})
        self.function, self.role = self.handler.function, self.handler.role
        self.scoped_role = iam.Role(
            self, "ScopedRole", path=scoped_role_path, description=f"{construct_id} acting for one model: the model is the session's "
                                            f"{naming.MODEL_TAG} tag",
            assumed_by=iam.PrincipalWithConditions(iam.ArnPrincipal(self.role.role_arn), {
                "StringLike": {f"aws:RequestTag/{naming.MODEL_TAG}": "?*"},
                # A tag value may hold characters a model name may not ('/' would reach into another model's prefix
                # as runs/${tag}/*): none of them is let through.
                "StringNotLike": {f"aws:RequestTag/{naming.MODEL_TAG}": NOT_IN_MODEL_NAMES},
                "ForAllValues:StringEquals": {"aws:TagKeys": [naming.MODEL_TAG]}}).with_session_tags())
        self.role.add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole", "sts:TagSession"],
                                                    resources=[self.scoped_role.role_arn]))
        self.function.add_environment("MODEL_SCOPED_ROLE_ARN", self.scoped_role.role_arn)
        self.grant_for_model(["ssm:GetParameter"], model_arn(
            self, "ssm", f"parameter{naming.model_records_path(env_name)}{naming.MODEL_VARIABLE}"))

    def grant_for_model(self, actions: list[str], *resources: str, conditions: dict | None = None) -> None:
        """actions on resources that name the session's model (naming.MODEL_VARIABLE), or on a resource several
        models share where a condition names the model (a table's partition, a bucket listing's prefix)."""
        named = all(naming.MODEL_VARIABLE in resource for resource in resources)
        if not named and naming.MODEL_VARIABLE not in str(conditions or {}):
            raise ValueError(f"{self.node.path}: a model-scoped grant must name the model with {naming.MODEL_VARIABLE}")
        self.scoped_role.add_to_policy(iam.PolicyStatement(actions=actions, resources=list(resources),
                                                           conditions=conditions))

    def grant_shared(self, actions: list[str], resources: list[str], reason: str, conditions: dict | None = None) -> None:
        """actions on a resource every model shares and no policy can divide by model (a SageMaker List call, the
        environment's tracking server): `reason` says why it is safe, for the reviewer."""
        if not reason:
            raise ValueError(f"{self.node.path}: a grant not scoped to the session's model needs a reason")
        self.scoped_role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources, conditions=conditions))

    def grant_read_served(self) -> None:
        """What the serving target serves for the session's model (its champion): endpoint -> config -> model, or
        inference component -> model (hosting: shared). Both stage names: the environment serves one of them."""
        for stage in ("prod", "staging"):
            target = naming.endpoint(naming.MODEL_VARIABLE, self.env_name, stage)
            self.grant_for_model(["sagemaker:DescribeEndpoint"], model_arn(self, "sagemaker", f"endpoint/{target}"))
            self.grant_for_model(["sagemaker:DescribeInferenceComponent"],
                                 model_arn(self, "sagemaker", f"inference-component/{target}"))
            self.grant_for_model(["sagemaker:DescribeEndpointConfig"],
                                 model_arn(self, "sagemaker", f"endpoint-config/{target}-*"))
            self.grant_for_model(["sagemaker:DescribeModel"], model_arn(self, "sagemaker", f"model/{target}-*"))

    def grant_model_state_machine_key(self) -> None:
        """Step Functions encrypts a state machine's data with the environment's key: describing its executions,
        starting one or answering its task tokens uses the key for that machine only (Step Functions developer guide,
        "Data at rest encryption": the encryption context aws:states:stateMachineArn)."""
        self.grant_for_model(["kms:Decrypt", "kms:GenerateDataKey"], self.key.key_arn, conditions={"StringEquals": {
            "kms:EncryptionContext:aws:states:stateMachineArn": model_arn(
                self, "states", f"stateMachine:{naming.state_machine(naming.MODEL_VARIABLE, self.env_name)}")}})

    def grant_start_retraining(self) -> None:
        """A monitor's retraining (lambdas/shared/retraining.py): the model's machine (start, and list to see a run in
        progress), and the model's one cooldown marker: its partition, and no attribute but the marker's (IAM cannot
        name a sort key, but dynamodb:Attributes keeps a monitor away from approval records' fields)."""
        model = naming.MODEL_VARIABLE
        self.grant_for_model(["states:StartExecution", "states:ListExecutions"], model_arn(
            self, "states", f"stateMachine:{naming.state_machine(model, self.env_name)}"))
        self.grant_for_model(
            ["dynamodb:UpdateItem"], model_arn(self, "dynamodb", f"table/{naming.audit_table(self.env_name)}"),
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"model#{model}"],
                                                      "dynamodb:Attributes": ["pk", "sk", "last_triggered"]},
                        "StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE"}})
        self.grant_model_state_machine_key()

    def grant_publish_to_model_topic(self) -> None:
        """The model's notification topic (encrypted with the environment's key)."""
        self.grant_for_model(["sns:Publish"], model_arn(
            self, "sns", naming.notification_topic(naming.MODEL_VARIABLE, self.env_name)))
        self.grant_key_through("sns")

    def grant_key_through(self, service: str, actions: list[str] | None = None) -> None:
        """The environment's key as `service` uses it for the session's requests (kms:ViaService): what the
        session reaches of the data is what its other grants name."""
        self.scoped_role.add_to_policy(iam.PolicyStatement(
            actions=actions or ["kms:Decrypt", "kms:GenerateDataKey*"], resources=[self.key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"{service}.{Stack.of(self).region}.amazonaws.com"}}))


class ModelRecordParameter(Construct):
    """The model's record (pipelines/model_record.py) as the SSM parameter the control plane reads. Intelligent-
    Tiering: Standard (free, 4 KB) while the record fits, Advanced (8 KB) otherwise, rather than a failed deployment."""

    def __init__(self, scope: Construct, construct_id: str, *, spec, env_name: str, settings: dict[str, str]) -> None:
        from aws_cdk import aws_ssm as ssm

        from pipelines.model_record import ModelRecord, compact_body

        super().__init__(scope, construct_id)
        body = compact_body(ModelRecord(model=spec.name, env=env_name, spec=spec, settings={
            name: value for name, value in settings.items() if name != "MODEL_SPEC"}))
        self.parameter = ssm.CfnParameter(
            self, "Parameter", name=naming.model_record_parameter(spec.name, env_name), type="String",
            tier="Intelligent-Tiering", value=Stack.of(self).to_json_string(body),
            description=f"What the {spec.name} stack deployed in {env_name}, for the control plane")

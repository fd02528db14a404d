"""Provisions synthesized CloudFormation templates into the embedded AWS emulation (moto).

Only what the lifecycle needs is created (keys, buckets, tables, registry groups, roles and their
identity policies, topics, secrets, functions, state machines, the MLflow tracking server); alarms, dashboards, rules and
resource policies have no local effect. Ref/GetAtt/ImportValue resolve against what was created, so
the state machine definition, every function's environment and every role's permissions are exactly
the synthesized ones. Identity policies are attached only after everything they may name exists, and
every ARN in them must be one moto really uses (see `check_policy_arns`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import boto3

from pipelines import naming
from pipelines.local import iam
from pipelines.local.cfn import resolve
from pipelines.local.glue import LambdaDispatch, LocalFunction

# AWS managed policies are not in moto (unless loaded, which takes seconds): the few a construct may use
# are created from moto's copy of their documents, anything else fails provisioning.
_MANAGED_POLICIES = ("service-role/AWSLambdaBasicExecutionRole",)


class ProvisioningError(RuntimeError):
    pass


@dataclass
class Provisioned:
    values: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    functions: dict[str, LocalFunction] = field(default_factory=dict)
    state_machines: dict[str, str] = field(default_factory=dict)
    role_credentials: iam.RoleCredentials = field(default_factory=iam.RoleCredentials)
    policies: dict[str, dict] = field(default_factory=dict)  # role name -> policy name -> resolved document
    managed_policies: dict[str, str] = field(default_factory=dict)  # logical id -> customer-managed policy ARN

    def managed_policy(self, logical_prefix: str) -> str:
        matches = [arn for logical, arn in self.managed_policies.items() if logical.startswith(logical_prefix)]
        if len(matches) != 1:
            raise ProvisioningError(f"expected one managed policy whose logical id starts with {logical_prefix}, found {len(matches)}")
        return matches[0]

    def function_named(self, logical_prefix: str) -> LocalFunction:
        matches = [f for logical, f in self.functions.items() if logical.startswith(logical_prefix)]
        if len(matches) != 1:
            raise ProvisioningError(f"expected one function whose logical id starts with {logical_prefix}, found {len(matches)}")
        return matches[0]


class Provisioner:
    def __init__(self, account: str, region: str, dispatch: LambdaDispatch, function_urls: dict[str, str]) -> None:
        self.account, self.region, self.dispatch, self.function_urls = account, region, dispatch, function_urls
        self.result = Provisioned()
        self.client = cache(lambda service: boto3.client(service, region_name=region))  # hundreds of resources
        self._unchecked: list[tuple[dict, str]] = []  # policies, checked once every stack is provisioned

    def provision(self, stack: str, template: dict) -> None:
        resources = template.get("Resources", {})
        values = self.result.values.setdefault(stack, {})
        later = ("AWS::KMS::Alias", "AWS::Lambda::Function", "AWS::Lambda::Url", "AWS::SSM::Parameter", "AWS::StepFunctions::StateMachine",
                 "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy",
                 "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint")  # SageMaker checks the role first
        for logical, resource in resources.items():
            if resource["Type"] not in later:
                values[logical] = self._create(stack, logical, resource)
        for kind in later:
            for logical, resource in resources.items():
                if resource["Type"] == kind:
                    values[logical] = self._create(stack, logical, resource)
        for logical, function in list(self.result.functions.items()):
            if logical in resources and resources[logical]["Properties"].get("Environment"):
                function.environment = {k: str(v) for k, v in self._resolve(
                    stack, resources[logical]["Properties"]["Environment"]["Variables"]).items()}
        for output in template.get("Outputs", {}).values():
            if "Export" in output:
                self.result.exports[self._resolve(stack, output["Export"]["Name"])] = self._resolve(stack, output["Value"])

    def assume_roles(self) -> None:
        """Every role's session, taken before enforcement starts; each function signs with its role's. First every
        policy's ARNs are checked, against all stacks' resources: an environment's role may grant on what its model
        stacks create (the scheduler role, on their functions)."""
        for document, where in self._unchecked:
            check_policy_arns(document, self._real_arns(), where)
        self._unchecked.clear()
        roles = self.client("iam")
        for stack in self.result.values.values():
            for values in stack.values():
                if "RoleId" in values:
                    self.result.role_credentials[values["Arn"]] = iam.assume(values["Arn"], self.region)
        for function in self.result.functions.values():
            iam.require_trust(function.role_arn, "lambda.amazonaws.com", roles)
            function.credentials = self.result.role_credentials.of(function.role_arn)

    def _resolve(self, stack: str, value):
        def lookup(logical: str, attribute: str | None) -> str:
            try:
                return self.result.values[stack][logical][attribute or "Ref"]
            except KeyError:
                raise ProvisioningError(f"{stack}: {logical}.{attribute or 'Ref'} has no local value") from None

        def imports(name: str) -> str:
            if name not in self.result.exports:
                raise ProvisioningError(f"{stack} imports '{name}', which no provisioned stack exports")
            return self.result.exports[name]

        return resolve(value, lookup, {"AWS::AccountId": self.account, "AWS::Region": self.region,
                                       "AWS::StackName": stack}, imports)

    def _create(self, stack: str, logical: str, resource: dict) -> dict[str, str]:
        kind, properties = resource["Type"], resource.get("Properties", {})
        arn = lambda service, rest: f"arn:aws:{service}:{self.region}:{self.account}:{rest}"  # noqa: E731
        if kind == "AWS::KMS::Key":
            key = self.client("kms").create_key(Description=f"{stack}/{logical}")["KeyMetadata"]
            return {"Ref": key["KeyId"], "Arn": key["Arn"]}
        if kind == "AWS::KMS::Alias":
            name = properties["AliasName"]
            self.client("kms").create_alias(AliasName=name, TargetKeyId=self._resolve(stack, properties["TargetKeyId"]))
            return {"Ref": name}
        if kind == "AWS::S3::Bucket":
            name = properties.get("BucketName") or f"{stack}-{logical}".lower()[:63]
            self.client("s3").create_bucket(Bucket=name)
            if properties.get("VersioningConfiguration"):
                self.client("s3").put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            return {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
        if kind == "AWS::S3::BucketPolicy":  # enforced in the local mode (pipelines/local/policy_evaluation.py)
            bucket = self._resolve(stack, properties["Bucket"])
            self.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(self._resolve(stack, properties["PolicyDocument"])))
            return {"Ref": bucket}
        if kind == "AWS::DynamoDB::Table":
            name = properties.get("TableName") or f"{stack}-{logical}"
            self.client("dynamodb").create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                                 KeySchema=properties["KeySchema"],
                                                 AttributeDefinitions=properties["AttributeDefinitions"])
            return {"Ref": name, "Arn": arn("dynamodb", f"table/{name}")}
        if kind == "AWS::SageMaker::ModelPackageGroup":
            name = properties["ModelPackageGroupName"]
            group = self.client("sagemaker").create_model_package_group(ModelPackageGroupName=name)
            return {"Ref": group["ModelPackageGroupArn"], "ModelPackageGroupArn": group["ModelPackageGroupArn"]}
        if kind == "AWS::SageMaker::EndpointConfig":  # the shared endpoint's (stacks/constructs/shared_hosting.py)
            name = properties.get("EndpointConfigName") or naming.sagemaker_name(stack, logical)
            request = {key: value for key, value in self._resolve(stack, properties).items() if value is not None}
            tags = request.pop("Tags", [])
            self.client("sagemaker").create_endpoint_config(**{**request, "EndpointConfigName": name},
                                                            **({"Tags": tags} if tags else {}))
            return {"Ref": arn("sagemaker", f"endpoint-config/{name.lower()}"), "EndpointConfigName": name}
        if kind == "AWS::SageMaker::Endpoint":
            name = properties.get("EndpointName") or naming.sagemaker_name(stack, logical)
            self.client("sagemaker").create_endpoint(
                EndpointName=name, EndpointConfigName=self._resolve(stack, properties["EndpointConfigName"]),
                Tags=properties.get("Tags", []))
            return {"Ref": arn("sagemaker", f"endpoint/{name.lower()}"), "EndpointName": name}
        if kind == "AWS::SageMaker::MlflowTrackingServer":  # a local MLflow server (pipelines/local/tracking.py)
            from pipelines.local import tracking

            return tracking.create_server(self.account, self.region, self._resolve(stack, properties),
                                          Path(os.environ.get("MLOPS_LOCAL_DIR", ".local")))
        if kind == "AWS::ECR::Repository":
            name = properties.get("RepositoryName") or logical.lower()
            return {"Ref": name, "Arn": arn("ecr", f"repository/{name}"),
                    "RepositoryUri": f"{self.account}.dkr.ecr.{self.region}.amazonaws.com/{name}"}
        if kind == "AWS::IAM::Role":
            return self._role(stack, logical, properties)
        if kind == "AWS::IAM::Policy":
            document = self._resolve(stack, properties["PolicyDocument"])
            for role in self._resolve(stack, properties["Roles"]):
                self._put_role_policy(role, properties["PolicyName"], document)
            return {"Ref": properties["PolicyName"]}
        if kind == "AWS::IAM::ManagedPolicy":
            return self._customer_managed_policy(stack, logical, properties)
        if kind == "AWS::SSM::Parameter":
            name, value = properties["Name"], self._resolve(stack, properties["Value"])
            self.client("ssm").put_parameter(Name=name, Value=value, Type=properties.get("Type", "String"), Overwrite=True)
            return {"Ref": name, "Value": value}
        if kind == "AWS::SNS::Topic":
            name = properties.get("TopicName") or f"{stack}-{logical}"
            topic = self.client("sns").create_topic(Name=name)["TopicArn"]
            return {"Ref": topic, "TopicArn": topic, "TopicName": name}
        if kind == "AWS::SQS::Queue":
            name = properties.get("QueueName") or f"{stack}-{logical}"[:80]
            url = self.client("sqs").create_queue(QueueName=name)["QueueUrl"]
            return {"Ref": url, "Arn": arn("sqs", name), "QueueName": name, "QueueUrl": url}
        if kind == "AWS::SecretsManager::Secret":
            name = properties.get("Name") or f"{stack}/{logical}"
            secret = self.client("secretsmanager").create_secret(Name=name, SecretString=secrets.token_urlsafe(48))
            return {"Ref": secret["ARN"], "Id": secret["ARN"]}
        if kind == "AWS::Logs::LogGroup":
            name = properties.get("LogGroupName") or f"/local/{stack}/{logical}"
            return {"Ref": name, "Arn": arn("logs", f"log-group:{name}:*")}
        if kind == "AWS::Lambda::Function":
            return self._function(stack, logical, properties)
        if kind == "AWS::Lambda::Url":
            target = properties["TargetFunctionArn"]["Fn::GetAtt"][0]
            if target not in self.function_urls:
                raise ProvisioningError(f"no local server for the function URL of {target}")
            return {"FunctionUrl": self.function_urls[target]}
        if kind == "AWS::StepFunctions::StateMachine":
            definition = self._resolve(stack, properties["DefinitionString"])
            machine = self.client("stepfunctions").create_state_machine(
                name=properties["StateMachineName"], definition=definition,
                roleArn=self._resolve(stack, properties["RoleArn"]))["stateMachineArn"]
            self.result.state_machines[properties["StateMachineName"]] = machine
            return {"Ref": machine, "Arn": machine, "Name": properties["StateMachineName"]}
        return {}

    def _role(self, stack: str, logical: str, properties: dict) -> dict[str, str]:
        name = properties.get("RoleName") or f"{stack}-{logical}"[:64]  # a fixed name is part of the contract
        trust = self._resolve(stack, properties["AssumeRolePolicyDocument"])
        role = self.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                                              Path=properties.get("Path", "/"))["Role"]
        for policy in properties.get("Policies", []):
            self._put_role_policy(name, policy["PolicyName"], self._resolve(stack, policy["PolicyDocument"]))
        for managed in self._resolve(stack, properties.get("ManagedPolicyArns", [])):
            self.client("iam").attach_role_policy(RoleName=name, PolicyArn=self._managed_policy(managed))
        return {"Ref": name, "Arn": role["Arn"], "RoleId": role["RoleId"]}

    def _customer_managed_policy(self, stack: str, logical: str, properties: dict) -> dict[str, str]:
        """Created with its resolved document and attached to the roles the template names (people's roles
        in the local mode are made by whoever uses the policy, e.g. the lifecycle's data scientist)."""
        name = properties.get("ManagedPolicyName") or f"{stack}-{logical}"[:128]
        document = self._resolve(stack, properties["PolicyDocument"])
        self._unchecked.append((document, name))
        arn = self.client("iam").create_policy(PolicyName=name, PolicyDocument=json.dumps(document))["Policy"]["Arn"]
        self.result.managed_policies[logical] = arn
        for role in self._resolve(stack, properties.get("Roles", [])):
            self.client("iam").attach_role_policy(RoleName=role, PolicyArn=arn)
        return {"Ref": arn, "PolicyArn": arn}

    def _put_role_policy(self, role: str, policy_name: str, document: dict) -> None:
        self._unchecked.append((document, f"{role}/{policy_name}"))
        self.result.policies.setdefault(role, {})[policy_name] = document
        self.client("iam").put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=json.dumps(document))

    def _managed_policy(self, arn: str) -> str:
        from moto.iam.aws_managed_policies import aws_managed_policies_data

        name = arn.split(":policy/", 1)[1]
        if not arn.startswith("arn:aws:iam::aws:policy/") or name not in _MANAGED_POLICIES:
            raise ProvisioningError(f"managed policy {arn} has no local equivalent; add it to _MANAGED_POLICIES")
        document = json.loads(aws_managed_policies_data)[name.rsplit("/", 1)[-1]]["Document"]
        local_name = f"aws-managed-{name.rsplit('/', 1)[-1]}"
        existing = [p["Arn"] for p in self.client("iam").list_policies(Scope="Local")["Policies"] if p["PolicyName"] == local_name]
        return existing[0] if existing else self.client("iam").create_policy(
            PolicyName=local_name, PolicyDocument=json.dumps(document))["Policy"]["Arn"]

    def _real_arns(self) -> list[str]:
        """The ARN of every resource created so far, as moto knows it."""
        return [value for stack in self.result.values.values() for values in stack.values()
                for value in values.values() if isinstance(value, str) and value.startswith("arn:")]

    def _function(self, stack: str, logical: str, properties: dict) -> dict[str, str]:
        name = properties.get("FunctionName") or cloudformation_name(stack, logical)
        role_arn = self._resolve(stack, properties["Role"])
        created = self.client("lambda").create_function(
            FunctionName=name, Runtime="python3.12", Role=role_arn,
            Handler=properties["Handler"], Code={"ZipFile": _EMPTY_ZIP})
        function = LocalFunction(name=name, handler=properties["Handler"], role_arn=role_arn)
        self.result.functions[logical] = function
        self.dispatch.register(function)
        return {"Ref": name, "Arn": created["FunctionArn"]}


def cloudformation_name(stack: str, logical: str) -> str:
    """The name CloudFormation gives a resource created without one: <stack>-<logical id>-<random suffix>, at most
    64 characters (a Lambda function's limit); policies may rely on the stack prefix (the scheduler role does)."""
    suffix = hashlib.sha256(f"{stack}/{logical}".encode()).hexdigest()[:12].upper()
    return f"{f'{stack}-{logical}'[:64 - len(suffix) - 1]}-{suffix}"


# Resource types the local mode creates: a policy ARN of one of these must name a created resource.
_PROVISIONED_KINDS = {"s3": r"arn:aws:s3:::[^/]+", "dynamodb": r"arn:aws:dynamodb:[^:]*:[^:]*:table/[^/]+",
                      "kms": r"arn:aws:kms:[^:]*:[^:]*:key/.+", "secretsmanager": r"arn:aws:secretsmanager:.+",
                      "sns": r"arn:aws:sns:.+", "sqs": r"arn:aws:sqs:.+", "states": r"arn:aws:states:[^:]*:[^:]*:stateMachine:.+",
                      "lambda": r"arn:aws:lambda:.+", "iam": r"arn:aws:iam::[^:]*:role/(?!aws-service-role/|aws-reserved/).+",
                      "sagemaker": r"arn:aws:sagemaker:[^:]*:[^:]*:model-package-group/.+"}
# CDK's bootstrap bucket holds the code assets; the local mode runs the model folder's code instead.
_BOOTSTRAP = re.compile(r"arn:aws:s3:::cdk-[a-z0-9]+-assets-\d{12}-[a-z0-9-]+(/.*)?")


_POLICY_VARIABLE = re.compile(r"\$\{[^}]*\}")


def check_policy_arns(document: dict, real_arns: list[str], where: str) -> None:
    """Every policy resource of a kind the local mode creates matches an ARN moto really uses.

    A mismatch (account, region, name or ARN format) would make a grant that works in AWS deny here,
    or worse, one that is wrong in AWS pass here because the emulation names things differently."""
    unmatched = [resource for resource in _policy_resources(document) if not _names_a_real_resource(resource, real_arns)]
    if unmatched:
        raise ProvisioningError(f"{where} grants on ARNs no provisioned resource has: {unmatched}")


def _policy_resources(document: dict) -> list[str]:
    statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
    resources = [r for s in statements for r in (s.get("Resource") if isinstance(s.get("Resource"), list) else [s.get("Resource")])]
    return [r for r in resources if isinstance(r, str) and r != "*"]


def _names_a_real_resource(resource: str, real_arns: list[str]) -> bool:
    service = resource.split(":")[2]
    kind = _PROVISIONED_KINDS.get(service)
    base = resource.split("/", 1)[0] if service == "s3" else resource  # an object ARN names its bucket
    if service == "lambda":  # versions and aliases of a function: <function ARN>:<qualifier>
        base = re.sub(r"(:function:[^:]+):.*$", r"\1", resource)
    if service == "sagemaker" and ":model-package/" in resource:  # versions of a group: <group name>/<n>
        base = resource.replace(":model-package/", ":model-package-group/").rsplit("/", 1)[0]
    if kind is None or not re.fullmatch(kind, base) or _BOOTSTRAP.fullmatch(resource):
        return True  # not a kind created here (endpoints, training jobs, other accounts' images)
    # A policy variable (${aws:PrincipalTag/mlops:model}) stands for whatever the session brings: like '*' here,
    # while pipelines/local/policy_evaluation.py substitutes it request by request.
    parts = _POLICY_VARIABLE.split(base)
    pattern = re.compile("^" + ".*".join(re.escape(part).replace(r"\*", ".*") for part in parts) + "$")
    return any(pattern.match(arn) for arn in real_arns)


def _empty_zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "# the local mode runs the real handler in-process\n")
    return buffer.getvalue()


_EMPTY_ZIP = _empty_zip()

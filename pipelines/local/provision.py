"""Provisions synthesized CloudFormation templates into the embedded AWS emulation (moto).

Only what the lifecycle needs is created (keys, buckets, tables, registry groups, roles, topics,
secrets, functions, state machines); alarms, dashboards, rules and policies have no local effect.
Ref/GetAtt/ImportValue resolve against what was created, so the state machine definition and every
function's environment are exactly the synthesized ones.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

import boto3

from pipelines.local.cfn import resolve
from pipelines.local.glue import LambdaDispatch, LocalFunction

_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                             "Principal": {"Service": "lambda.amazonaws.com"}}]})


class ProvisioningError(RuntimeError):
    pass


@dataclass
class Provisioned:
    values: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    functions: dict[str, LocalFunction] = field(default_factory=dict)
    state_machines: dict[str, str] = field(default_factory=dict)

    def function_named(self, logical_prefix: str) -> LocalFunction:
        matches = [f for logical, f in self.functions.items() if logical.startswith(logical_prefix)]
        if len(matches) != 1:
            raise ProvisioningError(f"expected one function whose logical id starts with {logical_prefix}, found {len(matches)}")
        return matches[0]


class Provisioner:
    def __init__(self, account: str, region: str, dispatch: LambdaDispatch, function_urls: dict[str, str]) -> None:
        self.account, self.region, self.dispatch, self.function_urls = account, region, dispatch, function_urls
        self.result = Provisioned()
        self.client = lambda service: boto3.client(service, region_name=region)

    def provision(self, stack: str, template: dict) -> None:
        resources = template.get("Resources", {})
        values = self.result.values.setdefault(stack, {})
        later = ("AWS::Lambda::Function", "AWS::Lambda::Url", "AWS::StepFunctions::StateMachine")
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
        if kind == "AWS::S3::Bucket":
            name = properties.get("BucketName") or f"{stack}-{logical}".lower()[:63]
            self.client("s3").create_bucket(Bucket=name)
            if properties.get("VersioningConfiguration"):
                self.client("s3").put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            return {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
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
        if kind == "AWS::ECR::Repository":
            name = properties.get("RepositoryName") or logical.lower()
            return {"Ref": name, "Arn": arn("ecr", f"repository/{name}"),
                    "RepositoryUri": f"{self.account}.dkr.ecr.{self.region}.amazonaws.com/{name}"}
        if kind == "AWS::IAM::Role":
            name = f"{stack}-{logical}"[:64]
            role = self.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=_TRUST)["Role"]
            return {"Ref": name, "Arn": role["Arn"], "RoleId": role["RoleId"]}
        if kind == "AWS::SNS::Topic":
            name = properties.get("TopicName") or f"{stack}-{logical}"
            topic = self.client("sns").create_topic(Name=name)["TopicArn"]
            return {"Ref": topic, "TopicArn": topic, "TopicName": name}
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

    def _function(self, stack: str, logical: str, properties: dict) -> dict[str, str]:
        name = logical[:64]
        created = self.client("lambda").create_function(
            FunctionName=name, Runtime="python3.12", Role=self._resolve(stack, properties["Role"]),
            Handler=properties["Handler"], Code={"ZipFile": _EMPTY_ZIP})
        function = LocalFunction(name=name, handler=properties["Handler"])
        self.result.functions[logical] = function
        self.dispatch.register(function)
        return {"Ref": name, "Arn": created["FunctionArn"]}


def _empty_zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "# the local mode runs the real handler in-process\n")
    return buffer.getvalue()


_EMPTY_ZIP = _empty_zip()

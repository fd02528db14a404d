"""SageMaker inference components (ICs) in the local emulation: moto 5.2.5 has none of their actions.

A model deployed with `deployment.hosting: shared` is an inference component on an environment's shared endpoint. This
module adds CreateInferenceComponent, DescribeInferenceComponent, ListInferenceComponents, UpdateInferenceComponent,
UpdateInferenceComponentRuntimeConfig and DeleteInferenceComponent to moto's SageMaker backend and response classes
(moto dispatches an action by its method name, so boto3 reaches them in-process and through moto's server alike), and
teaches moto the IC-based endpoint configuration and Application Auto Scaling's IC target. The contract is botocore's
service models on disk (sagemaker 2017-07-24, application-autoscaling, sagemaker-runtime) and the pages named below.

Refused as AWS refuses them, each rule with the contract it follows:
- Endpoint configurations (CreateEndpointConfig; ProductionVariant.ModelName is optional in botocore, and an endpoint
  that hosts ICs names no model in its variants): a configuration either names a model in every variant or in none;
  one that names none is IC-based and needs ExecutionRoleArn (the role SageMaker assumes to run the ICs' containers;
  botocore CreateEndpointConfigInput.ExecutionRoleArn) and instance variants (an IC is placed on instances:
  InstanceType, no ServerlessConfig). moto read every variant's ModelName (a KeyError) and knew fewer hosting instance
  types than botocore's ProductionVariantInstanceType (ml.g5.* were refused); the config now keeps ExecutionRoleArn.
- CreateInferenceComponent (botocore CreateInferenceComponentInput and its shapes): the name matches
  `[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?`, at most 63 characters, and is unique in the account and Region ("A unique
  name"); the endpoint exists, is InService and is IC-based; the variant is one of its variants (the only one may be
  left out); Specification or Specifications, not both ("You can use either this parameter or the singular
  Specification parameter, but not both"; only Specification is emulated); the model exists; the compute requirements
  are given (they are omitted only by adapter ICs, which are not emulated) with MinMemoryRequiredInMb >= 128,
  MaxMemoryRequiredInMb >= 128, NumberOfCpuCoresRequired >= 0.25, NumberOfAcceleratorDevicesRequired >= 1 (botocore
  min values) and fit one instance of the variant's type (vCPUs, memory, GPUs: pipelines/instances.py
  HOSTING_RESOURCES, from the EC2 instance type specifications); RuntimeConfig.CopyCount >= 0 (InferenceComponentCopyCount
  min 0; 0 copies is the documented "scale to zero" state); at most 50 tags.
- UpdateInferenceComponent / UpdateInferenceComponentRuntimeConfig: the IC exists and is not Creating, Updating or
  Deleting (a deployment is one at a time); the new Specification passes the create checks; CopyCount >= 0;
  DeploymentConfig needs RollingUpdatePolicy with MaximumBatchSize and WaitIntervalInSeconds (required members),
  a batch size of COPY_COUNT or CAPACITY_PERCENT with Value >= 1 and, for a percentage, 5-50 ("The value must be between
  5% to 50% of the copy count of the inference component"), WaitIntervalInSeconds 0-3600,
  MaximumExecutionTimeoutInSeconds 600-28800, 1-10 rollback alarms.
- Describe, Update, UpdateRuntimeConfig and Delete of an IC that does not exist: ValidationError "Could not find
  inference component '<arn>'." (moto's wording for its other hosting resources).

Lifecycle, deterministic like moto's endpoints: a created or updated IC is Creating or Updating until the next
Describe or List, which finds it InService with CurrentCopyCount = DesiredCopyCount (an update issued before that is
refused, as AWS refuses one during a deployment). A rolling update whose AutoRollbackConfiguration names an alarm that
is in ALARM (moto's CloudWatch) when it completes rolls back: the IC keeps its previous Specification and copies and
ends InService (AWS: "If any alarms are tripped during a deployment, SageMaker rolls back the deployment"; botocore
AutoRollbackConfig). LastDeploymentConfig is the update's DeploymentConfig; FailureReason is set only for Failed, as
botocore documents it, so a rolled-back update is seen as the old ModelName in Specification. Delete removes the IC at
once. Describe answers InferenceComponentName, InferenceComponentArn (`arn:aws:sagemaker:<region>:<account>:
inference-component/<name, lower-cased as SageMaker's ARNs are>`), EndpointName, EndpointArn, VariantName,
Specification, RuntimeConfig {DesiredCopyCount, CurrentCopyCount}, CreationTime, LastModifiedTime,
InferenceComponentStatus and, when set, LastDeploymentConfig and FailureReason. List filters by NameContains,
EndpointNameEquals, VariantNameEquals, StatusEquals and the four time bounds, sorts by CreationTime (default), Name or
Status, Descending by default, and pages by MaxResults (default 10) and NextToken.

Application Auto Scaling (botocore application-autoscaling: ScalableDimension `sagemaker:inference-component:
DesiredCopyCount`, ResourceId `inference-component/<name>`, MetricType SageMakerInferenceComponentInvocationsPerCopy and
SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution): moto refused the dimension; it is accepted now
(moto accepts any predefined metric type already). Scaling out from zero copies is the hosting emulation's
(pipelines/local/serving.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.sagemaker import exceptions, models, responses

from pipelines import instances

NAME_PATTERN = re.compile(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?")
MAX_NAME_LENGTH, MAX_TAGS = 63, 50
SCALABLE_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
BUSY = ("Creating", "Updating", "Deleting")
MINIMUMS = {"MinMemoryRequiredInMb": 128, "MaxMemoryRequiredInMb": 128, "NumberOfCpuCoresRequired": 0.25,
            "NumberOfAcceleratorDevicesRequired": 1}
BATCH_TYPES = ("COPY_COUNT", "CAPACITY_PERCENT")

# InvokeEndpoint refusals (ValidationError, HTTP 400). The no-capacity message is the one the AWS Machine Learning blog
# shows for a component scaled to zero ("Unlock cost savings with the new scale down to zero feature in SageMaker
# Inference", re:Invent 2024); the two header messages are SageMaker's as client libraries (litellm) match them.
INFERENCE_COMPONENT_NO_CAPACITY = (
    "Inference Component has no capacity to process this request. ApplicationAutoScaling may be in-progress (if "
    "configured) or try to increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API.")
INFERENCE_COMPONENT_NAME_REQUIRED = ("Inference Component Name header is required for endpoints to which you plan to "
                                     "deploy inference components.")
INFERENCE_COMPONENT_NAME_NOT_ALLOWED = (
    "Inference Component Name header is not allowed for endpoints to which you dont plan to deploy inference "
    "components. Please remove the Inference Component Name header and try again.")

_installed = False


def _refuse(message: str) -> None:
    raise exceptions.ValidationError(message=message)


# ------------------------------------------------------------------------------------------- pure checks

def check_name(name, field_name: str = "InferenceComponentName") -> None:
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not NAME_PATTERN.fullmatch(name):
        _refuse(f"Value '{name}' at '{field_name}' failed to satisfy constraint: Member must have length less than or "
                f"equal to {MAX_NAME_LENGTH} and satisfy regular expression pattern: {NAME_PATTERN.pattern}")


def is_component_based(variants: list[dict]) -> bool:
    """An endpoint configuration for inference components names no model in its variants."""
    return bool(variants) and not any(variant.get("ModelName") for variant in variants)


def check_endpoint_config(variants: list[dict], execution_role_arn: str | None) -> None:
    named = [variant for variant in variants if variant.get("ModelName")]
    if named and len(named) < len(variants):
        _refuse("Either every production variant names a ModelName or none does: an endpoint for inference components "
                "names no model in its variants, and models cannot be mixed with inference components.")
    if named:
        return
    if not execution_role_arn:
        _refuse("ExecutionRoleArn is required for an endpoint configuration whose production variants name no ModelName "
                "(an endpoint for inference components).")
    for variant in variants:
        if variant.get("ServerlessConfig") or not variant.get("InstanceType"):
            _refuse(f"Production variant {variant.get('VariantName')} hosts inference components and needs an "
                    "InstanceType; serverless variants cannot host inference components.")


def check_compute(requirements: dict | None, instance_type: str) -> None:
    if not requirements or "MinMemoryRequiredInMb" not in requirements:
        _refuse("Specification.ComputeResourceRequirements with MinMemoryRequiredInMb is required for an inference "
                "component that is not an adapter.")
    for key, minimum in MINIMUMS.items():
        if key in requirements and requirements[key] < minimum:
            _refuse(f"Value '{requirements[key]}' at 'specification.computeResourceRequirements.{key[0].lower()}{key[1:]}' "
                    f"failed to satisfy constraint: Member must have value greater than or equal to {minimum}")
    try:
        host = instances.hosting_resources(instance_type)
    except ValueError as error:
        _refuse(str(error))
    wanted = {"vCPUs": (requirements.get("NumberOfCpuCoresRequired", 0), host.vcpus),
              "MiB of memory": (requirements["MinMemoryRequiredInMb"], host.memory_mib),
              "accelerators": (requirements.get("NumberOfAcceleratorDevicesRequired", 0), host.accelerators)}
    for what, (asked, offered) in wanted.items():
        if asked > offered:
            _refuse(f"The inference component's compute resource requirements do not fit on {instance_type}: it asks for "
                    f"{asked:g} {what} and one instance has {offered}.")


def check_copies(copies) -> None:
    if not isinstance(copies, int) or copies < 0:
        _refuse(f"Value '{copies}' at 'runtimeConfig.copyCount' failed to satisfy constraint: Member must have value "
                "greater than or equal to 0")


def check_batch_size(size: dict, name: str, percent_range: tuple[int, int]) -> None:
    if size.get("Type") not in BATCH_TYPES or not isinstance(size.get("Value"), int) or size["Value"] < 1:
        _refuse(f"{name} needs Type {' or '.join(BATCH_TYPES)} and an integer Value of at least 1.")
    low, high = percent_range
    if size["Type"] == "CAPACITY_PERCENT" and not low <= size["Value"] <= high:
        _refuse(f"{name} of {size['Value']}% is invalid: the value must be between {low}% and {high}%.")


def check_deployment_config(deployment: dict | None) -> None:
    if deployment is None:
        return
    policy = deployment.get("RollingUpdatePolicy")
    if not policy or "MaximumBatchSize" not in policy or "WaitIntervalInSeconds" not in policy:
        _refuse("DeploymentConfig.RollingUpdatePolicy with MaximumBatchSize and WaitIntervalInSeconds is required.")
    check_batch_size(policy["MaximumBatchSize"], "MaximumBatchSize", (5, 50))
    if policy.get("RollbackMaximumBatchSize"):
        check_batch_size(policy["RollbackMaximumBatchSize"], "RollbackMaximumBatchSize", (1, 100))
    if not 0 <= policy["WaitIntervalInSeconds"] <= 3600:
        _refuse("WaitIntervalInSeconds must be between 0 and 3600.")
    timeout = policy.get("MaximumExecutionTimeoutInSeconds")
    if timeout is not None and not 600 <= timeout <= 28800:
        _refuse("MaximumExecutionTimeoutInSeconds must be between 600 and 28800.")
    alarms = (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms")
    if alarms is not None and (not 1 <= len(alarms) <= 10 or not all(alarm.get("AlarmName") for alarm in alarms)):
        _refuse("AutoRollbackConfiguration.Alarms names 1 to 10 alarms, each with an AlarmName.")


# ------------------------------------------------------------------------------------------- state

@dataclass
class InferenceComponent:
    name: str
    arn: str
    endpoint_name: str
    endpoint_arn: str
    variant_name: str
    specification: dict
    desired_copies: int
    tags: list
    status: str = "Creating"
    current_copies: int = 0
    creation_time: datetime = field(default_factory=utcnow)
    last_modified_time: datetime = field(default_factory=utcnow)
    last_deployment_config: dict | None = None
    failure_reason: str | None = None
    rollback_to: tuple[dict, int] | None = None  # the specification and copies an update replaced, until it completes

    def settle(self, firing_alarms: set[str]) -> None:
        """The deployment in progress completes (Creating/Updating -> InService), or rolls back on a firing alarm."""
        if self.status not in ("Creating", "Updating"):
            return
        alarms = {a["AlarmName"] for a in ((self.last_deployment_config or {}).get("AutoRollbackConfiguration") or {})
                  .get("Alarms", [])}
        if self.rollback_to and alarms & firing_alarms:
            self.specification, self.desired_copies = self.rollback_to
        self.rollback_to, self.status, self.current_copies = None, "InService", self.desired_copies
        self.last_modified_time = utcnow()

    def describe(self) -> dict:
        described = {**self.summary(), "Specification": self.specification,
                     "RuntimeConfig": {"DesiredCopyCount": self.desired_copies, "CurrentCopyCount": self.current_copies}}
        if self.last_deployment_config:
            described["LastDeploymentConfig"] = self.last_deployment_config
        if self.failure_reason:
            described["FailureReason"] = self.failure_reason
        return described

    def summary(self) -> dict:
        return {"InferenceComponentName": self.name, "InferenceComponentArn": self.arn, "EndpointName": self.endpoint_name,
                "EndpointArn": self.endpoint_arn, "VariantName": self.variant_name, "CreationTime": self.creation_time,
                "LastModifiedTime": self.last_modified_time, "InferenceComponentStatus": self.status}


def component_arn(name: str, account: str, region: str) -> str:
    return models.arn_formatter("inference-component", name.lower(), account, region)


def _arn(backend, kind: str, name: str) -> str:
    """moto's ARN of one of its SageMaker resources (it keeps the name's case)."""
    return models.arn_formatter(kind, name, backend.account_id, backend.region_name)


def _components(backend) -> dict[str, InferenceComponent]:
    # moto resets a backend by building a new one, which starts without this attribute
    return backend.__dict__.setdefault("inference_components", {})


def _firing_alarms(backend) -> set[str]:
    from moto.cloudwatch.models import cloudwatch_backends

    alarms = cloudwatch_backends[backend.account_id][backend.region_name].alarms
    return {name for name, alarm in alarms.items() if alarm.state_value == "ALARM"}


def _component(backend, name: str) -> InferenceComponent:
    component = _components(backend).get(name)
    if component is None:
        _refuse(f"Could not find inference component '{component_arn(name, backend.account_id, backend.region_name)}'.")
    return component


def _hosting_variant(backend, endpoint_name: str, variant_name: str | None) -> tuple[object, dict]:
    """The endpoint and the variant an IC is placed on, refused unless AWS would place it there."""
    endpoint = backend.endpoints.get(endpoint_name)
    if endpoint is None:
        _refuse(f"Could not find endpoint '{_arn(backend, 'endpoint', endpoint_name)}'.")
    if endpoint.endpoint_status != "InService":
        _refuse(f"Endpoint {endpoint_name} is {endpoint.endpoint_status}; inference components are created on an "
                "InService endpoint.")
    variants = backend.endpoint_configs[endpoint.endpoint_config_name].production_variants
    if not is_component_based(variants):
        _refuse(f"Endpoint {endpoint_name} hosts models named in its production variants; inference components need "
                "an endpoint whose configuration names no ModelName.")
    if variant_name is None and len(variants) == 1:
        return endpoint, variants[0]
    variant = next((v for v in variants if v["VariantName"] == variant_name), None)
    if variant is None:
        _refuse(f"Could not find production variant {variant_name} on endpoint {endpoint_name}.")
    return endpoint, variant


def _check_specification(backend, specification: dict | None, specifications, instance_type: str) -> None:
    if specification and specifications:
        _refuse("Specify either Specification or Specifications, not both.")
    if specifications:
        _refuse("Specifications (one per instance type) is not emulated locally; use Specification.")
    if not specification or not specification.get("ModelName"):
        _refuse("Specification.ModelName is required: the local emulation serves an inference component's model.")
    check_name(specification["ModelName"], "specification.modelName")
    if specification["ModelName"] not in backend._models:
        _refuse(f"Could not find model '{_arn(backend, 'model', specification['ModelName'])}'.")
    check_compute(specification.get("ComputeResourceRequirements"), instance_type)


def _instance_type_of(backend, component: InferenceComponent) -> str:
    endpoint = backend.endpoints[component.endpoint_name]
    variants = backend.endpoint_configs[endpoint.endpoint_config_name].production_variants
    return next(v for v in variants if v["VariantName"] == component.variant_name)["InstanceType"]


def _updatable(backend, name: str) -> InferenceComponent:
    component = _component(backend, name)
    if component.status in BUSY:
        _refuse(f"Inference component {component.arn} is {component.status}; it can be updated when it is InService "
                "or Failed.")
    return component


# ------------------------------------------------------------------------------------------- backend actions

def create_inference_component(self, name, endpoint_name, variant_name, specification, specifications, runtime_config,
                               tags) -> str:
    check_name(name)
    if name in _components(self):
        _refuse(f'Cannot create already existing inference component "{name}".')
    if len(tags or []) > MAX_TAGS:
        _refuse(f"An inference component has at most {MAX_TAGS} tags.")
    endpoint, variant = _hosting_variant(self, endpoint_name, variant_name)
    _check_specification(self, specification, specifications, variant["InstanceType"])
    if not runtime_config or "CopyCount" not in runtime_config:
        _refuse("RuntimeConfig.CopyCount is required for an inference component that is not an adapter.")
    check_copies(runtime_config["CopyCount"])
    component = InferenceComponent(
        name=name, arn=component_arn(name, self.account_id, self.region_name), endpoint_name=endpoint_name,
        endpoint_arn=endpoint.arn, variant_name=variant["VariantName"], specification=specification,
        desired_copies=runtime_config["CopyCount"], tags=tags or [])
    _components(self)[name] = component
    return component.arn


def describe_inference_component(self, name) -> dict:
    component = _component(self, name)
    component.settle(_firing_alarms(self))
    return component.describe()


def list_inference_components(self, filters: dict, sort_by: str | None, sort_order: str | None, max_results: int | None,
                              next_token: str | None) -> tuple[list[dict], str | None]:
    firing = _firing_alarms(self)
    for component in _components(self).values():
        component.settle(firing)
    chosen = [c for c in _components(self).values() if _matches(c, filters)]
    key = {"Name": lambda c: c.name, "Status": lambda c: c.status}.get(sort_by or "CreationTime", lambda c: c.creation_time)
    chosen.sort(key=key, reverse=(sort_order or "Descending") == "Descending")
    start, size = int(next_token or 0), max_results or 10
    page = chosen[start:start + size]
    return [c.summary() for c in page], (str(start + size) if start + size < len(chosen) else None)


def _matches(component: InferenceComponent, filters: dict) -> bool:
    checks = {
        "NameContains": lambda v: v in component.name,
        "EndpointNameEquals": lambda v: component.endpoint_name == v,
        "VariantNameEquals": lambda v: component.variant_name == v,
        "StatusEquals": lambda v: component.status == v,
        "CreationTimeBefore": lambda v: component.creation_time < _as_time(v),
        "CreationTimeAfter": lambda v: component.creation_time > _as_time(v),
        "LastModifiedTimeBefore": lambda v: component.last_modified_time < _as_time(v),
        "LastModifiedTimeAfter": lambda v: component.last_modified_time > _as_time(v),
    }
    return all(checks[name](value) for name, value in filters.items() if value is not None)


def _as_time(value) -> datetime:
    """The JSON protocol sends timestamps as epoch seconds."""
    from datetime import timezone

    stamp = value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), tz=timezone.utc)
    return stamp.replace(tzinfo=None) if utcnow().tzinfo is None else stamp


def update_inference_component(self, name, specification, specifications, runtime_config, deployment_config) -> str:
    component = _updatable(self, name)
    if specification is not None or specifications is not None:
        _check_specification(self, specification, specifications, _instance_type_of(self, component))
    if runtime_config is not None:
        check_copies(runtime_config.get("CopyCount"))
    check_deployment_config(deployment_config)
    component.rollback_to = (component.specification, component.desired_copies)
    component.specification = specification or component.specification
    component.desired_copies = runtime_config["CopyCount"] if runtime_config else component.desired_copies
    component.last_deployment_config = deployment_config or component.last_deployment_config
    component.status, component.last_modified_time = "Updating", utcnow()
    return component.arn


def update_inference_component_runtime_config(self, name, desired_runtime_config) -> str:
    component = _updatable(self, name)
    check_copies((desired_runtime_config or {}).get("CopyCount"))
    component.desired_copies = desired_runtime_config["CopyCount"]
    component.status, component.last_modified_time = "Updating", utcnow()
    return component.arn


def delete_inference_component(self, name) -> None:
    _component(self, name)
    del _components(self)[name]


# ------------------------------------------------------------------------------------------- responses

def create_inference_component_response(self) -> ActionResult:
    arn = self.sagemaker_backend.create_inference_component(
        name=self._get_param("InferenceComponentName"), endpoint_name=self._get_param("EndpointName"),
        variant_name=self._get_param("VariantName"), specification=self._get_param("Specification"),
        specifications=self._get_param("Specifications"), runtime_config=self._get_param("RuntimeConfig"),
        tags=self._get_param("Tags"))
    return ActionResult({"InferenceComponentArn": arn})


def describe_inference_component_response(self) -> ActionResult:
    return ActionResult(self.sagemaker_backend.describe_inference_component(self._get_param("InferenceComponentName")))


LIST_FILTERS = ("NameContains", "EndpointNameEquals", "VariantNameEquals", "StatusEquals", "CreationTimeBefore",
                "CreationTimeAfter", "LastModifiedTimeBefore", "LastModifiedTimeAfter")


def list_inference_components_response(self) -> ActionResult:
    page, token = self.sagemaker_backend.list_inference_components(
        filters={name: self._get_param(name) for name in LIST_FILTERS}, sort_by=self._get_param("SortBy"),
        sort_order=self._get_param("SortOrder"), max_results=self._get_param("MaxResults"),
        next_token=self._get_param("NextToken"))
    return ActionResult({"InferenceComponents": page, **({"NextToken": token} if token else {})})


def update_inference_component_response(self) -> ActionResult:
    arn = self.sagemaker_backend.update_inference_component(
        name=self._get_param("InferenceComponentName"), specification=self._get_param("Specification"),
        specifications=self._get_param("Specifications"), runtime_config=self._get_param("RuntimeConfig"),
        deployment_config=self._get_param("DeploymentConfig"))
    return ActionResult({"InferenceComponentArn": arn})


def update_inference_component_runtime_config_response(self) -> ActionResult:
    arn = self.sagemaker_backend.update_inference_component_runtime_config(
        name=self._get_param("InferenceComponentName"), desired_runtime_config=self._get_param("DesiredRuntimeConfig"))
    return ActionResult({"InferenceComponentArn": arn})


def delete_inference_component_response(self) -> EmptyResult:
    self.sagemaker_backend.delete_inference_component(self._get_param("InferenceComponentName"))
    return EmptyResult()


ACTIONS = {"create_inference_component": (create_inference_component, create_inference_component_response),
           "describe_inference_component": (describe_inference_component, describe_inference_component_response),
           "list_inference_components": (list_inference_components, list_inference_components_response),
           "update_inference_component": (update_inference_component, update_inference_component_response),
           "update_inference_component_runtime_config": (update_inference_component_runtime_config,
                                                         update_inference_component_runtime_config_response),
           "delete_inference_component": (delete_inference_component, delete_inference_component_response)}


# ------------------------------------------------------------------------------------------- install

def install() -> None:
    global _installed
    if _installed:
        return
    for name, (backend_method, response_method) in ACTIONS.items():
        setattr(models.SageMakerModelBackend, name, backend_method)
        setattr(responses.SageMakerResponse, name, response_method)
    _install_component_based_endpoint_configs()
    _install_autoscaling_dimension()
    _installed = True


def _install_component_based_endpoint_configs() -> None:
    from moto.sagemaker.models import FakeEndpointConfig

    original_response, original_check = responses.SageMakerResponse.create_endpoint_config, \
        models.SageMakerModelBackend.validate_production_variants

    def create_endpoint_config(self) -> ActionResult:
        role = self._get_param("ExecutionRoleArn")
        check_endpoint_config(self._get_param("ProductionVariants") or [], role)
        result = original_response(self)
        if role:
            self.sagemaker_backend.endpoint_configs[self._get_param("EndpointConfigName")].execution_role_arn = role
        return result

    def validate_production_variants(self, production_variants) -> None:
        original_check(self, [variant for variant in production_variants if variant.get("ModelName")])

    def validate_instance_type(self, instance_type: str) -> None:
        if instance_type not in instances.known_types("hosting"):
            _refuse(f"Value '{instance_type}' at 'instanceType' failed to satisfy constraint: Member must satisfy enum "
                    "value set: botocore's ProductionVariantInstanceType")

    responses.SageMakerResponse.create_endpoint_config = create_endpoint_config
    models.SageMakerModelBackend.validate_production_variants = validate_production_variants
    FakeEndpointConfig.validate_instance_type = validate_instance_type


def _install_autoscaling_dimension() -> None:
    """Adds the IC dimension to moto's enum of scalable dimensions, which both of its validators read."""
    from moto.applicationautoscaling.models import ScalableDimensionValueSet

    if SCALABLE_DIMENSION in ScalableDimensionValueSet._value2member_map_:
        return
    member = object.__new__(ScalableDimensionValueSet)
    member._name_, member._value_ = "SAGEMAKER_INFERENCE_COMPONENT_DESIRED_COPY_COUNT", SCALABLE_DIMENSION
    ScalableDimensionValueSet._member_map_[member._name_] = member
    ScalableDimensionValueSet._value2member_map_[SCALABLE_DIMENSION] = member
    ScalableDimensionValueSet._member_names_.append(member._name_)

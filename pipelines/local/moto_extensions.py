"""What moto 5.2.5 lacks or gets wrong for this platform's local emulation.

- SageMaker UpdateEndpoint does not exist in moto.
- UpdateModelPackage replaces CustomerMetadataProperties with nothing when the call does not pass
  them; AWS keeps them (and merges passed keys), so approving a package would erase its lineage. Likewise
  the approval status and its description when a call (recording metadata) passes neither.
- StopExecution does not stop a run waiting on a task token until that task times out.
- UpdateModelPackage ignores InferenceSpecification (AWS replaces the package's containers with it).
- CreateModelPackage and UpdateModelPackage drop ModelCard, and DescribeModelPackage returns none: the model card
  every version carries (lambdas/pipeline/model_card.py) is kept and returned here, an update of its status alone
  keeping its content, with AWS's refusals of a content longer than 100000 characters (botocore's
  ModelPackageModelCard.ModelCardContent) and of a content update of an Archived card (ModelPackageModelCard docs:
  "Model Card is in Archived state").
- SageMaker inference components (the six actions, IC-based endpoint configurations, Application Auto Scaling's
  IC dimension) do not exist in moto: pipelines/local/inference_components.py adds them, with AWS's validations.
- There is no Price List API (pricing:GetProducts answers 404 "Not yet implemented"): pipelines/local/price_list.py
  answers it from recorded prices.

AWS validations moto lacks (moto accepts these; SageMaker refuses them), each with the contract it follows:
- CreateModel / CreateEndpointConfig / CreateTrainingJob with a name that exists: "Cannot create already
  existing model" (CreateModel API reference: names must be unique in the account and Region).
- A KMS volume key on an instance type with local NVMe storage: CreateTrainingJob (ResourceConfig
  .VolumeKmsKeyId), CreateTransformJob (TransformResources.VolumeKmsKeyId), CreateEndpointConfig (KmsKeyId):
  "You can't request a VolumeKmsKeyId when using an instance type with local storage" (botocore doc strings).
- Serverless variants with data capture (Serverless Inference, "Feature exclusions").
- UpdateEndpoint canary / linear sizes against the variant's instance count (TrafficRoutingConfig: a canary
  at most 50% of the instances, a linear step 10-50%, each at least one instance).

moto reads a bucket policy statement whose conditions it cannot verify as a Deny on object requests: its own
bucket-policy check is left to the enforced-IAM evaluation (pipelines/local/policy_evaluation.py).

sts:GetCallerIdentity finds the caller's access key only when its id is 20 characters long (AWS's), and answers any
other with a default user `moto`; the local mode's administrator signs with the key id `local`, and the runs API's
model proof (lambdas/shared/model_proof.py) names the caller's UserId, so the key is read from the signature.

Registered on moto's SageMaker backend and response classes (moto dispatches actions by method
name), so boto3 calls reach it in-process and through moto's server alike.
"""

from __future__ import annotations

from moto.core.responses import ActionResult
from moto.sagemaker import exceptions, models, responses

from pipelines import instances
from pipelines.local import inference_components, price_list

_installed = False


def _refuse(message: str) -> None:
    raise exceptions.ValidationError(message=message)


def check_unique(existing, kind: str, name: str) -> None:
    if name in existing:
        _refuse(f'Cannot create already existing {kind} "{name}".')


def check_volume_key(instance_type: str | None, key: str | None, field: str) -> None:
    if key and instance_type and instances.has_local_storage(instance_type):
        _refuse(f"{field} cannot be specified for {instance_type}: instance types with local storage encrypt their "
                "volumes with a hardware module; remove the key.")


def check_endpoint_config(variants: list[dict], data_capture: dict | None, kms_key_id: str | None) -> None:
    for variant in variants:
        if variant.get("ServerlessConfig") and data_capture and data_capture.get("EnableCapture", True):
            _refuse("DataCaptureConfig is not supported for serverless endpoints.")
        check_volume_key(variant.get("InstanceType"), kms_key_id, "KmsKeyId")


def check_traffic_routing(deployment: dict | None, instance_count: int) -> None:
    routing = ((deployment or {}).get("BlueGreenUpdatePolicy") or {}).get("TrafficRoutingConfiguration") or {}
    size = routing.get("CanarySize") if routing.get("Type") == "CANARY" else routing.get("LinearStepSize")
    if routing.get("Type") not in ("CANARY", "LINEAR") or not size:
        return
    instances_in_step = size["Value"] if size["Type"] == "INSTANCE_COUNT" else instance_count * size["Value"] / 100
    lowest = 0.1 * instance_count if routing["Type"] == "LINEAR" else 0
    if instances_in_step < max(1, lowest) or instances_in_step > instance_count / 2:
        _refuse(f"{routing['Type']} size {size['Value']} ({size['Type']}) is invalid for a variant of {instance_count} "
                "instance(s): it must be at least one instance and at most 50% of the variant's instances.")


def install() -> None:
    global _installed
    if _installed:
        return

    def update_endpoint(self, endpoint_name: str, endpoint_config_name: str, deployment_config: dict | None = None) -> str:
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            raise exceptions.ValidationError(message=f'Could not find endpoint "{endpoint_name}".')
        if endpoint_config_name not in self.endpoint_configs:
            raise exceptions.ValidationError(message=f'Could not find endpoint configuration "{endpoint_config_name}".')
        config = self.endpoint_configs[endpoint_config_name]
        for variant in config.production_variants:
            if variant.get("InitialInstanceCount"):
                check_traffic_routing(deployment_config, int(variant["InitialInstanceCount"]))
        endpoint.endpoint_config_name = endpoint_config_name
        endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
        endpoint.data_capture_config = config.data_capture_config
        endpoint.last_deployment_config = deployment_config
        return endpoint.arn

    def update_endpoint_response(self) -> ActionResult:
        arn = self.sagemaker_backend.update_endpoint(
            endpoint_name=self._get_param("EndpointName"), endpoint_config_name=self._get_param("EndpointConfigName"),
            deployment_config=self._get_param("DeploymentConfig"))
        return ActionResult({"EndpointArn": arn})

    original_update_package = models.SageMakerModelBackend.update_model_package

    def update_model_package(self, model_package_arn, model_approval_status, approval_description,
                             customer_metadata_properties, *args, **kwargs):
        name = self.model_package_name_mapping.get(model_package_arn, model_package_arn)
        package = self.model_packages.get(name)
        existing = getattr(package, "customer_metadata_properties", None) or {}
        merged = {**existing, **(customer_metadata_properties or {})}
        if package is not None and model_approval_status is None:  # AWS keeps the status and its description
            model_approval_status, approval_description = package.model_approval_status, package.approval_description
        return original_update_package(self, model_package_arn, model_approval_status, approval_description,
                                       merged or None, *args, **kwargs)

    _install_validations()
    _install_caller_identity_of_any_key()
    _install_stop_of_waiting_tasks()
    _leave_bucket_policies_to_the_iam_check()
    _install_inference_specification_updates()
    _install_model_cards()
    inference_components.install()  # moto has no inference components (pipelines/local/inference_components.py)
    price_list.install()  # pricing:GetProducts from recorded prices (moto has no Price List API)
    models.SageMakerModelBackend.update_endpoint = update_endpoint
    models.SageMakerModelBackend.update_model_package = update_model_package
    responses.SageMakerResponse.update_endpoint = update_endpoint_response
    _installed = True


def _install_caller_identity_of_any_key() -> None:
    import re

    from moto.sts.responses import TokenResponse

    original = TokenResponse.get_caller_identity

    def get_caller_identity(self) -> ActionResult:
        signed = re.search(r"Credential=([^/,\s]+)/", self.headers.get("Authorization", ""))
        if signed is None:
            return original(self)
        user_id, arn, account = self.backend.get_caller_identity(signed.group(1), self.region)
        return ActionResult({"UserId": user_id, "Account": account, "Arn": arn})

    TokenResponse.get_caller_identity = get_caller_identity


def _install_stop_of_waiting_tasks() -> None:
    """StopExecution of a run parked at a .waitForTaskToken task (the approval wait): AWS stops it at once; moto's
    interpreter kept waiting for the token until the task's timeout (24 h). Stopping now also wakes the execution's
    callback waits, so the run ends ABORTED."""
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker.stop

    def stop(self, stop_date, error, cause):
        original(self, stop_date=stop_date, error=error, cause=cause)
        pool = getattr(getattr(self.env, "callback_pool_manager", None), "_pool", {})
        for endpoint in list(pool.values()):
            endpoint.interrupt_all()

    def keeps_stopped(method):  # the woken wait must not turn the stopped run into a failed or timed-out one
        def guarded(self, *args, **kwargs):
            if isinstance(self._program_state, ProgramStopped):
                return None
            return method(self, *args, **kwargs)
        return guarded

    ExecutionWorker.stop = stop
    Environment.set_error = keeps_stopped(Environment.set_error)
    Environment.set_timed_out = keeps_stopped(Environment.set_timed_out)


def _install_inference_specification_updates() -> None:
    """UpdateModelPackage replaces a package's InferenceSpecification (its containers, so its artifact and image) when
    the call passes one (botocore's sagemaker model, UpdateModelPackageInput.InferenceSpecification); moto drops it.
    The deploy gate must see such a change to refuse it."""
    original = responses.SageMakerResponse.update_model_package

    def update_model_package(self) -> ActionResult:
        result = original(self)
        specification = self._get_param("InferenceSpecification")
        if specification:
            arn = self._get_param("ModelPackageArn")
            backend = self.sagemaker_backend
            backend.model_packages[backend.model_package_name_mapping.get(arn, arn)].inference_specification = specification
        return result

    responses.SageMakerResponse.update_model_package = update_model_package


MODEL_CARD_MAX_CHARS = 100_000


def merged_model_card(existing: dict | None, requested: dict | None) -> dict | None:
    """A package's ModelCard after a request carrying `requested` (None: unchanged): the status and the content are
    each replaced when passed, kept when not; an Archived card's content cannot change."""
    if not requested:
        return existing
    content = requested.get("ModelCardContent")
    if content is not None and len(content) > MODEL_CARD_MAX_CHARS:
        _refuse(f"ModelCard.ModelCardContent is {len(content)} characters; the maximum is {MODEL_CARD_MAX_CHARS}.")
    if existing and existing.get("ModelCardStatus") == "Archived" and content is not None \
            and content != existing.get("ModelCardContent"):
        _refuse("Model Card is in Archived state")
    merged = {**(existing or {}), **{key: value for key, value in requested.items() if value is not None}}
    return merged or None


def _install_model_cards() -> None:
    original_create, original_update = responses.SageMakerResponse.create_model_package, \
        responses.SageMakerResponse.update_model_package
    original_describe = models.ModelPackage.gen_response_object

    def keep(self, result: ActionResult, arn: str) -> ActionResult:
        backend = self.sagemaker_backend
        package = backend.model_packages[backend.model_package_name_mapping.get(arn, arn)]
        package.model_card = merged_model_card(getattr(package, "model_card", None), self._get_param("ModelCard"))
        return result

    def create_model_package(self) -> ActionResult:
        merged_model_card(None, self._get_param("ModelCard"))  # refused before anything is created
        result = original_create(self)
        return keep(self, result, result.result["ModelPackageArn"])

    def update_model_package(self) -> ActionResult:
        arn = self._get_param("ModelPackageArn")
        backend = self.sagemaker_backend
        package = backend.model_packages.get(backend.model_package_name_mapping.get(arn, arn))
        merged_model_card(getattr(package, "model_card", None), self._get_param("ModelCard"))
        return keep(self, original_update(self), arn)

    def gen_response_object(self) -> dict:
        response = original_describe(self)
        card = getattr(self, "model_card", None)
        return {**response, "ModelCard": dict(card)} if card else response

    responses.SageMakerResponse.create_model_package = create_model_package
    responses.SageMakerResponse.update_model_package = update_model_package
    models.ModelPackage.gen_response_object = gen_response_object


def _leave_bucket_policies_to_the_iam_check() -> None:
    """moto checks a bucket policy on object requests without knowing the caller or any condition key, and reads a
    statement whose conditions it cannot verify as a Deny: the artifact bucket's TLS-only statement (Deny when
    aws:SecureTransport is false) would refuse every request. Under enforced IAM the bucket policy is evaluated with
    the caller and the request's keys (pipelines/local/policy_evaluation.py); without enforcement, like identity
    policies, it is not."""
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    FakeBucket.get_permission = lambda self, action, resource: PermissionResult.NEUTRAL


def _install_validations() -> None:
    """moto's responses call the backend with keyword arguments only."""
    backend = models.SageMakerModelBackend
    create_model, create_config = backend.create_model, backend.create_endpoint_config
    create_training, create_transform = backend.create_training_job, backend.create_transform_job

    def validated_create_model(self, **request):
        check_unique(self._models, "model", request["model_name"])
        return create_model(self, **request)

    def validated_create_config(self, **request):
        check_unique(self.endpoint_configs, "endpoint configuration", request["endpoint_config_name"])
        check_endpoint_config(request["production_variants"] or [], request.get("data_capture_config"),
                              request.get("kms_key_id"))
        return create_config(self, **request)

    def validated_create_training(self, **request):
        check_unique(self.training_jobs, "training job", request["training_job_name"])
        resources = request.get("resource_config") or {}
        check_volume_key(resources.get("InstanceType"), resources.get("VolumeKmsKeyId"), "ResourceConfig.VolumeKmsKeyId")
        return create_training(self, **request)

    def validated_create_transform(self, **request):
        resources = request.get("transform_resources") or {}
        check_volume_key(resources.get("InstanceType"), resources.get("VolumeKmsKeyId"), "TransformResources.VolumeKmsKeyId")
        return create_transform(self, **request)

    backend.create_model = validated_create_model
    backend.create_endpoint_config = validated_create_config
    backend.create_training_job = validated_create_training
    backend.create_transform_job = validated_create_transform

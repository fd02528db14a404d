"""What moto 5.2.5 lacks or gets wrong for this platform's local emulation.

- SageMaker UpdateEndpoint does not exist in moto.
- UpdateModelPackage replaces CustomerMetadataProperties with nothing when the call does not pass
  them; AWS keeps them (and merges passed keys), so approving a package would erase its lineage.

Registered on moto's SageMaker backend and response classes (moto dispatches actions by method
name), so boto3 calls reach it in-process and through moto's server alike.
"""

from __future__ import annotations

from moto.core.responses import ActionResult
from moto.sagemaker import exceptions, models, responses

_installed = False


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
        existing = getattr(self.model_packages.get(name), "customer_metadata_properties", None) or {}
        merged = {**existing, **(customer_metadata_properties or {})}
        return original_update_package(self, model_package_arn, model_approval_status, approval_description,
                                       merged or None, *args, **kwargs)

    models.SageMakerModelBackend.update_endpoint = update_endpoint
    models.SageMakerModelBackend.update_model_package = update_model_package
    responses.SageMakerResponse.update_endpoint = update_endpoint_response
    _installed = True

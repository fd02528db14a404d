"""What moto 5.2.5 lacks for this platform's local emulation: SageMaker UpdateEndpoint.

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

    models.SageMakerModelBackend.update_endpoint = update_endpoint
    responses.SageMakerResponse.update_endpoint = update_endpoint_response
    _installed = True

"""Local SageMaker hosting: the InvokeEndpoint REST API on 127.0.0.1, backed by the model's inference.py.

An endpoint name resolves, through the (emulated) SageMaker API, to its endpoint config, model,
model package and model.tar.gz; the artifact is unpacked once per package and served with its own
code/inference.py, whatever its framework (PyTorch, XGBoost, scikit-learn: all installed here; a
bring-your-own image's inference.py runs the same way), each artifact's modules kept apart. Requests are captured like SageMaker data capture (the config's sampling
percentage, JSONL under <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/), so the drift hook
reads real traffic. boto3's sagemaker-runtime client talks to it with endpoint_url=server.url.

Inference components (pipelines/local/inference_components.py): an endpoint whose configuration names no model serves
the model of the inference component the request names (InvokeEndpoint's InferenceComponentName, the
X-Amzn-SageMaker-Inference-Component header), through the same model -> package -> artifact path. Refused as SageMaker
refuses them (ValidationError, HTTP 400; the two header messages are SageMaker's own, as clients report them): such an
endpoint invoked without the header, a model endpoint invoked with it, an inference component that does not exist or
is hosted on another endpoint, and one with no copies, answered with the documented scale-to-zero message
(INFERENCE_COMPONENT_NO_CAPACITY). That failed request also counts in AWS/SageMaker NoCapacityInvocationFailures
(dimension InferenceComponentName), and when Application Auto Scaling has a scalable target for the component
(inference-component/<name>, sagemaker:inference-component:DesiredCopyCount) whose MaxCapacity is at least 1, the copy
count goes to 1 as the documented scale-out-from-zero setup (an alarm on that metric driving a step scaling policy,
SageMaker developer guide "Scale an endpoint to zero instances") would: the retry is served.

Data capture of an inference component's traffic: AWS documents data capture per endpoint configuration only
(CreateEndpointConfig DataCaptureConfig; "Capture data from real-time endpoint") and names no inference component in
the capture record (captureData, eventMetadata, eventVersion) or its S3 path; the emulation does the same, so a
component's requests land under the endpoint and variant like any other. InvokeEndpoint's InferenceId (botocore: "it
is added to the captured data") is recorded as eventMetadata.inferenceId, which is how a caller can tell them apart.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
import tarfile
import tempfile
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from pipelines.local.inference_components import (INFERENCE_COMPONENT_NAME_NOT_ALLOWED, INFERENCE_COMPONENT_NAME_REQUIRED,
                                                  INFERENCE_COMPONENT_NO_CAPACITY, SCALABLE_DIMENSION, is_component_based)
from pipelines.modelkit.loader import ServingCode

_PATH = re.compile(r"^/endpoints/([A-Za-z0-9-]{1,63})/invocations$")
# InvokeEndpoint's InferenceComponentName and InferenceId travel as these headers (botocore's sagemaker-runtime model)
COMPONENT_HEADER, INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Component", "X-Amzn-SageMaker-Inference-Id"


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class LoadedModel:
    """One artifact's own code/inference.py with its model, imported in isolation: models of different folders
    (each with its own `inference`, `modelkit` and helpers) are served side by side in one process."""

    def __init__(self, directory: Path) -> None:
        self.serving = ServingCode(directory)

    def handle(self, body: bytes, content_type: str, accept: str, environment: dict | None = None) -> tuple[str, str]:
        return self.serving.handle(body, content_type, accept, environment)


class InvocationRefused(Exception):
    """A request SageMaker refuses before any model sees it: (HTTP status, error code, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Served:
    """What one request is served by: the loaded model, the endpoint's data capture config and the variant."""

    model: LoadedModel
    capture: dict
    variant: str
    environment: dict  # the SageMaker model's container Environment (CreateModel's, over its package's)


class Hosting:
    """Resolves endpoints (and inference components) to loaded models (cached per artifact) and writes data capture."""

    def __init__(self, workdir: Path, region: str = "us-east-1", seed: int = 0) -> None:
        self.workdir, self.region = Path(workdir).resolve(), region
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sagemaker = boto3.client("sagemaker", region_name=region)
        self.s3 = boto3.client("s3", region_name=region)
        self.autoscaling = boto3.client("application-autoscaling", region_name=region)
        self.cloudwatch = boto3.client("cloudwatch", region_name=region)
        self.models: dict[str, LoadedModel] = {}
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.invocations = 0

    def resolve(self, endpoint: str, component: str | None = None) -> Served:
        described = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        model_name, variant = self._served_model(endpoint, config["ProductionVariants"], component)
        artifact, environment = self._artifact(model_name)
        return Served(self._load(artifact), config.get("DataCaptureConfig") or {}, variant, environment)

    def _served_model(self, endpoint: str, variants: list[dict], component: str | None) -> tuple[str, str]:
        """(model name, variant) a request is served by; refused as SageMaker refuses it."""
        if not is_component_based(variants):
            if component:
                raise InvocationRefused(400, "ValidationError", INFERENCE_COMPONENT_NAME_NOT_ALLOWED)
            return variants[0]["ModelName"], variants[0]["VariantName"]
        if not component:
            raise InvocationRefused(400, "ValidationError", INFERENCE_COMPONENT_NAME_REQUIRED)
        described = self._component(endpoint, component)
        if described["RuntimeConfig"]["CurrentCopyCount"] == 0:
            self._scale_out_from_zero(component)
            raise InvocationRefused(400, "ValidationError", INFERENCE_COMPONENT_NO_CAPACITY)
        return described["Specification"]["ModelName"], described["VariantName"]

    def _component(self, endpoint: str, component: str) -> dict:
        try:
            described = self.sagemaker.describe_inference_component(InferenceComponentName=component)
        except ClientError:
            described = None
        if described is None or described["EndpointName"] != endpoint:
            raise InvocationRefused(400, "ValidationError",
                                    f"Inference component {component} does not exist on endpoint {endpoint}.")
        return described

    def _scale_out_from_zero(self, component: str) -> None:
        """The no-capacity failure is counted; a registered scalable target that may grow gets one copy."""
        self.cloudwatch.put_metric_data(Namespace="AWS/SageMaker", MetricData=[{
            "MetricName": "NoCapacityInvocationFailures", "Value": 1.0, "Unit": "Count",
            "Dimensions": [{"Name": "InferenceComponentName", "Value": component}]}])
        targets = self.autoscaling.describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=[f"inference-component/{component}"],
            ScalableDimension=SCALABLE_DIMENSION)["ScalableTargets"]
        if any(target["MaxCapacity"] >= 1 for target in targets):
            try:
                self.sagemaker.update_inference_component_runtime_config(
                    InferenceComponentName=component, DesiredRuntimeConfig={"CopyCount": 1})
            except ClientError:  # already scaling out (Updating): the next retry finds it
                pass

    def _artifact(self, model_name: str) -> tuple[str, dict]:
        """(model.tar.gz URI, container environment) of a SageMaker model."""
        model = self.sagemaker.describe_model(ModelName=model_name)
        container = (model.get("Containers") or [model.get("PrimaryContainer")])[0]
        package_arn = container.get("ModelPackageName")
        if package_arn:
            package = self.sagemaker.describe_model_package(ModelPackageName=package_arn)["InferenceSpecification"]
            packaged = package["Containers"][0]
            return packaged["ModelDataUrl"], {**(packaged.get("Environment") or {}), **(container.get("Environment") or {})}
        return container["ModelDataUrl"], container.get("Environment") or {}

    def _load(self, artifact: str) -> LoadedModel:
        with self.lock:
            if artifact not in self.models:
                self.models[artifact] = LoadedModel(self._unpack(artifact))
        return self.models[artifact]

    def _unpack(self, artifact: str) -> Path:
        bucket, key = _split(artifact)
        target = Path(tempfile.mkdtemp(prefix="model-", dir=self.workdir))
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            tar.extractall(target, filter="data")
        return target

    def capture(self, endpoint: str, config: dict, request: bytes, content_type: str, response: str,
                variant: str = "AllTraffic", inference_id: str | None = None) -> None:
        if not config.get("EnableCapture") or self.random.uniform(0, 100) >= config.get("InitialSamplingPercentage", 0):
            return
        now = datetime.now(timezone.utc)
        metadata = {"eventId": str(uuid.uuid4()), "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if inference_id:
            metadata["inferenceId"] = inference_id
        record = {"captureData": {
            "endpointInput": {"observedContentType": content_type, "mode": "INPUT",
                              "data": base64.b64encode(request).decode(), "encoding": "BASE64"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": response,
                               "encoding": "JSON"}},
            "eventMetadata": metadata, "eventVersion": "0"}
        bucket, prefix = _split(config["DestinationS3Uri"].rstrip("/"))
        key = f"{prefix}/{endpoint}/{variant}/{now:%Y/%m/%d/%H}/{uuid.uuid4().hex}.jsonl".lstrip("/")
        self.s3.put_object(Bucket=bucket, Key=key, Body=(json.dumps(record) + "\n").encode())


class _Handler(BaseHTTPRequestHandler):
    hosting: Hosting

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        match = _PATH.match(self.path.split("?")[0])
        if not match:
            return self._reply(404, {"message": f"no such path {self.path}"})
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        content_type = self.headers.get("Content-Type", "application/json")
        endpoint = match.group(1)
        try:
            served = self.hosting.resolve(endpoint, self.headers.get(COMPONENT_HEADER))
        except InvocationRefused as refused:
            return self._reply(refused.status, {"ErrorCode": refused.code, "message": refused.message})
        except Exception as error:  # the endpoint does not exist or its artifact cannot load
            return self._reply(400, {"ErrorCode": "ValidationError", "message": f"endpoint {endpoint}: {error}"})
        try:
            output, output_type = served.model.handle(body, content_type, self.headers.get("Accept", "application/json"),
                                                      served.environment)
        except Exception as error:  # inference.BadRequest and model failures alike: a ModelError, as SageMaker says
            return self._reply(424, {"ErrorCode": "ModelError", "message": str(error)})
        self.hosting.invocations += 1
        self.hosting.capture(endpoint, served.capture, body, content_type, output, served.variant,
                             self.headers.get(INFERENCE_ID_HEADER))
        self.send_response(200)
        self.send_header("Content-Type", output_type)
        self.send_header("x-Amzn-Invoked-Production-Variant", served.variant)
        self.end_headers()
        self.wfile.write(output.encode())

    def _reply(self, status: int, document: dict) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-ErrorType", document.get("ErrorCode", "ValidationError"))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:  # quiet: the local mode shows its own progress
        pass


class LocalHostingServer:
    def __init__(self, hosting: Hosting, port: int = 0) -> None:
        handler = type("Handler", (_Handler,), {"hosting": hosting})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.hosting = hosting
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LocalHostingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

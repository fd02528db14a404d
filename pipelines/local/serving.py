"""Local SageMaker hosting: the InvokeEndpoint REST API on 127.0.0.1, backed by the model's inference.py.

An endpoint name resolves, through the (emulated) SageMaker API, to its endpoint config, model,
model package and model.tar.gz; the artifact is unpacked once per package and served with its own
code/inference.py, whatever its framework (PyTorch, XGBoost, scikit-learn: all installed here; a
bring-your-own image's inference.py runs the same way), each artifact's modules kept apart. Requests are captured like SageMaker data capture (the config's sampling
percentage, JSONL under <destination>/<endpoint>/AllTraffic/yyyy/mm/dd/hh/), so the drift hook
reads real traffic. boto3's sagemaker-runtime client talks to it with endpoint_url=server.url.
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
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3

from pipelines.modelkit.loader import ServingCode

_PATH = re.compile(r"^/endpoints/([A-Za-z0-9-]{1,63})/invocations$")


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class LoadedModel:
    """One artifact's own code/inference.py with its model, imported in isolation: models of different folders
    (each with its own `inference`, `modelkit` and helpers) are served side by side in one process."""

    def __init__(self, directory: Path) -> None:
        self.serving = ServingCode(directory)

    def handle(self, body: bytes, content_type: str, accept: str) -> tuple[str, str]:
        return self.serving.handle(body, content_type, accept)


class Hosting:
    """Resolves endpoints to loaded models (cached per model package) and writes data capture."""

    def __init__(self, workdir: Path, region: str = "us-east-1", seed: int = 0) -> None:
        self.workdir, self.region = Path(workdir).resolve(), region
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sagemaker = boto3.client("sagemaker", region_name=region)
        self.s3 = boto3.client("s3", region_name=region)
        self.models: dict[str, LoadedModel] = {}
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.invocations = 0

    def resolve(self, endpoint: str) -> tuple[LoadedModel, dict]:
        described = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        model = self.sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        container = (model.get("Containers") or [model.get("PrimaryContainer")])[0]
        package_arn = container.get("ModelPackageName")
        if package_arn:
            package = self.sagemaker.describe_model_package(ModelPackageName=package_arn)
            artifact = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        else:
            artifact = container["ModelDataUrl"]
        with self.lock:
            if artifact not in self.models:
                self.models[artifact] = LoadedModel(self._unpack(artifact))
        return self.models[artifact], config.get("DataCaptureConfig") or {}

    def _unpack(self, artifact: str) -> Path:
        bucket, key = _split(artifact)
        target = Path(tempfile.mkdtemp(prefix="model-", dir=self.workdir))
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            tar.extractall(target, filter="data")
        return target

    def capture(self, endpoint: str, config: dict, request: bytes, content_type: str, response: str) -> None:
        if not config.get("EnableCapture") or self.random.uniform(0, 100) >= config.get("InitialSamplingPercentage", 0):
            return
        now = datetime.now(timezone.utc)
        record = {"captureData": {
            "endpointInput": {"observedContentType": content_type, "mode": "INPUT",
                              "data": base64.b64encode(request).decode(), "encoding": "BASE64"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": response,
                               "encoding": "JSON"}},
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "eventVersion": "0"}
        bucket, prefix = _split(config["DestinationS3Uri"].rstrip("/"))
        key = f"{prefix}/{endpoint}/AllTraffic/{now:%Y/%m/%d/%H}/{uuid.uuid4().hex}.jsonl".lstrip("/")
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
            model, capture = self.hosting.resolve(endpoint)
        except Exception as error:  # the endpoint does not exist or its artifact cannot load
            return self._reply(400, {"ErrorCode": "ValidationError", "message": f"endpoint {endpoint}: {error}"})
        try:
            output, output_type = model.handle(body, content_type, self.headers.get("Accept", "application/json"))
        except Exception as error:  # inference.BadRequest and model failures alike: a ModelError, as SageMaker says
            return self._reply(424, {"ErrorCode": "ModelError", "message": str(error)})
        self.hosting.invocations += 1
        self.hosting.capture(endpoint, capture, body, content_type, output)
        self.send_response(200)
        self.send_header("Content-Type", output_type)
        self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
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

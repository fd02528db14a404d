"""The local mode's MLflow tracking server: MLflow's own tracking server (the REST handlers of mlflow-skinny, a
SQLite store and an artifact folder under the work folder) on 127.0.0.1, found the way AWS finds it.

- Provisioning an `AWS::SageMaker::MlflowTrackingServer` registers it here (`create_server`); moto has no MLflow
  APIs, so `install` adds DescribeMlflowTrackingServer and CreatePresignedMlflowTrackingServerUrl to moto's
  SageMaker, answering with the local server's URL.
- The server starts on first use (the first DescribeMlflowTrackingServer), once per process: every emulated
  account and region shares it, each server name is its own experiment namespace only by experiment name.
- The pipeline's handlers and `mlops experiments` talk to it exactly as to SageMaker's (SigV4-signed MLflow REST
  requests; the signature is not checked here, and neither is IAM on sagemaker-mlflow actions: moto has no such
  service).
"""

from __future__ import annotations

import logging
import warnings
import threading
from datetime import datetime, timezone
from pathlib import Path

_lock = threading.Lock()
_server: dict = {}  # "url", "root", "thread", "http"
_registered: dict[tuple[str, str, str], dict] = {}  # (account, region, name) -> the described server
_installed = False


def create_server(account: str, region: str, properties: dict, root: Path) -> dict[str, str]:
    """What provisioning the template's MlflowTrackingServer makes: a registration (the MLflow server itself starts
    when first described). root: the work folder the store lives in."""
    install()
    name = properties["TrackingServerName"]
    arn = f"arn:aws:sagemaker:{region}:{account}:mlflow-tracking-server/{name}"
    now = datetime.now(timezone.utc)
    _registered[(account, region, name)] = {
        "TrackingServerArn": arn, "TrackingServerName": name, "ArtifactStoreUri": properties.get("ArtifactStoreUri", ""),
        "TrackingServerSize": properties.get("TrackingServerSize", "Small"),
        "MlflowVersion": properties.get("MlflowVersion") or _mlflow_version(), "RoleArn": properties.get("RoleArn", ""),
        "TrackingServerStatus": "Created", "TrackingServerMaintenanceStatus": "MaintenanceComplete", "IsActive": "Active",
        "AutomaticModelRegistration": bool(properties.get("AutomaticModelRegistration", False)),
        "CreationTime": now, "LastModifiedTime": now, "root": str(root)}
    return {"Ref": arn, "TrackingServerArn": arn}


def _mlflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlflow-skinny")
    except PackageNotFoundError:
        return "unknown"


def serve(root: Path) -> str:
    """The local MLflow server's URL, started on first use; its store is root/mlflow (mlflow.db, artifacts/). A later
    call with another root (a new lifecycle in the same process) points the same server at the new store."""
    from mlflow.server import app, handlers
    from werkzeug.serving import make_server

    root = Path(root).resolve() / "mlflow"
    with _lock:
        if _server.get("root") != root:
            root.mkdir(parents=True, exist_ok=True)
            quiet_store_setup()
            handlers._tracking_store = None
            handlers._model_registry_store = None
            handlers._get_tracking_store(f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri())
            _server["root"] = root
        if "url" not in _server:
            http = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_quiet_handler())
            thread = threading.Thread(target=http.serve_forever, name="local-mlflow", daemon=True)
            thread.start()
            _server.update(url=f"http://127.0.0.1:{http.server_port}", http=http, thread=thread)
        return _server["url"]


def quiet_store_setup() -> None:
    """A new store's setup is not the user's business: alembic's schema migrations and MLflow's own INFO lines
    ("Creating initial MLflow database tables...", through the handler MLflow installs on stderr) stay out of the
    lifecycle's output; MLflow's warnings still show."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # MLflow's own server imports a Starlette module Starlette has deprecated: nothing the user can act on.
    warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")


def _quiet_handler():
    from werkzeug.serving import WSGIRequestHandler

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args, **kwargs) -> None:  # one line per request on stdout would drown the demo
            pass

    return Quiet


def stop() -> None:
    """Stops the local MLflow server (the next use starts a new one)."""
    with _lock:
        http = _server.pop("http", None)
        _server.clear()
    if http is not None:
        http.shutdown()


def describe(account: str, region: str, name: str) -> dict:
    found = _registered.get((account, region, name))
    if found is None:
        from moto.sagemaker.exceptions import ValidationError

        raise ValidationError(message=f"Tracking server {name} does not exist.")
    described = {k: v for k, v in found.items() if k != "root"}
    described["TrackingServerUrl"] = serve(Path(found["root"]))
    return described


def install() -> None:
    """DescribeMlflowTrackingServer and CreatePresignedMlflowTrackingServerUrl on moto's SageMaker (moto dispatches
    an action to the response method of its snake_case name, in-process and in its server alike)."""
    global _installed
    if _installed:
        return
    from moto.core.responses import ActionResult
    from moto.sagemaker import responses

    def describe_mlflow_tracking_server(self) -> ActionResult:
        return ActionResult(describe(self.current_account, self.region, self._get_param("TrackingServerName")))

    def create_presigned_mlflow_tracking_server_url(self) -> ActionResult:
        url = describe(self.current_account, self.region, self._get_param("TrackingServerName"))["TrackingServerUrl"]
        return ActionResult({"AuthorizedUrl": url})

    responses.SageMakerResponse.describe_mlflow_tracking_server = describe_mlflow_tracking_server
    responses.SageMakerResponse.create_presigned_mlflow_tracking_server_url = create_presigned_mlflow_tracking_server_url
    _installed = True

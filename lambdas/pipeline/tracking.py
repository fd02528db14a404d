"""The MLflow tracking server, reached through MLflow's REST API (api/2.0/mlflow) with SigV4-signed requests.

SageMaker managed MLflow authenticates each request with the caller's AWS credentials. Each request has the shape
AWS's own plugin (PyPI sagemaker-mlflow, github.com/aws/sagemaker-mlflow) gives it under mlflow:
- it goes to the region's endpoint https://<region>.experiments.sagemaker.aws, made from the server's ARN
  (sagemaker_mlflow/mlflow_sagemaker_helpers.py, SageMakerMLflowHostMetadataProvider._get_endpoint), not to
  TrackingServerUrl's host; the server is named by the header x-mlflow-sm-tracking-server-arn
  (mlflow_sagemaker_request_header_provider.py, MlflowSageMakerRequestHeaderProvider._get_arn_header);
- it is signed with botocore's SigV4Auth for the service `sagemaker-mlflow` (auth_provider.py,
  AuthProvider._get_auth_service_name), with X-Amz-Content-SHA256 (the body's sha256) among the signed headers and
  spaces in the query string as %20, not + (auth.py, AuthBoto.__call__ and get_request_body_header);
- the other headers signed are those requests sends: Accept, Accept-Encoding, and Content-Length and Content-Type
  for a body (mlflow's X-MLflow-Client-Version is mlflow's, not the plugin's: not sent).
The ARN and the URL come from DescribeMlflowTrackingServer. No mlflow package here: the Lambda bundles stay small
(docs/experiments.md), and the CLI uses the same client. In the local mode the URL is a real MLflow server on
127.0.0.1 (pipelines/local/tracking.py).

Training containers are network-isolated and cannot reach the server: the pipeline logs each run from the
evaluation report the job wrote (lambdas/pipeline/logic.py builds what is logged).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from typing import Any, Iterator

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

from lambdas.shared import dal

SERVICE = "sagemaker-mlflow"
ARN_HEADER = "x-mlflow-sm-tracking-server-arn"
# What requests (the plugin's HTTP client) sends in every request, and the plugin signs.
ACCEPT = {"Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
TIMEOUT_S = 20
USABLE_STATES = {"Created", "Updated", "Started", "MaintenanceComplete"}
# LogBatch limits of the MLflow REST API: 1000 metrics, 100 params, 100 tags per request (1000 entries in all).
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100


class TrackingError(RuntimeError):
    """The tracking server refused a request or cannot be reached; code is MLflow's error_code when it sent one."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code, self.status = code, status


def server_url(name: str, sagemaker) -> str:
    """The tracking server's URL (DescribeMlflowTrackingServer); TrackingError when it is not there or not running."""
    return describe_server(name, sagemaker)["TrackingServerUrl"]


def describe_server(name: str, sagemaker) -> dict:
    """DescribeMlflowTrackingServer's answer (TrackingServerUrl, TrackingServerArn); TrackingError when the server
    is not there or not running."""
    try:
        described = sagemaker.describe_mlflow_tracking_server(TrackingServerName=name)
    except ClientError as error:
        raise TrackingError(f"tracking server {name}: {error.response['Error'].get('Message', error)}",
                            error.response["Error"].get("Code", "")) from None
    status = described.get("TrackingServerStatus", "")
    if status not in USABLE_STATES or not described.get("TrackingServerUrl"):
        raise TrackingError(f"tracking server {name} is {status or 'not ready'}; fix: start it "
                            f"(aws sagemaker start-mlflow-tracking-server --tracking-server-name {name})", status)
    return described


def endpoint(url: str, arn: str) -> str:
    """Where the plugin sends the requests for arn (SageMakerMLflowHostMetadataProvider._get_endpoint): the region's
    https://<region>.experiments.sagemaker.aws; a URL that is not AWS's (the local mode's MLflow server on 127.0.0.1)
    is used as it is."""
    parts = arn.split(":")
    host = urllib.parse.urlsplit(url).hostname or ""
    if len(parts) < 6 or parts[1] not in ("aws", "aws-us-gov") or not host.endswith(".experiments.sagemaker.aws"):
        return url
    return f"https://{parts[3]}.experiments.sagemaker.aws"


@dataclass
class TrackingClient:
    """MLflow's REST API at url, each request signed with session's credentials and naming the server by arn (the
    ARN header is left out when arn is empty)."""

    url: str
    session: Any  # boto3.Session
    region: str
    arn: str = ""

    @classmethod
    def for_server(cls, name: str, session=None, sagemaker=None) -> TrackingClient:
        """The client of the tracking server called name (sagemaker: the SageMaker client to describe it with;
        session's by default). session: the data-access layer's current one by default (acting for a model, the
        scoped session)."""
        session = session or dal.current_session()
        described = describe_server(name, sagemaker or session.client("sagemaker"))
        arn = described.get("TrackingServerArn", "")
        region = arn.split(":")[3] if arn.count(":") >= 5 else session.region_name
        return cls(endpoint(described["TrackingServerUrl"], arn), session, region, arn)

    def call(self, method: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
        url = f"{self.url.rstrip('/')}/api/2.0/mlflow/{path}"
        if query:  # %20 for a space, as the plugin sends it (and SigV4 canonicalizes it), not urlencode's +
            url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        data = json.dumps(body).encode() if body is not None else None
        headers = {**ACCEPT, **({ARN_HEADER: self.arn} if self.arn else {}),
                   "X-Amz-Content-SHA256": hashlib.sha256(data or b"").hexdigest()}
        if data is not None:
            headers.update({"Content-Length": str(len(data)), "Content-Type": "application/json"})
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        credentials = self.session.get_credentials()
        if credentials is None:
            raise TrackingError("no AWS credentials to sign the tracking server request with")
        SigV4Auth(credentials.get_frozen_credentials(), SERVICE, self.region).add_auth(request)
        outgoing = urllib.request.Request(url, data=data, headers=dict(request.headers.items()), method=method)
        try:
            with urllib.request.urlopen(outgoing, timeout=TIMEOUT_S) as response:  # noqa: S310 (https or loopback)
                return json.loads(_content(response) or b"{}")
        except urllib.error.HTTPError as error:
            raise _refusal(error, path) from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise TrackingError(f"the tracking server at {self.url} cannot be reached: {error}") from None

    # ------------------------------------------------------------ experiments and runs
    def experiment_id(self, name: str, create: bool = True) -> str | None:
        """The experiment's id; created when missing (two callers at once: the loser reads the winner's)."""
        try:
            return self.call("GET", "experiments/get-by-name", query={"experiment_name": name})["experiment"]["experiment_id"]
        except TrackingError as error:
            if error.code != "RESOURCE_DOES_NOT_EXIST":
                raise
            if not create:
                return None
        try:
            return self.call("POST", "experiments/create", {"name": name})["experiment_id"]
        except TrackingError as error:
            if error.code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.experiment_id(name, create=False)

    def create_run(self, experiment_id: str, run_name: str, tags: dict[str, str], start_ms: int) -> str:
        body = {"experiment_id": experiment_id, "run_name": run_name, "start_time": start_ms,
                "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        return self.call("POST", "runs/create", body)["run"]["info"]["run_id"]

    def log_batch(self, run_id: str, params: dict[str, str] | None = None, metrics: list[dict] | None = None,
                  tags: dict[str, str] | None = None) -> None:
        """Params, metrics ({key, value, timestamp, step}) and tags, in as many LogBatch requests as the limits need."""
        params = [{"key": k, "value": v} for k, v in (params or {}).items()]
        tags = [{"key": k, "value": v} for k, v in (tags or {}).items()]
        metrics = list(metrics or [])
        while params or tags or metrics:
            body = {"run_id": run_id, "params": params[:MAX_PARAMS], "tags": tags[:MAX_TAGS],
                    "metrics": metrics[:MAX_METRICS - min(len(params), MAX_PARAMS) - min(len(tags), MAX_TAGS)]}
            self.call("POST", "runs/log-batch", body)
            params, tags, metrics = params[MAX_PARAMS:], tags[MAX_TAGS:], metrics[len(body["metrics"]):]

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.log_batch(run_id, tags=tags)

    def finish_run(self, run_id: str, end_ms: int, status: str = "FINISHED") -> None:
        self.call("POST", "runs/update", {"run_id": run_id, "status": status, "end_time": end_ms})

    def run(self, run_id: str) -> dict:
        return self.call("GET", "runs/get", query={"run_id": run_id})["run"]

    def search_runs(self, experiment_ids: list[str], filter_string: str = "", limit: int = 1000,
                    order_by: list[str] | None = None) -> Iterator[dict]:
        """Runs matching MLflow's filter syntax, newest first unless order_by says otherwise; at most limit."""
        token, produced = None, 0
        while produced < limit:
            body = {"experiment_ids": experiment_ids, "filter": filter_string, "max_results": min(limit - produced, 1000),
                    "order_by": order_by or ["attributes.start_time DESC"], **({"page_token": token} if token else {})}
            page = self.call("POST", "runs/search", body)
            for run in page.get("runs", []):
                produced += 1
                yield run
            token = page.get("next_page_token")
            if not token or not page.get("runs"):
                return

    def run_tagged(self, experiment_id: str, key: str, value: str) -> dict | None:
        """The newest run whose tag `key` is value (an earlier attempt of a retried step, or a version's run)."""
        if "'" in value and '"' in value:  # MLflow's filter strings have no escapes: this value cannot be searched
            raise TrackingError(f"tag value {value[:80]!r} holds both quote characters; MLflow cannot search it")
        quote = '"' if "'" in value else "'"
        return next(iter(self.search_runs([experiment_id], f"tags.`{key}` = {quote}{value}{quote}", limit=1)), None)

    def metric_history(self, run_id: str, key: str) -> list[dict]:
        return self.call("GET", "metrics/get-history", query={"run_id": run_id, "metric_key": key}).get("metrics", [])


def _refusal(error: urllib.error.HTTPError, path: str) -> TrackingError:
    try:
        document = json.loads(_content(error) or b"{}")
    except (ValueError, TrackingError):
        document = {}
    code = document.get("error_code", "")
    message = document.get("message") or error.reason
    if error.code in (401, 403):
        return TrackingError(f"the tracking server refused {path} ({error.code}): {message}; fix: your role needs the "
                             "sagemaker-mlflow actions on this server (docs/experiments.md)", code or "ACCESS_DENIED",
                             error.code)
    return TrackingError(f"tracking server: {path}: {code or error.code}: {str(message)[:500]}", code, error.code)


def _content(response) -> bytes:
    """The response's body, decoded as its Content-Encoding says (the requests advertise gzip and deflate)."""
    data = response.read()
    encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(data)
        if encoding == "deflate":
            try:
                return zlib.decompress(data)
            except zlib.error:  # raw deflate, without the zlib wrapper
                return zlib.decompress(data, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error) as error:
        raise TrackingError(f"the tracking server's answer ({encoding}) cannot be decoded: {error}") from None
    return data

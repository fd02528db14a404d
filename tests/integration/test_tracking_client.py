"""The MLflow REST client the pipeline and the CLI share, against a real MLflow server (the local mode's) and a
request-capturing one; the tracking server found through (emulated) DescribeMlflowTrackingServer."""

import gzip
import hashlib
import json
import re
import threading
import types
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto import mock_aws

from lambdas.pipeline import tracking
from pipelines.local import tracking as local_tracking


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> tracking.TrackingClient:
    url = local_tracking.serve(tmp_path_factory.mktemp("mlflow"))
    return tracking.TrackingClient(url, boto3.Session(region_name="us-east-1"), "us-east-1")


def test_a_large_run_is_logged_in_as_many_batches_as_mlflow_allows(client):
    experiment = client.experiment_id("houses")
    run = client.create_run(experiment, "run-1", {"mlops.execution_name": "run-1"}, 1)
    metrics = [{"key": "validation:rmse", "value": float(step), "timestamp": 1, "step": step} for step in range(2500)]
    client.log_batch(run, {f"p{i}": str(i) for i in range(150)}, metrics, {f"t{i}": "x" for i in range(120)})
    client.finish_run(run, 2)
    stored = client.run(run)
    assert len(stored["data"]["params"]) == 150 and stored["info"]["status"] == "FINISHED"
    assert len(client.metric_history(run, "validation:rmse")) == 2500


def test_a_run_is_found_by_its_tag_whatever_the_value_holds(client):
    experiment = client.experiment_id("churn")
    wanted = client.create_run(experiment, "a", {"mlops.execution_name": "it's-run-2"}, 1)
    client.create_run(experiment, "b", {"mlops.execution_name": "run-3"}, 2)
    assert client.run_tagged(experiment, "mlops.execution_name", "it's-run-2")["info"]["run_id"] == wanted
    assert client.run_tagged(experiment, "mlops.execution_name", "run-4") is None


def test_an_experiment_created_meanwhile_by_another_caller_is_used_not_duplicated(client, monkeypatch):
    winner = client.experiment_id("racing")
    original, calls = client.call, []

    def first_lookup_misses(method, path, body=None, query=None):
        calls.append(path)
        if path == "experiments/get-by-name" and len(calls) == 1:
            raise tracking.TrackingError("gone", "RESOURCE_DOES_NOT_EXIST", 404)
        return original(method, path, body, query)

    monkeypatch.setattr(client, "call", first_lookup_misses)
    assert client.experiment_id("racing") == winner
    assert calls == ["experiments/get-by-name", "experiments/create", "experiments/get-by-name"]


def test_requests_are_signed_for_the_sagemaker_mlflow_service():
    seen = {}

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.update(path=self.path, authorization=self.headers.get("Authorization", ""),
                        body=json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"experiment_id": "7"}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = tracking.TrackingClient(f"http://127.0.0.1:{server.server_port}", boto3.Session(region_name="eu-west-1"),
                                         "eu-west-1")
        assert client.call("POST", "experiments/create", {"name": "x"}) == {"experiment_id": "7"}
    finally:
        server.shutdown()
    assert seen["path"] == "/api/2.0/mlflow/experiments/create" and seen["body"] == {"name": "x"}
    assert seen["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/eu-west-1/sagemaker-mlflow/aws4_request" in seen["authorization"]


def test_an_unreachable_or_refusing_server_is_a_tracking_error_not_a_crash(client):
    dead = tracking.TrackingClient("http://127.0.0.1:9", boto3.Session(region_name="us-east-1"), "us-east-1")
    with pytest.raises(tracking.TrackingError, match="cannot be reached"):
        dead.experiment_id("x")
    with pytest.raises(tracking.TrackingError) as refused:
        client.run("no-such-run")
    assert refused.value.code == "RESOURCE_DOES_NOT_EXIST"


@mock_aws
def test_the_server_is_found_through_describe_mlflow_tracking_server(tmp_path):
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    local_tracking.create_server("123456789012", "us-east-1", {"TrackingServerName": "mlops-local",
                                                                "ArtifactStoreUri": "s3://b/mlflow/local/"}, tmp_path)
    url = tracking.server_url("mlops-local", sagemaker)
    assert url.startswith("http://127.0.0.1:")
    assert tracking.TrackingClient(url, boto3.Session(region_name="us-east-1"), "us-east-1").experiment_id("m")
    with pytest.raises(tracking.TrackingError, match="mlops-other"):
        tracking.server_url("mlops-other", sagemaker)


@mock_aws
def test_a_tracking_failure_is_recorded_and_the_run_goes_on(monkeypatch):
    from lambdas.pipeline import handlers
    from pipelines.spec import load_spec
    from tests.conftest import REPO_ROOT

    local_tracking.install()
    monkeypatch.setenv("TRACKING_SERVER", "mlops-missing")
    spec = load_spec(REPO_ROOT / "pipelines" / "houses")
    outcome = handlers.track_run(spec, {"run": {}}, {}, {"promote": False})
    assert set(outcome) == {"tracking_error"} and "mlops-missing" in outcome["tracking_error"]
    monkeypatch.setenv("TRACKING_SERVER", "")
    assert handlers.track_run(spec, {"run": {}}, {}, {}) == {}


# ---------------------------------------------------------------- the request shape of AWS's sagemaker-mlflow plugin
# What sagemaker-mlflow 0.5.0 (github.com/aws/sagemaker-mlflow) under mlflow 3.17.2 sent to a capturing server,
# tracking URI set to ARN and SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT to the capturing server, for
# MlflowClient().get_experiment_by_name("a b+c/d") and .create_experiment("x"): the path of the GET and the
# SignedHeaders of each, less x-mlflow-client-version (mlflow's DefaultRequestHeaderProvider's, not the plugin's).
ARN = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/mlops-dev"
PLUGIN_GET_PATH = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=a%20b%2Bc%2Fd"
PLUGIN_SIGNED_GET = "accept;accept-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-security-token;" \
                    "x-mlflow-sm-tracking-server-arn"
PLUGIN_SIGNED_POST = "accept;accept-encoding;content-length;content-type;host;x-amz-content-sha256;x-amz-date;" \
                     "x-amz-security-token;x-mlflow-sm-tracking-server-arn"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # auth.py's EMPTY_SHA256_HASH
SIGNATURE = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                       r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")


def _session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="AKID", aws_secret_access_key="SECRET", aws_session_token="TOKEN",
                         region_name="eu-west-1")


@pytest.fixture(scope="module")
def capture():
    """A server on 127.0.0.1 that keeps each request (method, path, lower-cased headers, body) and answers
    capture.reply: (status, document, Content-Encoding)."""
    state = types.SimpleNamespace(seen=[], reply=(200, {"experiment_id": "7"}, ""))

    class Capture(BaseHTTPRequestHandler):
        def _answer(self):
            size = int(self.headers.get("Content-Length") or 0)
            state.seen.append({"method": self.command, "path": self.path,
                               "body": self.rfile.read(size) if size else b"",
                               "headers": {k.lower(): v for k, v in self.headers.items()}})
            status, document, encoding = state.reply
            data = json.dumps(document).encode()
            data = gzip.compress(data) if encoding == "gzip" else zlib.compress(data) if encoding == "deflate" else data
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()


@pytest.fixture
def captured(capture):
    capture.seen.clear()
    capture.reply = (200, {"experiment_id": "7"}, "")
    return capture


def _verify(seen: dict, secret: str = "SECRET", token: str = "TOKEN") -> None:
    """Checks the captured request's signature as the service does: the query string decoded and encoded again as
    SigV4 says (RFC 3986: a space is %20), the signed headers as received, the payload hash of the body received."""
    key, day, region, service, signed, signature = SIGNATURE.match(seen["headers"]["authorization"]).groups()
    parts = urllib.parse.urlsplit(seen["path"])
    query = urllib.parse.urlencode(sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)),
                                   quote_via=urllib.parse.quote, safe="-_.~")
    headers = {name: seen["headers"][name] for name in signed.split(";")}
    url = f"http://{headers['host']}{parts.path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=seen["method"], url=url, data=seen["body"], headers=headers)
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(key, secret, token), service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    assert (service, region, day) == ("sagemaker-mlflow", "eu-west-1", headers["x-amz-date"][:8])
    assert signature == expected, "the service would refuse this request: its signature does not verify"


class _Described:
    def __init__(self, url):
        self.url = url

    def describe_mlflow_tracking_server(self, TrackingServerName):
        return {"TrackingServerName": TrackingServerName, "TrackingServerArn": ARN, "TrackingServerUrl": self.url,
                "TrackingServerStatus": "Created"}


def test_requests_go_to_the_regions_endpoint_and_name_the_server_by_its_arn(captured):
    """As the plugin: requests go to https://<region>.experiments.sagemaker.aws, made from the ARN
    (sagemaker_mlflow/mlflow_sagemaker_helpers.py, SageMakerMLflowHostMetadataProvider._get_endpoint, used by
    sagemaker_mlflow/host_creds.py, get_host_creds), not to TrackingServerUrl's host, and name the server in the
    signed header x-mlflow-sm-tracking-server-arn (sagemaker_mlflow/mlflow_sagemaker_request_header_provider.py,
    MlflowSageMakerRequestHeaderProvider._get_arn_header). The local mode's loopback server keeps its URL."""
    client = tracking.TrackingClient.for_server(
        "mlops-dev", _session(), sagemaker=_Described("https://t-abc123def456.eu-west-1.experiments.sagemaker.aws"))
    assert (client.url, client.arn, client.region) == ("https://eu-west-1.experiments.sagemaker.aws", ARN, "eu-west-1")
    local = tracking.TrackingClient.for_server("mlops-dev", _session(), sagemaker=_Described(captured.url))
    assert (local.url, local.arn) == (captured.url, ARN)

    assert local.call("POST", "experiments/create", {"name": "x"}) == {"experiment_id": "7"}
    [seen] = captured.seen
    assert seen["headers"]["x-mlflow-sm-tracking-server-arn"] == ARN
    assert "x-mlflow-sm-tracking-server-arn" in SIGNATURE.match(seen["headers"]["authorization"]).group(5).split(";")
    _verify(seen)


def test_the_payload_hash_is_sent_and_signed_with_the_headers_the_plugin_signs(captured):
    """As the plugin: X-Amz-Content-SHA256 is the sha256 of the body (of b"" without one) and signed
    (sagemaker_mlflow/auth.py, AuthBoto.__call__ and AuthBoto.get_request_body_header), and the signed headers are
    the plugin's (AuthBoto.__call__ signs every header requests sends but Connection: PLUGIN_SIGNED_GET/_POST)."""
    client = tracking.TrackingClient(captured.url, _session(), "eu-west-1", arn=ARN)
    client.call("POST", "experiments/create", {"name": "x"})
    client.call("GET", "experiments/get-by-name", query={"experiment_name": "a b+c/d"})
    post, get = captured.seen
    assert post["headers"]["x-amz-content-sha256"] == hashlib.sha256(post["body"]).hexdigest()
    assert post["headers"]["content-type"] == "application/json" and json.loads(post["body"]) == {"name": "x"}
    assert get["body"] == b"" and get["headers"]["x-amz-content-sha256"] == EMPTY_SHA256
    assert SIGNATURE.match(post["headers"]["authorization"]).group(5) == PLUGIN_SIGNED_POST
    assert SIGNATURE.match(get["headers"]["authorization"]).group(5) == PLUGIN_SIGNED_GET
    assert get["headers"]["x-amz-security-token"] == "TOKEN" and "content-type" not in get["headers"]
    for seen in (post, get):
        _verify(seen)


def test_spaces_in_a_query_string_are_sent_as_percent_20_and_the_signature_verifies(captured):
    """As the plugin: a space in the query string is %20, not + (sagemaker_mlflow/auth.py, AuthBoto.__call__:
    "Mlflow encodes spaces as +, Auth prefers %20"); SigV4 canonicalizes a space as %20, so a request signed with +
    in it does not verify. PLUGIN_GET_PATH is the plugin's own path for the same lookup."""
    client = tracking.TrackingClient(captured.url, _session(), "eu-west-1")
    captured.reply = (200, {"experiment": {"experiment_id": "3"}}, "")
    assert client.experiment_id("a b+c/d", create=False) == "3"
    client.call("GET", "metrics/get-history", query={"run_id": "r 1", "metric_key": "validation:rmse avg"})
    lookup, history = captured.seen
    assert lookup["path"] == PLUGIN_GET_PATH
    assert history["path"] == "/api/2.0/mlflow/metrics/get-history?run_id=r%201&metric_key=validation%3Armse%20avg"
    for seen in (lookup, history):
        _verify(seen)


def test_a_compressed_answer_is_read_like_an_uncompressed_one(captured):
    """The plugin's requests say Accept-Encoding: gzip, deflate (requests' header, which AuthBoto.__call__ in
    sagemaker_mlflow/auth.py signs) and requests decodes such answers; the client signs the same header, so it decodes
    them too, refusals included."""
    client = tracking.TrackingClient(captured.url, _session(), "eu-west-1", arn=ARN)
    captured.reply = (200, {"experiment_id": "9"}, "gzip")
    assert client.call("POST", "experiments/create", {"name": "x"}) == {"experiment_id": "9"}
    captured.reply = (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no run r"}, "deflate")
    with pytest.raises(tracking.TrackingError, match="no run r") as refused:
        client.run("r")
    assert refused.value.code == "RESOURCE_DOES_NOT_EXIST" and refused.value.status == 404

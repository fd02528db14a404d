"""The MLflow REST client the pipeline and the CLI share, against a real MLflow server (the local mode's) and a
request-capturing one; the tracking server found through (emulated) DescribeMlflowTrackingServer."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
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

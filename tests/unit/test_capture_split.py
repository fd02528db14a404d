"""The shared endpoint's capture, filed by model (lambdas/drift/split.py): pure logic."""

import base64
import json

from lambdas.drift.capture import answered_by
from lambdas.drift.split import split_lines, target_key


def line(model: str | None, inference_id: str | None = None, encoding: str = "BASE64") -> bytes:
    answer = json.dumps({"predictions": [{"value": 1.0}], **({"model": model} if model else {})})
    data = base64.b64encode(answer.encode()).decode() if encoding == "BASE64" else answer
    metadata = {"eventId": "e", "inferenceTime": "2026-12-07T20:00:00Z", **({"inferenceId": inference_id} if inference_id else {})}
    return json.dumps({"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                                         "data": '{"instances": [{"a": 1}]}', "encoding": "JSON"},
                                       "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                                          "data": data, "encoding": encoding}},
                       "eventMetadata": metadata, "eventVersion": "0"}).encode()


def test_each_models_lines_are_filed_under_it_whatever_the_output_encoding():
    by_model, counts = split_lines([line("churn"), line("houses", encoding="JSON"), line("churn", encoding="JSON"), b""])
    assert {model: len(lines) for model, lines in by_model.items()} == {"churn": 2, "houses": 1}
    assert counts == {"smoke_test": 0, "unattributed": 0}


def test_smoke_test_requests_and_unnamed_or_malformed_answers_are_counted_never_filed():
    lines = [line("churn", inference_id="mlops-smoke-run-1"), line(None), line("../etc"), b"{not json", line("churn")]
    by_model, counts = split_lines(lines)
    assert list(by_model) == ["churn"] and len(by_model["churn"]) == 1
    assert counts == {"smoke_test": 1, "unattributed": 3}
    assert not answered_by(lines[0], "churn") and answered_by(lines[4], "churn")


def test_a_file_is_filed_under_the_models_serving_target_with_its_hour_and_name():
    source = "data-capture/mlops-prod-shared/AllTraffic/2026/12/07/20/31-abc.jsonl"
    assert target_key(source, "churn", "prod", "prod") == "data-capture/churn-prod-prod/AllTraffic/2026/12/07/20/31-abc.jsonl"

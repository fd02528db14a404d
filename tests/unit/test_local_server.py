"""Reaching the local server from another shell: what happens when there is none, or a stale record of one."""

import json

import pytest

from pipelines.client import EnvironmentProblem, Pipelines
from pipelines.local.lifecycle import LifecycleError, LocalLifecycle
from pipelines.local.server import LocalServerProblem, _execution_of, connect, down


def test_no_server_says_how_to_start_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(tmp_path))
    with pytest.raises(EnvironmentProblem, match=r"no local server is running .*fix: `mlops local serve`"):
        Pipelines(env="local")


def test_a_stale_record_is_reported_and_down_removes_it(tmp_path):
    stale = {"url": "http://127.0.0.1:9", "control_url": "http://127.0.0.1:9/", "token": "t", "account": "1",
             "region": "us-east-1", "model": "churn", "identities": {}}
    (tmp_path / "server.json").write_text(json.dumps(stale))
    with pytest.raises(EnvironmentProblem, match="does not answer; fix: `mlops local serve`"):
        connect(tmp_path)
    assert "removed the stale" in down(tmp_path)
    assert not (tmp_path / "server.json").exists()
    with pytest.raises(LocalServerProblem, match="no local server is running"):
        down(tmp_path)


def test_the_run_a_printed_link_is_for_is_read_from_its_claims():
    from lambdas.approval import logic

    links = logic.links("http://127.0.0.1:1/", "manual-1", "arn:pkg", ["a@example.com"], "x", 2**31, b"k" * 64)
    assert _execution_of(links["a@example.com"]["approve"]) == "manual-1"
    assert _execution_of("http://127.0.0.1:1/?t=garbage") is None


def test_your_own_data_must_exist(tmp_path):
    with pytest.raises(LifecycleError, match="--data .*nope.csv: no such file"):
        LocalLifecycle("churn", tmp_path, data=tmp_path / "nope.csv")

"""The model's record keeps its spec as written (pipelines/model_record.compact_body): it reads back as the very same
spec, defaults and cdk.json's overrides included, and is much smaller than the whole spec."""

import json

import pytest

from pipelines.model_record import ModelRecord, compact_body, parse_record
from pipelines.spec import load_spec
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("model", ["churn", "houses"])
def test_a_compact_record_reads_back_as_the_same_spec(model):
    spec = load_spec(REPO_ROOT / "pipelines" / model)
    overridden = spec.model_copy(update={"deployment": spec.deployment.model_copy(update={"max_capacity": 9})})
    for written in (spec, overridden):
        body = compact_body(ModelRecord(model=model, env="dev", spec=written, settings={"A": "b"}))
        assert parse_record(json.dumps(body), model=model, env="dev").spec == written
        assert len(json.dumps(body["spec"])) < 0.8 * len(written.model_dump_json())

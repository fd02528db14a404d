"""CreateModelPackage refuses CustomerMetadataProperties outside SageMaker's alphabet (moto does not): lineage is
written in it, checked before the call, and read back typed."""

import json

import botocore.session
import pytest

from lambdas.pipeline import logic
from lambdas.shared.lineage import OVERFLOW, LineageError, checked, decode_pairs, encode_pairs


def botocore_limits() -> dict:
    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("CustomerMetadataMap")
    return {"entries": shape.metadata["max"], "key": shape.key.metadata["max"], "value": shape.value.metadata["max"],
            "pattern": shape.value.metadata["pattern"]}


def test_the_checks_follow_botocores_customer_metadata_contract():
    limits = botocore_limits()
    assert (limits["entries"], limits["key"], limits["value"]) == (50, 128, 256)
    assert limits["pattern"] == r"([\p{L}\p{Z}\p{N}_.:\/=+\-@]*)${1,256}"  # the alphabet lineage.ALLOWED encodes


def test_metrics_and_hyperparameters_round_trip_as_pairs_in_the_alphabet():
    metrics = {"validation:auc": 0.812345, "validation:rmse": 25.9, "accuracy": 1e-05}
    hyperparameters = {"epochs": 12, "learning_rate": 0.001, "amp": True, "optimizer": "adamw", "seed": -1}
    for values in (metrics, hyperparameters):
        encoded = encode_pairs(values)
        assert checked({"entry": encoded}) and not set('{}",') & set(encoded)
        assert decode_pairs(encoded) == values


def test_values_that_do_not_fit_point_to_the_evaluation_report():
    assert encode_pairs({"layers": "64,32"}) == OVERFLOW  # ',' is refused by SageMaker
    assert encode_pairs({f"p{i}": 123456789 for i in range(40)}) == OVERFLOW  # over 256 characters
    assert decode_pairs(OVERFLOW) == {}


def test_packages_registered_with_json_lineage_are_still_read():
    assert decode_pairs(json.dumps({"auc": 0.8})) == {"auc": 0.8}


@pytest.mark.parametrize("metadata", [{"metrics": '{"auc": 0.8}'}, {"k": "x" * 257}, {"k": ""},
                                      {f"k{i}": "v" for i in range(51)}, {"bad,key": "v"}])
def test_entries_sagemaker_would_refuse_are_named_before_the_call(metadata):
    with pytest.raises(LineageError):
        checked(metadata)


def test_a_registered_runs_lineage_is_in_the_alphabet():
    state = {"run": {"git_commit": "0123abc", "execution_arn": "arn:aws:states:eu-west-1:111111111111:execution:churn-dev-retraining:run-1",
                     "trigger": "manual", "requested_by": "arn:aws:sts::111111111111:assumed-role/DataScientist/ada@example.com",
                     "hyperparameters": {"epochs": "12", "lr": "0.001", "sagemaker_program": "\"train.py\""},
                     "source_uri": "s3://bucket/runs/run-1/sourcedir.tar.gz"},
             "validation": {"dataset_uri": "s3://bucket/data/churn.csv", "version_id": "v1", "sha256": "ab" * 32, "rows": 5000},
             "training": {"job_arn": "arn:aws:sagemaker:eu-west-1:111111111111:training-job/churn-dev-run-1"},
             "evaluation": {"metrics": {"validation:auc": 0.8123, "validation:accuracy": 0.77}, "objective": "validation:auc",
                            "value": 0.8123, "champion_value": None}}
    lineage = logic.lineage(state)
    assert decode_pairs(lineage["metrics"]) == {"validation:accuracy": 0.77, "validation:auc": 0.8123}
    assert decode_pairs(lineage["hyperparameters"]) == {"epochs": 12, "lr": 0.001}
    assert logic.champion_metrics({"CustomerMetadataProperties": lineage}) == {"validation:accuracy": 0.77, "validation:auc": 0.8123}

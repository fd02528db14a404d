"""Moving an environment deployed with per-model stacks onto the control plane (docs/deploy.md, issue 26) loses no
version, audit record or approval: what holds them keeps its logical id, so CloudFormation updates it in place rather
than replacing it, and is retained. The ids below are those the per-model release (before the control plane)
deployed."""

from __future__ import annotations

import pytest

from tests.infrastructure.conftest import template_of

# The registry's stateful resources, as the per-model release named them.
RETAINED_REGISTRY = {"ArtifactsBucket88671897": "AWS::S3::Bucket", "AccessLogsBucketCD784A59": "AWS::S3::Bucket",
                     "AuditTable18A3095C": "AWS::DynamoDB::Table", "EncryptionKey3A692D6E": "AWS::KMS::Key",
                     "ImagesRepository2D0F5B9C": "AWS::ECR::Repository"}
PACKAGE_GROUPS = {"RegistryGroupchurnD3A34BBB": "churn-dev", "RegistryGrouphousesE363A740": "houses-dev"}


@pytest.fixture(scope="module")
def registry(dev_app) -> dict:
    return template_of(dev_app, "mlops-dev-registry").to_json()["Resources"]


@pytest.mark.parametrize("logical, kind", sorted(RETAINED_REGISTRY.items()))
def test_the_registrys_stateful_resources_keep_their_ids_and_are_retained(registry, logical, kind):
    assert registry[logical]["Type"] == kind
    assert registry[logical]["DeletionPolicy"] == "Retain" and registry[logical]["UpdateReplacePolicy"] == "Retain"


def test_each_models_package_group_keeps_its_id_and_name(registry):
    for logical, name in PACKAGE_GROUPS.items():
        assert registry[logical]["Type"] == "AWS::SageMaker::ModelPackageGroup"
        assert registry[logical]["Properties"]["ModelPackageGroupName"] == name


def test_a_model_stack_keeps_no_stateful_resource_the_move_would_delete(dev_app):
    """Its record is rewritten on every deployment; what it held before (functions' log groups) was retained, and
    nothing it keeps holds data that the control plane reads instead."""
    resources = template_of(dev_app, "mlops-dev-churn").to_json()["Resources"]
    stateful = {k: r for k, r in resources.items()
                if r["Type"] in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SecretsManager::Secret", "AWS::KMS::Key")}
    assert stateful == {}
    logs = [r for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert logs and all(r["DeletionPolicy"] == "Retain" for r in logs)  # the state machine's execution log

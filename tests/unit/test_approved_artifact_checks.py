"""An approval binds the released artifact's exact bytes: the gate refuses a package whose artifact URI, image, S3
version or sha256 is not the one the approval request recorded (lambdas/shared/release.py)."""

import pytest

from lambdas.shared.release import ReleaseRefused, approval_binding, check_artifact
from pipelines.naming import ARTIFACT_SHA256_KEY, ARTIFACT_VERSION_KEY, release_key

DIGEST, OTHER = "ab" * 32, "cd" * 32
URI = f"s3://bucket/{release_key('churn', DIGEST)}"
PACKAGE = {"ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn-dev/3",
           "InferenceSpecification": {"Containers": [{"Image": "serving:1", "ModelDataUrl": URI}]},
           "CustomerMetadataProperties": {ARTIFACT_SHA256_KEY: DIGEST, ARTIFACT_VERSION_KEY: "v1"}}
APPROVED = {"artifact_uri": URI, "artifact_sha256": DIGEST, "artifact_version_id": "v1", "image": "serving:1"}
NOW = {"version_id": "v1", "sha256": DIGEST}


def test_the_release_key_is_derived_from_the_bytes():
    assert release_key("churn", DIGEST) == f"releases/churn/{DIGEST}/model.tar.gz"


def test_an_approval_binds_the_uri_digest_version_and_image_when_registry_registration_and_bytes_agree():
    assert approval_binding(PACKAGE, {"artifact_sha256": DIGEST, "artifact_uri": URI}, NOW) == APPROVED


@pytest.mark.parametrize("registered, now, why", [
    ({"artifact_uri": "s3://bucket/models/churn/job/output/model.tar.gz"}, NOW, "changed after registration"),
    ({}, {"version_id": "v2", "sha256": OTHER}, "bytes changed since approval"),
    ({}, {"version_id": "absent", "sha256": "absent"}, "bytes changed since approval"),
], ids=["package-repointed", "object-overwritten", "object-deleted"])
def test_no_approval_is_requested_for_a_package_that_does_not_match_its_release(registered, now, why):
    with pytest.raises(ReleaseRefused, match=why):
        approval_binding(PACKAGE, registered, now)


def test_a_package_without_a_recorded_digest_cannot_be_approved():
    legacy = {**PACKAGE, "CustomerMetadataProperties": {}}
    with pytest.raises(ReleaseRefused, match="records no artifact_sha256, artifact_version_id"):
        approval_binding(legacy, {}, NOW)


def test_the_gate_passes_the_exact_approved_bytes():
    assert check_artifact(PACKAGE, APPROVED, NOW) == {"artifact_sha256": DIGEST, "artifact_version_id": "v1"}


@pytest.mark.parametrize("package, now, why", [
    (PACKAGE, {"version_id": "v2", "sha256": OTHER}, "bytes changed since approval"),
    (PACKAGE, {"version_id": "v2", "sha256": DIGEST}, "bytes changed since approval"),  # same bytes, other version
    ({**PACKAGE, "InferenceSpecification": {"Containers": [{"Image": "serving:1", "ModelDataUrl": "s3://bucket/x"}]}},
     NOW, "now serves artifact_uri s3://bucket/x"),
    ({**PACKAGE, "InferenceSpecification": {"Containers": [{"Image": "evil:1", "ModelDataUrl": URI}]}},
     NOW, "now serves image evil:1"),
], ids=["swapped-bytes", "new-version", "repointed-uri", "swapped-image"])
def test_the_gate_refuses_anything_but_the_approved_artifact_and_image(package, now, why):
    with pytest.raises(ReleaseRefused, match=why):
        check_artifact(package, APPROVED, now)


def test_an_approval_recorded_before_approvals_bound_bytes_deploys_nothing():
    with pytest.raises(ReleaseRefused, match="records no artifact digest.*mlops run reproduce"):
        check_artifact(PACKAGE, {"status": "APPROVED"}, NOW)

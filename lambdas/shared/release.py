"""What an approval binds: the released artifact's exact bytes (sha256 and S3 version) and the serving image, as
recorded in the approval request, checked again wherever the package is served or offered. Pure: no AWS calls."""

from __future__ import annotations

from pipelines.naming import ARTIFACT_SHA256_KEY, ARTIFACT_VERSION_KEY, RELEASED_BY_KEY

FIELDS = ("artifact_uri", "artifact_sha256", "artifact_version_id", "image")


class ReleaseRefused(RuntimeError):
    """The package may not be deployed: the registry, the audit trail or the artifact's bytes do not match a valid
    approval."""


def drift_baseline_uris(package: dict) -> tuple[str, str]:
    """(statistics.json, constraints.json) S3 URIs a model package registered as its DriftCheckBaselines'
    ModelDataQuality (what production's captured traffic is scored against); '' for what it lacks."""
    quality = (package.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}
    return (quality.get("Statistics") or {}).get("S3Uri", ""), (quality.get("Constraints") or {}).get("S3Uri", "")


def evaluation_uri(package: dict) -> str:
    """The S3 URI of a package's evaluation report (ModelMetrics.ModelQuality.Statistics: its run's evaluation.json,
    or a Model Monitor model-quality statistics.json); '' when it has none."""
    return (((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}).get("S3Uri", "")


def package_artifact(package: dict) -> dict[str, str | None]:
    """The artifact a model package serves (its first container) and the digest its lineage records."""
    container = ((package.get("InferenceSpecification") or {}).get("Containers") or [{}])[0]
    lineage = package.get("CustomerMetadataProperties") or {}
    return {"artifact_uri": container.get("ModelDataUrl"), "image": container.get("Image"),
            "artifact_sha256": lineage.get(ARTIFACT_SHA256_KEY), "artifact_version_id": lineage.get(ARTIFACT_VERSION_KEY)}


def approval_binding(package: dict, registered: dict, now: dict) -> dict[str, str]:
    """The four facts an approval request records, once the package, what registration released and what the
    artifact's URI holds now all agree; ReleaseRefused naming the first disagreement otherwise."""
    recorded = package_artifact(package)
    arn = package.get("ModelPackageArn")
    missing = [name for name in FIELDS if not recorded.get(name)]
    if missing:
        raise ReleaseRefused(f"{arn} records no {', '.join(missing)}: it was not registered as a released artifact; "
                             "nothing to approve")
    for name in FIELDS:
        if registered.get(name) and registered[name] != recorded[name]:
            raise ReleaseRefused(f"{arn}: the registry says {name} {recorded[name]}, registration released "
                                 f"{registered[name]}; the package was changed after registration")
    check_bytes(arn, recorded, now)
    return {name: str(recorded[name]) for name in FIELDS}


def check_bytes(arn: str | None, recorded: dict, now: dict) -> None:
    """The artifact's current version is the recorded one, and its bytes hash to the recorded sha256."""
    if now.get("version_id") != recorded.get("artifact_version_id") or now.get("sha256") != recorded.get("artifact_sha256"):
        raise ReleaseRefused(
            f"{arn}: {recorded.get('artifact_uri')} now holds version {now.get('version_id')} with sha256 "
            f"{now.get('sha256')}, not the approved version {recorded.get('artifact_version_id')} with sha256 "
            f"{recorded.get('artifact_sha256')}: the bytes changed since approval; nothing was deployed")


def check_artifact(package: dict, approval: dict, now: dict) -> dict[str, str]:
    """Where the package is served: it still points to the artifact and image the approval recorded, and that
    artifact's current version and bytes are the approved ones. Returns the approved digest."""
    arn = package.get("ModelPackageArn")
    if not approval.get("artifact_sha256"):
        raise ReleaseRefused(f"{arn}: its approval records no artifact digest (approved before approvals bound the "
                             "artifact's bytes), so what it approved cannot be proven; nothing was deployed; fix: "
                             "`mlops run reproduce` the version and approve the new one")
    served = package_artifact(package)
    for name in ("artifact_uri", "image"):
        if served[name] != approval.get(name):
            raise ReleaseRefused(f"{arn} now serves {name} {served[name]}, the approver approved {approval.get(name)}; "
                                 "nothing was deployed")
    check_bytes(arn, approval, now)
    return {"artifact_sha256": str(approval["artifact_sha256"]), "artifact_version_id": str(approval["artifact_version_id"])}


def was_released(package: dict) -> bool:
    """Whether the run that registered a package released it (its notify task marks it once the run succeeded)."""
    return RELEASED_BY_KEY in (package.get("CustomerMetadataProperties") or {})

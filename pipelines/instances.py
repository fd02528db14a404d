"""SageMaker instance types: which exist (botocore's service model) and which carry local NVMe storage.

Local storage decides KMS: SageMaker refuses `VolumeKmsKeyId` (CreateTrainingJob, CreateTransformJob)
and `KmsKeyId` (CreateEndpointConfig) for instance types with local storage, whose volumes are
encrypted by a hardware module instead (botocore's doc string of ResourceConfig.VolumeKmsKeyId and
CreateEndpointConfigInput.KmsKeyId: "You can't request a VolumeKmsKeyId when using an instance type
with local storage").
"""

from __future__ import annotations

import difflib
from functools import lru_cache

# Instance families with instance-store (NVMe SSD) volumes, from the Amazon EC2 User Guide, "Instance store
# volumes" table (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-store-volumes.html).
LOCAL_STORAGE_FAMILIES = frozenset({
    "c5d", "c6gd", "c6id", "m5d", "m5dn", "m6gd", "m6id", "r5d", "r5dn", "r6gd", "r6id", "r7gd", "x1", "x1e",
    "g4dn", "g5", "g6", "g6e", "g7e", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "p6-b300",
    "p6e-gb200", "dl1", "trn1", "trn1n", "trn2",
})
# Families with EBS volumes only (same table: not listed there), so a customer-managed volume key applies.
EBS_ONLY_FAMILIES = frozenset({
    "t2", "t3", "m4", "m5", "m6g", "m6i", "m7i", "m7i-flex", "m8g", "m8i", "m8i-flex", "c4", "c5", "c5n",
    "c6g", "c6gn", "c6i", "c6in", "c7g", "c7i", "c7i-flex", "c8g", "c8i", "c8i-flex", "r5", "r6g", "r6i", "r7i",
    "r8g", "r8i", "r8i-flex", "p2", "p3", "inf1", "inf2", "g4ad",
})

ENUM_SHAPES = {"training": "TrainingInstanceType", "hosting": "ProductionVariantInstanceType",
               "transform": "TransformInstanceType"}


def family(instance_type: str) -> str:
    """'ml.g5.xlarge' -> 'g5'."""
    return instance_type.removeprefix("ml.").rsplit(".", 1)[0]


def has_local_storage(instance_type: str) -> bool:
    """True when SageMaker refuses a customer-managed volume key for this type; unknown families raise."""
    name = family(instance_type)
    if name in LOCAL_STORAGE_FAMILIES:
        return True
    if name in EBS_ONLY_FAMILIES:
        return False
    raise ValueError(f"'{instance_type}': the platform does not know whether the {name} family has local NVMe "
                     "storage (which decides whether SageMaker accepts a KMS volume key); fix: add the family to "
                     "LOCAL_STORAGE_FAMILIES or EBS_ONLY_FAMILIES in pipelines/instances.py, from the EC2 "
                     "instance store volumes table")


def volume_key(instance_type: str, key_arn):
    """The KMS key for the instance's storage volume, or None where SageMaker would refuse one."""
    return None if has_local_storage(instance_type) else key_arn


@lru_cache(maxsize=None)
def known_types(use: str) -> frozenset[str]:
    """The instance types SageMaker accepts for a use ('training', 'hosting', 'transform'), per botocore."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for(ENUM_SHAPES[use]).enum)


def check_instance_type(instance_type: str, use: str) -> str:
    """The type itself when SageMaker knows it for this use and its storage is classified; else a clear error."""
    known = known_types(use)
    if instance_type not in known:
        close = difflib.get_close_matches(instance_type, sorted(known), n=3, cutoff=0.6)
        hint = (f"did you mean {', '.join(close)}?" if close
                else f"use a name like 'ml.m5.large' from botocore's SageMaker {ENUM_SHAPES[use]} values")
        raise ValueError(f"'{instance_type}' is not a SageMaker {use} instance type; fix: {hint}")
    has_local_storage(instance_type)
    return instance_type


@lru_cache(maxsize=None)
def known_regions() -> frozenset[str]:
    """The regions SageMaker runs in, every partition, per botocore's bundled endpoints data (offline)."""
    import botocore.session

    session = botocore.session.get_session()
    return frozenset(region for partition in session.get_available_partitions()
                     for region in session.get_available_regions("sagemaker", partition))


def check_region(region: str) -> str:
    """The region itself when SageMaker runs there; else a clear error, before anything is synthesized or priced
    (an unknown region used to surface later as 'no framework image')."""
    if region in known_regions():
        return region
    close = difflib.get_close_matches(region, sorted(known_regions()), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "use a region name like 'us-east-1' or 'eu-west-1'"
    raise ValueError(f"'{region}' is not a region SageMaker runs in (botocore's endpoints data knows "
                     f"{len(known_regions())}); fix: {hint}")

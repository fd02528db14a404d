"""SageMaker instance types: which exist (botocore's service model) and which carry local NVMe storage.

Local storage decides KMS: SageMaker refuses `VolumeKmsKeyId` (CreateTrainingJob, CreateTransformJob)
and `KmsKeyId` (CreateEndpointConfig) for instance types with local storage, whose volumes are
encrypted by a hardware module instead (botocore's doc string of ResourceConfig.VolumeKmsKeyId and
CreateEndpointConfigInput.KmsKeyId: "You can't request a VolumeKmsKeyId when using an instance type
with local storage").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
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


@dataclass(frozen=True)
class HostResources:
    """What one hosting instance offers the inference components placed on it."""

    vcpus: int
    memory_mib: int
    accelerators: int = 0


def _family(vcpus_and_gib: dict[str, tuple[int, int]], accelerators: dict[str, int] | None = None,
            prefix: str = "") -> dict[str, HostResources]:
    return {f"ml.{prefix}.{size}": HostResources(vcpus, gib * 1024, (accelerators or {}).get(size, 0))
            for size, (vcpus, gib) in vcpus_and_gib.items()}


# vCPUs, memory (GiB) and GPUs of the hosting families the platform uses, from the Amazon EC2 instance type
# specifications (https://aws.amazon.com/ec2/instance-types/: m5 general purpose, c5 compute optimized, g5 accelerated
# computing; an ml.<type> hosting instance is the EC2 type of the same name). SageMaker places an inference component's
# copies by these figures (CreateInferenceComponent: ComputeResourceRequirements).
HOSTING_RESOURCES: dict[str, HostResources] = {
    **_family({"large": (2, 8), "xlarge": (4, 16), "2xlarge": (8, 32), "4xlarge": (16, 64), "12xlarge": (48, 192),
               "24xlarge": (96, 384)}, prefix="m5"),
    **_family({"large": (2, 4), "xlarge": (4, 8), "2xlarge": (8, 16), "4xlarge": (16, 32), "9xlarge": (36, 72),
               "18xlarge": (72, 144)}, prefix="c5"),
    **_family({"xlarge": (4, 16), "2xlarge": (8, 32), "4xlarge": (16, 64), "8xlarge": (32, 128), "12xlarge": (48, 192),
               "16xlarge": (64, 256), "24xlarge": (96, 384), "48xlarge": (192, 768)},
              {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "12xlarge": 4, "16xlarge": 1, "24xlarge": 4,
               "48xlarge": 8}, prefix="g5"),
}


def hosting_resources(instance_type: str) -> HostResources:
    """The vCPUs, memory and accelerators of a hosting instance type; unknown types raise with the fix."""
    if instance_type in HOSTING_RESOURCES:
        return HOSTING_RESOURCES[instance_type]
    raise ValueError(f"'{instance_type}': the platform does not record this instance type's vCPUs and memory (what "
                     "decides whether an inference component fits on it); fix: add it to HOSTING_RESOURCES in "
                     "pipelines/instances.py, from the EC2 instance type specifications")

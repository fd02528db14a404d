"""A model package's lineage in SageMaker's CustomerMetadataProperties, which accept only letters, digits, spaces and
`_ . : / = + - @` in keys (1-128 characters) and values (1-256), at most 50 entries (botocore's CustomerMetadataMap).
JSON does not fit that alphabet, so structured entries (metrics, hyperparameters) are written as space-separated
`name=value` pairs, and every entry is checked before CreateModelPackage, which would refuse it (moto does not)."""

from __future__ import annotations

import json
import re

MAX_ENTRIES, MAX_KEY, MAX_VALUE = 50, 128, 256
ALLOWED = re.compile(r"[^\W\s]|[ _.:/=+\-@]")  # \p{L}, \p{N} and _ (as \w), a space, and the listed punctuation
OVERFLOW = "too long for the registry: see the version's evaluation report"


class LineageError(ValueError):
    """A lineage entry SageMaker would refuse."""


def _allowed(text: str) -> bool:
    return all(ALLOWED.fullmatch(character) for character in text)


def encode_pairs(values: dict) -> str:
    """{"auc": 0.81, "epochs": 12, "optimizer": "adamw"} -> "auc=0.81 epochs=12 optimizer=adamw"; a value that
    cannot be written so (a space, '=' or a character outside the alphabet), or pairs over 256 characters, give
    OVERFLOW: the full values stay in the version's evaluation report."""
    pairs = []
    for name, value in sorted(values.items()):
        text = json.dumps(value) if isinstance(value, (bool, int, float)) or value is None else str(value)
        if not text or " " in text or "=" in text or not _allowed(text) or not _allowed(str(name)) or " " in str(name):
            return OVERFLOW
        pairs.append(f"{name}={text}")
    encoded = " ".join(pairs)
    return encoded if len(encoded) <= MAX_VALUE else OVERFLOW


def decode_pairs(text: str | None) -> dict:
    """The inverse of encode_pairs, numbers and booleans typed; {} for OVERFLOW or nothing. Packages registered
    before this format hold JSON, which is read too."""
    if text and text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            return {}
    if not text or "=" not in text:
        return {}
    decoded = {}
    for pair in text.split(" "):
        name, _, raw = pair.partition("=")
        try:
            decoded[name] = json.loads(raw)
        except ValueError:
            decoded[name] = raw
    return decoded


def checked(metadata: dict[str, str]) -> dict[str, str]:
    """The metadata, or LineageError naming the first entry CreateModelPackage would refuse."""
    if len(metadata) > MAX_ENTRIES:
        raise LineageError(f"{len(metadata)} lineage entries; SageMaker keeps at most {MAX_ENTRIES}")
    for key, value in metadata.items():
        for what, text, limit in (("key", key, MAX_KEY), ("value", value, MAX_VALUE)):
            if not isinstance(text, str) or not 1 <= len(text) <= limit:
                raise LineageError(f"lineage {what} {key!r}: must be 1-{limit} characters, got {text!r}"[:300])
            bad = sorted({c for c in text if not ALLOWED.fullmatch(c)})
            if bad:
                raise LineageError(f"lineage {what} {key!r}: SageMaker refuses the character(s) {bad} in {text[:80]!r}")
    return metadata


def champion_metrics(package: dict | None) -> dict | None:
    """The metrics a registered package (DescribeModelPackage) carries in its lineage, or None."""
    if not package:
        return None
    return decode_pairs(package.get("CustomerMetadataProperties", {}).get("metrics")) or None

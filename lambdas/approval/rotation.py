"""Secrets Manager rotation of the approval-link signing key.

Secrets Manager calls this function four times per rotation, with the same ClientRequestToken (the new
version's id), after labelling that version AWSPENDING:

- createSecret: a new current key under a new key id, today's current key kept as previous, stored as the
  AWSPENDING version (once: a retried call finds it there);
- setSecret: nothing to do (no other system holds the key);
- testSecret: the pending document parses, signs and verifies a link, and keeps today's current key;
- finishSecret: AWSCURRENT moves to the new version.

Links signed before the rotation name the previous key's id and still verify; after a second rotation that
key is gone and they are refused (403). The rotation period (30 days) is at least approval.timeout_hours
(the spec's maximum), so every link in flight survives one rotation.
"""

from __future__ import annotations

import secrets
import time

from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.approval import tokens
from lambdas.shared import dal
from lambdas.shared.observability import logger

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


class RotationError(RuntimeError):
    """The rotation cannot go on; Secrets Manager keeps the current version and reports the failure."""


def new_key_id(now: float, taken: set[str]) -> str:
    """A key id readable in a link (the rotation date) and unique among the live keys."""
    while True:
        key_id = f"k{time.strftime('%Y%m%d', time.gmtime(now))}-{secrets.token_hex(3)}"
        if key_id not in taken:
            return key_id


def create_secret(secret: dal.RotatingSecret, token: str) -> None:
    if secret.value("AWSPENDING", token) is not None:
        return  # a retried step: the pending version exists
    current = tokens.parse_keys(secret.value("AWSCURRENT") or "")
    taken = {current.current_id, current.previous_id or ""}
    rotated = current.rotated(new_key_id(time.time(), taken), secrets.token_urlsafe(48).encode())
    secret.put_pending(token, rotated.document())
    logger.info("signing key created", extra={"key_id": rotated.current_id, "previous_key_id": rotated.previous_id})


def check_pending_keys(secret: dal.RotatingSecret, token: str) -> None:
    pending_text, current_text = secret.value("AWSPENDING", token), secret.value("AWSCURRENT")
    if pending_text is None or current_text is None:
        raise RotationError("testSecret: the pending or the current version is missing")
    pending, current = tokens.parse_keys(pending_text), tokens.parse_keys(current_text)
    if pending.current_id == current.current_id:
        return  # already finished: the pending version is the current one
    if (pending.previous_id, pending.previous) != (current.current_id, current.current):
        raise RotationError("testSecret: the pending keys do not keep today's current key as previous")
    claims = tokens.LinkClaims("rotation-test", "package", "approver@example.com", "approve", int(time.time()) + 60, "n")
    for signer in (current, pending):  # a link of today and one of tomorrow both verify with the new document
        if tokens.verify(tokens.sign(claims, signer), pending, int(time.time())) != claims:
            raise RotationError("testSecret: a link signed with the pending document does not verify")


def finish_secret(secret: dal.RotatingSecret, token: str, versions: dict[str, list[str]]) -> None:
    current = next((version for version, stages in versions.items() if "AWSCURRENT" in stages), None)
    if current == token:
        return
    secret.make_current(token, current)
    logger.info("signing key rotated", extra={"version": token})


def handler(event: dict, context: LambdaContext | None = None) -> None:
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    if step not in STEPS:
        raise RotationError(f"unknown rotation step '{step}'")
    secret = dal.RotatingSecret(arn)
    metadata = secret.describe()
    if not metadata.get("RotationEnabled"):
        raise RotationError(f"rotation is not enabled on {arn}")
    versions = metadata.get("VersionIdsToStages", {})
    if token not in versions:
        raise RotationError(f"version {token} of {arn} has no staging label for rotation")
    if "AWSCURRENT" in versions[token]:
        return  # this version is already current: nothing left to do
    if "AWSPENDING" not in versions[token]:
        raise RotationError(f"version {token} of {arn} is not AWSPENDING")
    if step == "createSecret":
        create_secret(secret, token)
    elif step == "testSecret":
        check_pending_keys(secret, token)
    elif step == "finishSecret":
        finish_secret(secret, token, versions)

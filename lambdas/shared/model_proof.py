"""A caller's proof, to the environment's runs API, that their session is tagged with the model they ask about.

A Function URL's requestContext carries the caller's verified ARN and user id but none of their session tags, and the
runs API serves every model of the environment. So the client encrypts a timestamp under the environment's key
with the encryption context {purpose, model, caller = its own user id}; the people's policies allow kms:Encrypt only
with model = `${aws:PrincipalTag/mlops:model}` and caller = `${aws:userid}` (stacks/constructs/access.py), so only a
session tagged with that model, and only for itself, can make one. The API decrypts it with the model it was asked
about and the user id Lambda verified: KMS authenticates the encryption context (AWS KMS developer guide,
"Encryption context"), so any other model, caller or key fails, and a proof older than PROOF_SECONDS is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import time

from botocore.exceptions import ClientError

from pipelines import naming

HEADER = "x-mlops-model-proof"
PROOF_SECONDS = 900  # a proof's life: the STS minimum session, and the revocation delay it adds
CLOCK_SKEW_SECONDS = 60


class ProofRefused(PermissionError):
    """No proof, or one that does not show a session tagged with the model, for this caller, recently."""


def encryption_context(model: str, caller_id: str) -> dict[str, str]:
    return {"purpose": naming.RUNS_API_PROOF, "model": model, "caller": caller_id}


def make(kms, caller_id: str, key: str, model: str, now: float | None = None) -> str:
    """The proof header's value, made with the caller's own session (kms: its KMS client; caller_id: its
    sts:GetCallerIdentity UserId). Raises ClientError (AccessDenied) when the session is not tagged with `model`."""
    issued = int(time.time() if now is None else now)
    blob = kms.encrypt(KeyId=key, Plaintext=json.dumps({"issued": issued}).encode(),
                       EncryptionContext=encryption_context(model, caller_id))["CiphertextBlob"]
    return base64.b64encode(blob).decode()


def verify(kms, proof: str | None, key: str, model: str, caller_id: str, now: float | None = None) -> None:
    """Raises ProofRefused unless `proof` was made by `caller_id` for `model` under `key` in the last PROOF_SECONDS."""
    if not proof:
        raise ProofRefused("the request carries no proof of the model your session is tagged with")
    try:
        blob = base64.b64decode(proof, validate=True)
    except (binascii.Error, ValueError):
        raise ProofRefused("the model proof is not base64") from None
    try:
        plaintext = kms.decrypt(CiphertextBlob=blob, KeyId=key,
                                EncryptionContext=encryption_context(model, caller_id))["Plaintext"]
    except ClientError as error:
        if error.response["Error"]["Code"] in ("InvalidCiphertextException", "IncorrectKeyException"):
            raise ProofRefused(f"the model proof was not made by your session for {model}") from None
        raise
    try:
        issued = int(json.loads(plaintext)["issued"])
    except (ValueError, KeyError, TypeError):
        raise ProofRefused("the model proof holds no issue time") from None
    now = time.time() if now is None else now
    if not now - PROOF_SECONDS <= issued <= now + CLOCK_SKEW_SECONDS:
        raise ProofRefused("the model proof has expired (or is dated in the future)")

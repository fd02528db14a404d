"""Signed approval links: HMAC-SHA256 over a compact payload bound to model, execution, package, approver, action.

A link is `v2.<key id>.<claims>.<signature>`. The signing secret (Secrets Manager, rotated by
lambdas/approval/rotation.py) holds the current key and the previous one; links are signed with the current key
and verified with whichever key their id names, so links in flight survive one rotation. The secret's first,
plain-string form (what CloudFormation generates) is the key with id "initial"; `v1.<claims>.<signature>` links
made before key ids existed were signed with it and verify while "initial" is the current or previous key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Literal

VERSION = "v2"
LEGACY_VERSION = "v1"
INITIAL_KEY_ID = "initial"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
MALFORMED = "The link is incomplete or damaged. Open it again from the email."


class LinkError(ValueError):
    """A link that must change nothing; status is the HTTP status to answer with."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail = status, title, detail


class UnknownKey(LinkError):
    """The link names a key id the given keys do not hold: rotated away, or newer than a cached secret."""


@dataclass(frozen=True)
class LinkClaims:
    execution: str
    package: str
    approver: str
    action: Literal["approve", "reject"]
    expires: int
    nonce: str
    model: str = ""  # the model whose run waits: the control plane's decide function acts for it (empty: no link)


@dataclass(frozen=True)
class SigningKeys:
    """The keys a link may be signed with: the current one signs, current and previous verify."""

    current_id: str
    current: bytes
    previous_id: str | None = None
    previous: bytes | None = None

    def key(self, key_id: str) -> bytes | None:
        if key_id == self.current_id:
            return self.current
        if self.previous is not None and key_id == self.previous_id:
            return self.previous
        return None

    def document(self) -> str:
        """The secret's JSON form."""
        body = {"current": {"id": self.current_id, "key": self.current.decode()}}
        if self.previous is not None:
            body["previous"] = {"id": self.previous_id, "key": self.previous.decode()}
        return json.dumps(body, sort_keys=True)

    def rotated(self, new_id: str, new_key: bytes) -> SigningKeys:
        """The next generation: a new current key, today's current kept as previous (the older one dropped)."""
        if new_id == self.current_id:
            raise ValueError("a rotated key needs a new key id")
        return SigningKeys(new_id, new_key, self.current_id, self.current)


def parse_keys(secret: str | bytes) -> SigningKeys:
    """The secret's value: {"current": {"id", "key"}, "previous": {"id", "key"}} or, before its first rotation,
    a plain string (the key with id "initial")."""
    text = secret.decode() if isinstance(secret, bytes) else secret
    if not text.lstrip().startswith("{"):
        if not text:
            raise ValueError("the signing secret is empty")
        return SigningKeys(INITIAL_KEY_ID, text.encode())
    document = json.loads(text)
    current, previous = document["current"], document.get("previous")
    for entry in (current, previous):
        if entry is not None and (not _KEY_ID.match(str(entry.get("id", ""))) or len(str(entry.get("key", ""))) < 32):
            raise ValueError("the signing secret has a key without a valid id or with fewer than 32 characters")
    if previous is None:
        return SigningKeys(current["id"], current["key"].encode())
    return SigningKeys(current["id"], current["key"].encode(), previous["id"], previous["key"].encode())


def _keys(key: bytes | str | SigningKeys) -> SigningKeys:
    return key if isinstance(key, SigningKeys) else parse_keys(key)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    """Canonical unpadded base64url only: anything that does not re-encode to the same text (stray characters,
    padding, non-zero trailing bits) is refused, so one signature has exactly one spelling."""
    if not _B64URL.match(text):
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("non-canonical base64url")
    return raw


def _mac(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode(), hashlib.sha256).digest()


def sign(claims: LinkClaims, key: bytes | str | SigningKeys) -> str:
    """A v2 link signed with the current key (key: the secret's value, or SigningKeys)."""
    keys = _keys(key)
    payload = _b64(json.dumps(asdict(claims), separators=(",", ":"), sort_keys=True).encode())
    signed = f"{VERSION}.{keys.current_id}.{payload}"
    return f"{signed}.{_b64(_mac(keys.current, signed))}"


def new_nonce() -> str:
    return secrets.token_urlsafe(12)


def verify(token: str, key: bytes | str | SigningKeys, now: int) -> LinkClaims:
    """The claims of an authentic, unexpired link; LinkError (400/403/410) otherwise.
    key: the secret's value (or SigningKeys); the link's key id picks the current or the previous key."""
    if not isinstance(token, str) or len(token) > 4096 or token.count(".") not in (2, 3):
        raise LinkError(400, "Malformed link", MALFORMED)
    parts = token.split(".")
    version = parts[0]
    if (version, len(parts)) not in ((VERSION, 4), (LEGACY_VERSION, 3)):
        raise LinkError(400, "Malformed link", f"Unknown link version '{version[:10]}'.")
    key_id, payload, signature = parts[1:] if version == VERSION else (INITIAL_KEY_ID, *parts[1:])
    if not _KEY_ID.match(key_id):
        raise LinkError(400, "Malformed link", MALFORMED)
    try:
        given = _unb64(signature)
        fields = json.loads(_unb64(payload))
    except (ValueError, UnicodeDecodeError):
        raise LinkError(400, "Malformed link", MALFORMED) from None
    try:
        secret = _keys(key).key(key_id)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise LinkError(503, "Signing key unavailable", "The platform cannot check links right now; try again later.") from None
    if secret is None:
        raise UnknownKey(403, "Invalid link", "This link was signed with a key that is no longer valid (keys rotate "
                                             "regularly); ask for a new approval request, or decide with `mlops approve`.")
    signed = f"{VERSION}.{key_id}.{payload}" if version == VERSION else f"{LEGACY_VERSION}.{payload}"
    if not hmac.compare_digest(_mac(secret, signed), given):
        raise LinkError(403, "Invalid link", "This link was not issued by the platform or has been altered.")
    if not isinstance(fields, dict):
        raise LinkError(400, "Malformed link", "The link's contents are not an approval request.")
    try:
        claims = LinkClaims(**fields)
    except TypeError:
        raise LinkError(400, "Malformed link", "The link's contents are not an approval request.") from None
    texts = (claims.execution, claims.package, claims.approver, claims.nonce, claims.model)
    if not all(isinstance(v, str) for v in texts) \
            or not isinstance(claims.expires, int) or isinstance(claims.expires, bool):
        raise LinkError(400, "Malformed link", "The link's contents are not an approval request.")
    if claims.action not in ("approve", "reject"):
        raise LinkError(400, "Malformed link", "The link names no decision.")
    if now > claims.expires:
        raise LinkError(410, "Link expired", "The approval window has closed; the run ended as rejected.")
    return claims

"""Signed approval links: HMAC-SHA256 over a compact payload bound to execution, package, approver, action."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Literal

VERSION = "v1"


class LinkError(ValueError):
    """A link that must change nothing; status is the HTTP status to answer with."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail = status, title, detail


@dataclass(frozen=True)
class LinkClaims:
    execution: str
    package: str
    approver: str
    action: Literal["approve", "reject"]
    expires: int
    nonce: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: LinkClaims, key: bytes) -> str:
    payload = _b64(json.dumps(asdict(claims), separators=(",", ":"), sort_keys=True).encode())
    signature = _b64(hmac.new(key, f"{VERSION}.{payload}".encode(), hashlib.sha256).digest())
    return f"{VERSION}.{payload}.{signature}"


def new_nonce() -> str:
    return secrets.token_urlsafe(12)


def verify(token: str, key: bytes, now: int) -> LinkClaims:
    """The claims of an authentic, unexpired link; LinkError (400/403/410) otherwise."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 4096:
        raise LinkError(400, "Malformed link", "The link is incomplete or damaged. Open it again from the email.")
    version, payload, signature = token.split(".")
    if version != VERSION:
        raise LinkError(400, "Malformed link", f"Unknown link version '{version[:10]}'.")
    expected = hmac.new(key, f"{version}.{payload}".encode(), hashlib.sha256).digest()
    try:
        given = _unb64(signature)
        fields = json.loads(_unb64(payload))
    except (ValueError, json.JSONDecodeError):
        raise LinkError(400, "Malformed link", "The link is incomplete or damaged. Open it again from the email.") from None
    if not hmac.compare_digest(expected, given):
        raise LinkError(403, "Invalid link", "This link was not issued by the platform or has been altered.")
    try:
        claims = LinkClaims(**fields)
    except TypeError:
        raise LinkError(400, "Malformed link", "The link's contents are not an approval request.") from None
    if claims.action not in ("approve", "reject"):
        raise LinkError(400, "Malformed link", "The link names no decision.")
    if now > claims.expires:
        raise LinkError(410, "Link expired", "The approval window has closed; the run ended as rejected.")
    return claims

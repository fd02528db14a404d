"""Content hashes computed while the bytes pass (no second read)."""

from __future__ import annotations

import hashlib
import io
from typing import IO


class HashingReader(io.RawIOBase):
    """A raw byte stream that hashes what passes through it (content hash without a second read)."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self.stream, self.sha256, self.bytes = stream, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.stream.read(len(buffer))
        self.sha256.update(chunk)
        self.bytes += len(chunk)
        buffer[:len(chunk)] = chunk
        return len(chunk)

"""Reading SageMaker's capture files and the platform's label files as bytes: the hour folders, the chunks, the lines
(linear time, an overlong line cut and reported), the BASE64 bodies. Standard library only: the quality check and the
drift check share it without the drift engine's dependencies."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Iterable, Iterator

MAX_LINE_BYTES = 8 * 1024 * 1024
READ_BYTES = 4 * 1024 * 1024


def line_batches(chunks: Iterable[bytes], max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[list[bytes]]:
    """The lines of a byte stream, a chunk's worth at a time (one bytes.split, no Python work per line), in time
    linear in its size; a line over the cap comes back as its first max_line_bytes + 1 bytes (so the reader can
    report it) and its remainder is skipped."""
    carry, skipping = bytearray(), False
    for chunk in chunks:
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if lines:
            if skipping:  # the first piece ends an overlong line already reported
                del lines[0]
            elif carry:
                carry += lines[0]
                lines[0] = bytes(carry)
            carry, skipping = bytearray(), False
            if lines and max(map(len, lines)) > max_line_bytes:
                lines = [line[:max_line_bytes + 1] for line in lines]
            if lines:
                yield lines
        if not skipping:
            carry += tail
            if len(carry) > max_line_bytes:
                yield [bytes(carry[:max_line_bytes + 1])]
                carry, skipping = bytearray(), True
    if carry and not skipping:
        yield [bytes(carry)]


def decoded_data(captured: dict) -> str | bytes:
    """The body of a capture's endpointInput or endpointOutput, BASE64 decoded where it is encoded so."""
    data = captured["data"]
    return base64.b64decode(data, validate=True) if str(captured.get("encoding", "")).upper() == "BASE64" else data


def read_chunks(stream, size: int = READ_BYTES) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


def hourly_prefixes(base: str, start: datetime, end: datetime) -> Iterable[str]:
    """SageMaker writes capture files under <base>/yyyy/mm/dd/hh/."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour <= end:
        yield f"{base.rstrip('/')}/{hour:%Y/%m/%d/%H}/"
        hour += timedelta(hours=1)


def hourly_files(store, base: str, start: datetime, end: datetime) -> Iterator[tuple[str, Iterator[list[bytes]]]]:
    """(key, its line batches, read lazily in READ_BYTES chunks) of every file under the hour folders of [start, end].
    store: lambdas.shared.dal.ObjectStore (list_keys, open)."""
    for prefix in hourly_prefixes(base, start, end):
        for key in store.list_keys(prefix):
            yield key, line_batches(read_chunks(store.open(key)))

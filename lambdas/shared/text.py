"""Values that came from input, made safe to show in an email or a log line."""

from __future__ import annotations

import json
import math

# C0 and C1 control characters, DEL and Unicode's line and paragraph separators: each could start a new line in a
# mail client. Unicode's bidirectional controls (U+202A-U+202E, U+2066-U+2069) reorder what is displayed around them
# (a reason or a file name that reads other than it is). All are shown as visible escapes instead.
BIDI_CONTROLS = [*range(0x202a, 0x202f), *range(0x2066, 0x206a)]
BIDI_ESCAPES = {c: f"\\u{c:04x}" for c in BIDI_CONTROLS}
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)]} | {
    ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"} | BIDI_ESCAPES


def one_line(value, limit: int = 300) -> str:
    """Any value that came from input, as one line of text: control characters shown escaped (a newline as a
    visible backslash-n), never able to start a line of its own in an email; cut at limit characters."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = text.translate(_CONTROL_ESCAPES)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def strict(value):
    """The value with every NaN or infinity replaced by None: reports are strict JSON, whatever the data."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    return value

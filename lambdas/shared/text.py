"""Values that came from input, made safe to show in an email or a log line."""

from __future__ import annotations

import json

# C0 and C1 control characters, DEL and Unicode's line and paragraph separators: each could start a new line in a
# mail client; shown as visible escapes instead.
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)]} | {
    ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(value, limit: int = 300) -> str:
    """Any value that came from input, as one line of text: control characters shown escaped (a newline as a
    visible backslash-n), never able to start a line of its own in an email; cut at limit characters."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = text.translate(_CONTROL_ESCAPES)
    return text if len(text) <= limit else text[:limit - 1] + "…"

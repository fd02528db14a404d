"""The error document Step Functions puts at `$.error` when a Catch fires: {"Error": ..., "Cause": ...}."""

from __future__ import annotations

import json


def failure_reason(error: dict | None) -> str:
    """A readable reason; Cause may be a Lambda error document (JSON), a plain string, or missing/null."""
    if not isinstance(error, dict):
        return "unknown error"
    cause = error.get("Cause") or ""
    try:
        cause = json.loads(cause).get("errorMessage", cause)
    except (ValueError, TypeError, AttributeError):
        pass
    name = error.get("Error") or "Error"
    return f"{name}: {cause}" if cause else str(name)

"""The quality checks recorded for a model: `quality/<model>/<YYYYmmddTHHMMSSZ>/report.json` in the environment's
artifact bucket (one folder per check, written by the scheduled quality check, lambdas/quality/handler.py).

Bounded: the keys under `quality/<model>/` are listed (keys only: one ListObjectsV2 page per 1,000 keys, i.e. about
500 checks, a report.json and a report.html each) and only the newest `limit` report.json are read. A report.json
that is not a JSON object with a "decision" (truncated, hand-edited, another tool's) is skipped and counted, never
raised; the reports returned are then fewer than `limit` (older ones are not read in their place). An AWS error (an
AccessDenied, no credentials) is the caller's to explain.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from lambdas.shared import dal

STAMP = "%Y%m%dT%H%M%SZ"  # the check's folder name: its time, UTC
_REPORT_KEY = re.compile(r"(?P<stamp>\d{8}T\d{6}Z)/report\.json")


class RecentReports(list):
    """The reports, oldest first (each a dict), and the report.json keys skipped as malformed (`skipped`)."""

    def __init__(self, reports=(), skipped=()) -> None:
        super().__init__(reports)
        self.skipped: list[str] = list(skipped)


def model_prefix(model: str) -> str:
    return f"quality/{model}/"


def report_key(model: str, checked_at: datetime) -> str:
    """Where the check of `checked_at` files its report.json."""
    return f"{model_prefix(model)}{checked_at.astimezone(timezone.utc):{STAMP}}/report.json"


def report_keys(store: dal.ObjectStore, model: str, since: datetime | None = None) -> list[str]:
    """Every check's report.json key of the model (since `since`: only the folders after its stamp are listed, so
    the listing does not grow with the model's age), oldest first (the stamps sort as the times do)."""
    prefix = model_prefix(model)
    start_after = f"{prefix}{since.astimezone(timezone.utc):{STAMP}}" if since else None
    found = [key for key in store.list_keys(prefix, start_after) if _REPORT_KEY.fullmatch(key.removeprefix(prefix))]
    return sorted(found)


def checked_at(key: str) -> str:
    """The check's time (ISO, UTC) its folder's stamp names."""
    stamp = key.rsplit("/", 2)[-2]
    return datetime.strptime(stamp, STAMP).replace(tzinfo=timezone.utc).isoformat()


def read_report(store: dal.ObjectStore, key: str) -> dict | None:
    """The report at `key`, with `checked_at` (from its folder when the report lacks it) and `report_uri`; None
    when it is not a report (not JSON, not an object, no decision)."""
    try:
        document = json.loads(store.read_bytes(key))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    if not isinstance(document, dict) or not isinstance(document.get("decision"), str):
        return None
    return {"checked_at": checked_at(key), **document, "report_uri": f"s3://{store.bucket}/{key}"}


def recent_reports(store: dal.ObjectStore, model: str, limit: int = 30, since: datetime | None = None) -> RecentReports:
    """The newest `limit` quality reports of `model` (checked after `since`, when given), oldest first; malformed
    ones skipped (`.skipped`: their keys)."""
    newest = report_keys(store, model, since)[-limit:] if limit > 0 else []
    reports, skipped = [], []
    for key in newest:
        report = read_report(store, key)
        if report is None:
            skipped.append(key)
        else:
            reports.append(report)
    return RecentReports(reports, skipped)

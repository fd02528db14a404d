"""Quality reports as the scheduled quality check files them (lambdas/quality/handler.py's contract): the report of
lambdas/quality/logic.py plus champion, champion_version, checked_at, execution_arn, retrain and html_report_uri."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

BUCKET = "mlops-dev-artifacts-123456789012-us-east-1"


def quality_report(checked_at: datetime, decision: str = "within_tolerance", value: float | None = 0.84,
                   baseline: float | None = 0.85, joined: int = 600, captured: int = 1000, model: str = "churn",
                   **fields) -> dict:
    """One check of the window ending an hour before `checked_at` (auc, to maximize, tolerance 0.02)."""
    end = checked_at - timedelta(hours=1)
    stamp = f"{checked_at:%Y%m%dT%H%M%SZ}"
    return {"model": model, "window": {"start": (end - timedelta(hours=24)).isoformat(), "end": end.isoformat()},
            "objective": "validation:auc", "direction": "maximize", "tolerance": 0.02, "min_labels": 200,
            "baseline": baseline, "coverage": {"captured_rows": captured, "labelled_rows": joined,
                                               "ratio": joined / captured if captured else 0.0},
            "labels": {"joined": joined, "unknown": 3, "late": 2, "duplicate": 1, "malformed": 4, "examples": []},
            "captures": {"lines": captured, "malformed": 0, "outside_window": 0, "unidentified_rows": 0, "examples": []},
            "metrics": {} if value is None else {"validation:auc": value, "validation:accuracy": 0.8},
            "delta": None if value is None or baseline is None else value - baseline, "guard": None,
            "decision": decision, "reason": f"{decision} because of the numbers", "retrain": decision == "drop",
            "champion": f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{model}-dev/3", "champion_version": 3,
            "checked_at": checked_at.isoformat(), "execution_arn": None,
            "html_report_uri": f"s3://{BUCKET}/quality/{model}/{stamp}/report.html", **fields}


def put_report(s3, report: dict, bucket: str = BUCKET) -> str:
    """Files the report's report.json (and a report.html beside it) where the check writes them; returns the key."""
    stamp = f"{datetime.fromisoformat(report['checked_at']):%Y%m%dT%H%M%SZ}"
    key = f"quality/{report['model']}/{stamp}/report.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(report).encode())
    s3.put_object(Bucket=bucket, Key=key.replace("report.json", "report.html"), Body=b"<html></html>")
    return key

"""The quality page (lambdas/quality/report.py): the decision and its reason first, the objective over time against
each check's baseline and tolerance line, coverage over time, the counts, the guard, the metrics, every value from a
file escaped; the short forms the CLI and the fleet print; and the history read (lambdas/quality/history.py):
bounded, oldest first, malformed reports skipped and counted."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from lambdas.drift.report import strict
from lambdas.quality import history, logic, report
from pipelines import quality_cli
from tests.support.quality_reports import quality_report
from tests.unit.test_quality_logic import CHURN, WINDOW, churn_window

T0 = datetime(2026, 12, 1, 6, tzinfo=timezone.utc)


def days(count: int, **fields) -> list[dict]:
    return [quality_report(T0 + timedelta(days=i), **fields) for i in range(count)]


def real_drop() -> dict:
    """A report of logic.check on flipped labels, with what the scheduled check adds."""
    captures, ground_truth, _ = churn_window(600, flip=True)
    found = strict(logic.check(CHURN, captures, ground_truth, {"validation:auc": 0.83}, WINDOW))
    return {**found, "champion": "arn:aws:sagemaker:us-east-1:1:model-package/churn-dev/3", "champion_version": 3,
            "checked_at": "2026-12-02T01:00:00+00:00", "execution_arn": "arn:aws:states:us-east-1:1:execution:m:quality-1",
            "html_report_uri": "s3://bucket/quality/churn/20261202T010000Z/report.html"}


def test_the_page_opens_with_the_decision_its_reason_and_the_retraining_it_started():
    page = report.html_report(real_drop(), days(3))
    top = page.index("<h2>")
    assert "Decision: <strong>quality drop</strong> (drop)" in page[:top]
    assert "Why: validation:auc dropped to 0.1759 from 0.8300 (beyond the tolerance 0.02" in page[:top]
    assert "retraining started: arn:aws:states:us-east-1:1:execution:m:quality-1" in page[:top]
    assert 'class="decision bad"' in page


def test_the_guard_counts_metrics_and_model_monitor_reading_of_a_real_drop_are_shown():
    page = report.html_report(real_drop(), [])
    assert "<th>upper bound</th><td>0.2031</td>" in page and "<th>significant</th><td>yes</td>" in page
    assert "<th>joined</th><td>600</td>" in page and "<th>malformed</th><td>0</td>" in page
    assert "<tr class=objective><td>validation:auc</td><td>0.1759</td><td>0.83</td><td>-0.6541</td></tr>" in page
    assert "comparison_operator <code>LessThanThreshold</code>; this window&#x27;s auc is 0.1759: violated" in page


def test_the_objective_chart_draws_each_checks_value_its_baseline_and_the_tolerance_line():
    earlier = days(3, value=0.84, baseline=0.85) + [quality_report(T0 + timedelta(days=3), "insufficient_labels",
                                                                   value=None, joined=12)]
    page = report.html_report(quality_report(T0 + timedelta(days=4), "drop", value=0.71), earlier)
    chart = page[page.index("<h2>Objective over time</h2>"):page.index("<h2>Label coverage")]
    assert chart.count("<circle") == 4 and chart.count(">×<title>") == 1  # 4 values, one check without
    baseline, limit = re.findall(r'<polyline points="([^"]+)"', chart)
    assert len(set(point.split(",")[1] for point in baseline.split())) == 1  # one baseline, 0.85, throughout
    assert float(limit.split()[0].split(",")[1]) > float(baseline.split()[0].split(",")[1])  # 0.83 sits lower
    assert 'fill="#c62828"><title>12-05 05:00: validation:auc 0.71 vs baseline 0.85, 600 labels: quality drop' in chart


def test_a_new_champions_baseline_moves_the_baseline_line():
    checks = days(2, baseline=0.85) + days(2, baseline=0.9)
    chart = report.objective_chart(checks)
    baseline = re.findall(r'<polyline points="([^"]+)"', chart)[0]
    assert len(set(point.split(",")[1] for point in baseline.split())) == 2


def test_coverage_is_a_bar_per_check_light_below_min_labels():
    checks = [quality_report(T0, joined=600, captured=1000), quality_report(T0 + timedelta(days=1), joined=50,
                                                                            captured=1000)]
    chart = report.coverage_chart(checks)
    assert chart.count("<rect") == 2 and "600 labels joined of 1000 captured rows (60.0%)" in chart
    assert 'fill="#b7c7de"><title>12-02 05:00: 50 labels joined' in chart


def test_the_current_report_is_charted_once_whether_or_not_history_holds_it():
    current = quality_report(T0 + timedelta(days=2), "drop", value=0.7)
    before, after = report.html_report(current, days(2)), report.html_report(current, [*days(2), current])
    assert before == after and "Checks (3, newest first)" in before


def test_every_value_from_a_file_is_escaped():
    hostile = "<script>alert(1)</script>"
    found = quality_report(T0, "drop", value=0.5, model=hostile, champion=hostile, reason=hostile,
                           labels={"joined": 600, "unknown": 1, "late": 0, "duplicate": 0, "malformed": 1,
                                   "examples": [f"no captured prediction of the window has id {hostile!r}"]},
                           metrics={"validation:auc": 0.5, hostile: 1.0}, objective="validation:auc")
    page = report.html_report(found, [quality_report(T0 - timedelta(days=1), decision=hostile)])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_report_with_nothing_measured_still_renders():
    found = quality_report(T0, "no_baseline", value=None, baseline=None, joined=0, captured=0)
    page = report.html_report(found, [])
    assert "No check has an objective value or a baseline yet." in page
    assert "No approved baseline: no Model Monitor constraint to check." in page and "Not run:" in page


@pytest.mark.parametrize("fields, expected", [
    ({"decision": "drop", "value": 0.7123, "baseline": 0.85}, "drop 0.712/0.85"),
    ({"decision": "not_significant", "value": 0.8, "baseline": 0.85}, "dip 0.8/0.85 (not significant)"),
    ({"decision": "within_tolerance"}, "ok"),
    ({"decision": "insufficient_labels", "value": None, "joined": 0}, "no labels"),
    ({"decision": "insufficient_labels", "value": None, "joined": 12}, "few labels (12/200)"),
    ({"decision": "no_baseline", "baseline": None}, "no baseline"),
])
def test_the_fleets_state_text(fields, expected):
    assert report.state_text(quality_report(T0, **fields)) == expected


def test_no_report_is_a_dash():
    assert report.state_text(None) == "-"


def test_a_table_row_shows_time_window_labels_coverage_objective_delta_and_decision():
    cells = quality_cli.row(report.json_summary(quality_report(T0, "drop", value=0.71, baseline=0.85, joined=1234,
                                                               captured=2000)))
    assert cells == ["2026-12-01 06:00", "2026-11-30 05:00 → 2026-12-01 05:00", "1,234", "61.7%", "0.71 / 0.85",
                     "-0.14", "[red]quality drop[/]"]


def test_a_row_without_a_value_says_so():
    cells = quality_cli.row(report.json_summary(quality_report(T0, "insufficient_labels", value=None, joined=0)))
    assert cells[3:] == ["0.0%", "– / 0.85", "–", "too few labels"]


# ---------------------------------------------------------------- history
class Store:
    """An ObjectStore's listing and reads, counted."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.bucket, self.objects, self.reads = "bucket", objects, []

    def list_keys(self, prefix: str, start_after: str | None = None):
        return iter(sorted(key for key in self.objects if key.startswith(prefix) and key > (start_after or "")))

    def read_bytes(self, key: str) -> bytes:
        self.reads.append(key)
        return self.objects[key]


def filed(*reports: dict) -> dict[str, bytes]:
    objects = {}
    for found in reports:
        key = history.report_key(found["model"], datetime.fromisoformat(found["checked_at"]))
        objects[key], objects[key.replace(".json", ".html")] = json.dumps(found).encode(), b"<html/>"
    return objects


def test_recent_reports_are_the_newest_oldest_first_and_only_those_are_read():
    store = Store(filed(*days(5)) | filed(quality_report(T0, model="churn-v2")))
    found = history.recent_reports(store, "churn", limit=3)
    assert [r["checked_at"] for r in found] == [(T0 + timedelta(days=i)).isoformat() for i in (2, 3, 4)]
    assert len(store.reads) == 3 and found.skipped == []
    assert found[-1]["report_uri"] == "s3://bucket/quality/churn/20261205T060000Z/report.json"


def test_a_malformed_report_is_skipped_and_counted_never_raised():
    objects = filed(*days(3))
    keys = sorted(key for key in objects if key.endswith(".json"))
    objects[keys[0]], objects[keys[1]] = b'{"truncated', b'["not", "a report"]'
    objects["quality/churn/notes.txt"] = b"a person's note"
    found = history.recent_reports(Store(objects), "churn")
    assert len(found) == 1 and found.skipped == keys[:2]


def test_a_report_without_checked_at_takes_its_folders_time():
    found = quality_report(T0)
    del found["checked_at"]
    objects = {"quality/churn/20261201T060000Z/report.json": json.dumps(found).encode()}
    assert history.recent_reports(Store(objects), "churn")[0]["checked_at"] == "2026-12-01T06:00:00+00:00"


def test_no_reports_is_an_empty_history():
    found = history.recent_reports(Store({}), "churn")
    assert found == [] and found.skipped == []


@pytest.mark.parametrize("fields, expected", [
    ({"decision": "drop", "execution_arn": "arn:aws:states:us-east-1:1:execution:m:q-1"},
     "retraining started: arn:aws:states:us-east-1:1:execution:m:q-1"),
    ({"decision": "drop", "retrain": True}, "retraining asked for; this check started no run (execution_arn is empty)"),
    ({"decision": "drop", "retrain": False}, "no retraining: the spec's quality.retrain is off"),
    ({"decision": "not_significant", "retrain": False}, "no retraining needed"),
])
def test_the_page_says_what_became_of_retraining(fields, expected):
    assert report.retraining(quality_report(T0, **fields)) == expected


def test_the_history_lists_only_the_folders_after_since():
    """The scheduled check's page reads the last 90 days: its listing does not grow with the model's age."""
    from datetime import datetime, timezone
    from unittest import mock

    from lambdas.quality import history

    store = mock.Mock(bucket="b")
    store.list_keys.return_value = iter([])
    history.recent_reports(store, "churn", 30, datetime(2026, 9, 8, 12, tzinfo=timezone.utc))
    store.list_keys.assert_called_once_with("quality/churn/", "quality/churn/20260908T120000Z")

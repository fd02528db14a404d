"""Quality reports for people: one self-contained HTML page per check (inline SVG, no script, no external asset), the
sibling of the drift report (lambdas/drift/report.py), and the short forms the CLI and the fleet print.

`html_report(report, history)`: `report` is the check's report.json (lambdas/quality/logic.py's report plus the
check's champion, champion_version, checked_at, execution_arn and html_report_uri); `history` the model's earlier
reports, oldest first (lambdas/quality/history.recent_reports). The current report may be history's last item or
not: it is appended unless history already ends with it (the same checked_at and window), so a caller may pass the
history read before or after writing the report.

The page: the decision and its reason first, then the objective over time against each check's approved baseline
and its tolerance line, label coverage over time, this window's counts (joined, unknown, late, duplicate, malformed
labels; captured rows), the statistical guard, the window's metrics, the Model Monitor reading of the same numbers,
and the earlier checks. Every value from a report is HTML-escaped: model names, ids and labels come from files
people supply.
"""

from __future__ import annotations

import html
import math

from lambdas.shared.evidence import finite_number

BASELINE, LIMIT, NEUTRAL = "#4b6fa5", "#c62828", "#9e9e9e"
DECISION_COLOURS = {"drop": "#c62828", "not_significant": "#e0a100", "within_tolerance": "#2e7d32"}
DECISION_WORDS = {"drop": "quality drop", "not_significant": "a dip, not significant",
                  "within_tolerance": "within tolerance", "insufficient_labels": "too few labels",
                  "no_baseline": "no baseline", "no_metrics": "no metrics",
                  "new_champion": "new champion (window not judged)"}
TONES = {"drop": "bad", "not_significant": "doubt", "within_tolerance": "good"}
COUNTS = ("joined", "unknown", "late", "duplicate", "malformed", "previous_window", "ambiguous")
X_LABELS = 10  # at most this many time labels under a chart


def _e(value) -> str:
    return html.escape(str(value))


def figure(value, digits: int = 4) -> str:
    """A metric for people: `digits` significant digits below 10,000, grouped thousands above; "–" for none."""
    value = finite_number(value)
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"


def objective_value(report: dict) -> float | None:
    return finite_number((report.get("metrics") or {}).get(report.get("objective")))


def threshold(report: dict) -> float | None:
    """The tolerance line: baseline - tolerance for a metric to maximize, + for one to minimize."""
    baseline, tolerance = finite_number(report.get("baseline")), finite_number(report.get("tolerance"))
    if baseline is None or tolerance is None:
        return None
    return baseline - tolerance if report.get("direction", "maximize") == "maximize" else baseline + tolerance


def joined(report: dict) -> int:
    return int((report.get("labels") or {}).get("joined") or 0)


def state_text(report: dict | None) -> str:
    """The last check in a few words (the fleet's quality column): "drop 0.71/0.85", "ok", "no labels", "-"."""
    if report is None:
        return "-"
    decision = str(report.get("decision") or "")
    pair = f"{figure(objective_value(report), 3)}/{figure(report.get('baseline'), 3)}"
    if decision == "drop":
        return f"drop {pair}"
    if decision == "not_significant":
        return f"dip {pair} (not significant)"
    if decision == "within_tolerance":
        return "ok"
    if decision == "insufficient_labels":
        return "no labels" if joined(report) == 0 else f"few labels ({joined(report)}/{report.get('min_labels', '?')})"
    return DECISION_WORDS.get(decision, decision or "-")


def json_summary(report: dict) -> dict:
    """One check in the fields the CLI shows (a row of `mlops quality`)."""
    coverage, window = report.get("coverage") or {}, report.get("window") or {}
    return {"checked_at": report.get("checked_at"), "window_start": window.get("start"),
            "window_end": window.get("end"), "labels_joined": joined(report),
            "captured_rows": coverage.get("captured_rows"), "coverage": finite_number(coverage.get("ratio")),
            "objective": report.get("objective"), "value": objective_value(report),
            "baseline": finite_number(report.get("baseline")), "delta": finite_number(report.get("delta")),
            "decision": report.get("decision"), "reason": report.get("reason"), "retrain": bool(report.get("retrain")),
            "execution_arn": report.get("execution_arn"), "champion_version": report.get("champion_version"),
            "html_report_uri": report.get("html_report_uri"), "report_uri": report.get("report_uri")}


def same_check(one: dict, other: dict) -> bool:
    return one.get("checked_at") == other.get("checked_at") and one.get("window") == other.get("window")


def with_current(report: dict, history: list[dict]) -> list[dict]:
    """The checks to chart, oldest first, ending with `report` (appended unless history already ends with it)."""
    earlier = list(history or [])
    if earlier and same_check(earlier[-1], report):
        earlier.pop()
    return [*earlier, report]


# ---------------------------------------------------------------- charts
class Frame:
    """A chart's plot area: one slot per check along x, a value range along y."""

    left, right, top, bottom = 56, 12, 12, 58

    def __init__(self, checks: int, low: float, high: float, width: int = 640, height: int = 230) -> None:
        self.checks, self.low, self.high, self.width, self.height = checks, low, high, width, height
        self.plot_w, self.plot_h = width - self.left - self.right, height - self.top - self.bottom
        self.slot = self.plot_w / max(checks, 1)

    def x(self, index: int) -> float:
        return self.left + (index + 0.5) * self.slot

    def y(self, value: float) -> float:
        span = (self.high - self.low) or 1.0
        return self.top + self.plot_h * (1 - (value - self.low) / span)

    @property
    def floor(self) -> float:
        return self.top + self.plot_h

    def axes(self, ticks: list[tuple[float, str]], y_title: str, times: list[str]) -> str:
        parts = [f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{self.floor}" stroke="#444"/>',
                 f'<line x1="{self.left}" y1="{self.floor}" x2="{self.left + self.plot_w}" y2="{self.floor}" stroke="#444"/>']
        for value, label in ticks:
            y = self.y(value)
            parts.append(f'<line x1="{self.left - 4}" y1="{y:.1f}" x2="{self.left}" y2="{y:.1f}" stroke="#444"/>'
                         f'<text x="{self.left - 6}" y="{y + 3:.1f}" font-size="9" text-anchor="end">{_e(label)}</text>')
        middle = self.top + self.plot_h / 2
        parts.append(f'<text x="10" y="{middle:.1f}" font-size="9" text-anchor="middle" '
                     f'transform="rotate(-90 10 {middle:.1f})">{_e(y_title)}</text>')
        step = max(1, math.ceil(len(times) / X_LABELS))
        for index, label in enumerate(times):
            if index % step == 0 or index == len(times) - 1:
                x, y = self.x(index), self.floor + 10
                parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="8" text-anchor="end" '
                             f'transform="rotate(-40 {x:.1f} {y:.1f})">{_e(label)}</text>')
        parts.append(f'<text x="{self.left + self.plot_w / 2:.1f}" y="{self.height - 3}" font-size="9" '
                     'text-anchor="middle">window end (UTC)</text>')
        return "".join(parts)

    def svg(self, label: str, parts: list[str]) -> str:
        return (f'<svg width="{self.width}" height="{self.height}" role="img" aria-label="{_e(label)}">'
                f'{"".join(parts)}</svg>')


def window_end(report: dict) -> str:
    """The window's end as "MM-DD HH:MM" (what a chart's x axis names a check by)."""
    text = str((report.get("window") or {}).get("end") or report.get("checked_at") or "?")
    return f"{text[5:10]} {text[11:16]}" if len(text) >= 16 else text


def value_range(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or max(abs(high) * 0.05, 0.01)
    return low - pad, high + pad


def line(frame: Frame, points: list[tuple[int, float | None]], colour: str, title: str) -> str:
    """A dashed line through the checks that have a value (each check's own baseline: a new champion moves it)."""
    drawn = " ".join(f"{frame.x(i):.1f},{frame.y(v):.1f}" for i, v in points if v is not None)
    if not drawn:
        return ""
    return (f'<polyline points="{drawn}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 3">'
            f"<title>{_e(title)}</title></polyline>")


def objective_chart(checks: list[dict]) -> str:
    """The objective of each check (a dot coloured by its decision), each check's baseline and its tolerance line;
    a check without a value (too few labels, no metrics) is a grey mark on the axis."""
    values = [objective_value(check) for check in checks]
    baselines = [finite_number(check.get("baseline")) for check in checks]
    limits = [threshold(check) for check in checks]
    known = [v for v in values + baselines + limits if v is not None]
    if not known:
        return "<p>No check has an objective value or a baseline yet.</p>"
    frame = Frame(len(checks), *value_range(known))
    objective = str(checks[-1].get("objective") or "objective")
    ticks = [(value, figure(value, 3)) for value in (frame.low, (frame.low + frame.high) / 2, frame.high)]
    parts = [frame.axes(ticks, objective, [window_end(check) for check in checks]),
             line(frame, list(enumerate(baselines)), BASELINE, "approved baseline"),
             line(frame, list(enumerate(limits)), LIMIT, "tolerance line: beyond it a drop counts")]
    for index, (check, value) in enumerate(zip(checks, values)):
        parts.append(dot(frame, index, check, value))
    return frame.svg(f"{objective} per check against the approved baseline and the tolerance line", parts)


def dot(frame: Frame, index: int, check: dict, value: float | None) -> str:
    decision = str(check.get("decision") or "")
    title = (f"{window_end(check)}: {check.get('objective')} {figure(value)} vs baseline "
             f"{figure(check.get('baseline'))}, {joined(check)} labels: {DECISION_WORDS.get(decision, decision)}")
    if value is None:
        x, y = frame.x(index), frame.floor - 4
        return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="10" text-anchor="middle" fill="{NEUTRAL}">×'
                f"<title>{_e(title)}</title></text>")
    colour = DECISION_COLOURS.get(decision, NEUTRAL)
    return (f'<circle cx="{frame.x(index):.1f}" cy="{frame.y(value):.1f}" r="4" fill="{colour}">'
            f"<title>{_e(title)}</title></circle>")


def coverage_chart(checks: list[dict]) -> str:
    """Labelled rows / captured rows per check, a bar each (dark when min_labels joined, light when fewer)."""
    frame = Frame(len(checks), 0.0, 1.0, height=190)
    ticks = [(fraction, f"{fraction:.0%}") for fraction in (0.0, 0.5, 1.0)]
    parts = [frame.axes(ticks, "labelled / captured rows", [window_end(check) for check in checks])]
    for index, check in enumerate(checks):
        coverage = check.get("coverage") or {}
        ratio = min(max(finite_number(coverage.get("ratio")) or 0.0, 0.0), 1.0)
        enough = joined(check) >= int(finite_number(check.get("min_labels")) or 0)
        height = ratio * frame.plot_h
        title = (f"{window_end(check)}: {joined(check):,} labels joined of {coverage.get('captured_rows', '?')} "
                 f"captured rows ({ratio:.1%}); min_labels {check.get('min_labels', '?')}")
        parts.append(f'<rect x="{frame.x(index) - frame.slot * 0.3:.1f}" y="{frame.floor - height:.1f}" '
                     f'width="{frame.slot * 0.6:.1f}" height="{height:.1f}" '
                     f'fill="{BASELINE if enough else "#b7c7de"}"><title>{_e(title)}</title></rect>')
    return frame.svg("label coverage per check", parts)


# ---------------------------------------------------------------- page sections
def retraining(report: dict) -> str:
    if report.get("execution_arn"):
        return f"retraining started: {report['execution_arn']}"
    if report.get("retrain"):
        return "retraining asked for; this check started no run (execution_arn is empty)"
    if report.get("decision") == "drop":
        return "no retraining: the spec's quality.retrain is off"
    return "no retraining needed"


def facts(report: dict) -> str:
    window = report.get("window") or {}
    better = "higher is better" if report.get("direction", "maximize") == "maximize" else "lower is better"
    champion = report.get("champion") or "–"
    if report.get("champion_version") is not None:
        champion = f"version {report['champion_version']} ({champion})"
    rows = [("window", f"{window.get('start', '?')} → {window.get('end', '?')}"), ("checked at", report.get("checked_at", "–")),
            ("objective", f"{report.get('objective', '?')} ({better})"), ("approved baseline", figure(report.get("baseline"))),
            ("tolerance", report.get("tolerance", "–")), ("tolerance line", figure(threshold(report))),
            ("min_labels", report.get("min_labels", "–")), ("champion", champion),
            ("report.json", report.get("report_uri") or "–")]
    return "<dl>" + "".join(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in rows) + "</dl>"


def counts(report: dict) -> str:
    labels, captures, coverage = report.get("labels") or {}, report.get("captures") or {}, report.get("coverage") or {}
    label_rows = [(kind, labels.get(kind, 0)) for kind in COUNTS]
    capture_rows = [("captured rows (predictions with an id)", coverage.get("captured_rows", 0)),
                    ("capture lines read", captures.get("lines", 0)), ("malformed capture lines", captures.get("malformed", 0)),
                    ("lines outside the window", captures.get("outside_window", 0)),
                    ("rows without an id (not joinable)", captures.get("unidentified_rows", 0))]
    cells = lambda rows: "".join(f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in rows)  # noqa: E731
    ratio = finite_number(coverage.get("ratio"))
    examples = [*(labels.get("examples") or []), *(captures.get("examples") or [])]
    quoted = "<ul>" + "".join(f"<li>{_e(example)}</li>" for example in examples) + "</ul>" if examples else ""
    return (f"<p>Coverage: <strong>{'–' if ratio is None else f'{ratio:.1%}'}</strong> of the window's captured rows "
            f"have a label.</p><table class='counts'><thead><tr><th>labels</th><th></th></tr></thead>"
            f"<tbody>{cells(label_rows)}</tbody></table><table class='counts'><thead><tr><th>captures</th><th></th>"
            f"</tr></thead><tbody>{cells(capture_rows)}</tbody></table>{quoted}")


def guard_section(report: dict) -> str:
    guard = report.get("guard")
    if not guard:
        return ("<p>Not run: the bootstrap guard runs only when the objective is worse than the baseline by more than "
                "the tolerance.</p>")
    side = "upper" if report.get("direction", "maximize") == "maximize" else "lower"
    rows = [("method", guard.get("method")), ("resamples", guard.get("samples")), ("seed", guard.get("seed")),
            ("confidence", guard.get("confidence")), (f"{side} bound", figure(guard.get("bound"))),
            ("must cross", figure(guard.get("threshold"))), ("significant", "yes" if guard.get("significant") else "no"),
            ("bootstrap standard deviation", figure(guard.get("standard_deviation")))]
    return "<table class='guard'>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


def metrics_table(report: dict) -> str:
    metrics = report.get("metrics") or {}
    if not metrics:
        return "<p>No metrics for this window (see the decision's reason).</p>"
    objective = report.get("objective")
    rows = []
    for name, value in sorted(metrics.items()):
        is_objective = name == objective
        baseline = figure(report.get("baseline")) if is_objective else ""
        delta = figure(report.get("delta")) if is_objective else ""
        rows.append(f"<tr{' class=objective' if is_objective else ''}><td>{_e(name)}</td><td>{_e(figure(value))}</td>"
                    f"<td>{_e(baseline)}</td><td>{_e(delta)}</td></tr>")
    return ("<table><thead><tr><th>metric</th><th>this window</th><th>approved baseline</th><th>delta</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def monitor_note(report: dict) -> str:
    """The same numbers read as Model Monitor's model-quality job would: its constraint and whether it is violated."""
    line_value, value = threshold(report), objective_value(report)
    if line_value is None:
        return "<p>No approved baseline: no Model Monitor constraint to check.</p>"
    name = str(report.get("objective") or "").rpartition(":")[2]
    maximize = report.get("direction", "maximize") == "maximize"
    operator = "LessThanThreshold" if maximize else "GreaterThanThreshold"
    if value is None:
        verdict = "no value in this window, so no violation either way"
    else:
        violated = value < line_value if maximize else value > line_value
        verdict = f"this window's {name} is {figure(value)}: {'violated' if violated else 'not violated'}"
    return (f"<p>In Model Monitor's model-quality terms, constraints.json holds <code>{_e(name)}</code> with "
            f"threshold {_e(figure(line_value))} and comparison_operator <code>{operator}</code>; {_e(verdict)}. "
            "Model Monitor reports every violation; this check calls a drop only with at least min_labels joined "
            "labels and a significant bootstrap bound (the guard above), so a small window's noise raises "
            "nothing.</p>")


def history_table(checks: list[dict]) -> str:
    rows = []
    for check in reversed(checks):
        summary = json_summary(check)
        coverage = "–" if summary["coverage"] is None else f"{summary['coverage']:.1%}"
        decision = str(summary["decision"] or "")
        rows.append(f"<tr class='{TONES.get(decision, 'none')}'><td>{_e(summary['checked_at'] or '–')}</td>"
                    f"<td>{_e(summary['window_start'])} → {_e(summary['window_end'])}</td>"
                    f"<td>{summary['labels_joined']:,}</td><td>{_e(coverage)}</td><td>{_e(figure(summary['value']))}</td>"
                    f"<td>{_e(figure(summary['baseline']))}</td><td>{_e(figure(summary['delta']))}</td>"
                    f"<td>{_e(DECISION_WORDS.get(decision, decision))}</td></tr>")
    return ("<table><thead><tr><th>checked</th><th>window</th><th>labels joined</th><th>coverage</th><th>objective</th>"
            f"<th>baseline</th><th>delta</th><th>decision</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:.4rem 1rem .8rem 0}td,th{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:left}
table.counts{display:inline-table;vertical-align:top}dl{display:grid;grid-template-columns:max-content auto;gap:.25rem 1rem}
dt{font-weight:600}dd{margin:0}.verdict{font-size:1.4rem}
.decision{padding:.6rem 1rem;border-left:6px solid #9e9e9e;background:#f4f4f4}
.decision.bad{border-color:#c62828;background:#fdecea}.decision.doubt{border-color:#e0a100;background:#fff6d6}
.decision.good{border-color:#2e7d32;background:#edf7ed}tr.bad td{background:#fde2d6}tr.doubt td{background:#fff6d6}
tr.objective td{font-weight:600}
.legend span{display:inline-block;width:.8rem;height:.3rem;margin:0 .3rem 0 1rem;vertical-align:middle}"""


def legend() -> str:
    lines = [(BASELINE, "approved baseline"), (LIMIT, "tolerance line")]
    dots = [(DECISION_COLOURS["drop"], "drop"), (DECISION_COLOURS["not_significant"], "not significant"),
            (DECISION_COLOURS["within_tolerance"], "within tolerance"), (NEUTRAL, "no verdict (×: no value)")]
    return ('<p class="legend">' + "".join(f'<span style="background:{c}"></span>{_e(t)}' for c, t in lines)
            + "".join(f'<span style="background:{c};height:.8rem"></span>{_e(t)}' for c, t in dots) + "</p>")


def verdict(report: dict) -> str:
    """The decision, its reason and the retraining: the page's first block."""
    decision = str(report.get("decision") or "")
    return (f'<div class="decision {TONES.get(decision, "none")}"><p class="verdict">Decision: <strong>'
            f"{_e(DECISION_WORDS.get(decision, decision))}</strong> ({_e(decision)})</p>"
            f"<p>Why: {_e(report.get('reason') or '–')}.</p><p>{_e(retraining(report))}.</p></div>")


def html_report(report: dict, history: list[dict]) -> str:
    """The check's page (see the module's docstring for `history`)."""
    checks = with_current(report, history)
    model = str(report.get("model", ""))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Model quality: {_e(model)}</title>
<style>{STYLE}</style></head><body>
<h1>Model quality: {_e(model)}</h1>
{verdict(report)}
{facts(report)}
<h2>Objective over time</h2>{objective_chart(checks)}{legend()}
<h2>Label coverage over time</h2>{coverage_chart(checks)}
<h2>Labels and captures of this window</h2>{counts(report)}
<h2>Statistical guard</h2>{guard_section(report)}
<h2>Metrics of this window</h2>{metrics_table(report)}
<h2>Model Monitor</h2>{monitor_note(report)}
<h2>Checks ({len(checks)}, newest first)</h2>{history_table(checks)}
</body></html>"""

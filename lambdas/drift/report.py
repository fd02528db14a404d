"""Drift reports: JSON for machines, one self-contained HTML page (inline SVG histograms) for people.

The page says what was decided and why (the drifted features, each with the statistic that crossed its threshold,
and what blocks a retrain), the thresholds the decision used (the spec's drift section), how much traffic it was
judged on (requests, i.e. capture lines, apart from the rows they carried), and per feature a histogram with axes:
the share of rows on y, the bins on x (value edges when the engine provides them, else the baseline's equal-mass
bins: each holds about a tenth of the training rows), the training baseline beside the captured window.
"""

from __future__ import annotations

import html
import math
import os

from lambdas.drift.engine import DriftResult, FeatureResult
from lambdas.shared.text import strict

BASELINE, CURRENT = "#8aa4c8", "#e07b39"


def json_report(result: DriftResult, context: dict) -> dict:
    return strict({**context, **result.to_dict()})


def _e(value) -> str:
    return html.escape(str(value))


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"


def bin_labels(feature: FeatureResult) -> tuple[list[str], str]:
    """(a label per bin, the x axis title). Numeric bins are the baseline's equal-mass groups; their value edges when
    the engine gives them (FeatureResult.edges, bins + 1 values: the outer two are open)."""
    count = len(feature.reference_histogram)
    if feature.kind != "numeric":
        labels = list(feature.labels[:count]) + [f"#{i}" for i in range(len(feature.labels), count)]
        return labels, "category (rare labels grouped)"
    edges = feature.edges
    if edges and len(edges) == count + 1:
        labels = [f"< {_number(edges[1])}" if i == 0 else f"≥ {_number(edges[i])}" if i == count - 1
                  else f"{_number(edges[i])}–{_number(edges[i + 1])}" for i in range(count)]
        return labels, "value bins (edges from the training baseline)"
    step = 100 / max(count, 1)
    return [f"{i * step:.0f}–{(i + 1) * step:.0f}%" for i in range(count)], \
        "baseline decile bins (each ≈10% of training rows)"


def histogram(feature: FeatureResult, width: int = 420, height: int = 190) -> str:
    """Side-by-side bars of the baseline's and the window's shares per bin, with both axes, tick labels and titles."""
    reference, current = feature.reference_histogram, feature.current_histogram
    total_reference, total_current = max(sum(reference), 1), max(sum(current), 1)
    shares = [(r / total_reference, c / total_current) for r, c in zip(reference, current)]
    labels, x_title = bin_labels(feature)
    top = max((max(pair) for pair in shares), default=0) or 1
    left, right, top_pad, bottom = 46, 8, 10, 62
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    slot = plot_w / max(len(shares), 1)
    y0 = top_pad + plot_h
    parts = [f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{y0}" stroke="#444"/>',
             f'<line x1="{left}" y1="{y0}" x2="{left + plot_w}" y2="{y0}" stroke="#444"/>']
    for fraction in (0, 0.5, 1):
        y = y0 - fraction * plot_h
        parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#444"/>'
                     f'<text x="{left - 6}" y="{y + 3:.1f}" font-size="9" text-anchor="end">{fraction * top:.0%}</text>')
    parts.append(f'<text x="10" y="{top_pad + plot_h / 2:.1f}" font-size="9" text-anchor="middle" '
                 f'transform="rotate(-90 10 {top_pad + plot_h / 2:.1f})">share of rows</text>')
    for i, (r, c) in enumerate(shares):
        x = left + i * slot
        label = labels[i] if i < len(labels) else str(i)
        for offset, share, colour, who in ((0.1, r, BASELINE, "baseline"), (0.5, c, CURRENT, "window")):
            bar = share / top * plot_h
            parts.append(f'<rect x="{x + offset * slot:.1f}" y="{y0 - bar:.1f}" width="{slot * 0.38:.1f}" '
                         f'height="{bar:.1f}" fill="{colour}"><title>{_e(label)}: {who} {share:.1%}</title></rect>')
        cx = x + slot / 2
        parts.append(f'<text x="{cx:.1f}" y="{y0 + 10:.1f}" font-size="8" text-anchor="end" '
                     f'transform="rotate(-40 {cx:.1f} {y0 + 10:.1f})">{_e(label[:18])}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 3}" font-size="9" text-anchor="middle">{_e(x_title)}</text>')
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="{_e(feature.name)}: share of rows per bin, '
            f'training baseline vs captured window">{"".join(parts)}</svg>')


_bars = histogram  # the earlier name


def spec_drift(context: dict):
    """The spec's drift section (thresholds, min features, min rows, cooldown): the Lambda's own spec, or the model
    folder's when the CLI runs it; None when neither is at hand."""
    try:
        if os.environ.get("MODEL_SPEC"):
            from lambdas.shared.config import model_spec

            spec = model_spec()
        else:
            from pipelines.spec import find_model_dir, load_spec

            spec = load_spec(find_model_dir(str(context.get("model", ""))))
    except Exception:  # a report must render whatever the environment
        return None
    return spec.drift if spec.name == context.get("model") else None


def _why(feature: FeatureResult, drift) -> str:
    """Which statistic crossed which threshold for a feature."""
    if drift is None:
        return "drifted" if feature.drifted else ("significant" if feature.significant else "stable")
    crossed = [f"PSI {feature.psi:.3f} ≥ {drift.psi_threshold:g}" if feature.psi >= drift.psi_threshold else "",
               f"JS {feature.js:.3f} ≥ {drift.js_threshold:g}" if feature.js >= drift.js_threshold else ""]
    crossed = [c for c in crossed if c]
    test = f"p {feature.p_value:.1e} {'<' if feature.significant else '≥'} {drift.p_value:g} (BH)"
    if feature.drifted:
        return f"drifted: {' and '.join(crossed)}, {test}"
    if feature.significant:
        return f"significant ({test}) but PSI {feature.psi:.3f} < {drift.psi_threshold:g} and JS {feature.js:.3f} < {drift.js_threshold:g}"
    return f"stable: {test}" + (f"; {' and '.join(crossed)} alone is not drift" if crossed else "")


def decision(result: DriftResult, context: dict, drift) -> tuple[str, str]:
    """(the decision, why): the drift hook's own rule (lambdas.drift.logic.should_retrain) when the spec is known."""
    blocking = list(context.get("blocking") or [])
    needed = drift.min_drifted_features if drift is not None else None
    count = f"{len(result.drifted_features)} drifted feature(s)" + (f", {needed} needed" if needed else "")
    if drift is None:
        return ("DRIFT" if result.drift else "no drift"), count
    from lambdas.drift.logic import should_retrain

    retrain, reason = should_retrain(result, blocking, drift)
    if retrain and context.get("offline"):
        model = context.get("model") or "MODEL"
        return "DRIFT: retraining warranted, no run started", (
            f"{count}: {', '.join(result.drifted_features)}; an offline check starts nothing (the scheduled drift hook "
            f"would start a run unless one started in the last {drift.cooldown_hours:g} h); to retrain now: "
            f"`mlops run start {model} --reason drift`")
    if retrain:
        return "DRIFT: retraining requested", (f"{count}: {', '.join(result.drifted_features)}; a run starts unless "
                                               f"one started in the last {drift.cooldown_hours:g} h (cooldown)")
    return ("DRIFT, no retraining" if result.drift else "no drift"), f"{count}; {reason}"


def _traffic(result: DriftResult, context: dict) -> str:
    requests, malformed = context.get("capture_lines"), context.get("malformed_lines") or 0
    parts = [f"<strong>{result.rows:,}</strong> rows"]
    if isinstance(requests, int):
        average = f", {result.rows / requests:.1f} rows per request on average" if requests else ""
        parts.append(f"in <strong>{requests:,}</strong> captured requests (capture lines{average})")
        if malformed:
            parts.append(f"of which {malformed:,} malformed and skipped")
    return " ".join(parts)


def html_report(result: DriftResult, context: dict) -> str:
    model = str(context.get("model", ""))
    drift = spec_drift(context)
    verdict, why = decision(result, context, drift)
    rows = []
    for feature in sorted(result.features, key=lambda f: -f.psi):
        status = "drifted" if feature.drifted else ("significant" if feature.significant else "stable")
        rows.append(
            f"<tr class='{status}'><td>{_e(feature.name)}</td><td>{_e(feature.kind)}</td><td>{feature.psi:.3f}</td>"
            f"<td>{feature.js:.3f}</td><td>{_e(feature.test)} p={feature.p_value:.2e}</td>"
            f"<td>{feature.missing_reference:.1%} → {feature.missing_current:.1%}</td><td>{_e(_why(feature, drift))}</td>"
            f"<td>{histogram(feature)}</td></tr>")
    problems = "".join(f"<li>{_e(p)}</li>" for p in result.problems + list(context.get("blocking") or []))
    violations = "".join(f"<tr><td>{_e(v['feature_name'])}</td><td>{_e(v['constraint_check_type'])}</td>"
                         f"<td>{_e(v['description'])}</td></tr>" for v in result.violations)
    thresholds = ""
    if drift is not None:
        thresholds = ("<h2>Thresholds (the spec's drift section)</h2><table class='thresholds'>"
                      f"<tr><th>a feature drifts when</th><td>its test's p-value (KS for numbers, chi-squared for "
                      f"categories; Benjamini-Hochberg corrected) &lt; {drift.p_value:g} <em>and</em> PSI ≥ "
                      f"{drift.psi_threshold:g} or Jensen-Shannon ≥ {drift.js_threshold:g}</td></tr>"
                      f"<tr><th>the model drifts when</th><td>at least {drift.min_drifted_features} feature(s) "
                      "drift</td></tr>"
                      f"<tr><th>judged only on</th><td>at least {drift.min_rows:,} rows in a "
                      f"{drift.window_hours:g} h window</td></tr>"
                      f"<tr><th>retraining</th><td>{'on' if drift.retrain else 'off'}, at most one run per "
                      f"{drift.cooldown_hours:g} h</td></tr></table>")
    skipped = ("blocking", "capture_lines", "malformed_lines", "thresholds", "offline")
    facts = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in context.items() if k not in skipped)
    tone = "drift" if result.drift else "calm"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Drift report: {_e(model)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}table{{border-collapse:collapse}}td,th{{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}}
tr.drifted td{{background:#fde2d6}}tr.significant td{{background:#fff6d6}}.verdict{{font-size:1.4rem}}dt{{font-weight:600}}dd{{margin:0 0 .4rem 0}}
.decision{{padding:.6rem 1rem;border-left:6px solid}}.decision.drift{{border-color:#c62828;background:#fdecea}}.decision.calm{{border-color:#2e7d32;background:#edf7ed}}
.legend span{{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem}}</style></head><body>
<h1>Drift report: {_e(model)}</h1>
<div class="decision {tone}"><p class="verdict">Verdict: <strong>{'DRIFT' if result.drift else 'no drift'}</strong>. Decision: <strong>{_e(verdict)}</strong></p>
<p>Why: {_e(why)}.</p><p>Traffic judged: {_traffic(result, context)}.</p></div>
{thresholds}
<dl>{facts}</dl>
{'<h2>Notes</h2><ul>' + problems + '</ul>' if problems else ''}
{'<h2>constraints.json violations</h2><table class="violations"><thead><tr><th>feature</th><th>check</th><th>description</th></tr></thead><tbody>' + violations + '</tbody></table>' if violations else ''}
<h2>Features</h2>
<p class="legend"><span style="background:{BASELINE}"></span>baseline (training data)<span style="background:{CURRENT}"></span>captured window</p>
<table><thead><tr><th>feature</th><th>kind</th><th>PSI</th><th>JS</th><th>test (BH-corrected)</th><th>missing</th><th>status and why</th><th>share of rows per bin</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table></body></html>"""

"""Drift reports: JSON for machines, one self-contained HTML page (inline SVG histograms) for people."""

from __future__ import annotations

import html
import math

from lambdas.drift.engine import DriftResult, FeatureResult


def json_report(result: DriftResult, context: dict) -> dict:
    return strict({**context, **result.to_dict()})


def strict(value):
    """The value with every NaN or infinity replaced by None: reports are strict JSON, whatever the data."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    return value


def _bars(feature: FeatureResult, width: int = 360, height: int = 110) -> str:
    reference, current = feature.reference_histogram, feature.current_histogram
    total_reference, total_current = max(sum(reference), 1), max(sum(current), 1)
    shares = [(r / total_reference, c / total_current) for r, c in zip(reference, current)]
    top = max(max(pair) for pair in shares) or 1
    slot = width / max(len(shares), 1)
    parts = []
    for i, (r, c) in enumerate(shares):
        x = i * slot
        for offset, share, colour in ((0.1, r, "#8aa4c8"), (0.5, c, "#e07b39")):
            bar = share / top * (height - 20)
            parts.append(f'<rect x="{x + offset * slot:.1f}" y="{height - 15 - bar:.1f}" width="{slot * 0.38:.1f}" '
                         f'height="{bar:.1f}" fill="{colour}"><title>{html.escape(feature.labels[i] if i < len(feature.labels) else str(i))}: '
                         f'{share:.1%}</title></rect>')
    return f'<svg width="{width}" height="{height}" role="img" aria-label="reference vs current">{"".join(parts)}</svg>'


def html_report(result: DriftResult, context: dict) -> str:
    verdict = "DRIFT" if result.drift else "no drift"
    rows = []
    for feature in sorted(result.features, key=lambda f: -f.psi):
        status = "drifted" if feature.drifted else ("significant" if feature.significant else "stable")
        rows.append(
            f"<tr class='{status}'><td>{html.escape(feature.name)}</td><td>{feature.kind}</td><td>{feature.psi:.3f}</td>"
            f"<td>{feature.js:.3f}</td><td>{feature.test} p={feature.p_value:.2e}</td>"
            f"<td>{feature.missing_reference:.1%} → {feature.missing_current:.1%}</td><td>{status}</td><td>{_bars(feature)}</td></tr>")
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in result.problems + context.get("blocking", []))
    violations = "".join(f"<tr><td>{html.escape(str(v['feature_name']))}</td><td>{html.escape(str(v['constraint_check_type']))}</td>"
                         f"<td>{html.escape(str(v['description']))}</td></tr>" for v in result.violations)
    facts = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in context.items()
                    if k not in ("blocking",))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Drift report: {html.escape(str(context.get('model', '')))}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}table{{border-collapse:collapse}}td,th{{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}}
tr.drifted td{{background:#fde2d6}}tr.significant td{{background:#fff6d6}}.verdict{{font-size:1.4rem}}dt{{font-weight:600}}dd{{margin:0 0 .4rem 0}}
.legend span{{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem}}</style></head><body>
<h1>Drift report: {html.escape(str(context.get('model', '')))}</h1>
<p class="verdict">Verdict: <strong>{verdict}</strong>; {len(result.drifted_features)} drifted feature(s) over {result.rows:,} captured rows.</p>
<dl>{facts}</dl>
{'<h2>Notes</h2><ul>' + problems + '</ul>' if problems else ''}
{'<h2>constraints.json violations</h2><table class="violations"><thead><tr><th>feature</th><th>check</th><th>description</th></tr></thead><tbody>' + violations + '</tbody></table>' if violations else ''}
<p class="legend"><span style="background:#8aa4c8"></span>baseline (training)<span style="background:#e07b39"></span>captured window</p>
<table><thead><tr><th>feature</th><th>kind</th><th>PSI</th><th>JS</th><th>test (BH-corrected)</th><th>missing</th><th>status</th><th>distribution</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table></body></html>"""

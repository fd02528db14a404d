"""Which model an environment-wide cost anomaly belongs to, and whether its owners hear of it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lambdas.cost.models import Anomaly
from pipelines import naming
from pipelines.model_record import ModelRecord

_MODEL_NAME = re.compile(naming.MODEL_NAME_PATTERN)
MAX_CAUSES = 3


def model_of(dimension_value: str) -> str | None:
    """The model a tag monitor's dimension value names. Cost Explorer writes a tag value as '<key>$<value>' (and
    untagged spend as '<key>$'); a bare value is taken as it is. None: not a model's name."""
    value = dimension_value.rpartition("$")[2].strip()  # a tag value cannot hold '$', a key may not either
    return value if _MODEL_NAME.match(value) else None


@dataclass(frozen=True)
class Routing:
    """to: 'model' (the model's topic), 'platform' (the environment's platform topic) or 'none' (below the model's
    threshold, or the model turned anomaly alerts off)."""

    to: str
    reason: str


def route(anomaly: Anomaly, model: str | None, record: ModelRecord | None, env: str) -> Routing:
    if model is None:
        return Routing("platform", f"the anomaly's tag value '{anomaly.dimension_value}' names no model")
    if record is None:
        return Routing("platform", f"no model named {model} is deployed in {env} (its stack was deleted, or a resource "
                                   "outside the platform carries its tag)")
    threshold = record.spec.cost.anomaly_threshold_usd
    if threshold is None:
        return Routing("none", f"{model} turned anomaly alerts off (cost.anomaly_threshold_usd: null)")
    if anomaly.impact.total_impact < threshold:
        return Routing("none", f"impact ${anomaly.impact.total_impact:,.2f} is below {model}'s threshold ${threshold:,.2f}")
    return Routing("model", f"impact ${anomaly.impact.total_impact:,.2f} is at least {model}'s threshold ${threshold:,.2f}")


def message(anomaly: Anomaly, model: str | None, env: str, routing: Routing) -> tuple[str, str]:
    """(subject, body) of the notification."""
    impact = anomaly.impact
    who = model or anomaly.dimension_value or "untagged spend"
    lines = [f"AWS Cost Anomaly Detection found unusual spend for {who} in {env}.", "",
             f"Impact: ${impact.total_impact:,.2f}"
             + (f" (actual ${impact.total_actual_spend:,.2f}, expected ${impact.total_expected_spend:,.2f})"
                if impact.total_actual_spend is not None and impact.total_expected_spend is not None else ""),
             f"Period: {anomaly.start or '?'} to {anomaly.end or 'ongoing'}"]
    for cause in anomaly.root_causes[:MAX_CAUSES]:
        lines.append("Cause: " + ", ".join(f"{name} {value}" for name, value in (
            ("service", cause.service), ("region", cause.region), ("usage type", cause.usageType),
            ("account", cause.linkedAccount)) if value))
    if anomaly.details_link:
        lines.append(f"Details: {anomaly.details_link}")
    lines += ["", f"Why you received this: {routing.reason}.",
              "The threshold is cost.anomaly_threshold_usd in the model's model.yaml (docs/cost.md)."]
    return f"[{env}] cost anomaly: {who} ${impact.total_impact:,.2f}", "\n".join(lines)

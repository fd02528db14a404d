"""A version's evidence beyond its metrics: the bias report and the feature attributions the training job wrote in
evaluation.json (SageMaker Clarify's analysis.json shapes), as the documents the registry attaches (ModelMetrics.Bias,
ModelMetrics.Explainability) and as a bounded summary the run carries to the model card and the approval page.

Pure. Everything here came from the training job's output: any shape is read without failing (what cannot be read
is left out), every text is cut, and the summary is bounded (it travels in the run's state and the approval record).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, Field

from pipelines.modelkit.bias_terms import METRICS as BIAS_METRICS
from pipelines.spec import CARD_TEXT_MAX, BiasBound

PREFERRED_METRICS = tuple(BIAS_METRICS)  # the model kit's: pre-training CI, DPL; post-training DI, DPPL
STAGES = {"pre_training": "pre_training_bias_metrics", "post_training": "post_training_bias_metrics"}
MAX_BIAS_ROWS = 30  # facet values kept in the summary
MAX_METRICS_PER_ROW = 8
TOP_FEATURES = 10
MAX_TEXT = 120


# Without bounds in the spec: disparate impact within the four-fifths rule and its inverse.
DEFAULT_BOUNDS = {"DI": BiasBound(min=0.8, max=1.25)}


def bounds_of(bias_spec) -> dict[str, BiasBound]:
    """The bounds a spec's bias section sets (its `bounds`: metric -> min, max, max_abs), or DEFAULT_BOUNDS."""
    declared = getattr(bias_spec, "bounds", None) or {}
    return {name: BiasBound(min=bound.min, max=bound.max, max_abs=bound.max_abs) for name, bound in declared.items()} \
        or dict(DEFAULT_BOUNDS)


class BiasRow(BaseModel):
    """One facet value (an attribute's group) with its pre- and post-training bias metrics by name."""

    facet: str
    value: str
    metrics: dict[str, float | None] = Field(default_factory=dict)
    misses: list[str] = Field(default_factory=list, description="The bounded metrics whose value is outside its bound")

    @property
    def flagged(self) -> bool:
        return bool(self.misses)


class Attribution(BaseModel):
    feature: str
    importance: float
    deviation: float | None = None


class Evidence(BaseModel):
    """The summary of a version's bias and attribution reports; either may be missing (older training code)."""

    bias_label: str | None = None
    bias: list[BiasRow] = Field(default_factory=list)
    bias_rows_total: int = 0
    bounds: dict[str, BiasBound] = Field(default_factory=lambda: dict(DEFAULT_BOUNDS))
    attributions: list[Attribution] = Field(default_factory=list)
    attribution_method: str = ""
    features_total: int = 0

    @property
    def flagged(self) -> list[BiasRow]:
        return [row for row in self.bias if row.flagged]

    @property
    def bounds_words(self) -> str:
        return "; ".join(f"{name} {bound.words}" for name, bound in sorted(self.bounds.items()))

    @property
    def metric_names(self) -> list[str]:
        """The bias metrics found, the usual four first."""
        found = {name for row in self.bias for name in row.metrics}
        return [m for m in PREFERRED_METRICS if m in found] + sorted(found - set(PREFERRED_METRICS))


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return text[:limit]


def finite_number(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (text, NaN, infinities, an integer too big for a float:
    training output is never trusted to be well-formed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def as_dict(value: Any) -> dict:
    """value when it is a JSON object, else {}: training output is read in whatever shape it has."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    """value when it is a JSON array, else []."""
    return value if isinstance(value, list) else []


def bias_document(report: dict) -> dict | None:
    """evaluation.json's `bias` (Clarify analysis.json: version, pre_/post_training_bias_metrics), or None."""
    bias = report.get("bias")
    return bias if isinstance(bias, dict) and any(isinstance(bias.get(k), dict) for k in STAGES.values()) else None


def explainability_document(report: dict) -> dict | None:
    """evaluation.json's `explainability` (version, explanations), or None."""
    explained = report.get("explainability")
    return explained if isinstance(explained, dict) and isinstance(explained.get("explanations"), dict) else None


def documents(report: dict) -> dict[str, dict]:
    """file name -> document the registry attaches: bias.json (the whole analysis: ModelMetrics.Bias.Report), its
    pre- and post-training halves (PreTrainingReport, PostTrainingReport), explainability.json
    (ModelMetrics.Explainability.Report). Only what the report has."""
    found: dict[str, dict] = {}
    bias = bias_document(report)
    if bias is not None:
        found["bias.json"] = bias
        for stage, key in STAGES.items():
            if isinstance(bias.get(key), dict):
                found[f"bias/{stage}.json"] = {"version": bias.get("version", "1.0"), key: bias[key]}
    explained = explainability_document(report)
    if explained is not None:
        found["explainability.json"] = explained
    return found


def _facet_rows(bias: dict) -> list[tuple[str, str, str, float | None]]:
    """(facet, value, metric, number) of every stage's facets, as far as they can be read."""
    rows = []
    for key in STAGES.values():
        for facet, groups in as_dict(as_dict(bias.get(key)).get("facets")).items():
            for group in as_list(groups):
                group = as_dict(group)
                for metric in as_list(group.get("metrics")):
                    metric = as_dict(metric)
                    if metric.get("name"):
                        rows.append((_text(facet), _text(group.get("value_or_threshold")), _text(metric["name"], 16),
                                     finite_number(metric.get("value"))))
    return rows


def bias_rows(bias: dict | None, bounds: dict[str, BiasBound]) -> tuple[list[BiasRow], int]:
    """(the first MAX_BIAS_ROWS facet values with their metrics, those outside their bounds first; how many)."""
    grouped: dict[tuple[str, str], dict[str, float | None]] = {}
    for facet, value, metric, number in _facet_rows(bias or {}):
        metrics = grouped.setdefault((facet, value), {})
        if len(metrics) < MAX_METRICS_PER_ROW or metric in metrics:
            metrics[metric] = number
    rows = [BiasRow(facet=facet, value=value, metrics=metrics, misses=misses(metrics, bounds))
            for (facet, value), metrics in grouped.items()]
    rows.sort(key=lambda row: (not row.flagged, row.facet, row.value))
    return rows[:MAX_BIAS_ROWS], len(rows)


def misses(metrics: dict[str, float | None], bounds: dict[str, BiasBound]) -> list[str]:
    """The bounded metrics a group has a figure of that lies outside the bound (a missing figure is no miss: the
    evaluate step's own bias check refuses a version whose bounded figure could not be measured)."""
    return [name for name, bound in sorted(bounds.items())
            if metrics.get(name) is not None and bound.missed(metrics[name]) is not None]


GLOBAL_KEYS = ("global_importance", "global_shap_values")  # permutation importance's; Clarify's SHAP (kernel, tree)


def attributions(explained: dict | None, top: int = TOP_FEATURES) -> tuple[list[Attribution], str, int]:
    """(the top features by global importance, the method in words, how many features were scored) of the first
    explanation that has global values: permutation importance's global_importance, or Clarify's global_shap_values
    (kernel_shap, the model kit's tree_shap)."""
    for method, explanation in as_dict(as_dict(explained).get("explanations")).items():
        explanation = as_dict(explanation)
        label = next((as_dict(v) for v in explanation.values()
                      if isinstance(v, dict) and any(key in v for key in GLOBAL_KEYS)), {})
        key = next((key for key in GLOBAL_KEYS if key in label), GLOBAL_KEYS[0])
        importance, deviation = as_dict(label.get(key)), as_dict(label.get("standard_deviation"))
        scored = [Attribution(feature=_text(name), importance=number, deviation=finite_number(deviation.get(name)))
                  for name, value in importance.items() if (number := finite_number(value)) is not None]
        if scored:
            scored.sort(key=lambda a: -abs(a.importance))
            return scored[:top], _method_words(_text(method, 40), explanation), len(scored)
    return [], "", 0


def _method_words(method: str, explanation: dict) -> str:
    facts = [f"{key} {_text(explanation[key], 40)}" for key in ("metric", "repeats", "rows", "seed")
             if isinstance(explanation.get(key), (str, int, float)) and not isinstance(explanation.get(key), bool)]
    return f"{method.replace('_', ' ')}" + (f" ({', '.join(facts)})" if facts else "")


def summarize(report: dict, bounds: dict[str, BiasBound] | None = None) -> Evidence | None:
    """The evidence of an evaluation report (None when it has neither report); bounds: bounds_of(the spec's bias)."""
    return summarize_documents(bias_document(report), explainability_document(report), bounds)


def summarize_documents(bias: dict | None, explained: dict | None, bounds: dict[str, BiasBound] | None = None) -> Evidence | None:
    if bias is None and explained is None:
        return None
    bounds = dict(DEFAULT_BOUNDS) if bounds is None else bounds
    rows, total = bias_rows(bias, bounds)
    top, method, features = attributions(explained)
    label = as_dict((bias or {}).get("pre_training_bias_metrics")).get("label") or \
        as_dict((bias or {}).get("post_training_bias_metrics")).get("label")
    return Evidence(bias_label=_text(label) if label is not None else None, bias=rows, bias_rows_total=total,
                    bounds=bounds, attributions=top, attribution_method=method, features_total=features)


def _source(uri: str) -> dict[str, str]:
    return {"ContentType": "application/json", "S3Uri": uri}


def model_metrics(quality: str, bias: str = "", pre_training: str = "", post_training: str = "",
                  explainability: str = "") -> dict:
    """CreateModelPackage ModelMetrics: the evaluation report (ModelQuality.Statistics), and the bias and
    explainability reports where the version has them (Bias.Report / PreTrainingReport / PostTrainingReport,
    Explainability.Report); SageMaker Studio's model registry shows each."""
    metrics: dict[str, dict] = {"ModelQuality": {"Statistics": _source(quality)}}
    reports = {name: _source(uri) for name, uri in (("Report", bias), ("PreTrainingReport", pre_training),
                                                     ("PostTrainingReport", post_training)) if uri}
    if reports:
        metrics["Bias"] = reports
    if explainability:
        metrics["Explainability"] = {"Report": _source(explainability)}
    return metrics


def attached_reports(package: dict) -> dict[str, str]:
    """name -> S3 URI of the bias and explainability reports a described package carries (the names Evaluation's
    *_uri fields and the promotion's copies use)."""
    metrics = package.get("ModelMetrics") or {}
    bias, explained = metrics.get("Bias") or {}, metrics.get("Explainability") or {}
    found = {"bias": (bias.get("Report") or {}).get("S3Uri", ""),
             "bias_pre_training": (bias.get("PreTrainingReport") or {}).get("S3Uri", ""),
             "bias_post_training": (bias.get("PostTrainingReport") or {}).get("S3Uri", ""),
             "explainability": (explained.get("Report") or {}).get("S3Uri", "")}
    return {name: uri for name, uri in found.items() if uri}


class CardSummary(BaseModel):
    """What the approver reads of a version's model card (the content attached to the package)."""

    status: str = ""
    risk_rating: str = "Unknown"
    purpose: str = ""
    intended_use: str = ""
    risk_explanation: str = ""
    factors: str = ""
    limitations: str = ""
    ethical_considerations: str = ""


# botocore ModelCardStatus: Draft | PendingReview | Approved | Archived. A version's card is registered for review
# (the approval request goes out with it) and approved with the version.
CARD_REGISTERED, CARD_APPROVED = "PendingReview", "Approved"


def card_summary(model_card: dict | None) -> CardSummary | None:
    """The summary of a described package's ModelCard ({ModelCardContent, ModelCardStatus}); None when the package
    has none (registered before cards) or its content is not a JSON object."""
    try:
        card = json.loads((model_card or {}).get("ModelCardContent") or "null")
    except (TypeError, ValueError):
        return None
    if not isinstance(card, dict):
        return None
    uses, more = as_dict(card.get("intended_uses")), as_dict(card.get("additional_information"))
    texts = {"purpose": uses.get("purpose_of_model"), "intended_use": uses.get("intended_uses"),
             "risk_explanation": uses.get("explanations_for_risk_rating"),
             "factors": uses.get("factors_affecting_model_efficiency"),
             "limitations": more.get("caveats_and_recommendations"),
             "ethical_considerations": more.get("ethical_considerations")}
    return CardSummary(status=_text((model_card or {}).get("ModelCardStatus"), 32),
                       risk_rating=_text(uses.get("risk_rating"), 32) or "Unknown",
                       **{key: _text(value, CARD_TEXT_MAX) for key, value in texts.items()})  # the card schema's limit

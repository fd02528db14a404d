"""The model card every registered version carries: SageMaker Model Card content on the model package
(CreateModelPackage ModelCard.ModelCardContent), built from the spec (pipelines.spec.GovernanceSpec: intended use,
risk rating, limits), the run's lineage, its evaluation and its evidence (lambdas.shared.evidence). Pure.

The content follows the model package model card schema: the model card JSON schema without model_package_details,
its model_overview limited to model_creator and model_artifact (botocore's ModelPackageModelCard documentation), so the
lineage a full card keeps in model_overview (name, commit, dataset version, framework) is in training_details and
additional_information.custom_details here. `check` holds the content to the schema's limits (LIMITS) before it is
sent: SageMaker refuses a card that breaks them, and values from the training job's output have any length.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

from lambdas.shared.evidence import CARD_REGISTERED, Evidence, finite_number
from lambdas.shared.run_state import RunState
from pipelines.spec import RISK_RATINGS

CARD_MAX_CHARS = 100_000  # botocore: ModelPackageModelCard.ModelCardContent, max length 100000

# The model card JSON schema's limits, as the CloudFormation resource schema AWS::SageMaker::ModelCard states them
# (Content: the same properties in PascalCase; read from cfn-lint 1.58's bundled schema). path -> rule:
# ("text", max length), ("name", max length: 1..max), ("enum", values), ("number",), ("value",): a simple metric's
# number, boolean or text of at most 63, ("list", max items), ("object",). [] is a list item, * any key.
LIMITS: dict[str, tuple] = {
    "model_overview": ("object",),
    "model_overview.model_creator": ("text", 1024),
    "model_overview.model_artifact": ("list", 15),
    "model_overview.model_artifact[]": ("text", 1024),
    "intended_uses": ("object",),
    "intended_uses.purpose_of_model": ("text", 2048),
    "intended_uses.intended_uses": ("text", 2048),
    "intended_uses.factors_affecting_model_efficiency": ("text", 2048),
    "intended_uses.risk_rating": ("enum", RISK_RATINGS),
    "intended_uses.explanations_for_risk_rating": ("text", 2048),
    "training_details": ("object",),
    "training_details.objective_function": ("object",),
    "training_details.objective_function.function": ("object",),
    "training_details.objective_function.function.function": ("enum", ("Maximize", "Minimize")),
    "training_details.objective_function.function.facet": ("text", 63),
    "training_details.objective_function.function.condition": ("text", 63),
    "training_details.objective_function.notes": ("text", 1024),
    "training_details.training_observations": ("text", 1024),
    "training_details.training_job_details": ("object",),
    "training_details.training_job_details.training_arn": ("text", 1024),
    "training_details.training_job_details.training_datasets": ("list", 15),
    "training_details.training_job_details.training_datasets[]": ("text", 1024),
    "training_details.training_job_details.training_environment": ("object",),
    "training_details.training_job_details.training_environment.container_image": ("list", 15),
    "training_details.training_job_details.training_environment.container_image[]": ("text", 1024),
    "training_details.training_job_details.training_metrics": ("list", 50),  # sagemaker SDK TRAINING_METRICS_MAX_SIZE
    "training_details.training_job_details.training_metrics[]": ("object",),
    "training_details.training_job_details.training_metrics[].name": ("name", 255),
    "training_details.training_job_details.training_metrics[].notes": ("text", 1024),
    "training_details.training_job_details.training_metrics[].value": ("number",),
    "training_details.training_job_details.hyper_parameters": ("list", 100),  # SDK HYPER_PARAMETERS_MAX_SIZE
    "training_details.training_job_details.hyper_parameters[]": ("object",),
    "training_details.training_job_details.hyper_parameters[].name": ("name", 255),
    "training_details.training_job_details.hyper_parameters[].value": ("name", 255),
    "evaluation_details": ("list", 100),
    "evaluation_details[]": ("object",),
    "evaluation_details[].name": ("name", 63),
    "evaluation_details[].evaluation_observation": ("text", 2096),
    "evaluation_details[].evaluation_job_arn": ("text", 256),
    "evaluation_details[].datasets": ("list", 10),
    "evaluation_details[].datasets[]": ("text", 1024),
    "evaluation_details[].metadata": ("object",),
    "evaluation_details[].metadata.*": ("text", 1024),
    "evaluation_details[].metric_groups": ("list", 100),
    "evaluation_details[].metric_groups[]": ("object",),
    "evaluation_details[].metric_groups[].name": ("name", 63),
    "evaluation_details[].metric_groups[].metric_data": ("list", 100),
    "evaluation_details[].metric_groups[].metric_data[]": ("object",),
    "evaluation_details[].metric_groups[].metric_data[].name": ("name", 255),
    "evaluation_details[].metric_groups[].metric_data[].notes": ("text", 1024),
    "evaluation_details[].metric_groups[].metric_data[].type": ("enum", ("number", "string", "boolean")),
    "evaluation_details[].metric_groups[].metric_data[].value": ("value",),
    "additional_information": ("object",),
    "additional_information.ethical_considerations": ("text", 2048),
    "additional_information.caveats_and_recommendations": ("text", 2048),
    "additional_information.custom_details": ("object",),
    "additional_information.custom_details.*": ("text", 1024),
}
_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # custom_details and metadata keys (the schema's patternProperties)


class CardInvalid(ValueError):
    """The content breaks the model card schema's limits (a bug here: the builder cuts every value to fit)."""


def _cut(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _name(value: Any, limit: int) -> str:
    return _cut(value, limit) or "-"


def content(spec, state: RunState, evidence: Evidence | None, artifacts: list[str]) -> dict:
    """The card of the run's version. artifacts: the model data it serves (the released artifact once registered)."""
    run, governance = state.run, spec.governance
    card = {
        "model_overview": {"model_creator": _cut(f"{run.requested_by} ({run.trigger}), run {run.execution_arn}", 1024),
                           "model_artifact": [_cut(a, 1024) for a in artifacts if a][:15]},
        "intended_uses": {
            "purpose_of_model": _cut(spec.description or f"{spec.name}: {spec.task.type}", 2048),
            "intended_uses": governance.intended_use, "factors_affecting_model_efficiency": governance.factors,
            "risk_rating": governance.risk_rating, "explanations_for_risk_rating": governance.risk_explanation},
        "training_details": training_details(spec, state),
        "evaluation_details": evaluation_details(state, evidence),
        "additional_information": {"ethical_considerations": governance.ethical_considerations,
                                   "caveats_and_recommendations": governance.limitations,
                                   "custom_details": custom_details(spec, state)},
    }
    return _without_empty_texts(card)


def _without_empty_texts(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_empty_texts(value) for key, value in node.items() if value != ""}
    if isinstance(node, list):
        return [_without_empty_texts(item) for item in node]
    return node


def training_details(spec, state: RunState) -> dict:
    objective, run, validation, training = spec.objective, state.run, state.validation, state.training
    condition = f"{'minimum' if objective.direction == 'maximize' else 'maximum'} {objective.minimum:g}" \
        if objective.minimum is not None else ""
    numbers = {k: finite_number(v) for k, v in (state.evaluation.metrics if state.evaluation else {}).items()
               if finite_number(v) is not None}
    return {
        "objective_function": {"function": {"function": objective.direction.title(), "facet": _cut(objective.metric, 63),
                                            "condition": condition},
                               "notes": _cut(f"must beat the champion by {objective.champion_margin:g}", 1024)},
        "training_observations": _cut(f"{validation.rows:,} rows, dataset version {validation.version_id or 'unversioned'}, "
                                      f"sha256 {validation.sha256}" if validation else "", 1024),
        "training_job_details": {
            "training_arn": _cut(training.job_arn if training else "", 1024),
            "training_datasets": [_cut(validation.dataset_uri, 1024)] if validation else [],
            "training_environment": {"container_image": [_cut(training.image_uri, 1024)]
                                     if training and training.image_uri else []},
            "training_metrics": [{"name": _name(name, 255), "value": value}
                                 for name, value in sorted(numbers.items())][:50],
            "hyper_parameters": [{"name": _name(name, 255), "value": _name(value, 255)}
                                 for name, value in sorted(run.typed_hyperparameters().items())][:100]},
    }


def _metric(name: str, value: Any, notes: str = "") -> dict:
    number = finite_number(value)
    entry = {"name": _name(name, 255), "type": "number" if number is not None else "string",
             "value": number if number is not None else _cut(value, 63)}
    return {**entry, "notes": _cut(notes, 1024)} if notes else entry


def evaluation_details(state: RunState, evidence: Evidence | None) -> list[dict]:
    evaluation, validation = state.evaluation, state.validation
    if evaluation is None:
        return []
    champion = getattr(evaluation, "champion_metrics", None)  # the champion re-scored on the same rows (extra field)
    groups = [{"name": "candidate", "metric_data": [_metric(n, v) for n, v in sorted(evaluation.metrics.items())][:50]}]
    if isinstance(champion, dict) and champion:
        groups.append({"name": "champion", "metric_data": [_metric(n, v) for n, v in sorted(champion.items())][:50]})
    details = [{"name": "validation against the champion", "evaluation_observation": _cut(evaluation.reason, 2096),
                "datasets": [_cut(validation.snapshot_uri, 1024)] if validation and validation.snapshot_uri else [],
                "metadata": {"champion": _cut(evaluation.champion_arn or "none", 1024),
                             "report": _cut(evaluation.report_uri, 1024)},
                "metric_groups": groups}]
    return details + evidence_details(evidence)


def evidence_details(evidence: Evidence | None) -> list[dict]:
    if evidence is None:
        return []
    details = []
    if evidence.bias:
        flagged = ", ".join(f"{row.facet}={row.value} ({', '.join(row.misses)})" for row in evidence.flagged) or "none"
        details.append({"name": "bias", "evaluation_observation": _cut(
            f"{evidence.bias_rows_total} facet value(s) of label {evidence.bias_label or '?'}; outside the bounds "
            f"({evidence.bounds_words}): {flagged}", 2096), "metric_groups": [
            {"name": _name(f"{row.facet}={row.value}", 63), "metric_data": [
                _metric(name, value if value is not None else "n/a") for name, value in row.metrics.items()]}
            for row in evidence.bias]})
    if evidence.attributions:
        details.append({"name": "feature attributions", "evaluation_observation": _cut(
            f"top {len(evidence.attributions)} of {evidence.features_total} features by {evidence.attribution_method}",
            2096), "metric_groups": [{"name": "global importance", "metric_data": [
                _metric(a.feature, a.importance, f"standard deviation {a.deviation:g}" if a.deviation is not None else "")
                for a in evidence.attributions]}]})
    return details


def custom_details(spec, state: RunState) -> dict[str, str]:
    run, validation, evaluation = state.run, state.validation, state.evaluation
    training = spec.training
    details = {"model": spec.name, "task": spec.task.type, "git_commit": run.git_commit,
               "framework": f"{training.framework} {training.framework_version or ''}".strip(),
               "execution": run.execution_arn,
               "dataset_version": (validation.version_id or "unversioned") if validation else "",
               "dataset_sha256": validation.sha256 if validation else "",
               "bias_report": getattr(evaluation, "bias_report_uri", "") or "",
               "explainability_report": getattr(evaluation, "explainability_report_uri", "") or ""}
    return {key: _cut(value, 1024) for key, value in details.items() if value}


def check(card: dict) -> None:
    """Raises CardInvalid naming the first value that breaks LIMITS (or a property the schema does not have)."""
    _check(card, "")


def _rule(path: str) -> tuple | None:
    return LIMITS.get(path) or next((rule for pattern, rule in LIMITS.items()
                                     if "*" in pattern and fnmatch.fnmatchcase(path, pattern)), None)


def _check(node: Any, path: str) -> None:
    rule = _rule(path) if path else ("object",)
    if rule is None:
        raise CardInvalid(f"{path}: not a property of the model card schema")
    kind = rule[0]
    if kind == "object":
        if not isinstance(node, dict):
            raise CardInvalid(f"{path}: an object expected")
        for key, value in node.items():
            if path.endswith(("custom_details", "metadata")) and not _KEY.match(key):
                raise CardInvalid(f"{path}.{key}: keys are letters, digits and '_'")
            _check(value, f"{path}.{key}" if path else key)
    elif kind == "list":
        if not isinstance(node, list) or len(node) > rule[1]:
            raise CardInvalid(f"{path}: a list of at most {rule[1]} items expected")
        for item in node:
            _check(item, f"{path}[]")
    else:
        _check_leaf(node, path, rule)


def _check_leaf(node: Any, path: str, rule: tuple) -> None:
    kind = rule[0]
    if kind in ("text", "name"):
        ok = isinstance(node, str) and len(node) <= rule[1] and (kind == "text" or len(node) >= 1)
    elif kind == "enum":
        ok = node in rule[1]
    elif kind == "number":
        ok = isinstance(node, (int, float)) and not isinstance(node, bool)
    else:  # a simple metric's value
        ok = isinstance(node, (int, float, bool)) or (isinstance(node, str) and len(node) <= 63)
    if not ok:
        raise CardInvalid(f"{path}: {str(node)[:80]!r} breaks the schema's rule {rule}")


def registered(card: dict) -> dict[str, str]:
    """CreateModelPackage ModelCard: the content, for review by the version's approver."""
    return {"ModelCardContent": serialized(card), "ModelCardStatus": CARD_REGISTERED}


def serialized(card: dict) -> str:
    """ModelCardContent: the checked card as JSON text within CARD_MAX_CHARS; a card too long (metrics and facets by
    the hundred) keeps the head of each long list."""
    check(card)
    text, keep = json.dumps(card, separators=(",", ":"), allow_nan=False), 40
    while len(text) > CARD_MAX_CHARS and keep >= 5:
        text, keep = json.dumps(_shortened(card, keep), separators=(",", ":"), allow_nan=False), keep // 2
    if len(text) > CARD_MAX_CHARS:
        raise CardInvalid(f"the model card is {len(text)} characters; SageMaker keeps at most {CARD_MAX_CHARS}")
    return text


def _shortened(node: Any, keep: int) -> Any:
    if isinstance(node, dict):
        return {key: _shortened(value, keep) for key, value in node.items()}
    if isinstance(node, list):
        return [_shortened(item, keep) for item in node[:keep]]
    return node

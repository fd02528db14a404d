"""The bias metrics the model kit writes and a spec may bound, with SageMaker Clarify's names and descriptions: one
table for the training job (modelkit.bias), the spec's validation (pipelines.spec.BiasSpec) and the evaluate step's
judgement (lambdas.pipeline.logic.judge_bias). Standard library only: the pipeline's functions import it."""

from __future__ import annotations

from dataclasses import dataclass

PRE_TRAINING = "pre_training_bias_metrics"
POST_TRAINING = "post_training_bias_metrics"


@dataclass(frozen=True)
class BiasMetric:
    name: str
    description: str  # Clarify's, as analysis.json writes it
    section: str  # PRE_TRAINING (the training labels) or POST_TRAINING (the model's predictions)
    words: str  # how a sentence names it


METRICS = {metric.name: metric for metric in (
    BiasMetric("CI", "Class Imbalance (CI)", PRE_TRAINING, "class imbalance"),
    BiasMetric("DPL", "Difference in Positive Proportions in Labels (DPL)", PRE_TRAINING,
               "difference in positive proportions in labels"),
    BiasMetric("DI", "Disparate Impact (DI)", POST_TRAINING, "disparate impact"),
    BiasMetric("DPPL", "Difference in Positive Proportions in Predicted Labels (DPPL)", POST_TRAINING,
               "difference in positive proportions in predicted labels"),
)}


def facet_words(attribute: str, value_or_threshold: str) -> str:
    """'region=south' for a value, 'age in (60, 90]' for a numeric facet's interval (Clarify's notation)."""
    text = str(value_or_threshold)
    return f"{attribute} in {text}" if text.startswith("(") else f"{attribute}={text}"

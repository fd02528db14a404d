"""The one wording of the train/validation leakage warning: the training log (the model kit, in the training
container), the evaluation's reason and the run's email (the pipeline's functions) all say it the same way."""

from __future__ import annotations


def leakage_warning(overlap: dict | None) -> str:
    """'' when no validation row is also a training row; overlap: the kit's count (validation_overlap)."""
    shared, rows = (overlap or {}).get("shared_with_training") or 0, (overlap or {}).get("validation_rows") or 0
    if not shared or not rows:
        return ""
    return (f"data leakage: {shared} of {rows} validation rows ({shared / rows:.1%}) have exactly the features of a "
            "training row, so the validation metrics overstate the model; fix: remove duplicate rows (never resample "
            "before the split)")

"""Train/validation leakage: duplicate rows in both splits (a 178-row dataset resampled to 5,000) are counted by the
model kit's split, warned about in the training log, the run's outcome and its email, and keep the champion above
dataset.max_validation_overlap."""

import csv

import numpy as np

from lambdas.pipeline import logic
from lambdas.shared.run_state import RunState, outcome
from pipelines.modelkit import data
from pipelines.modelkit.contract import Task
from pipelines.spec import ObjectiveSpec

FEATURES = ["alcohol", "malic_acid", "ash"]
TASK = Task(type="multiclass", label="target", features=FEATURES, categorical=[], classes=["0", "1", "2"],
            objective="validation:accuracy", model="wine", description="")
ACCURACY = ObjectiveSpec(metric="validation:accuracy", regex="validation:accuracy=([0-9.]+)", champion_margin=0.005)


def write_channel(folder, rows: int, resample_to: int | None = None):
    rng = np.random.default_rng(3)
    table = [[f"{v:.3f}" for v in rng.normal(size=3)] + [str(i % 3)] for i in range(rows)]
    if resample_to:
        table = [table[i] for i in rng.integers(0, rows, resample_to)]
    folder.mkdir()
    with (folder / "train.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([FEATURES + ["target"], *table])
    return folder


def test_a_small_dataset_resampled_to_5000_rows_puts_nearly_every_validation_row_in_training_too(tmp_path, capsys):
    split = data.load_split(write_channel(tmp_path / "train", 178, resample_to=5000), TASK, 0.2, 7)
    assert split.overlap["validation_rows"] == 1000 and split.overlap["shared_with_training"] > 950
    assert "WARNING: data leakage: " in capsys.readouterr().out


def test_distinct_rows_show_no_overlap_and_no_warning(tmp_path, capsys):
    split = data.load_split(write_channel(tmp_path / "train", 500), TASK, 0.2, 7)
    assert split.overlap == {"validation_rows": 100, "shared_with_training": 0, "share": 0.0}
    assert "leakage" not in capsys.readouterr().out


def test_leakage_above_the_specs_limit_keeps_the_champion_and_says_why_with_count_and_share():
    winner = logic.decide_promotion({"validation:accuracy": 1.0}, ACCURACY, None)
    decision = logic.judge_leakage(winner, {"validation_rows": 1000, "shared_with_training": 987}, 0.05)
    assert not decision.promote
    assert "987 of 1000 validation rows (98.7%) have exactly the features of a training row" in decision.reason
    assert "more than dataset.max_validation_overlap 5.0%" in decision.reason


def test_leakage_under_the_limit_is_a_warning_on_a_promotion():
    winner = logic.decide_promotion({"validation:accuracy": 0.9}, ACCURACY, None)
    decision = logic.judge_leakage(winner, {"validation_rows": 1000, "shared_with_training": 3}, 0.05)
    assert decision.promote and "WARNING: data leakage: 3 of 1000 validation rows (0.3%)" in decision.reason
    assert logic.judge_leakage(winner, {"validation_rows": 1000, "shared_with_training": 0}, 0.05) == winner


def test_the_run_outcome_and_the_email_carry_the_leakage_warning():
    overlap = {"validation_rows": 1000, "shared_with_training": 987, "share": 0.987}
    state = {"run": {"model": "wine", "execution_arn": "e", "trigger": "manual", "requested_by": "ds"},
             "evaluation": {"metrics": {"validation:accuracy": 1.0}, "objective": "validation:accuracy", "value": 1.0,
                            "promote": False, "reason": "data leakage: ...", "validation_overlap": overlap}}
    subject, body = logic.notification(state, "not promoted")
    assert "Data: WARNING: data leakage: 987 of 1000 validation rows (98.7%)" in body
    summary = outcome("SUCCEEDED", RunState.parse(state), None).summary
    assert "[WARNING: data leakage: 987 of 1000 validation rows are also training rows]" in summary

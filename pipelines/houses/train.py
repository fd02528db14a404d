"""Houses: sale price regression (XGBoost), trained in the SageMaker training-container contract.

Runs in SageMaker's XGBoost framework container (script mode) and locally. Shared plumbing (paths,
hyperparameters, encoding, evaluation.json with the champion re-scored on the same rows, the drift baseline,
code/) comes from modelkit; this file keeps the booster. The XGBoost objective follows the spec's task type.
- metrics: 'validation:rmse=27.7400;' lines, read by the spec's regex (the champion's as 'champion:rmse=...;')
- checkpoints: every `checkpoint_rounds` rounds to /opt/ml/checkpoints; a restarted spot job resumes there
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import xgboost as xgb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import modelkit  # noqa: F401  packed beside this file in the source archive
except ImportError:  # a checkout: pipelines/modelkit
    sys.path.insert(0, str(HERE.parent))
from modelkit import contract, data, finish, importance, tracking  # noqa: E402

OBJECTIVES = {"binary": "binary:logistic", "multiclass": "multi:softprob", "regression": "reg:squarederror"}


@dataclass
class Hyperparameters:
    num_round: int = 150
    max_depth: int = 5
    eta: float = 0.1
    subsample: float = 0.9
    colsample_bytree: float = 0.9
    min_child_weight: float = 1.0
    seed: int = 7
    validation_share: float = 0.2
    checkpoint_rounds: int = 50


def booster_params(hp: Hyperparameters, task: contract.Task, split: data.Split) -> dict:
    params = {"objective": OBJECTIVES[task.type], "max_depth": hp.max_depth, "eta": hp.eta, "subsample": hp.subsample,
              "colsample_bytree": hp.colsample_bytree, "min_child_weight": hp.min_child_weight, "seed": hp.seed,
              "tree_method": "hist"}
    if task.type == "multiclass":
        params["num_class"] = len(split.state["classes"])
    return params


def latest_checkpoint(directory: Path) -> tuple:
    """(path, rounds done) of the newest readable checkpoint; (None, 0) when none."""
    for path in sorted(directory.glob("checkpoint-round*.json"), reverse=True):
        try:
            booster = xgb.Booster(model_file=str(path))
        except xgb.core.XGBoostError as error:  # a torn file must not stop a resumed spot job
            print(f"checkpoint: skipping unreadable {path.name}: {error}", flush=True)
            continue
        return booster, booster.num_boosted_rounds()
    return None, 0


class Checkpoints(xgb.callback.TrainingCallback):
    def __init__(self, directory: Path, every: int) -> None:
        super().__init__()
        self.directory, self.every = directory, max(every, 1)

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        rounds = model.num_boosted_rounds()
        if rounds % self.every == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"checkpoint-round{rounds:06d}.json"
            model.save_model(str(path.with_suffix(".tmp.json")))
            path.with_suffix(".tmp.json").replace(path)  # never a torn checkpoint
        return False


def tree_shap(booster: xgb.Booster, split: data.Split) -> dict:
    """XGBoost's exact TreeSHAP of the validation rows, per feature (evaluation.json's explainability)."""
    rows = split.x_valid[:importance.MAX_ROWS]
    return importance.tree_shap(booster.predict(xgb.DMatrix(rows), pred_contribs=True), split.state,
                                split.state.get("classes"))


def run(paths: contract.Paths, hp: Hyperparameters) -> dict:
    task = contract.Task.of(contract.model_spec(HERE))
    split = data.load_split(paths.train, task, hp.validation_share, hp.seed)
    train = xgb.DMatrix(split.x_train, label=split.y_train)
    valid = xgb.DMatrix(split.x_valid, label=split.y_valid)
    resumed, done = latest_checkpoint(paths.checkpoints)
    if done:
        print(f"checkpoint: resumed from round {done}", flush=True)
    started, evals_result = time.perf_counter(), {}
    booster = xgb.train(booster_params(hp, task, split), train, num_boost_round=max(hp.num_round - done, 0),
                        evals=[(train, "train"), (valid, "validation")], xgb_model=resumed, verbose_eval=False,
                        evals_result=evals_result, callbacks=[Checkpoints(paths.checkpoints, hp.checkpoint_rounds)])
    paths.model.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(paths.model / "model.json"))  # XGBoost's portable format, read by any 2.x/3.x
    (paths.model / "preprocessing.json").write_text(json.dumps(split.state, indent=2))
    return finish.finish(paths, task, HERE, split, {
        "framework": f"xgboost {xgb.__version__}", "device": "cpu", "rounds_completed": booster.num_boosted_rounds(),
        "resumed_from_round": done, "hyperparameters": contract.as_dict(hp),
        "train_seconds": round(time.perf_counter() - started, 3)},
        history=tracking.History.from_xgboost(evals_result, {"train": "train:", "validation": task.metric_prefix},
                                                   rounds_before=done),
        explanations=tree_shap(booster, split))


def main(argv: list | None = None) -> int:
    paths = contract.Paths.from_environment()
    run(paths, contract.read_hyperparameters(paths, Hyperparameters(), sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

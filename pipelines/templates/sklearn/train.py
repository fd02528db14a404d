"""${name}: ${task} model (scikit-learn), trained in the SageMaker training-container contract (from `mlops new`).

Runs in SageMaker's scikit-learn framework container (script mode) and locally. Shared plumbing (paths,
hyperparameters, encoding, evaluation.json with the champion re-scored on the same rows, the drift baseline,
code/) comes from modelkit; this file keeps the estimator, chosen by the spec's task type.
- metrics: 'validation:<metric>=<value>;' lines, read by the spec's regex (the champion's as 'champion:...')
- the artifact: model.joblib (load it with the scikit-learn version that trained it: the container's)
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import modelkit  # noqa: F401  packed beside this file in the source archive
except ImportError:  # a checkout: pipelines/modelkit
    sys.path.insert(0, str(HERE.parent))
from modelkit import contract, data, finish  # noqa: E402


@dataclass
class Hyperparameters:
    max_iter: int = 150
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    l2_regularization: float = 0.0
    seed: int = 7
    validation_share: float = 0.2


def estimator(hp: Hyperparameters, task: contract.Task):
    kind = HistGradientBoostingRegressor if task.type == "regression" else HistGradientBoostingClassifier
    return kind(max_iter=hp.max_iter, learning_rate=hp.learning_rate, max_leaf_nodes=hp.max_leaf_nodes,
                l2_regularization=hp.l2_regularization, random_state=hp.seed, early_stopping=False)


def run(paths: contract.Paths, hp: Hyperparameters) -> dict:
    task = contract.Task.of(contract.model_spec(HERE))
    split = data.load_split(paths.train, task, hp.validation_share, hp.seed)
    started = time.perf_counter()
    model = estimator(hp, task).fit(split.x_train, split.y_train)
    paths.model.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, paths.model / "model.joblib")
    (paths.model / "preprocessing.json").write_text(json.dumps(split.state, indent=2))
    return finish.finish(paths, task, HERE, split, {
        "framework": f"scikit-learn {sklearn.__version__}", "device": "cpu", "iterations": int(model.n_iter_),
        "hyperparameters": contract.as_dict(hp), "train_seconds": round(time.perf_counter() - started, 3)})


def main(argv: list | None = None) -> int:
    paths = contract.Paths.from_environment()
    run(paths, contract.read_hyperparameters(paths, Hyperparameters(), sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

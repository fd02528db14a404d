"""The end of every train.py, after the model files are in SM_MODEL_DIR:

1. code/: the model's serving files and this kit, so the artifact serves itself (SAGEMAKER_PROGRAM inference.py);
2. statistics.json + constraints.json: the drift baseline of the training data (Model Monitor's shape);
3. the challenger scored through its own serving code on the validation rows;
4. the champion (the `champion` channel: the artifact production serves) scored through *its* serving code on
   the same rows: the two numbers the evaluate step compares;
5. the bias figures of the spec's sensitive attributes (modelkit.bias: Clarify's analysis.json shape; "bias", null
   when the spec names none) and permutation feature importance through the challenger's serving code
   (modelkit.importance: "explainability");
6. the metric lines (champion's first, 'champion:rmse=...;', then the challenger's), evaluation.json (with the
   per-epoch history and the system, which the pipeline logs to MLflow) and model_card.md in the model and output
   directories.
"""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable

from . import bias, importance, tracking
from . import metrics as metric_kit
from .contract import Paths, Task
from .data import Split, overlap_warning
from .loader import ServingCode

KIT_DIR = Path(__file__).resolve().parent
CHUNK_ROWS = 5000


def copy_serving_code(model_dir: Path, here: Path, files: tuple) -> Path:
    code = model_dir / "code"
    code.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copy2(here / name, code / name)
    shutil.copytree(KIT_DIR, code / "modelkit", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return code


def _baseline_module():
    try:
        import baseline  # packed beside train.py in the source archive
    except ImportError:  # a checkout: the platform's own module
        sys.path.insert(0, str(KIT_DIR.parents[1]))
        from lambdas.drift import baseline
    return baseline


def write_baseline(model_dir: Path, split: Split) -> None:
    state = split.state
    statistics, constraints = _baseline_module().compute(split.train_columns, state["features"], state["categorical"])
    (model_dir / "statistics.json").write_text(json.dumps(statistics))
    (model_dir / "constraints.json").write_text(json.dumps(constraints))


def predict_in_chunks(serving: ServingCode, rows: list) -> list:
    predictions = []
    for start in range(0, len(rows), CHUNK_ROWS):
        predictions.extend(serving.predict(rows[start:start + CHUNK_ROWS]))
    return predictions


MetricFunction = Callable[[list, list], dict]


def metrics_of(labels: list, predictions: list, split: Split, task: Task, metric_fn: MetricFunction | None = None) -> dict:
    if metric_fn is not None:
        return metric_fn(labels, predictions)
    return metric_kit.from_predictions(task.type, labels, predictions, split.state.get("classes"), task.metric_prefix)


def score(serving: ServingCode, split: Split, task: Task, metric_fn: MetricFunction | None = None) -> dict:
    return metrics_of(split.validation_labels(), predict_in_chunks(serving, split.validation_rows()), split, task, metric_fn)


def explain(serving: ServingCode, split: Split, task: Task, metric_fn: MetricFunction | None = None) -> dict | None:
    """Permutation importance of every feature on (at most importance.MAX_ROWS of) the validation rows, measured with
    the objective metric; None when the objective is no number there."""
    def objective(labels: list, predictions: list) -> float:
        return float(metrics_of(labels, predictions, split, task, metric_fn).get(task.objective, float("nan")))

    return importance.document(lambda rows: predict_in_chunks(serving, rows), split.validation_rows(),
                               split.validation_labels(), task.features, objective, task.objective, task.direction)


def with_explanations(explainability: dict | None, explanations: dict | None) -> dict | None:
    if not explanations:
        return explainability
    document = explainability or {"version": importance.VERSION, "explanations": {}}
    return {**document, "explanations": {**document["explanations"], **explanations}}


def _safe_extract(archive: Path, target: Path) -> None:
    """Regular files and folders only, inside target (no links, no absolute or '..' paths)."""
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        for member in members:
            path = Path(member.name)
            if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
                raise ValueError(f"the champion's artifact holds an unsafe entry {member.name!r}")
        tar.extractall(target, members=members)


def score_champion(channel: Path, split: Split, task: Task, metric_fn: MetricFunction | None = None) -> dict:
    """The champion scored on this run's validation rows: {"present", "model_package_arn", "metrics", "error"}."""
    descriptor_path = next(iter(sorted(channel.rglob("champion.json"))), None) if channel.is_dir() else None
    descriptor = json.loads(descriptor_path.read_text()) if descriptor_path else {}
    arn = descriptor.get("model_package_arn")
    if not arn:
        return {"present": False, "reason": descriptor.get("reason") or "no champion channel"}
    found = {"present": True, "model_package_arn": arn, "version": descriptor.get("version"), "metrics": None,
             "error": None, "rows": len(split.validation_labels())}
    artifact = next(iter(sorted(channel.rglob("model.tar.gz"))), None)
    if artifact is None:
        return {**found, "error": descriptor.get("reason") or "the champion's model.tar.gz was not in the channel"}
    try:
        with tempfile.TemporaryDirectory(prefix="champion-") as directory:
            _safe_extract(artifact, Path(directory))
            found["metrics"] = score(ServingCode(Path(directory)), split, task, metric_fn)
    except Exception as error:  # any failure of old code on new data is reported, never a crashed job
        found["error"] = f"{type(error).__name__}: {error}"[:1000]
    return found


def write_reports(directories: tuple, report: dict, task: Task) -> None:
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
        (directory / "model_card.md").write_text(model_card(report, task))


def model_card(report: dict, task: Task) -> str:
    champion = report.get("champion") or {}
    if champion.get("metrics"):
        versus = [f"- champion ({champion.get('model_package_arn')}) on the same rows: "
                  + ", ".join(f"{k.rpartition(':')[2]}={v:.4f}" for k, v in champion["metrics"].items())]
    elif champion.get("present"):
        versus = [f"- champion could not be scored: {champion.get('error')}"]
    else:
        versus = ["- no champion yet"]
    return "\n".join([
        f"# Model card: {task.model}", "", task.description or f"A {task.type} model.", "",
        "## Training",
        f"- task: {task.type}; label: {task.label}; features: {', '.join(task.features)}",
        f"- rows: {report.get('train_rows')} train / {report.get('validation_rows')} validation",
        *([f"- {data_warning(report)}"] if data_warning(report) else []),
        *[f"- {key}: {report[key]}" for key in ("framework", "device", "precision", "world_size") if key in report],
        f"- hyperparameters: `{json.dumps(report.get('hyperparameters', {}), sort_keys=True)}`",
        "", "## Validation metrics (through the artifact's own serving code)",
        *[f"- {name}: {value:.4f}" for name, value in report["metrics"].items()], *versus,
        "", "## Intended use and limits",
        "Scores rows of the population described by the training data; the drift hook watches captured traffic",
        "for a shifted population before scores can be trusted there.", "",
    ])


def data_warning(report: dict) -> str:
    return overlap_warning(report.get("validation_overlap") or {})


def finish(paths: Paths, task: Task, here: Path, split: Split, details: dict, serving_files: tuple = ("inference.py",),
           metric_fn: MetricFunction | None = None, history: tracking.History | None = None,
           explanations: dict | None = None) -> dict:
    """Steps 1-6 above; returns the evaluation report. history: the per-epoch metrics (modelkit.tracking); the
    report also says which system trained (instance type, accelerator, precision). explanations: attributions the
    framework computed itself (importance.tree_shap), added beside the permutation importance."""
    started = time.perf_counter()
    copy_serving_code(paths.model, here, serving_files)
    write_baseline(paths.model, split)
    serving = ServingCode(paths.model)
    predictions = predict_in_chunks(serving, split.validation_rows())
    challenger = metrics_of(split.validation_labels(), predictions, split, task, metric_fn)
    bias_figures = bias.document(task, split, predictions)
    explaining = time.perf_counter()
    explainability = with_explanations(explain(serving, split, task, metric_fn), explanations)
    explainability_seconds = round(time.perf_counter() - explaining, 3)
    champion = score_champion(paths.champion, split, task, metric_fn)
    if champion.get("metrics"):
        metric_kit.print_metrics(champion["metrics"], prefix="champion:")
    elif champion.get("present"):
        print(f"champion: not scored: {champion['error']}", flush=True)
    metric_kit.print_metrics(challenger)
    report = {"metrics": challenger, "champion": champion, "model": task.model, "task": task.type,
              "train_rows": len(split.y_train), "validation_rows": len(split.y_valid),
              "validation_overlap": split.overlap, "bias": bias_figures, "explainability": explainability,
              "explainability_seconds": explainability_seconds,
              "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "scoring_seconds": round(time.perf_counter() - started, 3),
              "history": history.as_list() if history else [],
              "system": tracking.system_info(paths.resource_config, details.get("device"), details.get("precision")),
              **details}
    write_reports((paths.model, paths.output), report, task)
    return report

"""`mlops new MODEL --task regression --framework xgboost`: a working model folder from the templates.

The folder holds everything docs/models.md requires (model.yaml, train.py, inference.py, make_dataset.py) and
imports the shared model kit; it synthesizes and runs the local lifecycle as it is, with no platform file
touched. Replace make_dataset.py's synthetic data and the features in model.yaml with your own.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from string import Template
from typing import Optional

import typer

from pipelines.spec import (MODELS_DIR_VARIABLE, SPEC_FILENAME, SpecError, check_model_folder, load_spec,
                            models_dir as configured_models_dir)

TEMPLATES = Path(__file__).resolve().parent / "templates"
TASKS = ("binary", "multiclass", "regression")
FRAMEWORKS = ("xgboost", "sklearn", "pytorch", "byo")
CODE_OF = {"xgboost": "xgboost", "sklearn": "sklearn", "pytorch": "pytorch", "byo": "sklearn"}
OBJECTIVES = {"binary": ("validation:auc", "maximize", 0.6), "multiclass": ("validation:accuracy", "maximize", 0.5),
              "regression": ("validation:rmse", "minimize", None)}
# How much a challenger must beat the champion by (strictly more). Half a point of a 0-1 score for classification;
# rmse is in the label's own units, unknown here: any strict improvement, until the owner sets a margin that matters.
CHAMPION_MARGINS = {"binary": 0.005, "multiclass": 0.005, "regression": 0.0}
HYPERPARAMETERS = {
    "xgboost": {"num_round": 100, "max_depth": 5, "eta": 0.1, "seed": 7},
    "sklearn": {"max_iter": 150, "learning_rate": 0.1, "seed": 7},
    "pytorch": {"epochs": 20, "batch_size": 256, "learning_rate": 0.003, "hidden_units": 64, "seed": 7},
}
DESCRIPTIONS = {"binary": "binary classifier", "multiclass": "multiclass classifier", "regression": "regression"}


def render(task: str, framework: str, name: str, approver: str) -> dict[str, str]:
    """File name -> content of the new folder."""
    metric, direction, minimum = OBJECTIVES[task]
    values = {
        "name": name, "task": task, "framework": framework, "label": "target", "metric": metric,
        "direction": direction, "minimum": f"\n  minimum: {minimum}" if minimum is not None else "",
        "champion_margin": CHAMPION_MARGINS[task],
        "description": f"{DESCRIPTIONS[task].capitalize()} ({framework}), scaffolded by mlops new",
        "task_extra": "\n  classes: [low, mid, high]" if task == "multiclass" else "",
        "instance_type": "ml.g5.xlarge" if framework == "pytorch" else "ml.m5.xlarge",
        "image": (f"\n  # your ECR image, built on the SageMaker training and inference toolkits (script mode)\n"
                  f"  image_uri: \"123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}:1\"") if framework == "byo" else "",
        "hyperparameters": "\n".join(f"    {k}: {v}" for k, v in HYPERPARAMETERS[CODE_OF[framework]].items()),
        "approver": approver,
    }
    code = TEMPLATES / CODE_OF[framework]
    return {
        SPEC_FILENAME: Template((TEMPLATES / "model.yaml.tmpl").read_text()).substitute(values),
        "make_dataset.py": Template((TEMPLATES / "make_dataset.py").read_text()).safe_substitute(values),
        "train.py": Template((code / "train.py").read_text()).safe_substitute(values),
        "inference.py": Template((code / "inference.py").read_text()).safe_substitute(values),
    }


def scaffold(name: str, task: str = "regression", framework: str = "xgboost", models_dir: Path | None = None,
             approver: str = "ml-lead@example.com") -> Path:
    """Writes models_dir/name/ and checks it as synthesis and the local mode will; SpecError on bad input (nothing
    is left behind then)."""
    if task not in TASKS:
        raise SpecError(f"--task {task!r}: scaffolds exist for {', '.join(TASKS)}; a custom task declares its own "
                        "checks: scaffold the closest type, then set task.type: custom and task.custom in model.yaml")
    if framework not in FRAMEWORKS:
        raise SpecError(f"--framework {framework!r}: one of {', '.join(FRAMEWORKS)}")
    folder = Path(models_dir or configured_models_dir()) / name
    if folder.exists():
        raise SpecError(f"{folder} already exists; fix: pick another name, or remove the folder first")
    folder.mkdir(parents=True)
    try:
        for file_name, content in render(task, framework, name, approver).items():
            (folder / file_name).write_text(content)
        check_model_folder(folder, load_spec(folder), local_mode=True)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)  # a bad name or approver: nothing half-made stays
        raise
    return folder


def register(app: typer.Typer) -> None:
    """Adds `mlops new` to the CLI."""

    @app.command("new")
    def new(model: str = typer.Argument(..., help="Model name: 3-32 lowercase letters, digits or '-'."),
            task: str = typer.Option("regression", help=f"Task type: {', '.join(TASKS)}."),
            framework: str = typer.Option("xgboost", help=f"Framework: {', '.join(FRAMEWORKS)}."),
            models_dir: Optional[Path] = typer.Option(None, help="Folder of model folders (default: MLOPS_MODELS_DIR, "
                                                                 "else the repository's pipelines/)."),
            approver: str = typer.Option("ml-lead@example.com", help="Who approves the model's versions.")) -> None:
        """Scaffold a working model folder (spec, train.py, inference.py, make_dataset.py) from a template."""
        from pipelines.console import output_console

        folder = scaffold(model, task, framework, models_dir, approver)
        # a folder the CLI would not look in by itself: say how to point the CLI, the local mode and synthesis at it
        unseen = folder.parent.resolve() != configured_models_dir().resolve()
        output_console().print(f"created {folder}: {', '.join(sorted(p.name for p in folder.iterdir()))}\n"
                        + (f"next: export {MODELS_DIR_VARIABLE}={folder.parent.resolve()} (the CLI, the local mode and "
                           f"synthesis then find it), then mlops validate {model} and mlops local up --model {model}"
                           if unseen else f"next: mlops validate {model}, mlops local up --model {model}, then make synth")
                        + "\ndocs/models.md says what each file must do")

"""`mlops validate [MODEL|PATH]`: is a model folder fit to synthesize and train, without synthesizing or calling AWS.

Checks, all reported together: the spec schema (with every environment's overrides from cdk.json), the data
location rules, the objective metric against the task type's metrics, the instance types, the environments'
regions, and the folder's files (train.py and inference.py present and valid Python). Exit code 2 when anything is
wrong (the CLI's EXIT_USAGE), 0 otherwise.

Registered by pipelines/cli.py: `validate_cli.register(app)`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from pipelines.console import output_console
from pipelines.spec import (LOCAL_MODE_FILES, REPO_ROOT, SPEC_FILENAME, EnvironmentSpec, ModelSpec,
                            SpecError, check_model_folder, find_model_dir, load_environments, load_spec)

EXIT_INVALID = 2  # pipelines/cli.py's EXIT_USAGE: bad arguments or configuration
CDK_JSON = REPO_ROOT / "cdk.json"


@dataclass
class Validation:
    """What `mlops validate` found: problems make the folder invalid; warnings do not."""

    target: str
    folder: str | None = None
    model: str | None = None
    environments: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {**asdict(self), "valid": self.valid}


def model_folder(target: str, models_dir: Path | None = None) -> Path:
    """A folder holding model.yaml (or model.yaml itself), else a model name under models_dir."""
    path = Path(target)
    if path.is_file() and path.name == SPEC_FILENAME:
        return path.parent
    if path.is_dir() and (path / SPEC_FILENAME).is_file():
        return path
    if path.is_dir() or "/" in target:
        raise SpecError(f"{target}: no {SPEC_FILENAME} there; fix: point at a model folder, or scaffold one with "
                        "`mlops new NAME`")
    return find_model_dir(target, models_dir)


def validate(target: str, models_dir: Path | None = None, cdk_json: Path | None = None) -> Validation:
    """Every check, offline; each failing one adds its message (with its fix) to problems."""
    found = Validation(target=target)
    try:
        folder = model_folder(target, models_dir)
    except SpecError as error:
        found.problems.append(str(error))
        return found
    found.folder = str(folder)
    environments = _environments(cdk_json or CDK_JSON, found)
    try:
        spec = load_spec(folder)
    except SpecError as error:
        found.problems.append(str(error))
        return found
    found.model = spec.name
    _with_overrides(folder, environments, found)
    _files(folder, spec, found)
    return found


def _environments(cdk_json: Path, found: Validation) -> list[EnvironmentSpec]:
    """cdk.json's environments (their accounts and regions checked); none when there is no usable cdk.json."""
    if not cdk_json.is_file():
        found.warnings.append(f"{cdk_json}: not found; environments (regions, overrides) not checked")
        return []
    try:
        environments = load_environments(cdk_json)
    except (SpecError, ValueError) as error:
        found.problems.append(str(error))
        return []
    found.environments = [environment.name for environment in environments]
    return environments


def _with_overrides(folder: Path, environments: list[EnvironmentSpec], found: Validation) -> None:
    for environment in environments:
        if not environment.overrides:
            continue
        try:
            load_spec(folder, environment.overrides)
        except SpecError as error:
            found.problems.append(f"with environment {environment.name}'s overrides (cdk.json): {error}")


def _files(folder: Path, spec: ModelSpec, found: Validation) -> None:
    """train.py (the entry point) and inference.py present and valid Python; make_dataset.py only warned about."""
    try:
        check_model_folder(folder, spec)
    except SpecError as error:
        found.problems.append(str(error))
    for name in (spec.training.entry_point, "inference.py"):
        problem = _python_problem(folder / name)
        if problem:
            found.problems.append(problem)
    for name, purpose in LOCAL_MODE_FILES.items():
        if not (folder / name).is_file():
            found.warnings.append(f"{folder / name}: missing; the local mode needs it (it {purpose})")


def _python_problem(path: Path) -> str:
    """A syntax error in a Python file (compiled, never run); '' when it compiles or is absent."""
    if not path.is_file() or path.suffix != ".py":
        return ""
    try:
        compile(path.read_bytes(), str(path), "exec")
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", None)
        return f"{path}{f' line {line}' if line else ''}: not valid Python ({getattr(error, 'msg', error)}); fix: correct it"
    return ""


def show(found: Validation, console: Console) -> None:
    if found.valid:
        checked = ", ".join(found.environments) or "none"
        console.print(f"[green]valid:[/] {escape(found.model or found.target)} ({escape(found.folder or '')}): spec, "
                      f"metric, instance types, data location, files; environments checked: {checked}", soft_wrap=True)
    else:
        console.print(f"[bold red]invalid:[/] {escape(found.target)}: {len(found.problems)} problem(s)", soft_wrap=True)
        for problem in found.problems:
            console.print(f"- {escape(problem)}", soft_wrap=True, highlight=False)
    for warning in found.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True, highlight=False)


def validate_command(target: str = typer.Argument(..., metavar="MODEL|PATH",
                                                  help="A model name (a folder under MLOPS_MODELS_DIR, default pipelines/), or a model folder's path."),
                     output: str = typer.Option("text", "--output", "-o", help="text, or json"),
                     models_dir: Optional[Path] = typer.Option(None, help="Folder of model folders (for a name).")) -> None:
    """Check a model folder before money is spent: spec, metric, instance types, regions, data location, files.
    Nothing is synthesized and AWS is not called; exit code 2 when invalid."""
    found = validate(target, models_dir)
    if output == "json":
        print(json.dumps(found.as_dict(), indent=2))
    else:
        show(found, output_console())
    if not found.valid:
        raise typer.Exit(code=EXIT_INVALID)


def register(app: typer.Typer, command) -> None:
    """Adds `mlops validate` to the CLI, through its error handling (command: one line and an exit code)."""
    command(app, "validate")(validate_command)

"""`mlops`: the command line of the platform (runs, models, and later approval, drift, local mode)."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from pipelines import naming
from pipelines.spec import SpecError

app = typer.Typer(help="MLOps platform: retraining runs, model registry, local lifecycle.", no_args_is_help=True)
run_app = typer.Typer(help="Retraining runs of a model.", no_args_is_help=True)
models_app = typer.Typer(help="Model versions in the registry.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(models_app, name="models")
approvals_app = typer.Typer(help="Approval requests and decisions.", no_args_is_help=True)
app.add_typer(approvals_app, name="approvals")
drift_app = typer.Typer(help="Drift checks with the drift hook's engine.", no_args_is_help=True)
app.add_typer(drift_app, name="drift")
console = Console()
EnvOption = typer.Option("dev", "--env", "-e", help="Environment from cdk.json (dev, staging, prod).")


def client(env: str):
    from pipelines.client import Pipelines

    return Pipelines(env=env)


def parse_params(params: list[str]) -> dict:
    """k=v pairs; values are read as JSON when they parse (numbers, booleans), else kept as strings."""
    parsed = {}
    for item in params:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise typer.BadParameter(f"'{item}' is not key=value, e.g. --param epochs=20")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=1)


@run_app.command("start")
def run_start(model: str, param: list[str] = typer.Option([], "--param", "-p", help="Hyperparameter override k=v."),
              reason: Optional[str] = typer.Option(None, help="Why this run (kept in the lineage)."),
              follow: bool = typer.Option(False, help="Show the run's progress until it ends."),
              env: str = EnvOption) -> None:
    """Start a retraining run through the runs API (signed with your AWS credentials: you are who asked)."""
    from pipelines.client import ApiError, RunInProgress

    try:
        run = client(env).start(model, parse_params(param), reason=reason)
    except (SpecError, RunInProgress, ApiError) as error:
        fail(str(error))
    console.print(f"started [bold]{run.name}[/] for {model} ({env})")
    if follow:
        run_watch(model, run.name, env=env)


@run_app.command("watch")
def run_watch(model: str, execution: Optional[str] = typer.Argument(None),
              timeout: float = typer.Option(7 * 24 * 3600, help="Stop watching after this many seconds."),
              poll: float = typer.Option(5.0, help="Seconds between checks."), env: str = EnvOption) -> None:
    """Follow a run step by step until it ends (exit 0 only when it succeeded)."""
    import time

    from pipelines.client import ApiError

    pipelines = client(env)
    deadline, last_step = time.monotonic() + timeout, None
    with console.status("waiting for the run...") as status:
        while True:
            try:
                run = pipelines.status(model, execution)
            except (LookupError, SpecError, ApiError) as error:
                fail(str(error))
            if run.current_step != last_step and run.current_step:
                console.print(f"  [green]●[/] {run.current_step}")
                last_step = run.current_step
            status.update(f"{run.name}: {run.status} at {run.current_step or '-'}")
            if run.status != "RUNNING":
                break
            if time.monotonic() > deadline:
                console.print(f"{run.name} is still running after {timeout:g} s (at {run.current_step})")
                raise typer.Exit(code=3)
            time.sleep(poll)
    colour = "green" if run.status == "SUCCEEDED" else "red"
    console.print(f"{run.name}: [{colour}]{run.status}[/]" + (f" ({run.error}: {run.cause})" if run.error else ""))
    if run.status != "SUCCEEDED":
        raise typer.Exit(code=1)


@run_app.command("status")
def run_status(model: str, execution: Optional[str] = typer.Argument(None), env: str = EnvOption) -> None:
    """Where a run is (the latest when no execution is named)."""
    from pipelines.client import ApiError

    try:
        run = client(env).status(model, execution)
    except (LookupError, SpecError, ApiError) as error:
        fail(str(error))
    table = Table(title=f"{model} / {run.name}", show_header=False)
    for label, value in [("status", run.status), ("step", run.current_step), ("started", run.started),
                         ("stopped", run.stopped), ("error", run.error), ("cause", run.cause)]:
        if value:
            table.add_row(label, str(value))
    console.print(table)


@run_app.command("list")
def run_list(model: str, limit: int = 20, env: str = EnvOption) -> None:
    """Recent runs of a model."""
    from pipelines.client import ApiError

    try:
        runs = client(env).runs(model, limit=limit)
    except (SpecError, ApiError) as error:
        fail(str(error))
    table = Table(title=f"{model} runs ({env})")
    for column in ("execution", "status", "started", "stopped"):
        table.add_column(column)
    for run in runs:
        colour = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "yellow"}.get(run.status, "white")
        table.add_row(run.name, f"[{colour}]{run.status}[/]", run.started, run.stopped or "")
    console.print(table)


@models_app.command("list")
def models_list(model: str, env: str = EnvOption, lineage: bool = typer.Option(True, help="Show lineage columns.")) -> None:
    """Versions with metrics, approval status and lineage."""
    try:
        versions = client(env).models(model)
    except SpecError as error:
        fail(str(error))
    table = Table(title=f"{model} model versions ({env})")
    columns = ["version", "status", "metrics", "created"] + (["git commit", "dataset sha256", "hyperparameters"] if lineage else [])
    for column in columns:
        table.add_column(column, overflow="fold")
    for version in versions:
        metrics = ", ".join(f"{k.split(':')[-1]}={v:.4f}" for k, v in sorted(version.metrics.items()) if "auc" in k or "accuracy" in k)
        row = [str(version.version), version.status, metrics, version.created]
        if lineage:
            row += [version.lineage.get("git_commit", "")[:12], version.lineage.get("dataset_sha256", "")[:12],
                    version.lineage.get("hyperparameters", "")]
        table.add_row(*row)
    console.print(table)


def _decide(model: str, approve: bool, reason: str, execution: str | None, env: str) -> None:
    from pipelines.client import DecisionRefused, decide

    try:
        decided_at = decide(client(env), model, approve, reason, execution)
    except (DecisionRefused, SpecError) as error:
        fail(str(error))
    console.print(f"{model}: {'approved' if approve else 'rejected'} at {decided_at}")


@app.command("approve")
def approve(model: str, execution: Optional[str] = typer.Option(None, help="Run name when several wait."),
            reason: str = typer.Option("", help="Kept in the audit log."), env: str = EnvOption) -> None:
    """Approve the model waiting for a decision (your signed AWS principal must map to an approver)."""
    _decide(model, True, reason, execution, env)


@app.command("reject")
def reject(model: str, reason: str = typer.Option(..., help="Why; sent with the rejection."),
           execution: Optional[str] = typer.Option(None, help="Run name when several wait."), env: str = EnvOption) -> None:
    """Reject the model waiting for a decision."""
    _decide(model, False, reason, execution, env)


@approvals_app.command("repair")
def approvals_repair(model: str, env: str = EnvOption) -> None:
    """Apply decisions left unapplied (throttled clicks) and close requests of runs that ended (platform admins)."""
    from lambdas.approval.handlers import reconcile

    pipelines = client(env)
    try:
        repaired = reconcile(model, naming.audit_table(env), naming.model_package_group(model, env),
                             pipelines.state_machine_arn(model))
    except SpecError as error:
        fail(str(error))
    for item in repaired:
        console.print(f"{model} {item['execution']}: {item['action']}")
    console.print(f"{model}: {len(repaired)} approval record(s) repaired")


@app.command("rollback")
def rollback_command(model: str, stage: str = typer.Option("prod", help="prod or staging."), env: str = EnvOption) -> None:
    """Re-deploy the previous approved model version (blue/green, with the alarms armed)."""
    from pipelines.client import RollbackRefused, rollback

    try:
        result = rollback(client(env), model, stage)
    except (RollbackRefused, SpecError) as error:
        fail(str(error))
    console.print(f"{result['endpoint']}: version {result['from_version']} -> {result['to_version']} ({result['action']})")


@drift_app.command("check")
def drift_check(model: str,
                capture: str = typer.Option(..., help="Data-capture .jsonl file, folder, or s3:// prefix."),
                baseline: str = typer.Option(..., help="statistics.json (Model Monitor shape): path or s3:// URI."),
                constraints: Optional[str] = typer.Option(
                    None, help="constraints.json (Model Monitor shape); default: the one beside a local baseline."),
                out: str = typer.Option("drift-report", help="Folder for report.html and report.json."),
                open_report: bool = typer.Option(False, "--open", help="Open the HTML report in a browser.")) -> None:
    """Compare captured traffic with a baseline, exactly as the scheduled drift hook does."""
    from pathlib import Path

    from rich.progress import Progress

    from pipelines.drift_check import capture_sources, check
    from pipelines.spec import find_model_dir, load_spec

    try:
        spec = load_spec(find_model_dir(model))
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("reading capture files", total=len(capture_sources(capture)))
            outcome = check(spec, baseline, capture, Path(out), lambda name: progress.advance(task), constraints)
    except (SpecError, FileNotFoundError, ValueError, KeyError) as error:
        fail(str(error))
    result = outcome["result"]
    table = Table(title=f"{model}: {'DRIFT' if result.drift else 'no drift'} over {result.rows:,} rows")
    for column in ("feature", "PSI", "JS", "p (BH)", "status"):
        table.add_column(column)
    for feature in sorted(result.features, key=lambda f: -f.psi):
        status = "[red]drifted[/]" if feature.drifted else ("[yellow]significant[/]" if feature.significant else "stable")
        table.add_row(feature.name, f"{feature.psi:.3f}", f"{feature.js:.3f}", f"{feature.p_value:.1e}", status)
    console.print(table)
    for problem in result.problems:
        console.print(f"[yellow]note:[/] {problem}")
    console.print(f"decision: {outcome['reason']}\nreport: {outcome['html']}")
    if open_report:
        import webbrowser
        webbrowser.open(outcome["html"].resolve().as_uri())


local_app = typer.Typer(help="The whole lifecycle offline: embedded AWS emulation, local training and serving.",
                        no_args_is_help=True)
app.add_typer(local_app, name="local")


@local_app.command("up")
def local_up(model: str = typer.Option("churn", help="Model folder under pipelines/."),
             interactive: bool = typer.Option(False, help="Wait for a person to click the approval link."),
             workdir: str = typer.Option(".local", help="Scratch folder (training jobs, reports)."),
             rows: int = typer.Option(5000, help="Rows of generated training data."),
             verbose: bool = typer.Option(False, help="Show the handlers' JSON logs and every training line.")) -> None:
    """Run one complete retraining lifecycle locally, then a drift-triggered second run."""
    from pathlib import Path

    from pipelines.local.lifecycle import LifecycleError, LocalLifecycle

    try:
        result = LocalLifecycle(model, Path(workdir), interactive, rows, say=console.print, verbose=verbose).run()
    except (LifecycleError, SpecError) as error:
        fail(str(error))
    print_summary(result)


def print_summary(result) -> None:
    runs = Table(title="Runs")
    for column in ("execution", "trigger", "status", "ended at / waiting at"):
        runs.add_column(column)
    for run in result.runs:
        runs.add_row(run["name"], run["input"].get("trigger", ""), run["status"], run["waiting_at"] or run.get("error") or "")
    versions = Table(title="Model versions")
    for column in ("version", "status", "validation:auc", "git commit", "dataset version", "trigger"):
        versions.add_column(column)
    for version in result.versions:
        versions.add_row(str(version["version"]), version["status"], f"{version['metrics'].get('validation:auc', 0):.4f}",
                         version["lineage"].get("git_commit", "")[:12], version["lineage"].get("dataset_version_id", "")[:12],
                         version["lineage"].get("trigger", ""))
    approvals = Table(title="Approval decisions")
    for column in ("request", "status", "decided by", "channel", "reason"):
        approvals.add_column(column)
    for item in result.approvals:
        approvals.add_row(item["sk"].split("#", 1)[1], item["status"] or "", item.get("decided_by") or "-",
                          item.get("channel") or "-", item.get("reason") or "-")
    for table in (runs, versions, approvals):
        console.print(table)
    console.print(f"predictions from the served model: {result.predictions}")
    console.print(f"drift: {result.drift.get('drifted_features')} → {result.drift.get('reason')}")
    console.print(f"drift report: {result.drift_report}")
    console.print(f"total {result.timings.get('total_s')} s")


def main() -> None:
    try:
        app()
    except SpecError as error:
        console.print(f"[bold red]invalid configuration:[/]\n{error}")
        sys.exit(2)


if __name__ == "__main__":
    main()

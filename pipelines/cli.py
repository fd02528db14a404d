"""`mlops`: the command line of the platform (runs, models, approvals, drift, cost, local mode).

Every command takes `--output json` (one JSON document on stdout, for scripts) and ends with an exit code scripts
can rely on (EXIT_CODES below, also in `mlops --help`). An environmental mistake (no region, no credentials, the
wrong account, a stack not deployed, no local server) is one line saying what to set, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from enum import Enum
from typing import Optional

import typer
from botocore.exceptions import ClientError
from rich.markup import escape

from pipelines import (approvals_cli, cost_cli, experiments_cli, fleet_cli, labels_cli, naming, promote_cli,
                       quality_cli, validate_cli)
from pipelines.console import Table, output_console
from pipelines.scaffold import register as register_scaffold
from pipelines.spec import SpecError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STILL_RUNNING, EXIT_ENVIRONMENT, EXIT_NOT_FOUND, EXIT_NOT_ALLOWED = 0, 1, 2, 3, 4, 5, 6
EXIT_CODES = {
    EXIT_OK: "done (watch, follow: the run succeeded: promoted, kept the champion or below threshold)",
    EXIT_FAILED: "refused or failed: a run in progress, a decision refused, the run failed, was rejected or stopped",
    EXIT_USAGE: "bad arguments or configuration: unknown model, hyperparameter or stage, invalid spec",
    EXIT_STILL_RUNNING: "watch/follow gave up at --timeout while the run goes on",
    EXIT_ENVIRONMENT: "AWS not set up: no region or credentials, another account, stack not deployed, no local server",
    EXIT_NOT_FOUND: "no such run (or no runs yet)",
    EXIT_NOT_ALLOWED: "your identity may not do this (AccessDenied)",
}
EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())

app = typer.Typer(help="MLOps platform: retraining runs, model registry, local lifecycle.", no_args_is_help=True,
                  epilog=EPILOG)
run_app = typer.Typer(help="Retraining runs of a model.", no_args_is_help=True, epilog=EPILOG)
models_app = typer.Typer(help="Model versions in the registry.", no_args_is_help=True, epilog=EPILOG)
app.add_typer(run_app, name="run")
app.add_typer(models_app, name="models")
approvals_app = typer.Typer(help="Approval requests and decisions.", no_args_is_help=True, epilog=EPILOG)
app.add_typer(approvals_app, name="approvals")
drift_app = typer.Typer(help="Drift checks with the drift hook's engine.", no_args_is_help=True, epilog=EPILOG)
app.add_typer(drift_app, name="drift")
local_app = typer.Typer(help="The whole lifecycle offline: embedded AWS emulation, local training and serving.",
                        no_args_is_help=True, epilog=EPILOG)
app.add_typer(local_app, name="local")
register_scaffold(app)  # `mlops new MODEL --task ... --framework ...` (pipelines/scaffold.py)
console = output_console()
errors = output_console(stderr=True)
EnvOption = typer.Option("dev", "--env", "-e", envvar="MLOPS_ENV",
                         help="Environment from cdk.json (dev, staging, prod; its account and region are used), or "
                              "local: the running `mlops local serve`.")
OutputOption = typer.Option("text", "--output", "-o", help="text, or json: one JSON document on stdout for scripts.")
app.command("cost")(cost_cli.cost)

OUTCOME_COLOURS = {"promoted": "green", "kept_champion": "yellow", "below_threshold": "yellow", "running": "blue",
                   "waiting_for_approval": "cyan", "reproduced": "green", "not_reproduced": "yellow"}


class Output(str, Enum):
    text = "text"
    json = "json"


class Stage(str, Enum):
    prod = "prod"
    staging = "staging"


def client(env: str):
    from pipelines.client import Pipelines

    return Pipelines(env=env)


def emit(document) -> None:
    """A JSON document on stdout (plain print: no console wrapping, no markup)."""
    print(json.dumps(document, indent=1, default=str))


def fail(message: str, code: int = EXIT_FAILED, output: str = "text", kind: str = "failed") -> None:
    """One line on stderr (or a JSON error document on stdout) and the exit code."""
    if output == "json":
        emit({"error": kind, "message": message, "exit_code": code})
    else:
        errors.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=code)


def _classify(error: Exception) -> tuple[int, str]:
    from pipelines.client import (ApiError, DecisionRefused, EnvironmentProblem, NotAllowed, RollbackRefused,
                                  RunInProgress)

    if isinstance(error, EnvironmentProblem):
        return EXIT_ENVIRONMENT, "environment"
    if isinstance(error, NotAllowed):
        return EXIT_NOT_ALLOWED, "not_allowed"
    if isinstance(error, SpecError):
        return EXIT_USAGE, "invalid"
    if isinstance(error, LookupError):
        return EXIT_NOT_FOUND, "not_found"
    if isinstance(error, (RunInProgress, DecisionRefused, RollbackRefused, ApiError)):
        return EXIT_FAILED, "refused"
    return EXIT_FAILED, "aws_error" if isinstance(error, ClientError) else "failed"


def command(group: typer.Typer, name: str):
    """Registers a command whose known errors become one line and an exit code (EXIT_CODES)."""
    from pipelines.client import ApiError, DecisionRefused, EnvironmentProblem, NotAllowed, RollbackRefused, RunInProgress

    expected = (EnvironmentProblem, NotAllowed, SpecError, LookupError, RunInProgress, DecisionRefused, RollbackRefused,
                ApiError, FileNotFoundError, ClientError)

    def register(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            output = kwargs.get("output", "text")
            output = output.value if isinstance(output, Enum) else output
            try:
                return function(*args, **kwargs)
            except expected as error:
                code, kind = _classify(error)
                fail(str(error).strip(), code, output, kind)

        group.command(name)(wrapper)
        return function

    return register


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


def _colour(outcome) -> str:
    return OUTCOME_COLOURS.get(outcome.kind, "red") if outcome else "white"


def _outcome_text(run) -> str:
    if run.outcome is None:
        return run.status
    return f"[{_colour(run.outcome)}]{run.outcome.summary}[/]"


# ------------------------------------------------------------------ runs
@command(run_app, "start")
def run_start(model: str, param: list[str] = typer.Option([], "--param", "-p", help="Hyperparameter override k=v."),
              reason: Optional[str] = typer.Option(None, help="Why this run (kept in the lineage)."),
              dataset_key: Optional[str] = typer.Option(None, help="Another dataset key under the model's prefix."),
              follow: bool = typer.Option(False, help="Show the run's steps as they happen, until it ends."),
              timeout: float = typer.Option(7 * 24 * 3600, help="With --follow: stop following after this many seconds."),
              poll: float = typer.Option(5.0, help="With --follow: seconds between checks."),
              env: str = EnvOption, output: Output = OutputOption) -> None:
    """Start a retraining run through the runs API (signed with your AWS credentials: you are who asked)."""
    from pipelines.client import RunInProgress

    try:
        run = client(env).start(model, parse_params(param), reason=reason, dataset_key=dataset_key)
    except RunInProgress as error:
        fail(str(error), EXIT_FAILED, output, "run_in_progress")
    if not follow:
        if output == Output.json:
            emit(run.model_dump())
        else:
            console.print(f"started [bold]{run.name}[/] for {model} ({env})")
        return
    if output == Output.text:
        console.print(f"started [bold]{run.name}[/] for {model} ({env})")
    _watch(model, run.name, env, timeout, poll, output)


@command(run_app, "watch")
def run_watch(model: str, execution: Optional[str] = typer.Argument(None, help="Run name (default: the latest)."),
              timeout: float = typer.Option(7 * 24 * 3600, help="Stop watching after this many seconds."),
              poll: float = typer.Option(5.0, help="Seconds between checks."), env: str = EnvOption,
              output: Output = OutputOption) -> None:
    """Follow a run step by step until it ends (exit 0 only when it succeeded)."""
    _watch(model, execution, env, timeout, poll, output)


def _watch(model: str, execution: str | None, env: str, timeout: float, poll: float, output: Output) -> None:
    """Prints each step as the run enters and leaves it (every step, also those between two checks), the wait for an
    approver once, and the outcome; exit code from the outcome (EXIT_CODES)."""
    pipelines = client(env)
    deadline, shown, waiting_said = time.monotonic() + timeout, {}, False
    text = output == Output.text
    while True:
        run = pipelines.status(model, execution)
        execution = run.name
        for index, step in enumerate(run.steps):
            if text and shown.get(index) != step.status:
                mark = {"running": "[blue]●[/]", "succeeded": "[green]✓[/]", "failed": "[red]✗[/]",
                        "stopped": "[yellow]■[/]"}[step.status]
                if step.status != "running" or index not in shown:
                    console.print(f"  {mark} {step.name}" + (f" [red]{step.error}[/]" if step.error else ""))
            shown[index] = step.status
        if run.outcome and run.outcome.kind == "waiting_for_approval" and not waiting_said and text:
            console.print(f"  [cyan]⏸ {run.outcome.summary}[/]", soft_wrap=True)
            _say_how_to_approve(pipelines, model, env, run.outcome.approvers)
            waiting_said = True
        if run.status != "RUNNING":
            break
        if time.monotonic() > deadline:
            if not text:
                emit(run.model_dump())
            else:
                console.print(f"{run.name} is still running after {timeout:g} s (at {run.current_step}): "
                              f"{run.outcome.summary if run.outcome else ''}")
            raise typer.Exit(code=EXIT_STILL_RUNNING)
        time.sleep(poll)
    if text:
        console.print(f"{run.name}: {_outcome_text(run)}", soft_wrap=True)
    else:
        emit(run.model_dump())
    if not (run.outcome and run.outcome.succeeded):
        raise typer.Exit(code=EXIT_FAILED)


def _say_how_to_approve(pipelines, model: str, env: str, approvers: list[str]) -> None:
    """Where the links are and the command each approver may run (whole lines: commands and paths to copy)."""
    from pipelines.client import how_to_approve

    local = getattr(pipelines, "local", None)
    for line in how_to_approve(model, env, approvers, local.workdir / "inbox" if local else None):
        console.print(f"    {escape(line)}", soft_wrap=True, highlight=False)


@command(run_app, "status")
def run_status(model: str, execution: Optional[str] = typer.Argument(None, help="Run name (default: the latest)."),
               env: str = EnvOption, output: Output = OutputOption) -> None:
    """Where a run is and how it ended: outcome (promoted, kept champion, below threshold, waiting for approval,
    rejected, failed at a step), trigger, who started it, and its steps."""
    run = client(env).status(model, execution)
    if output == Output.json:
        return emit(run.model_dump())
    table = Table(title=f"{model} / {run.name}", show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    rows = [("status", run.status), ("outcome", _outcome_text(run)), ("trigger", run.trigger),
            ("requested by", run.requested_by), ("started", run.started), ("stopped", run.stopped)]
    if run.outcome and run.outcome.kind == "failed":
        rows += [("failed step", run.outcome.step), ("error", run.outcome.error), ("cause", run.outcome.cause)]
    if run.outcome and run.outcome.tracking_error:
        rows.append(("experiment tracking", f"[yellow]FAILED: {escape(run.outcome.tracking_error)}[/] (docs/experiments.md)"))
    for label, value in rows:
        if value:
            table.add_row(label, str(value))
    steps = " → ".join(f"[{'green' if s.status == 'succeeded' else 'red' if s.status == 'failed' else 'blue'}]{s.name}[/]"
                       for s in run.steps)
    if steps:
        table.add_row("steps", steps)
    console.print(table)


@command(run_app, "list")
def run_list(model: str, limit: int = typer.Option(20, min=1, max=100), status: Optional[str] = typer.Option(
                 None, help="RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED."),
             env: str = EnvOption, output: Output = OutputOption) -> None:
    """Recent runs of a model: trigger, who asked, status and outcome."""
    runs = client(env).runs(model, status=status, limit=limit)
    if output == Output.json:
        return emit([run.model_dump() for run in runs])
    table = Table(title=f"{model} runs ({env})")
    for column in ("execution", "trigger", "requested by", "status", "outcome", "started"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(run.name, run.trigger or "", (run.requested_by or "").rsplit("/", 1)[-1], run.status,
                      _outcome_text(run), run.started[:19])
    console.print(table)


@command(run_app, "stop")
def run_stop(model: str, execution: Optional[str] = typer.Argument(None, help="Run name (default: the latest)."),
             reason: str = typer.Option("stopped by a person", help="Kept with the stopped run."),
             env: str = EnvOption, output: Output = OutputOption) -> None:
    """Stop a running run (platform admins: StopExecution is theirs). A pending approval is closed by the reconciler."""
    run = client(env).stop(model, execution, reason)
    if output == Output.json:
        return emit(run.model_dump())
    console.print(f"{run.name}: {_outcome_text(run)}" if run.status != "RUNNING" else
                  f"asked {run.name} to stop; it still runs at {run.current_step or '-'}", soft_wrap=True)


@command(run_app, "metrics")
def run_metrics(model: str, execution: Optional[str] = typer.Argument(None, help="Run name (default: the latest)."),
                env: str = EnvOption, output: Output = OutputOption) -> None:
    """Per-epoch metrics of a run's training job (from its log), and its final metrics."""
    history = client(env).metrics(model, execution)
    if output == Output.json:
        return emit(history)
    names = sorted({k for row in history["epochs"] for k in row if k != "epoch"})
    table = Table(title=f"{model} / {history['run']}", caption=f"training job {history['training_job']}")
    for column in ["epoch", *names]:
        table.add_column(column, justify="right")
    for row in history["epochs"]:
        table.add_row(str(row["epoch"]), *(f"{row[n]:.6g}" if n in row else "" for n in names))
    console.print(table if history["epochs"] else f"{history['training_job']}: no per-epoch metrics logged yet")
    final = history.get("final") or {}
    if final:
        better = "higher" if history.get("direction") == "maximize" else "lower"
        console.print("final: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(final.items()))
                      + f" (objective {history['objective']}, {better} is better)")


# ------------------------------------------------------------------ registry
def _metric_columns(model: str) -> list[str]:
    from pipelines.client import model_dir
    from pipelines.spec import load_spec

    spec = load_spec(model_dir(model))
    columns = getattr(spec, "metric_columns", None)
    return columns() if callable(columns) else [spec.objective.metric]


def _served_by(endpoint: dict) -> str:
    if endpoint.get("hosting") == "shared":
        return f"inference component {endpoint['endpoint']} on endpoint {endpoint['shared_endpoint']}"
    return f"endpoint {endpoint['endpoint']}"


@command(models_app, "list")
def models_list(model: str, env: str = EnvOption, lineage: bool = typer.Option(True, help="Show lineage columns."),
                output: Output = OutputOption) -> None:
    """Versions with metrics, approval status, the stage each serves (with its endpoint and URL), and lineage."""
    pipelines = client(env)
    versions = pipelines.models(model)
    endpoints = {stage: pipelines.endpoint(model, stage, served=stage) for stage in {s for v in versions for s in v.serves}}
    if output == Output.json:
        return emit([vars(v) | {"hyperparameters": v.hyperparameters, "approved_by": v.approved[0],
                                "approved_at": v.approved[1], "endpoints": [endpoints[s] for s in v.serves]}
                     for v in versions])
    metric_columns = _metric_columns(model)
    serving = [endpoints[stage] for version in versions for stage in version.serves]
    called = next((e for e in serving if e["stage"] == Stage.prod.value), serving[0] if serving else None)
    caption = "\n".join([f"{e['stage']}: {_served_by(e)} ({e['url']})" for e in serving] + (
        [f"call it: mlops predict {model} --stage {called['stage']} --env {env} --data '<JSON request>' "
         "(or --data @request.json)"] if called else []))
    table = Table(title=f"{model} model versions ({env})", caption=caption or None, caption_justify="left")
    columns = ["version", "status", "serves", "approved by", *metric_columns, "created"] + (
        ["git commit", "dataset sha256", "hyperparameters"] if lineage else [])
    for column in columns:
        table.add_column(column, overflow="fold")
    for version in versions:
        serves = ", ".join(f"[bold green]{stage}[/] ({endpoints[stage]['endpoint']})" for stage in version.serves)
        metrics = [f"{version.metrics[m]:.4f}" if isinstance(version.metrics.get(m), (int, float)) else "-"
                   for m in metric_columns]
        who, when = version.approved
        row = [str(version.version), version.status, serves, f"{who} ({when[:19]})" if who else "-", *metrics,
               version.created[:19]]
        if lineage:
            row += [version.lineage.get("git_commit", "")[:12], version.lineage.get("dataset_sha256", "")[:12],
                    json.dumps(version.hyperparameters, sort_keys=True)]
        table.add_row(*row)
    console.print(table)


# ------------------------------------------------------------------ serving
def request_body(data: str) -> tuple[bytes, str]:
    """(body, content type) from --data: a JSON document, @file (.csv: text/csv, else JSON), or - (stdin, JSON)."""
    from pathlib import Path

    if data.startswith("@"):
        path = Path(data[1:])
        if not path.is_file():
            raise typer.BadParameter(f"no file {path}")
        text, content_type = path.read_text(), "text/csv" if path.suffix.lower() == ".csv" else "application/json"
    else:
        text, content_type = (sys.stdin.read() if data == "-" else data), "application/json"
    if content_type == "application/json":
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"--data is not JSON ({error}); e.g. --data '{{\"instances\": [{{...}}]}}' "
                                     "or --data @request.json") from None
    return text.encode(), content_type


@command(app, "predict")
def predict(model: str, data: str = typer.Option(..., "--data", "-d", help="The request: JSON (e.g. "
                                                 "'{\"instances\": [{...}]}'), @file (.json, or .csv rows), or - for stdin."),
            stage: Optional[Stage] = typer.Option(None, help="Which stage: default the one the environment serves."),
            env: str = EnvOption, output: Output = OutputOption) -> None:
    """Call the served model (SageMaker InvokeEndpoint with your credentials; --env local: the local server)."""
    body, content_type = request_body(data)
    pipelines = client(env)
    stage_name = stage.value if stage else None
    answer = pipelines.predict(model, body, stage_name, content_type, on_wait=lambda seconds: errors.print(
        f"{model} has no copy running (scaled to zero); a request starts one: asking again in {seconds:g} s"))
    try:
        document = json.loads(answer)
    except ValueError:
        document = answer.decode(errors="replace")
    if output == Output.json:
        return emit({**pipelines.endpoint(model, stage_name), "response": document})
    print(json.dumps(document, indent=1) if not isinstance(document, str) else document)


# ------------------------------------------------------------------ approvals
approvals_cli.register(app, approvals_app, command)  # `mlops approve|reject`, `mlops approvals list`
validate_cli.register(app, command)  # `mlops validate MODEL|PATH`: a model folder checked offline (docs/bad-input.md)


@command(approvals_app, "repair")
def approvals_repair(model: str, env: str = EnvOption, output: Output = OutputOption) -> None:
    """Apply decisions left unapplied (throttled clicks) and close requests of runs that ended (platform admins)."""
    from lambdas.approval.handlers import reconcile

    pipelines = client(env)
    with pipelines.handler_calls():
        repaired = reconcile(model, naming.audit_table(env), naming.model_package_group(model, env),
                             pipelines.state_machine_arn(model))
    if output == Output.json:
        return emit(repaired)
    for item in repaired:
        console.print(f"{model} {item['execution']}: {item['action']}")
    console.print(f"{model}: {len(repaired)} approval record(s) repaired")


@command(app, "rollback")
def rollback_command(model: str, stage: Optional[Stage] = typer.Option(
        None, help="The stage to roll back: default the one the environment serves."),
                     env: str = EnvOption, output: Output = OutputOption) -> None:
    """Re-deploy the previous approved model version (blue/green or a rolling update, with the alarms armed)."""
    from pipelines.client import rollback

    result = rollback(client(env), model, stage.value if stage else None)
    if output == Output.json:
        return emit(result)
    console.print(f"{result['endpoint']}: version {result['from_version']} -> {result['to_version']} ({result['action']})")
    if result.get("note"):
        console.print(f"note: {result['note']}")


# ------------------------------------------------------------------ drift
@command(drift_app, "check")
def drift_check(model: str,
                capture: str = typer.Option(..., help="Data-capture .jsonl file, folder, or s3:// prefix."),
                baseline: Optional[str] = typer.Option(
                    None, help="statistics.json (Model Monitor shape): path or s3:// URI; default: the baseline registered "
                               "with the version serving prod in --env (what the scheduled drift check uses)."),
                constraints: Optional[str] = typer.Option(
                    None, help="constraints.json (Model Monitor shape); default: the one beside a local baseline, or "
                               "the one registered with the serving version."),
                out: str = typer.Option("drift-report", help="Folder for report.html and report.json."),
                open_report: bool = typer.Option(False, "--open", help="Open the HTML report in a browser."),
                env: str = EnvOption, output: Output = OutputOption) -> None:
    """Compare captured traffic with a baseline, exactly as the scheduled drift hook does (an offline check: it
    starts no run). s3:// locations are read as you, in --env's account (local: the running local server)."""
    from pathlib import Path

    from botocore.exceptions import BotoCoreError
    from rich.progress import Progress

    from pipelines.client import model_dir
    from pipelines.drift_check import capture_sources, check, reads_s3, served_baseline
    from pipelines.spec import load_spec

    spec = load_spec(model_dir(model))
    pipelines = client(env) if baseline is None or reads_s3(capture, baseline, constraints) else None
    s3 = pipelines.client("s3") if pipelines else None
    if baseline is None:  # the serving version's registered baseline, as the scheduled hook reads it
        try:
            baseline, registered_constraints, version = served_baseline(pipelines, model)
        except (ClientError, BotoCoreError) as error:
            raise pipelines.explain(error) from None
        constraints = constraints or registered_constraints
        if output == Output.text:
            errors.print(f"baseline: {baseline} (registered with version {version}, serving prod in {env})",
                         soft_wrap=True, highlight=False)
    try:
        with Progress(console=errors, transient=True, disable=output == Output.json) as progress:
            task = progress.add_task("reading capture files", total=len(capture_sources(capture, s3)))
            outcome = check(spec, baseline, capture, Path(out), lambda name: progress.advance(task), constraints, s3)
    except (FileNotFoundError, ValueError, KeyError) as error:
        if isinstance(error, SpecError):
            raise
        fail(str(error), EXIT_FAILED, output.value)
    except (ClientError, BotoCoreError) as error:
        raise pipelines.explain(error) if pipelines else error
    result = outcome["result"]
    if output == Output.json:
        return emit({"drift": result.drift, "rows": result.rows, "baseline": baseline, "reason": outcome["reason"], "retrain": outcome["retrain"],
                     "verdict": outcome["verdict"], "run_started": False,
                     "drifted_features": result.drifted_features, "problems": result.problems,
                     "report": str(outcome["html"])})
    table = Table(title=f"{model}: {'DRIFT' if result.drift else 'no drift'} over {result.rows:,} rows")
    for column in ("feature", "PSI", "JS", "p (BH)", "status"):
        table.add_column(column)
    for feature in sorted(result.features, key=lambda f: -f.psi):
        status = "[red]drifted[/]" if feature.drifted else ("[yellow]significant[/]" if feature.significant else "stable")
        table.add_row(feature.name, f"{feature.psi:.3f}", f"{feature.js:.3f}", f"{feature.p_value:.1e}", status)
    console.print(table)
    for problem in result.problems:
        console.print(f"[yellow]note:[/] {problem}")
    console.print(f"decision: {outcome['verdict']}: {outcome['why']}\nreport: {outcome['html']}", soft_wrap=True)
    if open_report:
        import webbrowser
        webbrowser.open(outcome["html"].resolve().as_uri())


# ------------------------------------------------------------------ local mode
def _show_links(text: str) -> None:
    """Approval links printed whole: no console wrapping, no markup (a wrapped link does not verify)."""
    print(text, flush=True)


@command(local_app, "up")
def local_up(model: str = typer.Option("churn", help="Model folder (under MLOPS_MODELS_DIR, default pipelines/)."),
             interactive: bool = typer.Option(False, help="Wait for a person to click the approval link."),
             workdir: str = typer.Option(".local", help="Work folder (training jobs, reports, server.json)."),
             rows: int = typer.Option(5000, help="Rows of generated training data."),
             data: Optional[str] = typer.Option(None, help="Train on your own CSV file (the spec's columns)."),
             keep: bool = typer.Option(False, help="Afterwards keep the emulation running as a local server "
                                                   "(`--env local` reaches it; `mlops local down` stops it)."),
             port: int = typer.Option(0, help="With --keep: the AWS emulation's port (default: a free one)."),
             verbose: bool = typer.Option(False, help="Show the handlers' JSON logs and every training line."),
             scenario: str = typer.Option("drift", help="What starts run 2: drift (a shifted population) or quality "
                                                         "(labels show the served model gone wrong)."),
             output: Output = OutputOption) -> None:
    """Run one complete retraining lifecycle locally, then a second run started by drift (or, --scenario quality, by
    a label-driven quality drop)."""
    from pathlib import Path

    from pipelines.client import model_dir
    from pipelines.local.lifecycle import LifecycleError, LocalLifecycle
    from pipelines.local.server import KeptEmulation

    model_dir(model)
    say = console.print if output == Output.text else (lambda *a, **k: None)
    keeper = _after_summary(KeptEmulation(port, say=say, show_links=_show_links), output) if keep else None
    try:
        result = LocalLifecycle(model, Path(workdir), interactive, rows, say=say, verbose=verbose, data=data,
                                show_links=_show_links, scenario=scenario).run(then=keeper)
    except LifecycleError as error:
        fail(str(error), EXIT_FAILED, output.value)
    if not keep:
        _print_result(result, output)


def _after_summary(keeper, output: Output):
    """--keep: the lifecycle's summary first, then the server (which blocks until `mlops local down`)."""
    def then(lifecycle) -> None:
        _print_result(lifecycle.result, output)
        keeper(lifecycle)

    return then


def _print_result(result, output: Output) -> None:
    if output == Output.json:
        emit({"runs": result.runs, "versions": result.versions, "approvals": result.approvals,
              "predictions": result.predictions, "drift": {k: v for k, v in result.drift.items() if k != "result"},
              "drift_report": result.drift_report, "quality": result.quality, "labels": result.labels,
              "quality_report": result.quality_report, "timings": result.timings})
    else:
        print_summary(result)


@command(local_app, "serve")
def local_serve(model: str = typer.Option("churn", help="Model folder (under MLOPS_MODELS_DIR, default pipelines/)."),
                workdir: str = typer.Option(".local", help="Work folder (server.json, training jobs, inbox/)."),
                rows: int = typer.Option(5000, help="Rows of generated training data."),
                data: Optional[str] = typer.Option(None, help="Train on your own CSV file (the spec's columns)."),
                port: int = typer.Option(0, help="The AWS emulation's port (default: a free one)."),
                background: bool = typer.Option(False, help="Start it detached and return once it answers."),
                verbose: bool = typer.Option(False, help="Show the handlers' JSON logs and every training line."),
                output: Output = OutputOption) -> None:
    """Keep the AWS emulation of the local mode running on 127.0.0.1 (stacks provisioned, data seeded, no run yet):
    `--env local` in the CLI, Pipelines(env="local") in a notebook reach it; `mlops local down` stops it."""
    from pathlib import Path

    from pipelines.client import model_dir
    from pipelines.local.lifecycle import LifecycleError, LocalLifecycle
    from pipelines.local.server import KeptEmulation, start_in_background

    model_dir(model)
    if background:
        arguments = ["--model", model, "--workdir", str(Path(workdir).resolve()), "--rows", str(rows),
                     "--port", str(port)] + (["--data", str(Path(data).resolve())] if data else []) + (
            ["--verbose"] if verbose else [])
        state = start_in_background(arguments, Path(workdir))
        if output == Output.json:
            return emit({k: v for k, v in state.items() if k not in ("identities", "token")})
        console.print(f"local server running at {state['url']} (pid {state['pid']}); `mlops local down` stops it")
        return
    say = console.print if output == Output.text else (lambda *a, **k: None)
    try:
        LocalLifecycle(model, Path(workdir), rows=rows, say=say, verbose=verbose, data=data,
                       show_links=_show_links).run(then=KeptEmulation(port, say=say, show_links=_show_links),
                                                   setup_only=True)
    except LifecycleError as error:
        fail(str(error), EXIT_FAILED, output.value)


@command(local_app, "down")
def local_down(workdir: Optional[str] = typer.Option(None, help="Work folder of the server (default: MLOPS_LOCAL_DIR "
                                                                "or .local)."),
               output: Output = OutputOption) -> None:
    """Stop the local server (`mlops local serve`, `mlops local up --keep`)."""
    from pathlib import Path

    from pipelines.local.server import down

    message = down(Path(workdir) if workdir else None)
    if output == Output.json:
        return emit({"stopped": True, "message": message})
    console.print(message)


def print_summary(result) -> None:
    runs = Table(title="Runs")
    for column in ("execution", "trigger", "status", "outcome"):
        runs.add_column(column, overflow="fold")
    for run in result.runs:
        outcome = run.get("outcome") or {}
        colour = OUTCOME_COLOURS.get(outcome.get("kind"), "red")
        runs.add_row(run["name"], run["input"].get("trigger", ""), run["status"],
                     f"[{colour}]{outcome.get('summary', run.get('error') or '')}[/]")
    columns = list(getattr(result, "metric_columns", None) or [])
    if not columns and result.versions:
        columns = sorted(result.versions[0]["metrics"])[:2]
    versions = Table(title="Model versions")
    for column in ("version", "status", "serves", *columns, "git commit", "dataset version", "trigger"):
        versions.add_column(column)
    for version in result.versions:
        metrics = [f"{version['metrics'][c]:.4f}" if isinstance(version["metrics"].get(c), (int, float)) else "-"
                   for c in columns]
        versions.add_row(str(version["version"]), version["status"], ", ".join(version.get("serves") or []), *metrics,
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
    if result.drift:
        console.print(f"drift: {result.drift.get('drifted_features')} → {result.drift.get('reason')}")
        console.print(f"drift report: {result.drift_report}")
    for number, check in enumerate(result.quality, 1):
        console.print(f"quality check {number}: {check['decision']} → {check['reason']}")
    if result.quality_report:
        console.print(f"quality report: {result.quality_report}")
    if result.timings.get("total_s") is not None:
        console.print(f"total {result.timings['total_s']} s")


command(app, "promote")(promote_cli.promote_command)  # `mlops promote MODEL VERSION --to STAGE` (docs/promotion.md)
experiments_cli.register(app, run_app, command)  # `mlops experiments list|compare`, `mlops run reproduce` (docs/experiments.md)
command(app, "fleet")(fleet_cli.fleet_command)  # `mlops fleet`: every model of the environment, what needs a person first
labels_cli.register(app, command)  # `mlops labels put MODEL FILE`: ground-truth labels (docs/models.md)
command(app, "quality")(quality_cli.quality_command)  # `mlops quality MODEL`: the model's recent quality checks


def main() -> None:
    try:
        app()
    except SpecError as error:
        errors.print(f"[bold red]invalid configuration:[/]\n{error}", highlight=False)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()

"""`mlops experiments list|compare MODEL` and `mlops run reproduce MODEL VERSION` (docs/experiments.md).

Experiments are the model's MLflow runs on the environment's tracking server, read through MLflow's REST API with
your AWS credentials (SigV4, as the pipeline writes them; lambdas/pipeline/tracking.py). Each pipeline run is one
MLflow run; a tuned run has its trials as child runs; a registered version's run carries its model package ARN,
and the version's lineage carries the run id.

Registered by pipelines/cli.py (`experiments_cli.register(app, run_app, command)`), so its errors become one line
and an exit code like every other command's.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from typing import Optional

import typer

from lambdas.pipeline import tracking
from lambdas.pipeline.experiments import PACKAGE_TAG, RUN_TAG, experiment_name
from pipelines import naming
from pipelines.console import Table, output_console
from pipelines.spec import load_spec

console = output_console()
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
EnvOption = typer.Option("dev", "--env", "-e", envvar="MLOPS_ENV", help="Environment from cdk.json, or local.")
OutputOption = typer.Option("text", "--output", "-o", help="text, or json: one JSON document on stdout.")


def _emit(document) -> None:
    print(json.dumps(document, indent=1, default=str))


# ------------------------------------------------------------------ reading runs
@dataclass
class Experiment:
    """One MLflow run, flattened: what the tables show."""

    run_id: str
    name: str
    status: str
    started: str
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)

    @classmethod
    def of(cls, run: dict) -> "Experiment":
        info, data = run["info"], run.get("data") or {}
        tags = {t["key"]: t["value"] for t in data.get("tags", [])}
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(info.get("start_time") or 0) / 1000))
        return cls(run_id=info["run_id"], name=info.get("run_name") or tags.get("mlflow.runName", info["run_id"]),
                   status=info.get("status", ""), started=started,
                   params={p["key"]: p["value"] for p in data.get("params", [])},
                   metrics={m["key"]: m["value"] for m in data.get("metrics", [])}, tags=tags)

    @property
    def parent(self) -> str | None:
        return self.tags.get("mlflow.parentRunId")

    @property
    def version(self) -> str:
        return self.tags.get("mlops.model_package_version", "")


def tracking_client(pipelines, model: str) -> tuple[tracking.TrackingClient, str]:
    """The environment's tracking server (found as the pipeline finds it) and the model's experiment id."""
    from pipelines.client import EnvironmentProblem, model_dir

    spec = load_spec(model_dir(model, pipelines.models_dir))
    name = naming.tracking_server(pipelines.env)
    try:
        client = tracking.TrackingClient.for_server(name, pipelines.session, pipelines.sagemaker)
        experiment = client.experiment_id(experiment_name(spec), create=False)
    except tracking.TrackingError as error:
        if error.code in ("ValidationException", "ResourceNotFound"):
            raise EnvironmentProblem(f"{pipelines.env} has no MLflow tracking server ({name}); fix: set "
                                     f"mlops:environments.{pipelines.env}.experiments.enabled in cdk.json and deploy "
                                     f"{naming.registry_stack(pipelines.env)}") from None
        raise EnvironmentProblem(str(error)) from None
    if experiment is None:
        raise LookupError(f"{model} has no experiments in {pipelines.env} yet (no run has been tracked)")
    return client, experiment


def experiments(pipelines, model: str, limit: int = 20, trials: bool = False) -> list[Experiment]:
    """The model's runs, newest first; tuning trials only when asked (they are children of their pipeline run)."""
    client, experiment = tracking_client(pipelines, model)
    found = [Experiment.of(run) for run in client.search_runs([experiment], limit=limit * (20 if trials else 4))]
    kept = [run for run in found if trials or run.parent is None]
    return kept[:limit]


def select(pipelines, model: str, names: list[str], limit: int) -> list[Experiment]:
    """Runs named by run name, run id or v<version> (the registered version's run, through its lineage); default
    the newest `limit` pipeline runs."""
    if not names:
        return experiments(pipelines, model, limit)
    client, experiment = tracking_client(pipelines, model)
    chosen = []
    for name in names:
        if name.lower().startswith("v") and name[1:].isdigit():
            version = next((v for v in pipelines.models(model, with_serving=False) if v.version == int(name[1:])), None)
            if version is None:
                raise LookupError(f"{model} has no version {name[1:]}")
            run_id = version.lineage.get("mlflow_run_id", "none")
            if run_id == "none":
                raise LookupError(f"version {name[1:]} of {model} has no MLflow run (tracking was off or failed)")
            chosen.append(Experiment.of(client.run(run_id)))
            continue
        run = client.run_tagged(experiment, RUN_TAG, name) or client.run_tagged(experiment, "mlflow.runName", name)
        if run is None:
            try:
                run = client.run(name)
            except tracking.TrackingError:
                raise LookupError(f"no experiment {name!r} of {model}") from None
        chosen.append(Experiment.of(run))
    return chosen


def comparison(runs: list[Experiment], columns: list[str]) -> list[tuple[str, list[str], bool]]:
    """Rows of a side-by-side table: (label, one value per run, whether the runs differ). Lineage first, then
    the metrics (the model's columns first), the hyperparameters, the system."""
    lineage = [("version", "mlops.model_package_version"), ("trigger", "mlops.trigger"),
               ("git commit", "mlflow.source.git.commit"), ("dataset version", "mlops.dataset_version_id"),
               ("dataset sha256", "mlops.dataset_sha256"), ("tuning job", "mlops.tuning_job_arn"),
               ("promoted", "mlops.promote"), ("reproduces", "mlops.reproduces")]
    rows = [(label, [r.tags.get(key, "")[:40] for r in runs]) for label, key in lineage
            if any(r.tags.get(key) for r in runs)]
    metric_names = [*[c for c in columns if any(c in r.metrics for r in runs)],
                    *sorted({k for r in runs for k in r.metrics} - set(columns))]
    rows += [(name, [f"{r.metrics[name]:.6g}" if name in r.metrics else "" for r in runs]) for name in metric_names]
    rows += [(f"param {name}", [r.params.get(name, "") for r in runs])
             for name in sorted({k for r in runs for k in r.params})]
    rows += [(key.removeprefix("system."), [r.tags.get(key, "") for r in runs])
             for key in sorted({k for r in runs for k in r.tags if k.startswith("system.")})]
    return [(label, values, len(set(values)) > 1) for label, values in rows]


# ------------------------------------------------------------------ commands
def _pipelines(env: str):
    from pipelines.client import Pipelines

    return Pipelines(env=env)


def _columns(model: str) -> list[str]:
    from pipelines.spec import metric_columns_of

    return metric_columns_of(model) or []


def _tracked(function):
    """A tracking server that refuses or cannot be reached is an environment problem: one line, exit code 4."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from pipelines.client import EnvironmentProblem

        try:
            return function(*args, **kwargs)
        except tracking.TrackingError as error:
            raise EnvironmentProblem(str(error)) from None
    return wrapper


@_tracked
def list_command(model: str, env: str = EnvOption, limit: int = typer.Option(20, min=1, max=500),
                 trials: bool = typer.Option(False, help="Also the tuning trials (child runs)."),
                 output: str = OutputOption) -> None:
    """The model's experiments, newest first: run, status, version it registered, its metrics."""
    runs = experiments(_pipelines(env), model, limit, trials)
    if output == "json":
        return _emit([vars(run) for run in runs])
    columns = _columns(model) or sorted({k for r in runs for k in r.metrics})[:3]
    table = Table(title=f"{model} experiments ({env})")
    for column in ("run", "started", "status", "trigger", "version", *columns):
        table.add_column(column, overflow="fold")
    for run in runs:
        name = f"  └ {run.name}" if run.parent else run.name
        table.add_row(name, run.started, run.status, run.tags.get("mlops.trigger", ""), run.version,
                      *(f"{run.metrics[c]:.4f}" if c in run.metrics else "" for c in columns))
    console.print(table)


@_tracked
def compare_command(model: str, runs: Optional[list[str]] = typer.Argument(
                        None, help="Run names, MLflow run ids or v<N> (a registered version); default the newest."),
                    env: str = EnvOption, limit: int = typer.Option(5, min=2, max=20),
                    output: str = OutputOption) -> None:
    """Runs side by side: lineage, metrics, hyperparameters and system; rows that differ are highlighted."""
    chosen = select(_pipelines(env), model, list(runs or []), limit)
    if output == "json":
        return _emit({"runs": [vars(run) for run in chosen]})
    table = Table(title=f"{model}: {len(chosen)} experiments ({env})")
    table.add_column("", no_wrap=True)
    for run in chosen:
        table.add_column(run.name, overflow="fold")
    for label, values, differs in comparison(chosen, _columns(model)):
        table.add_row(f"[bold yellow]{label}[/]" if differs else label, *values)
    console.print(table)


# ------------------------------------------------------------------ exact reproduction
def reproduce(pipelines, model: str, version: int, reason: str | None = None, timeout: float = 6 * 3600,
              poll: float = 5.0, say=lambda text: None) -> dict:
    """Starts a run that trains version `version` again exactly (its source snapshot, dataset version, complete
    hyperparameters; PrepareRun reads them from the registry), follows it to its evaluation, and compares every
    metric with the version's own: {"version", "run", "status", "outcome", "verdict", "verified", "original",
    "reproduced", "difference", "identical"}. The run itself judges (EvaluateAgainstChampion, within the run's
    tolerance: verdict reproduced / not_reproduced) and ends there: it registers no version and asks nobody to
    approve, so it never blocks the next run."""
    from pipelines.client import ApiError, RunInProgress

    target = next((v for v in pipelines.models(model, with_serving=False) if v.version == version), None)
    if target is None:
        raise LookupError(f"{model} has no version {version} in {pipelines.env}")
    body = {"reproduce_version": version, "reason": reason or f"reproduce version {version}"}
    try:
        started = pipelines.api(model).call("POST", "/runs", body)
    except ApiError as error:
        if error.status == 409:
            raise RunInProgress(error.message) from None
        raise
    say(f"started {started['name']}: reproducing version {version} of {model}")
    run, deadline = pipelines.status(model, started["name"]), time.monotonic() + timeout
    while run.status == "RUNNING":  # a reproduction never waits for approval (it registers nothing)
        if time.monotonic() > deadline:
            break
        time.sleep(poll)
        run = pipelines.status(model, started["name"])
    original = _report(pipelines, _report_key(pipelines, target.arn))
    reproduced = _report(pipelines, f"runs/{model}/{run.name}/evaluation.json")
    metrics_a, metrics_b = original.get("metrics") or {}, reproduced.get("metrics") or {}
    difference = {name: metrics_b[name] - metrics_a[name] for name in sorted(set(metrics_a) & set(metrics_b))}
    return {"version": version, "model_package_arn": target.arn, "run": run.name, "status": run.status,
            "outcome": run.outcome.summary if run.outcome else None,
            "verdict": run.outcome.kind if run.outcome else None,
            "verified": bool(run.outcome and run.outcome.kind == "reproduced"), "original": metrics_a, "reproduced": metrics_b,
            "difference": difference, "identical": bool(difference) and all(d == 0 for d in difference.values())
            and set(metrics_a) == set(metrics_b)}


def _report_key(pipelines, arn: str) -> str:
    package = pipelines.sagemaker.describe_model_package(ModelPackageName=arn)
    uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    return uri.split("/", 3)[3]


def _report(pipelines, key: str) -> dict:
    """A run's evaluation.json from the artifact bucket (data scientists may read runs/<model>/)."""
    bucket = naming.artifact_bucket(pipelines.env, pipelines.check_account(), pipelines.region)
    try:
        return json.loads(pipelines.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    except pipelines.client("s3").exceptions.NoSuchKey:
        return {}


def reproduce_command(model: str, version: int = typer.Argument(..., min=1, help="The registered version to repeat."),
                      reason: Optional[str] = typer.Option(None, help="Kept in the lineage."),
                      timeout: float = typer.Option(6 * 3600, help="Stop following after this many seconds."),
                      poll: float = typer.Option(5.0, help="Seconds between checks."),
                      env: str = EnvOption, output: str = OutputOption) -> None:
    """Train a registered version again with its own code snapshot, dataset version and hyperparameters (seed
    included), then show every metric beside the original and the difference (0 when it reproduced exactly)."""
    say = console.print if output == "text" else (lambda text: None)
    result = reproduce(_pipelines(env), model, version, reason, timeout, poll, say)
    if output == "json":
        _emit(result)
    else:
        _show_reproduction(model, version, result)
    if not result["verified"]:  # the run's verdict (every metric within the tolerance), not exact equality
        raise typer.Exit(code=1)


def _show_reproduction(model: str, version: int, result: dict) -> None:
    table = Table(title=f"{model} version {version} reproduced by {result['run']} ({result['status']})")
    for column in ("metric", f"version {version}", "reproduction", "difference"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for name, delta in result["difference"].items():
        colour = "green" if delta == 0 else "red"
        table.add_row(name, f"{result['original'][name]:.6g}", f"{result['reproduced'][name]:.6g}",
                      f"[{colour}]{delta:+.3g}[/]")
    console.print(table)
    console.print(f"verdict: [{'green' if result['verified'] else 'red'}]{result['outcome'] or result['status']}[/] "
                  "(nothing registered, nobody asked to approve)", soft_wrap=True)
    if result["identical"]:
        console.print("every metric is identical to the version's, bit for bit")


def register(app: typer.Typer, run_app: typer.Typer, command) -> None:
    """`mlops experiments list|compare` and `mlops run reproduce`, through the CLI's error handling (command)."""
    group = typer.Typer(help="Experiments: the model's MLflow runs (tuning trials included), side by side.",
                        no_args_is_help=True)
    command(group, "list")(list_command)
    command(group, "compare")(compare_command)
    app.add_typer(group, name="experiments")
    command(run_app, "reproduce")(reproduce_command)

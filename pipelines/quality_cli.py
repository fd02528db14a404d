"""`mlops quality MODEL [--env ENV] [--last N] [--output text|json]`: the model's recent quality checks (docs/models.md,
"Ground truth and model quality").

The scheduled quality check files one report per window under `quality/<model>/<stamp>/` of the environment's
artifact bucket (report.json, and report.html: lambdas/quality/report.py); this reads the newest N report.json
(lambdas/quality/history.recent_reports: one listing, N reads) with your session (`--env local`: the running local
server) and prints, oldest first, each check's time, window, labels joined, coverage, objective against the approved
baseline, delta and decision, then the last decision's reason, its retraining and its page.

Exit codes (pipelines/cli.py EXIT_CODES): 0 when the reports were read, also when there is none yet (one line says
so; json: "checks": []) and whatever the last decision (a drop is the report's news, not a failure of the command);
2 an unknown model; 4 no credentials, another account, the environment's bucket missing; 6 AccessDenied.

Registered by pipelines/cli.py through its error handling: `command(app, "quality")(quality_cli.quality_command)`.
"""

from __future__ import annotations

from datetime import datetime

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.markup import escape

from lambdas.quality import history, report
from lambdas.shared import dal
from pipelines import naming
from pipelines.approvals_cli import EnvOption, Output, OutputOption
from pipelines.console import Table, output_console

console = output_console()
DEFAULT_LAST, MOST = 10, 200
DECISION_COLOURS = {"drop": "red", "not_significant": "yellow", "within_tolerance": "green"}


def quality_command(model: str = typer.Argument(..., help="The model whose quality checks to show."),
                    env: str = EnvOption,
                    last: int = typer.Option(DEFAULT_LAST, "--last", "-n", min=1, max=MOST,
                                             help="How many of the newest checks to read."),
                    output: Output = OutputOption) -> None:
    """The model's recent quality checks (labels joined to its captured predictions, against the approved baseline):
    each window's labels, coverage, objective, delta and decision; the last decision's reason and its page."""
    from pipelines.cli import client, emit
    from pipelines.client import model_dir

    model_dir(model)  # an unknown model is exit 2 with close names, not an empty history
    pipelines = client(env)
    bucket, checks = read_checks(pipelines, model, last)
    if Output(output) == Output.json:
        return emit(as_json(model, env, bucket, checks))
    show(model, env, bucket, checks)


def read_checks(pipelines, model: str, last: int) -> tuple[str, history.RecentReports]:
    """(the artifact bucket, the newest `last` reports oldest first), read as the caller."""
    bucket = naming.artifact_bucket(pipelines.env, pipelines.check_account(), pipelines.region)
    try:
        with pipelines.handler_calls():
            return bucket, history.recent_reports(dal.ObjectStore(bucket), model, last)
    except (ClientError, BotoCoreError) as error:
        raise explain(pipelines, bucket, error) from None


def explain(pipelines, bucket: str, error: Exception) -> Exception:
    from pipelines.client import EnvironmentProblem

    if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") == "NoSuchBucket":
        return EnvironmentProblem(f"{pipelines.env} has no artifact bucket {bucket} ({pipelines.region}): is the "
                                  "environment deployed?")
    return pipelines.explain(error)


def as_json(model: str, env: str, bucket: str, checks: history.RecentReports) -> dict:
    summaries = [report.json_summary(check) for check in checks]
    return {"model": model, "environment": env, "location": f"s3://{bucket}/{history.model_prefix(model)}",
            "checks": summaries, "last": summaries[-1] if summaries else None, "skipped": checks.skipped}


def show(model: str, env: str, bucket: str, checks: history.RecentReports) -> None:
    location = f"s3://{bucket}/{history.model_prefix(model)}"
    if not checks:
        console.print(f"{escape(model)}: no quality check recorded in {escape(env)} yet (nothing readable under "
                      f"{escape(location)}); the scheduled quality check writes one per window once labels arrive "
                      f"(`mlops labels put {escape(model)} FILE`)", soft_wrap=True, highlight=False)
    else:
        console.print(table(model, env, checks))
        describe_last(checks[-1])
    for key in checks.skipped:
        console.print(f"[yellow]note:[/] skipped s3://{escape(bucket)}/{escape(key)}: not a quality report (malformed "
                      "JSON or no decision)", soft_wrap=True, highlight=False)


def table(model: str, env: str, checks: list[dict]) -> Table:
    last = checks[-1]
    better = "higher" if last.get("direction", "maximize") == "maximize" else "lower"
    found = Table(title=f"{model} quality ({env}): {last.get('objective', '?')}, {better} is better",
                  caption=f"{len(checks)} check(s), oldest first", caption_justify="left")
    for column, justify in (("checked", "left"), ("window", "left"), ("labels joined", "right"),
                            ("coverage", "right"), ("objective / baseline", "right"), ("delta", "right"),
                            ("decision", "left")):
        found.add_column(column, justify=justify)
    for check in checks:
        found.add_row(*row(report.json_summary(check)))
    return found


def row(summary: dict) -> list[str]:
    """A check's cells: time, window, labels joined, coverage, objective vs baseline, delta, decision."""
    coverage = "–" if summary["coverage"] is None else f"{summary['coverage']:.1%}"
    delta = "–" if summary["delta"] is None else f"{summary['delta']:+.4g}"
    pair = f"{report.figure(summary['value'])} / {report.figure(summary['baseline'])}"
    return [escape(short_time(summary["checked_at"])), escape(window(summary)), f"{summary['labels_joined']:,}",
            coverage, pair, delta, decision(summary["decision"])]


def decision(name: str | None) -> str:
    name = str(name or "-")
    colour = DECISION_COLOURS.get(name)
    words = escape(report.DECISION_WORDS.get(name, name))
    return f"[{colour}]{words}[/]" if colour else words


def describe_last(last: dict) -> None:
    summary = report.json_summary(last)
    console.print(f"last decision ({escape(short_time(summary['checked_at']))}): {decision(summary['decision'])}: "
                  f"{escape(str(summary['reason'] or '-'))}", soft_wrap=True, highlight=False)
    console.print(escape(report.retraining(last)), soft_wrap=True, highlight=False)
    page = summary["html_report_uri"] or "-"
    console.print(f"page: {escape(page)}", soft_wrap=True, highlight=False)


def short_time(iso: str | None) -> str:
    try:
        return f"{datetime.fromisoformat(str(iso).replace('Z', '+00:00')):%Y-%m-%d %H:%M}"
    except ValueError:
        return str(iso or "-")


def window(summary: dict) -> str:
    return f"{short_time(summary['window_start'])} → {short_time(summary['window_end'])}"

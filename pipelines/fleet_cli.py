"""`mlops fleet [--env ENV] [--prices FILE]`: every model of an environment, what needs a person first
(pipelines/fleet.py gathers the rows; docs/studio.md).

Registered by pipelines/cli.py through its error handling: `command(app, "fleet")(fleet_cli.fleet_command)`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from lambdas.shared import cost, pricing
from pipelines.approvals_cli import EnvOption, Output, OutputOption
from pipelines.console import Table, output_console

console = output_console()
NEED_COLOURS = {"approval": "cyan", "failed run": "red", "drift": "yellow", "quality drop": "red"}
QUALITY_COLOURS = {"drop": "red", "not_significant": "yellow"}


def fleet_command(env: str = EnvOption, output: Output = OutputOption,
                  prices: Optional[Path] = typer.Option(
                      None, "--prices", help="A recorded GetProducts response to price from (default: the Price List "
                                             "API; --env local: the recorded pipelines/local/prices/us-east-1.json).")
                  ) -> None:
    """Every model of the environment, one row each, what needs a person first (pending approval, failed last run,
    drift, a quality drop): hosting, the version served and where, the last run, the last drift check, the last
    quality check, pending approvals, and the idle and monthly cost estimate, with totals."""
    from pipelines.cli import EXIT_USAGE, client, emit, fail
    from pipelines.fleet import Prices, fleet

    pipelines = client(env)
    recorded = prices or (_local_prices() if pipelines.local else None)
    try:
        price_list = pricing.load_recorded(recorded) if recorded else None
    except ValueError as error:
        fail(f"--prices: {error}", EXIT_USAGE, Output(output).value, "invalid")
    found = fleet(pipelines, Prices(price_list, pipelines.session, str(recorded) if recorded else "the AWS Price List API"))
    if Output(output) == Output.json:
        return emit(found.as_json())
    show(found)


def _local_prices() -> Path:
    from pipelines.local.price_list import recorded_prices_path

    return recorded_prices_path()


def show(found) -> None:
    table = Table("model", "needs", "hosting", "serves", "endpoint", "last run", "drift", "quality", "pending", "idle/month",
                  "monthly", "note", title=f"{found.env} ({found.region}): {found.totals['models']} models",
                  caption=f"cost: on-demand USD from {escape(found.prices_from)} (`mlops cost MODEL` breaks one down)",
                  caption_justify="left")
    for row in found.rows:
        table.add_row(*cells(row))
    totals = found.totals
    table.add_row("[bold]total[/]", f"{totals['needing_attention']} need a person", "", "", "", "", "", "", "",
                  f"[bold]{cost.usd(totals['idle_per_month'])}[/]", f"[bold]{cost.usd(totals['monthly'])}[/]",
                  "" if totals["priced"] == totals["models"] else f"{totals['priced']} of {totals['models']} priced")
    console.print(table)
    for note in found.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True, highlight=False)


def cells(row) -> list[str]:
    needs = ", ".join(f"[{NEED_COLOURS[need]}]{need}[/]" for need in row.needs)
    money = [cost.usd(value) if value is not None else "-" for value in (row.idle_per_month, row.monthly)]
    note = "; ".join(([f"[red]{escape(row.reason)}[/]"] if row.reason else []) + [escape(note) for note in row.notes])
    return [escape(row.model), needs, row.hosting or "-", served(row), escape(row.endpoint or "-"), last_run(row),
            drift(row), quality(row), pending(row), *money, note]


def served(row) -> str:
    from pipelines.fleet import SERVED_VERSION

    if row.reason:
        return "-"
    if row.stage is None:
        return "nothing (serves none here)"
    if row.version is not None:
        return f"{row.stage} v{row.version}"
    unread = any(note.startswith(SERVED_VERSION) for note in row.notes)
    return f"{row.stage}: {'unknown (see note)' if unread else 'no version yet'}"


def last_run(row) -> str:
    if row.last_run is None:
        return "-"
    outcome = row.last_run_outcome.replace("_", " ")
    return f"{'[red]' + outcome + '[/]' if row.last_run_failed else outcome} {when(row.last_run_at)}"


def drift(row) -> str:
    if row.drift is None:
        return "-"
    verdict = f"[yellow]drift ({len(row.drift.drifted_features)})[/]" if row.drift.drift else "no drift"
    return f"{verdict} {when(row.drift.checked_at)}"


def quality(row) -> str:
    """The last quality check: "drop 0.71/0.85" (red), "dip 0.8/0.85 (not significant)", "ok", "no labels", "-"."""
    if row.quality is None:
        return "-"
    colour = QUALITY_COLOURS.get(row.quality.decision)
    summary = escape(row.quality.summary)
    return f"{f'[{colour}]{summary}[/]' if colour else summary} {when(row.quality.checked_at)}"


def pending(row) -> str:
    if not row.pending_versions:
        return "-"
    return "[cyan]" + ", ".join(f"v{version}" if version is not None else "?" for version in row.pending_versions) + "[/]"


def when(iso: str | None) -> str:
    try:
        return f"({datetime.fromisoformat(iso):%Y-%m-%d %H:%M})"
    except (TypeError, ValueError):
        return ""

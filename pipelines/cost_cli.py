"""`mlops cost MODEL`: what a model's spec costs in an environment, from the AWS Price List (or a recorded response).

Registered by pipelines/cli.py: `app.command("cost")(cost_cli.cost)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError

from lambdas.shared import cost as model
from pipelines.console import Table, output_console
from pipelines.instances import check_region
from pipelines.promotion import load_delivery, serving_stage, spec_in
from pipelines.spec import EnvironmentSpec, SpecError, find_model_dir, load_environments

console = output_console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code=1)


def cost(model_name: str = typer.Argument(..., metavar="MODEL", help="Model folder under pipelines/."),
         env: str = typer.Option("dev", "--env", "-e", help="Environment from cdk.json (its region and overrides)."),
         region: Optional[str] = typer.Option(None, "--region", help="Price in this region instead of the "
                                                                     "environment's (e.g. eu-west-1)."),
         output: str = typer.Option("table", "--output", "-o", help="table or json."),
         prices: Optional[Path] = typer.Option(None, "--prices", help="A recorded GetProducts response to price from "
                                                                       "(offline; no credentials needed)."),
         save_prices: Optional[Path] = typer.Option(None, "--save-prices", help="Write the Price List items fetched "
                                                                                 "to this file (for --prices later)."),
         requests_per_second: float = typer.Option(1.0, "--requests-per-second", help="Assumed production traffic."),
         payload_kb: float = typer.Option(2.0, "--payload-kb", help="Assumed request plus response size (KiB)."),
         runtime_share: float = typer.Option(0.5, "--runtime-share",
                                             help="Assumed training time as a share of max_runtime_s."),
         spot_discount: float = typer.Option(0.7, "--spot-discount", help="Assumed managed spot saving (0-0.9)."),
         extra_runs: float = typer.Option(0.0, "--extra-runs", help="Assumed runs per month beyond the schedule."),
         smoke_minutes: float = typer.Option(15.0, "--smoke-minutes", help="Assumed life of the smoke test's "
                                             "ephemeral endpoint (provisioning, test, delete)."),
         all_environments: bool = typer.Option(False, "--all-environments", help="Each cdk.json environment's idle "
                                               "month (what it serves) and their sum."),
         fleet: bool = typer.Option(False, "--fleet", help="The idle month of 1 to 1,000 such models per environment, "
                                    "dedicated against shared hosting (needs --prices).")) -> None:
    """What the spec costs: idle per month, per retraining run, per 1M predictions (AWS Price List, on-demand)."""
    if output not in ("table", "json"):
        _fail(f"--output {output}: use table or json")
    try:
        assumptions = model.Assumptions(requests_per_second=requests_per_second, payload_kb=payload_kb,
                                        training_runtime_share=runtime_share, spot_discount=spot_discount,
                                        extra_runs_per_month=extra_runs, smoke_minutes=smoke_minutes)
    except ValidationError as error:
        _fail("; ".join(f"{item['loc'][0]}: {item['msg']}" for item in error.errors()))
    if fleet:
        _fleet_table(model_name, prices)
        return
    try:
        environments = {environment.name: environment for environment in load_environments()}
        if env not in environments:
            raise SpecError(f"--env {env}: no such environment in cdk.json; fix: use one of {', '.join(environments)}")
        selected = list(environments.values()) if all_environments else [environments[env]]
        delivery = load_delivery()
    except SpecError as error:
        _fail(str(error))
    results = [_estimate(model_name, environment, delivery, region, prices, save_prices, assumptions)
               for environment in selected]
    if all_environments:
        show_environments(results, output)
        return
    result = results[0]
    if output == "json":
        print(json.dumps(result.as_dict(), indent=2))
    else:
        show(result, source=str(prices) if prices else "AWS Price List API")


def _estimate(model_name: str, environment: EnvironmentSpec, delivery, region: str | None, prices: Path | None,
              save_prices: Path | None, assumptions: model.Assumptions) -> model.Estimate:
    """The model's estimate in one environment: its overrides, the stage it serves and its shared endpoint."""
    from lambdas.shared import pricing

    try:
        spec = spec_in(find_model_dir(model_name), environment, delivery)
        priced_in = _region(region, environment.region)
        pool = environment.shared_hosting
        items = pricing.load_recorded(prices) if prices else pricing.fetch(spec, priced_in, assumptions, pool=pool)
        if save_prices:
            pricing.save_recorded(save_prices, items)
        return model.estimate(spec, priced_in, items, assumptions, environment=environment.name,
                              serving=serving_stage(environment, delivery), pool=pool)
    except (SpecError, pricing.PricingUnavailable, model.PriceNotFound, ValueError) as error:
        _fail(str(error))


def _fleet_table(model_name: str, prices: Path | None) -> None:
    from lambdas.shared import pricing
    from pipelines import cost_table

    if prices is None:
        _fail("--fleet prices from a recorded response; fix: pass --prices pipelines/local/prices/us-east-1.json")
    try:
        print(cost_table.render(model_name, pricing.load_recorded(prices)))
    except (SpecError, model.PriceNotFound, ValueError) as error:
        _fail(str(error))


def _serves(result: model.Estimate) -> str:
    return result.serves or "nothing (smoke tests only)"


def show_environments(results: list[model.Estimate], output: str) -> None:
    """Each environment's idle month and what it serves, and their sum: what the model costs while it waits."""
    idle = sum(result.total(model.IDLE) for result in results)
    if output == "json":
        print(json.dumps({"environments": [result.as_dict() for result in results],
                          "idle_per_month": round(idle, 4)}, indent=2))
        return
    table = Table(title=f"{results[0].model}: idle per month by environment", title_justify="left")
    for column in ("environment", "serves", "hosting", "idle per month", "per month with runs"):
        table.add_column(column, justify="right" if "month" in column else "left")
    for result in results:
        table.add_row(result.environment, _serves(result), result.hosting, model.usd(result.total(model.IDLE)),
                      model.usd(result.monthly))
    table.add_row("[bold]total[/]", "", "", f"[bold]{model.usd(idle)}[/]",
                  f"[bold]{model.usd(sum(result.monthly for result in results))}[/]")
    console.print(table)


def _region(option: str | None, environment_region: str) -> str:
    """--region, checked (a SageMaker region), or the environment's."""
    if option is None:
        return environment_region
    try:
        return check_region(option)
    except ValueError as error:
        raise SpecError(f"--region {option}: {error}") from None


def _section(result: model.Estimate, name: str) -> Table:
    per_run = name == model.PER_RUN
    table = Table(title=name, title_justify="left")
    for column in ("item", "quantity", "expected" if per_run else "USD") + (("maximum",) if per_run else ()):
        table.add_column(column, justify="right" if column in ("USD", "expected", "maximum") else "left",
                         overflow="fold")
    for line in result.section(name):
        row = [line.item, line.quantity, model.usd(line.usd)]
        table.add_row(*row + ([model.usd(line.usd if line.max_usd is None else line.max_usd)] if per_run else []))
    totals = ["[bold]total[/]", "", f"[bold]{model.usd(result.total(name))}[/]"]
    table.add_row(*totals + ([f"[bold]{model.usd(result.max_per_run())}[/]"] if per_run else []))
    return table


def show(result: model.Estimate, source: str) -> None:
    console.print(f"[bold]{result.model}[/] in {result.environment} ({result.region}), serving {_serves(result)}: "
                  f"on-demand USD from {source}")
    for name in (model.IDLE, model.PER_RUN, model.PER_MILLION):
        console.print(_section(result, name))
    share = result.monthly / result.budget_usd
    console.print(f"per month, with {result.runs_per_month:.2f} runs: [bold]{model.usd(result.monthly)}[/] "
                  f"= {share:.0%} of the budget {model.usd(result.budget_usd)} (cost.monthly_budget_usd)")
    verdict = model.budget_verdict(result)
    if verdict:
        console.print(f"[yellow]warning:[/] {verdict}", soft_wrap=True)
    prices = Table(title="unit prices", title_justify="left")
    for column in ("price", "USD", "unit", "usage type", "SKU"):
        prices.add_column(column, overflow="fold")
    for price in result.prices:
        prices.add_row(price.label, f"{price.usd:.10g}", price.unit, price.usagetype, price.sku)
    console.print(prices)
    assumed = ", ".join(f"{name}={value}" for name, value in result.assumptions.model_dump().items())
    console.print(f"assumed: {assumed}", soft_wrap=True)
    for note in result.notes:
        console.print(f"note: {note}", soft_wrap=True)

"""What a fleet costs while it waits: the idle month of 1 to 1,000 models like one model, per cdk.json environment,
with dedicated hosting (the spec as it is) against shared hosting (min_copies 0 on the environment's shared endpoint),
priced from a recorded GetProducts response.

    python -m pipelines.cost_table --prices pipelines/local/prices/us-east-1.json [--model churn]

(also `mlops cost MODEL --fleet --prices FILE`). Each model keeps its own serving endpoint, drift checks and
reconciler; the shared endpoint's min_instances are paid once per environment, whatever the number of models.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from lambdas.shared import cost
from pipelines.promotion import load_delivery, serving_stage, spec_in
from pipelines.spec import EnvironmentSpec, ModelSpec, SharedPoolSpec, find_model_dir, load_environments

FLEET_SIZES = (1, 10, 100, 1000)
HOSTINGS = ("dedicated", "shared")


@dataclass(frozen=True)
class EnvironmentIdle:
    """One environment's idle month: per model of the fleet, and once for the environment (the shared pool)."""

    environment: str
    serves: str | None
    per_model: float
    once: float = 0.0
    pool: SharedPoolSpec = SharedPoolSpec()
    pool_hourly: float = 0.0  # one of the shared endpoint's instances (shared hosting only)
    copy_share: float = 0.0  # of one such instance, per copy of the model

    def fleet(self, models: int) -> float:
        return models * self.per_model + self.once


def shared_at_zero(spec: ModelSpec) -> ModelSpec:
    """The spec hosted as an inference component on the shared endpoint, holding no copy while idle."""
    deployment = spec.deployment
    shared = deployment.shared.model_copy(update={"min_copies": 0})
    return spec.model_copy(update={"deployment": deployment.model_copy(update={"hosting": "shared", "shared": shared})})


def pool_hourly(result: cost.Estimate) -> float:
    (price,) = [price for price in result.prices if price.label.endswith("(shared endpoint)")]
    return price.usd


def environment_idle(model: str, environment: EnvironmentSpec, hosting: str, price_list: list,
                     delivery=None) -> EnvironmentIdle:
    spec = spec_in(find_model_dir(model), environment, delivery)
    spec = shared_at_zero(spec) if hosting == "shared" else spec
    serves, pool = serving_stage(environment, delivery), environment.shared_hosting
    result = cost.estimate(spec, environment.region, price_list, environment=environment.name, serving=serves, pool=pool)
    if hosting == "dedicated":
        return EnvironmentIdle(environment.name, serves, result.total(cost.IDLE))
    hourly = pool_hourly(result)
    return EnvironmentIdle(environment.name, serves, result.total(cost.IDLE), cost.pool_idle_usd(pool, hourly), pool,
                           hourly, cost.copy_share(spec, pool))


def idle_by_environment(model: str, hosting: str, price_list: list) -> list[EnvironmentIdle]:
    delivery = load_delivery()
    return [environment_idle(model, environment, hosting, price_list, delivery) for environment in load_environments()]


def fleet_rows(model: str, price_list: list) -> list[tuple[int, str, list[float]]]:
    """(models, hosting, [idle month per environment..., total]) for each fleet size and hosting."""
    rows = []
    for hosting in HOSTINGS:
        environments = idle_by_environment(model, hosting, price_list)
        for models in FLEET_SIZES:
            amounts = [environment.fleet(models) for environment in environments]
            rows.append((models, hosting, amounts + [sum(amounts)]))
    return sorted(rows, key=lambda row: (row[0], HOSTINGS.index(row[1])))


def pool_lines(model: str, price_list: list) -> list[str]:
    """The shared pools' instance type, price and size per environment, and one copy's share of an instance."""
    return [f"- {idle.environment}: `{idle.pool.instance_type}` at {cost.usd(idle.pool_hourly)}/h "
            f"({cost.usd(idle.pool_hourly * cost.HOURS_PER_MONTH)} a month), {idle.pool.min_instances} to "
            f"{idle.pool.max_instances} instances; one {model} copy takes {idle.copy_share:.3g} of one"
            for idle in idle_by_environment(model, "shared", price_list)]


def render(model: str, price_list: list) -> str:
    """The markdown table and what it assumes."""
    environments = [environment.name for environment in load_environments()]
    header = ["models", "hosting"] + environments + ["total"]
    lines = [f"Idle month (USD, on-demand) of {model}-like models, per environment:", "",
             "| " + " | ".join(header) + " |", "|" + "|".join(["---:"] * len(header)) + "|"]
    for models, hosting, amounts in fleet_rows(model, price_list):
        lines.append(f"| {models:,} | {hosting} | " + " | ".join(cost.usd(amount) for amount in amounts) + " |")
    lines += ["", "Shared: each model at min_copies 0 holds no instance while idle; the environment's shared endpoint "
              "keeps min_instances (paid once, in the figures) and adds instances as copies need them while it serves "
              "traffic:"] + pool_lines(model, price_list)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from lambdas.shared import pricing

    parser = argparse.ArgumentParser(prog="python -m pipelines.cost_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prices", required=True, help="A recorded GetProducts response")
    parser.add_argument("--model", default="churn", help="The model folder under pipelines/ (default churn)")
    arguments = parser.parse_args(argv)
    print(render(arguments.model, pricing.load_recorded(arguments.prices)))


if __name__ == "__main__":
    main()

"""What a model's spec costs in an environment, from AWS Price List prices: idle per month, per retraining run, and
per million predictions. Pure: no AWS calls here.

`price_requests(spec, region)` lists the GetProducts requests the spec needs (lambdas/shared/pricing.py makes them,
or a recorded response stands in for them); `estimate(spec, region, price_list)` prices the spec from the PriceList
items (JSON strings, as GetProducts returns them). Quantities the spec does not fix (traffic, payload size, how long
training takes) are explicit `Assumptions`, printed with every estimate.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.spec import ModelSpec

HOURS_PER_MONTH = 730.0  # the month of the AWS pricing pages: 24 x 365 / 12
DAYS_PER_MONTH = 365 / 12
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
GIB = 1024 ** 3
STAGES = ("staging", "prod")  # each runs an endpoint at min_capacity (lambdas/endpoint/logic.py endpoint_config)
# The artifact bucket's lifecycle (stacks/constructs/storage.py, rules age-data-capture and expire-old-versions):
# captured files spend 30 days in S3 Standard, then Standard-IA until they expire at 365 days, and stay 90 more
# days as noncurrent versions (the bucket is versioned).
CAPTURE_STANDARD_DAYS, CAPTURE_EXPIRY_DAYS, NONCURRENT_DAYS = 30, 365, 90
# Lambda memory of the scheduled functions (stacks/model_stack.py drift hook; approval reconciler default).
DRIFT_FUNCTION_MB, RECONCILER_MB = 1769, 512
# EventBridge Scheduler pricing: 14 million invocations a month free per account, then $1.00 per million
# (https://aws.amazon.com/eventbridge/pricing/): about 3,700 models' schedules fit in the free tier.
SCHEDULER_FREE_INVOCATIONS = 14_000_000
RECONCILE_SCHEDULE = "rate(15 minutes)"  # the approval reconciler's (stacks/constructs/approval.py), spread at deploy

IDLE, PER_RUN, PER_MILLION = "idle per month", "per retraining run", "per 1M predictions"


class PriceNotFound(LookupError):
    """The price list holds no (or no single) on-demand price for something the spec uses."""


class Assumptions(BaseModel):
    """What the spec does not say; every estimate prints these beside its figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_second: float = Field(default=1.0, ge=0, le=1_000_000, description="Average production traffic")
    payload_kb: float = Field(default=2.0, gt=0, le=6144, description="Request plus response of one prediction, in KiB")
    training_runtime_share: float = Field(default=0.5, gt=0, le=1,
                                          description="Expected training time as a share of training.max_runtime_s")
    spot_discount: float = Field(default=0.7, ge=0, lt=1,
                                 description="Managed spot saving against on-demand (AWS quotes up to 90%)")
    extra_runs_per_month: float = Field(default=0, ge=0, le=10_000,
                                        description="Runs beyond the retraining schedule (manual, drift-triggered)")
    rollout_minutes: float = Field(default=10, ge=0, le=600,
                                   description="Provisioning of the new blue/green fleet before traffic shifts")
    transform_minutes: float = Field(default=15, ge=0, le=10_000, description="One batch transform job")
    serverless_seconds_per_prediction: float = Field(default=0.2, gt=0, le=60)
    lambda_architecture: Literal["x86_64", "arm64"] = "arm64"  # stacks/constructs/functions.py ARCHITECTURE
    pipeline_lambda_gb_seconds: float = Field(default=120, ge=0, description="All pipeline functions of one run")
    pipeline_lambda_invocations: int = Field(default=15, ge=0)
    state_transitions_per_run: int = Field(default=80, ge=0, description="Step Functions standard workflow")
    drift_check_seconds: float = Field(default=20, ge=0)
    reconcile_seconds: float = Field(default=1, ge=0)


@dataclass(frozen=True)
class ProductRequest:
    """One GetProducts request: a service code and TERM_MATCH filters (productFamily or product attributes)."""

    service_code: str
    filters: tuple[tuple[str, str], ...]

    def as_parameters(self) -> dict:
        return {"ServiceCode": self.service_code, "FormatVersion": "aws_v1",
                "Filters": [{"Type": "TERM_MATCH", "Field": name, "Value": value} for name, value in self.filters]}

    def matches(self, item: dict) -> bool:
        """What TERM_MATCH keeps: the item of this service whose field equals each value (case-insensitive)."""
        product = item.get("product") or {}
        if str(item.get("serviceCode") or product.get("attributes", {}).get("servicecode", "")) != self.service_code:
            return False
        return all(str(_field(product, name)).casefold() == value.casefold() for name, value in self.filters)


@dataclass(frozen=True)
class PriceKey:
    """Which product of a request's answer is meant: attribute values, and the usage type after its region prefix
    ('Host:ml.m5.large' matches 'USE1-Host:ml.m5.large'; us-east-1 usage types of older services have no prefix)."""

    label: str
    request: ProductRequest
    usage: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    def selects(self, item: dict) -> bool:
        product = item.get("product") or {}
        attributes = product.get("attributes") or {}
        if any(str(attributes.get(name, "")) != value for name, value in self.attributes):
            return False
        usage = str(attributes.get("usagetype", ""))
        return self.usage is None or usage == self.usage or usage.endswith(f"-{self.usage}")


@dataclass(frozen=True)
class Price:
    label: str
    usd: float
    unit: str
    sku: str
    usagetype: str
    effective: str = ""


def _field(product: dict, name: str) -> str:
    return product.get("productFamily", "") if name == "productFamily" else (product.get("attributes") or {}).get(name, "")


def _sagemaker_instances(region: str, instance_type: str) -> ProductRequest:
    return ProductRequest("AmazonSageMaker", (("regionCode", region), ("productFamily", "ML Instance"),
                                              ("instanceName", instance_type)))


def _lambda_groups(assumptions: Assumptions) -> tuple[str, str]:
    suffix = "-ARM" if assumptions.lambda_architecture == "arm64" else ""
    return f"AWS-Lambda-Duration{suffix}", f"AWS-Lambda-Requests{suffix}"


def price_keys(spec: ModelSpec, region: str, assumptions: Assumptions = Assumptions()) -> dict[str, PriceKey]:
    """Every price the spec's cost depends on, by name."""
    keys: dict[str, PriceKey] = {}
    training = spec.training.instance_type
    keys["training"] = PriceKey(f"SageMaker training {training}", _sagemaker_instances(region, training), f"Train:{training}")
    deployment = spec.deployment
    if deployment.serverless:
        memory_gb = deployment.serverless.memory_mb // 1024
        keys["serverless"] = PriceKey(
            f"SageMaker serverless inference {memory_gb} GB",
            ProductRequest("AmazonSageMaker", (("regionCode", region), ("productFamily", "ML Serverless"))),
            f"ServerlessInf:Mem-{memory_gb}GB")
    else:
        hosting = deployment.instance_type
        keys["hosting"] = PriceKey(f"SageMaker hosting {hosting}", _sagemaker_instances(region, hosting), f"Host:{hosting}")
    if deployment.batch_transform:
        kind = deployment.instance_type
        keys["transform"] = PriceKey(f"SageMaker batch transform {kind}", _sagemaker_instances(region, kind), f"Tsform:{kind}")
    if deployment.data_capture_percent > 0:
        storage = ProductRequest("AmazonS3", (("regionCode", region), ("productFamily", "Storage")))
        keys["s3_standard"] = PriceKey("S3 Standard storage", storage, "TimedStorage-ByteHrs", (("volumeType", "Standard"),))
        keys["s3_ia"] = PriceKey("S3 Standard-IA storage", storage, "TimedStorage-SIA-ByteHrs",
                                 (("volumeType", "Standard - Infrequent Access"),))
    functions = ProductRequest("AWSLambda", (("regionCode", region), ("productFamily", "Serverless")))
    duration, requests = _lambda_groups(assumptions)
    keys["lambda_gb_second"] = PriceKey(f"Lambda duration ({assumptions.lambda_architecture})", functions,
                                        attributes=(("group", duration),))
    keys["lambda_request"] = PriceKey(f"Lambda requests ({assumptions.lambda_architecture})", functions,
                                      attributes=(("group", requests),))
    keys["state_transition"] = PriceKey(
        "Step Functions state transitions",
        ProductRequest("AmazonStates", (("regionCode", region), ("productFamily", "AWS Step Functions"))), "StateTransition")
    return keys


def price_requests(spec: ModelSpec, region: str, assumptions: Assumptions = Assumptions()) -> list[ProductRequest]:
    """The distinct GetProducts requests the spec needs (one per SageMaker instance type, one per other service)."""
    return list(dict.fromkeys(key.request for key in price_keys(spec, region, assumptions).values()))


def parse_price_list(price_list: list[str | dict]) -> list[dict]:
    """GetProducts' PriceList items are JSON documents encoded as strings; recorded files may hold either form."""
    items = []
    for raw in price_list:
        item = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(item, dict) or not isinstance(item.get("product"), dict):
            raise PriceNotFound("a PriceList item is not a product document (product, terms); "
                                "fix: pass a GetProducts response with FormatVersion aws_v1")
        items.append(item)
    return items


def _first_tier(item: dict) -> list[tuple[float, str, str]]:
    """(USD, unit, effective date) of each on-demand term's lowest tier priced above zero: a model's small volumes sit
    there (S3's first 50 TB, Lambda's first 6 billion GB-s); a zero price is a free tier or free-tier SKU, not the rate."""
    tiers = []
    for term in ((item.get("terms") or {}).get("OnDemand") or {}).values():
        priced = [(float(str(dimension.get("beginRange", "0")).replace("Inf", "inf")), dimension)
                  for dimension in (term.get("priceDimensions") or {}).values()
                  if float((dimension.get("pricePerUnit") or {}).get("USD", "0") or 0) > 0]
        if priced:
            _, dimension = min(priced, key=lambda pair: pair[0])
            tiers.append((float(dimension["pricePerUnit"]["USD"]), str(dimension.get("unit", "")),
                          str(term.get("effectiveDate", ""))))
    return tiers


def find_price(items: list[dict], key: PriceKey) -> Price:
    """The one on-demand price of the products the key selects among those its request returns."""
    candidates = []
    for item in items:
        if key.request.matches(item) and key.selects(item):
            product = item["product"]
            attributes = product.get("attributes") or {}
            if attributes.get("locationType", "AWS Region") != "AWS Region":
                continue  # Outposts and Local Zones share usage types with their region
            candidates += [Price(key.label, usd, unit, str(product.get("sku", "")), str(attributes.get("usagetype", "")),
                                 effective) for usd, unit, effective in _first_tier(item)]
    prices = {round(price.usd, 12) for price in candidates}
    if len(prices) != 1:
        region = dict(key.request.filters).get("regionCode", "?")
        found = "no on-demand price" if not prices else f"{len(prices)} different prices ({sorted(prices)})"
        raise PriceNotFound(f"{key.label} in {region}: {found} in the price list (usage type {key.usage or dict(key.attributes)}); "
                            "fix: check that the service offers it in this region, or refresh the recorded prices")
    return candidates[0]


# ------------------------------------------------------------------ schedules

_RATE = re.compile(r"^rate\((\d+) (minute|hour|day)s?\)$")
_NAMES = {name: number for number, name in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_NAMES |= {name: number for number, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (1, 7))


def _count(text: str, lowest: int, highest: int) -> float:
    """How many values one cron field takes (L, W and # mean one day of the month)."""
    total = 0.0
    for part in text.upper().split(","):
        if any(mark in part for mark in ("L", "W", "#")):
            total += 1
            continue
        base, _, step = part.partition("/")
        if base in ("*", "?"):
            start, end = lowest, highest
        else:
            first, _, last = base.partition("-")
            start = _NAMES.get(first) or int(first)
            end = (_NAMES.get(last) or int(last)) if last else (highest if step else start)
        total += math.floor((end - start) / int(step or 1)) + 1
    return total


def runs_per_month(schedule: str | None) -> float:
    """How often an EventBridge schedule fires in an average month (0 without a schedule)."""
    if not schedule:
        return 0.0
    rate = _RATE.match(schedule)
    if rate:
        minutes = int(rate.group(1)) * {"minute": 1, "hour": 60, "day": 1440}[rate.group(2)]
        return HOURS_PER_MONTH * 60 / minutes
    fields = schedule.removeprefix("cron(").removesuffix(")").split()
    minutes, hours, day_of_month, months, day_of_week = (
        _count(text, *bounds) for text, bounds in zip(fields, _CRON_RANGES))
    if fields[2] == "?":  # weekdays: each one occurs 365 / 7 / 12 times a month
        days = day_of_week * 365 / 7 / 12 if not any(mark in fields[4] for mark in ("L", "#")) else day_of_week
    else:
        days = DAYS_PER_MONTH if fields[2] in ("*", "?") else day_of_month
    return minutes * hours * days * months / 12


# ------------------------------------------------------------------ the estimate

@dataclass(frozen=True)
class Line:
    section: str
    item: str
    quantity: str
    usd: float
    max_usd: float | None = None  # per run: the bound the spec sets (training at max_runtime_s); else = usd


@dataclass
class Estimate:
    model: str
    environment: str
    region: str
    lines: list[Line]
    prices: list[Price]
    assumptions: Assumptions
    runs_per_month: float
    budget_usd: float
    notes: list[str] = field(default_factory=list)

    def section(self, name: str) -> list[Line]:
        return [line for line in self.lines if line.section == name]

    def total(self, name: str) -> float:
        return sum(line.usd for line in self.section(name))

    def max_per_run(self) -> float:
        return sum(line.usd if line.max_usd is None else line.max_usd for line in self.section(PER_RUN))

    @property
    def monthly(self) -> float:
        """Idle per month plus the month's runs at their expected cost."""
        return self.total(IDLE) + self.runs_per_month * self.total(PER_RUN)

    def as_dict(self) -> dict:
        return {"model": self.model, "environment": self.environment, "region": self.region,
                "currency": "USD", "idle_per_month": round(self.total(IDLE), 4),
                "per_run_expected": round(self.total(PER_RUN), 4), "per_run_max": round(self.max_per_run(), 4),
                "per_million_predictions": round(self.total(PER_MILLION), 4),
                "runs_per_month": round(self.runs_per_month, 3), "monthly": round(self.monthly, 4),
                "monthly_budget": self.budget_usd, "lines": [asdict(line) for line in self.lines],
                "prices": [asdict(price) for price in self.prices],
                "assumptions": self.assumptions.model_dump(), "notes": self.notes}


def _lambda_usd(gb_seconds: float, invocations: float, prices: dict[str, Price]) -> float:
    return gb_seconds * prices["lambda_gb_second"].usd + invocations * prices["lambda_request"].usd


def _capture_gb(predictions: float, spec: ModelSpec, assumptions: Assumptions) -> float:
    return predictions * spec.deployment.data_capture_percent / 100 * assumptions.payload_kb * 1024 / GIB


def capture_storage_months() -> tuple[float, float]:
    """(months in S3 Standard, months in Standard-IA) one captured GB is stored for, per the bucket's lifecycle."""
    return (CAPTURE_STANDARD_DAYS / DAYS_PER_MONTH,
            (CAPTURE_EXPIRY_DAYS - CAPTURE_STANDARD_DAYS + NONCURRENT_DAYS) / DAYS_PER_MONTH)


def _capture_usd_per_gb(prices: dict[str, Price]) -> float:
    standard, infrequent = capture_storage_months()
    return standard * prices["s3_standard"].usd + infrequent * prices["s3_ia"].usd


def _idle(spec: ModelSpec, prices: dict[str, Price], assumptions: Assumptions) -> list[Line]:
    deployment, lines = spec.deployment, []
    for stage in STAGES:
        if deployment.serverless:
            lines.append(Line(IDLE, f"{stage} endpoint (serverless)", "billed per inference second only", 0.0))
        else:
            count, kind = deployment.min_capacity, deployment.instance_type
            lines.append(Line(IDLE, f"{stage} endpoint", f"{count} x {kind} x {HOURS_PER_MONTH:g} h",
                              count * HOURS_PER_MONTH * prices["hosting"].usd))
    if deployment.data_capture_percent > 0:
        monthly_gb = _capture_gb(assumptions.requests_per_second * SECONDS_PER_MONTH, spec, assumptions)
        lines.append(Line(IDLE, "data capture storage (steady state)",
                          f"{monthly_gb:.2f} GB/month captured ({deployment.data_capture_percent}% of "
                          f"{assumptions.requests_per_second:g} req/s x {assumptions.payload_kb:g} KiB)",
                          monthly_gb * _capture_usd_per_gb(prices)))
    if spec.drift.enabled:
        checks = runs_per_month(spec.drift.schedule)
        lines.append(Line(IDLE, "drift checks (Lambda)", f"{checks:,.0f} x {DRIFT_FUNCTION_MB} MB x "
                          f"{assumptions.drift_check_seconds:g} s ({spec.drift.schedule})",
                          _lambda_usd(checks * DRIFT_FUNCTION_MB / 1024 * assumptions.drift_check_seconds, checks, prices)))
    checks = runs_per_month(RECONCILE_SCHEDULE)
    lines.append(Line(IDLE, "approval reconciler (Lambda)", f"{checks:,.0f} x {RECONCILER_MB} MB x "
                      f"{assumptions.reconcile_seconds:g} s ({RECONCILE_SCHEDULE})",
                      _lambda_usd(checks * RECONCILER_MB / 1024 * assumptions.reconcile_seconds, checks, prices)))
    fired = checks + (runs_per_month(spec.drift.schedule) if spec.drift.enabled else 0) + \
        (runs_per_month(spec.retraining.schedule) if spec.retraining.schedule else 0)
    lines.append(Line(IDLE, "schedules (EventBridge Scheduler)",
                      f"{fired:,.0f} invocations; an account's first {SCHEDULER_FREE_INVOCATIONS / 1e6:g} million "
                      "a month are free", 0.0))
    return lines


def _overlap_minutes(spec: ModelSpec, assumptions: Assumptions) -> float:
    """How long a blue/green update runs the new fleet beside the old: provisioning, the shifting waits, the bake."""
    deployment = spec.deployment
    waits = {"canary": 1, "linear": math.ceil(100 / deployment.linear_step_percent) - 1}.get(deployment.strategy, 0)
    return assumptions.rollout_minutes + waits * deployment.wait_minutes + deployment.bake_minutes


def _per_run(spec: ModelSpec, prices: dict[str, Price], assumptions: Assumptions) -> list[Line]:
    training, deployment = spec.training, spec.deployment
    hourly = training.instance_count * prices["training"].usd
    expected_h, max_h = training.max_runtime_s * assumptions.training_runtime_share / 3600, training.max_runtime_s / 3600
    lines = [Line(PER_RUN, "training (on-demand rate)",
                  f"{training.instance_count} x {training.instance_type} x {expected_h:.2f} h (max {max_h:.2f} h)",
                  hourly * expected_h, hourly * max_h)]
    if training.use_spot:
        saving = hourly * expected_h * assumptions.spot_discount
        lines.append(Line(PER_RUN, "managed spot saving", f"{assumptions.spot_discount:.0%} assumed off on-demand",
                          -saving, 0.0))
    if not deployment.serverless:
        minutes = _overlap_minutes(spec, assumptions)
        lines.append(Line(PER_RUN, "blue/green overlap (approved runs)",
                          f"{len(STAGES)} stages x {deployment.min_capacity} x {deployment.instance_type} x {minutes:g} min",
                          len(STAGES) * deployment.min_capacity * prices["hosting"].usd * minutes / 60))
    if deployment.batch_transform:
        lines.append(Line(PER_RUN, "batch transform", f"1 x {deployment.instance_type} x {assumptions.transform_minutes:g} min",
                          prices["transform"].usd * assumptions.transform_minutes / 60))
    lines.append(Line(PER_RUN, "pipeline functions (Lambda)",
                      f"{assumptions.pipeline_lambda_invocations} invocations, {assumptions.pipeline_lambda_gb_seconds:g} GB-s",
                      _lambda_usd(assumptions.pipeline_lambda_gb_seconds, assumptions.pipeline_lambda_invocations, prices)))
    lines.append(Line(PER_RUN, "state machine (Step Functions)", f"{assumptions.state_transitions_per_run} state transitions",
                      assumptions.state_transitions_per_run * prices["state_transition"].usd))
    return lines


def _per_million(spec: ModelSpec, prices: dict[str, Price], assumptions: Assumptions) -> list[Line]:
    deployment, lines = spec.deployment, []
    if deployment.serverless:
        lines.append(Line(PER_MILLION, "serverless inference", f"1M x {assumptions.serverless_seconds_per_prediction:g} s "
                          f"at {deployment.serverless.memory_mb} MB",
                          1e6 * assumptions.serverless_seconds_per_prediction * prices["serverless"].usd))
    else:
        per_hour = deployment.target_invocations_per_instance * 60
        lines.append(Line(PER_MILLION, "endpoint at min capacity, at its scaling target",
                          f"{1e6 / per_hour:,.1f} instance-h of {deployment.instance_type} "
                          f"({deployment.target_invocations_per_instance}/min per instance)",
                          1e6 / per_hour * prices["hosting"].usd))
    if deployment.data_capture_percent > 0:
        gigabytes = _capture_gb(1e6, spec, assumptions)
        lines.append(Line(PER_MILLION, "data capture storage (lifetime)", f"{gigabytes:.2f} GB kept per the lifecycle",
                          gigabytes * _capture_usd_per_gb(prices)))
    return lines


def _notes(spec: ModelSpec, prices: dict[str, Price], assumptions: Assumptions, runs: float) -> list[str]:
    notes = [f"runs per month: {runs:.2f} (schedule {spec.retraining.schedule or 'none'}"
             f" + {assumptions.extra_runs_per_month:g} assumed others)",
             "one training job per run: the spec declares no hyperparameter tuning",
             "not included: ML storage volumes, endpoint data processing (per GB in and out), CloudWatch, KMS requests, "
             "data transfer, and the registry stack's shared key, buckets and table"]
    if not spec.deployment.serverless and assumptions.requests_per_second > 0:
        monthly = assumptions.requests_per_second * SECONDS_PER_MONTH
        idle = spec.deployment.min_capacity * HOURS_PER_MONTH * prices["hosting"].usd
        notes.append(f"at the assumed {assumptions.requests_per_second:g} req/s the production endpoint costs "
                     f"${idle / monthly * 1e6:,.2f} per 1M predictions")
    if spec.training.use_spot:
        notes.append("spot: the maximum per run prices training at the on-demand rate for max_runtime_s (spot never "
                     "costs more)")
    return notes


def estimate(spec: ModelSpec, region: str, price_list: list[str | dict], assumptions: Assumptions = Assumptions(),
             environment: str = "") -> Estimate:
    """The spec priced from a GetProducts PriceList; PriceNotFound names any price it lacks."""
    items = parse_price_list(price_list)
    prices = {name: find_price(items, key) for name, key in price_keys(spec, region, assumptions).items()}
    runs = runs_per_month(spec.retraining.schedule) + assumptions.extra_runs_per_month
    lines = _idle(spec, prices, assumptions) + _per_run(spec, prices, assumptions) + _per_million(spec, prices, assumptions)
    return Estimate(spec.name, environment, region, lines, list(prices.values()), assumptions, runs,
                    spec.cost.monthly_budget_usd, _notes(spec, prices, assumptions, runs))


BUDGET_FIRST_ALERT = 0.8  # stacks/constructs/budgets.py: the first ACTUAL notification


def budget_verdict(result: Estimate) -> str | None:
    """A warning when the estimate reaches the budget's first alert; None when it fits."""
    share = result.monthly / result.budget_usd
    if share < BUDGET_FIRST_ALERT:
        return None
    return (f"the estimate (${result.monthly:,.2f}/month) is {share:.0%} of the budget (${result.budget_usd:,.2f}), past "
            f"its {BUDGET_FIRST_ALERT:.0%} alert; fix: raise cost.monthly_budget_usd to at least "
            f"{math.ceil(result.monthly / BUDGET_FIRST_ALERT / 10) * 10}")


def usd(value: float) -> str:
    """$1,234.57; small amounts keep four decimals ($0.0042) so schedules do not show as $0.00."""
    if value != 0 and abs(value) < 0.01:
        return f"-${abs(value):.4f}" if value < 0 else f"${value:.4f}"
    return f"-${abs(value):,.2f}" if value < 0 else f"${value:,.2f}"


def text_lines(result: Estimate) -> list[str]:
    """The estimate as fixed-width plain text (the approval email)."""
    where = f"{result.environment}, {result.region}" if result.environment else result.region
    lines = [f"Cost estimate of {result.model} ({where}, AWS Price List on-demand USD):"]
    for name in (IDLE, PER_RUN, PER_MILLION):
        lines.append(f"  {name}:")
        lines += [f"    {line.item:<48}{usd(line.usd):>12}" for line in result.section(name)]
        total = f"{usd(result.total(name)):>12}"
        if name == PER_RUN:
            total += f"  (max {usd(result.max_per_run())})"
        lines.append(f"    {'total':<48}{total}")
    lines.append(f"  per month with {result.runs_per_month:.2f} runs: {usd(result.monthly)} "
                 f"(budget {usd(result.budget_usd)})")
    verdict = budget_verdict(result)
    if verdict:
        lines.append(f"  warning: {verdict}")
    lines.append(f"  assumed: {result.assumptions.requests_per_second:g} req/s, {result.assumptions.payload_kb:g} KiB per "
                 f"prediction, training {result.assumptions.training_runtime_share:.0%} of max_runtime_s"
                 + (f", spot {result.assumptions.spot_discount:.0%} off" if any(
                     line.item == "managed spot saving" for line in result.lines) else ""))
    return lines

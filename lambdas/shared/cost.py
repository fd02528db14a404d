"""What a model's spec costs in an environment, from AWS Price List prices: idle per month, per retraining run, and
per million predictions. Pure: no AWS calls here.

`price_requests(spec, region)` lists the GetProducts requests the spec needs (lambdas/shared/pricing.py makes them,
or a recorded response stands in for them); `estimate(spec, region, price_list)` prices the spec from the PriceList
items (JSON strings, as GetProducts returns them), in an environment that serves one stage (`serving`: "prod",
"staging", or None for the training environment of a delivery, which serves nothing: pipelines/promotion.serving_stage).
A dedicated model keeps one endpoint at min_capacity there; a shared-hosted one keeps min_copies on the environment's
shared endpoint (`pool`, cdk.json shared_hosting). The smoke test's endpoint is ephemeral: a per-run cost, not idle. Quantities the spec does not fix (traffic, payload size, how long
training takes) are explicit `Assumptions`, printed with every estimate.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.instances import hosting_resources
from pipelines.spec import ModelSpec, SharedPoolSpec, rate_minutes

HOURS_PER_MONTH = 730.0  # the month of the AWS pricing pages: 24 x 365 / 12
DAYS_PER_MONTH = 365 / 12
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
GIB = 1024 ** 3
# The artifact bucket's lifecycle (stacks/constructs/storage.py, rules age-data-capture and expire-old-versions):
# captured files spend 30 days in S3 Standard, then Standard-IA until they expire at 365 days, and stay 90 more
# days as noncurrent versions (the bucket is versioned).
CAPTURE_STANDARD_DAYS, CAPTURE_EXPIRY_DAYS, NONCURRENT_DAYS = 30, 365, 90
# Lambda memory of the scheduled functions (stacks/constructs/drift.py, quality.py; approval reconciler default).
DRIFT_FUNCTION_MB, QUALITY_FUNCTION_MB, RECONCILER_MB = 1769, 1769, 512
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
    # Creating an endpoint takes about 8-10 minutes before it is InService; the smoke test itself and the delete
    # take a few more. The ephemeral endpoint is billed from creation to deletion.
    smoke_minutes: float = Field(default=15, ge=0, le=600,
                                 description="The smoke test's ephemeral endpoint: provisioning, the test, the delete")
    transform_minutes: float = Field(default=15, ge=0, le=10_000, description="One batch transform job")
    serverless_seconds_per_prediction: float = Field(default=0.2, gt=0, le=60)
    lambda_architecture: Literal["x86_64", "arm64"] = "arm64"  # stacks/constructs/functions.py ARCHITECTURE
    pipeline_lambda_gb_seconds: float = Field(default=120, ge=0, description="All pipeline functions of one run")
    pipeline_lambda_invocations: int = Field(default=15, ge=0)
    state_transitions_per_run: int = Field(default=80, ge=0, description="Step Functions standard workflow")
    drift_check_seconds: float = Field(default=20, ge=0)
    quality_check_seconds: float = Field(default=20, ge=0, description="One window's join and bootstrap")
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


def is_shared(spec: ModelSpec) -> bool:
    return spec.deployment.hosting == "shared"


def capture_percent(spec: ModelSpec, pool: SharedPoolSpec) -> int:
    """The sampling rate of the model's traffic: its own endpoint's, or the shared endpoint's one rate."""
    return pool.data_capture_percent if is_shared(spec) else spec.deployment.data_capture_percent


def copy_share(spec: ModelSpec, pool: SharedPoolSpec) -> float:
    """The share of one pool instance a copy holds: its CPUs or its memory, whichever fills the instance first."""
    copy, host = spec.deployment.shared, hosting_resources(pool.instance_type)
    return max(copy.cpus / host.vcpus, copy.memory_mb / host.memory_mib)


def price_keys(spec: ModelSpec, region: str, assumptions: Assumptions = Assumptions(),
               pool: SharedPoolSpec | None = None) -> dict[str, PriceKey]:
    """Every price the spec's cost depends on, by name (pool: the environment's shared endpoint, default its default)."""
    pool = pool or SharedPoolSpec()
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
    elif is_shared(spec):
        kind = pool.instance_type
        keys["pool"] = PriceKey(f"SageMaker hosting {kind} (shared endpoint)", _sagemaker_instances(region, kind),
                                f"Host:{kind}")
    else:
        hosting = deployment.instance_type
        keys["hosting"] = PriceKey(f"SageMaker hosting {hosting}", _sagemaker_instances(region, hosting), f"Host:{hosting}")
    if deployment.batch_transform:
        kind = deployment.instance_type
        keys["transform"] = PriceKey(f"SageMaker batch transform {kind}", _sagemaker_instances(region, kind), f"Tsform:{kind}")
    if capture_percent(spec, pool) > 0:
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


def price_requests(spec: ModelSpec, region: str, assumptions: Assumptions = Assumptions(),
                   pool: SharedPoolSpec | None = None) -> list[ProductRequest]:
    """The distinct GetProducts requests the spec needs (one per SageMaker instance type, one per other service)."""
    return list(dict.fromkeys(key.request for key in price_keys(spec, region, assumptions, pool).values()))


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
    minutes = rate_minutes(schedule)
    if minutes is not None:
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
    serves: str | None = "prod"  # the stage the environment serves; None: nothing (pipelines/promotion.serving_stage)
    hosting: str = "dedicated"

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
                "serves": self.serves, "hosting": self.hosting, "runs_per_month": round(self.runs_per_month, 3), "monthly": round(self.monthly, 4),
                "monthly_budget": self.budget_usd, "lines": [asdict(line) for line in self.lines],
                "prices": [asdict(price) for price in self.prices],
                "assumptions": self.assumptions.model_dump(), "notes": self.notes}


def _lambda_usd(gb_seconds: float, invocations: float, prices: dict[str, Price]) -> float:
    return gb_seconds * prices["lambda_gb_second"].usd + invocations * prices["lambda_request"].usd


@dataclass(frozen=True)
class Placement:
    """Where the environment runs the model: the stage it serves (None: nothing) and its shared endpoint."""

    environment: str
    serving: str | None
    pool: SharedPoolSpec

    def captured_percent(self, spec: ModelSpec) -> int:
        """Only a serving endpoint captures traffic (the smoke test's ephemeral one does not)."""
        return capture_percent(spec, self.pool) if self.serving else 0

    def checks_drift(self, spec: ModelSpec) -> bool:
        return bool(self.serving) and spec.drift.enabled

    def checks_quality(self, spec: ModelSpec) -> bool:
        return bool(self.serving) and spec.quality.enabled


def _capture_gb(predictions: float, percent: int, assumptions: Assumptions) -> float:
    return predictions * percent / 100 * assumptions.payload_kb * 1024 / GIB


def capture_storage_months() -> tuple[float, float]:
    """(months in S3 Standard, months in Standard-IA) one captured GB is stored for, per the bucket's lifecycle."""
    return (CAPTURE_STANDARD_DAYS / DAYS_PER_MONTH,
            (CAPTURE_EXPIRY_DAYS - CAPTURE_STANDARD_DAYS + NONCURRENT_DAYS) / DAYS_PER_MONTH)


def _capture_usd_per_gb(prices: dict[str, Price]) -> float:
    standard, infrequent = capture_storage_months()
    return standard * prices["s3_standard"].usd + infrequent * prices["s3_ia"].usd


def _copy_hourly(spec: ModelSpec, where: Placement, prices: dict[str, Price]) -> float:
    """One copy's share of a pool instance's hourly price."""
    return copy_share(spec, where.pool) * prices["pool"].usd


def _copies_quantity(spec: ModelSpec, where: Placement, copies: int, duration: str) -> str:
    return (f"{copies} x {copy_share(spec, where.pool):.3g} of {where.pool.instance_type} x {duration} "
            f"({spec.deployment.shared.cpus:g} CPU, {spec.deployment.shared.memory_mb} MB a copy)")


def _serving_endpoint(spec: ModelSpec, where: Placement, prices: dict[str, Price]) -> Line:
    deployment, stage = spec.deployment, where.serving
    if stage is None:
        return Line(IDLE, "serving endpoint (none)", f"{where.environment or 'the environment'} serves nothing; the "
                    "smoke test's endpoint lives only during a run", 0.0)
    if deployment.serverless:
        return Line(IDLE, f"{stage} endpoint (serverless)", "billed per inference second only", 0.0)
    if is_shared(spec):
        copies = deployment.shared.min_copies
        quantity = (_copies_quantity(spec, where, copies, f"{HOURS_PER_MONTH:g} h") if copies else
                    "min_copies 0: no instance of its own (the first request scales a copy up from zero)")
        return Line(IDLE, f"{stage} copies (shared endpoint)", quantity,
                    copies * HOURS_PER_MONTH * _copy_hourly(spec, where, prices))
    count, kind = deployment.min_capacity, deployment.instance_type
    return Line(IDLE, f"{stage} endpoint", f"{count} x {kind} x {HOURS_PER_MONTH:g} h",
                count * HOURS_PER_MONTH * prices["hosting"].usd)


def _idle(spec: ModelSpec, where: Placement, prices: dict[str, Price], assumptions: Assumptions) -> list[Line]:
    lines = [_serving_endpoint(spec, where, prices)]
    percent = where.captured_percent(spec)
    if percent > 0:
        monthly_gb = _capture_gb(assumptions.requests_per_second * SECONDS_PER_MONTH, percent, assumptions)
        lines.append(Line(IDLE, "data capture storage (steady state)",
                          f"{monthly_gb:.2f} GB/month captured ({percent}% of "
                          f"{assumptions.requests_per_second:g} req/s x {assumptions.payload_kb:g} KiB)",
                          monthly_gb * _capture_usd_per_gb(prices)))
    if where.checks_drift(spec):
        checks = runs_per_month(spec.drift.schedule)
        lines.append(Line(IDLE, "drift checks (Lambda)", f"{checks:,.0f} x {DRIFT_FUNCTION_MB} MB x "
                          f"{assumptions.drift_check_seconds:g} s ({spec.drift.schedule})",
                          _lambda_usd(checks * DRIFT_FUNCTION_MB / 1024 * assumptions.drift_check_seconds, checks, prices)))
    if where.checks_quality(spec):
        checks = runs_per_month(spec.quality.schedule)
        lines.append(Line(IDLE, "quality checks (Lambda)", f"{checks:,.0f} x {QUALITY_FUNCTION_MB} MB x "
                          f"{assumptions.quality_check_seconds:g} s ({spec.quality.schedule})",
                          _lambda_usd(checks * QUALITY_FUNCTION_MB / 1024 * assumptions.quality_check_seconds, checks,
                                      prices)))
    checks = runs_per_month(RECONCILE_SCHEDULE)
    lines.append(Line(IDLE, "approval reconciler (Lambda)", f"{checks:,.0f} x {RECONCILER_MB} MB x "
                      f"{assumptions.reconcile_seconds:g} s ({RECONCILE_SCHEDULE})",
                      _lambda_usd(checks * RECONCILER_MB / 1024 * assumptions.reconcile_seconds, checks, prices)))
    fired = checks + (runs_per_month(spec.drift.schedule) if where.checks_drift(spec) else 0) + \
        (runs_per_month(spec.quality.schedule) if where.checks_quality(spec) else 0) + \
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


def _smoke_endpoint(spec: ModelSpec, where: Placement, prices: dict[str, Price], assumptions: Assumptions) -> Line:
    """The endpoint each approved run's smoke test creates and deletes: billed from creation to deletion."""
    item, minutes = "smoke test endpoint (ephemeral)", assumptions.smoke_minutes
    if spec.deployment.serverless:
        return Line(PER_RUN, item, "serverless: billed per inference second only", 0.0)
    if is_shared(spec):  # at most: a pool at no instance starts a whole one for the test
        return Line(PER_RUN, item, _copies_quantity(spec, where, 1, f"{minutes:g} min"),
                    _copy_hourly(spec, where, prices) * minutes / 60, prices["pool"].usd * minutes / 60)
    kind = spec.deployment.instance_type
    return Line(PER_RUN, item, f"1 x {kind} x {minutes:g} min", prices["hosting"].usd * minutes / 60)


def _rollout(spec: ModelSpec, where: Placement, prices: dict[str, Price], assumptions: Assumptions) -> list[Line]:
    """The new fleet beside the old on the one serving endpoint; none where the environment serves nothing."""
    deployment, minutes = spec.deployment, _overlap_minutes(spec, assumptions)
    if where.serving is None or deployment.serverless:
        return []
    if is_shared(spec):
        copies = deployment.shared.min_copies
        return [Line(PER_RUN, "rolling update overlap (approved runs)",
                     _copies_quantity(spec, where, copies, f"{minutes:g} min"),
                     copies * _copy_hourly(spec, where, prices) * minutes / 60)]
    return [Line(PER_RUN, "blue/green overlap (approved runs)",
                 f"{where.serving} endpoint: {deployment.min_capacity} x {deployment.instance_type} x {minutes:g} min",
                 deployment.min_capacity * prices["hosting"].usd * minutes / 60)]


def _per_run(spec: ModelSpec, where: Placement, prices: dict[str, Price], assumptions: Assumptions) -> list[Line]:
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
    lines.append(_smoke_endpoint(spec, where, prices, assumptions))
    lines += _rollout(spec, where, prices, assumptions)
    if deployment.batch_transform:
        lines.append(Line(PER_RUN, "batch transform", f"1 x {deployment.instance_type} x {assumptions.transform_minutes:g} min",
                          prices["transform"].usd * assumptions.transform_minutes / 60))
    lines.append(Line(PER_RUN, "pipeline functions (Lambda)",
                      f"{assumptions.pipeline_lambda_invocations} invocations, {assumptions.pipeline_lambda_gb_seconds:g} GB-s",
                      _lambda_usd(assumptions.pipeline_lambda_gb_seconds, assumptions.pipeline_lambda_invocations, prices)))
    lines.append(Line(PER_RUN, "state machine (Step Functions)", f"{assumptions.state_transitions_per_run} state transitions",
                      assumptions.state_transitions_per_run * prices["state_transition"].usd))
    return lines


def _hosting_per_million(spec: ModelSpec, where: Placement, prices: dict[str, Price], assumptions: Assumptions) -> Line:
    deployment = spec.deployment
    if deployment.serverless:
        return Line(PER_MILLION, "serverless inference", f"1M x {assumptions.serverless_seconds_per_prediction:g} s "
                    f"at {deployment.serverless.memory_mb} MB",
                    1e6 * assumptions.serverless_seconds_per_prediction * prices["serverless"].usd)
    hours = 1e6 / (deployment.target_invocations_per_instance * 60)
    if is_shared(spec):
        return Line(PER_MILLION, "shared copies at their scaling target",
                    f"{hours:,.1f} copy-h x {copy_share(spec, where.pool):.3g} of {where.pool.instance_type} "
                    f"({deployment.target_invocations_per_instance}/min per copy)",
                    hours * _copy_hourly(spec, where, prices))
    return Line(PER_MILLION, "endpoint at min capacity, at its scaling target",
                f"{hours:,.1f} instance-h of {deployment.instance_type} "
                f"({deployment.target_invocations_per_instance}/min per instance)", hours * prices["hosting"].usd)


def _per_million(spec: ModelSpec, where: Placement, prices: dict[str, Price], assumptions: Assumptions) -> list[Line]:
    lines = [_hosting_per_million(spec, where, prices, assumptions)]
    percent = where.captured_percent(spec)
    if percent > 0:
        gigabytes = _capture_gb(1e6, percent, assumptions)
        lines.append(Line(PER_MILLION, "data capture storage (lifetime)", f"{gigabytes:.2f} GB kept per the lifecycle",
                          gigabytes * _capture_usd_per_gb(prices)))
    return lines


def pool_idle_usd(pool: SharedPoolSpec, hourly_usd: float) -> float:
    """What the environment's shared endpoint costs a month with no copy on it: min_instances, once for all models."""
    return pool.min_instances * HOURS_PER_MONTH * hourly_usd


def _serving_notes(spec: ModelSpec, where: Placement, prices: dict[str, Price]) -> list[str]:
    if where.serving is None:
        return [f"{where.environment or 'this environment'} serves nothing: no always-on endpoint, no data capture, "
                "no drift checks; each approved run's smoke test creates an endpoint and deletes it after the test"]
    notes = [f"{where.environment or 'this environment'} serves {where.serving}: one always-on endpoint per model"]
    if is_shared(spec):
        pool, hourly = where.pool, prices["pool"].usd
        notes.append(f"the shared endpoint keeps {pool.min_instances} x {pool.instance_type} "
                     f"({usd(pool_idle_usd(pool, hourly))}/month) for all its models, and adds instances as copies need "
                     f"them (up to {pool.max_instances}) at {usd(hourly)}/h each")
    return notes


def _notes(spec: ModelSpec, where: Placement, prices: dict[str, Price], assumptions: Assumptions,
           runs: float) -> list[str]:
    notes = [f"runs per month: {runs:.2f} (schedule {spec.retraining.schedule or 'none'}"
             f" + {assumptions.extra_runs_per_month:g} assumed others)",
             "one training job per run: the spec declares no hyperparameter tuning",
             "not included: ML storage volumes, endpoint data processing (per GB in and out), CloudWatch, KMS requests, "
             "data transfer, and the registry stack's shared key, buckets and table"] + _serving_notes(spec, where, prices)
    dedicated = not spec.deployment.serverless and not is_shared(spec)
    if dedicated and where.serving and assumptions.requests_per_second > 0:
        monthly = assumptions.requests_per_second * SECONDS_PER_MONTH
        idle = spec.deployment.min_capacity * HOURS_PER_MONTH * prices["hosting"].usd
        notes.append(f"at the assumed {assumptions.requests_per_second:g} req/s the {where.serving} endpoint costs "
                     f"${idle / monthly * 1e6:,.2f} per 1M predictions")
    if spec.training.use_spot:
        notes.append("spot: the maximum per run prices training at the on-demand rate for max_runtime_s (spot never "
                     "costs more)")
    return notes


def estimate(spec: ModelSpec, region: str, price_list: list[str | dict], assumptions: Assumptions = Assumptions(),
             environment: str = "", serving: str | None = "prod", pool: SharedPoolSpec | None = None) -> Estimate:
    """The spec priced from a GetProducts PriceList in an environment serving `serving` (None: nothing) with the
    shared endpoint `pool` (default: SharedPoolSpec's); PriceNotFound names any price it lacks."""
    where = Placement(environment, serving, pool or SharedPoolSpec())
    items = parse_price_list(price_list)
    prices = {name: find_price(items, key) for name, key in price_keys(spec, region, assumptions, where.pool).items()}
    runs = runs_per_month(spec.retraining.schedule) + assumptions.extra_runs_per_month
    lines = (_idle(spec, where, prices, assumptions) + _per_run(spec, where, prices, assumptions)
             + _per_million(spec, where, prices, assumptions))
    return Estimate(spec.name, environment, region, lines, list(prices.values()), assumptions, runs,
                    spec.cost.monthly_budget_usd, _notes(spec, where, prices, assumptions, runs), serving,
                    spec.deployment.hosting)


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

"""The fleet view: every model of an environment in one row, what needs a person first (`mlops fleet`).

A row gathers, for one model: its spec's hosting and the stage the environment serves (pipelines.promotion
.serving_stage), the version that stage serves and where (the runs API's /serving), the last run and its outcome (the
runs API), the pending approvals (the runs API, as `mlops approvals list` reads them), the last drift check the
scheduled drift hook recorded (drift/<model>/<stamp>/report.json in the artifact bucket), the last quality check
(quality/<model>/<stamp>/report.json: its decision, the objective against the approved baseline) and the cost estimate
(lambdas/shared/cost.py `estimate`, what `mlops cost` prints). What cannot be read of one model (a broken model.yaml,
AccessDenied, a stack not deployed) is that row's reason, never the whole command's failure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.approval.logic import package_version
from lambdas.quality import report as quality_report
from lambdas.shared import cost, pricing
from lambdas.shared.evidence import finite_number
from pipelines import naming
from pipelines.approvals_cli import pending_approvals
from pipelines.client import LOCAL_ENV, ApiError, EnvironmentProblem, Pipelines
from pipelines.promotion import load_delivery, serving_stage
from pipelines.spec import (EnvironmentSpec, ModelSpec, SharedPoolSpec, SpecError, discover_spec_files, load_environments,
                            load_spec)

# The drift hook writes one report per check (hourly to daily): a month of them is one listing page, and a verdict
# older than that says little about the traffic now.
DRIFT_LOOKBACK = timedelta(days=31)
DRIFT_STAMP = "%Y%m%dT%H%M%SZ"  # lambdas/drift/handler.py run_check's folder name
QUALITY_LOOKBACK = timedelta(days=31)  # the quality check: one report per window (a day by default), the same stamps
FAILED_OUTCOMES = ("failed", "timed_out")
SERVED_VERSION = "served version"  # the note of a version that could not be read
UNREADABLE = (ApiError, EnvironmentProblem, LookupError, SpecError, ClientError, BotoCoreError)


@dataclass
class DriftState:
    drift: bool
    drifted_features: list[str]
    checked_at: str
    decision: str = ""


@dataclass
class QualityState:
    decision: str
    summary: str  # lambdas/quality/report.state_text: "drop 0.71/0.85", "ok", "no labels"
    objective: str | None
    value: float | None
    baseline: float | None
    labels_joined: int
    checked_at: str


@dataclass
class FleetRow:
    model: str
    hosting: str | None = None
    stage: str | None = None  # the traffic this environment serves; None: it serves nothing
    version: int | None = None
    endpoint: str | None = None
    last_run: str | None = None
    last_run_outcome: str | None = None
    last_run_at: str | None = None
    last_run_failed: bool = False
    drift: DriftState | None = None
    quality: QualityState | None = None
    pending_versions: list[int | None] = field(default_factory=list)
    idle_per_month: float | None = None
    monthly: float | None = None
    reason: str | None = None  # why the model's data could not be read
    notes: list[str] = field(default_factory=list)  # what one column could not show, and why

    @property
    def needs(self) -> list[str]:
        """What a person should look at, most urgent first."""
        return [label for label, applies in (("approval", bool(self.pending_versions)),
                                             ("failed run", self.last_run_failed),
                                             ("drift", bool(self.drift and self.drift.drift)),
                                             ("quality drop", bool(self.quality and self.quality.decision == "drop")))
                if applies]

    @property
    def order(self) -> tuple[int, str]:
        """Pending approval, a failed last run, drift, a quality drop, then the rest; by name within each."""
        urgency = {"approval": 0, "failed run": 1, "drift": 2, "quality drop": 3}
        return (urgency[self.needs[0]] if self.needs else len(urgency), self.model)

    def as_json(self) -> dict:
        return asdict(self) | {"needs": self.needs, "pending": len(self.pending_versions)}


@dataclass
class Fleet:
    env: str
    region: str
    rows: list[FleetRow]
    prices_from: str
    notes: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict:
        priced = [row for row in self.rows if row.monthly is not None]
        return {"models": len(self.rows), "priced": len(priced),
                "idle_per_month": round(sum(row.idle_per_month for row in priced), 4),
                "monthly": round(sum(row.monthly for row in priced), 4),
                "needing_attention": sum(1 for row in self.rows if row.needs)}

    def as_json(self) -> dict:
        return {"environment": self.env, "region": self.region, "currency": "USD", "prices_from": self.prices_from,
                "rows": [row.as_json() for row in self.rows], "totals": self.totals, "notes": self.notes}


class _OneAnswerPerRequest:
    """A Price List client that asks GetProducts once per distinct request: a fleet's models share instance types and
    every other service's request."""

    def __init__(self, client) -> None:
        self.client, self.answers = client, {}

    def get_products(self, **parameters) -> dict:
        key = json.dumps(parameters, sort_keys=True)
        if key not in self.answers:
            self.answers[key] = self.client.get_products(**parameters)
        return self.answers[key]


class Prices:
    """The Price List items estimates are priced from: a recorded response, or the Price List API asked with the
    environment's session (once per distinct request; after one refusal, not again)."""

    def __init__(self, recorded: list[str] | None, session=None, source: str = "the AWS Price List API") -> None:
        self.recorded, self.session, self.source = recorded, session, source
        self.client, self.unavailable = None, None

    def items(self, spec: ModelSpec, region: str, pool: SharedPoolSpec | None = None) -> list[str]:
        if self.recorded is not None:
            return self.recorded
        if self.unavailable:
            raise self.unavailable
        self.client = self.client or _OneAnswerPerRequest(
            self.session.client("pricing", region_name=pricing.endpoint_region(region)))
        try:
            return pricing.fetch(spec, region, pricing_client=self.client, pool=pool)
        except pricing.PricingUnavailable as error:
            self.unavailable = error
            raise


def environment_of(pipelines: Pipelines) -> EnvironmentSpec:
    """cdk.json's environment (its overrides and `serves`); the local mode's stands alone, as a single account."""
    if pipelines.env == LOCAL_ENV:
        return EnvironmentSpec(name=LOCAL_ENV, account=pipelines.check_account(), region=pipelines.region)
    return next(environment for environment in load_environments() if environment.name == pipelines.env)


def fleet(pipelines: Pipelines, prices: Prices, now: datetime | None = None) -> Fleet:
    """Every model of the environment (each model folder, and each model the registry knows without one), sorted
    with what needs a person first."""
    now = now or datetime.now(timezone.utc)
    pipelines.check_account()  # credentials, region and account are the command's problem, not one row's
    environment = environment_of(pipelines)
    stage = serving_stage(environment, None if pipelines.env == LOCAL_ENV else load_delivery())
    folders = {path.parent.name: path.parent for path in discover_spec_files(pipelines.models_dir)}
    rows = [model_row(pipelines, name, folder, environment, stage, prices, now) for name, folder in folders.items()]
    unlisted, notes = registry_models(pipelines)
    rows += [FleetRow(model=name, reason=f"in the registry ({naming.model_package_group(name, pipelines.env)}) but no "
                                         f"model folder in {pipelines.models_dir}: no spec to read it by")
             for name in unlisted if name not in folders]
    return Fleet(pipelines.env, pipelines.region, sorted(rows, key=lambda row: row.order), prices.source, notes)


def registry_models(pipelines: Pipelines) -> tuple[list[str], list[str]]:
    """(models with a package group in this environment, notes): <model>-<env> groups."""
    suffix = f"-{pipelines.env}"
    try:
        pages = pipelines.sagemaker.get_paginator("list_model_package_groups").paginate(NameContains=suffix)
        groups = [group["ModelPackageGroupName"] for page in pages for group in page["ModelPackageGroupSummaryList"]]
    except (ClientError, BotoCoreError) as error:
        return [], [f"models without a folder not listed: {one_line(pipelines.explain(error))}"]
    return sorted(group.removesuffix(suffix) for group in groups if group.endswith(suffix)), []


def model_row(pipelines: Pipelines, name: str, folder: Path, environment: EnvironmentSpec, stage: str | None,
              prices: Prices, now: datetime) -> FleetRow:
    row = FleetRow(model=name, stage=stage)
    try:
        spec = load_spec(folder, environment.overrides)
    except SpecError as error:
        row.reason = f"model.yaml does not load: {one_line(error)}"
        return row
    row.hosting = spec.deployment.hosting
    row.endpoint = endpoint_name(spec, pipelines.env, stage)
    estimate(spec, environment, pipelines.region, prices, row)  # the spec's cost, whatever AWS lets the caller read
    try:
        read_runs_api(pipelines, row)
    except UNREADABLE as error:
        row.reason = one_line(error)
        return row
    read_drift(pipelines, row, now)
    read_quality(pipelines, row, now)
    return row


def endpoint_name(spec: ModelSpec, env: str, stage: str | None) -> str | None:
    if stage is None:
        return None
    if spec.deployment.hosting == "shared":
        return f"{naming.endpoint(spec.name, env, stage)} on {naming.shared_endpoint(env)}"  # an inference component
    return naming.endpoint(spec.name, env, stage)


def read_runs_api(pipelines: Pipelines, row: FleetRow) -> None:
    """The last run, the pending approvals and the served version, through the runs API (as the caller)."""
    runs = pipelines.runs(row.model, limit=1)
    if runs:
        run = runs[0]
        row.last_run, row.last_run_at = run.name, run.started
        row.last_run_outcome = run.outcome.kind if run.outcome else run.status.lower()
        row.last_run_failed = row.last_run_outcome in FAILED_OUTCOMES or run.status in ("FAILED", "TIMED_OUT")
    row.pending_versions = [item.version for item in pending_approvals(pipelines, row.model)]
    if row.stage:
        read_served_version(pipelines, row)


def read_served_version(pipelines: Pipelines, row: FleetRow) -> None:
    """A runs API that reads runs but not what is served (deployed before /serving knew the stage) is a note."""
    try:
        row.version = package_version(pipelines.serving(row.model).get(row.stage))
    except UNREADABLE as error:
        row.notes.append(f"{SERVED_VERSION}: {one_line(error)}")


def read_drift(pipelines: Pipelines, row: FleetRow, now: datetime) -> None:
    try:
        row.drift = last_drift_check(pipelines, row.model, now)
    except (ClientError, BotoCoreError, ValueError) as error:
        row.notes.append(f"drift: {one_line(pipelines.explain(error))}")


def last_drift_check(pipelines: Pipelines, model: str, now: datetime) -> DriftState | None:
    """The latest report the drift hook wrote for the model within DRIFT_LOOKBACK (None: no check recorded)."""
    latest = latest_report(pipelines, f"drift/{model}/", now - DRIFT_LOOKBACK)
    if latest is None:
        return None
    checked, report = latest
    return DriftState(drift=bool(report.get("drift")), drifted_features=list(report.get("drifted_features") or []),
                      checked_at=checked, decision=str(report.get("decision") or ""))


def read_quality(pipelines: Pipelines, row: FleetRow, now: datetime) -> None:
    try:
        row.quality = last_quality_check(pipelines, row.model, now)
    except (ClientError, BotoCoreError, ValueError) as error:
        row.notes.append(f"quality: {one_line(pipelines.explain(error))}")


def last_quality_check(pipelines: Pipelines, model: str, now: datetime) -> QualityState | None:
    """The latest report the quality check wrote for the model within QUALITY_LOOKBACK (None: no check recorded)."""
    latest = latest_report(pipelines, f"quality/{model}/", now - QUALITY_LOOKBACK)
    if latest is None:
        return None
    checked, report = latest
    if not isinstance(report.get("decision"), str):
        raise ValueError(f"the last quality report of {model} ({checked}) has no decision")
    return QualityState(decision=report["decision"], summary=quality_report.state_text(report),
                        objective=report.get("objective"), value=quality_report.objective_value(report),
                        baseline=finite_number(report.get("baseline")),
                        labels_joined=quality_report.joined(report), checked_at=checked)


def latest_report(pipelines: Pipelines, prefix: str, since: datetime) -> tuple[str, dict] | None:
    """(the check's time, its report.json) of the newest <prefix><stamp>/ folder after `since`: one bounded listing
    (the folders only, from `since` on) and one read. None when there is none."""
    s3 = pipelines.client("s3")
    bucket = naming.artifact_bucket(pipelines.env, pipelines.check_account(), pipelines.region)
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/", StartAfter=f"{prefix}{since:{DRIFT_STAMP}}")
    checks = [common["Prefix"] for page in pages for common in page.get("CommonPrefixes", [])]
    if not checks:
        return None
    latest = max(checks)
    report = json.loads(s3.get_object(Bucket=bucket, Key=f"{latest}report.json")["Body"].read())
    if not isinstance(report, dict):
        raise ValueError(f"s3://{bucket}/{latest}report.json is not a JSON object")
    checked = datetime.strptime(latest.removeprefix(prefix).strip("/"), DRIFT_STAMP).replace(tzinfo=timezone.utc)
    return checked.isoformat(), report


def estimate(spec: ModelSpec, environment: EnvironmentSpec, region: str, prices: Prices, row: FleetRow) -> None:
    """Idle per month and the month (idle plus the scheduled runs), as `mlops cost` computes them: for the stage the
    environment serves and its shared endpoint."""
    try:
        pool = environment.shared_hosting
        result = cost.estimate(spec, region, prices.items(spec, region, pool), environment=environment.name,
                               serving=row.stage, pool=pool)
    except (pricing.PricingUnavailable, cost.PriceNotFound, ValueError) as error:
        row.notes.append(f"cost: {one_line(error)}")
        return
    row.idle_per_month, row.monthly = round(result.total(cost.IDLE), 4), round(result.monthly, 4)


def one_line(error: object) -> str:
    return pricing.one_line(error, 300)

"""`mlops approve|reject MODEL` (show what is decided, then ask) and `mlops approvals list [MODEL]`.

The pending requests come from the environment's runs API (`GET /approvals` of a model: the same records the
approval links decide, each with the review the email and the page show); the decision goes through the same API
(pipelines/client.py `decide`), naming the run that was shown, so what you confirm is what is decided.

Registered by pipelines/cli.py (`approvals_cli.register(app, approvals_app, command)`), so its errors become one line
and an exit code like every other command's. `--output json` never prompts: a decision in json mode needs `--yes`.
"""

from __future__ import annotations

import json
from enum import Enum
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Optional

import typer
from rich.markup import escape

from lambdas.approval import logic
from pipelines.console import Table, output_console
from pipelines.spec import SpecError, discover_spec_files

console = output_console()
EnvOption = typer.Option("dev", "--env", "-e", envvar="MLOPS_ENV",
                         help="Environment from cdk.json (dev, staging, prod), or local: the running `mlops local serve`.")
OutputOption = typer.Option("text", "--output", "-o", help="text, or json: one JSON document on stdout for scripts.")
YesOption = typer.Option(False, "--yes", "-y", help="Decide without asking (scripts); required with --output json.")
NO_PROMPT_IN_JSON = "--output json never asks for confirmation; fix: add --yes to decide without asking"


class Output(str, Enum):
    text = "text"
    json = "json"


CHANGE_COLOURS = {"better": "green", "worse": "red", "same": "white"}


@dataclass
class PendingApproval:
    """One run waiting for a decision, as an approver needs to see it."""

    model: str
    execution: str
    package: str
    requested_by: str
    created_at: str
    expires_at: int
    approvers: list[str] = field(default_factory=list)
    facts: logic.ReviewFacts | None = None

    @classmethod
    def of(cls, model: str, view: dict) -> "PendingApproval":
        """From the runs API's pending view (lambdas/runs/logic.py pending_view)."""
        try:
            facts = logic.ReviewFacts.model_validate(view["review"]) if view.get("review") else None
        except ValueError:
            facts = None
        return cls(model=model, execution=view["execution"], package=view.get("model_package_arn") or "",
                   requested_by=view.get("requested_by") or "unknown", created_at=view.get("created_at") or "",
                   expires_at=int(view.get("expires_at") or 0), approvers=list(view.get("approvers") or []),
                   facts=facts)

    @property
    def version(self) -> int | None:
        return self.facts.version if self.facts and self.facts.version is not None else logic.package_version(self.package)

    @property
    def may_decide(self) -> list[str]:
        """The approvers other than the person who started the run (who may not decide it)."""
        return [a for a in self.approvers if not logic.self_approval(a, self.requested_by)]

    @property
    def metric_line(self) -> str:
        if self.facts is None:
            return "no review recorded"
        facts = self.facts
        champion = "no champion" if facts.champion_value is None else f"champion {facts.champion_value:.4f}, {facts.change_line}"
        return f"{facts.metric} {facts.value:.4f} ({champion})"

    @property
    def short_metric(self) -> str:
        """The table's cell: metric, value, champion's value, the change in the metric's own direction."""
        facts = self.facts
        if facts is None or facts.delta is None:
            return self.metric_line
        change = {"better": "better", "worse": "worse", "same": "no change"}[facts.change]
        return (f"{facts.metric} {facts.value:.4f} vs {facts.champion_value:.4f}: {logic.signed_delta(facts.delta)} {change} "
                f"({facts.better})")

    @property
    def expires_text(self) -> str:
        return datetime.fromtimestamp(self.expires_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def as_json(self) -> dict:
        document = {k: v for k, v in asdict(self).items() if k != "facts"}
        return document | {"version": self.version, "may_decide": self.may_decide, "metric": self.metric_line,
                           "review": json.loads(self.facts.model_dump_json()) if self.facts else None,
                           "approving_does": self.facts.consequence if self.facts else None}


def pending_approvals(pipelines, model: str) -> list[PendingApproval]:
    """The model's runs waiting for a decision, oldest request first."""
    views = pipelines.api(model).call("GET", "/approvals")["pending"]
    return sorted((PendingApproval.of(model, view) for view in views), key=lambda item: item.created_at)


def the_one_to_decide(pending: list[PendingApproval], model: str, execution: str | None) -> PendingApproval:
    from pipelines.client import DecisionRefused, only_pending

    execution = execution or only_pending([item.execution for item in pending], model)
    named = [item for item in pending if item.execution == execution]
    if not named:
        raise DecisionRefused(f"no pending approval for {model} run {execution}")
    return named[0]


def review_lines(item: PendingApproval, approve: bool) -> list[str]:
    """What is being decided: model, version, run, who asked when, the metrics against the champion, and what the
    decision sets in motion."""
    version = f" version {item.version}" if item.version is not None else ""
    lines = [f"{item.model}{version}, run {item.execution}",
             f"  model package:  {item.package}",
             f"  requested by:   {item.requested_by} at {item.created_at[:19] or '?'}; decide by {item.expires_text}"]
    facts = item.facts
    if facts is not None:
        lines += [f"  deciding:       {facts.metric} = {facts.value:.4f} ({facts.better}); {facts.threshold_line}",
                  f"  vs champion:    {facts.champion_line if facts.champion_value is None else facts.change_line}",
                  "", *("  " + line for line in logic.metrics_table(facts.metrics, facts.champion_metrics).splitlines()),
                  ""]
        lines.append(facts.consequence if approve else
                     "Rejecting ends the run and rejects this version; production keeps serving what it serves now.")
    return lines


def confirmed(item: PendingApproval, approve: bool, yes: bool) -> bool:
    if yes:
        return True
    version = f" version {item.version}" if item.version is not None else ""
    try:
        return typer.confirm(f"{'Approve' if approve else 'Reject'} {item.model}{version} (run {item.execution})?",
                             default=False)
    except typer.Abort:  # no answer (stdin closed): nothing decided
        return False


def decide_shown(model: str, approve: bool, reason: str, execution: str | None, env: str, output: str,
                 yes: bool) -> None:
    """Shows the pending request, asks (unless --yes), then decides exactly that run."""
    from pipelines.cli import EXIT_FAILED, EXIT_USAGE, client, emit, fail
    from pipelines.client import decide

    if output == "json" and not yes:
        fail(NO_PROMPT_IN_JSON, EXIT_USAGE, output, "invalid")
    pipelines = client(env)
    item = the_one_to_decide(pending_approvals(pipelines, model), model, execution)
    if output != "json":
        for line in review_lines(item, approve):
            console.print(escape(line), soft_wrap=True, highlight=False)
    if not confirmed(item, approve, yes):
        fail(f"nothing decided: {model} run {item.execution} still waits", EXIT_FAILED, output, "declined")
    decided_at = decide(pipelines, model, approve, reason, item.execution)
    decision = "approved" if approve else "rejected"
    if output == "json":
        return emit({"model": model, "decision": decision, "decided_at": decided_at, "execution": item.execution,
                     "version": item.version})
    console.print(f"{model}: version {item.version} {decision} at {decided_at}", soft_wrap=True, highlight=False)


def approve(model: str, execution: Optional[str] = typer.Option(None, help="Run name when several wait."),
            reason: str = typer.Option("", help="Kept in the audit log."), yes: bool = YesOption,
            env: str = EnvOption, output: Output = OutputOption) -> None:
    """Approve the model version waiting for a decision: shows it against the champion and what approving sets in
    motion, then asks (your signed AWS principal must map to an approver)."""
    decide_shown(model, True, reason, execution, env, Output(output).value, yes)


def reject(model: str, reason: str = typer.Option(..., help="Why; sent with the rejection."),
           execution: Optional[str] = typer.Option(None, help="Run name when several wait."), yes: bool = YesOption,
           env: str = EnvOption, output: Output = OutputOption) -> None:
    """Reject the model version waiting for a decision: shows it, then asks."""
    decide_shown(model, False, reason, execution, env, Output(output).value, yes)


# ------------------------------------------------------------------ listing
def model_names() -> list[str]:
    """The model folders' names (a model's name is its folder's): one broken model.yaml does not hide the others."""
    return sorted(path.parent.name for path in discover_spec_files())


def pending_of_models(pipelines, models: list[str]) -> tuple[list[PendingApproval], dict[str, str]]:
    """Every model's pending requests; a model this identity may not read, or not deployed here, is skipped with
    the reason (one model asked by name is not skipped: its error is the command's)."""
    from pipelines.client import ApiError

    found, skipped = [], {}
    for model in models:
        try:
            found += pending_approvals(pipelines, model)
        except (ApiError, LookupError, SpecError) as error:
            if len(models) == 1:
                raise
            skipped[model] = str(error).strip()
    return found, skipped


def list_command(model: Optional[str] = typer.Argument(None, help="One model (default: every model folder)."),
                 env: str = EnvOption, output: Output = OutputOption) -> None:
    """Runs waiting for a decision: model, version, run, requested when, the deciding metric against the champion,
    and who may approve."""
    from pipelines.cli import client, emit

    found, skipped = pending_of_models(client(env), [model] if model else model_names())
    if Output(output) == Output.json:
        return emit({"pending": [item.as_json() for item in found], "skipped": skipped})
    print_pending(found, skipped)


def print_pending(found: list[PendingApproval], skipped: dict[str, str]) -> None:
    for model, reason in skipped.items():
        console.print(f"[yellow]{escape(model)}: skipped ({escape(reason)})[/]", soft_wrap=True, highlight=False)
    if not found:
        console.print("No approvals pending.")
        return
    table = Table("model", "version", "run", "requested", "metric vs champion", "may approve", "decide by")
    for item in found:
        colour = CHANGE_COLOURS[item.facts.change] if item.facts else "white"
        table.add_row(escape(item.model), str(item.version or "-"), escape(item.execution),
                      escape(f"{item.created_at[:16].replace('T', ' ')} by {logic.identity(item.requested_by)}"),
                      f"[{colour}]{escape(item.short_metric)}[/]", escape(", ".join(item.may_decide)), item.expires_text)
    console.print(table)
    console.print("Decide with `mlops approve MODEL` or `mlops reject MODEL --reason ...` (--execution RUN when "
                  "several wait).", soft_wrap=True, highlight=False)


def register(app: typer.Typer, approvals_app: typer.Typer, command) -> None:
    """`mlops approve|reject` and `mlops approvals list`, through the CLI's error handling (command)."""
    command(app, "approve")(approve)
    command(app, "reject")(reject)
    command(approvals_app, "list")(list_command)

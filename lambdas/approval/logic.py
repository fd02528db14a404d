"""Approval governance and the messages and pages people see. Pure: no AWS calls."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field

from lambdas.approval.tokens import LinkClaims, LinkError, new_nonce, sign
from lambdas.shared.evidence import CardSummary, Evidence
from lambdas.shared.identity import approver_persons
from lambdas.shared.text import BIDI_ESCAPES, one_line
from lambdas.shared.run_state import RunState
from pipelines.spec import TIE_TOLERANCE

PENDING = "PENDING"


def identity(principal: str) -> str:
    """The person behind an email or an STS ARN (IAM Identity Center session names are emails)."""
    return principal.rsplit("/", 1)[-1].strip().lower()


def starter_identities(requested_by: str, principals: dict[str, list[str]] | None = None) -> set[str]:
    """Every approver identity the starter of a run has: the principal ARN's last segment (session or user name)
    and each approver whose approval.principals patterns match that principal (e.g. an IAM-user pattern, whose
    user name need not be the email): an approver must not approve a run they started as any of them."""
    names = {identity(requested_by)}
    names.update(approver.lower() for approver, patterns in (principals or {}).items()
                 if any(principal_matches(pattern, requested_by) for pattern in patterns))
    return names


def self_approval(approver: str, requested_by: str, principals: dict[str, list[str]] | None = None,
                  starter_person: str | None = None, decider_person: str | None = None) -> bool:
    """Whether `approver` (an email) deciding would be the run's starter deciding: by the starter's principal (its
    last segment, or an approver's pattern matching it), by the person AWS fixes behind the starter's principal
    (lambdas.shared.identity: an IAM user, a pinned session) being one the approver's identities name, or by the
    deciding principal being that same person, whatever role each of them used."""
    if identity(approver) in starter_identities(requested_by, principals):
        return True
    if starter_person and starter_person.lower() in approver_persons(approver, principals):
        return True
    return bool(starter_person and decider_person and starter_person.lower() == decider_person.lower())


def principal_matches(pattern: str, principal: str) -> bool:
    """IAM-style: '*' matches any run of characters, everything else literally (case-sensitive, as ARNs)."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), principal) is not None


def check_governance(claims: LinkClaims, approvers: list[str], requested_by: str,
                     principals: dict[str, list[str]] | None = None, starter_person: str | None = None,
                     decider_person: str | None = None) -> None:
    approver = identity(claims.approver)
    if approver not in [a.lower() for a in approvers]:
        raise LinkError(403, "Not an approver", f"{approver} is not listed as an approver of this model.")
    if self_approval(approver, requested_by, principals, starter_person, decider_person):
        raise LinkError(403, "Self-approval refused", "The person who started a run cannot approve it; ask another approver.")


def decision_status(claims: LinkClaims) -> str:
    return "APPROVED" if claims.action == "approve" else "REJECTED"


def resumable(record: dict | None, claims: LinkClaims) -> bool:
    """This approver's own decision, recorded but not yet applied to the registry and the run (a throttled
    call): the same click completes it instead of answering 409."""
    return bool(record and record.get("status") == decision_status(claims) and record.get("applied") is False
                and identity(str(record.get("decided_by", ""))) == identity(claims.approver)
                and record.get("model_package_arn") == claims.package)


def needs_repair(record: dict, now: float, grace_s: int = 120) -> bool:
    """A decision older than grace_s that never reached the registry and the run."""
    if record.get("status") not in ("APPROVED", "REJECTED") or record.get("applied") is not False:
        return False
    return now - datetime.fromisoformat(str(record["decided_at"])).timestamp() > grace_s


def check_pending(record: dict | None, claims: LinkClaims) -> None:
    if record is None or record.get("model_package_arn") != claims.package:
        raise LinkError(404, "Unknown request", "No approval request matches this link.")
    if record.get("status") != PENDING:
        raise LinkError(409, "Already decided",
                        f"This request was already {record.get('status', '').lower()} by {record.get('decided_by', 'someone')} "
                        f"at {record.get('decided_at', '?')}. Links work once.")


RATE_WINDOW_S = 60


def rate_limit_key(source_ip: str, now: int, model: str | None = None) -> tuple[str, int]:
    """(counter key, when it may be forgotten) for one client address in the current one-minute window: of the
    model its verified link names, or (model None) of the requests whose link did not verify."""
    window = now // RATE_WINDOW_S
    return f"ratelimit#{model or '-'}#{source_ip}#{window}", (window + 2) * RATE_WINDOW_S


TOO_MANY_REQUESTS = LinkError(429, "Too many requests", "This address sent too many requests; wait a minute and try again.")


def links(base_url: str, execution: str, package: str, approvers: list[str], requested_by: str, expires: int,
          key: bytes, principals: dict[str, list[str]] | None = None,
          starter_person: str | None = None, model: str = "") -> dict[str, dict[str, str]]:
    """approver -> {approve: url, reject: url}; the requester gets none (they may not decide). model: the model the
    links decide for (the environment's decide function acts for the model its link names)."""
    result = {}
    for approver in approvers:
        if self_approval(approver, requested_by, principals, starter_person):
            continue
        nonce = new_nonce()
        result[approver] = {action: f"{base_url.rstrip('/')}/?t={quote(sign(LinkClaims(execution, package, approver, action, expires, nonce, model), key))}"
                            for action in ("approve", "reject")}
    return result


def _metric(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else one_line(value, 12)


def metrics_table(challenger: dict, champion: dict | None) -> str:
    """Metric names and values come from the training job's report: each row stays one line."""
    names = sorted(set(challenger) | set(champion or {}), key=str)
    lines = [f"{'metric':<24}{'candidate':>12}{'champion':>12}"]
    for name in names:
        theirs = _metric(champion[name]) if champion and name in champion else "-"
        ours = _metric(challenger[name]) if name in challenger else "-"
        lines.append(f"{one_line(name, 80):<24}{ours:>12}{theirs:>12}")
    return "\n".join(lines)


class ReviewFacts(BaseModel):
    """What an approver decides on, in the email and on the page: the deciding metric (direction, the spec's
    threshold, the delta to the champion), every metric beside the champion's, the lineage with typed
    hyperparameters, and the expiry. Stored with the approval request (as JSON) so the page shows the same."""

    model: str
    model_package_arn: str
    version: int | None = None
    metric: str
    direction: str = "maximize"
    value: float
    threshold: float | None = None
    champion_value: float | None = None
    champion_margin: float = 0.0
    reason: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    champion_metrics: dict[str, Any] | None = None
    git_commit: str = "unknown"
    claimed_git_commit: str | None = None
    dataset_uri: str = ""
    dataset_version: str = "unversioned"
    dataset_sha256: str = ""
    dataset_rows: int = 0
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    requested_by: str = "unknown"
    trigger: str = "manual"
    execution_arn: str = ""
    run_reason: str = ""
    expires_at: int
    artifact_uri: str = ""
    artifact_sha256: str = ""
    artifact_version_id: str = ""
    image: str = ""
    champion_version: int | None = None
    rollout: str = ""
    serving: str | None = "prod"  # the traffic the environment serves (None: nothing; pipelines.promotion.serving_stage)
    card: CardSummary | None = None  # the model card attached to the package (None: registered before cards)
    evidence: Evidence | None = None  # its bias and attribution reports, summarized (None: the job wrote neither)

    @property
    def better(self) -> str:
        return "higher is better" if self.direction == "maximize" else "lower is better"

    @property
    def delta(self) -> float | None:
        return None if self.champion_value is None else self.value - self.champion_value

    @property
    def change(self) -> str:
        """'better', 'worse' or 'same' (a delta that shows as +0.0000 or -0.0000 is no change)."""
        return change_of(self.delta, self.direction)

    @property
    def change_words(self) -> str:
        if self.delta is None:
            return "no champion to compare with"
        words = {"better": "better than the champion", "worse": "worse than the champion",
                 "same": "no change from the champion (within rounding)"}
        return f"{signed_delta(self.delta)}: {words[self.change]}"

    @property
    def change_line(self) -> str:
        return self.change_words if self.delta is None else f"{self.change_words} ({self.better})"

    @property
    def consequence(self) -> str:
        return approval_consequence(self.model, self.version, self.champion_version, self.champion_value is not None,
                                    self.rollout, self.serving)

    @property
    def threshold_line(self) -> str:
        if self.threshold is None:
            return "no threshold in the spec"
        word = "minimum" if self.direction == "maximize" else "maximum"
        passes = self.value >= self.threshold if self.direction == "maximize" else self.value <= self.threshold
        return f"spec {word} {self.threshold:g}: {'passes' if passes else 'misses'}"

    @property
    def champion_line(self) -> str:
        if self.champion_value is None:
            return "no approved champion yet"
        margin = f", required margin {self.champion_margin:g}" if self.champion_margin else ""
        return f"champion {self.champion_value:.4f}, delta {signed_delta(self.delta)}{margin}"

    @property
    def expires_text(self) -> str:
        return datetime.fromtimestamp(self.expires_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def change_of(delta: float | None, direction: str) -> str:
    """How a candidate compares with the champion on a metric: 'better', 'worse', or 'same': the tie promotion
    itself uses (pipelines.spec.TIE_TOLERANCE), so a version promoted for a tiny gain never reads 'no change'."""
    if delta is None or abs(delta) <= TIE_TOLERANCE:
        return "same"
    return "better" if (delta > 0) == (direction == "maximize") else "worse"


def signed_delta(delta: float) -> str:
    """4 decimals, or scientific notation for a difference too small for them (never +0.0000 for a real one)."""
    return f"{delta:+.4f}" if delta == 0 or abs(delta) >= 0.00005 else f"{delta:+.1e}"


def package_version(arn: str | None) -> int | None:
    """The version of a model package ARN (…/model-package/<group>/<version>)."""
    tail = (arn or "").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def rollout_text(deployment) -> str:
    """How production traffic moves to an approved version, from the spec's DeploymentSpec."""
    if deployment.strategy == "canary":
        shift = (f"canary: {deployment.canary_percent}% of the traffic first, the rest after "
                 f"{deployment.wait_minutes} min")
    elif deployment.strategy == "linear":
        shift = f"linear: {deployment.linear_step_percent}% more traffic every {deployment.wait_minutes} min"
    else:
        shift = "all at once"
    alarms = deployment.alarms
    return (f"{shift}; alarms on 5xx rate above {alarms.max_5xx_rate:.0%} or p99 latency above "
            f"{alarms.max_p99_latency_ms:g} ms roll back automatically, the old fleet is kept {deployment.bake_minutes} min")


def approval_consequence(model: str, version: int | None, champion_version: int | None, has_champion: bool,
                         rollout: str = "", serving: str | None = "prod") -> str:
    """What pressing Approve sets in motion, in one paragraph; serving: the traffic this environment serves (None:
    nothing, as a training account: the version is released for promotion once its smoke test passes)."""
    this = f"version {version}" if version is not None else "this version"
    how = f" ({rollout})" if rollout else ""
    traffic = "production" if serving == "prod" else f"{serving}"
    if serving is None:
        then = "then releases it for promotion (this environment serves no traffic)."
    elif has_champion or champion_version is not None:
        champion = f"version {champion_version}" if champion_version is not None else "the current version"
        then = (f"then shifts {traffic} traffic blue/green from {champion} (the champion) to it{how}. "
                f"You can go back later with `mlops rollback {model}`.")
    else:
        then = f"then puts it into {traffic} (first version, nothing replaced){how}."
    keeps = "nothing changes here" if serving is None else f"{traffic} keeps serving what it serves now"
    return (f"Approving deploys {this} to an endpoint created for its smoke test and deleted after it (a failure "
            f"rejects it), {then} Rejecting ends the run; {keeps}.")


def review_facts(model: str, state: RunState, objective, champion_metrics: dict | None, expires_at: int,
                 artifact: dict[str, str] | None = None, deployment=None, serving: str | None = "prod",
                 card: CardSummary | None = None) -> ReviewFacts:
    """objective: the spec's ObjectiveSpec (metric, direction, minimum, champion_margin); artifact: what the approval
    binds (lambdas.shared.release.FIELDS); deployment: the spec's DeploymentSpec (what approving sets in motion);
    card: the summary of the model card attached to the package (lambdas.shared.evidence.card_summary)."""
    run, validation, evaluation, registration = state.run, state.validation, state.evaluation, state.registration
    return ReviewFacts(
        model=model, model_package_arn=registration.model_package_arn, version=registration.version,
        metric=evaluation.objective or objective.metric, direction=objective.direction, value=evaluation.value,
        threshold=objective.minimum, champion_value=evaluation.champion_value, champion_margin=objective.champion_margin,
        reason=evaluation.reason, metrics=evaluation.metrics, champion_metrics=champion_metrics,
        git_commit=run.git_commit, claimed_git_commit=run.claimed_git_commit, dataset_uri=validation.dataset_uri,
        dataset_version=validation.version_id or "unversioned", dataset_sha256=validation.sha256,
        dataset_rows=validation.rows, hyperparameters=run.typed_hyperparameters(), requested_by=run.requested_by,
        trigger=run.trigger, execution_arn=run.execution_arn, run_reason=run.reason or "", expires_at=expires_at,
        champion_version=package_version(evaluation.champion_arn),
        rollout=rollout_text(deployment) if deployment is not None else "", serving=serving, card=card,
        evidence=evaluation.evidence, **(artifact or {}))


def request_email(facts: ReviewFacts, approver_links: dict[str, str] | None, timeout_hours: float,
                  approver: str | None = None) -> str:
    """The approval email. Every value that came from input (who started the run and why, the dataset, the
    hyperparameters, metric names, ...) is rendered by one_line: control characters show escaped, so no input can
    start a line of its own (a fake 'Approve:' link); only the lines below made here start a line. Each link
    stands alone on its line, whole (a mail client may wrap the text around it, not the link)."""
    lines = [f"A new {one_line(facts.model, 64)} model is waiting for your decision"
             + (f", {one_line(approver, 320)}." if approver else "."), "",
             f"Model package: {one_line(facts.model_package_arn)}"
             + (f" (version {facts.version})" if facts.version is not None else ""),
             f"Deciding metric: {one_line(facts.metric, 80)} = {facts.value:.4f} ({facts.better})",
             f"  {facts.threshold_line}; {facts.champion_line}",
             f"Why it is proposed: {one_line(facts.reason, 1000)}", "",
             f"What approving does: {one_line(facts.consequence, 2000)}", "",
             metrics_table(facts.metrics, facts.champion_metrics), "", *evidence_lines(facts), "",
             "Lineage:",
             f"  git commit:       {one_line(facts.git_commit, 64)} (the deployed source that trained)",
             *([f"  claimed commit:   {one_line(facts.claimed_git_commit, 64)} (sent by the requester, not verified)"]
               if facts.claimed_git_commit else []),
             f"  dataset:          {one_line(facts.dataset_uri, 1100)} (version {one_line(facts.dataset_version, 1100)})",
             f"  dataset sha256:   {one_line(facts.dataset_sha256, 64)}",
             f"  dataset rows:     {facts.dataset_rows:,}",
             f"  hyperparameters:  {one_line(json.dumps(facts.hyperparameters, sort_keys=True), 2000)}",
             f"  started by:       {one_line(facts.requested_by, 512)} ({one_line(facts.trigger, 16)})",
             f"  execution:        {one_line(facts.execution_arn)}",
             *([f"  model sha256:     {one_line(facts.artifact_sha256, 64)} (S3 version "
                f"{one_line(facts.artifact_version_id, 1100)}): you approve exactly these bytes",
                f"  model artifact:   {one_line(facts.artifact_uri, 1100)}",
                f"  serving image:    {one_line(facts.image, 1100)}"] if facts.artifact_sha256 else [])]
    if facts.run_reason:
        lines.append(f"  reason given:     {one_line(facts.run_reason, 2000)}")
    lines.append("")
    if approver_links:
        lines += [f"Decide by {facts.expires_text} ({timeout_hours:g} hours); then the run ends as rejected.", "",
                  f"Approve: {approver_links['approve']}", "", f"Reject:  {approver_links['reject']}", "",
                  "The links are yours alone and work once. Each opens a page that shows this review and asks you to "
                  "confirm; nothing changes until you press a button there."]
    else:
        lines += ["You started this run, so another approver must decide."]
    return "\n".join(lines)


_STYLE = ("*{box-sizing:border-box}body{font-family:system-ui,sans-serif;max-width:52rem;margin:1rem auto;"
          "padding:0 1rem;color:#222}h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.2rem}"
          "pre{background:#f5f5f5;padding:1rem;overflow:auto}.scroll{overflow-x:auto;max-width:100%}"
          "table{border-collapse:collapse;margin:.5rem 0 1rem}"
          "th,td{text-align:left;padding:.25rem .7rem;border-bottom:1px solid #ddd;vertical-align:top;"
          "overflow-wrap:anywhere}td.num{text-align:right;font-variant-numeric:tabular-nums}code{word-break:break-all}"
          ".decide{display:flex;flex-wrap:wrap;gap:1rem;margin:.75rem 0}"
          "button{font-size:1rem;padding:.6rem 1.4rem;border:0;cursor:pointer}"
          ".approve{background:#2e7d32;color:#fff}.reject{background:#c62828;color:#fff}"
          ".primary{outline:3px solid #222;outline-offset:2px}.pass,.better{color:#2e7d32}.miss,.worse{color:#c62828}"
          ".same{color:#555}.verdict{font-size:1.15rem;margin:.4rem 0}textarea{width:100%;height:3rem}"
          ".expiry{background:#fff6d6;padding:0 .2rem}.summary{border:1px solid #ccc;padding:.5rem 1rem;margin:.5rem 0}"
          ".consequence{margin:.4rem 0}.bar{display:inline-block;height:.7rem;background:#4a6fa5}"
          "td.barcell{min-width:8rem;width:35%}")


def page(title: str, body_html: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<meta name='robots' content='noindex'><title>{_e(title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{_e(title)}</h1>{body_html}</body></html>")


def error_page(error: LinkError) -> str:
    return page(error.title, f"<p>{_e(error.detail)}</p><p>Nothing was changed.</p>")


def counterpart(claims: LinkClaims) -> LinkClaims:
    """The other decision of the same link pair (same approver, request, expiry and nonce): both were mailed to
    this approver, so the page offers both."""
    return replace(claims, action="reject" if claims.action == "approve" else "approve")


def stored_facts(record: dict) -> ReviewFacts | None:
    try:
        return ReviewFacts.model_validate_json(record["review"]) if record.get("review") else None
    except ValueError:
        return None


def _e(value) -> str:
    """HTML-escaped, with bidirectional controls shown as escapes: they would reorder what the approver reads."""
    return html.escape(str(value), quote=True).translate(BIDI_ESCAPES)


def _cell(value) -> str:
    return f"<td class='num'>{_metric(value)}</td>" if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else f"<td>{_e(value)}</td>"


def _table(rows_html: str) -> str:
    """A table that scrolls inside its own box on a narrow screen (the page itself never scrolls sideways)."""
    return f"<div class='scroll'><table>{rows_html}</table></div>"


def _delta_html(facts: ReviewFacts) -> str:
    return "" if facts.delta is None else f" (<span class='{facts.change}'>{signed_delta(facts.delta)}</span>)"


def _summary_html(facts: ReviewFacts) -> str:
    """The decision at a glance, above the buttons: the deciding metric against the champion, and what Approve does."""
    versus = (f"<span class='{facts.change}'>{_e(facts.change_words)}</span>" if facts.delta is not None
              else "no approved champion yet")
    return (f"<p class='verdict'><strong>{_e(facts.metric)}</strong> = <strong>{facts.value:.4f}</strong> "
            f"<small>({_e(facts.better)})</small>; {versus}; {_e(facts.threshold_line)}.</p>"
            f"<p class='consequence'>{_e(facts.consequence)}</p>")


def _review_html(facts: ReviewFacts) -> str:
    passes = facts.threshold_line.endswith("passes") or facts.threshold is None
    decision = (f"<section><h2>Deciding metric</h2><p class='verdict'><strong>{_e(facts.metric)}</strong> = "
                f"<strong>{facts.value:.4f}</strong> <small>({_e(facts.better)})</small></p>" + _table(
                f"<tr><th>threshold</th><td class='{'pass' if passes else 'miss'}'>{_e(facts.threshold_line)}</td></tr>"
                f"<tr><th>champion</th><td>{'none approved yet' if facts.champion_value is None else f'{facts.champion_value:.4f}'}"
                f"{_delta_html(facts)}{f' (required margin {facts.champion_margin:g})' if facts.champion_margin else ''}</td></tr>"
                f"<tr><th>versus champion</th><td class='{facts.change}'>{_e(facts.change_line)}</td></tr>"
                f"<tr><th>why proposed</th><td>{_e(facts.reason)}</td></tr>") + "</section>")
    names = sorted(set(facts.metrics) | set(facts.champion_metrics or {}), key=str)
    metrics = "".join(f"<tr><th>{_e(n)}</th>{_cell(facts.metrics.get(n, '-'))}"
                      f"{_cell((facts.champion_metrics or {}).get(n, '-'))}</tr>" for n in names)
    hyper = "".join(f"<tr><th>{_e(k)}</th><td class='num'>{_e(json.dumps(v))}</td><td>{type(v).__name__}</td></tr>"
                    for k, v in sorted(facts.hyperparameters.items()))
    lineage = [("git commit", f"<code>{_e(facts.git_commit)}</code> <small>(the deployed source that trained)</small>"),
               *([("claimed commit", f"<code>{_e(facts.claimed_git_commit)}</code> <small>(sent by the requester, "
                                     "not verified)</small>")] if facts.claimed_git_commit else []),
               ("dataset", f"<code>{_e(facts.dataset_uri)}</code>"),
               ("data version", f"<code>{_e(facts.dataset_version)}</code>"),
               ("data sha256", f"<code>{_e(facts.dataset_sha256)}</code>"),
               ("rows", f"{facts.dataset_rows:,}"), ("started by", f"{_e(facts.requested_by)} ({_e(facts.trigger)})"),
               ("execution", f"<code>{_e(facts.execution_arn)}</code>")] + ([
                   ("model sha256", f"<code>{_e(facts.artifact_sha256)}</code> <small>(S3 version "
                                    f"<code>{_e(facts.artifact_version_id)}</code>): you approve exactly these bytes"
                                    "</small>"),
                   ("model artifact", f"<code>{_e(facts.artifact_uri)}</code>"),
                   ("serving image", f"<code>{_e(facts.image)}</code>")] if facts.artifact_sha256 else []) + (
        [("reason given", _e(facts.run_reason))] if facts.run_reason else [])
    return (decision + _card_html(facts.card) + "<section><h2>Metrics</h2>"
            + _table(f"<tr><th>metric</th><th>candidate</th><th>champion</th></tr>{metrics}")
            + "</section>" + _bias_html(facts.evidence) + _attributions_html(facts.evidence)
            + "<section><h2>Lineage</h2>"
            + _table("".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in lineage))
            + "<h3>Hyperparameters</h3>"
            + _table(f"<tr><th>name</th><th>value</th><th>type</th></tr>{hyper}") + "</section>")


_RISK_CLASS = {"High": "miss", "Medium": "same", "Low": "pass"}  # a fixed class, never the card's own text


def _card_html(card: CardSummary | None) -> str:
    """The model card's intended use, risk rating and limits; every text is the card's (from the spec), escaped."""
    if card is None:
        return "<section><h2>Model card</h2><p>This version carries no model card (registered before cards).</p></section>"
    unstated = "<em>not stated (the spec's governance section)</em>"
    rows = [("risk rating", f"<strong class='{_RISK_CLASS.get(card.risk_rating, 'same')}'>{_e(card.risk_rating)}</strong>"
                            + (f" <small>{_e(card.risk_explanation)}</small>" if card.risk_explanation else "")),
            ("purpose", _e(card.purpose) or unstated), ("intended use", _e(card.intended_use) or unstated),
            ("limits", _e(card.limitations) or unstated)]
    rows += [(label, _e(text)) for label, text in (("factors", card.factors),
                                                   ("ethical considerations", card.ethical_considerations)) if text]
    rows.append(("card status", _e(card.status or "-")))
    return ("<section><h2>Model card</h2>"
            + _table("".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)) + "</section>")


def _figure(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _bias_html(evidence: Evidence | None) -> str:
    """Per facet value: its bias metrics (CI, DPL pre-training; DI, DPPL post-training), each figure outside its
    bound (the spec's bias bounds, or disparate impact within 0.8-1.25) marked."""
    if evidence is None or not evidence.bias:
        return "<section><h2>Bias</h2><p>No bias report for this version.</p></section>"
    names = evidence.metric_names
    header = "<tr><th>facet</th><th>group</th>" + "".join(f"<th>{_e(name)}</th>" for name in names) + "</tr>"
    rows = "".join(
        f"<tr><th>{_e(row.facet)}</th><td>{_e(row.value)}</td>" + "".join(
            f"<td class='num{' miss' if name in row.misses else ''}'>{_figure(row.metrics.get(name))}</td>"
            for name in names) + "</tr>" for row in evidence.bias)
    flagged, bounds = len(evidence.flagged), _e(evidence.bounds_words)
    verdict = (f"<p class='miss'>{flagged} group(s) outside the bounds ({bounds}).</p>" if flagged
               else f"<p class='pass'>Every group within the bounds ({bounds}).</p>")
    shown = (f"<p><small>The first {len(evidence.bias)} of {evidence.bias_rows_total} groups (flagged ones first); "
             "the whole report is attached to the version.</small></p>" if evidence.bias_rows_total > len(evidence.bias) else "")
    label = f" <small>(label {_e(evidence.bias_label)})</small>" if evidence.bias_label else ""
    return f"<section><h2>Bias{label}</h2>{verdict}{_table(header + rows)}{shown}</section>"


def _attributions_html(evidence: Evidence | None) -> str:
    """The top features by global importance, each with a bar scaled to the largest."""
    if evidence is None or not evidence.attributions:
        return "<section><h2>Feature attributions</h2><p>No attribution report for this version.</p></section>"
    largest = max(abs(a.importance) for a in evidence.attributions) or 1.0
    rows = "".join(
        f"<tr><th>{_e(a.feature)}</th><td class='num'>{a.importance:.4g}</td>"
        f"<td class='num'>{'-' if a.deviation is None else f'±{a.deviation:.2g}'}</td>"
        f"<td class='barcell'><span class='bar' style='width:{100 * abs(a.importance) / largest:.0f}%'></span></td></tr>"
        for a in evidence.attributions)
    return (f"<section><h2>Feature attributions</h2><p>Top {len(evidence.attributions)} of {evidence.features_total} "
            f"features by {_e(evidence.attribution_method)}.</p>"
            + _table(f"<tr><th>feature</th><th>importance</th><th>sd</th><th></th></tr>{rows}") + "</section>")


def evidence_lines(facts: ReviewFacts) -> list[str]:
    """The email's short account of the card and the evidence (the page shows them whole)."""
    card, evidence = facts.card, facts.evidence
    lines = [f"Model card:       risk rating {one_line(card.risk_rating, 32)}; intended use: "
             f"{one_line(card.intended_use or 'not stated', 300)}; limits: {one_line(card.limitations or 'not stated', 300)}"
             if card else "Model card:       none (registered before cards)"]
    if evidence and evidence.bias:
        flagged = ", ".join(one_line(f"{row.facet}={row.value} " + " ".join(
            f"{name} {_figure(row.metrics.get(name))}" for name in row.misses), 120) for row in evidence.flagged[:5])
        lines.append(f"Bias:             {len(evidence.flagged)} of {evidence.bias_rows_total} groups outside the bounds "
                     f"({one_line(evidence.bounds_words, 200)})" + (f": {flagged}" if flagged else ""))
    else:
        lines.append("Bias:             no report")
    top = ", ".join(one_line(f"{a.feature} {a.importance:.3g}", 60) for a in (evidence.attributions if evidence else [])[:5])
    lines.append(f"Top features:     {top}" if top else "Top features:     no attribution report")
    return lines


def confirm_page(claims: LinkClaims, token: str, record: dict, other_token: str | None = None) -> str:
    """What a link opens: the review, the expiry, and both decisions (the link's own first and marked); nothing
    changes until a button is pressed (mail scanners that open links are harmless)."""
    facts = stored_facts(record)
    model = facts.model if facts else record.get("model", "model")
    version = f" version {facts.version}" if facts and facts.version is not None else ""
    review = _review_html(facts) if facts else f"<pre>{_e(record.get('summary', ''))}</pre>"
    expires = facts.expires_text if facts else datetime.fromtimestamp(claims.expires, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    buttons = {claims.action: token} | ({counterpart(claims).action: other_token} if other_token else {})
    order = [claims.action] + [a for a in ("approve", "reject") if a != claims.action and a in buttons]
    rendered = "".join(
        f"<button class='{action}{' primary' if action == claims.action else ''}' type='submit' name='t' "
        f"value='{_e(buttons[action])}'>{action.title()}</button>" for action in order)
    summary = _summary_html(facts) if facts else ""
    return page(f"Review {model}{version}", (
        f"<p>You are <strong>{_e(claims.approver)}</strong>. Decide by <strong class='expiry'>{_e(expires)}</strong>; "
        "after that the run ends as rejected.</p>"
        f"<section class='summary'>{summary}<form method='post' action='./'>"
        f"<div class='decide'>{rendered}</div>"
        f"<label>Reason (optional, kept in the audit log)<textarea name='reason' maxlength='1000'></textarea></label>"
        "</form><p><small>This page changes nothing until you press a button (mail scanners that open links are "
        f"harmless). Your link chose <strong>{_e(claims.action)}</strong>; both decisions are yours to make here."
        "</small></p></section>"
        f"<p>Model package <code>{_e(claims.package)}</code>, run <code>{_e(claims.execution)}</code>.</p>"
        f"{review}"))


def done_page(decision: str, claims: LinkClaims, decided_at: str) -> str:
    return page(f"Model {decision}", f"<p>Recorded: <strong>{_e(claims.approver)}</strong> {decision} "
                                     f"<code>{_e(claims.package)}</code> at {_e(decided_at)}.</p>"
                                     "<p>The retraining run continues accordingly. You can close this page.</p>")

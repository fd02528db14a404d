"""Approval governance and the messages and pages people see. Pure: no AWS calls."""

from __future__ import annotations

import html
import json
from datetime import datetime
from urllib.parse import quote

from lambdas.approval.tokens import LinkClaims, LinkError, new_nonce, sign
from lambdas.pipeline.logic import one_line

PENDING = "PENDING"


def identity(principal: str) -> str:
    """The person behind an email or an STS ARN (IAM Identity Center session names are emails)."""
    return principal.rsplit("/", 1)[-1].strip().lower()


def starter_identities(requested_by: str, principals: dict[str, list[str]] | None = None) -> set[str]:
    """Every approver identity the starter of a run has: the principal ARN's last segment (session or user name)
    and each approver whose approval.principals patterns match that principal (e.g. an IAM-user pattern, whose
    user name need not be the email): an approver must not approve a run they started as any of them."""
    from lambdas.runs.logic import _matches

    names = {identity(requested_by)}
    names.update(approver.lower() for approver, patterns in (principals or {}).items()
                 if any(_matches(pattern, requested_by) for pattern in patterns))
    return names


def check_governance(claims: LinkClaims, approvers: list[str], requested_by: str,
                     principals: dict[str, list[str]] | None = None) -> None:
    approver = identity(claims.approver)
    if approver not in [a.lower() for a in approvers]:
        raise LinkError(403, "Not an approver", f"{approver} is not listed as an approver of this model.")
    if approver in starter_identities(requested_by, principals):
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


def rate_limit_key(source_ip: str, now: int) -> tuple[str, int]:
    """(counter key, when it may be forgotten) for one client address in the current one-minute window."""
    window = now // RATE_WINDOW_S
    return f"ratelimit#{source_ip}#{window}", (window + 2) * RATE_WINDOW_S


TOO_MANY_REQUESTS = LinkError(429, "Too many requests", "This address sent too many requests; wait a minute and try again.")


def links(base_url: str, execution: str, package: str, approvers: list[str], requested_by: str, expires: int,
          key: bytes, principals: dict[str, list[str]] | None = None) -> dict[str, dict[str, str]]:
    """approver -> {approve: url, reject: url}; the requester gets none (they may not decide)."""
    result, starter = {}, starter_identities(requested_by, principals)
    for approver in approvers:
        if identity(approver) in starter:
            continue
        nonce = new_nonce()
        result[approver] = {action: f"{base_url.rstrip('/')}/?t={quote(sign(LinkClaims(execution, package, approver, action, expires, nonce), key))}"
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


def request_email(model: str, state: dict, champion_metrics: dict | None, approver_links: dict[str, str] | None,
                  timeout_hours: float) -> str:
    """The approval email. Every value that came from input (who started the run and why, the dataset, the
    hyperparameters, metric names, ...) is rendered by one_line: control characters show escaped, so no input can
    start a line of its own (a fake 'Approve:' link); only the lines below made here start a line."""
    run, validation, evaluation = state["run"], state["validation"], state["evaluation"]
    hyperparameters = {k: v for k, v in run["hyperparameters"].items() if not k.startswith("sagemaker_")}
    lines = [f"A new {one_line(model, 64)} model is waiting for your decision.", "",
             f"Model package: {one_line(state['registration']['model_package_arn'])}",
             f"Why it is proposed: {one_line(evaluation['reason'], 1000)}", "",
             metrics_table(evaluation["metrics"], champion_metrics), "",
             "Lineage:",
             f"  git commit:       {one_line(run['git_commit'], 64)}",
             f"  dataset:          {one_line(validation['dataset_uri'], 1100)} "
             f"(version {one_line(validation.get('version_id') or 'unversioned', 1100)})",
             f"  dataset sha256:   {one_line(validation['sha256'], 64)}",
             f"  hyperparameters:  {one_line(json.dumps(hyperparameters, sort_keys=True), 2000)}",
             f"  started by:       {one_line(run['requested_by'], 512)} ({one_line(run['trigger'], 16)})",
             f"  execution:        {one_line(run['execution_arn'])}"]
    if run.get("reason"):
        lines.append(f"  reason given:     {one_line(run['reason'], 2000)}")
    lines.append("")
    if approver_links:
        lines += [f"Approve: {approver_links['approve']}", "", f"Reject:  {approver_links['reject']}", "",
                  f"The links are yours alone, work once, and expire in {timeout_hours:g} hours; then the run ends as rejected."]
    else:
        lines += ["You started this run, so another approver must decide."]
    return "\n".join(lines)


_STYLE = ("body{font-family:system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#222}"
          "pre{background:#f5f5f5;padding:1rem;overflow:auto}button{font-size:1rem;padding:.6rem 1.4rem;margin-right:1rem}"
          ".approve{background:#2e7d32;color:#fff;border:0}.reject{background:#c62828;color:#fff;border:0}"
          "textarea{width:100%;height:5rem}")


def page(title: str, body_html: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
            f"<meta name='robots' content='noindex'><title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body_html}</body></html>")


def error_page(error: LinkError) -> str:
    return page(error.title, f"<p>{html.escape(error.detail)}</p><p>Nothing was changed.</p>")


def confirm_page(claims: LinkClaims, token: str, record: dict) -> str:
    verb = "Approve" if claims.action == "approve" else "Reject"
    return page(f"{verb} {record.get('model', 'model')}?", (
        f"<p>You are <strong>{html.escape(claims.approver)}</strong>. Model package "
        f"<code>{html.escape(claims.package)}</code>, run <code>{html.escape(claims.execution)}</code>.</p>"
        f"<pre>{html.escape(record.get('summary', ''))}</pre>"
        f"<form method='post' action='./'><input type='hidden' name='t' value='{html.escape(token)}'>"
        f"<label>Reason (kept in the audit log)<textarea name='reason' maxlength='1000'></textarea></label><p>"
        f"<button class='{claims.action}' type='submit'>{verb}</button></p></form>"
        "<p>This page changes nothing until you press the button (mail scanners that open links are harmless).</p>"))


def done_page(decision: str, claims: LinkClaims, decided_at: str) -> str:
    return page(f"Model {decision}", f"<p>Recorded: <strong>{html.escape(claims.approver)}</strong> {decision} "
                                     f"<code>{html.escape(claims.package)}</code> at {html.escape(decided_at)}.</p>"
                                     "<p>The retraining run continues accordingly. You can close this page.</p>")

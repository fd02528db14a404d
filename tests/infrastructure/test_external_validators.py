"""cfn-lint, checkov and asl-validator on the synthesized templates of every environment.

Every finding is either fixed or acknowledged, with a reviewed reason, in stacks/validator_findings.yaml;
an acknowledgment that no longer matches any finding is stale and fails too. Each tool runs once per
session over all templates plus a deliberately broken canary, which proves the tool ran and was read.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.infrastructure.conftest import CONTEXT
from tests.support import validators as v


@pytest.fixture(scope="module")
def acknowledgments() -> list[v.Acknowledgment]:
    return v.load_acknowledgments()


@pytest.fixture(scope="module")
def shared_hosting_templates(tmp_path_factory) -> dict:
    """dev serving prod with every model shared-hosted: the shared endpoint, its role and the inference-component
    deployment, which cdk.json's own models (dedicated) do not synthesize."""
    import aws_cdk as cdk

    from stacks.app_builder import build_app

    dev = CONTEXT["mlops:environments"]["dev"]
    environments = {**CONTEXT["mlops:environments"], "dev": {**dev, "serves": "prod", "overrides": {
        **dev["overrides"], "deployment": {**dev["overrides"].get("deployment", {}), "hosting": "shared"}}}}
    app = cdk.App(outdir=str(tmp_path_factory.mktemp("shared-hosting-cdk.out")), context={
        **CONTEXT, "aws:cdk:bundling-stacks": [], "mlops:git_commit": "0123abc", "env": "dev",
        "mlops:environments": environments})
    return {f"{stack.stack_name}-shared-hosting": Path(stack.template_full_path) for stack in build_app(app).synth().stacks
            if stack.stack_name in ("mlops-dev-control", "mlops-dev-churn")}


@pytest.fixture(scope="module")
def templates_with_canary(whole_app_templates, shared_hosting_templates, tmp_path_factory) -> dict:
    canary = v.write_canary(tmp_path_factory.mktemp("validator-canary"))
    return {**whole_app_templates, **shared_hosting_templates, v.CANARY_STACK: canary}


@pytest.fixture(scope="module")
def findings(templates_with_canary, tmp_path_factory) -> dict[str, list[v.Finding]]:
    """tool -> its findings on every template (canary included): each tool run once, the three side by side."""
    asl_dir = tmp_path_factory.mktemp("asl")
    runs = {"cfn-lint": lambda: v.run_cfn_lint(templates_with_canary),
            "checkov": lambda: v.run_checkov(templates_with_canary),
            "asl-validator": lambda: v.run_asl_validator(templates_with_canary, asl_dir)}
    with ThreadPoolExecutor(len(runs)) as pool:
        futures = {tool: pool.submit(run) for tool, run in runs.items()}
        return {tool: future.result() for tool, future in futures.items()}


def _real(findings: list[v.Finding]) -> list[v.Finding]:
    return [f for f in findings if f.stack != v.CANARY_STACK]


@pytest.mark.slow
def test_every_environment_is_validated(whole_app_templates):
    environments = set(CONTEXT["mlops:environments"])
    validated = {stack.split("-")[1] for stack in whole_app_templates}
    assert environments <= validated, f"not synthesized: {sorted(environments - validated)}"


@pytest.mark.slow
def test_each_validator_ran_and_caught_its_canary(findings):
    caught = {(f.tool, f.rule, f.resource) for tool in findings.values() for f in tool if f.stack == v.CANARY_STACK}
    assert v.CANARY_FINDINGS <= caught, f"a validator did not run or its output was not read: {v.CANARY_FINDINGS - caught}"


@pytest.mark.slow
@pytest.mark.parametrize("tool", v.TOOL_NAMES)
def test_every_finding_is_fixed_or_acknowledged(tool, findings, acknowledgments):
    open_findings = v.unacknowledged(_real(findings[tool]), acknowledgments)
    assert not open_findings, (
        f"{len(open_findings)} {tool} finding(s) neither fixed nor acknowledged in "
        f"{v.ACKNOWLEDGMENTS.relative_to(v.REPO_ROOT)}:\n{v.report(open_findings)}")


@pytest.mark.slow
def test_no_acknowledgment_is_stale(findings, acknowledgments):
    real = [f for tool in findings.values() for f in _real(tool)]
    stale = v.stale(real, acknowledgments, set(v.TOOL_NAMES))
    assert not stale, (f"stale acknowledgments in {v.ACKNOWLEDGMENTS.relative_to(v.REPO_ROOT)} (fixed? remove them):\n"
                       + "\n".join(f"  - {problem}" for problem in stale))


@pytest.mark.parametrize("tool", v.TOOL_NAMES)
def test_validator_is_installed(tool):
    path = {"cfn-lint": v.CFN_LINT, "checkov": v.CHECKOV, "asl-validator": v.ASL_VALIDATOR}[tool]
    v.require(path)


def test_acknowledgments_are_reviewed(acknowledgments):
    seen = set()
    for ack in acknowledgments:
        assert ack.tool in v.TOOL_NAMES, f"{ack}: unknown tool"
        assert ack.rule and all(ack.stacks) and all(ack.resources), f"{ack}: rule, stacks and resources are required"
        assert len(ack.reason) >= v.MIN_REASON_CHARS and ack.reason.endswith("."), \
            f"{ack}: the reason must be at least a sentence ({v.MIN_REASON_CHARS}+ characters) saying why it is right"
        assert (ack.tool, ack.rule, ack.stacks, ack.resources) not in seen, f"{ack}: listed twice"
        seen.add((ack.tool, ack.rule, ack.stacks, ack.resources))

"""External validators of the synthesized CloudFormation: cfn-lint, checkov and asl-validator.

Each tool runs once over all templates (one process per tool: their start-up dominates); their findings
are normalized to Finding(tool, rule, stack, resource) and matched against the reviewed acknowledgments
in stacks/validator_findings.yaml. A missing tool raises ToolMissing (tests fail, never skip).
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines.local.cfn import state_machine_definitions

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / ".tools"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
CHECKOV = TOOLS / "checkov-venv" / "bin" / "checkov"
ASL_VALIDATOR = TOOLS / "node_modules" / ".bin" / "asl-validator"
ACKNOWLEDGMENTS = REPO_ROOT / "stacks" / "validator_findings.yaml"
TOOL_NAMES = ("cfn-lint", "checkov", "asl-validator")
MIN_REASON_CHARS = 60
TIMEOUT_S = 600

# A deliberately broken template and state machine run with the real ones: proves each tool ran and its output
# was parsed (an empty findings list from a broken invocation would otherwise pass as "clean").
CANARY_STACK = "validator-canary"
CANARY_TEMPLATE = {
    "Resources": {
        "CanaryBucket": {"Type": "AWS::S3::Bucket", "Properties": {"NoSuchProperty": True}},
        "CanaryFunction": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.14", "Handler": "index.handler", "Role": "arn:aws:iam::111111111111:role/canary",
            "Code": {"ZipFile": "def handler(event, context): return event"}}},
        "CanaryStateMachine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
            "RoleArn": "arn:aws:iam::111111111111:role/canary",
            "DefinitionString": json.dumps({"StartAt": "Start", "States": {"Start": {"Type": "Pass"}}})}},
    },
}
CANARY_FINDINGS = {("cfn-lint", "E3002", "CanaryBucket"), ("checkov", "CKV_AWS_116", "CanaryFunction"),
                   ("asl-validator", "MISSING_TERMINAL_STATE", "CanaryStateMachine")}


class ToolMissing(RuntimeError):
    pass


class ToolFailed(RuntimeError):
    pass


@dataclass(frozen=True, order=True)
class Finding:
    tool: str
    rule: str
    stack: str
    resource: str
    message: str = ""

    def __str__(self) -> str:
        return f"{self.tool} {self.rule} {self.stack}/{self.resource}: {self.message}"


@dataclass(frozen=True)
class Acknowledgment:
    """One reviewed entry: a tool's rule on the resources (logical-id patterns) of the stacks (name patterns)."""
    tool: str
    rule: str
    stacks: tuple[str, ...]
    resources: tuple[str, ...]
    reason: str

    def matches(self, finding: Finding, resources: tuple[str, ...] | None = None) -> bool:
        return (finding.tool == self.tool and finding.rule == self.rule
                and any(fnmatch.fnmatchcase(finding.stack, pattern) for pattern in self.stacks)
                and any(fnmatch.fnmatchcase(finding.resource, pattern) for pattern in resources or self.resources))

    def __str__(self) -> str:
        return f"{self.tool} {self.rule} stacks={list(self.stacks)} resources={list(self.resources)}"


def require(tool: Path) -> Path:
    if not (tool.is_file() and os.access(tool, os.X_OK)):
        raise ToolMissing(f"{tool.relative_to(REPO_ROOT) if tool.is_relative_to(REPO_ROOT) else tool} is missing: "
                          f"run `make setup` (it installs cfn-lint in .venv, checkov in .tools/checkov-venv and "
                          f"asl-validator in .tools/node_modules)")
    return tool


def _run(command: list[str], ok: set[int]) -> subprocess.CompletedProcess:
    # asl-validator is a Node script: the project's Node 22 from .tools first.
    env = {**os.environ, "PATH": f"{TOOLS / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    if result.returncode not in ok:
        raise ToolFailed(f"{' '.join(command[:3])} ... exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def write_canary(directory: Path) -> Path:
    path = directory / f"{CANARY_STACK}.template.json"
    path.write_text(json.dumps(CANARY_TEMPLATE, indent=1))
    return path


def _stack_of(path: str | Path) -> str:
    return Path(path).name.removesuffix(".template.json")


def run_cfn_lint(templates: dict[str, Path]) -> list[Finding]:
    """cfn-lint v1 (errors, warnings and informational rules) over every template in one process."""
    result = _run([str(require(CFN_LINT)), "--format", "json", "--", *map(str, templates.values())], {0, 2, 4, 6, 8, 10, 12, 14})
    findings = []
    for match in json.loads(result.stdout or "[]"):
        path = match["Location"].get("Path") or []
        resource = str(path[1]) if len(path) > 1 and path[0] == "Resources" else "/".join(map(str, path)) or "<template>"
        findings.append(Finding("cfn-lint", match["Rule"]["Id"], _stack_of(match["Filename"]), resource, match["Message"]))
    return findings


def run_checkov(templates: dict[str, Path]) -> list[Finding]:
    """checkov's CloudFormation checks over every template in one process (exit 1: failed checks)."""
    result = _run([str(require(CHECKOV)), "--framework", "cloudformation", "--output", "json", "--quiet", "--compact",
                   "--skip-download", "--file", *map(str, templates.values())], {0, 1})
    reports = json.loads(result.stdout or "[]")
    findings = []
    for report in reports if isinstance(reports, list) else [reports]:
        if report.get("summary", {}).get("parsing_errors"):
            raise ToolFailed(f"checkov could not parse: {report['results'].get('parsing_errors')}")
        for check in report.get("results", {}).get("failed_checks", []):
            resource = check["resource"].split(".", 1)[-1]  # "AWS::Lambda::Function.LogicalId"
            findings.append(Finding("checkov", check["check_id"], _stack_of(check["file_path"]), resource, check["check_name"]))
    return findings


def run_asl_validator(templates: dict[str, Path], workdir: Path) -> list[Finding]:
    """Every state machine's DefinitionString, intrinsics resolved to ${Logical.Attribute} placeholders."""
    validator = str(require(ASL_VALIDATOR))
    findings = []
    for stack, template in templates.items():
        for logical, definition in state_machine_definitions(json.loads(template.read_text())).items():
            path = workdir / f"{stack}.{logical}.asl.json"
            path.write_text(json.dumps(definition, indent=1))
            result = _run([validator, "--json-path", str(path)], {0, 1})
            if result.returncode == 0:
                continue
            lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()]
            errors = [line for line in lines if line and not line.startswith(("✕", "✓"))]
            for line in errors or [f"INVALID: {' '.join(lines)}"]:
                rule, _, message = line.partition(":")
                findings.append(Finding("asl-validator", rule.strip(), stack, logical, message.strip()))
    return findings


def load_acknowledgments(path: Path = ACKNOWLEDGMENTS) -> list[Acknowledgment]:
    entries = yaml.safe_load(path.read_text()) or []
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of acknowledgments")
    fields = {"tool", "rule", "stacks", "resources", "reason"}
    acknowledgments = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != fields:
            raise ValueError(f"{path} entry {index}: needs exactly {sorted(fields)} (got {sorted(entry or {})})")
        patterns = {key: tuple(str(p) for p in (entry[key] if isinstance(entry[key], list) else [entry[key]]))
                    for key in ("stacks", "resources")}
        acknowledgments.append(Acknowledgment(tool=str(entry["tool"]), rule=str(entry["rule"]),
                                              reason=" ".join(str(entry["reason"]).split()), **patterns))
    return acknowledgments


def unacknowledged(findings: list[Finding], acknowledgments: list[Acknowledgment]) -> list[Finding]:
    return sorted(f for f in findings if not any(a.matches(f) for a in acknowledgments))


def stale(findings: list[Finding], acknowledgments: list[Acknowledgment], tools: set[str]) -> list[str]:
    """Acknowledgments of the given tools, and resource patterns within them, that match no finding any more."""
    problems = []
    for ack in (a for a in acknowledgments if a.tool in tools):
        unused = [pattern for pattern in ack.resources if not any(ack.matches(f, (pattern,)) for f in findings)]
        if len(unused) == len(ack.resources):
            problems.append(f"{ack}: matches no finding")
        elif unused:
            problems.append(f"{ack}: resource pattern(s) {unused} match no finding")
    return problems


def report(findings: list[Finding]) -> str:
    return "\n".join(f"  - {finding}" for finding in findings)


def synthesized_templates(assembly_dir: Path) -> dict[str, Path]:
    """stack name -> template path, from a cloud assembly's manifest."""
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    return {name: assembly_dir / artifact["properties"]["templateFile"]
            for name, artifact in manifest["artifacts"].items() if artifact["type"] == "aws:cloudformation:stack"}

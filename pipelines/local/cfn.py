"""Reads synthesized CloudFormation: resolves the intrinsics CDK emits (Ref, Fn::GetAtt, Fn::Join,
Fn::Select, Fn::Split, Fn::Sub's simple form, pseudo parameters) against known physical values, so the
state machine definition the CDK synthesized can run as-is in the local mode and be read by tests.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

Resolver = Callable[[str, str | None], str]  # (logical id, attribute or None for Ref) -> value

PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": None}


def resolve(value: Any, lookup: Resolver, pseudo: dict[str, str] | None = None,
            imports: Callable[[str], str] | None = None) -> Any:
    pseudo = {**PSEUDO, **(pseudo or {})}

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, argument), = node.items()
            if key == "Ref":
                return pseudo[argument] if argument in pseudo else lookup(argument, None)
            if key == "Fn::GetAtt":
                logical, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return lookup(logical, attribute)
            if key == "Fn::Join":
                separator, parts = argument
                return separator.join(str(walk(part)) for part in walk(parts))
            if key == "Fn::ImportValue" and imports is not None:
                return imports(walk(argument))
            if key == "Fn::Select":
                index, items = argument
                return walk(items)[int(walk(index))]
            if key == "Fn::Split":
                separator, text = argument
                return str(walk(text)).split(separator)
            if key == "Fn::Sub" and isinstance(argument, str):
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(_sub(m.group(1))), argument)
        return {key: walk(item) for key, item in node.items()}

    def _sub(name: str) -> Any:
        if name in pseudo:
            return pseudo[name]
        logical, _, attribute = name.partition(".")
        return lookup(logical, attribute or None)

    return walk(value)


def placeholder(logical: str, attribute: str | None) -> str:
    """A readable stand-in for tests: ${Logical} or ${Logical.Attribute}."""
    return f"${{{logical}.{attribute}}}" if attribute else f"${{{logical}}}"


def state_machine_definitions(template: dict, lookup: Resolver = placeholder,
                              pseudo: dict[str, str] | None = None) -> dict[str, dict]:
    """Every AWS::StepFunctions::StateMachine of a template: logical id -> parsed ASL."""
    definitions = {}
    for logical, resource in template.get("Resources", {}).items():
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            raw = resource["Properties"]["DefinitionString"]
            definitions[logical] = json.loads(resolve(raw, lookup, pseudo) if not isinstance(raw, str) else raw)
    return definitions

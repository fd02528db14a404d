"""The layers of the code (issue 26): the shared contract (pipelines' spec, naming, promotion, instances, source and
model-folder modules) at the bottom; the code that runs in AWS (the handlers in lambdas/ and the training kit in
pipelines/modelkit/) on it; the infrastructure (stacks/, which names handlers and reads their constants) above;
the tools (client, CLIs, local mode, scaffolding, drift check) on top. An import goes down or stays in its layer, and
no import circle spans two layers. Read from the source (imports inside functions included)."""

from __future__ import annotations

import ast
from collections import defaultdict

from tests.conftest import REPO_ROOT

CONTRACT = {"pipelines", "pipelines.spec", "pipelines.naming", "pipelines.promotion", "pipelines.instances",
            "pipelines.source", "pipelines.model_folder", "pipelines.model_record"}
ORDER = {"contract": 0, "runtime": 1, "stacks": 2, "tools": 3}


def layer(module: str) -> str:
    if module in CONTRACT:
        return "contract"
    if module.startswith(("lambdas", "pipelines.modelkit")):
        return "runtime"
    return "stacks" if module.startswith("stacks") else "tools"


def import_graph() -> dict[str, set[str]]:
    modules = {}
    for package in ("lambdas", "pipelines", "stacks"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            if "__pycache__" in path.parts or "templates" in path.parts:
                continue
            name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node), on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member), component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_imports_go_down_the_layers_or_stay_in_theirs():
    upward = sorted(f"{source} -> {target}" for source, targets in import_graph().items() for target in targets
                    if ORDER[layer(target)] > ORDER[layer(source)])
    assert not upward, upward


def test_no_import_circle_spans_two_layers():
    spanning = [sorted(cycle) for cycle in cycles(import_graph()) if len({layer(m) for m in cycle}) > 1]
    assert not spanning, spanning


def test_the_layer_check_sees_a_circle_and_an_upward_import():
    graph = {"stacks.a": {"pipelines.client"}, "pipelines.client": {"stacks.a"}, "pipelines.spec": set()}
    assert cycles(graph) == [{"stacks.a", "pipelines.client"}]
    assert ORDER[layer("pipelines.client")] > ORDER[layer("stacks.a")] > ORDER[layer("lambdas.x")] > ORDER[layer("pipelines.spec")]

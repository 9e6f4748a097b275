"""serving/ reads top to bottom: routes above the service above the recommender above the ranking stage and the
retrieval, with no module importing one that imports it back (TYPE_CHECKING imports count too)."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import foryou.serving

PACKAGE = Path(foryou.serving.__file__).parent


def imports() -> dict[str, set[str]]:
    """serving module -> the serving modules it imports (every `from foryou.serving.x import ...`)."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        found = {node.module.rsplit(".", 1)[-1] for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("foryou.serving.")}
        graph[path.stem] = found
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            found = visit(imported, [*path, module])
            if found:
                return found
        done.add(module)
        return None

    return next((found for module in sorted(graph) if (found := visit(module, []))), None)


def test_the_serving_modules_import_each_other_without_a_cycle() -> None:
    assert cycle(imports()) is None


def test_a_request_crosses_each_layer_once_top_to_bottom() -> None:
    graph = imports()
    layers = ["app", "service", "recommender", "reranking", "retrieval", "context"]
    for upper, lower in itertools.combinations(layers, 2):
        assert upper not in graph[lower], f"{lower} imports {upper}, a layer above it"
    assert "recommender" not in graph["reranking"] and "recommender" not in graph["explain"]


def test_the_cycle_finder_finds_one() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None

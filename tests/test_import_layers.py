"""The package's imports run one way: no module imports, even for type checking, one above it.

Every ``import`` and ``from ... import`` under ``src/agentstream`` is read from the source (those
under ``if TYPE_CHECKING:`` and inside functions too), each subpackage of the folder map in
docs/architecture.md counts as one node, and the graph must have no circle: so the folder map can
be drawn with every arrow pointing down.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import agentstream

PACKAGE = Path(agentstream.__file__).resolve().parent
FOLDERS = {
    "cli",
    "demo",
    "replay",
    "observability",
    "integrations",
    "runtime",
    "transports",
    "llm",
    "formats",
    "journal",
}


def _module_of(path: Path) -> str:
    parts = ("agentstream", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_of(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, *([node.module] if node.module else [])])
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target is not None and target != module and target.startswith("agentstream"):
                yield target


def _node(module: str) -> str:
    parts = module.split(".")
    return f"agentstream.{parts[1]}/" if len(parts) > 1 and parts[1] in FOLDERS else module


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _graph(*, by_folder: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        for target in _imports(module, path):
            a, b = (_node(module), _node(target)) if by_folder else (module, target)
            if a != b:
                edges.setdefault(a, set()).add(b)
    return edges


def test_no_two_modules_import_each_other_even_through_others():
    assert _circles(_graph(by_folder=False)) == []


def test_no_subpackage_imports_a_module_that_imports_it_back():
    assert _circles(_graph(by_folder=True)) == []

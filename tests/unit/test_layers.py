"""The arrows point one way: no import cycle among kvmnet's modules.

Every import counts, also one inside a function (a lazy import still makes two modules depend
on each other); only imports under ``if TYPE_CHECKING:`` are left out, as they never run.
Edges into the ``kvmnet`` package itself are left out too: it re-exports lazily.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kvmnet

PACKAGE = Path(kvmnet.__file__).parent


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["kvmnet", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
    return name == "TYPE_CHECKING"


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - child.level + 1]
                target = ".".join(
                    (base if child.level else []) + ([child.module] if child.module else [])
                )
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    # `from . import deadman` imports a module; `from .x import y`, the package
                    found.add(sub if sub in known else target)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in known and m not in (name, "kvmnet")}


def import_graph() -> dict[str, set[str]]:
    """Each kvmnet module and the kvmnet modules it imports."""
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_walk_sees_the_imports_that_matter() -> None:
    graph = import_graph()
    # A top-level import, a lazy one inside a function, and a `from . import module`.
    assert "kvmnet.hostnet.model.plan" in graph["kvmnet.hostnet.apply"]
    assert "kvmnet.hostnet.deadman" in graph["kvmnet.hostnet.apply"]
    assert "kvmnet.core.domainxml" in graph["kvmnet.lan.onboard"]
    # TYPE_CHECKING-only imports are not edges: lanplan only names Host in annotations.
    assert "kvmnet.host" not in graph["kvmnet.lan.lanplan"]


def test_cycles_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_kvmnet_modules() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_values_do_not_import_the_machinery_that_applies_them() -> None:
    graph = import_graph()
    assert not graph["kvmnet.hostnet.model.plan"] & {
        "kvmnet.hostnet.apply",
        "kvmnet.hostnet.deadman",
        "kvmnet.hostnet.rollback",
    }
    assert "kvmnet.lan.onboard" not in graph["kvmnet.lan.lanplan"]

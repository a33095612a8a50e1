"""The arrows point one way: no import cycle among kvmnet's modules, and no module imports a
layer above its own (`LAYERS`: leaves < core < hostnet.model < hostnet.runners < hostnet
machinery < hostnet.backends < hostnet objects < virt < user; docs/architecture.md).

Every import counts, also one inside a function (a lazy import still makes two modules depend
on each other); only imports under ``if TYPE_CHECKING:`` are left out, as they never run.
Edges into the ``kvmnet`` package itself are left out too: it re-exports lazily.
"""

from __future__ import annotations

import ast
import importlib
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


# -- layers -------------------------------------------------------------------------------
# Lowest first: a module may import its own layer and the layers below it, never one above.
# A name ending in ".*" is a package and everything in it; other names are single modules.
# The host-side machinery that executes plans (apply, preflight, snapshot, rollback, the
# dead-man timers...) sits below the backends: a backend hands its plans to `apply_plan` and
# refuses through `preflight.refuse`. The objects users hold on the host side (HostNic,
# Bridge; a backend bound to a machine) sit above them, as they pick and drive a backend.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("leaves", frozenset({"kvmnet.errors", "kvmnet.mode", "kvmnet._defaults", "kvmnet._log"})),
    ("core", frozenset({"kvmnet.core.*"})),
    ("hostnet.model", frozenset({"kvmnet.hostnet.model.*"})),
    ("hostnet.runners", frozenset({"kvmnet.hostnet.runners.*"})),
    (
        "hostnet machinery",
        frozenset(
            {
                "kvmnet.hostnet",
                "kvmnet.hostnet.apply",
                "kvmnet.hostnet.deadman",
                "kvmnet.hostnet.fake",
                "kvmnet.hostnet.inspect",
                "kvmnet.hostnet.preflight",
                "kvmnet.hostnet.remotedeadman",
                "kvmnet.hostnet.rollback",
                "kvmnet.hostnet.snapshot",
                "kvmnet.hostnet.trust",
            }
        ),
    ),
    ("hostnet.backends", frozenset({"kvmnet.hostnet.backends.*"})),
    ("hostnet objects", frozenset({"kvmnet.hostnet.nic", "kvmnet.hostnet.onmachine"})),
    ("virt", frozenset({"kvmnet.virt.*"})),
    # host (the facade tying guests to the host side), lan/, bulk, fleet, testing, cli/,
    # topology/, the public kvmnet.backends re-export and the deprecated paths below.
    ("user", frozenset({"kvmnet.*"})),
)

# Old module paths kept for one release (CHANGELOG, Deprecated): re-exports that nothing in
# kvmnet imports.
DEPRECATED = frozenset(
    {
        "kvmnet.addresses",
        "kvmnet.backends.auto",
        "kvmnet.backends.base",
        "kvmnet.backends.nmcli",
        "kvmnet.domainxml",
        "kvmnet.hostnet.machine",
        "kvmnet.hostnet.plan",
        "kvmnet.hostnet.runner",
        "kvmnet.hostnet.state",
        "kvmnet.macalloc",
        "kvmnet.macledger",
        "kvmnet.neighbours",
        "kvmnet.onboard",
        "kvmnet.progress",
        "kvmnet.validate",
    }
)


def layer_of(module: str, layers: tuple[tuple[str, frozenset[str]], ...] = LAYERS) -> int:
    """The index in ``layers`` of ``module``: its own name if listed, else the longest
    ``package.*`` that holds it."""
    for index, (_, members) in enumerate(layers):
        if module in members:
            return index
    best, depth = -1, -1
    for index, (_, members) in enumerate(layers):
        for member in members:
            package = member.removesuffix(".*")
            holds = module == package or module.startswith(package + ".")
            if member.endswith(".*") and holds and package.count(".") > depth:
                best, depth = index, package.count(".")
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best


def upward_edges(
    graph: dict[str, set[str]], layers: tuple[tuple[str, frozenset[str]], ...] = LAYERS
) -> list[str]:
    """Every import of a higher layer, as "importer (layer) -> imported (layer)"."""
    found = []
    for module in sorted(graph):
        mine = layer_of(module, layers)
        for target in sorted(graph[module]):
            theirs = layer_of(target, layers)
            if theirs > mine:
                found.append(f"{module} ({layers[mine][0]}) -> {target} ({layers[theirs][0]})")
    return found


def test_upward_edges_names_the_offending_import() -> None:
    layers = (
        ("low", frozenset({"p.low.*"})),
        ("mid", frozenset({"p.mid", "p.mid2"})),
        ("top", frozenset({"p.*"})),
    )
    graph = {
        "p.low.a": {"p.mid"},  # lazily or not, an upward import
        "p.mid": {"p.low.a"},
        "p.mid2": {"p.mid"},
        "p.top": {"p.mid", "p.low.a"},
    }
    assert upward_edges(graph, layers) == ["p.low.a (low) -> p.mid (mid)"]
    assert layer_of("p.low", layers) == 0 and layer_of("p.other.x", layers) == 2


def test_every_import_points_down_the_layers() -> None:
    found = upward_edges(import_graph())
    assert found == [], "imports of a higher layer:\n" + "\n".join(found)


def test_every_module_of_the_hostnet_folder_has_a_layer_chosen_for_it() -> None:
    # kvmnet/hostnet/*.py holds two layers (machinery below the backends, objects above):
    # a new module there is placed on purpose, not by the catch-all.
    named = {member for _, members in LAYERS for member in members} | DEPRECATED
    loose = sorted(
        module
        for module, path in _modules().items()
        if path.parent == PACKAGE / "hostnet" and path.name != "__init__.py" and module not in named
    )
    assert loose == [], f"modules in kvmnet/hostnet/ without a layer in LAYERS: {loose}"


def test_the_layers_hold_the_modules_the_architecture_names() -> None:
    assert layer_of("kvmnet.core.validate") < layer_of("kvmnet.hostnet.model.plan")
    assert layer_of("kvmnet.hostnet.runners.sshrunner") < layer_of("kvmnet.hostnet.apply")
    assert layer_of("kvmnet.hostnet.apply") < layer_of("kvmnet.hostnet.backends.base")
    assert layer_of("kvmnet.hostnet.backends.base") < layer_of("kvmnet.hostnet.nic")
    assert layer_of("kvmnet.hostnet.nic") < layer_of("kvmnet.virt._libvirt")
    assert layer_of("kvmnet.virt.domain") < layer_of("kvmnet.host")
    assert layer_of("kvmnet.lan.onboard") == layer_of("kvmnet.cli._common")


def test_nothing_in_kvmnet_imports_a_deprecated_path() -> None:
    graph = import_graph()
    assert set(graph) >= DEPRECATED, sorted(DEPRECATED - set(graph))
    found = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets & DEPRECATED)
    assert found == [], "imports of deprecated module paths: " + "; ".join(found)


def test_a_deprecated_path_gives_the_same_objects_as_the_new_one() -> None:
    for old in sorted(DEPRECATED | {"kvmnet.onboard", "kvmnet.progress"}):
        module = importlib.import_module(old)
        moved_to = module.__doc__.split("`")[1] if module.__doc__ else ""
        new = importlib.import_module(moved_to)
        assert module.__all__ == new.__all__ or sorted(module.__all__) == sorted(new.__all__), old
        for name in module.__all__:
            assert getattr(module, name) is getattr(new, name), f"{old}.{name}"

"""Every public callable documents every parameter, its return and its contract raises.

The public surface is what a user reaches: the names in ``kvmnet.__all__``,
``kvmnet.backends.__all__``, ``kvmnet.testing.__all__``, ``kvmnet.topology.__all__`` and
``kvmnet.hostnet.__all__``, the methods and properties of the public classes among them, and,
transitively, every kvmnet class named in an annotation of something already public (a
``Plan.apply`` that returns an ``ApplyResult`` makes ``ApplyResult`` public). The docstrings
are read in Google style, the way mkdocstrings renders them in the API reference, so a
parameter missing here is a parameter missing from docs/api.md.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import kvmnet
from kvmnet.errors import KvmnetError

ROOT_MODULES = ("kvmnet", "kvmnet.backends", "kvmnet.testing", "kvmnet.topology", "kvmnet.hostnet")

# The calls whose failures are part of the contract: each must say what it raises.
CONTRACT_RAISES = (
    "kvmnet.host.connect",
    "kvmnet.host.Host.domain",
    "kvmnet.virt.domain.Domain.use_bridge",
    "kvmnet.virt.domain.Domain.use_nat",
    "kvmnet.virt.domain.Domain.add_interface",
    "kvmnet.virt.domain.Domain.remove_interface",
    "kvmnet.virt.macalloc.MacAllocator.allocate",
    "kvmnet.virt.macalloc.MacAllocator.reserve",
    "kvmnet.hostnet.nic.Bridge.enslave",
    "kvmnet.hostnet.nic.Bridge.release",
    "kvmnet.hostnet.model.plan.Plan.apply",
    "kvmnet.backends.create_backend",
)

_SECTION = re.compile(r"^(?P<indent>[ ]*)(?P<name>[A-Z][A-Za-z ]*):\s*$")
_ENTRY = re.compile(r"^(?P<name>\*{0,2}[A-Za-z_][\w.]*)(?:\s*\([^)]*\))?\s*:")
# Sphinx roles (:class:`X`, :meth:`~a.b`) render literally under mkdocstrings' markdown.
_RST_ROLE = re.compile(r":(?:class|meth|func|mod|attr|exc|data|obj|ref|py:\w+):`")
_IDENT = re.compile(r"\b[A-Z][A-Za-z0-9]+\b")


def sections(doc: str) -> dict[str, list[str]]:
    """The Google-style sections of ``doc``: section title -> entry names (or text lines)."""
    found: dict[str, list[str]] = {}
    lines = inspect.cleandoc(doc).splitlines()
    current: str | None = None
    entry_indent: int | None = None
    for line in lines:
        match = _SECTION.match(line)
        if match is not None and match["indent"] == "":
            current = match["name"].strip()
            found.setdefault(current, [])
            entry_indent = None
            continue
        if current is None:
            continue
        if line.strip() and not line.startswith(" "):
            current = None  # a flush-left paragraph ends the section
            continue
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if entry_indent is None:
            entry_indent = indent
        if indent == entry_indent:
            entry = _ENTRY.match(line.strip())
            found[current].append(entry["name"].lstrip("*") if entry else line.strip())
    return found


@dataclass(frozen=True)
class Target:
    """One public callable (or class) and the dotted path it is reported under."""

    path: str
    obj: object
    kind: str  # "function", "method", "property", "class"


def _kvmnet_classes() -> dict[str, list[type]]:
    """Every class defined in a kvmnet module (not the CLI), by name."""
    by_name: dict[str, list[type]] = {}
    for info in pkgutil.walk_packages(kvmnet.__path__, "kvmnet."):
        if info.name.startswith("kvmnet.cli") or info.name == "kvmnet.__main__":
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and value.__module__ == module.__name__
                and not name.startswith("_")
                and not any(part.startswith("_") for part in info.name.split("."))
            ):
                by_name.setdefault(name, []).append(value)
    return by_name


def _public_roots() -> Iterator[object]:
    for module_name in ROOT_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            if name.startswith("__"):
                continue
            yield getattr(module, name)


def _own_members(cls: type) -> Iterator[tuple[str, object]]:
    """Public methods and properties ``cls`` defines or inherits from kvmnet classes."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("kvmnet"):
            continue
        for name, value in vars(klass).items():
            if name in seen or name.startswith("_"):
                continue
            seen.add(name)
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property) or inspect.isfunction(value):
                yield name, value


def _annotation_names(obj: object) -> set[str]:
    """Capitalised identifiers in the return annotation of a function or property.

    Only what a caller gets back is followed: a class a public call returns is one the user
    holds and calls methods on; a class a public call merely accepts is not thereby public.
    """
    names: set[str] = set()
    annotations: dict[str, object] = {}
    if isinstance(obj, property) and obj.fget is not None:
        annotations = {"return": obj.fget.__annotations__.get("return")}
    elif inspect.isfunction(obj):
        annotations = {"return": obj.__annotations__.get("return")}
    for value in annotations.values():
        names.update(_IDENT.findall(value if isinstance(value, str) else repr(value)))
    return names


def public_targets() -> list[Target]:
    """Every public callable, class, method and property, each once."""
    classes = _kvmnet_classes()
    targets: dict[int, Target] = {}
    queue: list[object] = list(_public_roots())
    done: set[int] = set()
    while queue:
        obj = queue.pop()
        if id(obj) in done:
            continue
        done.add(id(obj))
        if inspect.isclass(obj):
            if not obj.__module__.startswith("kvmnet"):
                continue
            path = f"{obj.__module__}.{obj.__qualname__}"
            targets[id(obj)] = Target(path, obj, "class")
            for name, member in _own_members(obj):
                owner = next(k for k in obj.__mro__ if name in vars(k))
                if id(member) not in targets:
                    kind = "property" if isinstance(member, property) else "method"
                    targets[id(member)] = Target(
                        f"{owner.__module__}.{owner.__qualname__}.{name}", member, kind
                    )
                queue.append(member)
            for klass in obj.__mro__[1:]:
                if klass.__module__.startswith("kvmnet"):
                    queue.append(klass)
        elif inspect.isfunction(obj):
            if not obj.__module__.startswith("kvmnet"):
                continue
            targets.setdefault(
                id(obj), Target(f"{obj.__module__}.{obj.__qualname__}", obj, "function")
            )
        elif not isinstance(obj, property):
            continue
        for name in _annotation_names(obj):
            for cls in classes.get(name, []):
                queue.append(cls)
    return sorted(targets.values(), key=lambda t: t.path)


def _is_protocol(cls: type) -> bool:
    return bool(getattr(cls, "_is_protocol", False))


def _parameters(target: Target) -> list[str]:
    """The parameters a docstring must name (self, cls, *args and **kwargs aside)."""
    if target.kind == "property":
        return []
    obj = target.obj
    if target.kind == "class":
        assert inspect.isclass(obj)
        if issubclass(obj, enum.Enum) or _is_protocol(obj):
            return []
        init = next((vars(k)["__init__"] for k in obj.__mro__ if "__init__" in vars(k)), None)
        if init is None or init is object.__init__ or not inspect.isfunction(init):
            return []
        if not init.__module__.startswith("kvmnet"):
            return []
        function: Callable[..., object] = init
    else:
        assert callable(obj)
        function = obj
    params = inspect.signature(function).parameters.values()
    return [
        p.name
        for p in params
        if p.name not in {"self", "cls"}
        and not p.name.startswith("_")
        and p.kind not in {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
    ]


def _all_parameters(target: Target) -> set[str]:
    """Every parameter name of a function or method, ``*args`` and ``**kwargs`` included."""
    assert callable(target.obj)
    return set(inspect.signature(target.obj).parameters)


def _docstring(target: Target) -> str:
    obj = target.obj
    if isinstance(obj, property):
        return (obj.fget.__doc__ if obj.fget else None) or ""
    if target.kind == "class":
        assert inspect.isclass(obj)
        own = vars(obj).get("__doc__") or ""
        # A dataclass without a docstring gets a generated "Name(field, ...)" signature.
        if dataclasses.is_dataclass(obj) and own.startswith(f"{obj.__name__}("):
            return ""
        return own
    return getattr(obj, "__doc__", None) or ""


def _documented_parameters(target: Target) -> set[str]:
    found = sections(_docstring(target))
    names = set(found.get("Args", [])) | set(found.get("Arguments", []))
    names |= set(found.get("Parameters", []))
    if target.kind == "class":
        names |= set(found.get("Attributes", []))
        assert inspect.isclass(target.obj)
        init = vars(target.obj).get("__init__")
        if inspect.isfunction(init) and init.__doc__:
            names |= set(sections(init.__doc__).get("Args", []))
    return names


def _returns_value(target: Target) -> bool:
    if target.kind != "function" and target.kind != "method":
        return False
    obj = target.obj
    assert callable(obj)
    annotation = inspect.signature(obj).return_annotation
    return annotation not in {inspect.Signature.empty, None, "None", "NoReturn", "Never"}


def problems() -> tuple[list[str], int]:
    """What is undocumented, and how many parameters were checked."""
    found: list[str] = []
    checked = 0
    for target in public_targets():
        doc = _docstring(target)
        params = _parameters(target)
        checked += len(params)
        if target.kind == "class" and target.path.rsplit(".", 1)[-1].startswith("_"):
            continue  # a private base: its public members are checked, not the class
        if not doc.strip():
            found.append(f"{target.path}: no docstring")
            continue
        documented = _documented_parameters(target)
        for name in params:
            if name not in documented:
                found.append(f"{target.path}: parameter {name!r} not in Args")
        for name in documented - set(params):
            if target.kind in {"function", "method"} and name not in _all_parameters(target):
                found.append(f"{target.path}: Args names {name!r}, which is no parameter")
        if _returns_value(target):
            present = sections(doc)
            if "Returns" not in present and "Yields" not in present:
                found.append(f"{target.path}: no Returns section")
    return found, checked


def raises_problems() -> list[str]:
    """Contract calls without a Raises section naming KvmnetError subclasses that exist."""
    errors = {
        name
        for name, value in vars(importlib.import_module("kvmnet.errors")).items()
        if inspect.isclass(value) and issubclass(value, KvmnetError)
    }
    found: list[str] = []
    for dotted in CONTRACT_RAISES:
        obj = _resolve(dotted)
        raised = sections(getattr(obj, "__doc__", None) or "").get("Raises", [])
        if not raised:
            found.append(f"{dotted}: no Raises section")
        for name in raised:
            if name.rsplit(".", 1)[-1] not in errors:
                found.append(f"{dotted}: Raises names {name!r}, which is no kvmnet error")
    return found


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            value = getattr(value, attr)
        return value
    raise AssertionError(f"cannot resolve {dotted}")


def test_every_public_parameter_return_is_documented() -> None:
    found, checked = problems()
    targets = public_targets()
    print(  # noqa: T201 - the count is the report this test exists for (pytest -s shows it)
        f"{len(targets)} public objects, {checked} parameters checked, {len(found)} gaps"
    )
    assert checked > 300, "the walk found too little public API: is it still reaching it?"
    assert not found, f"{len(found)} gaps:\n" + "\n".join(found)


def test_contract_calls_document_what_they_raise() -> None:
    found = raises_problems()
    assert not found, "\n".join(found)


def test_no_docstring_uses_rst_roles() -> None:
    found = [
        f"{t.path}: {m.group(0)}"
        for t in public_targets()
        for m in _RST_ROLE.finditer(_docstring(t))
    ]
    modules = {importlib.import_module(m) for m in ROOT_MODULES}
    modules |= {
        importlib.import_module(t.path.rsplit(".", 1)[0])
        for t in public_targets()
        if t.kind in {"class", "function"}
    }
    found += [
        f"{m.__name__}: {r.group(0)}" for m in modules for r in _RST_ROLE.finditer(m.__doc__ or "")
    ]
    assert not found, (
        f"{len(found)} RST roles render literally in the API reference:\n" + "\n".join(found)
    )


# Reached only as what a backend's file-format helper returns; the backend pages describe
# the formats, the reference need not render the parsers.
NOT_RENDERED = frozenset(
    {
        "kvmnet.hostnet.backends.interfaces.Config",
        "kvmnet.hostnet.backends.interfaces.Stanza",
        "kvmnet.hostnet.backends.netplanconf.NetplanFile",
        "kvmnet.hostnet.backends.shellvars.ShellVars",
    }
)


def test_the_api_reference_renders_every_public_class_and_function() -> None:
    api = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    directives = set(re.findall(r"^::: (\S+)", api, re.MULTILINE))
    missing = []
    for target in public_targets():
        if target.kind not in {"class", "function"} or target.path in NOT_RENDERED:
            continue
        parts = target.path.split(".")
        if parts[-1].startswith("_"):
            continue
        if not any(".".join(parts[:i]) in directives for i in range(2, len(parts) + 1)):
            missing.append(target.path)
    assert not missing, "not in docs/api.md:\n" + "\n".join(missing)
    for name in ("kvmnet.core.domainxml.IfaceSelector", "kvmnet.hostnet.confirm", "kvmnet.errors"):
        assert name in directives, name


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            """Summary.

            Args:
                a: first.
                b (int): second,
                    continued.
                *names: more.

            Returns:
                Something.

            Raises:
                InvalidInput: bad.
            """,
            {"Args": ["a", "b", "names"], "Returns": ["Something."], "Raises": ["InvalidInput"]},
        ),
        ("No sections here.", {}),
    ],
)
def test_sections_parser(doc: str, expected: dict[str, list[str]]) -> None:
    assert sections(doc) == expected


def test_an_undocumented_parameter_is_found() -> None:
    def sample(a: int, b: int) -> int:
        """Sum.

        Args:
            a: one.

        Returns:
            The sum.
        """
        return a + b

    target = Target("sample", sample, "function")
    assert _parameters(target) == ["a", "b"]
    assert _documented_parameters(target) == {"a"}

"""The backends by name, and making one from its name (the CLI's ``--backend`` words).

Kept apart from the package's ``__init__`` so that ``auto``, which makes the backend it
detects, imports this table rather than the package that imports it.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING

from ...core.validate import shown
from ...errors import InvalidInput

if TYPE_CHECKING:
    from ..runners.runner import Runner
    from .base import Backend

__all__ = ["BACKENDS", "backend_class", "make_backend"]

# name -> (module, class)
BACKENDS: dict[str, tuple[str, str]] = {
    "iproute2": ("iproute2", "Iproute2Backend"),
    "ifcfg": ("ifcfg", "IfcfgBackend"),
    "ifupdown": ("ifupdown", "IfupdownBackend"),
    "nmcli": ("nmcli", "NmcliBackend"),
    "netplan": ("netplan", "NetplanBackend"),
    "networkd": ("networkd", "NetworkdBackend"),
}


def backend_class(module: str, cls: str) -> type[Backend]:
    """Import ``kvmnet.hostnet.backends.MODULE`` (on first use) and return its class ``cls``."""
    found = importlib.import_module(f"kvmnet.hostnet.backends.{module}")
    value: type[Backend] = getattr(found, cls)
    return value


def make_backend(
    name: str,
    *,
    root: str | None = None,
    netns: str | None = None,
    runner: Runner | None = None,
) -> Backend:
    """The concrete backend called ``name`` (see `kvmnet.backends.create_backend`).

    Raises:
        InvalidInput: an unknown name, or an option the backend does not take.
    """
    if name not in BACKENDS:
        known = ", ".join(["auto", *sorted(BACKENDS)])
        raise InvalidInput(f"unknown backend {shown(name)}: use one of {known}")
    cls = backend_class(*BACKENDS[name])
    accepted = inspect.signature(cls).parameters
    kwargs: dict[str, object] = {}
    for key, value in (("root", root), ("netns", netns), ("runner", runner)):
        if value is None:
            continue
        if key not in accepted:
            raise InvalidInput(f"backend {name!r} takes no {key}= (it got {shown(value)})")
        kwargs[key] = value
    backend: Backend = cls(**kwargs)
    return backend

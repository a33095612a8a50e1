"""Host network backends: one pure planner per network stack (see :mod:`.base`).

Usage::

    from kvmnet.backends import Iproute2Backend, IfcfgBackend
    backend = Iproute2Backend(netns="lab-host")

Each backend module is imported on first use, so a missing optional tool never breaks
``import kvmnet.backends``.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING

from ..errors import InvalidInput, InvalidType
from .base import Backend

if TYPE_CHECKING:
    from ..hostnet.runner import Runner
    from .ifcfg import IfcfgBackend
    from .iproute2 import Iproute2Backend
    from .netplan import NetplanBackend
    from .networkd import NetworkdBackend
    from .nmcli import NmcliBackend

__all__ = [
    "BACKENDS",
    "Backend",
    "IfcfgBackend",
    "Iproute2Backend",
    "NetplanBackend",
    "NetworkdBackend",
    "NmcliBackend",
    "create_backend",
]

# CLI name -> (module, class)
BACKENDS: dict[str, tuple[str, str]] = {
    "iproute2": ("iproute2", "Iproute2Backend"),
    "ifcfg": ("ifcfg", "IfcfgBackend"),
    "nmcli": ("nmcli", "NmcliBackend"),
    "netplan": ("netplan", "NetplanBackend"),
    "networkd": ("networkd", "NetworkdBackend"),
}
_BY_CLASS = {cls: module for module, cls in BACKENDS.values()}


def __getattr__(name: str) -> type[Backend]:
    module = _BY_CLASS.get(name)
    if module is None:
        raise AttributeError(f"module 'kvmnet.backends' has no attribute {name!r}")
    value: type[Backend] = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def create_backend(
    name: str,
    *,
    root: str | None = None,
    netns: str | None = None,
    runner: Runner | None = None,
) -> Backend:
    """The backend called ``name`` (iproute2, ifcfg, nmcli, netplan, networkd).

    ``root``/``netns`` are passed only when given; a backend that takes neither refuses it.
    """
    if not isinstance(name, str):
        raise InvalidType(
            f"backend name must be a str such as 'iproute2', got {name!r} ({type(name).__name__})"
        )
    if name not in BACKENDS:
        raise InvalidInput(f"unknown backend {name!r}: use one of {', '.join(sorted(BACKENDS))}")
    cls = __getattr__(BACKENDS[name][1])
    accepted = inspect.signature(cls).parameters
    kwargs: dict[str, object] = {}
    for key, value in (("root", root), ("netns", netns), ("runner", runner)):
        if value is None:
            continue
        if key not in accepted:
            raise InvalidInput(f"backend {name!r} takes no {key}= (it got {value!r})")
        kwargs[key] = value
    backend: Backend = cls(**kwargs)
    return backend

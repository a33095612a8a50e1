"""Host network backends, by class or by name: where users import them from.

Usage::

    from kvmnet.backends import Iproute2Backend, IfcfgBackend, create_backend
    backend = Iproute2Backend(netns="lab-host")
    backend = create_backend("auto", root="/")

The planners themselves live with the host side they plan for, in `kvmnet.hostnet.backends`;
this package re-exports its public names. Each backend class is imported on first use, so a
missing optional tool never breaks ``import kvmnet.backends``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..hostnet import backends as _backends
from ..hostnet.backends import BACKENDS, Backend, create_backend

if TYPE_CHECKING:
    from ..hostnet.backends import (
        IfcfgBackend,
        IfupdownBackend,
        Iproute2Backend,
        NetplanBackend,
        NetworkdBackend,
        NmcliBackend,
    )

__all__ = [
    "BACKENDS",
    "Backend",
    "IfcfgBackend",
    "IfupdownBackend",
    "Iproute2Backend",
    "NetplanBackend",
    "NetworkdBackend",
    "NmcliBackend",
    "create_backend",
]


def _backend_class(name: str) -> type[Backend]:
    """The backend class called ``name``, imported on first use, then cached."""
    if name not in __all__:
        raise AttributeError(f"module 'kvmnet.backends' has no attribute {name!r}")
    value: type[Backend] = getattr(_backends, name)
    globals()[name] = value
    return value


# Only at run time, so that type checkers see the TYPE_CHECKING imports above and a typo
# (``from kvmnet.backends import IfcfgBakend``) fails type checking instead of being Any.
if not TYPE_CHECKING:
    __getattr__ = _backend_class

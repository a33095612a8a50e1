"""Host network backends: one pure planner per network stack (see `.base`).

Usage::

    from kvmnet.backends import Iproute2Backend, IfcfgBackend
    backend = Iproute2Backend(netns="lab-host")

Each backend module is imported on first use, so a missing optional tool never breaks
``import kvmnet.backends``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.validate import shown
from ...errors import InvalidType
from .base import Backend
from .registry import BACKENDS, backend_class, make_backend

if TYPE_CHECKING:
    from ..runners.runner import Runner
    from .ifcfg import IfcfgBackend
    from .ifupdown import IfupdownBackend
    from .iproute2 import Iproute2Backend
    from .netplan import NetplanBackend
    from .networkd import NetworkdBackend
    from .nmcli import NmcliBackend

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

_BY_CLASS = {cls: module for module, cls in BACKENDS.values()}


def _backend_class(name: str) -> type[Backend]:
    """The backend class called ``name``, imported on first use, then cached."""
    module = _BY_CLASS.get(name)
    if module is None:
        raise AttributeError(f"module 'kvmnet.hostnet.backends' has no attribute {name!r}")
    value = backend_class(module, name)
    globals()[name] = value
    return value


# Only at run time, so that type checkers see the TYPE_CHECKING imports above and a typo
# (``from kvmnet.backends import IfcfgBakend``) fails type checking instead of being Any.
if not TYPE_CHECKING:
    __getattr__ = _backend_class


def create_backend(
    name: str,
    *,
    root: str | None = None,
    netns: str | None = None,
    runner: Runner | None = None,
) -> Backend:
    """The backend called ``name``: iproute2, ifcfg, ifupdown, nmcli, netplan, networkd, or
    ``"auto"`` (whatever stack owns the NIC, decided when planning: see
    `AutoBackend`).

    Args:
        name: the backend's name, as the CLI's ``--backend`` takes it.
        root: where a file backend reads and writes (passed only when given).
        netns: the network namespace a runtime backend acts in (passed only when given).
        runner: the runner it reads and acts through (passed only when given).

    Returns:
        The backend.

    Raises:
        InvalidInput: an unknown name, an option the backend does not take, or a bad
            ``root``, ``netns`` or ``runner`` (for ``"auto"`` too; InvalidType for a wrong
            type).
    """
    if not isinstance(name, str):
        raise InvalidType(
            f"backend name must be a str such as 'iproute2', got {shown(name)} "
            f"({type(name).__name__})"
        )
    if name == "auto":
        from .auto import AutoBackend

        # Only None means "this machine's files": "", 0 or [] is a mistake, refused as such.
        return AutoBackend(root="/" if root is None else root, netns=netns, runner=runner)
    return make_backend(name, root=root, netns=netns, runner=runner)

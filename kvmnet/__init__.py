"""kvmnet: KVM guest networking in a few safe lines.

Usage::

    import kvmnet
    with kvmnet.connect("test:///default") as host:
        dom = host.domain("test")
        print(dom.use_bridge("br0", dry_run=True).diff())

Importing kvmnet has no side effects: no libvirt error handler, no logging configuration.
Submodules load on first use, so ``import kvmnet`` stays fast for command-line callers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import _log
from .errors import (
    CommandFailed,
    ConcurrentChange,
    ConfirmationError,
    ConnectionFailed,
    ConnectionLost,
    DomainNotFound,
    HostNicNotFound,
    InterfaceNotFound,
    InvalidBridgeName,
    InvalidInput,
    InvalidMac,
    InvalidName,
    InvalidType,
    KvmnetError,
    LibvirtError,
    LibvirtMissing,
    LiveChangeUnsupported,
    MacInUse,
    MacSpaceExhausted,
    NetworkNotFound,
    NotFound,
    PartiallyApplied,
    PlanFailed,
    PreflightRefused,
    RollbackFailed,
    RolledBack,
    StalePlan,
    UnsupportedEdit,
    UntrustedPath,
    ValidationFailed,
)
from .mode import Mode

if TYPE_CHECKING:
    from .core.change import Change
    from .core.domainxml import DomainXML, GuestInterface
    from .core.network import Network
    from .host import Host, connect
    from .hostnet.model.plan import Plan
    from .hostnet.nic import Bridge, HostNic
    from .virt.addresses import GuestAddress
    from .virt.domain import Domain
    from .virt.macalloc import MacAllocator

__version__ = "0.1.0"

# The library's one logging set-up, a NullHandler on the "kvmnet" logger: now if logging is
# loaded, else when kvmnet first logs (kvmnet._log: a start that logs nothing skips logging).
_log.prepare()

# Public name -> submodule that defines it; resolved lazily by __getattr__ below.
_LAZY = {
    "Bridge": "hostnet.nic",
    "Change": "core.change",
    "Domain": "virt.domain",
    "DomainXML": "core.domainxml",
    "GuestAddress": "virt.addresses",
    "GuestInterface": "core.domainxml",
    "Host": "host",
    "HostNic": "hostnet.nic",
    "MacAllocator": "virt.macalloc",
    "Network": "core.network",
    "Plan": "hostnet.model.plan",
    "connect": "host",
}

__all__ = [
    "Bridge",
    "Change",
    "CommandFailed",
    "ConcurrentChange",
    "ConfirmationError",
    "ConnectionFailed",
    "ConnectionLost",
    "Domain",
    "DomainNotFound",
    "DomainXML",
    "GuestAddress",
    "GuestInterface",
    "Host",
    "HostNic",
    "HostNicNotFound",
    "InterfaceNotFound",
    "InvalidBridgeName",
    "InvalidInput",
    "InvalidMac",
    "InvalidName",
    "InvalidType",
    "KvmnetError",
    "LibvirtError",
    "LibvirtMissing",
    "LiveChangeUnsupported",
    "MacAllocator",
    "MacInUse",
    "MacSpaceExhausted",
    "Mode",
    "Network",
    "NetworkNotFound",
    "NotFound",
    "PartiallyApplied",
    "Plan",
    "PlanFailed",
    "PreflightRefused",
    "RollbackFailed",
    "RolledBack",
    "StalePlan",
    "UnsupportedEdit",
    "UntrustedPath",
    "ValidationFailed",
    "__version__",
    "connect",
]


def _load(name: str) -> object:
    """The public name ``name``, imported from its submodule on first use, then cached."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kvmnet' has no attribute {name!r}")
    value: object = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


# Only at run time: a module-level __getattr__ that mypy could see would make every name
# valid for it (``kvmnet.conect`` would type-check). Type checkers read the TYPE_CHECKING
# imports above instead, so a typo in a public name fails type checking.
if not TYPE_CHECKING:
    __getattr__ = _load


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

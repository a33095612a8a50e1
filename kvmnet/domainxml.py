"""Moved to `kvmnet.core.domainxml`; this module re-exports it for one release.

Deprecated: import from `kvmnet.core.domainxml` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from .core.domainxml import (
    DomainXML,
    GuestInterface,
    GuestInterfaces,
    IfaceSelector,
    iface_selector,
)

__all__ = [
    "DomainXML",
    "GuestInterface",
    "GuestInterfaces",
    "IfaceSelector",
    "iface_selector",
]

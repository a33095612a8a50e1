"""Moved to `kvmnet.virt.addresses`; this module re-exports it for one release.

Deprecated: import from `kvmnet.virt.addresses` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from .virt.addresses import GuestAddress, guest_addresses

__all__ = [
    "GuestAddress",
    "guest_addresses",
]

"""Moved to `kvmnet.hostnet.backends.base`; this module re-exports it for one release.

Deprecated: import from `kvmnet.hostnet.backends.base` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from ..hostnet.backends.base import (
    Backend,
    BackendBase,
    BridgeRequest,
    HostState,
    release_checks,
    stale_addresses,
    standard_checks,
    stop_dhcp_clients,
    stp_warnings,
)

__all__ = [
    "Backend",
    "BackendBase",
    "BridgeRequest",
    "HostState",
    "release_checks",
    "stale_addresses",
    "standard_checks",
    "stop_dhcp_clients",
    "stp_warnings",
]

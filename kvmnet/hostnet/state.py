"""Moved to `kvmnet.hostnet.model.state`; this module re-exports it for one release.

Deprecated: import from `kvmnet.hostnet.model.state` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from .model.state import IpAddress, IpRoute, LinkState

__all__ = [
    "IpAddress",
    "IpRoute",
    "LinkState",
]

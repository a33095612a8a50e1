"""Moved to `kvmnet.hostnet.runners.machine`; this module re-exports it for one release.

Deprecated: import from `kvmnet.hostnet.runners.machine` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from .runners.machine import LOCAL, Machine, machine_of

__all__ = [
    "LOCAL",
    "Machine",
    "machine_of",
]

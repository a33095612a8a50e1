"""Moved to `kvmnet.virt.macalloc`; this module re-exports it for one release.

Deprecated: import from `kvmnet.virt.macalloc` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from .virt.macalloc import MAX_COUNT, MacAllocator, MacMode, SourceReport, ledger_for

__all__ = [
    "MAX_COUNT",
    "MacAllocator",
    "MacMode",
    "SourceReport",
    "ledger_for",
]

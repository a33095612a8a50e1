"""Moved to `kvmnet.hostnet.backends.auto`; this module re-exports it for one release.

Deprecated: import from `kvmnet.hostnet.backends.auto` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from ..hostnet.backends.auto import AutoBackend

__all__ = [
    "AutoBackend",
]

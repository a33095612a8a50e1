"""Progress callbacks for bulk operations: the public path of `kvmnet.core.progress`.

Part of the public surface (docs/api.md): import from here. The module lives in the
layer folder its imports put it in (docs/architecture.md); this one re-exports its names.
"""

from __future__ import annotations

from .core.progress import Progress, track

__all__ = [
    "Progress",
    "track",
]

"""Moved to `kvmnet.hostnet.runners.runner`; this module re-exports it for one release.

Deprecated: import from `kvmnet.hostnet.runners.runner` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from .runners.runner import (
    Call,
    CommandResult,
    LocalRunner,
    NetnsRunner,
    RecordingRunner,
    Runner,
    Scratch,
    default_runner,
    is_read_only,
)

__all__ = [
    "Call",
    "CommandResult",
    "LocalRunner",
    "NetnsRunner",
    "RecordingRunner",
    "Runner",
    "Scratch",
    "default_runner",
    "is_read_only",
]

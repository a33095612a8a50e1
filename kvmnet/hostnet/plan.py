"""Moved to `kvmnet.hostnet.model.plan`; this module re-exports it for one release.

Deprecated: import from `kvmnet.hostnet.model.plan` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from .model.plan import (
    STEP_TYPES,
    Applier,
    Check,
    CheckKind,
    Plan,
    RemoveFile,
    RunCommand,
    StartProcess,
    Step,
    StopProcess,
    WriteFile,
    step_command,
    step_kind,
)

__all__ = [
    "STEP_TYPES",
    "Applier",
    "Check",
    "CheckKind",
    "Plan",
    "RemoveFile",
    "RunCommand",
    "StartProcess",
    "Step",
    "StopProcess",
    "WriteFile",
    "step_command",
    "step_kind",
]

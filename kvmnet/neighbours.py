"""Moved to `kvmnet.virt.neighbours`; this module re-exports it for one release.

Deprecated: import from `kvmnet.virt.neighbours` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from .virt.neighbours import (
    DEFAULT_MAX_ADDRESSES,
    DEFAULT_WAIT,
    Neighbour,
    ProbeResult,
    bridge_subnets,
    parse_neighbours,
    probe,
    read_neighbours,
    send_datagrams,
    sweep_targets,
)

__all__ = [
    "DEFAULT_MAX_ADDRESSES",
    "DEFAULT_WAIT",
    "Neighbour",
    "ProbeResult",
    "bridge_subnets",
    "parse_neighbours",
    "probe",
    "read_neighbours",
    "send_datagrams",
    "sweep_targets",
]

"""Moved to `kvmnet.core.validate`; this module re-exports it for one release.

Deprecated: import from `kvmnet.core.validate` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from .core.validate import (
    backend,
    bounce,
    count,
    dhcp_client,
    domain_name,
    domain_names,
    duration,
    flag,
    force,
    guest_mac,
    ifname,
    listed,
    mac,
    model,
    netns,
    network_name,
    one_line,
    optional_duration,
    optional_flag,
    optional_path,
    path,
    progress,
    root_dir,
    runner,
    shown,
    text,
    uri,
)

__all__ = [
    "backend",
    "bounce",
    "count",
    "dhcp_client",
    "domain_name",
    "domain_names",
    "duration",
    "flag",
    "force",
    "guest_mac",
    "ifname",
    "listed",
    "mac",
    "model",
    "netns",
    "network_name",
    "one_line",
    "optional_duration",
    "optional_flag",
    "optional_path",
    "path",
    "progress",
    "root_dir",
    "runner",
    "shown",
    "text",
    "uri",
]

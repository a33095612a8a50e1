"""Moved to `kvmnet.hostnet.backends.nmcli`; this module re-exports it for one release.

Deprecated: import from `kvmnet.hostnet.backends.nmcli` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from ..hostnet.backends.nmcli import (
    CONNECTION_SPLIT,
    KEYFILE_BRIDGE_SECTIONS,
    KEYFILE_PORT_SECTIONS,
    PROFILE_SETTINGS,
    NmcliBackend,
    match_interface_name,
    parse_terse,
    profile_uuid,
    split_keyfile,
    split_properties,
)

__all__ = [
    "CONNECTION_SPLIT",
    "KEYFILE_BRIDGE_SECTIONS",
    "KEYFILE_PORT_SECTIONS",
    "PROFILE_SETTINGS",
    "NmcliBackend",
    "match_interface_name",
    "parse_terse",
    "profile_uuid",
    "split_keyfile",
    "split_properties",
]

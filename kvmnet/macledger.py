"""Moved to `kvmnet.virt.macledger`; this module re-exports it for one release.

Deprecated: import from `kvmnet.virt.macledger` instead;
docs/architecture.md shows the layer folders.
"""

from __future__ import annotations

from .virt.macledger import (
    DEFAULT_TTL,
    LEDGER_TRUST,
    MacLedger,
    check_private_dir,
    default_state_dir,
)

__all__ = [
    "DEFAULT_TTL",
    "LEDGER_TRUST",
    "MacLedger",
    "check_private_dir",
    "default_state_dir",
]

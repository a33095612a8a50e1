"""Defaults shared by modules that must not import each other (a value here costs no import).

``host`` takes :data:`DEFAULT_ADDRESS_TIMEOUT` as a parameter default without importing
``lanplan`` (two dataclasses built on every ``kvmnet`` start); ``lanplan`` re-exports it.
"""

from __future__ import annotations

__all__ = ["DEFAULT_ADDRESS_TIMEOUT"]

#: How long :meth:`kvmnet.lan.lanplan.LanPlan.apply` waits for the guest's new address by
#: default (seconds).
DEFAULT_ADDRESS_TIMEOUT = 60.0

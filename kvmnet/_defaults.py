"""Defaults shared by modules that must not import each other (a value here costs no import).

``host`` takes :data:`DEFAULT_ADDRESS_TIMEOUT` as a parameter default without importing
``lanplan`` (two dataclasses built on every ``kvmnet`` start); ``lanplan`` re-exports it.
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_ADDRESS_TIMEOUT", "DEFAULT_URI", "default_uri"]

#: The libvirt URI without ``-c``/``uri=`` and ``$LIBVIRT_DEFAULT_URI`` (virsh's too).
DEFAULT_URI = "qemu:///system"


def default_uri(uri: str | None = None) -> str:
    """``uri`` if given, else ``$LIBVIRT_DEFAULT_URI``, else ``qemu:///system``: the one rule
    for which hypervisor (`kvmnet.connect`, every CLI command, virsh alike).

    Args:
        uri: the URI given (``-c``, ``connect(uri)``), or None.

    Returns:
        The URI to act on.
    """
    return uri or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI


#: How long :meth:`kvmnet.lan.lanplan.LanPlan.apply` waits for the guest's new address by
#: default (seconds).
DEFAULT_ADDRESS_TIMEOUT = 60.0

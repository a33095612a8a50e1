"""The records `kvmnet.virt._libvirt` hands up: named tuples, made by the calls that need them.

A module of their own so that importing `_libvirt` (every command-line start that connects)
does not build them: a named tuple compiles its constructor when its class is made, and a
listing or a switch makes none of these. ``kvmnet.virt._libvirt.Lease`` and the other old
names still resolve (to these).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DomainXmls", "Lease", "NetworkLease", "ReadBack"]


class Lease(NamedTuple):
    """One address libvirt reports for a guest NIC (``interfaceAddresses``)."""

    mac: str
    address: str
    prefix: int


class DomainXmls(NamedTuple):
    """A domain's XML texts as `Connection.domain_xmls` read them.

    ``persistent`` is None when the domain is not running (its live XML is its definition);
    ``error`` says why a text could not be read (then the texts are empty or partial).
    A named tuple rather than a dataclass: thousands are made per inventory, cheaply.
    """

    name: str
    live: str
    persistent: str | None
    error: str | None = None


class NetworkLease(NamedTuple):
    """One DHCP lease of a libvirt network (``DHCPLeases``); ``expiry`` in epoch seconds."""

    mac: str
    address: str
    prefix: int
    expiry: int


class ReadBack(NamedTuple):
    """A domain as a fresh connection sees it: ``live`` None when it is not running."""

    live: str | None
    persistent: str | None

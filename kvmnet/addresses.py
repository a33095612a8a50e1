"""A running guest's IP addresses, and which source knew them.

Sources, tried in order for the MACs still unanswered: libvirt's DHCP lease records (guests on
libvirt networks), the QEMU guest agent (where the guest runs one), the host's ARP table
(libvirt's, then ``/proc/net/arp`` for a local host). A bridged guest appears in the ARP table
only after the host has talked to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import _libvirt
from .errors import KvmnetError

if TYPE_CHECKING:
    from ._libvirt import DomainHandle
    from .domainxml import GuestInterface

__all__ = ["GuestAddress", "guest_addresses"]

log = logging.getLogger(__name__)

_PROC_ARP = Path("/proc/net/arp")


@dataclass(frozen=True)
class GuestAddress:
    """One address of a guest NIC: ``source`` is "lease", "agent" or "arp"."""

    mac: str
    address: str
    prefix: int | None
    source: str

    def __str__(self) -> str:
        prefix = f"/{self.prefix}" if self.prefix is not None else ""
        return f"{self.mac} {self.address}{prefix} ({self.source})"


def guest_addresses(
    handle: DomainHandle, interfaces: Iterable[GuestInterface], uri: str
) -> list[GuestAddress]:
    """Addresses of ``interfaces`` (the running guest's), first source to answer per MAC."""
    wanted = {i.mac for i in interfaces if i.mac is not None}
    found: list[GuestAddress] = []
    for source, code in (
        ("lease", _libvirt.ADDR_SRC_LEASE),
        ("agent", _libvirt.ADDR_SRC_AGENT),
        ("arp", _libvirt.ADDR_SRC_ARP),
    ):
        if not wanted:
            break
        try:
            leases = handle.interface_addresses(code)
        except KvmnetError as exc:
            log.debug("domain %r: no addresses from %s: %s", handle.name, source, exc)
            leases = []
        answered = set()
        for lease in leases:
            if lease.mac in wanted:
                found.append(GuestAddress(lease.mac, lease.address, lease.prefix, source))
                answered.add(lease.mac)
        wanted -= answered
    if wanted and _is_local(uri):
        found.extend(_proc_arp(wanted))
    return found


def _is_local(uri: str) -> bool:
    from .macalloc import is_local_uri

    return is_local_uri(uri)


def _proc_arp(macs: set[str]) -> list[GuestAddress]:
    """Rows of the kernel's ARP table whose hardware address is one of ``macs``."""
    try:
        lines = _PROC_ARP.read_text().splitlines()[1:]
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        # IP address, HW type, Flags, HW address, Mask, Device; flags 0x0 = incomplete.
        if len(fields) >= 4 and fields[3].lower() in macs and fields[2] != "0x0":
            found.append(GuestAddress(fields[3].lower(), fields[0], None, "arp"))
    return found

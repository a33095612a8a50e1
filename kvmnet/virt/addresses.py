"""A running guest's IP addresses, and which source knew them.

Sources, tried in order for the MACs still unanswered: libvirt's DHCP lease records (guests on
libvirt networks), the QEMU guest agent (where the guest runs one), the host's ARP table
(libvirt's, then ``/proc/net/arp`` for a local host). A bridged guest appears in the ARP table
only after the host has talked to it: with ``probe=True`` the NICs still unanswered that sit on
a Linux bridge of this host get an opt-in sweep of that bridge's subnet
(`kvmnet.virt.neighbours.probe`), and what the bridge's neighbour table then holds for their
MACs is reported with source "probe".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _log
from ..errors import KvmnetError
from . import _libvirt

if TYPE_CHECKING:
    from ..core.domainxml import GuestInterface
    from ..hostnet.runners.runner import Runner
    from ._libvirt import DomainHandle

__all__ = ["GuestAddress", "guest_addresses"]

log = _log.get(__name__)

_PROC_ARP = Path("/proc/net/arp")


@dataclass(frozen=True)
class GuestAddress:
    """One address of a guest NIC, and which source reported it.

    Attributes:
        mac: the guest NIC's MAC.
        address: the IP address, without prefix.
        prefix: the prefix length, when the source knows it.
        source: who answered: "lease", "agent", "arp" or "probe".
    """

    mac: str
    address: str
    prefix: int | None
    source: str

    def __str__(self) -> str:
        prefix = f"/{self.prefix}" if self.prefix is not None else ""
        return f"{self.mac} {self.address}{prefix} ({self.source})"


def guest_addresses(
    handle: DomainHandle,
    interfaces: Iterable[GuestInterface],
    uri: str,
    *,
    probe: bool = False,
    bridges: Mapping[str, str] | None = None,
    runner: Runner | None = None,
) -> list[GuestAddress]:
    """Addresses of ``interfaces`` (the running guest's), first source to answer per MAC.

    ``probe``: then sweep the bridge of each MAC still unanswered (``bridges`` maps a MAC to
    its Linux bridge) through ``runner``; only for a local ``uri``.
    """
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
        arp = _proc_arp(wanted)
        found.extend(arp)
        wanted -= {a.mac for a in arp}
    if probe and wanted:
        found.extend(_probed(handle.name, wanted, uri, bridges or {}, runner))
    return found


def _probed(
    name: str, macs: set[str], uri: str, bridges: Mapping[str, str], runner: Runner | None
) -> list[GuestAddress]:
    """The neighbour-table answers after probing the bridges that ``macs`` are on."""
    from .neighbours import probe

    if not _is_local(uri) and runner is None:
        log.warning(
            "domain %r: no probe for %s: %s is not this host, whose bridges kvmnet cannot "
            "sweep; run kvmnet on that host", name, ", ".join(sorted(macs)), uri,
        )
        return []
    by_bridge: dict[str, set[str]] = {}
    for mac in sorted(macs):
        bridge = bridges.get(mac)
        if bridge is None:
            log.info("domain %r: %s is not on a Linux bridge: not probed", name, mac)
        else:
            by_bridge.setdefault(bridge, set()).add(mac)
    found = []
    for bridge, wanted in by_bridge.items():
        try:
            result = probe(bridge, wanted, runner=runner)
        except KvmnetError as exc:
            log.warning("domain %r: probe on %s failed: %s", name, bridge, exc)
            continue
        found += [GuestAddress(n.mac, n.address, None, "probe") for n in result.found]
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

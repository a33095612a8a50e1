"""Which network stack owns a NIC: the evidence, read from the machine (pure over HostState).

Every stack leaves traces kvmnet can read without changing anything:

=============  ===========================================================================
kind           evidence
=============  ===========================================================================
netplan        a YAML file in /etc/netplan, /run/netplan or /lib/netplan names the NIC
nmcli          NetworkManager runs and manages the NIC (``nmcli device status``)
ifcfg          an ifcfg file in /etc/sysconfig/network-scripts names the NIC (with
               NetworkManager's ifcfg-rh plugin, or the legacy initscripts)
networkd       systemd-networkd manages the NIC, or a .network file matches it
ifupdown       /etc/network/interfaces (or a file it sources) has an ``iface NIC`` stanza
iproute2       none of the above: runtime only, nothing survives a reboot
=============  ===========================================================================

netplan *renders* for NetworkManager or networkd, so their traces agree with it; NetworkManager
reading ifcfg files is one stack too. Two stacks that both claim the NIC (NetworkManager
manages it and ifupdown has a stanza) are a contradiction: `detect` refuses, naming
both, rather than guess which one the host really follows.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from ...errors import PreflightRefused
from ..model.request import HostState
from .interfaces import read_config

__all__ = ["Detection", "detect"]

NETPLAN_DIRS = ("/etc/netplan", "/run/netplan", "/lib/netplan")
IFCFG_DIR = "/etc/sysconfig/network-scripts"
NETWORK_DIRS = ("/etc/systemd/network", "/run/systemd/network", "/lib/systemd/network",
                "/usr/lib/systemd/network")
INTERFACES = "/etc/network/interfaces"


@dataclass(frozen=True)
class Detection:
    """The stack that owns a NIC (``kind``: a backend name) and why (``evidence``)."""

    kind: str
    evidence: tuple[str, ...]

    def describe(self) -> str:
        return f"backend auto -> {self.kind}: " + "; ".join(self.evidence)


Read = Callable[[str], "str | None"]


def _files(current: HostState, rooted: Callable[[str], str], folder: str) -> list[str]:
    names = current.list_dir(rooted(folder)) or ()
    return [posixpath.join(folder, n) for n in sorted(names)]


def _netplan(nic: str, current: HostState, read: Read, rooted: Callable[[str], str]) -> list[str]:
    # A key "NIC:" inside a network definition, or a "set-name: NIC": text is enough to see
    # that a file names the NIC, without a YAML parser.
    key = re.compile(rf"^\s+[\"']?{re.escape(nic)}[\"']?\s*:\s*(#.*)?$|set-name:\s*[\"']?"
                     rf"{re.escape(nic)}[\"']?\s*$", re.M)
    out = []
    for folder in NETPLAN_DIRS:
        for path in _files(current, rooted, folder):
            text = read(path) if path.endswith(".yaml") else None
            if text and key.search(text):
                renderer = re.search(r"^\s*renderer:\s*(\S+)", text, re.M)
                how = f" (renderer {renderer.group(1)})" if renderer else ""
                out.append(f"netplan file {path} defines {nic}{how}")
    return out


def _ifcfg(nic: str, current: HostState, read: Read, rooted: Callable[[str], str]) -> list[str]:
    out = []
    device = re.compile(rf"^\s*(DEVICE|NAME)=[\"']?{re.escape(nic)}[\"']?\s*$", re.M)
    for path in _files(current, rooted, IFCFG_DIR):
        base = posixpath.basename(path)
        if not base.startswith("ifcfg-") or base == "ifcfg-lo":
            continue
        text = read(path) or ""
        if base == f"ifcfg-{nic}" or device.search(text):
            out.append(f"ifcfg file {path} configures {nic}")
    return out


def _networkd(nic: str, current: HostState, read: Read, rooted: Callable[[str], str]) -> list[str]:
    from .networkd import matches
    from .unitfile import UnitFile

    out = []
    for folder in NETWORK_DIRS:
        for path in _files(current, rooted, folder):
            if not path.endswith(".network"):
                continue
            text = read(path)
            if text is None:
                continue
            doc = UnitFile.parse(text)
            match = doc.section("Match")
            if match is not None and match.get("Name") and matches(doc, current.nic):
                out.append(f"networkd file {path} matches {nic}")
    return out


def _ifupdown(nic: str, current: HostState, read: Read, rooted: Callable[[str], str]) -> list[str]:
    config = read_config(INTERFACES, read, lambda p: current.list_dir(rooted(p)))
    return [f"ifupdown stanza `iface {s.name} {s.family} {s.method}` at {s.where}"
            for s in config.stanzas_of(nic)]


def detect(
    nic: str, current: HostState, *, rooted: Callable[[str], str] = lambda p: p
) -> Detection:
    """Which backend owns ``nic`` on the machine ``current`` was read from.

    Args:
        nic: the NIC's name.
        current: the host as read through the backend's runner (``managed_by`` and files).
        rooted: maps a path on the machine to where it is read (a backend's ``root``).

    Returns:
        The `Detection`: a backend name and the evidence for it.

    Raises:
        PreflightRefused: two stacks claim the NIC (check ``"detect"``).
    """

    def read(path: str) -> str | None:
        data = current.read_file(rooted(path))
        return None if data is None else data.decode("utf-8", errors="replace")

    netplan = _netplan(nic, current, read, rooted)
    ifcfg = _ifcfg(nic, current, read, rooted)
    networkd = _networkd(nic, current, read, rooted)
    ifupdown = _ifupdown(nic, current, read, rooted)
    claims: dict[str, list[str]] = {}
    daemon = current.managed_by
    if netplan:
        # netplan's own output (for NetworkManager or networkd) is netplan's claim.
        claims["netplan"] = netplan + ([f"{daemon} manages {nic} now"] if daemon else [])
    elif daemon == "NetworkManager":
        kind = "ifcfg" if ifcfg else "nmcli"
        claims[kind] = [f"NetworkManager manages {nic} now", *ifcfg]
    elif daemon == "systemd-networkd" or networkd:
        claims["networkd"] = ([f"systemd-networkd manages {nic} now"] if daemon else []) + networkd
    elif ifcfg:
        claims["ifcfg"] = ifcfg
    if ifupdown:
        claims["ifupdown"] = ifupdown
    if netplan and networkd and daemon != "systemd-networkd":
        # networkd files of the admin's own beside netplan's: both would configure it.
        own = [e for e in networkd if "netplan" not in e]
        if own:
            claims["networkd"] = own
    if len(claims) > 1:
        named = "; ".join(f"{kind}: {', '.join(ev)}" for kind, ev in claims.items())
        raise PreflightRefused(
            f"more than one network stack claims {nic} ({named}): kvmnet cannot tell which "
            "one the host follows. Remove the stale configuration, or name the backend "
            "(backend=..., CLI --backend)",
            check="detect",
        )
    if claims:
        kind, evidence = next(iter(claims.items()))
        return Detection(kind, tuple(evidence))
    return Detection(
        "iproute2",
        (f"no network stack configures {nic} (no NetworkManager, networkd, netplan, ifupdown "
         "or ifcfg trace): runtime only, the bridge does not survive a reboot",),
    )

"""systemd-networkd: a .netdev for the bridge and two .network files, then ``networkctl``.

Files under ``root`` in ``/etc/systemd/network``::

    10-kvmnet-br0.netdev     [NetDev] Name=br0 Kind=bridge MACAddress=<NIC MAC>
                             [Bridge] STP=false ForwardDelaySec=0
                             (a MAC the bridge's own files set is kept: `admin_mac`)
    10-kvmnet-br0.network    [Match] Name=br0 + the bridge's own .network (if any) + every
                             IP-level setting of the NIC's .network and its drop-ins
    10-kvmnet-eth0.network   [Match] Name=eth0 + every link-level setting of the NIC's
                             .network and its drop-ins, [Network] Bridge=br0

**The split** (`NETWORK_SPLIT`, `PORT_SECTIONS`, `BRIDGE_SECTIONS`, derived
from systemd.network(5)): what configures the wire (``[Link]``, ``VLAN=``, LLDP, ``[SR-IOV]``,
queueing disciplines...) stays on the port; what configures IP (addresses, routes, rules,
DHCP, RA, DNS, link-local...) moves to the bridge. A key or section kvmnet does not know, a NIC
that is already a port (``Bridge=``, ``Bond=``, ``VRF=``, ``BatmanAdvanced=``) or unmanaged
(``Unmanaged=yes``) is refused with the reason (`PreflightRefused`):
nothing is dropped silently.

**Why the names sort first.** networkd applies to a link the *first* .network file, in file
name order across /etc, /run and /lib/systemd/network, whose [Match] fits; later ones are
ignored. Our files must therefore sort before the file that configures the NIC now (e.g.
``20-wired.network``) and before a file that configures the bridge. The prefix is
``10-kvmnet-``, or a smaller one when an existing match sorts earlier. The old files stay
untouched: release removes kvmnet's files and every file is as it was, byte for byte. A
bridge's own .network (and .netdev) is merged into kvmnet's, so nothing of it is shadowed;
a setting both sides give different values is refused.

**Reading the files as networkd does.** Continued lines (a trailing backslash) are one
setting (`UnitFile`); an empty file or a link to /dev/null masks its name; a [Match] that
sets nothing is ignored. Under another root on this machine, symlinks are followed inside it
(`Rooted.chase`), as networkd booted from that image follows them: an absolute link such as
AL2023's ``70-ens5.network -> /usr/lib/systemd/network/80-ec2.network`` is the image's file.

**Same lease on the bridge.** networkd's DHCP client identifies itself by DUID + IAID, and the
IAID comes from the interface name, so br0 would ask for a *different* lease than eth0 had.
When networkd's lease file for the NIC is readable (``lease_dir``), its client id's IAID is
copied into br0's ``[DHCPv4] IAID=``; otherwise br0 uses ``ClientIdentifier=mac`` (br0 has the
NIC's MAC) and the plan warns that the address may change.

**Another root.** With ``root`` other than ``/`` the plan only writes files (an image, a
chroot): no ``networkctl``, ``ip`` or ``kill`` runs on this machine, and nothing is verified
here.

There is no offline validator for these files (``systemd-analyze verify`` refuses them):
kvmnet's tests run the real networkd in a namespace and read its log for "ignoring" lines.
Apply: ``networkctl reload`` then ``networkctl reconfigure NIC``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
import re
from collections.abc import Iterable

from ...core.names import validate_netns_name
from ...errors import PreflightRefused
from ..model.plan import Check, Plan, RemoveFile, RunCommand, Step
from ..model.request import BridgeRequest, HostState
from ..model.state import LinkState
from ..runners.runner import LocalRunner, Runner
from .filebackend import (
    FileBackendBase,
    leased_v4,
    on_bus,
    read_text,
    stp_warnings,
    takeover_steps,
    write_step,
)
from .unitfile import Section, UnitFile

__all__ = [
    "BRIDGE_SECTIONS",
    "NETWORK_DIRS",
    "NETWORK_SPLIT",
    "PORT_SECTIONS",
    "NetworkdBackend",
    "lease_iaid",
    "matches",
    "render_files",
    "split_network",
]

# networkd's search path (systemd.network(5)), first wins for a name; /lib last (split /usr).
NETWORK_DIRS = (
    "/etc/systemd/network",
    "/run/systemd/network",
    "/usr/local/lib/systemd/network",
    "/usr/lib/systemd/network",
    "/lib/systemd/network",
)
OUR_DIR = "/etc/systemd/network"
_PREFIXES = ("10-kvmnet-", "05-kvmnet-", "00-kvmnet-", "0-kvmnet-", "!kvmnet-")

#: Sections of a .network file that configure IP on the link: they move to the bridge.
BRIDGE_SECTIONS = frozenset(
    {
        "Address",
        "Neighbor",
        "IPv6AddressLabel",
        "RoutingPolicyRule",
        "NextHop",
        "Route",
        "DHCP",  # the old name of [DHCPv4]
        "DHCPv4",
        "DHCPv6",
        "DHCPPrefixDelegation",
        "DHCPv6PrefixDelegation",  # its old name
        "IPv6PrefixDelegation",  # old name of [IPv6SendRA]
        "IPv6AcceptRA",
        "DHCPServer",
        "DHCPServerStaticLease",
        "IPv6SendRA",
        "IPv6Prefix",
        "IPv6RoutePrefix",
        "IPv6PREF64Prefix",
    }
)
#: Sections that configure the wire, the device or its queues: they stay on the port.
PORT_SECTIONS = frozenset(
    {
        "Link",
        "SR-IOV",
        "Bridge",  # the link's settings *as a bridge port*: now they apply
        "BridgeFDB",
        "BridgeMDB",
        "BridgeVLAN",
        "LLDP",
        "CAN",
        "IPoIB",
        "QDisc",
        "NetworkEmulator",
        "TokenBucketFilter",
        "PIE",
        "FlowQueuePIE",
        "StochasticFairBlue",
        "StochasticFairnessQueueing",
        "BFIFO",
        "PFIFO",
        "PFIFOHeadDrop",
        "PFIFOFast",
        "CAKE",
        "ControlledDelay",
        "DeficitRoundRobinScheduler",
        "DeficitRoundRobinSchedulerClass",
        "EnhancedTransmissionSelection",
        "GenericRandomEarlyDetection",
        "FairQueueingControlledDelay",
        "FairQueueing",
        "TrivialLinkEqualizer",
        "HierarchyTokenBucket",
        "HierarchyTokenBucketClass",
        "HeavyHitterFilter",
        "QuickFairQueueing",
        "QuickFairQueueingClass",
        "TrafficControlQueueingDiscipline",
    }
)
_PORT, _BRIDGE, _ROLE, _HOOK = "port", "bridge", "role", "hook"
# VLAN= stays on the port: the kernel hands tagged frames to the VLAN device before the
# bridge sees them. MACVLAN/MACVTAP/IPVLAN/IPVTAP take the link's one receive hook, which the
# bridge needs (the kernel refuses such a port: EBUSY), so they move to the bridge, where they
# reach the same LAN; VXLAN/Tunnel/Xfrm/L2TP run over the link's IP addresses, which move.
_NETWORK_PORT_KEYS = (
    "Description LLDP EmitLLDP BindCarrier IPoIB VLAN KeepMaster ActiveSlave PrimarySlave"
)
_NETWORK_STACKED_ON_BRIDGE = "MACVLAN MACVTAP IPVLAN IPVTAP VXLAN Tunnel Xfrm L2TP"
_NETWORK_BRIDGE_KEYS = (
    "DHCP DHCPServer LinkLocalAddressing IPv6LinkLocalAddressGenerationMode "
    "IPv6StableSecretAddress IPv4LL IPv4LLStartAddress IPv4LLRoute DefaultRouteOnDevice LLMNR "
    "MulticastDNS DNSOverTLS DNSSEC DNSSECNegativeTrustAnchors Address Gateway DNS Domains "
    "DNSDefaultRoute NTP IPForward IPMasquerade IPv6PrivacyExtensions IPv6AcceptRA "
    "IPv6AcceptRouterAdvertisements IPv6DuplicateAddressDetection IPv6HopLimit IPv4AcceptLocal "
    "IPv4RouteLocalnet IPv4ReversePathFilter IPv4ProxyARP ProxyARP IPv6ProxyNDP "
    "IPv6ProxyNDPAddress IPv6SendRA IPv6PrefixDelegation DHCPPrefixDelegation "
    "DHCPv6PrefixDelegation IPv6Token IPv6MTUBytes ConfigureWithoutCarrier IgnoreCarrierLoss "
    "KeepConfiguration " + _NETWORK_STACKED_ON_BRIDGE
)
#: ``[Network]`` key -> "port" (link-level: stays), "bridge" (IP-level, or a device that
#: cannot share the port with the bridge: moves), "role" (the NIC is a port of something
#: already: refused) or "hook" (MACsec: needs the link's receive hook too: refused).
NETWORK_SPLIT: dict[str, str] = {
    **{k: _PORT for k in _NETWORK_PORT_KEYS.split()},
    **{k: _BRIDGE for k in _NETWORK_BRIDGE_KEYS.split()},
    **{k: _ROLE for k in ("Bridge", "Bond", "VRF", "BatmanAdvanced")},
    "MACsec": _HOOK,
}
# [Link] keys about addresses: the port has none, the bridge has them.
_LINK_BRIDGE_KEYS = frozenset({"RequiredFamilyForOnline"})
# Keys that may be given several times (a list); any other key given by both the bridge's own
# file and the NIC's with different values is a conflict.
_LIST_KEYS_TEXT = (
    "Address Gateway DNS Domains NTP DNSSECNegativeTrustAnchors IPv6ProxyNDPAddress "
    "BindCarrier VLAN MACVLAN MACVTAP IPVLAN IPVTAP VXLAN Tunnel MACsec Xfrm L2TP "
    "RequestOptions SendOption SendVendorOption UserClass VendorClass DenyList AllowList "
    "RouterDenyList RouterAllowList PrefixDenyList PrefixAllowList RouteDenyList "
    "RouteAllowList"
)
_LIST_KEYS = frozenset(_LIST_KEYS_TEXT.split())
# Sections that may repeat, each one a new object (an address, a route...).
_REPEATED = frozenset(
    {
        "Address",
        "Neighbor",
        "IPv6AddressLabel",
        "RoutingPolicyRule",
        "NextHop",
        "Route",
        "DHCPServerStaticLease",
        "IPv6Prefix",
        "IPv6RoutePrefix",
        "IPv6PREF64Prefix",
        "BridgeFDB",
        "BridgeMDB",
        "BridgeVLAN",
    }
)


def _values(section: Section | None, key: str) -> list[str]:
    """Every value of ``key`` in ``section``, after systemd's "empty resets the list"."""
    out: list[str] = []
    for k, v in section.entries if section is not None else ():
        if k == key:
            out = [] if not v else [*out, *v.split()]
    return out


def _name_matches(patterns: list[str], name: str) -> bool:
    """systemd's Name= list: globs, the whole list negated by a leading ``!``."""
    if not patterns:
        return True
    negate = patterns[0].startswith("!")
    globs = [patterns[0][1:], *patterns[1:]] if negate else patterns
    hit = any(fnmatch.fnmatchcase(name, g) for g in globs if g)
    return hit != negate


def matches(doc: UnitFile, link: LinkState) -> bool:
    """Whether a .network file's [Match] could pick ``link`` (Name= globs, MACAddress=,
    PermanentMACAddress=; other criteria count as yes, so that our file is placed first).

    A file whose [Match] sets nothing (none, or only empty values) picks no link: networkd
    ignores it ("No valid settings found in the [Match] section, ignoring file")."""
    merged = Section("Match")
    for section in doc.sections:
        if section.name == "Match":
            merged.entries += section.entries
    if not any(value for _, value in merged.entries):
        return False
    if not _name_matches(_values(merged, "Name"), link.name):
        return False
    for key in ("MACAddress", "PermanentMACAddress"):
        macs = [m.lower() for m in _values(merged, key)]
        if macs and link.mac.lower() not in macs:
            return False
    return True


def _names_link(doc: UnitFile, name: str) -> bool:
    """Whether ``doc``'s [Match] names ``name`` by a Name= glob (not a catch-all)."""
    merged = Section("Match")
    for section in doc.sections:
        if section.name == "Match":
            merged.entries += section.entries
    patterns = _values(merged, "Name")
    return bool(patterns) and not patterns[0].startswith("!") and _name_matches(patterns, name)


def lease_iaid(lease: str) -> int | None:
    """The IAID in a networkd lease file's ``CLIENTID=ff<iaid:8 hex><duid>``, if any."""
    for line in lease.splitlines():
        if line.startswith("CLIENTID="):
            cid = line.split("=", 1)[1].strip()
            if cid.lower().startswith("ff") and len(cid) >= 10:
                return int(cid[2:10], 16)
    return None


def split_network(doc: UnitFile, source: str) -> tuple[UnitFile, UnitFile]:
    """Split a NIC's .network (with its drop-ins) into (port part, bridge part), in order.

    ``[Match]`` goes to neither (the caller writes its own). Link-level settings go to the
    port, IP-level ones to the bridge (see the module docstring).

    Args:
        doc: The NIC's file, its drop-ins appended.
        source: Its name, for the messages.

    Returns:
        (port, bridge): the NIC's sections, each keeping only what belongs there.

    Raises:
        PreflightRefused: the NIC is already a port (``Bridge=``/``Bond=``/``VRF=``/
            ``BatmanAdvanced=``), is ``Unmanaged=yes``, or has a key or section kvmnet does
            not know (it would be lost or misplaced).
    """
    port, bridge = UnitFile(), UnitFile()
    for section in doc.sections:
        if section.name == "Match":
            continue
        if section.name in BRIDGE_SECTIONS:
            bridge.sections.append(Section(section.name, list(section.entries)))
        elif section.name == "Link":
            if (section.get("Unmanaged") or "no").lower() in ("yes", "true", "1", "on"):
                raise PreflightRefused(
                    f"{source} says [Link] Unmanaged=yes: networkd does not manage this NIC, "
                    "so it cannot bridge it; remove that line or use another backend",
                    check="networkd-unmanaged",
                )
            port.sections.append(
                Section("Link", [e for e in section.entries if e[0] not in _LINK_BRIDGE_KEYS])
            )
            moved = [e for e in section.entries if e[0] in _LINK_BRIDGE_KEYS]
            if moved:
                bridge.sections.append(Section("Link", moved))
        elif section.name in PORT_SECTIONS:
            port.sections.append(Section(section.name, list(section.entries)))
        elif section.name == "Network":
            mine, theirs = Section("Network"), Section("Network")
            for key, value in section.entries:
                where = NETWORK_SPLIT.get(key)
                if where is None:
                    raise PreflightRefused(
                        f"{source}: [Network] {key}={value} is a setting kvmnet does not know "
                        "(not in systemd.network(5) of its version), so it cannot tell whether "
                        "it belongs on the port or the bridge; remove it or bridge by hand",
                        check="networkd-unknown-key",
                    )
                if where == _HOOK and value:
                    raise PreflightRefused(
                        f"{source}: [Network] {key}={value}: the kernel gives a link's receive "
                        "hook to MACsec or to a bridge, not both, and MACsec on the bridge would "
                        "not protect the guests' frames; bridge another NIC or drop MACsec",
                        check="networkd-port-conflict",
                    )
                if where == _ROLE and value:
                    raise PreflightRefused(
                        f"{source}: [Network] {key}={value}: the NIC is already a port of "
                        f"{value}; release it from there first",
                        check="already-port",
                    )
                (mine if where == _PORT else theirs).entries.append((key, value))
            if mine.entries:
                port.sections.append(mine)
            if theirs.entries:
                bridge.sections.append(theirs)
        else:
            raise PreflightRefused(
                f"{source}: section [{section.name}] is one kvmnet does not know (not in "
                "systemd.network(5) of its version), so it cannot tell whether it belongs on "
                "the port or the bridge; remove it or bridge by hand",
                check="networkd-unknown-key",
            )
    return port, bridge


def merge_into(base: UnitFile, extra: UnitFile, what: str) -> UnitFile:
    """``base`` with ``extra``'s sections added; a single-valued key both give differently is
    refused (networkd would take the last, silently overriding one side).

    Raises:
        PreflightRefused: the two disagree on a single-valued key.
    """
    out = UnitFile([Section(s.name, list(s.entries)) for s in base.sections])
    for section in extra.sections:
        if section.name not in _REPEATED:
            # Only against base: within one side, a later drop-in overrides an earlier value.
            for old in base.sections:
                if old.name != section.name:
                    continue
                for key, value in section.entries:
                    have = old.get(key)
                    if key not in _LIST_KEYS and have is not None and have != value:
                        raise PreflightRefused(
                            f"[{section.name}] {key}: {what} ({have!r} vs {value!r}); make "
                            "them agree, or remove one",
                            check="networkd-conflict",
                        )
        out.sections.append(Section(section.name, list(section.entries)))
    return out


_HEX2 = "([0-9a-f]{2})"
# The forms systemd's MAC parser reads: 01:23:45:67:89:ab, 01-23-45-67-89-ab, 0123.4567.89ab.
_MAC_FORMS = tuple(
    re.compile(form)
    for form in (":".join([_HEX2] * 6), "-".join([_HEX2] * 6), r"\.".join([_HEX2 * 2] * 3))
)


def _mac(value: str | None) -> str | None:
    """``value`` as ``aa:bb:cc:dd:ee:ff`` if it is a MAC in a form systemd reads, else None."""
    text = (value or "").strip().lower()
    for form in _MAC_FORMS:
        found = form.fullmatch(text)
        if found:
            return ":".join(found.groups())
    return None


def admin_mac(
    bridge_network: UnitFile | None, bridge_netdev: UnitFile | None
) -> tuple[str, str] | None:
    """The MAC the bridge's own files give it, and where: ``("network", MAC)`` for its
    .network's ``[Link] MACAddress=`` (networkd sets it on the link, so it is the one the
    bridge ends up with), else ``("netdev", MAC)`` for its .netdev's ``[NetDev]
    MACAddress=``; None when neither sets one.

    Args:
        bridge_network: The bridge's own .network (with drop-ins), if any.
        bridge_netdev: The bridge's own .netdev (with drop-ins), if any.

    Returns:
        (which file, the MAC as ``aa:bb:cc:dd:ee:ff``), or None.
    """
    mac = _mac(bridge_network.get("Link", "MACAddress")) if bridge_network else None
    if mac is not None:
        return "network", mac
    mac = _mac(bridge_netdev.get("NetDev", "MACAddress")) if bridge_netdev else None
    return ("netdev", mac) if mac is not None else None


def _dhcp_identity(br: UnitFile, iaid: int | None) -> None:
    dhcp = ""
    for section in br.sections:
        if section.name == "Network":
            dhcp = (section.get("DHCP") or dhcp).lower()
    if dhcp not in ("yes", "true", "ipv4", "1", "on"):
        return
    if br.get("DHCPv4", "ClientIdentifier") or br.get("DHCPv4", "IAID"):
        return
    if br.get("DHCP", "ClientIdentifier") or br.get("DHCP", "IAID"):
        return
    v4 = br.section("DHCPv4") or br.add("DHCPv4")
    if iaid is not None:
        v4.add("IAID", str(iaid))
    else:
        v4.add("ClientIdentifier", "mac")


def render_files(
    *,
    nic: LinkState,
    bridge: str,
    nic_network: UnitFile | None,
    stp: bool,
    forward_delay: int,
    iaid: int | None,
    bridge_network: UnitFile | None = None,
    bridge_netdev: UnitFile | None = None,
    sources: tuple[str, str, str] = ("the NIC's .network", "the bridge's .network", ""),
) -> tuple[str, str, str]:
    """(netdev, bridge .network, NIC .network) texts.

    Args:
        nic: The NIC as the kernel reports it (its MAC; its addresses when it has no file).
        bridge: The bridge's name.
        nic_network: The NIC's .network with its drop-ins appended, if it has one.
        stp: STP on the bridge.
        forward_delay: The bridge's forward delay, seconds.
        iaid: The IAID of the NIC's DHCPv4 lease, if known.
        bridge_network: The bridge's own .network (with drop-ins), merged into kvmnet's.
        bridge_netdev: The bridge's own .netdev (with drop-ins), merged into kvmnet's.
        sources: Names of the NIC's and bridge's .network files, for messages.

    Returns:
        The three texts.

    Raises:
        PreflightRefused: see `split_network` and `merge_into`.
    """
    head = f"# Written by kvmnet: bridge {bridge} with port {nic.name}.\n"
    netdev = UnitFile()
    if bridge_netdev is not None:
        for section in bridge_netdev.sections:
            netdev.sections.append(Section(section.name, list(section.entries)))
    nd = netdev.section("NetDev") or netdev.add("NetDev")
    _set(nd, "Name", bridge)
    _set(nd, "Kind", "bridge")
    # A MAC the bridge's own files set is the admin's choice: kept (the plan warns), as
    # netplan keeps it; otherwise the bridge takes the NIC's, so the LAN sees the same host.
    theirs = admin_mac(bridge_network, bridge_netdev)
    mac = theirs[1] if theirs else nic.mac
    if _mac(nd.get("MACAddress")) is None:
        _set(nd, "MACAddress", mac)
    bsec = netdev.section("Bridge") or netdev.add("Bridge")
    _set(bsec, "STP", "true" if stp else "false")
    _set(bsec, "ForwardDelaySec", str(forward_delay))

    if nic_network is not None:
        port_part, ip_part = split_network(nic_network, sources[0])
    else:
        port_part, ip_part = UnitFile(), UnitFile()
        net = ip_part.add("Network")
        _from_state(nic, net.entries)

    ours = UnitFile()
    ours.add("Match").add("Name", bridge)
    if theirs is None or theirs[0] != "network":
        # The .netdev sets the MAC only when networkd creates br0; this also fixes an existing
        # one. (The bridge's own .network setting it is merged in below, as it was written.)
        ours.add("Link").add("MACAddress", mac)
    base = UnitFile([s for s in ours.sections])
    if bridge_network is not None:
        own = UnitFile([s for s in bridge_network.sections if s.name != "Match"])
        base = merge_into(base, own, f"kvmnet and {sources[1]} disagree")
    br = merge_into(base, ip_part, f"{sources[1]} and {sources[0]} disagree")
    _dhcp_identity(br, iaid)

    port = UnitFile()
    match = port.add("Match").add("Name", nic.name)
    for section in nic_network.sections if nic_network is not None else ():
        if section.name == "Match":
            # Further conditions (MACAddress=, Host=, Virtualization=...) keep applying;
            # Name= is replaced by the NIC's own name, so a glob reaches no other link.
            match.entries += [e for e in section.entries if e[0] != "Name"]
    port.sections += port_part.sections
    port.add("Network").add("Bridge", bridge).add("LinkLocalAddressing", "no").add(
        "IPv6AcceptRA", "no"
    )
    return netdev.render(head), br.render(head), port.render(head)


def _set(section: Section, key: str, value: str) -> None:
    section.entries = [e for e in section.entries if e[0] != key]
    section.add(key, value)


def _from_state(nic: LinkState, entries: list[tuple[str, str]]) -> None:
    if leased_v4(nic):
        entries.append(("DHCP", "ipv4"))
    else:
        entries += [("Address", a.cidr) for a in nic.global_addresses]


@dataclasses.dataclass(frozen=True)
class _Found:
    """A config file networkd reads, with its drop-ins appended (``doc``)."""

    name: str
    paths: tuple[str, ...]
    doc: UnitFile


class NetworkdBackend(FileBackendBase):
    """systemd-networkd files under ``root``, activated with networkctl (in ``netns``).

    Args:
        root: Where the configuration lives; other than ``/``, the plan only writes files.
        netns: The network namespace networkctl and ip act in.
        runner: Runs the commands (default: one for ``netns``).
        bus_address: A D-Bus address for networkctl (a private bus in tests), passed as
            ``env DBUS_SYSTEM_BUS_ADDRESS=...``.
        lease_dir: Where networkd keeps its leases.
        files_only: Only write files: no networkctl, ip or kill on this machine, nothing
            verified. None (default): when ``root`` is not ``/`` and no ``netns`` says where
            the files are live (a lab namespace that mounts ``root``'s folder).
    """

    reads_files = "networkd reads them at its next start or `networkctl reload`"

    name = "networkd"
    config_dirs = NETWORK_DIRS

    def __init__(
        self,
        *,
        root: str = "/",
        netns: str | None = None,
        runner: Runner | None = None,
        bus_address: str | None = None,
        lease_dir: str = "/run/systemd/netif/leases",
        files_only: bool | None = None,
    ) -> None:
        if netns is not None:
            validate_netns_name(netns)
        super().__init__(root=root, netns=netns, runner=runner)
        self.bus_address = bus_address
        self.lease_dir = lease_dir
        self.files_only = self.root != "/" and netns is None if files_only is None else files_only

    def __repr__(self) -> str:
        return f"<NetworkdBackend root={self.root!r} runner={self._runner!r}>"

    def networkctl(self, *args: str) -> tuple[str, ...]:
        """The ``networkctl`` argv, on the backend's D-Bus when one is set.

        Args:
            *args: networkctl's arguments.

        Returns:
            The argv to run.
        """
        return on_bus(self.bus_address, "networkctl", *args)

    def config_files(self, current: HostState, suffix: str) -> list[tuple[str, str]]:
        """Every ``suffix`` file networkd reads, in its order.

        A name in an earlier directory shadows the same name in later ones.

        Args:
            current: the host as it is now (its files are read through it).
            suffix: ``".network"``, ``".netdev"`` or ``".link"``.

        Returns:
            ``(file name, path)`` pairs.
        """
        seen: dict[str, str] = {}
        for directory in NETWORK_DIRS:
            full = self.paths(directory)
            where = self._readable(current, full)
            for name in (current.list_dir(where) if where else None) or ():
                if name.endswith(suffix) and name not in seen:
                    seen[name] = posixpath.join(full, name)
        return sorted(seen.items())

    def network_files(self, current: HostState) -> list[tuple[str, str]]:
        """Every .network file networkd reads, in its order.

        Args:
            current: the host as it is now (its files are read through it).

        Returns:
            ``(file name, path)`` pairs.
        """
        return self.config_files(current, ".network")

    def dropins(self, current: HostState, name: str) -> list[str]:
        """Paths of ``name.d/*.conf`` in networkd's order (by file name; /etc shadows /lib).

        Args:
            current: the host as it is now (its files are read through it).
            name: the unit file's name.

        Returns:
            The drop-ins' paths.
        """
        seen: dict[str, str] = {}
        for directory in NETWORK_DIRS:
            full = self.paths(posixpath.join(directory, name + ".d"))
            where = self._readable(current, full)
            for conf in (current.list_dir(where) if where else None) or ():
                if conf.endswith(".conf") and conf not in seen:
                    seen[conf] = posixpath.join(full, conf)
        return [seen[k] for k in sorted(seen)]

    def _readable(self, current: HostState, path: str) -> str | None:
        """Where to read ``path`` (a path under ``root``, as `paths` maps it).

        Under another root on this machine, the symlinks on it are followed *inside* the root,
        as networkd booted from it follows them: amazon-ec2-net-utils' absolute
        ``70-ens5.network -> /usr/lib/systemd/network/80-ec2.network`` is the image's file,
        not this machine's (which may be missing, or another file). On ``/``, or when the
        files are not this machine's (a recording or remote runner), ``path`` itself.

        Returns:
            The path to read; None for a link to ``/dev/null`` (a mask) or a loop.
        """
        if self.root == "/" or not isinstance(current.files, LocalRunner):
            return path
        inside = self.paths.chase("/" + posixpath.relpath(path, self.root))
        if inside is None or inside == "/dev/null":
            return None
        return self.paths(inside)

    def _read(self, current: HostState, path: str) -> str | None:
        where = self._readable(current, path)
        return read_text(current, where) if where is not None else None

    def _load(self, current: HostState, name: str, path: str) -> _Found | None:
        text = self._read(current, path)
        if not text:
            # Missing, or masked: networkd skips an empty file or a link to /dev/null
            # (null_or_empty_path), and the same name further down the path stays shadowed.
            return None
        paths = [path]
        doc = UnitFile.parse(text)
        for conf in self.dropins(current, name):
            extra = self._read(current, conf)
            if extra is not None:
                paths.append(conf)
                doc.sections += UnitFile.parse(extra).sections
        return _Found(name, tuple(paths), doc)

    def _first(
        self, current: HostState, suffix: str, want: LinkState, *, named: bool = False
    ) -> _Found | None:
        for name, path in self.config_files(current, suffix):
            if name.startswith(_PREFIXES):
                continue
            found = self._load(current, name, path)
            if found is None:
                continue
            if named and not _names_link(found.doc, want.name):
                continue
            if matches(found.doc, want):
                return found
        return None

    def _nic_file(self, current: HostState) -> _Found | None:
        return self._first(current, ".network", current.nic)

    def _bridge_files(
        self, current: HostState, bridge: str, nic: _Found | None
    ) -> tuple[_Found | None, _Found | None]:
        """The bridge's own .network (one that names it, not the NIC's) and .netdev."""
        link = current.bridge or LinkState(bridge, current.nic.mac, kind="bridge")
        network = self._first(current, ".network", link, named=True)
        if network is not None and nic is not None and network.name == nic.name:
            network = None
        netdev = None
        for name, path in self.config_files(current, ".netdev"):
            if name.startswith(_PREFIXES):
                continue
            found = self._load(current, name, path)
            if found is not None and found.doc.get("NetDev", "Name") == bridge:
                netdev = found
                break
        if netdev is not None:
            kind = netdev.doc.get("NetDev", "Kind")
            if kind != "bridge":
                raise PreflightRefused(
                    f"{netdev.name} makes {bridge} a {kind}, not a bridge: pick another "
                    "bridge name",
                    check="bridge-kind",
                )
        return network, netdev

    def _stacked_to_move(self, found: _Found | None) -> list[tuple[str, str]]:
        """(name, kind) of the MACVLAN/MACVTAP/IPVLAN/IPVTAP devices the NIC's file stacks on
        it that exist now: they hold the NIC's receive hook, so they must go before it can
        be a port (networkd then creates them on the bridge)."""
        if found is None:
            return []
        merged = Section("Network")
        for section in found.doc.sections:
            if section.name == "Network":
                merged.entries += section.entries
        out: list[tuple[str, str]] = []
        for kind in ("MACVLAN", "MACVTAP", "IPVLAN", "IPVTAP"):
            for name in _values(merged, kind):
                shown = self._runner.run(("ip", "-j", "link", "show", "dev", name), check=False)
                if shown.ok and shown.stdout.strip() not in ("", "[]"):
                    out.append((name, kind))
        return out

    def _iaid(self, current: HostState) -> int | None:
        mine = {a.ip for a in current.nic.global_addresses}
        for name in current.list_dir(self.lease_dir) or ():
            text = read_text(current, posixpath.join(self.lease_dir, name)) or ""
            address = next((ln[8:] for ln in text.splitlines() if ln.startswith("ADDRESS=")), "")
            if address in mine:
                return lease_iaid(text)
        return None

    def prefix(self, before: str | Iterable[str | None] | None) -> str:
        """The first of kvmnet's prefixes that sorts before every name in ``before``.

        Args:
            before: a file name, or several (None entries are skipped).

        Returns:
            The prefix for kvmnet's file names, e.g. ``"10-kvmnet-"``.
        """
        names = [before] if before is None or isinstance(before, str) else list(before)
        names = [n for n in names if n is not None]
        for prefix in _PREFIXES:
            if all(prefix < n for n in names if n is not None):
                return prefix
        return _PREFIXES[-1]

    def plan_enslave(self, request: BridgeRequest, current: HostState) -> Plan:
        """Write the bridge's .netdev/.network and the port's .network, then reload.

        Args:
            request: The NIC, the bridge and its STP/forward delay.
            current: The host as it is (links, and files under ``root``).

        Returns:
            The plan.

        Raises:
            PreflightRefused: see `split_network`; the bridge's own file disagrees with
                the NIC's; an existing .netdev makes the bridge another kind.
        """
        nic, br = current.nic, request.bridge
        found = self._nic_file(current)
        br_network, br_netdev = self._bridge_files(current, br, found)
        warnings = stp_warnings(request)
        iaid = self._iaid(current)
        netdev, br_net, port = render_files(
            nic=nic,
            bridge=br,
            nic_network=found.doc if found else None,
            stp=request.stp,
            forward_delay=request.forward_delay,
            iaid=iaid,
            bridge_network=br_network.doc if br_network else None,
            bridge_netdev=br_netdev.doc if br_netdev else None,
            sources=(
                found.name if found else "the NIC's state",
                br_network.name if br_network else "",
                br_netdev.name if br_netdev else "",
            ),
        )
        if "DHCP=" in br_net and iaid is None and "ClientIdentifier=mac" in br_net:
            warnings.append(
                f"no networkd lease of {nic.name} found: {br} asks for a lease by "
                f"MAC, which a server may answer with a different address"
            )
        warnings += self._mac_warnings(current, br, br_network, br_netdev)
        if br_netdev is not None:
            theirs = br_netdev.doc
            for key, value in (
                ("STP", "true" if request.stp else "false"),
                ("ForwardDelaySec", str(request.forward_delay)),
            ):
                have = theirs.get("Bridge", key)
                if have is not None and have != value:
                    warnings.append(
                        f"{br_netdev.name} says [Bridge] {key}={have}; kvmnet's .netdev, which "
                        f"sorts first and so wins, says {value} (the rest of it is carried)"
                    )
        prefix = self.prefix(
            [
                found.name if found else None,
                br_network.name if br_network else None,
                br_netdev.name if br_netdev else None,
            ]
        )
        directory = self.paths(OUR_DIR)
        carried = found.paths if found else ()
        steps: list[Step] = [
            write_step(
                current,
                posixpath.join(directory, f"{prefix}{br}.netdev"),
                netdev,
                mode=0o644,
                why=f"{br} with {nic.name}'s MAC"
                + (f"; carries {br_netdev.name}" if br_netdev else ""),
            ),
            write_step(
                current,
                posixpath.join(directory, f"{prefix}{br}.network"),
                br_net,
                mode=0o644,
                why=f"{nic.name}'s IP settings"
                + (
                    f" from {', '.join(posixpath.basename(p) for p in carried)}"
                    if found
                    else " from its runtime state"
                )
                + (f"; carries {br_network.name}" if br_network else ""),
            ),
            write_step(
                current,
                posixpath.join(directory, f"{prefix}{nic.name}.network"),
                port,
                mode=0o644,
                why=f"{found.name}'s link settings; sorts before it" if found else f"port of {br}",
            ),
        ]
        if self.files_only:
            return self._files_only("enslave", request, current, steps, warnings)
        steps += takeover_steps(current, request)
        moved = self._stacked_to_move(found)
        steps += [
            RunCommand(
                ("ip", "link", "del", name),
                f"the kernel refuses a bridge port with a {kind}: networkd recreates it on {br}",
            )
            for name, kind in moved
        ]
        steps.append(RunCommand(self.networkctl("reload"), f"create {br}, read the new files"))
        steps.append(
            RunCommand(
                self.networkctl("reconfigure", nic.name), f"{nic.name} now matches the port file"
            )
        )
        hints: tuple[Step, ...] = (RunCommand(self.networkctl("reload")),)
        delete = RunCommand(("ip", "link", "del", br), "networkd never deletes a netdev")
        if moved and current.bridge is None:
            # The MACVLANs on br0 go with it; the NIC, no longer a port, can have them back.
            hints += (delete, RunCommand(self.networkctl("reconfigure", nic.name)))
        else:
            hints += (RunCommand(self.networkctl("reconfigure", nic.name)),)
            if current.bridge is None:
                hints += (delete,)
        plan = self._plan(
            "enslave",
            request,
            current,
            steps,
            warnings=warnings,
            rollback_hints=hints,
            restore_runtime=False,
        )
        kept = admin_mac(
            br_network.doc if br_network else None, br_netdev.doc if br_netdev else None
        )
        if kept is None or kept[1] == nic.mac.lower():
            return plan
        # The bridge keeps the MAC its own files give it: verify that one, not the NIC's.
        checks = tuple(
            Check("has-mac", br, kept[1], f"{br} has the MAC its own files set, {kept[1]}")
            if c.kind == "has-mac" and c.subject == br
            else c
            for c in plan.checks
        )
        return dataclasses.replace(plan, checks=checks)

    def _mac_warnings(
        self,
        current: HostState,
        bridge: str,
        network: _Found | None,
        netdev: _Found | None,
    ) -> list[str]:
        """What the plan says about a MACAddress= the bridge's own files set: kept, unless
        it is no MAC (``none``), which kvmnet's .netdev replaces by the NIC's."""
        nic = current.nic
        out: list[str] = []
        kept = admin_mac(network.doc if network else None, netdev.doc if netdev else None)
        if kept is not None and kept[1] != nic.mac.lower():
            source = network if kept[0] == "network" else netdev
            name = source.name if source else ""
            out.append(
                f"{name} gives {bridge} the MAC {kept[1]}: kept, so {bridge} does not take "
                f"{nic.name}'s MAC {nic.mac} (checked after the change); a DHCP server or "
                f"switch that knows {nic.name} by its MAC sees a new host (another address)"
            )
        said = netdev.doc.get("NetDev", "MACAddress") if netdev else None
        if netdev is not None and said and _mac(said) is None:
            mac = kept[1] if kept else nic.mac
            out.append(
                f"{netdev.name} says [NetDev] MACAddress={said}; kvmnet's .netdev, which "
                f"sorts first and so wins, gives {bridge} the MAC {mac}"
            )
        return out

    def plan_release(self, request: BridgeRequest, current: HostState) -> Plan:
        """Remove kvmnet's three files; the NIC's old .network (never edited) applies again.

        Args:
            request: The NIC and the bridge.
            current: The host as it is.

        Returns:
            The plan.
        """
        nic, br = current.nic.name, request.bridge
        steps: list[Step] = []
        directory = self.paths(OUR_DIR)
        ours = {
            f"{p}{stem}"
            for p in _PREFIXES
            for stem in (f"{br}.netdev", f"{br}.network", f"{nic}.network")
        }
        for name in current.list_dir(directory) or ():
            if name in ours:
                path = posixpath.join(directory, name)
                steps.append(RemoveFile(path, previous=read_text(current, path)))
        if self.files_only:
            plan = self._plan("release", request, current, steps, restore_runtime=False)
            return dataclasses.replace(plan, checks=())
        steps += [RunCommand(self.networkctl("reload"))]
        if self._bridge_files(current, br, None)[1] is None:
            steps.append(RunCommand(("ip", "link", "del", br), "networkd never deletes a netdev"))
        steps.append(RunCommand(self.networkctl("reconfigure", nic)))
        return self._plan("release", request, current, steps, restore_runtime=False)

"""systemd-networkd: a .netdev for the bridge and two .network files, then ``networkctl``.

Files under ``root`` in ``/etc/systemd/network``::

    10-kvmnet-br0.netdev     [NetDev] Name=br0 Kind=bridge MACAddress=<NIC MAC>
                             [Bridge] STP=false ForwardDelaySec=0
    10-kvmnet-br0.network    [Match] Name=br0   + the NIC's [Network]/[Address]/[Route]/[DHCP*]
    10-kvmnet-eth0.network   [Match] Name=eth0  [Network] Bridge=br0 LinkLocalAddressing=no

**Why the names sort first.** networkd applies to a link the *first* .network file, in file
name order across /etc, /run and /lib/systemd/network, whose [Match] fits; later ones are
ignored. Our NIC file must therefore sort before the file that configures the NIC now (e.g.
``20-wired.network``), otherwise the NIC keeps its DHCP and never joins the bridge. The
prefix is ``10-kvmnet-``, or a smaller one when an existing match sorts earlier. The old file
stays untouched (it is what release falls back to).

**Same lease on the bridge.** networkd's DHCP client identifies itself by DUID + IAID, and the
IAID comes from the interface name, so br0 would ask for a *different* lease than eth0 had.
When networkd's lease file for the NIC is readable (``lease_dir``), its client id's IAID is
copied into br0's ``[DHCPv4] IAID=``; otherwise br0 uses ``ClientIdentifier=mac`` (br0 has the
NIC's MAC) and the plan warns that the address may change.

There is no offline validator for these files (``systemd-analyze verify`` refuses them):
kvmnet's tests run the real networkd in a namespace and read its log for "ignoring" lines.
Apply: ``networkctl reload`` then ``networkctl reconfigure NIC``.
"""

from __future__ import annotations

import fnmatch
import posixpath

from ..hostnet.names import validate_netns_name
from ..hostnet.plan import Plan, RemoveFile, RunCommand, Step
from ..hostnet.request import BridgeRequest, HostState
from ..hostnet.runner import Runner
from ..hostnet.state import LinkState
from .filebackend import (
    FileBackendBase,
    leased_v4,
    on_bus,
    read_text,
    stp_warnings,
    takeover_steps,
    write_step,
)
from .unitfile import UnitFile

__all__ = ["NETWORK_DIRS", "NetworkdBackend", "lease_iaid", "render_files"]

NETWORK_DIRS = (
    "/etc/systemd/network",
    "/run/systemd/network",
    "/lib/systemd/network",
    "/usr/lib/systemd/network",
)
OUR_DIR = "/etc/systemd/network"
# Keys of [Network] that make a link a port of something: they stay with the NIC's old role.
_ROLE_KEYS = frozenset({"Bridge", "Bond", "VRF", "VLAN", "MACVLAN", "VXLAN", "Tunnel", "MACsec"})
_PREFIXES = ("10-kvmnet-", "05-kvmnet-", "00-kvmnet-", "0-kvmnet-", "!kvmnet-")
_IP_SECTIONS = (
    "Address",
    "Route",
    "RoutingPolicyRule",
    "DHCP",
    "DHCPv4",
    "DHCPv6",
    "IPv6AcceptRA",
    "IPv6AddressLabel",
    "Neighbor",
)


def matches(doc: UnitFile, link: LinkState) -> bool:
    """Whether a .network file's [Match] could pick ``link`` (unknown criteria count as yes,
    so that our file is placed before it to be safe)."""
    match = doc.section("Match")
    if match is None:
        return True
    names = match.get("Name")
    if names:
        globs = names.split()
        negate = globs[0].startswith("!")
        hit = any(fnmatch.fnmatchcase(link.name, g.lstrip("!")) for g in globs)
        if hit == negate:
            return False
    macs = match.get("MACAddress") or match.get("PermanentMACAddress")
    return not (macs and link.mac.lower() not in macs.lower().split())


def lease_iaid(lease: str) -> int | None:
    """The IAID in a networkd lease file's ``CLIENTID=ff<iaid:8 hex><duid>``, if any."""
    for line in lease.splitlines():
        if line.startswith("CLIENTID="):
            cid = line.split("=", 1)[1].strip()
            if cid.lower().startswith("ff") and len(cid) >= 10:
                return int(cid[2:10], 16)
    return None


def render_files(
    *,
    nic: LinkState,
    bridge: str,
    nic_network: UnitFile | None,
    stp: bool,
    forward_delay: int,
    iaid: int | None,
) -> tuple[str, str, str]:
    """(netdev, bridge .network, NIC .network) texts."""
    head = f"# Written by kvmnet: bridge {bridge} with port {nic.name}.\n"
    netdev = UnitFile()
    netdev.add("NetDev").add("Name", bridge).add("Kind", "bridge").add("MACAddress", nic.mac)
    netdev.add("Bridge").add("STP", "true" if stp else "false").add(
        "ForwardDelaySec", str(forward_delay)
    )

    br = UnitFile()
    br.add("Match").add("Name", bridge)
    # The .netdev sets the MAC only when networkd creates br0; this also fixes an existing one.
    br.add("Link").add("MACAddress", nic.mac)
    net = br.add("Network")
    if nic_network is not None:
        for section in nic_network.sections:
            if section.name == "Network":
                net.entries += [(k, v) for k, v in section.entries if k not in _ROLE_KEYS]
            elif section.name in _IP_SECTIONS:
                br.sections.append(section)
    else:
        _from_state(nic, net.entries)
    dhcp = (br.get("Network", "DHCP") or "no").lower()
    if dhcp in ("yes", "true", "ipv4", "1", "on"):
        v4 = br.section("DHCPv4") or br.add("DHCPv4")
        if v4.get("ClientIdentifier") is None and v4.get("IAID") is None:
            if iaid is not None:
                v4.add("IAID", str(iaid))
            else:
                v4.add("ClientIdentifier", "mac")
    port = UnitFile()
    port.add("Match").add("Name", nic.name)
    port.add("Network").add("Bridge", bridge).add("LinkLocalAddressing", "no").add(
        "IPv6AcceptRA", "no"
    )
    return netdev.render(head), br.render(head), port.render(head)


def _from_state(nic: LinkState, entries: list[tuple[str, str]]) -> None:
    if leased_v4(nic):
        entries.append(("DHCP", "ipv4"))
    else:
        entries += [("Address", a.cidr) for a in nic.global_addresses]


class NetworkdBackend(FileBackendBase):
    """systemd-networkd files under ``root``, activated with networkctl (in ``netns``).

    ``bus_address``: a D-Bus address for networkctl (a private bus in tests), passed as
    ``env DBUS_SYSTEM_BUS_ADDRESS=...``. ``lease_dir``: where networkd keeps leases.
    """

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
    ) -> None:
        if netns is not None:
            validate_netns_name(netns)
        super().__init__(root=root, netns=netns, runner=runner)
        self.bus_address = bus_address
        self.lease_dir = lease_dir

    def __repr__(self) -> str:
        return f"<NetworkdBackend root={self.root!r} runner={self._runner!r}>"

    def networkctl(self, *args: str) -> tuple[str, ...]:
        return on_bus(self.bus_address, "networkctl", *args)

    def network_files(self, current: HostState) -> list[tuple[str, str]]:
        """(file name, path) of every .network file networkd reads, in its order; a name in
        an earlier directory shadows the same name in later ones."""
        seen: dict[str, str] = {}
        for directory in NETWORK_DIRS:
            full = self.paths(directory)
            for name in current.list_dir(full) or ():
                if name.endswith(".network") and name not in seen:
                    seen[name] = posixpath.join(full, name)
        return sorted(seen.items())

    def _nic_file(self, current: HostState) -> tuple[str, UnitFile] | None:
        for name, path in self.network_files(current):
            if name.startswith(tuple(_PREFIXES)):
                continue
            text = read_text(current, path)
            if text is not None and matches(UnitFile.parse(text), current.nic):
                return name, UnitFile.parse(text)
        return None

    def _iaid(self, current: HostState) -> int | None:
        mine = {a.ip for a in current.nic.global_addresses}
        for name in current.list_dir(self.lease_dir) or ():
            text = read_text(current, posixpath.join(self.lease_dir, name)) or ""
            address = next((ln[8:] for ln in text.splitlines() if ln.startswith("ADDRESS=")), "")
            if address in mine:
                return lease_iaid(text)
        return None

    def prefix(self, before: str | None) -> str:
        for prefix in _PREFIXES:
            if before is None or prefix < before:
                return prefix
        return _PREFIXES[-1]

    def plan_enslave(self, request: BridgeRequest, current: HostState) -> Plan:
        nic, br = current.nic, request.bridge
        found = self._nic_file(current)
        warnings = stp_warnings(request)
        iaid = self._iaid(current)
        netdev, br_net, port = render_files(
            nic=nic,
            bridge=br,
            nic_network=found[1] if found else None,
            stp=request.stp,
            forward_delay=request.forward_delay,
            iaid=iaid,
        )
        if "DHCP=" in br_net and iaid is None and "ClientIdentifier=mac" in br_net:
            warnings.append(
                f"no networkd lease of {nic.name} found: {br} asks for a lease by "
                f"MAC, which a server may answer with a different address"
            )
        prefix = self.prefix(found[0] if found else None)
        directory = self.paths(OUR_DIR)
        steps: list[Step] = [
            write_step(
                current,
                posixpath.join(directory, f"{prefix}{br}.netdev"),
                netdev,
                mode=0o644,
                why=f"{br} with {nic.name}'s MAC",
            ),
            write_step(
                current,
                posixpath.join(directory, f"{prefix}{br}.network"),
                br_net,
                mode=0o644,
                why=f"{nic.name}'s IP settings"
                + (f" from {found[0]}" if found else " from its runtime state"),
            ),
            write_step(
                current,
                posixpath.join(directory, f"{prefix}{nic.name}.network"),
                port,
                mode=0o644,
                why=f"sorts before {found[0]}" if found else "port of " + br,
            ),
        ]
        steps += takeover_steps(current, request)
        steps.append(RunCommand(self.networkctl("reload"), f"create {br}, read the new files"))
        steps.append(
            RunCommand(
                self.networkctl("reconfigure", nic.name), f"{nic.name} now matches the port file"
            )
        )
        hints: tuple[Step, ...] = (
            RunCommand(self.networkctl("reload")),
            RunCommand(self.networkctl("reconfigure", nic.name)),
        )
        if current.bridge is None:
            hints += (RunCommand(("ip", "link", "del", br), "networkd never deletes a netdev"),)
        return self._plan(
            "enslave",
            request,
            current,
            steps,
            warnings=warnings,
            rollback_hints=hints,
            restore_runtime=False,
        )

    def plan_release(self, request: BridgeRequest, current: HostState) -> Plan:
        """Remove our three files; the NIC's old .network applies again."""
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
        steps += [
            RunCommand(self.networkctl("reload")),
            RunCommand(("ip", "link", "del", br), "networkd never deletes a netdev"),
            RunCommand(self.networkctl("reconfigure", nic)),
        ]
        return self._plan("release", request, current, steps, restore_runtime=False)

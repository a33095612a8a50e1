"""ifcfg: the RHEL/CentOS network-scripts recipe, as files under ``root``.

What it writes (``/etc/sysconfig/network-scripts`` under ``root``):

- ``ifcfg-BR``: ``DEVICE``, ``TYPE=Bridge``, ``ONBOOT=yes``, the NIC's IP settings moved over
  in their order (``BOOTPROTO``, ``IPADDR*``, ``PREFIX*``, ``GATEWAY``, ``DNS*``, ``IPV6*``...),
  ``STP=no``, ``DELAY=0``, the NIC's MAC as ``MACADDR`` (initscripts) and ``BRIDGE_MACADDR``
  (NetworkManager's ifcfg-rh reads that one for bridges), ``NM_CONTROLLED`` as the NIC had it;
- the NIC's own file with ``BRIDGE=BR``, ``BOOTPROTO=none`` and its IP settings removed;
  comments, ``HWADDR``, ``UUID`` and unknown keys stay where they were;
- ``route-NIC``/``route6-NIC`` become ``route-BR``/``route6-BR``;
- a copy of every file it replaces under ``/var/lib/kvmnet/backup/STAMP/``: never inside
  network-scripts, where every ``ifcfg-*`` file is read as a profile.

Then ``nmcli connection reload`` + ``nmcli connection up`` the NIC's profile where
NetworkManager runs (``nmcli -t -f RUNNING general`` through the runner, or ``network_manager=``),
else ``ifdown``/``ifup``. A stale address on a pre-existing bridge is deleted with ``ip``.

Usage::

    backend = IfcfgBackend(root="/")
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from ..hostnet.plan import Plan, RemoveFile, RunCommand, Step
from ..hostnet.request import BridgeRequest, HostState
from ..hostnet.runner import Runner
from ..hostnet.state import LinkState
from .filebackend import (
    FileBackendBase,
    backup_steps,
    leased_v4,
    read_text,
    stp_warnings,
    takeover_steps,
    write_step,
)
from .nmcli import profile_uuid
from .shellvars import Line, ShellVars

__all__ = [
    "SCRIPTS_DIR",
    "IfcfgBackend",
    "bridge_uuid",
    "is_ip_key",
    "render_bridge",
    "render_port",
]

SCRIPTS_DIR = "/etc/sysconfig/network-scripts"
NM_RUNNING = ("nmcli", "-t", "-f", "RUNNING", "general")

_IP_EXACT = frozenset(
    {
        "BOOTPROTO",
        "DEFROUTE",
        "PEERDNS",
        "PEERROUTES",
        "DOMAIN",
        "METRIC",
        "ZONE",
        "ARPCHECK",
        "ARPING_WAIT",
        "DHCP_HOSTNAME",
        "DHCP_FQDN",
        "DHCP_SEND_HOSTNAME",
        "DHCP_CLIENT_ID",
        "DHCP_VENDOR_CLASS_IDENTIFIER",
        "DHCP_TIMEOUT",
        "IPV4_FAILURE_FATAL",
        "IPV4_ROUTE_METRIC",
        "IPV4_ROUTE_TABLE",
        "IPV4_DNS_PRIORITY",
        "IPV6INIT",
        "IPV6_AUTOCONF",
        "IPV6ADDR",
        "IPV6ADDR_SECONDARIES",
        "IPV6_DEFAULTGW",
        "IPV6_DEFAULTDEV",
        "IPV6_DEFROUTE",
        "IPV6_FAILURE_FATAL",
        "IPV6_PEERDNS",
        "IPV6_PEERROUTES",
        "IPV6_PRIVACY",
        "IPV6_ADDR_GEN_MODE",
        "IPV6_ROUTE_METRIC",
        "IPV6_ROUTE_TABLE",
        "IPV6_DNS_PRIORITY",
        "IPV6_TOKEN",
        "DHCPV6C",
        "DHCPV6C_OPTIONS",
        "DHCPV6_DUID",
        "DHCPV6_IAID",
        "NOZEROCONF",
    }
)
_IP_NUMBERED = re.compile(r"^(IPADDR|PREFIX|NETMASK|GATEWAY|BROADCAST|NETWORK|DNS)\d*$")
# initscripts skips these suffixes when it globs ifcfg-*; so do we.
_IGNORED_SUFFIX = (".bak", ".orig", ".rpmnew", ".rpmorig", ".rpmsave", "~")


def is_ip_key(key: str) -> bool:
    """True for the settings that belong to whichever device carries the IP (moved to BR)."""
    return key in _IP_EXACT or bool(_IP_NUMBERED.match(key))


def render_port(nic_file: ShellVars, bridge: str) -> ShellVars:
    """The NIC's file as a bridge port: IP settings out, ``BRIDGE=`` in, the rest kept."""
    lines: list[Line] = []
    for line in nic_file.lines:
        if line.key == "BOOTPROTO":
            lines.append(Line("BOOTPROTO=none", "BOOTPROTO", "none"))
        elif line.key is None or not is_ip_key(line.key):
            lines.append(line)
    port = ShellVars(lines)
    if "BOOTPROTO" not in port:
        port.set("BOOTPROTO", "none")
    port.set("BRIDGE", bridge)
    return port


def bridge_uuid(bridge: str) -> str:
    """The UUID kvmnet gives ``ifcfg-BR`` (the same on every run, so reruns find it)."""
    return profile_uuid("ifcfg-bridge", bridge)


def render_bridge(
    nic_file: ShellVars, *, bridge: str, nic: str, mac: str, stp: bool, forward_delay: int
) -> ShellVars:
    """A fresh ``ifcfg-BR`` carrying the IP settings taken from the NIC's file."""
    out = ShellVars()
    out.lines.append(
        Line(
            f"# Written by kvmnet: bridge {bridge} with port {nic}; "
            f"IP settings moved from ifcfg-{nic}"
        )
    )
    # A fixed UUID: NetworkManager's ifcfg-rh would derive one from the path, and the name
    # "br0" may be taken by NM's own profile for a bridge it found already there.
    for key, value in (
        ("DEVICE", bridge),
        ("NAME", bridge),
        ("UUID", bridge_uuid(bridge)),
        ("TYPE", "Bridge"),
        ("ONBOOT", "yes"),
    ):
        out.set(key, value)
    moved = [(k, v) for k, v in nic_file if is_ip_key(k)]
    for key, value in moved:
        out.set(key, value)
    if "BOOTPROTO" not in out:
        out.set("BOOTPROTO", "none")
    out.set("STP", "yes" if stp else "no")
    out.set("DELAY", str(forward_delay))
    out.set("MACADDR", mac)
    out.set("BRIDGE_MACADDR", mac)
    nm = nic_file.get("NM_CONTROLLED")
    if nm is not None:
        out.set("NM_CONTROLLED", nm)
    return out


def _from_state(nic: LinkState) -> ShellVars:
    """An ifcfg file describing the NIC as the kernel shows it (there was no file)."""
    doc = ShellVars(
        [Line(f"# Written by kvmnet from {nic.name}'s runtime state (no file existed)")]
    )
    doc.set("DEVICE", nic.name)
    doc.set("TYPE", "Ethernet")
    doc.set("ONBOOT", "yes")
    doc.set("HWADDR", nic.mac)
    if leased_v4(nic):
        doc.set("BOOTPROTO", "dhcp")
    else:
        doc.set("BOOTPROTO", "none")
        v4 = [a for a in nic.global_addresses if a.family == 4]
        for n, addr in enumerate(v4):
            suffix = "" if n == 0 else str(n)
            doc.set(f"IPADDR{suffix}", addr.ip)
            doc.set(f"PREFIX{suffix}", str(addr.prefixlen))
    return doc


def _retarget_routes(text: str, nic: str, bridge: str) -> str:
    """route-NIC lines in ``ip route`` syntax name the device: point them at the bridge."""
    return re.sub(rf"(\bdev\s+){re.escape(nic)}(?=\s|$)", rf"\g<1>{bridge}", text)


class IfcfgBackend(FileBackendBase):
    """ifcfg files (RHEL network-scripts) plus NetworkManager or initscripts to activate them.

    ``netns``: read the NIC and run the commands inside that network namespace.
    ``network_manager``: True/False, or None to ask ``nmcli -t -f RUNNING general``.
    ``backup_stamp`` names the backup folder (default: the current UTC time).
    """

    name = "ifcfg"
    config_dirs = (SCRIPTS_DIR,)

    def __init__(
        self,
        *,
        root: str = "/",
        netns: str | None = None,
        runner: Runner | None = None,
        network_manager: bool | None = None,
        backup_stamp: str | None = None,
    ) -> None:
        super().__init__(root=root, netns=netns, runner=runner)
        self.network_manager = network_manager
        self.backup_stamp = backup_stamp

    def __repr__(self) -> str:
        return f"<IfcfgBackend root={self.root!r}>"

    # -- reading ---------------------------------------------------------------------------
    def _profiles(self, current: HostState) -> list[tuple[str, ShellVars]]:
        """Every ifcfg file the system would read, as (path, parsed)."""
        directory = self.paths(SCRIPTS_DIR)
        out: list[tuple[str, ShellVars]] = []
        for name in current.list_dir(directory) or ():
            if not name.startswith("ifcfg-") or name.endswith(_IGNORED_SUFFIX):
                continue
            path = posixpath.join(directory, name)
            text = read_text(current, path)
            if text is not None:
                out.append((path, ShellVars.parse(text)))
        return out

    def find_file(
        self, current: HostState, device: str, mac: str | None
    ) -> tuple[str, ShellVars] | None:
        """The file describing ``device``: by DEVICE=, else by file name, else by HWADDR."""
        profiles = self._profiles(current)
        for path, doc in profiles:
            if doc.get("DEVICE") == device:
                return path, doc
        for path, doc in profiles:
            if posixpath.basename(path) == f"ifcfg-{device}" and doc.get("DEVICE") is None:
                return path, doc
        if mac:
            for path, doc in profiles:
                hw = (doc.get("HWADDR") or "").lower()
                if hw == mac.lower() and doc.get("DEVICE") is None:
                    return path, doc
        return None

    def _uses_nm(self, port: ShellVars) -> bool:
        if (port.get("NM_CONTROLLED") or "yes").lower() in ("no", "n", "false", "0"):
            return False
        if self.network_manager is not None:
            return self.network_manager
        # nmcli being installed is not enough: NetworkManager must be running to read the files.
        probe = self._runner.run(NM_RUNNING, check=False)
        return probe.ok and probe.stdout.strip() == "running"

    def _backups(self, current: HostState, paths: Iterable[str]) -> list[Step]:
        return backup_steps(
            current,
            paths,
            rooted=self.paths,
            stamp=self.backup_stamp,
            why="backup, outside network-scripts",
        )

    # -- planning --------------------------------------------------------------------------
    def plan_enslave(self, request: BridgeRequest, current: HostState) -> Plan:
        nic, br = current.nic, request.bridge
        directory = self.paths(SCRIPTS_DIR)
        found = self.find_file(current, nic.name, nic.mac)
        warnings = stp_warnings(request)
        if found is None:
            nic_path, nic_doc = posixpath.join(directory, f"ifcfg-{nic.name}"), _from_state(nic)
            warnings.append(f"no ifcfg file describes {nic.name}: one is written from its state")
        else:
            nic_path, nic_doc = found
        existing_br = self.find_file(current, br, None)
        br_path = existing_br[0] if existing_br else posixpath.join(directory, f"ifcfg-{br}")

        bridge_doc = render_bridge(
            nic_doc,
            bridge=br,
            nic=nic.name,
            mac=nic.mac,
            stp=request.stp,
            forward_delay=request.forward_delay,
        )
        port_doc = render_port(nic_doc, br)
        route_moves = self._route_moves(current, nic.name, br)

        touched = [nic_path, br_path, *[p for old, new, _ in route_moves for p in (old, new)]]
        steps: list[Step] = self._backups(current, touched)
        steps.append(
            write_step(
                current,
                br_path,
                bridge_doc.render(),
                mode=0o644,
                keep_mode=self._runner,
                why=f"{br}: the NIC's IP settings, STP {'on' if request.stp else 'off'}",
            )
        )
        steps.append(
            write_step(
                current,
                nic_path,
                port_doc.render(),
                mode=0o644,
                keep_mode=self._runner,
                why=f"{nic.name} becomes a port of {br}",
            )
        )
        steps += self._route_steps(current, route_moves)
        steps += takeover_steps(current, request)
        activation, hints, uses_nm = self._activation(request, current, port_doc)
        steps += activation
        return self._plan(
            "enslave",
            request,
            current,
            steps,
            warnings=warnings,
            rollback_hints=hints,
            restore_runtime=not uses_nm,
        )

    def _route_steps(self, current: HostState, moves: list[tuple[str, str, str]]) -> list[Step]:
        """Each route-NIC file written as route-BR (keeping its mode), then removed."""
        steps: list[Step] = []
        for old, new, text in moves:
            why = f"moved to {posixpath.basename(new)}"
            steps += [
                write_step(
                    current,
                    new,
                    text,
                    mode=self._runner.file_mode(old) or 0o644,
                    keep_mode=self._runner,
                    why="routes follow the address",
                ),
                RemoveFile(old, previous=read_text(current, old), why=why),
            ]
        return steps

    def _activation(
        self, request: BridgeRequest, current: HostState, port_doc: ShellVars
    ) -> tuple[list[Step], tuple[Step, ...], bool]:
        """The steps that make the new files live, the rollback hints, and whether
        NetworkManager does it (it then restores the runtime state itself on rollback)."""
        nic, br = current.nic.name, request.bridge
        if not self._uses_nm(port_doc):
            steps: list[Step] = [
                RunCommand(("ifdown", nic)),
                RunCommand(("ifup", nic), f"ifup-eth creates {br} and enslaves {nic}"),
                RunCommand(("ifup", br)),
            ]
            return steps, (RunCommand(("ifup", nic)),), False
        up = RunCommand(("nmcli", "connection", "up", *_profile_selector(port_doc, nic)))
        steps = [
            RunCommand(("nmcli", "connection", "reload"), "read the new files"),
            *_take_over(request, current),
            RunCommand(up.argv, f"activating the port brings {br} up too"),
        ]
        return steps, (RunCommand(("nmcli", "connection", "reload")), up), True

    def _route_moves(self, current: HostState, nic: str, br: str) -> list[tuple[str, str, str]]:
        moves = []
        for kind in ("route", "route6"):
            old = self.paths(posixpath.join(SCRIPTS_DIR, f"{kind}-{nic}"))
            text = read_text(current, old)
            if text is not None:
                new = self.paths(posixpath.join(SCRIPTS_DIR, f"{kind}-{br}"))
                moves.append((old, new, _retarget_routes(text, nic, br)))
        return moves

    def plan_release(self, request: BridgeRequest, current: HostState) -> Plan:
        """Put the bridge's IP settings back on the NIC and delete ``ifcfg-BR``."""
        nic, br = current.nic, request.bridge
        directory = self.paths(SCRIPTS_DIR)
        found = self.find_file(current, nic.name, nic.mac)
        nic_path, nic_doc = found or (
            posixpath.join(directory, f"ifcfg-{nic.name}"),
            _from_state(nic),
        )
        br_found = self.find_file(current, br, None)
        br_path = br_found[0] if br_found else posixpath.join(directory, f"ifcfg-{br}")
        br_doc = br_found[1] if br_found else ShellVars()
        restored = ShellVars(
            [
                ln
                for ln in nic_doc.lines
                if ln.key != "BRIDGE" and not (ln.key and is_ip_key(ln.key))
            ]
        )
        for key, value in br_doc:
            if is_ip_key(key):
                restored.set(key, value)
        steps: list[Step] = self._backups(current, [nic_path, br_path])
        steps.append(
            write_step(
                current,
                nic_path,
                restored.render(),
                mode=0o644,
                keep_mode=self._runner,
                why=f"{nic.name} takes back {br}'s IP settings",
            )
        )
        steps.append(RemoveFile(br_path, previous=read_text(current, br_path)))
        uses_nm = self._uses_nm(restored)
        profile = _profile_selector(restored, nic.name)
        if uses_nm:
            steps += [
                RunCommand(("nmcli", "connection", "reload")),
                RunCommand(("nmcli", "connection", "up", *profile)),
            ]
        else:
            steps += [RunCommand(("ifdown", br)), RunCommand(("ifup", nic.name))]
        return self._plan("release", request, current, steps, restore_runtime=not uses_nm)


def _take_over(request: BridgeRequest, current: HostState) -> list[Step]:
    """NetworkManager only "assumes" a bridge it finds already there, and a port would join
    that; our profile must be activated explicitly, on a device with the profile's MAC."""
    bridge = current.bridge
    if bridge is None:
        return []
    steps: list[Step] = []
    if bridge.mac.lower() != current.nic.mac.lower():
        steps.append(
            RunCommand(
                ("ip", "link", "set", request.bridge, "address", current.nic.mac),
                "NM finds no compatible device for a bridge profile with another MAC",
            )
        )
    steps.append(
        RunCommand(
            ("nmcli", "connection", "up", "uuid", bridge_uuid(request.bridge)),
            f"take over the existing {request.bridge}",
        )
    )
    return steps


def _profile_selector(doc: ShellVars, device: str) -> tuple[str, ...]:
    """How nmcli names the profile ifcfg-rh makes of this file: UUID if set, else NAME,
    else ifcfg-rh's default "System DEVICE"."""
    uuid = doc.get("UUID")
    if uuid:
        return ("uuid", uuid)
    return ("id", doc.get("NAME") or f"System {device}")

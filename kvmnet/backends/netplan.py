"""netplan: the NIC's IP settings move, as written, into a bridge in ``60-kvmnet-BR.yaml``.

netplan reads ``/lib/netplan``, ``/etc/netplan`` and ``/run/netplan`` (a file shadows one of
the same name in the folder before it) and merges the files in the order of their names: a
later file overrides a scalar, but merges mappings and *appends* to lists. So no file can
take a setting away from another, whatever its name sorts as. kvmnet therefore:

- **edits the NIC's definition where it is** (the file in /etc/netplan; a /lib/netplan file is
  shadowed by an edited copy of the same name in /etc/netplan): the IP-level keys
  (:data:`IP_KEYS`) are cut out of the NIC's stanza as text, every other byte kept;
- **writes** ``/etc/netplan/60-kvmnet-BR.yaml`` (mode 0600) with the bridge: ``interfaces``
  (the NIC's netplan ID, its ``match``/``set-name`` untouched), the NIC's MAC, STP off, and the
  cut ``key: value`` pairs exactly as the admin wrote them;
- **validates** the result with the real ``netplan generate --root-dir`` on a scratch copy and
  **reads what netplan rendered**: the port's networkd ``.network`` (or NetworkManager
  keyfile) must say ``Bridge=BR`` and carry no address, DHCP, route or DNS, or the plan is
  refused (:class:`~kvmnet.errors.ValidationFailed`) before anything is written;
- keeps each edited file's original bytes as a backup with a unique name and records it (with
  both SHA-256 sums) in a ``# kvmnet-restore:`` line of its own file, so ``release`` puts
  every file back byte for byte.

Link-level keys (:data:`LINK_KEYS`: match, set-name, MAC, MTU, Wake-on-LAN, offloads, 802.1X,
SR-IOV...) stay on the port; :data:`COPY_KEYS` (``optional``, ``renderer``) are kept on the
port and copied to the bridge. Refusals (with ``force=`` keys): InfiniBand
(``infiniband-mode``), SR-IOV VFs (``link:``), 802.1X (``auth:``), VLAN parents, ports of a
netplan bond/bridge, an ID that a ``match: driver:`` might or might not pick.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import posixpath
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import Node

from ..errors import InvalidInput, PreflightRefused, ValidationFailed
from ..hostnet.plan import Plan, RemoveFile, RunCommand, Step, WriteFile
from ..hostnet.preflight import refuse
from ..hostnet.request import BridgeRequest, HostState
from ..hostnet.runner import Runner
from ..hostnet.state import IpRoute, LinkState
from . import netplanyaml as ny
from .base import stop_dhcp_clients
from .filebackend import (
    BACKUP_DIR,
    FileBackendBase,
    Scratch,
    leased_v4,
    read_text,
    stale_addresses,
    stp_warnings,
    write_step,
)

__all__ = [
    "COPY_KEYS",
    "IP_KEYS",
    "LINK_KEYS",
    "NETPLAN_DIR",
    "NETPLAN_DIRS",
    "NetplanBackend",
    "netplan_generate",
    "port_ip_config",
]

NETPLAN_DIR = "/etc/netplan"
#: Where netplan reads YAML; a later folder's file shadows an earlier one of the same name.
NETPLAN_DIRS = ("/lib/netplan", "/etc/netplan", "/run/netplan")
RENDERERS = ("networkd", "NetworkManager")

#: Keys of an ``ethernets`` stanza that configure IP (netplan 0.106 ``src/parse.c``,
#: COMMON_LINK_HANDLERS): they move to the bridge, which is the device that carries IP.
IP_KEYS = (
    "addresses",
    "optional-addresses",
    "gateway4",
    "gateway6",
    "routes",
    "routing-policy",
    "nameservers",
    "dhcp4",
    "dhcp6",
    "dhcp-identifier",
    "dhcp4-overrides",
    "dhcp6-overrides",
    "accept-ra",
    "ipv6-privacy",
    "ipv6-address-generation",
    "ipv6-address-token",
    "ipv6-mtu",
    "link-local",
    "critical",
    "ignore-carrier",
)
#: Kept on the port and copied to the bridge: the bridge must be rendered by the same
#: renderer as its port, and a NIC the boot need not wait for makes an optional bridge.
COPY_KEYS = ("optional", "renderer")
#: Keys that configure the link itself (COMMON_LINK_HANDLERS' link part,
#: PHYSICAL_LINK_HANDLERS, ethernet_def_handlers): they stay on the port.
LINK_KEYS = (
    "match",
    "set-name",
    "macaddress",
    "mtu",
    "wakeonlan",
    "wakeonwlan",
    "emit-lldp",
    "receive-checksum-offload",
    "transmit-checksum-offload",
    "tcp-segmentation-offload",
    "tcp6-segmentation-offload",
    "generic-segmentation-offload",
    "generic-receive-offload",
    "large-receive-offload",
    "activation-mode",
    "neigh-suppress",
    "networkmanager",
    "openvswitch",
    "auth",
    "link",
    "virtual-function-count",
    "embedded-switch-mode",
    "delay-virtual-functions-rebind",
    "infiniband-mode",
)

_RESTORE = re.compile(
    r"^# kvmnet-restore: (?P<action>rewrote|created) (?P<path>\S+)"
    r"(?: sha256=(?P<orig>[0-9a-f]{64}) backup=(?P<backup>\S+))? edited=(?P<edited>[0-9a-f]{64})$",
    re.M,
)

# Parsed YAML is untyped by nature; Any stays inside this module.
Yaml = dict[str, Any]


def file_name(bridge: str) -> str:
    return f"60-kvmnet-{bridge}.yaml"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class NetplanFile:
    """One YAML file netplan reads: its real path (without root), text and parsed root."""

    path: str
    text: str
    root: Node | None

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def network(self) -> Yaml:
        value = ny.plain(ny.find(self.root, "network"))
        return value if isinstance(value, dict) else {}

    def stanzas(self, kind: str) -> list[tuple[str, Node, Yaml]]:
        """(ID, node, plain mapping) of each device of ``kind`` (``ethernets``...), in
        every section of that name (a file may repeat one)."""
        out = []
        for section in ny.entries(ny.find(self.root, "network"), kind):
            for netplan_id, _, node in ny.items(section):
                stanza = ny.plain(node)
                if isinstance(stanza, dict):
                    out.append((netplan_id, node, stanza))
        return out


@dataclass(frozen=True)
class Definition:
    """The NIC's stanza in one file: ``file.network.ethernets[netplan_id]``."""

    file: NetplanFile
    netplan_id: str
    node: Node
    stanza: Yaml


def netplan_generate(runner: Runner, files: Mapping[str, str]) -> dict[str, str]:
    """Run the real ``netplan generate --root-dir`` on ``files`` and return what it rendered.

    Args:
        runner: runs ``netplan`` (a read-only query: it writes only into a scratch root).
        files: file -> YAML text; a bare name goes to /etc/netplan, an absolute path
            (``/lib/netplan/x.yaml``) to that folder of the scratch root.

    Returns:
        Rendered path relative to the scratch root's /run (``systemd/network/...``) -> text.

    Raises:
        ValidationFailed: netplan rejected the files (its ``file:line:col`` message quoted).
    """
    with Scratch() as scratch:
        for name, text in files.items():
            path = name if name.startswith("/") else posixpath.join(NETPLAN_DIR, name)
            scratch.put(path, text, 0o600)
        result = runner.run(["netplan", "generate", "--root-dir", scratch.path], check=False)
        if not result.ok:
            message = (result.stderr or result.stdout).strip()
            for folder in NETPLAN_DIRS:
                message = message.replace(scratch.path + folder + "/", "")
            raise ValidationFailed(
                f"netplan generate rejected the rendered configuration: {message} "
                "(nothing was written; fix the file named there)"
            )
        return scratch.read_tree("/run")


def _sections(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of an INI-style file (networkd unit or NM keyfile)."""
    out, section = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.append((section, "", ""))
        elif "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            out.append((section, key.strip(), value.strip()))
    return out


_ND_IP_SECTIONS = {"Address", "Route", "RoutingPolicyRule", "DHCPv4", "DHCPv6", "IPv6AcceptRA"}
_ND_IP_KEYS = {"Address", "Gateway", "DNS", "Domains", "IPv6Token", "IPv6PrivacyExtensions"}
_NM_IP_METHODS = {"disabled", "ignore", "link-local"}


def port_ip_config(rendered: Mapping[str, str], netplan_id: str) -> list[str]:
    """What IP configuration netplan rendered for the port ``netplan_id`` (empty: none).

    Args:
        rendered: :func:`netplan_generate`'s output.
        netplan_id: the port's netplan ID.

    Returns:
        One ``file: [Section] Key=Value`` line per IP setting found.
    """
    found: list[str] = []
    network = rendered.get(f"systemd/network/10-netplan-{netplan_id}.network")
    for section, key, value in _sections(network or ""):
        where = f"10-netplan-{netplan_id}.network: [{section}]"
        if not key and section in _ND_IP_SECTIONS:
            found.append(f"{where}")
        elif section == "Network" and (
            key in _ND_IP_KEYS
            or (key == "DHCP" and value not in ("no", "false"))
            or (key == "IPv6AcceptRA" and value in ("yes", "true"))
        ):
            found.append(f"{where} {key}={value}")
    keyfile = rendered.get(f"NetworkManager/system-connections/netplan-{netplan_id}.nmconnection")
    for section, key, value in _sections(keyfile or ""):
        where = f"netplan-{netplan_id}.nmconnection: [{section}]"
        if section in ("ipv4", "ipv6") and (
            (key == "method" and value not in _NM_IP_METHODS)
            or key.startswith(("address", "route", "dns", "gateway", "routing-rule"))
        ):
            found.append(f"{where} {key}={value}")
    return found


def _match_state(defn: Yaml, netplan_id: str, nic: LinkState, driver: str | None) -> bool | None:
    """Whether a stanza picks ``nic``: True, False, or None when only the driver (unknown
    here) could tell."""
    if defn.get("set-name") == nic.name:
        return True
    match = defn.get("match")
    if not isinstance(match, dict):
        return netplan_id == nic.name
    if not match:
        return True  # an empty match picks every device of the type
    if "name" in match and not fnmatch.fnmatchcase(nic.name, str(match["name"])):
        return False
    if "macaddress" in match and str(match["macaddress"]).lower() != nic.mac.lower():
        return False
    if "driver" in match:
        wanted = match["driver"] if isinstance(match["driver"], list) else [match["driver"]]
        if driver is None:
            return None
        return any(fnmatch.fnmatchcase(driver, str(w)) for w in wanted)
    return True


def _merge(old: object, new: object) -> object:
    """netplan's merge of one key across files: mappings merge, lists append, scalars win."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for key, value in new.items():
            out[key] = _merge(out[key], value) if key in out else value
        return out
    if isinstance(old, list) and isinstance(new, list):
        return old + new
    return new


def _indent(pair: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in pair.splitlines(True))


class NetplanBackend(FileBackendBase):
    """netplan YAML under ``root`` (see the module docstring for what it writes).

    Args:
        root: where /etc/netplan, /lib/netplan and /run/netplan are read and written.
        netns: read the NIC and run ``netplan`` inside that network namespace.
        runner: runs ``netplan generate`` (default: one for ``netns``).
        renderer: the bridge's renderer; None: the one that renders the NIC now.
        validate: run ``netplan generate`` (False for a machine without netplan).
        backup_stamp: the backup folder's name prefix (default: time and a random suffix).

    Raises:
        InvalidInput: an unknown renderer.
    """

    name = "netplan"

    def __init__(
        self,
        *,
        root: str = "/",
        netns: str | None = None,
        runner: Runner | None = None,
        renderer: str | None = None,
        validate: bool = True,
        backup_stamp: str | None = None,
    ) -> None:
        if renderer is not None and renderer not in RENDERERS:
            raise InvalidInput(f"netplan renderer {renderer!r}: use 'networkd' or 'NetworkManager'")
        super().__init__(root=root, netns=netns, runner=runner)
        self.renderer = renderer
        self.validate = validate
        self.backup_stamp = backup_stamp

    def __repr__(self) -> str:
        return f"<NetplanBackend root={self.root!r}>"

    def existing(self, current: HostState) -> dict[str, str]:
        """name -> text of every YAML file in /etc/netplan under root."""
        return {f.name: f.text for f in self.files(current) if f.path.startswith(NETPLAN_DIR)}

    def files(self, current: HostState) -> list[NetplanFile]:
        """Every file netplan reads, in its merge order (a later folder shadows a name)."""
        by_name: dict[str, str] = {}
        for folder in NETPLAN_DIRS:
            for name in current.list_dir(self.paths(folder)) or ():
                if name.endswith(".yaml"):
                    by_name[name] = posixpath.join(folder, name)
        out = []
        for name in sorted(by_name):
            text = read_text(current, self.paths(by_name[name]))
            if text is not None:
                out.append(NetplanFile(by_name[name], text, ny.parse(name, text)))
        return out

    # -- enslave -------------------------------------------------------------------------------

    def plan_enslave(self, request: BridgeRequest, current: HostState) -> Plan:
        nic, br = current.nic, request.bridge
        ours = file_name(br)
        files = [f for f in self.files(current) if f.name != ours]
        if any(f.name == ours and _RESTORE.search(f.text) for f in self.files(current)):
            raise PreflightRefused(
                f"{ours} already holds settings kvmnet moved into {br}: release that first",
                check="netplan-kvmnet-file",
            )
        defs = self.definitions(files, nic)
        netplan_id = defs[0].netplan_id if defs else nic.name
        if not defs and any(netplan_id == i for f in files for i, _, _ in f.stanzas("ethernets")):
            raise PreflightRefused(
                f"netplan's ID {netplan_id} names another device (its match does not pick "
                f"{nic.name}): kvmnet would merge into it; give that definition another ID",
                check="netplan-match",
            )
        self._refusals(request, files, defs, netplan_id)
        warnings = stp_warnings(request)
        already = self._configured_port(files, netplan_id, br)
        if already is not None:
            apply = [RunCommand(("netplan", "apply"), f"render and bring up {br}")]
            warnings.append(
                f"{already} already makes {netplan_id} a port of {br}: nothing to write"
            )
            return self._plan("enslave", request, current, apply, warnings=warnings)

        moved: dict[str, list[tuple[Yaml, str]]] = {}
        drops: dict[str, list[tuple[Node, list[str]]]] = {}
        match = ""
        for d in defs:
            cut = [k for k in d.stanza if k in IP_KEYS]
            texts = ny.pair_texts(d.file.text, d.node, [*cut, *COPY_KEYS, "match"])
            match = texts.pop("match", match)
            for key, text in texts.items():
                moved.setdefault(key, []).append((d.stanza, text))
            unknown = [k for k in d.stanza if k not in IP_KEYS + COPY_KEYS + LINK_KEYS]
            if unknown:
                warnings.append(f"{d.file.name}: {netplan_id}'s {unknown} stay on the port")
            if cut:
                drops.setdefault(d.file.path, []).append((d.node, cut))
        edits: dict[str, tuple[NetplanFile, str]] = {}
        for f in files:
            if f.path in drops and f.root is not None:
                edits[f.path] = (f, ny.cut(f.text, f.root, drops[f.path], name=f.name))
        bridge_keys = self._bridge_keys(moved, nic, current.routes)
        admin = self._bridge_definition(files, br)
        if admin:
            warnings.append(
                f"{br} is already defined in netplan: {nic.name} and its IP settings join that "
                "definition (its MAC and parameters, if set there, stay as they are)"
            )
        renderer = self.renderer or self._renderer(files, defs)
        stamp = self.backup_stamp or (
            time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)
        )
        backup_dir = posixpath.join(BACKUP_DIR, f"{stamp}-netplan-{br}")
        manifest, writes = self._edit_steps(current, edits, backup_dir)
        text = self.render_ours(
            nic=nic,
            netplan_id=netplan_id,
            bridge=br,
            keys=bridge_keys,
            renderer=renderer,
            request=request,
            admin=admin,
            define_nic=not defs,
            match=match,
            manifest=manifest,
        )
        if self.validate:
            merged = {f.path: f.text for f in files}
            merged.update({self._target(f): new for f, new in edits.values()})
            merged[posixpath.join(NETPLAN_DIR, ours)] = text
            try:
                rendered = netplan_generate(self._runner, merged)
            except ValidationFailed:
                # Name the admin's file when it was wrong before kvmnet touched anything.
                netplan_generate(self._runner, {f.path: f.text for f in files})
                raise
            self._check_rendered(rendered, netplan_id, br)

        steps: list[Step] = list(writes)
        steps.append(
            write_step(
                current,
                self.paths(posixpath.join(NETPLAN_DIR, ours)),
                text,
                mode=0o600,
                why=f"validated by netplan generate (renderer {renderer})",
            )
        )
        own = self._bridge_addresses(files, br)
        steps += stop_dhcp_clients(current, (request.nic, br), "; the new config leases")
        steps += [
            RunCommand(
                ("ip", "addr", "del", a.cidr, "dev", br),
                f"stale address on the existing {br}: it is not {request.nic}'s",
            )
            for a in stale_addresses(current)
            if a.cidr not in own
        ]
        steps.append(RunCommand(("netplan", "apply"), f"render and bring up {br}"))
        plan = self._plan(
            "enslave",
            request,
            current,
            steps,
            warnings=warnings,
            rollback_hints=(RunCommand(("netplan", "apply")),),
        )
        # br0's own configured addresses are not stale: do not check that they went away.
        checks = tuple(c for c in plan.checks if not (c.kind == "lacks-address" and c.value in own))
        return dataclasses.replace(plan, checks=checks)

    def definitions(self, files: Iterable[NetplanFile], nic: LinkState) -> list[Definition]:
        """The NIC's stanzas, in merge order (one netplan ID; several files may define it).

        Raises:
            PreflightRefused: two IDs pick the NIC, or one matches by a driver kvmnet
                cannot see (check ``netplan-match``).
        """
        driver = self._driver(nic.name)
        # netplan merges every stanza of one ID into one definition: match on the merge.
        by_id: dict[str, list[Definition]] = {}
        for f in files:
            for netplan_id, node, stanza in f.stanzas("ethernets"):
                by_id.setdefault(netplan_id, []).append(Definition(f, netplan_id, node, stanza))
        found: list[Definition] = []
        unsure: list[str] = []
        for netplan_id, stanzas in by_id.items():
            merged: Yaml = {}
            for d in stanzas:
                merged = dict(_merge(merged, d.stanza))  # type: ignore[call-overload]
            state = _match_state(merged, netplan_id, nic, driver)
            if state:
                found += stanzas
            elif state is None:
                unsure.append(f"{netplan_id} in {stanzas[-1].file.name}")
        ids = sorted({d.netplan_id for d in found})
        if len(ids) > 1:
            raise PreflightRefused(
                f"netplan defines {nic.name} twice, as {ids}: keep one definition, then retry",
                check="netplan-match",
            )
        if unsure and not found:
            raise PreflightRefused(
                f"{', '.join(unsure)} match devices by driver, and kvmnet cannot read "
                f"{nic.name}'s driver: add `set-name: {nic.name}` or `match: {{name: "
                f"{nic.name}}}` there, then retry",
                check="netplan-match",
            )
        return found

    def _driver(self, nic: str) -> str | None:
        uevent = self._runner.read_file(f"/sys/class/net/{nic}/device/uevent") or b""
        m = re.search(rb"^DRIVER=(\S+)$", uevent, re.M)
        return m.group(1).decode() if m else None

    def _refusals(
        self,
        request: BridgeRequest,
        files: list[NetplanFile],
        defs: list[Definition],
        netplan_id: str,
    ) -> None:
        nic, force = request.nic, request.force
        for d in defs:
            where = f"{d.file.path} ({netplan_id})"
            if d.file.path.startswith("/run/"):
                raise PreflightRefused(
                    f"{nic} is defined in {where}, which is regenerated at boot: change what "
                    "writes it (cloud-init, the installer), then retry",
                    check="netplan-run",
                )
            if "infiniband-mode" in d.stanza:
                raise PreflightRefused(
                    f"{where} makes {nic} an InfiniBand port: the kernel bridges only Ethernet "
                    "(use IPoIB routing, or an Ethernet NIC)",
                    check="infiniband",
                )
            if "link" in d.stanza:
                refuse(
                    "sriov-vf",
                    f"{where} makes {nic} an SR-IOV virtual function of {d.stanza['link']}: "
                    "the PF's switch forwards only the VF's own MAC, so guests' frames are "
                    "dropped; give guests VFs (hostdev) or bridge the PF",
                    force,
                )
            if "auth" in d.stanza:
                refuse(
                    "8021x",
                    f"{where} authenticates {nic} with 802.1X: a switch port that admits one "
                    "authenticated MAC drops the guests' frames",
                    force,
                )
        for d in defs:
            passthrough = (d.stanza.get("networkmanager") or {}).get("passthrough") or {}
            ip = sorted(k for k in passthrough if str(k).startswith(("ipv4.", "ipv6.")))
            if ip:
                raise PreflightRefused(
                    f"{d.file.name}: {netplan_id} passes {ip} through to NetworkManager: "
                    f"move them to a `networkmanager: passthrough:` of {request.bridge} by "
                    "hand (kvmnet moves whole keys only)",
                    check="netplan-passthrough",
                )
        for f in files:
            for kind in ("bonds", "bridges", "vrfs"):
                for name, _, stanza in f.stanzas(kind):
                    if netplan_id in (stanza.get("interfaces") or ()) and name != request.bridge:
                        refuse(
                            "enslaved",
                            f"{f.name}: {netplan_id} is already in {kind[:-1]} {name} (one "
                            f"master per link): bridge guests onto {name}, or remove it there "
                            "first",
                            force,
                        )
            for kind in ("vlans", "tunnels"):
                for name, _, stanza in f.stanzas(kind):
                    if stanza.get("link") == netplan_id:
                        refuse(
                            "vlan-parent",
                            f"{f.name}: {kind[:-1]} {name} runs on {netplan_id}: bridging "
                            f"{nic} leaves {name} on the port, without the address it was "
                            f"built on; move {name} onto {request.bridge} yourself",
                            force,
                        )

    def _bridge_keys(
        self, moved: dict[str, list[tuple[Yaml, str]]], nic: LinkState, routes: tuple[IpRoute, ...]
    ) -> dict[str, str]:
        """key -> ``key: value`` text for the bridge (as written; merged when several files
        set the same key, the way netplan merges them)."""
        out: dict[str, str] = {}
        for key, sources in moved.items():
            if len(sources) == 1 or not isinstance(sources[-1][0][key], (dict, list)):
                out[key] = sources[-1][1]  # a scalar: the last file's wins
                continue
            value: object = None
            for stanza, _ in sources:
                value = stanza[key] if value is None else _merge(value, stanza[key])
            out[key] = _pair(key, value)
        if not any(k in out for k in IP_KEYS):
            out.update({k: _pair(k, v) for k, v in _from_state(nic, routes).items()})
        return out

    @staticmethod
    def _renderer(files: list[NetplanFile], defs: list[Definition]) -> str:
        """The renderer netplan uses for the NIC now: its stanza's, else its section's, else
        the last global one, else networkd."""
        renderer = "networkd"
        for f in files:
            net = f.network()
            if net.get("renderer") in RENDERERS:
                renderer = net["renderer"]
        for d in defs:
            sections = ny.entries(ny.find(d.file.root, "network"), "ethernets")
            section = [ny.plain(ny.find(n, "renderer")) for n in sections]
            for value in (*section, d.stanza.get("renderer")):
                if value in RENDERERS:
                    renderer = value
        return renderer

    @staticmethod
    def _configured_port(files: list[NetplanFile], netplan_id: str, bridge: str) -> str | None:
        """The file whose ``bridges: BRIDGE: interfaces`` lists ``netplan_id`` already."""
        for f in files:
            for name, _, stanza in f.stanzas("bridges"):
                if name == bridge and netplan_id in (stanza.get("interfaces") or ()):
                    return f.name
        return None

    @staticmethod
    def _bridge_definition(files: list[NetplanFile], bridge: str) -> Yaml:
        """The bridge's own definition in other files, merged (empty: none)."""
        merged: Yaml = {}
        for f in files:
            for name, _, stanza in f.stanzas("bridges"):
                if name == bridge:
                    merged = dict(_merge(merged, stanza))  # type: ignore[call-overload]
        return merged

    @classmethod
    def _bridge_addresses(cls, files: list[NetplanFile], bridge: str) -> set[str]:
        """Addresses the bridge's own netplan definition gives it (not stale ones)."""
        own: set[str] = set()
        for entry in cls._bridge_definition(files, bridge).get("addresses") or ():
            own.update(entry if isinstance(entry, dict) else (entry,))
        return own

    @staticmethod
    def _target(f: NetplanFile) -> str:
        """Where an edited file goes: in place, but a /lib/netplan file is shadowed by one of
        the same name in /etc/netplan (package files are not edited)."""
        if f.path.startswith("/lib/"):
            return posixpath.join(NETPLAN_DIR, f.name)
        return f.path

    def _edit_steps(
        self, current: HostState, edits: dict[str, tuple[NetplanFile, str]], backup_dir: str
    ) -> tuple[list[str], list[Step]]:
        manifest: list[str] = []
        steps: list[Step] = []
        for f, new in edits.values():
            target = self._target(f)
            if target != f.path:
                manifest.append(f"created {target} edited={_sha(new)}")
            else:
                backup = posixpath.join(backup_dir, f.name)
                manifest.append(
                    f"rewrote {target} sha256={_sha(f.text)} backup={backup} edited={_sha(new)}"
                )
                steps.append(
                    WriteFile(self.paths(backup), f.text, mode=0o600, why="original, for release")
                )
            steps.append(
                write_step(
                    current,
                    self.paths(target),
                    new,
                    mode=0o600,
                    why=f"IP settings cut from {f.path}: they move to the bridge",
                    keep_mode=self._runner if target == f.path else None,
                )
            )
        return manifest, steps

    @staticmethod
    def render_ours(
        *,
        nic: LinkState,
        netplan_id: str,
        bridge: str,
        keys: Mapping[str, str],
        renderer: str,
        request: BridgeRequest,
        admin: Yaml,
        define_nic: bool = False,
        match: str = "",
        manifest: Iterable[str] = (),
    ) -> str:
        """The text of ``60-kvmnet-BR.yaml``: the bridge with the NIC's moved pairs;
        ``admin`` is the bridge's own definition in other files (its MAC and parameters
        are left to it)."""
        lines = [
            f"# Written by kvmnet: bridge {bridge} with port {nic.name}; "
            f"{nic.name}'s IP settings moved here.\n"
        ]
        lines += [f"# kvmnet-restore: {m}\n" for m in manifest]
        lines += ["network:\n", "  version: 2\n"]
        # The port is declared here too, even when another file defines it: netplan 0.106
        # refuses a bridge whose port a later file defines ("interface 'eth0' is not
        # defined"), and an empty mapping merges into that definition without changing it.
        # It repeats the definition's `match` as written: a stanza without one would match
        # by its ID until the later file's match arrives, and netplan keeps that name.
        port = f"    {_scalar(netplan_id)}:"
        if match:
            lines += ["  ethernets:\n", port + "\n", _indent(match, 6)]
        elif define_nic:  # defined here alone: rendered by the bridge's renderer
            lines += ["  ethernets:\n", port + f" {{renderer: {renderer}}}\n"]
        else:
            lines += ["  ethernets:\n", port + " {}\n"]
        stp = "true" if request.stp else "false"
        lines += [
            "  bridges:\n",
            f"    {bridge}:\n",
            f"      interfaces: [{_scalar(netplan_id)}]\n",
        ]
        if "macaddress" not in admin:
            lines.append(f'      macaddress: "{nic.mac}"\n')
        if "parameters" not in admin:
            # A later file's `parameters` replaces an earlier one's: the admin's stand.
            lines.append(
                f"      parameters: {{stp: {stp}, forward-delay: {request.forward_delay}}}\n"
            )
        body = {**keys, "renderer": f"renderer: {renderer}\n"}
        lines += [
            _indent(text if text.endswith("\n") else text + "\n", 6) for text in body.values()
        ]
        return "".join(lines)

    @staticmethod
    def _check_rendered(rendered: Mapping[str, str], netplan_id: str, bridge: str) -> None:
        if not rendered:
            return  # a stand-in runner (tests, dry runs on a fake host) renders nothing
        found = port_ip_config(rendered, netplan_id)
        if found:
            raise ValidationFailed(
                f"netplan would still give the port {netplan_id} IP settings ({'; '.join(found)}) "
                "beside the bridge: another file sets them; nothing was written"
            )
        network = rendered.get(f"systemd/network/10-netplan-{netplan_id}.network", "")
        keyfile = rendered.get(
            f"NetworkManager/system-connections/netplan-{netplan_id}.nmconnection", ""
        )
        if f"Bridge={bridge}" not in network and f"master={bridge}" not in keyfile:
            raise ValidationFailed(
                f"netplan rendered no port {netplan_id} of {bridge}: nothing was written"
            )

    # -- release -------------------------------------------------------------------------------

    def plan_release(self, request: BridgeRequest, current: HostState) -> Plan:
        """Remove our file and put every file kvmnet edited back, byte for byte."""
        path = self.paths(posixpath.join(NETPLAN_DIR, file_name(request.bridge)))
        ours = read_text(current, path)
        steps: list[Step] = []
        for m in _RESTORE.finditer(ours or ""):
            target = self.paths(m["path"])
            now = read_text(current, target)
            if now is None or _sha(now) != m["edited"]:
                raise ValidationFailed(
                    f"{m['path']} changed since kvmnet edited it: merge it by hand with "
                    f"{m['backup'] or 'the file it shadows'}, then remove {path}"
                )
            if m["action"] == "created":
                steps.append(RemoveFile(target, previous=now, why="it shadowed a /lib file"))
                continue
            original = read_text(current, self.paths(m["backup"]))
            if original is None or _sha(original) != m["orig"]:
                raise ValidationFailed(
                    f"the backup {m['backup']} of {m['path']} is missing or changed: restore "
                    f"{m['path']} by hand, then remove {path}"
                )
            steps.append(
                write_step(
                    current,
                    target,
                    original,
                    mode=0o600,
                    why="the original, byte for byte",
                    keep_mode=self._runner,
                )
            )
        steps += [RemoveFile(path, previous=ours), RunCommand(("netplan", "apply"))]
        plan = self._plan("release", request, current, steps)
        own = self._bridge_addresses(
            [f for f in self.files(current) if f.name != file_name(request.bridge)],
            request.bridge,
        )
        if not own:
            return plan
        # The bridge keeps its own definition: it stays, with its own addresses.
        checks = tuple(
            c
            for c in plan.checks
            if c.kind != "link-absent" and not (c.kind == "has-address" and c.value in own)
        )
        return dataclasses.replace(plan, checks=checks)


def _scalar(value: object) -> str:
    return _dump(value).removesuffix("\n...\n").strip()


def _dump(value: object) -> str:
    return str(yaml.safe_dump(value, sort_keys=False, default_flow_style=True, width=1000))


def _pair(key: str, value: object) -> str:
    """``key: value`` with the value in flow style, on one line."""
    return f"{key}: {_scalar(value)}\n"


def _from_state(nic: LinkState, routes: tuple[IpRoute, ...]) -> Yaml:
    """The NIC's IP settings as netplan keys, read from the kernel (no file defined it)."""
    if leased_v4(nic):
        return {"dhcp4": True}
    out: Yaml = {}
    if nic.global_addresses:
        out["addresses"] = [a.cidr for a in nic.global_addresses]
    mine = [r for r in routes if r.dev == nic.name and r.gateway]
    if mine:
        out["routes"] = [{"to": r.dst, "via": r.gateway} for r in mine]
    return out

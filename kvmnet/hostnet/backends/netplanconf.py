"""What netplan's configuration says, read the way netplan reads it: its folders and merge
order, the schema's split of a device's keys (`IP_KEYS` move to a bridge,
`LINK_KEYS` stay on the port), which stanza picks a NIC, what the real ``netplan
generate`` renders, and what cannot be bridged.

Pure reading and checking; `kvmnet.hostnet.backends.netplan` plans the change.

Refusals (`PreflightRefused`, ``check`` in parentheses): InfiniBand
(``infiniband``), SR-IOV VFs (``sriov-vf``), 802.1X (``802.1x``), VLAN/tunnel parents
(``vlan-parent``), members of a bond, another bridge or a VRF (``enslaved``), ambiguous or
unknowable matches (``netplan-match``), a definition in /run/netplan (``netplan-run``),
``ipv4.*``/``ipv6.*`` NetworkManager passthrough (``netplan-passthrough``).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from yaml.nodes import Node

from ...errors import PreflightRefused, ValidationFailed
from ..model.request import BridgeRequest
from ..model.state import LinkState
from ..preflight import refuse
from ..runners.runner import Runner, Scratch
from . import netplanyaml as ny

__all__ = [
    "COPY_KEYS",
    "IP_KEYS",
    "LINK_KEYS",
    "NETPLAN_DIR",
    "NETPLAN_DIRS",
    "RENDERERS",
    "Definition",
    "NetplanFile",
    "bridge_addresses",
    "bridge_definition",
    "check_rendered",
    "configured_port",
    "definitions",
    "driver_of",
    "match_state",
    "merge",
    "netplan_generate",
    "port_ip_config",
    "refusals",
    "renderer_of",
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

# Parsed YAML is untyped by nature; Any stays inside this module.
Yaml = dict[str, Any]


@dataclass(frozen=True)
class NetplanFile:
    """One YAML file netplan reads.

    Attributes:
        path: its real path (without root).
        text: its text.
        root: its parsed YAML document (None for an empty file).
    """

    path: str
    text: str
    root: Node | None

    @property
    def name(self) -> str:
        """The file's name, without its folder."""
        return posixpath.basename(self.path)

    def network(self) -> Yaml:
        """The file's ``network:`` mapping, as plain data.

        Returns:
            The mapping; empty when the file has none.
        """
        value = ny.plain(ny.find(self.root, "network"))
        return value if isinstance(value, dict) else {}

    def stanzas(self, kind: str) -> list[tuple[str, Node, Yaml]]:
        """Each device of ``kind``, in every section of that name (a file may repeat one).

        Args:
            kind: the section: ``"ethernets"``, ``"bridges"``, ``"bonds"``...

        Returns:
            ``(ID, node, plain mapping)`` per device.
        """
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
        rendered: `netplan_generate`'s output.
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


def match_state(defn: Yaml, netplan_id: str, nic: LinkState, driver: str | None) -> bool | None:
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


def merge(old: object, new: object) -> object:
    """netplan's merge of one key across files: mappings merge, lists append, scalars win."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for key, value in new.items():
            out[key] = merge(out[key], value) if key in out else value
        return out
    if isinstance(old, list) and isinstance(new, list):
        return old + new
    return new


def definitions(
    files: Iterable[NetplanFile], nic: LinkState, driver: str | None
) -> list[Definition]:
    """The NIC's stanzas, in merge order (one netplan ID; several files may define it).

    Args:
        files: netplan's files in merge order.
        nic: the NIC as the kernel reports it (name, MAC).
        driver: its kernel driver, None if unknown (for ``match: driver:``).

    Returns:
        Every stanza of the one ID whose merged ``match`` (or name) picks ``nic``.

    Raises:
        PreflightRefused: two IDs pick the NIC, or one matches by a driver kvmnet
            cannot see (check ``netplan-match``).
    """
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
            merged = dict(merge(merged, d.stanza))  # type: ignore[call-overload]
        state = match_state(merged, netplan_id, nic, driver)
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


def driver_of(runner: Runner, nic: str) -> str | None:
    """The kernel driver of ``nic`` (``DRIVER=`` of its device's uevent), None if unknown."""
    uevent = runner.read_file(f"/sys/class/net/{nic}/device/uevent") or b""
    m = re.search(rb"^DRIVER=(\S+)$", uevent, re.M)
    return m.group(1).decode() if m else None


def refusals(
    request: BridgeRequest,
    files: list[NetplanFile],
    defs: list[Definition],
    netplan_id: str,
) -> None:
    """Raise PreflightRefused for what the configuration says cannot be bridged (see the
    module docstring); overridable ones honour ``request.force``.

    Args:
        request: the bridging wanted (its ``force`` keys).
        files: netplan's files in merge order.
        defs: the NIC's stanzas (`definitions`).
        netplan_id: the NIC's netplan ID.

    Raises:
        PreflightRefused: the first refusal not overridden.
    """
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
                "802.1x",
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


def renderer_of(files: list[NetplanFile], defs: list[Definition]) -> str:
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


def configured_port(files: list[NetplanFile], netplan_id: str, bridge: str) -> str | None:
    """The file whose ``bridges: BRIDGE: interfaces`` lists ``netplan_id`` already."""
    for f in files:
        for name, _, stanza in f.stanzas("bridges"):
            if name == bridge and netplan_id in (stanza.get("interfaces") or ()):
                return f.name
    return None


def bridge_definition(files: list[NetplanFile], bridge: str) -> Yaml:
    """The bridge's own definition in other files, merged (empty: none)."""
    merged: Yaml = {}
    for f in files:
        for name, _, stanza in f.stanzas("bridges"):
            if name == bridge:
                merged = dict(merge(merged, stanza))  # type: ignore[call-overload]
    return merged


def bridge_addresses(files: list[NetplanFile], bridge: str) -> set[str]:
    """Addresses the bridge's own netplan definition gives it (not stale ones)."""
    own: set[str] = set()
    for entry in bridge_definition(files, bridge).get("addresses") or ():
        own.update(entry if isinstance(entry, dict) else (entry,))
    return own


def check_rendered(rendered: Mapping[str, str], netplan_id: str, bridge: str) -> None:
    """Raise ValidationFailed unless netplan rendered ``netplan_id`` as a port of ``bridge``
    without IP configuration (nothing rendered at all: a stand-in runner, accepted).

    Raises:
        ValidationFailed: the port keeps IP settings, or is no port of ``bridge``.
    """
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

"""netplan: one YAML file that defines the bridge, checked by the real ``netplan generate``.

It writes ``/etc/netplan/60-kvmnet-BR.yaml`` (mode 0600: netplan warns about anything more
open, and the file may hold secrets of other stanzas) under ``root``::

    network:
      version: 2
      renderer: networkd            # as the existing files say, or renderer=
      ethernets:
        eth0: {dhcp4: false, dhcp6: false}
      bridges:
        br0:
          interfaces: [eth0]
          macaddress: 52:54:00:aa:00:01
          parameters: {stp: false, forward-delay: 0}
          dhcp4: true               # or addresses/routes/nameservers moved from eth0

**Overriding the NIC's existing definition.** netplan merges every file of /etc/netplan in
name order: a later file overrides scalars (``dhcp4``) but *appends* to lists
(``addresses``, ``routes``, ``nameservers``). Our 60- file turns DHCP off on the NIC by
override; when the NIC's stanza elsewhere holds lists or gateways (a static setup), they
would stay on the port, so that file is rewritten with the NIC's IP keys removed (a YAML
round trip: its comments are lost, the plan warns, and a backup goes to
/var/lib/kvmnet/backup). Nothing is put in place before ``netplan generate --root-dir`` on a
scratch copy of /etc/netplan accepted it; a rejection raises ValidationFailed quoting
netplan's ``file:line:col`` message. Then ``netplan apply``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import yaml

from ..errors import InvalidInput, ValidationFailed
from ..hostnet.plan import Plan, RemoveFile, RunCommand, Step
from ..hostnet.request import BridgeRequest, HostState
from ..hostnet.runner import Runner
from ..hostnet.state import IpRoute, LinkState
from .filebackend import (
    FileBackendBase,
    Scratch,
    backup_steps,
    leased_v4,
    read_text,
    stp_warnings,
    takeover_steps,
    write_step,
)

__all__ = ["IP_KEYS", "NETPLAN_DIR", "NetplanBackend", "netplan_generate", "render_bridge_yaml"]

NETPLAN_DIR = "/etc/netplan"
RENDERERS = ("networkd", "NetworkManager")

#: Keys of a netplan device that belong to whichever device carries the IP.
IP_KEYS = (
    "dhcp4",
    "dhcp6",
    "dhcp4-overrides",
    "dhcp6-overrides",
    "dhcp-identifier",
    "addresses",
    "gateway4",
    "gateway6",
    "nameservers",
    "routes",
    "routing-policy",
    "accept-ra",
    "ipv6-privacy",
    "ipv6-address-generation",
    "ipv6-address-token",
    "ipv6-mtu",
    "link-local",
    "critical",
)
# Keys whose value another file can override; the rest (lists, gateways) cannot be taken away
# by a later file, so the defining file must be edited.
_OVERRIDABLE = frozenset({"dhcp4", "dhcp6", "accept-ra", "critical", "ipv6-privacy"})

# Parsed YAML is untyped by nature; Any stays inside this module.
Yaml = dict[str, Any]


def file_name(bridge: str) -> str:
    return f"60-kvmnet-{bridge}.yaml"


def _dump(doc: Yaml) -> str:
    return str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100))


def _load(path: str, text: str) -> Yaml:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"{path} is not valid YAML ({exc}): fix it before bridging") from exc
    return doc if isinstance(doc, dict) else {}


def _from_state(nic: LinkState, routes: tuple[IpRoute, ...]) -> Yaml:
    """The NIC's IP settings as netplan keys, read from the kernel (no file defined it)."""
    if leased_v4(nic):
        return {"dhcp4": True}
    out: Yaml = {"dhcp4": False}
    if nic.global_addresses:
        out["addresses"] = [a.cidr for a in nic.global_addresses]
    mine = [r for r in routes if r.dev == nic.name and r.gateway]
    if mine:
        out["routes"] = [{"to": r.dst, "via": r.gateway} for r in mine]
    return out


def render_bridge_yaml(
    *,
    nic: str,
    bridge: str,
    mac: str,
    ip: Mapping[str, object],
    renderer: str,
    stp: bool,
    forward_delay: int,
) -> str:
    """The text of ``60-kvmnet-BR.yaml``."""
    bridge_def: Yaml = {
        "interfaces": [nic],
        "macaddress": mac,
        "parameters": {"stp": stp, "forward-delay": forward_delay},
    }
    bridge_def.update({k: ip[k] for k in IP_KEYS if k in ip})
    doc: Yaml = {
        "network": {
            "version": 2,
            "renderer": renderer,
            "ethernets": {nic: {"dhcp4": False, "dhcp6": False}},
            "bridges": {bridge: bridge_def},
        }
    }
    header = (
        f"# Written by kvmnet: bridge {bridge} with port {nic}; {nic}'s IP settings moved here.\n"
    )
    return header + _dump(doc)


def netplan_generate(runner: Runner, files: dict[str, str]) -> dict[str, str]:
    """Run the real ``netplan generate --root-dir`` on ``files`` (name -> YAML text, placed in
    a scratch /etc/netplan) and return what it rendered (paths relative to the scratch root's
    /run). Raises ValidationFailed with netplan's ``file:line:col`` message."""
    with Scratch() as scratch:
        for name, text in files.items():
            scratch.put(posixpath.join(NETPLAN_DIR, name), text, 0o600)
        result = runner.run(["netplan", "generate", "--root-dir", scratch.path], check=False)
        if not result.ok:
            message = (
                (result.stderr or result.stdout)
                .strip()
                .replace(scratch.path + NETPLAN_DIR + "/", "")
            )
            raise ValidationFailed(
                f"netplan generate rejected the rendered configuration: {message} "
                "(nothing was written; fix the file named there)"
            )
        return scratch.read_tree("/run")


class NetplanBackend(FileBackendBase):
    """netplan YAML under ``root``; ``renderer`` None: whatever the existing files use.

    ``netns``: read the NIC and run ``netplan`` inside that network namespace.
    ``validate=False`` skips ``netplan generate`` (for a machine without netplan installed).
    """

    name = "netplan"
    config_dirs = (NETPLAN_DIR,)

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
        directory = self.paths(NETPLAN_DIR)
        out: dict[str, str] = {}
        for name in sorted(current.list_dir(directory) or ()):
            if name.endswith(".yaml"):
                text = read_text(current, posixpath.join(directory, name))
                if text is not None:
                    out[name] = text
        return out

    def plan_enslave(self, request: BridgeRequest, current: HostState) -> Plan:
        nic, br = current.nic, request.bridge
        ours = file_name(br)
        files = self.existing(current)
        files.pop(ours, None)
        renderer = self.renderer or "networkd"
        ip: Yaml = {}
        edited: dict[str, str] = {}
        warnings = stp_warnings(request)
        nic_id = self.netplan_id(files, nic)
        for name, text in files.items():
            net = _load(name, text).get("network") or {}
            if self.renderer is None and net.get("renderer") in RENDERERS:
                renderer = net["renderer"]
            stanza = (net.get("ethernets") or {}).get(nic_id)
            if not isinstance(stanza, dict):
                continue
            ip.update({k: stanza[k] for k in IP_KEYS if k in stanza})
            if any(k in stanza and k not in _OVERRIDABLE for k in IP_KEYS):
                edited[name] = self._strip_ip(name, text, nic_id)
                warnings.append(
                    f"{name} defines {nic.name}'s static settings: they move to "
                    f"{ours}, and {name} is rewritten without them (its comments "
                    "are lost; a backup is kept)"
                )
        if not ip:
            ip = _from_state(nic, current.routes)
        text = render_bridge_yaml(
            nic=nic_id,
            bridge=br,
            mac=nic.mac,
            ip=ip,
            renderer=renderer,
            stp=request.stp,
            forward_delay=request.forward_delay,
        )
        if self.validate:
            netplan_generate(self._runner, {**files, **edited, ours: text})

        directory = self.paths(NETPLAN_DIR)
        steps: list[Step] = self._backups(current, [posixpath.join(directory, n) for n in edited])
        for name, new in edited.items():
            steps.append(
                write_step(
                    current,
                    posixpath.join(directory, name),
                    new,
                    mode=0o600,
                    why=f"{nic.name}'s IP settings move to {ours}",
                )
            )
        steps.append(
            write_step(
                current,
                posixpath.join(directory, ours),
                text,
                mode=0o600,
                why=f"validated by netplan generate (renderer {renderer})",
            )
        )
        steps += takeover_steps(current, request)
        steps.append(RunCommand(("netplan", "apply"), f"render and bring up {br}"))
        return self._plan(
            "enslave",
            request,
            current,
            steps,
            warnings=warnings,
            rollback_hints=(RunCommand(("netplan", "apply")),),
        )

    @staticmethod
    def netplan_id(files: dict[str, str], nic: LinkState) -> str:
        """The netplan ID that defines ``nic``: its name, or an ID whose ``set-name``,
        ``match: name`` or ``match: macaddress`` picks it (cloud-init writes such stanzas).
        Bridges list IDs in ``interfaces:``, and a second ID for the same NIC would conflict."""
        found = nic.name
        for name, text in files.items():
            ethernets = (_load(name, text).get("network") or {}).get("ethernets") or {}
            if nic.name in ethernets:
                return nic.name
            for key, stanza in ethernets.items():
                if not isinstance(stanza, dict):
                    continue
                match = stanza.get("match") or {}
                mac = str(match.get("macaddress", "")).lower()
                if nic.name in (stanza.get("set-name"), match.get("name")) or (
                    mac and mac == nic.mac.lower()
                ):
                    found = str(key)
        return found

    def _strip_ip(self, name: str, text: str, nic: str) -> str:
        doc = _load(name, text)
        stanza = doc["network"]["ethernets"][nic]
        for key in IP_KEYS:
            stanza.pop(key, None)
        stanza.update({"dhcp4": False, "dhcp6": False})
        return f"# Edited by kvmnet: {nic}'s IP settings moved to another file.\n" + _dump(doc)

    def _backups(self, current: HostState, paths: list[str]) -> list[Step]:
        return backup_steps(
            current,
            paths,
            rooted=self.paths,
            stamp=self.backup_stamp,
            why="backup, outside /etc/netplan",
        )

    def plan_release(self, request: BridgeRequest, current: HostState) -> Plan:
        """Remove our file; the NIC's own definition (if any) takes over again."""
        path = self.paths(posixpath.join(NETPLAN_DIR, file_name(request.bridge)))
        steps: list[Step] = [
            RemoveFile(path, previous=read_text(current, path)),
            RunCommand(("netplan", "apply")),
        ]
        return self._plan(
            "release",
            request,
            current,
            steps,
            warnings=(
                "a file kvmnet edited to move static settings is not restored by "
                "release: restore it from /var/lib/kvmnet/backup",
            ),
        )

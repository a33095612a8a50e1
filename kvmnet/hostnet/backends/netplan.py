"""netplan: the NIC's IP settings move, as written, into a bridge in ``60-kvmnet-BR.yaml``.

netplan reads ``/lib/netplan``, ``/etc/netplan`` and ``/run/netplan`` (a file shadows one of
the same name in the folder before it) and merges the files in the order of their names: a
later file overrides a scalar, but merges mappings and *appends* to lists. So no file can
take a setting away from another, whatever its name sorts as. kvmnet therefore:

- **edits the NIC's definition where it is** (the file in /etc/netplan; a /lib/netplan file is
  shadowed by an edited copy of the same name in /etc/netplan): the IP-level keys
  (`IP_KEYS`) are cut out of the NIC's stanza as text, every other byte kept;
- **writes** ``/etc/netplan/60-kvmnet-BR.yaml`` (mode 0600) with the bridge: ``interfaces``
  (the NIC's netplan ID, its ``match``/``set-name`` untouched), the NIC's MAC, STP off, and the
  cut ``key: value`` pairs exactly as the admin wrote them;
- **validates** the result with the real ``netplan generate --root-dir`` on a scratch copy and
  **reads what netplan rendered**: the port's networkd ``.network`` (or NetworkManager
  keyfile) must say ``Bridge=BR`` and carry no address, DHCP, route or DNS, or the plan is
  refused (`ValidationFailed`) before anything is written;
- keeps each edited file's original bytes as a backup with a unique name and records it (with
  both SHA-256 sums) in a ``# kvmnet-restore:`` line of its own file, so ``release`` puts
  every file back byte for byte.

**Another root.** With ``root`` other than ``/`` (an image, a chroot) the plan only writes
files: ``netplan apply`` would apply *this* machine's /etc/netplan, so no ``netplan``, ``ip``
or ``kill`` runs here, and nothing is verified here (``files_only``, as networkd and nmcli).

Link-level keys (`LINK_KEYS`: match, set-name, MAC, MTU, Wake-on-LAN, offloads, 802.1X,
SR-IOV...) stay on the port; `COPY_KEYS` (``optional``, ``renderer``) are kept on the
port and copied to the bridge. Refusals (with ``force=`` keys): InfiniBand
(``infiniband-mode``), SR-IOV VFs (``link:``), 802.1X (``auth:``), VLAN parents, ports of a
netplan bond/bridge, an ID that a ``match: driver:`` might or might not pick.
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
import re
import secrets
import time
from collections.abc import Iterable, Mapping

import yaml
from yaml.nodes import Node

from ...errors import InvalidInput, PreflightRefused, ValidationFailed
from ..model.plan import Check, Plan, RemoveFile, RunCommand, Step
from ..model.request import BridgeRequest, HostState
from ..model.state import IpRoute, LinkState
from ..runners.runner import Runner
from . import netplanyaml as ny
from .base import stop_dhcp_clients
from .filebackend import (
    BACKUP_DIR,
    FileBackendBase,
    leased_v4,
    read_text,
    stale_addresses,
    stp_warnings,
    write_step,
)
from .netplanconf import (
    COPY_KEYS,
    IP_KEYS,
    LINK_KEYS,
    NETPLAN_DIR,
    NETPLAN_DIRS,
    RENDERERS,
    Definition,
    NetplanFile,
    Yaml,
    bridge_addresses,
    bridge_definition,
    check_rendered,
    configured_port,
    definitions,
    driver_of,
    merge,
    netplan_generate,
    port_ip_config,
    refusals,
    renderer_of,
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

_RESTORE = re.compile(
    r"^# kvmnet-restore: (?P<action>rewrote|created) (?P<path>\S+)"
    r"(?: sha256=(?P<orig>[0-9a-f]{64}) backup=(?P<backup>\S+))? edited=(?P<edited>[0-9a-f]{64})$",
    re.M,
)


def file_name(bridge: str) -> str:
    return f"60-kvmnet-{bridge}.yaml"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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
        files_only: Only write files: no netplan apply, ip or kill on this machine, nothing
            verified. None (default): when ``root`` is not ``/`` and no ``netns`` says where
            the files are live (a lab namespace that mounts ``root``'s folder).

    Raises:
        InvalidInput: an unknown renderer.
    """

    reads_files = "netplan reads them at its next boot or `netplan apply`"

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
        files_only: bool | None = None,
    ) -> None:
        if renderer is not None and renderer not in RENDERERS:
            raise InvalidInput(f"netplan renderer {renderer!r}: use 'networkd' or 'NetworkManager'")
        super().__init__(root=root, netns=netns, runner=runner)
        self.renderer = renderer
        self.validate = validate
        self.backup_stamp = backup_stamp
        # `netplan apply` reads /etc/netplan, never root's: with another root it would apply
        # this machine's own configuration, and checks would read this machine's links.
        self.files_only = self.root != "/" and netns is None if files_only is None else files_only

    def __repr__(self) -> str:
        return f"<NetplanBackend root={self.root!r}>"

    def existing(self, current: HostState) -> dict[str, str]:
        """Every YAML file in /etc/netplan under root.

        Args:
            current: the host as it is now (its files are read through it).

        Returns:
            File name -> its text.
        """
        return {f.name: f.text for f in self.files(current) if f.path.startswith(NETPLAN_DIR)}

    def files(self, current: HostState) -> list[NetplanFile]:
        """Every file netplan reads, in its merge order (a later folder shadows a name).

        Args:
            current: the host as it is now (its files are read through it).

        Returns:
            The parsed files.
        """
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
        """Plan bridging ``request.nic`` into ``request.bridge``: the NIC's settings cut from their
        files and moved to a bridge in kvmnet's own file, checked with ``netplan generate``.

        Args:
            request: what is wanted: the NIC, the bridge and the options.
            current: the host as it is now: links, routes, DHCP clients, and files read under
                the backend's ``root``.

        Returns:
            The `Plan`; nothing is changed (``plan.apply()`` runs it).

        Raises:
            PreflightRefused: kvmnet's file for the bridge already holds moved settings.
        """
        nic, br = current.nic, request.bridge
        ours = file_name(br)
        files = [f for f in self.files(current) if f.name != ours]
        if any(f.name == ours and _RESTORE.search(f.text) for f in self.files(current)):
            raise PreflightRefused(
                f"{ours} already holds settings kvmnet moved into {br}: release that first",
                check="netplan-kvmnet-file",
            )
        defs = definitions(files, nic, driver_of(self._runner, nic.name))
        netplan_id = defs[0].netplan_id if defs else _unused_id(files, nic)
        refusals(request, files, defs, netplan_id)
        warnings = stp_warnings(request)
        already = configured_port(files, netplan_id, br)
        if already is not None:
            # kvmnet changes nothing here, so it has nothing to verify or roll back: like a NIC
            # that is already a port at runtime (Bridge.enslave), the plan is empty. The
            # standard checks (br0 has the NIC's MAC and addresses) describe kvmnet's own
            # change and could not pass against the admin's bridge.
            warnings.append(
                f"{already} already makes {netplan_id} a port of {br}: nothing to write"
                + ("" if self.files_only else f"; `netplan apply` brings {br} up as configured")
            )
            plan = self._plan(
                "enslave", request, current, (), warnings=warnings, restore_runtime=False
            )
            return dataclasses.replace(plan, checks=())

        moved, edits, match = _cut(files, defs, netplan_id, warnings)
        bridge_keys = self._bridge_keys(moved, nic, current.routes)
        admin = bridge_definition(files, br)
        if admin:
            warnings.append(
                f"{br} is already defined in netplan: {nic.name} and its IP settings join that "
                "definition (its MAC and parameters, if set there, stay as they are)"
            )
        renderer = self.renderer or renderer_of(files, defs)
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
            self._validate(files, merged, netplan_id, br)

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
        if self.files_only:
            return self._files_only("enslave", request, current, steps, warnings)
        own = bridge_addresses(files, br)
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
        return dataclasses.replace(plan, checks=_mac_checks(checks, admin, br))

    def _validate(
        self, files: list[NetplanFile], merged: dict[str, str], netplan_id: str, bridge: str
    ) -> None:
        """``netplan generate`` on the files as the plan leaves them, and the port read back."""
        try:
            rendered = netplan_generate(self._runner, merged)
        except ValidationFailed:
            # Name the admin's file when it was wrong before kvmnet touched anything.
            netplan_generate(self._runner, {f.path: f.text for f in files})
            raise
        check_rendered(rendered, netplan_id, bridge)

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
                value = stanza[key] if value is None else merge(value, stanza[key])
            out[key] = _pair(key, value)
        if not any(k in out for k in IP_KEYS):
            out.update({k: _pair(k, v) for k, v in _from_state(nic, routes).items()})
        return out

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
                # previous: what is there (a backup_stamp given twice): apply compares it.
                steps.append(
                    write_step(
                        current,
                        self.paths(backup),
                        f.text,
                        mode=0o600,
                        why="original, for release",
                    )
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
        """The text of ``60-kvmnet-BR.yaml``: the bridge with the NIC's moved pairs.

        Args:
            nic: the NIC as the kernel reports it.
            netplan_id: the NIC's id in the netplan files.
            bridge: the bridge's name.
            keys: the NIC's settings moved to the bridge: key -> its YAML text.
            renderer: ``"networkd"`` or ``"NetworkManager"``.
            request: what is wanted (STP, forward delay...).
            admin: the bridge's own definition in other files (its MAC and parameters are left
                to it).
            define_nic: the NIC is defined here alone (no other file does): it gets the
                bridge's renderer.
            match: the NIC definition's ``match:`` block as written, repeated on the port.
            manifest: ``# kvmnet-restore:`` lines: what a release puts back.

        Returns:
            The YAML text.
        """
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

    # -- release -------------------------------------------------------------------------------

    def plan_release(self, request: BridgeRequest, current: HostState) -> Plan:
        """Plan the way back: kvmnet's file removed and every file kvmnet edited put back, byte for
        byte.

        Args:
            request: what is wanted: the NIC, the bridge and the options.
            current: the host as it is now: links, routes, DHCP clients, and files read under
                the backend's ``root``.

        Returns:
            The `Plan`; nothing is changed (``plan.apply()`` runs it).
        """
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
        steps.append(RemoveFile(path, previous=ours))
        if self.files_only:
            plan = self._plan("release", request, current, steps, restore_runtime=False)
            return dataclasses.replace(plan, checks=())
        steps.append(RunCommand(("netplan", "apply")))
        plan = self._plan("release", request, current, steps)
        own = bridge_addresses(
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


_MAC = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")


def _mac_checks(checks: tuple[Check, ...], admin: Yaml, bridge: str) -> tuple[Check, ...]:
    """``checks`` with the bridge's MAC check expecting the MAC the configuration gives it.

    kvmnet's file sets the NIC's MAC (what the standard check expects) unless the bridge's
    own definition sets ``macaddress``, which then stays: the check expects that address, and
    is dropped when the value names no fixed address (``random``, ``stable``...: netplan or
    its renderer picks one).
    """
    if "macaddress" not in admin:
        return checks
    mac = str(admin["macaddress"]).strip()
    out = [c for c in checks if c.kind != "has-mac"]
    if _MAC.match(mac):
        mine = Check(
            "has-mac", bridge, mac, f"{bridge} has the MAC its netplan definition sets, {mac}"
        )
        out.insert(next((i for i, c in enumerate(checks) if c.kind == "has-mac"), 0), mine)
    return tuple(out)


def _unused_id(files: list[NetplanFile], nic: LinkState) -> str:
    """The ID for a NIC no file defines: its name, unless that is another device's ID."""
    if any(nic.name == i for f in files for i, _, _ in f.stanzas("ethernets")):
        raise PreflightRefused(
            f"netplan's ID {nic.name} names another device (its match does not pick "
            f"{nic.name}): kvmnet would merge into it; give that definition another ID",
            check="netplan-match",
        )
    return nic.name


def _cut(
    files: list[NetplanFile], defs: list[Definition], netplan_id: str, warnings: list[str]
) -> tuple[dict[str, list[tuple[Yaml, str]]], dict[str, tuple[NetplanFile, str]], str]:
    """The NIC's IP-level pairs as written (key -> [(stanza, text)] in merge order), each
    file's text with them cut out (path -> (file, edited text)), and its ``match:`` pair."""
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
    edits = {
        f.path: (f, ny.cut(f.text, f.root, drops[f.path], name=f.name))
        for f in files
        if f.path in drops and f.root is not None
    }
    return moved, edits, match


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

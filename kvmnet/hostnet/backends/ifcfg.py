"""ifcfg: the RHEL/CentOS network-scripts recipe, as files under ``root``.

What it writes (``/etc/sysconfig/network-scripts`` under ``root``):

- ``ifcfg-BR``: ``DEVICE``, ``TYPE=Bridge``, ``ONBOOT`` and ``NM_CONTROLLED`` as the NIC had
  them, every IP-level line of the NIC's file moved verbatim and in order (the split is in
  `.ifcfgkeys`), ``STP``, ``DELAY``, the NIC's MAC as ``MACADDR`` (initscripts) and
  ``BRIDGE_MACADDR`` (NetworkManager's ifcfg-rh reads that one for bridges);
- the NIC's own file, edited in place (`.ifcfgfiles`): IP-level lines replaced by
  markers, ``BRIDGE=BR`` appended; comments, link-level and unknown keys stay where they were;
- the NIC's ``route-``/``route6-``/``rule-``/``rule6-`` files, by profile name and by device
  name, become ``route-BR``...; release is the exact inverse (byte-identical files);
- a copy of every file it replaces under ``/var/lib/kvmnet/backup/STAMP/``: never inside
  network-scripts, where every ``ifcfg-*`` file is read as a profile.

Refused while planning (``force=`` overrides, see `kvmnet.hostnet.preflight`): a file
saying the host boots through the NIC (``NETBOOT=yes``, ``BOOTPROTO=ibft``: ``netboot``),
802.1X on the NIC (``802.1x``), a file making the NIC a port already (``MASTER=``,
``BRIDGE=``, ``TEAM_MASTER=``...: ``enslaved``). Alias files (``ifcfg-NIC:1``) and companion
files that would collide are refused with `InvalidInput`.

Then ``nmcli connection reload`` + ``nmcli connection up`` the NIC's profile where
NetworkManager runs (``nmcli -t -f RUNNING general`` through the runner, or ``network_manager=``),
else ``ifdown``/``ifup``. A stale address on a pre-existing bridge is deleted with ``ip``.
With a ``root`` other than ``/`` and no ``netns`` (an image, a chroot: ``files_only``), only
the files are written: nothing runs or is verified on this machine.

Where no file describes the NIC (or the bridge), its file is written as ``ifcfg-NAME``; an
``ifcfg-NAME`` there already that describes another device is refused (`InvalidInput`), never
overwritten.

Usage::

    backend = IfcfgBackend(root="/")
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Collection, Iterable

from ...errors import InvalidInput
from ..model.plan import Plan, RemoveFile, RunCommand, Step
from ..model.request import BridgeRequest, HostState
from ..model.state import LinkState
from ..preflight import refuse
from ..runners.runner import Runner
from .filebackend import (
    FileBackendBase,
    backup_steps,
    leased_v4,
    read_text,
    stp_warnings,
    takeover_steps,
    write_step,
)
from .ifcfgfiles import (
    COMPANION_KINDS,
    Companion,
    bridge_uuid,
    companion_notes,
    is_kvmnet_bridge,
    render_bridge,
    render_port,
    restore_port,
    retarget,
)
from .ifcfgkeys import classify, is_8021x, name_matches
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

# initscripts skips these suffixes when it globs ifcfg-*; so do we.
_IGNORED_SUFFIX = (".bak", ".orig", ".rpmnew", ".rpmorig", ".rpmsave", "~")
_TRUE = frozenset({"yes", "y", "true", "t", "1", "on"})


def is_ip_key(key: str) -> bool:
    """True for the settings that belong to whichever device carries the IP (moved to BR)."""
    return classify(key) == "ip"


def _norm_mac(value: str | None) -> str:
    return (value or "").strip().lower().replace("-", ":")


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


def refusals(doc: ShellVars, path: str, *, nic: str, bridge: str, force: Collection[str]) -> None:
    """Refuse what the NIC's file shows kvmnet must not bridge (see the module docstring).

    Args:
        doc: the NIC's parsed file.
        path: its path (named in the message).
        nic: the NIC's name.
        bridge: the bridge's name.
        force: the checks the caller overrides.

    Raises:
        PreflightRefused: the first refusal not in ``force``.
    """
    name = posixpath.basename(path)
    bootproto = (doc.get("BOOTPROTO") or "").strip().lower()
    if (doc.get("NETBOOT") or "").strip().lower() in _TRUE or bootproto == "ibft":
        refuse(
            "netboot",
            f"{name} says the host boots through {nic} (NETBOOT=yes or BOOTPROTO=ibft: an "
            f"iSCSI root disk): bridging it takes the root disk's path away, and "
            f"NetworkManager does not load BOOTPROTO=ibft on a bridge. Bridge another NIC",
            force,
        )
    members = [k for k, _ in doc if classify(k) == "membership"]
    if members:
        refuse(
            "enslaved",
            f"{name} makes {nic} a port already ({', '.join(sorted(set(members)))}): "
            f"remove it from its bond/bridge/team first, or put guests on that device "
            f"instead of {bridge}",
            force,
        )
    if any(is_8021x(k) for k, _ in doc):
        refuse(
            "802.1x",
            f"{name} authenticates {nic} with 802.1X: the switch port admits the one "
            f"authenticated MAC and drops the guests' frames. Use NAT or a routed network; "
            f"force only if the switch allows several MACs (multi-host/multi-auth mode)",
            force,
        )


def _refuse_commands(doc: ShellVars, path: str) -> None:
    """A line that is neither an assignment, a comment nor blank is a command to bash (or
    an open quote that swallows the rest of the file): what the file means then depends on
    running it, and a line kvmnet appends could vanish into it."""
    for number, line in enumerate(doc.lines, start=1):
        text = line.text.strip()
        if line.key is None and text and not text.startswith("#"):
            raise InvalidInput(
                f"{path}: line {number} ({text[:40]!r}) is neither an assignment nor a "
                "comment: initscripts would run it as a command. Remove or fix it first"
            )


def _refuse_unidentified(current: HostState, path: str, device: str) -> None:
    """Where no file describes ``device``, kvmnet writes ``path`` (``ifcfg-DEVICE``): a file
    there already describes another device (or none kvmnet can read) and would be lost under
    the one kvmnet writes. Refused, naming it, rather than overwritten.

    Raises:
        InvalidInput: ``path`` exists.
    """
    text = read_text(current, path)
    if text is None:
        return
    try:
        other = ShellVars.parse(text).get("DEVICE")
    except InvalidInput:
        other = None
    says = f"it says DEVICE={other!r}" if other is not None else "kvmnet cannot read its DEVICE="
    raise InvalidInput(
        f"{path} exists but does not describe {device} ({says}): kvmnet would write "
        f"{device}'s file over it and lose its settings. If it is {device}'s file, set "
        f"DEVICE={device} in it; if it is another device's, rename it to ifcfg-<that device>"
    )


def _unknown_warning(doc: ShellVars, nic: str, bridge: str) -> list[str]:
    unknown = sorted({k for k, _ in doc if classify(k) == "unknown"})
    if not unknown:
        return []
    return [
        f"keys no ifcfg reader knows stay in {nic}'s file (the port's): "
        f"{', '.join(unknown)}; if a local script uses them for IP, move them to "
        f"ifcfg-{bridge} by hand"
    ]


class IfcfgBackend(FileBackendBase):
    """ifcfg files (RHEL network-scripts) plus NetworkManager or initscripts to activate them.

    Args:
        root: where the files are (``/``: this machine's).
        netns: read the NIC and run the commands inside that network namespace.
        runner: run them through this runner (default: one for ``netns``).
        network_manager: whether NetworkManager activates the files; None asks
            ``nmcli -t -f RUNNING general``.
        backup_stamp: names the backup folder (default: the current UTC time).
        files_only: Only write files: no nmcli, ifup/ifdown, ip or kill on this machine,
            nothing verified. None (default): when ``root`` is not ``/`` and no ``netns``
            says where the files are live (a lab namespace whose stack reads ``root``'s
            folder).

    Raises:
        InvalidInput: a missing root, or one that leads outside itself.
    """

    reads_files = (
        "NetworkManager reads them at its next start or `nmcli connection reload`, "
        "initscripts at the next `ifup`"
    )

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
        files_only: bool | None = None,
    ) -> None:
        super().__init__(root=root, netns=netns, runner=runner)
        self.network_manager = network_manager
        self.backup_stamp = backup_stamp
        # Files written into an image or another root must not touch this machine: ifup,
        # nmcli and the checks would act on its own network, not the root's.
        self.files_only = self.root != "/" and netns is None if files_only is None else files_only

    def __repr__(self) -> str:
        return f"<IfcfgBackend root={self.root!r}>"

    # -- reading ---------------------------------------------------------------------------
    def _scripts(self, name: str) -> str:
        return self.paths(posixpath.join(SCRIPTS_DIR, name))

    def _profiles(
        self, current: HostState
    ) -> tuple[list[tuple[str, ShellVars]], list[tuple[str, str, InvalidInput]]]:
        """Every ifcfg file the system would read as a profile, as (path, parsed), and those
        whose quoting is broken, as (path, text, error). Alias files (``ifcfg-eth0:1``) are
        not profiles (ifcfg-rh adds them to their parent)."""
        directory = self.paths(SCRIPTS_DIR)
        out: list[tuple[str, ShellVars]] = []
        broken: list[tuple[str, str, InvalidInput]] = []
        for name in sorted(current.list_dir(directory) or ()):
            if not name.startswith("ifcfg-") or name.endswith(_IGNORED_SUFFIX) or ":" in name:
                continue
            path = posixpath.join(directory, name)
            text = read_text(current, path)
            if text is None:
                continue
            try:
                out.append((path, ShellVars.parse(text)))
            except InvalidInput as exc:
                broken.append((path, text, exc))
        return out, broken

    def find_file(
        self, current: HostState, device: str, mac: str | None
    ) -> tuple[str, ShellVars] | None:
        """The file describing ``device``, as the readers bind profiles.

        By ``DEVICE=``, else by file name, else (for a NIC: ``mac`` given) a profile without
        ``DEVICE=`` whose ``HWADDR`` is ``mac``, whose ``MATCH_INTERFACE_NAME`` patterns match
        ``device``, or the one Ethernet profile bound to no device at all (NetworkManager
        activates that one on any NIC).

        Args:
            current: the host as it is now (its files are read through it).
            device: the interface's name.
            mac: the NIC's MAC; None for a bridge (no binding by MAC).

        Returns:
            ``(path, parsed file)``, or None when no file describes ``device``.

        Raises:
            InvalidInput: a file kvmnet cannot parse may describe ``device`` (it names the
                device or MAC, or binds to no device): kvmnet will not guess around it.
        """
        profiles, broken = self._profiles(current)
        for path, doc in profiles:
            if doc.get("DEVICE") == device:
                return path, doc
        for path, text, exc in broken:
            names = (device, *((mac, mac.upper()) if mac else ()))
            bound = re.search(r"^\s*(DEVICE|HWADDR)=", text, re.M) is not None
            if not bound or any(n in text for n in names) or path.endswith(f"/ifcfg-{device}"):
                raise InvalidInput(f"{path}: {exc}") from exc
        unbound = [(p, d) for p, d in profiles if d.get("DEVICE") is None]
        for path, doc in unbound:
            if posixpath.basename(path) == f"ifcfg-{device}":
                return path, doc
        if mac is None:
            return None
        for path, doc in unbound:
            if doc.get("HWADDR") and _norm_mac(doc.get("HWADDR")) == _norm_mac(mac):
                return path, doc
        for path, doc in unbound:
            patterns = doc.get("MATCH_INTERFACE_NAME")
            if patterns and not doc.get("HWADDR") and name_matches(patterns, device):
                return path, doc
        anywhere = [
            (p, d)
            for p, d in unbound
            if not d.get("HWADDR")
            and not d.get("MATCH_INTERFACE_NAME")
            and (d.get("TYPE") or "Ethernet") == "Ethernet"
        ]
        return anywhere[0] if len(anywhere) == 1 else None

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
        """Plan bridging ``request.nic`` into ``request.bridge``: ``ifcfg-BR`` takes the NIC's IP
        settings, the NIC's file becomes a port (``BRIDGE=``), the old files kept as backups.

        Args:
            request: what is wanted: the NIC, the bridge and the options.
            current: the host as it is now: links, routes, DHCP clients, and files read under
                the backend's ``root``.

        Returns:
            The `Plan` (files only, when `files_only`); nothing is changed (``plan.apply()``
            runs it).

        Raises:
            InvalidInput: an ifcfg file kvmnet cannot edit safely (the message says which),
                e.g. an ``ifcfg-NIC`` that describes another device.
        """
        nic, br = current.nic, request.bridge
        found = self.find_file(current, nic.name, nic.mac)
        warnings = stp_warnings(request)
        if found is None:
            nic_path, nic_doc = self._scripts(f"ifcfg-{nic.name}"), _from_state(nic)
            _refuse_unidentified(current, nic_path, nic.name)
            warnings.append(f"no ifcfg file describes {nic.name}: one is written from its state")
        else:
            nic_path, nic_doc = found
            _refuse_commands(nic_doc, nic_path)
            refusals(nic_doc, nic_path, nic=nic.name, bridge=br, force=request.force)
        self._refuse_aliases(current, nic.name)
        warnings += _unknown_warning(nic_doc, nic.name, br)
        existing_br = self.find_file(current, br, None)
        if existing_br is not None and not is_kvmnet_bridge(existing_br[1]):
            raise InvalidInput(
                f"{posixpath.basename(existing_br[0])} describes {br} already and was not "
                f"written by kvmnet: replacing it would lose its settings. Make {nic.name} "
                f"its port by hand (BRIDGE={br} in {nic.name}'s file), or pick another bridge "
                f"name"
            )
        br_path = existing_br[0] if existing_br else self._scripts(f"ifcfg-{br}")
        if existing_br is None:
            _refuse_unidentified(current, br_path, br)
        companions = self._companions(current, nic_path, nic.name, br)

        bridge_doc = render_bridge(
            nic_doc,
            bridge=br,
            nic=nic.name,
            mac=nic.mac,
            stp=request.stp,
            forward_delay=request.forward_delay,
            companions=[c for c, _ in companions],
        )
        port_doc = render_port(nic_doc, br, nic=nic.name)
        touched = [nic_path, br_path]
        touched += [self._scripts(n) for c, _ in companions for n in (c.old, c.new)]
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
        steps += self._companion_steps(current, companions, "routes follow the address")
        if self.files_only:
            return self._files_only("enslave", request, current, steps, warnings)
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

    def _refuse_aliases(self, current: HostState, nic: str) -> None:
        """Alias files add addresses to the NIC under another name: they would stay on the
        port, so their addresses would be lost. Refused rather than dropped."""
        aliases = sorted(
            name
            for name in current.list_dir(self.paths(SCRIPTS_DIR)) or ()
            if name.startswith(f"ifcfg-{nic}:") and not name.endswith(_IGNORED_SUFFIX)
        )
        if aliases:
            raise InvalidInput(
                f"{', '.join(aliases)} add alias addresses to {nic}; kvmnet does not move "
                f"alias files: merge them into IPADDRn/PREFIXn of {nic}'s file first"
            )

    def _companions(
        self, current: HostState, nic_path: str, nic: str, br: str
    ) -> list[tuple[Companion, str]]:
        """Each route/rule file of the NIC (named after its profile file, which NetworkManager
        reads, or after the device, which initscripts reads) with its new text."""
        profile = posixpath.basename(nic_path)[len("ifcfg-") :]
        out: list[tuple[Companion, str]] = []
        for kind in COMPANION_KINDS:
            names = list(dict.fromkeys((f"{kind}-{profile}", f"{kind}-{nic}")))
            texts = [(n, read_text(current, self._scripts(n))) for n in names]
            present = [(n, t) for n, t in texts if t is not None]
            if not present:
                continue
            if len(present) > 1:
                raise InvalidInput(
                    f"both {present[0][0]} and {present[1][0]} exist: NetworkManager reads "
                    f"the first, initscripts both; merge them into one before bridging {nic}"
                )
            old, text = present[0]
            new = f"{kind}-{br}"
            if read_text(current, self._scripts(new)) is not None:
                raise InvalidInput(
                    f"{new} exists already and {old} would replace it: merge {old} into "
                    f"{new} (or remove one) before bridging {nic}"
                )
            moved = retarget(text, nic, br)
            # Renaming is only done when it can be undone exactly (the text never named br).
            exact = moved != text and retarget(moved, br, nic) == text
            out.append((Companion(old, new, nic if exact else None), moved if exact else text))
        return out

    def _companion_steps(
        self, current: HostState, moves: list[tuple[Companion, str]], why: str
    ) -> list[Step]:
        """Each companion written under its new name (keeping its mode), then removed."""
        steps: list[Step] = []
        for companion, text in moves:
            old, new = self._scripts(companion.old), self._scripts(companion.new)
            steps += [
                write_step(
                    current,
                    new,
                    text,
                    mode=self._runner.file_mode(old) or 0o644,
                    keep_mode=self._runner,
                    why=why,
                ),
                RemoveFile(old, previous=read_text(current, old), why=f"moved to {companion.new}"),
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

    def plan_release(self, request: BridgeRequest, current: HostState) -> Plan:
        """Plan the way back: the bridge's IP settings and route/rule files back on the NIC, byte
        for byte, and ``ifcfg-BR`` deleted.

        Args:
            request: what is wanted: the NIC, the bridge and the options.
            current: the host as it is now: links, routes, DHCP clients, and files read under
                the backend's ``root``.

        Returns:
            The `Plan` (files only, when `files_only`); nothing is changed (``plan.apply()``
            runs it).

        Raises:
            InvalidInput: an ifcfg file kvmnet cannot edit safely (the message says which).
        """
        nic, br = current.nic, request.bridge
        found = self.find_file(current, nic.name, nic.mac)
        nic_path, nic_doc = found or (self._scripts(f"ifcfg-{nic.name}"), _from_state(nic))
        if found is None:
            _refuse_unidentified(current, nic_path, nic.name)
        br_found = self.find_file(current, br, None)
        br_path = br_found[0] if br_found else self._scripts(f"ifcfg-{br}")
        if br_found is None:
            _refuse_unidentified(current, br_path, br)
        br_doc = br_found[1] if br_found else ShellVars()
        restored = restore_port(nic_doc, br_doc)
        companions = self._companions_back(current, nic_path, br_doc, nic.name, br)
        touched = [nic_path, br_path]
        touched += [self._scripts(n) for c, _ in companions for n in (c.old, c.new)]
        steps: list[Step] = self._backups(current, touched)
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
        steps += self._companion_steps(current, companions, f"routes go back to {nic.name}")
        steps.append(RemoveFile(br_path, previous=read_text(current, br_path)))
        if self.files_only:
            plan = self._plan("release", request, current, steps, restore_runtime=False)
            return dataclasses.replace(plan, checks=())
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

    def _companions_back(
        self, current: HostState, nic_path: str, br_doc: ShellVars, nic: str, br: str
    ) -> list[tuple[Companion, str]]:
        """The bridge's route/rule files going back to the names ``ifcfg-BR`` recorded (else
        to the NIC's profile name), their ``dev`` words renamed back where they were."""
        notes = companion_notes(br_doc)
        profile = posixpath.basename(nic_path)[len("ifcfg-") :]
        out: list[tuple[Companion, str]] = []
        for kind in COMPANION_KINDS:
            name = f"{kind}-{br}"
            text = read_text(current, self._scripts(name))
            if text is None:
                continue
            note = notes.get(name)
            back = note.old if note else f"{kind}-{profile}"
            if read_text(current, self._scripts(back)) is not None:
                raise InvalidInput(
                    f"{back} exists and {name} would replace it on release: merge them "
                    f"into one of the two (or remove {back}) first"
                )
            # No note: written by a kvmnet before notes existed, which always renamed dev.
            renamed = note is None or note.nic is not None
            out.append((Companion(name, back), retarget(text, br, nic) if renamed else text))
        return out


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

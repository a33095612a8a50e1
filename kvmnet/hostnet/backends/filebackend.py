"""What the four config-file backends (ifcfg, nmcli, netplan, networkd) share: paths under a
``root`` (`FileBackendBase`), writes that show a diff, backups, the steps before the
network stack takes over (DHCP clients, stale addresses on a pre-existing bridge), and
commands on a private D-Bus (`on_bus`). ``stale_addresses`` and ``stp_warnings`` live in
`.base` (the iproute2 backend uses them too) and are re-exported here.

Kept apart so each backend module holds only its own format and commands.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import time
from collections.abc import Iterable, Sequence
from typing import Literal

from ...core import validate
from ...errors import InvalidInput, InvalidType, UntrustedPath
from ..model.plan import Plan, RunCommand, Step, WriteFile
from ..model.request import BridgeRequest, HostState
from ..model.state import LinkState
from ..runners.files import chase
from ..runners.runner import LocalRunner, Runner, Scratch
from .base import BackendBase, stale_addresses, stop_dhcp_clients, stp_warnings

__all__ = [
    "BACKUP_DIR",
    "FileBackendBase",
    "Rooted",
    "Scratch",
    "backup_steps",
    "leased_v4",
    "on_bus",
    "read_text",
    "stale_address_steps",
    "stale_addresses",
    "stp_warnings",
    "takeover_steps",
    "write_step",
]


BACKUP_DIR = "/var/lib/kvmnet/backup"


class Rooted:
    """Maps absolute config paths (``/etc/netplan``) to paths under ``root``.

    ``confine`` (a root on this machine's file system): a path that resolves outside the root
    through a symlink under it (``ROOT/etc/netplan -> /etc/netplan``) is refused rather than
    written through (`kvmnet.core.validate.root_dir` checked that the root exists).
    """

    def __init__(self, root: str | os.PathLike[str], *, confine: bool = False) -> None:
        text = os.fspath(root) if isinstance(root, os.PathLike) else root
        if not isinstance(text, str):
            raise InvalidType(f"root {root!r} is not a path: give a str such as '/' or '/tmp/r'")
        if not text.startswith("/") or "\0" in text:
            raise InvalidInput(f"root {text!r} is not an absolute path: use '/' or e.g. '/tmp/r'")
        self.root = os.path.normpath(text)
        self.confine = confine and self.root != "/"

    def __call__(self, path: str) -> str:
        rel = posixpath.normpath("/" + path).lstrip("/")
        full = posixpath.join(self.root, rel) if rel else self.root
        if self.confine:
            real_root = os.path.realpath(self.root)
            real = os.path.realpath(full)
            if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
                raise UntrustedPath(
                    f"{full} resolves to {real}, outside root {self.root!r}: a symlink under "
                    "the root points out of it, and writing through it would change files "
                    "the root was meant to keep apart. Replace the symlink by a directory, "
                    "or use root='/' to act on this machine's own files",
                    path=full,
                )
        return full

    def chase(self, path: str) -> str | None:
        """``path`` with every symlink on it followed as a program chrooted into the root
        would follow it (systemd's ``chase()`` with a root): an absolute target starts again
        at the root, ``..`` stops there. The links are read on this machine's file system.

        An image's own links (``/run/systemd/network/70-ens5.network ->
        /usr/lib/systemd/network/80-ec2.network``) then lead to the image's files, never to
        this machine's.

        Args:
            path: an absolute path as seen inside the root.

        Returns:
            The path it leads to, as seen inside the root (map it with ``self(...)``); a
            missing part ends the chase there. None: more than 40 links (a loop), as the
            kernel gives up (ELOOP).
        """
        return chase(self.root, path)

    def __repr__(self) -> str:
        return f"Rooted({self.root!r})"


class FileBackendBase(BackendBase):
    """A backend whose configuration files live under ``root`` (``paths`` maps into it).

    ``root`` must be an existing directory: a missing one is refused, not created, and so is
    a root whose config dirs (``config_dirs``, and the backup dir) resolve outside it through
    a symlink, since writes would land on the real system. The check is made on this
    machine's file system when the runner acts on it (the default, a local or namespace
    runner); another runner (a recording one) holds its own files.

    Args:
        root: where the configuration files are (str or path-like; ``/``: this machine's).
        netns: the network namespace to read and act in.
        runner: the runner to read and act through (default: one for ``netns``).

    Raises:
        InvalidInput: a missing root, or one that leads outside itself (InvalidType for a
            wrong type).
    """

    #: How the stack reads files written for another root (said in the files-only warning).
    reads_files = "the stack reads them at its next start"

    def _files_only(
        self,
        action: Literal["enslave", "release"],
        request: BridgeRequest,
        current: HostState,
        writes: Sequence[Step],
        warnings: list[str],
    ) -> Plan:
        """The plan that writes ``writes`` and nothing else: no command, no check (what this
        machine shows says nothing about files written for another)."""
        warnings.append(
            f"only files are written under {self.root}: nothing runs or is verified on this "
            f"machine; {self.reads_files}"
        )
        plan = self._plan(action, request, current, list(writes), warnings=warnings,
                          restore_runtime=False)  # fmt: skip
        return dataclasses.replace(plan, checks=())

    def _plan(
        self,
        action: Literal["enslave", "release"],
        request: BridgeRequest,
        current: HostState,
        steps: Iterable[Step],
        *,
        warnings: Iterable[str] = (),
        rollback_hints: Iterable[Step] = (),
        restore_runtime: bool = True,
    ) -> Plan:
        steps = tuple(steps)
        for step in steps:
            if isinstance(step, WriteFile):
                self._check_links(step.path)
        return super()._plan(action, request, current, steps, warnings=warnings,
                             rollback_hints=rollback_hints,
                             restore_runtime=restore_runtime)  # fmt: skip

    def _check_links(self, path: str) -> None:
        """Refuse a write whose symlinks lead elsewhere than a program chrooted into the root
        would be led (`Rooted.chase`): the runner writes through links as this machine
        resolves them, so the two must agree. Under ``/`` (or files not on this machine)
        they always do.

        Raises:
            UntrustedPath: the links loop, or lead out of the root on this machine, or to
                another file than inside the root.
        """
        if not self.paths.confine:
            return
        inside = self.paths.chase("/" + posixpath.relpath(path, self.root))
        host = os.path.realpath(path)
        mapped = None if inside is None else os.path.realpath(self.paths(inside))
        if mapped != host:
            where = "a loop" if inside is None else f"{self.root.rstrip('/')}{inside}"
            raise UntrustedPath(
                f"{path} is reached through a symlink: inside root {self.root!r} (as a program "
                f"chrooted there reads it) it leads to {where}, on this machine to {host}. "
                "Nothing was changed: make the link relative, or replace it by the file",
                path=path,
            )

    #: The absolute directories (as on ``/``) this backend reads and writes under ``root``.
    config_dirs: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        root: str | os.PathLike[str] = "/",
        netns: str | None = None,
        runner: Runner | None = None,
    ) -> None:
        root = validate.path(root, "root")
        local = runner is None or isinstance(runner, LocalRunner)
        if local:
            root = validate.root_dir(root, config_dirs=(*self.config_dirs, BACKUP_DIR))
        super().__init__(netns=netns, runner=runner)
        # A local or namespace runner shares this machine's files: every path it maps is
        # checked again when used (a symlink made after the constructor's check).
        self.paths = Rooted(root, confine=local)

    @property
    def root(self) -> str:
        """The root directory the configuration files are read and written under."""
        return self.paths.root


def read_text(current: HostState, path: str) -> str | None:
    data = current.read_file(path)
    return None if data is None else data.decode("utf-8", errors="surrogateescape")


def write_step(
    current: HostState,
    path: str,
    content: str,
    *,
    mode: int,
    why: str,
    keep_mode: Runner | None = None,
) -> WriteFile:
    """A WriteFile carrying what is at ``path`` now, so the plan shows a diff. With
    ``keep_mode``, an existing file keeps its mode (``mode`` is for a new file)."""
    existing = keep_mode.file_mode(path) if keep_mode is not None else None
    return WriteFile(
        path,
        content,
        mode=mode if existing is None else existing,
        previous=read_text(current, path),
        why=why,
    )


def backup_steps(
    current: HostState, paths: Iterable[str], *, rooted: Rooted, stamp: str | None, why: str
) -> list[Step]:
    """A copy (mode 0600) of each existing file in ``paths`` under ``BACKUP_DIR/STAMP`` in
    ``rooted`` (``stamp`` None: the current UTC time), away from the folder whose every file
    the network stack reads as configuration. Backups never overwrite each other: the default
    stamp counts microseconds, and a folder that exists already gets a ``-2``, ``-3``...
    sibling (two plans in the same second, or the same explicit ``stamp`` twice)."""
    if stamp is None:
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    base = rooted(posixpath.join(BACKUP_DIR, stamp))
    folder, n = base, 1
    while current.list_dir(folder) is not None:
        n += 1
        folder = f"{base}-{n}"
    steps: list[Step] = []
    for path in paths:
        text = read_text(current, path)
        if text is not None:
            target = posixpath.join(folder, posixpath.basename(path))
            steps.append(WriteFile(target, text, mode=0o600, why=why))
    return steps


def leased_v4(nic: LinkState) -> bool:
    """Whether the NIC's IPv4 address came from DHCP (dynamic, or with a lifetime): the
    configuration written for it then asks for a lease rather than fixing the address."""
    return any(a.dynamic or a.valid_lft is not None for a in nic.global_addresses if a.family == 4)


def stale_address_steps(current: HostState, request: BridgeRequest) -> list[Step]:
    return [
        RunCommand(
            ("ip", "addr", "del", a.cidr, "dev", request.bridge),
            f"stale address on the existing {request.bridge}: it is not {request.nic}'s",
        )
        for a in stale_addresses(current)
    ]


def takeover_steps(current: HostState, request: BridgeRequest) -> list[Step]:
    """What must go before the network stack takes over: DHCP clients started by hand on the
    NIC or the bridge (one left on the NIC re-adds its lease to the port at renewal: stop it;
    rollback restarts it) and stale addresses on a pre-existing bridge."""
    stops = stop_dhcp_clients(current, (request.nic, request.bridge), "; the new config leases")
    return stops + stale_address_steps(current, request)


def on_bus(bus_address: str | None, program: str, *args: str) -> tuple[str, ...]:
    """``program args`` talking to the system bus at ``bus_address`` (None: the default one),
    as ``env DBUS_SYSTEM_BUS_ADDRESS=... program args``: the runner takes no environment."""
    env = ("env", f"DBUS_SYSTEM_BUS_ADDRESS={bus_address}") if bus_address else ()
    return (*env, program, *args)

"""The one place in kvmnet that runs commands and writes files: the runner seam.

Everything that touches the host goes through a `Runner`, the way httpx sends every
request through a transport. Backends never run anything: they read the host through the
runner (read-only queries, files) and return a `Plan`; the
shared apply mechanism executes that plan through the same runner.

- `LocalRunner` acts on this host.
- `NetnsRunner` runs commands inside a network namespace (``ip netns exec NS ...``);
  files are shared with the host, except the per-namespace ``/proc/sys/net`` and ``/sys``.
- `Scratch` is a temporary folder on this machine for a validator's input.
- `RecordingRunner` executes nothing and records every call; canned replies answer read
  commands, so embedders can test their own code without root (like httpx's MockTransport)::

      runner = RecordingRunner(replies={("ip", "-j", "link", "show"): "[]"})
      runner.run(["ip", "link", "set", "br0", "up"])
      assert runner.commands == [("ip", "link", "set", "br0", "up")]
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ... import _log
from ...core.names import validate_netns_name
from ...errors import CommandFailed
from .files import atomic_write, check_regular

__all__ = [
    "Call",
    "CommandResult",
    "LocalRunner",
    "NetnsRunner",
    "RecordingRunner",
    "Runner",
    "Scratch",
    "default_runner",
    "is_read_only",
]

log = _log.get(__name__)

DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class CommandResult:
    """What a command did: ``argv`` as run, exit status and its decoded output.

    Attributes:
        argv: the command as run.
        returncode: its exit status.
        stdout: its standard output, decoded.
        stderr: its standard error, decoded.
    """

    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.returncode == 0

    def check(self) -> CommandResult:
        """Raise `CommandFailed` unless the command exited 0.

        Returns:
            This result, for chaining.

        Raises:
            CommandFailed: naming the command, its exit status and its error output.
        """
        if self.returncode != 0:
            err = " ".join(self.stderr.split())
            raise CommandFailed(
                f"command `{shlex.join(self.argv)}` exited {self.returncode}: {err or 'no output'}",
                argv=self.argv,
                returncode=self.returncode,
                stderr=self.stderr,
            )
        return self


@runtime_checkable
class Runner(Protocol):
    """Runs commands and reads/writes files on one host (or inside one network namespace).

    ``netns`` is the namespace commands run in (None: the runner's own). ``write_file`` is
    atomic (temp file in the same directory, fsync, chmod, ``os.replace``). ``spawn`` starts a
    detached long-running process (a DHCP client) and returns its PID.
    """

    @property
    def netns(self) -> str | None:
        """The network namespace commands run in (None: the runner's own)."""
        ...

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> CommandResult:
        """Run ``argv`` (an argument list, never a shell) and wait for it.

        Args:
            argv: the command and its arguments.
            input: text fed to its standard input.
            check: raise unless it exits 0.
            timeout: seconds before it is killed.

        Returns:
            What the command did.

        Raises:
            CommandFailed: ``check`` and a non-zero exit, or a timeout.
        """
        ...

    def spawn(self, argv: Sequence[str]) -> int:
        """Start a detached long-running process (a DHCP client).

        Args:
            argv: the command and its arguments.

        Returns:
            Its PID.
        """
        ...

    def read_file(self, path: str) -> bytes | None:
        """The bytes of ``path``.

        Args:
            path: an absolute path.

        Returns:
            The file's bytes, None if it does not exist.

        Raises:
            UntrustedPath: ``path`` is a directory.
        """
        ...

    def file_mode(self, path: str) -> int | None:
        """The permission bits of ``path``.

        Args:
            path: an absolute path.

        Returns:
            The mode (e.g. ``0o600``), None if it does not exist.

        Raises:
            UntrustedPath: ``path`` is a directory.
        """
        ...

    def list_dir(self, path: str) -> tuple[str, ...] | None:
        """The names in directory ``path``.

        Args:
            path: an absolute path.

        Returns:
            The entries' names, None if it is no directory.
        """
        ...

    def write_file(self, path: str, data: bytes, *, mode: int) -> None:
        """Write ``path`` atomically: temp file beside it, fsync, chmod, ``os.replace``.

        kvmnet's runners write through a symlink into its target and keep the replaced
        file's owner, group and extended attributes (`kvmnet.hostnet.runners.files`).

        Args:
            path: an absolute path.
            data: the new content.
            mode: its permission bits.

        Raises:
            UntrustedPath: ``path`` leads to a directory (or another non-regular file), or
                its symlinks loop; nothing was changed.
        """
        ...

    def remove_file(self, path: str) -> None:
        """Remove ``path``; a missing file is no error.

        Args:
            path: an absolute path.
        """
        ...


def _atomic_write(path: str, data: bytes, mode: int) -> None:
    atomic_write(path, data, mode)


class LocalRunner:
    """Runs commands on this host with `subprocess` (argument lists, never a shell)."""

    def __init__(self) -> None:
        self._netns: str | None = None

    @property
    def netns(self) -> str | None:
        return self._netns

    def __repr__(self) -> str:
        return "<LocalRunner>"

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> CommandResult:
        full = self._wrap(argv)
        log.debug("run: %s", shlex.join(full))
        try:
            proc = subprocess.run(  # noqa: S603 - argv list, never a shell
                full,
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            result = CommandResult(tuple(argv), 127, "", f"{argv[0]}: not found ({exc})")
        except subprocess.TimeoutExpired:
            result = CommandResult(tuple(argv), 124, "", f"timed out after {timeout:g} s")
        else:
            result = CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        return result.check() if check else result

    def spawn(self, argv: Sequence[str]) -> int:
        full = self._wrap(argv)
        log.debug("spawn: %s", shlex.join(full))
        proc = subprocess.Popen(  # noqa: S603 - argv list, never a shell
            full,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return proc.pid

    def read_file(self, path: str) -> bytes | None:
        st = self._stat(path)
        if st is None:
            return None
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def file_mode(self, path: str) -> int | None:
        st = self._stat(path)
        return None if st is None else st.st_mode & 0o7777

    def _stat(self, path: str) -> os.stat_result | None:
        """``path``'s stat (links followed), None when missing; a directory is refused: it
        stands where kvmnet reads and writes a file. (A link to /dev/null reads as empty: a
        networkd mask.)"""
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISDIR(st.st_mode):
            check_regular(path, st)
        return st

    def list_dir(self, path: str) -> tuple[str, ...] | None:
        try:
            return tuple(sorted(os.listdir(path)))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write_file(self, path: str, data: bytes, *, mode: int) -> None:
        log.debug("write %s (%d bytes, mode %o)", path, len(data), mode)
        target = atomic_write(path, data, mode)
        if target != os.path.abspath(path):
            log.debug("wrote %s through the symlink %s", target, path)

    def remove_file(self, path: str) -> None:
        log.debug("remove %s", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# Per-namespace views of the filesystem: reading them from this process would show the
# host's values, so the namespace runner reads them from inside.
_NETNS_PATHS = ("/proc/sys/net/", "/sys/")


class NetnsRunner(LocalRunner):
    """Runs commands inside network namespace ``netns`` via ``ip netns exec``."""

    def __init__(self, netns: str) -> None:
        super().__init__()
        self._netns = validate_netns_name(netns)

    def __repr__(self) -> str:
        return f"<NetnsRunner {self._netns!r}>"

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", str(self._netns), *argv]

    def read_file(self, path: str) -> bytes | None:
        if not path.startswith(_NETNS_PATHS):
            return super().read_file(path)
        result = self.run(["cat", path], check=False)
        return result.stdout.encode() if result.ok else None

    def list_dir(self, path: str) -> tuple[str, ...] | None:
        if not path.startswith(_NETNS_PATHS):
            return super().list_dir(path)
        result = self.run(["ls", "-1", path], check=False)
        return tuple(sorted(result.stdout.split())) if result.ok else None


# Commands kvmnet runs only to look at the host (inspection, preflight).
READ_ONLY: tuple[tuple[str, ...], ...] = (
    ("ip", "-j"),
    ("nmcli", "-t", "-f", "DEVICE,STATE", "device", "status"),
    ("networkctl", "list", "--no-legend", "--no-pager"),
    ("iptables", "-S"),
    ("readlink",),
    ("cat",),
    ("ls", "-1"),
)


def is_read_only(argv: Sequence[str]) -> bool:
    """True for the commands kvmnet runs only to read the host (see READ_ONLY)."""
    key = tuple(argv)
    return any(key[: len(prefix)] == prefix for prefix in READ_ONLY)


def default_runner(netns: str | None = None) -> LocalRunner:
    """`NetnsRunner` for ``netns``, else `LocalRunner`.

    Only None means "this namespace": an empty name is refused (by NetnsRunner's name check)
    rather than silently acting on the host's own interfaces.
    """
    return LocalRunner() if netns is None else NetnsRunner(netns)


@dataclass(frozen=True)
class Call:
    """One call a `RecordingRunner` received.

    Attributes:
        kind: ``"run"``, ``"spawn"``, ``"write"`` or ``"remove"``.
        argv: the command, for run and spawn.
        path: the file, for write and remove.
        data: the bytes written.
        mode: the mode written.
    """

    kind: str
    argv: tuple[str, ...] = ()
    path: str | None = None
    data: bytes | None = None
    mode: int | None = None


Reply = CommandResult | str | Callable[[tuple[str, ...]], CommandResult]


@dataclass
class RecordingRunner:
    """Executes nothing; records every call. Reads are answered from canned data.

    Attributes:
        replies: an argv (a tuple) -> its stdout, a `CommandResult`, or a function of the
            argv; an argv with no reply "succeeds" with empty output.
        files: path -> bytes (writes update it, so a later read sees them).
        modes: path -> mode.
        fail: argv prefixes that exit 1, to rehearse failures.
        netns: the namespace it pretends to run in.
        calls: every call received, in order.
    """

    replies: Mapping[tuple[str, ...], Reply] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    fail: Sequence[tuple[str, ...]] = ()
    netns: str | None = None
    calls: list[Call] = field(default_factory=list)
    _next_pid: int = field(default=40000, repr=False)

    @property
    def commands(self) -> list[tuple[str, ...]]:
        """Every argv given to `run` and `spawn`, in order."""
        return [c.argv for c in self.calls if c.kind in ("run", "spawn")]

    @property
    def changes(self) -> list[Call]:
        """Calls other than queries: every write, remove, spawn, and every command that has
        no canned reply and is not one of kvmnet's read-only queries (READ_ONLY)."""
        return [
            c
            for c in self.calls
            if not (c.kind == "run" and (c.argv in self.replies or is_read_only(c.argv)))
        ]

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> CommandResult:
        """Record ``argv`` and answer from `replies` (an argv with no reply succeeds, empty).

        Args:
            argv: the command and its arguments.
            input: ignored: nothing runs.
            check: raise unless the (canned) exit status is 0.
            timeout: ignored: nothing runs.

        Returns:
            The canned result; exit status 1 for an argv matching `fail`.

        Raises:
            CommandFailed: ``check`` and a canned non-zero exit.
        """
        key = tuple(argv)
        self.calls.append(Call("run", key))
        reply = self.replies.get(key)
        if any(key[: len(p)] == tuple(p) for p in self.fail):
            result = CommandResult(key, 1, "", "RecordingRunner: told to fail")
        elif reply is None:
            result = CommandResult(key, 0)
        elif isinstance(reply, str):
            result = CommandResult(key, 0, reply)
        elif isinstance(reply, CommandResult):
            result = reply
        else:
            result = reply(key)
        return result.check() if check else result

    def spawn(self, argv: Sequence[str]) -> int:
        """Record ``argv``; start nothing.

        Args:
            argv: the command and its arguments.

        Returns:
            A made-up PID, one higher per call.
        """
        self.calls.append(Call("spawn", tuple(argv)))
        self._next_pid += 1
        return self._next_pid

    def read_file(self, path: str) -> bytes | None:
        """The canned bytes of ``path``.

        Args:
            path: an absolute path.

        Returns:
            The bytes from `files`, None if it has none.
        """
        return self.files.get(path)

    def file_mode(self, path: str) -> int | None:
        """The canned mode of ``path``.

        Args:
            path: an absolute path.

        Returns:
            The mode from `modes` (0o644 if it names none), None for a file not in `files`.
        """
        if path not in self.files:
            return None
        return self.modes.get(path, 0o644)

    def list_dir(self, path: str) -> tuple[str, ...] | None:
        """The names under ``path`` among the canned `files`.

        Args:
            path: an absolute path.

        Returns:
            The entries' names, None if no file lies under it.
        """
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix) :].split("/", 1)[0] for p in self.files if p.startswith(prefix)}
        return tuple(sorted(names)) if names else None

    def write_file(self, path: str, data: bytes, *, mode: int) -> None:
        """Record the write and keep the bytes in `files`, so a later read sees them.

        Args:
            path: an absolute path.
            data: the new content.
            mode: its permission bits, kept in `modes`.
        """
        self.calls.append(Call("write", path=path, data=data, mode=mode))
        self.files[path] = data
        self.modes[path] = mode

    def remove_file(self, path: str) -> None:
        """Record the removal and drop ``path`` from `files`.

        Args:
            path: an absolute path.
        """
        self.calls.append(Call("remove", path=path))
        self.files.pop(path, None)
        self.modes.pop(path, None)


class Scratch:
    """A private temporary root on this machine for a real validator (``netplan generate
    --root-dir``): rendered files go there, never onto the host, before validation.

    Written directly, not through a runner: they are the validator's input, not a host
    change, so a RecordingRunner records (and answers) only the validator's command.
    """

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="kvmnet-validate-")

    def put(self, rel: str, content: str, mode: int = 0o600) -> str:
        target = posixpath.join(self.path, rel.lstrip("/"))
        os.makedirs(posixpath.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(target, mode)
        return target

    def read_tree(self, rel: str) -> dict[str, str]:
        """Every file under ``rel`` (relative names) with its text."""
        base = posixpath.join(self.path, rel.lstrip("/"))
        out: dict[str, str] = {}
        for dirpath, _dirs, names in os.walk(base):
            for name in names:
                full = posixpath.join(dirpath, name)
                if os.path.islink(full):
                    continue  # e.g. netplan's dangling .wants/ links into a real /run
                with open(full, encoding="utf-8", errors="replace") as handle:
                    out[posixpath.relpath(full, base)] = handle.read()
        return out

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

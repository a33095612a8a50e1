"""A `Runner` for another machine, over the OpenSSH client.

``qemu+ssh://root@hv2/system`` manages hv2's guests; `SshRunner` lets the host side
(inspection, plans, the dead-man timer, the bridge probe) act on hv2 too::

    runner = SshRunner(machine_of("qemu+ssh://root@hv2/system?keyfile=/k"))
    runner.run(["ip", "-j", "link", "show"]).stdout
    runner.close()                     # ends the shared connection

How it talks to the machine, and why:

* **The OpenSSH client**, as libvirt's own ssh transport uses it: the URI's host, user,
  port, ``keyfile=`` (``-i``) and ``no_verify=`` (``StrictHostKeyChecking=no``, only then)
  are passed on as `machine_of` reads them, and ``command=`` names the ssh client to run;
  everything else (``~/.ssh/config``, the agent, the known_hosts files) is ssh's own. The
  URI's ``known_hosts=`` is ignored, as libvirt's ssh transport ignores it (it is for
  libssh/libssh2). ``BatchMode=yes``: a library call never stops at a password or host-key
  prompt; when ssh itself fails (exit 255 with ssh's own message: no key it may use, an
  unknown or changed host key, no route), the `CommandFailed` says so and what to do.
* **One multiplexed connection**: ``ControlMaster=auto`` with the control socket in a private
  0700 folder of this runner, ``ControlPersist`` so the first command leaves the master behind;
  every later command, file read and write rides on it. `close` ends it.
* **Argument lists only**: ssh hands the far side ONE string for its shell, so every argument
  is quoted with `shlex.quote`, never interpolated. File writes are atomic on the far
  side: kvmnet's own write (`kvmnet.hostnet.runners.files`, run from the shipped zip) puts
  the content into a temporary file in the same folder and renames it over the file a
  symlink leads to, keeping its owner and extended attributes.
* **kvmnet's own helper processes** (an argv ``sys.executable -m kvmnet.X ...``: the dead-man
  watcher, the bridge probe's sender) run on the machine with its ``python3`` (3.10 or later)
  from a zip of this kvmnet's own modules that the runner copies there once
  (``/run/kvmnet/lib/kvmnet-<hash>.pyz``, or under ``$KVMNET_REMOTE_LIB``): nothing needs
  installing on the hypervisor.
* ``ServerAliveInterval`` bounds how long a command waits on a connection a bridge change
  has cut; the caller then gets exit status 255 (ssh's own failure).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import weakref
import zipfile
from collections.abc import Sequence
from pathlib import Path

from ... import _log
from ...core.names import validate_netns_name
from ...errors import CommandFailed, UntrustedPath
from .files import REFUSED
from .machine import LOCAL, Machine
from .runner import DEFAULT_TIMEOUT, CommandResult, LocalRunner, Runner

__all__ = ["REMOTE_LIB", "SSH_FAILED", "SshRunner", "kvmnet_zip", "runner_machine"]

log = _log.get(__name__)

#: ssh's exit status when the connection itself failed (not the remote command).
SSH_FAILED = 255
#: Where the zip of kvmnet's modules goes on the far side (``$KVMNET_REMOTE_LIB`` overrides).
REMOTE_LIB = "/run/kvmnet/lib"
# How long an idle master connection stays after the last command (seconds).
PERSIST = 60
_MISSING = 44  # our scripts' status for "no such file/folder"

# The far side's scripts. Each is run as `sh -c SCRIPT kvmnet ARG...`: the arguments are
# positional parameters, quoted by shlex.quote on this side, never pasted into the script.
# A directory where a file is read: 45 (`REFUSED`), as the local runner refuses it.
_DIR = (
    'if [ -d "$1" ]; then echo "$1 is a directory where kvmnet reads and writes a configuration'
    " file: nothing was changed. Move it away (or make it the file it should be) and plan"
    ' again" >&2; exit 45; fi; '
)
_READ = _DIR + '[ -f "$1" ] || exit 44; exec cat -- "$1"'
_MODE = _DIR + '[ -e "$1" ] || exit 44; exec stat -L -c %a -- "$1"'
_LIST = '[ -d "$1" ] || exit 44; exec ls -1A -- "$1"'
# A detached process in a session of its own (it outlives this SSH connection); its PID.
_SPAWN = 'setsid "$@" </dev/null >/dev/null 2>&1 & echo $!'
_SHIP = """set -e
[ -s "$1" ] && exit 0
d=$(dirname -- "$1")
mkdir -p -m 0700 -- "$(dirname -- "$d")" "$d"
t=$(mktemp "$d/.kvmnet-XXXXXX.tmp")
trap 'rm -f -- "$t"' EXIT
cat > "$t"
mv -f -- "$t" "$1"
trap - EXIT"""

_READ_MANY = """import base64, json, sys
out = {}
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as handle:
            out[path] = base64.b64encode(handle.read()).decode()
    except OSError:
        out[path] = None
json.dump(out, sys.stdout)
"""

# Runs the argument lists on stdin (JSON) in order until one fails; says how far it got.
_BATCH = """import json, subprocess, sys
done, failed = 0, None
for argv in json.load(sys.stdin):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except OSError as exc:
        rc, out, err = 127, "", str(exc)
    if rc != 0:
        failed = {"rc": rc, "stdout": out, "stderr": err}
        break
    done += 1
json.dump({"done": done, "failed": failed}, sys.stdout)
"""

_ZIP_MAIN = b"""import runpy, sys
module = sys.argv[1]
sys.argv = [module, *sys.argv[2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""

_zip_cache: tuple[str, bytes] | None = None


def kvmnet_zip() -> tuple[str, bytes]:
    """(name, bytes) of a zip of this kvmnet's modules, runnable as ``python3 ZIP MODULE ARGS``.

    Built once per process from the installed package; the name holds a hash of the content,
    so a new kvmnet never reuses an old copy on the far side.
    """
    global _zip_cache
    if _zip_cache is None:
        root = Path(__file__).resolve().parents[2]  # kvmnet/hostnet/runners/ -> kvmnet/
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(root.rglob("*.py")):
                info = zipfile.ZipInfo(f"kvmnet/{path.relative_to(root).as_posix()}")
                info.compress_type = zipfile.ZIP_DEFLATED  # fixed date: same code, same hash
                zf.writestr(info, path.read_bytes())
            main = zipfile.ZipInfo("__main__.py")
            main.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(main, _ZIP_MAIN)
        data = buf.getvalue()
        _zip_cache = (f"kvmnet-{hashlib.sha256(data).hexdigest()[:16]}.pyz", data)
    return _zip_cache


# ssh's own messages: with exit status 255 they mean ssh failed, not the command it was to run.
_SSH_OWN = re.compile(
    r"^(ssh: |(\S+: )?Permission denied \(|Too many authentication failures|Host key verification "
    r"failed|No \S+ host key is known|@+\s*WARNING: REMOTE HOST IDENTIFICATION|"
    r"kex_exchange_identification|Connection (closed|reset|timed out|refused)|Timeout, server)",
    re.MULTILINE,
)
_AUTH = ("Permission denied", "Too many authentication failures")
_HOST_KEY = ("Host key verification failed", "host key is known", "IDENTIFICATION HAS CHANGED")


def _ssh_failed(
    ssh: str, machine: Machine, code: int, err: str, argv: Sequence[str]
) -> CommandFailed | None:
    """The error for a command that never ran because ssh itself failed (exit 255 and ssh's
    own message), saying what to do; None when the command ran (and failed by itself)."""
    if code != SSH_FAILED or not _SSH_OWN.search(err):
        return None
    words = [ssh, *(["-p", str(machine.port)] if machine.port else [])]
    words += ["-i", machine.keyfile] if machine.keyfile else []
    try_it = shlex.join([*words, machine.destination])
    if any(s in err for s in _AUTH):
        advice = (
            "kvmnet runs ssh with BatchMode=yes, so it cannot type a password: load the key "
            "into ssh-agent (ssh-add) or name it with keyfile= in the URI"
        )
    elif any(s in err for s in _HOST_KEY):
        advice = (
            f"its host key is not known (or changed): check and accept it once with `{try_it}`, "
            "or add no_verify=1 to the URI, as libvirt allows, to skip the check"
        )
    else:
        advice = f"check that `{try_it}` gets in from here"
    text = " ".join(err.split())
    return CommandFailed(
        f"ssh to {machine} failed (exit 255), so nothing ran there: {text}. {advice}",
        argv=tuple(argv),
        returncode=code,
        stderr=err,
    )


def _refused(path: str, err: bytes, machine: Machine) -> UntrustedPath:
    text = " ".join(err.decode(errors="replace").split())
    return UntrustedPath(f"on {machine}: {text or path + ' is not a regular file'}", path=path)


def _end_master(argv: list[str], directory: str) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(  # noqa: S603 - argv list
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False
        )
    shutil.rmtree(directory, ignore_errors=True)


class SshRunner:
    """Runs commands and reads/writes files on ``machine`` over one multiplexed SSH connection.

    Args:
        machine: an SSH `Machine` (from
            `machine_of`).
        netns: run every command inside this network namespace of that machine
            (``ip netns exec NS`` there), like `NetnsRunner`.
        control_dir: the private folder for the control socket (default: a new 0700
            temporary folder, removed by `close`).
        multiplex: False opens a new connection for every command (what a confirmation
            must do: prove that a *new* session still gets in).
        ssh: the ssh client to run (default: the URI's ``command=``, else ``ssh``).

    Raises:
        InvalidInput: ``machine`` is not an SSH machine.
    """

    def __init__(
        self,
        machine: Machine,
        *,
        netns: str | None = None,
        control_dir: str | None = None,
        multiplex: bool = True,
        ssh: str | None = None,
    ) -> None:
        from ...errors import InvalidInput

        if machine.kind != "ssh" or not machine.host:
            raise InvalidInput(f"SshRunner needs a qemu+ssh:// machine, got {machine}")
        self.machine = machine
        self._netns = None if netns is None else validate_netns_name(netns)
        self._ssh = ssh or machine.command or "ssh"
        self._multiplex = multiplex
        self._owns_dir = control_dir is None and multiplex
        self._control_dir = control_dir or (
            tempfile.mkdtemp(prefix="kvmnet-ssh-") if multiplex else ""
        )
        self._shipped: set[str] = set()
        self._session: str | None = None
        self._finalizer = (
            weakref.finalize(self, _end_master, self._ctl("exit"), self._control_dir)
            if self._owns_dir
            else None
        )

    # -- the ssh command line ----------------------------------------------------------------

    @property
    def netns(self) -> str | None:
        return self._netns

    @property
    def control_path(self) -> str | None:
        """The control socket of the shared connection (None without multiplexing)."""
        return os.path.join(self._control_dir, "%C") if self._multiplex else None

    def ssh_options(self) -> list[str]:
        """The ssh options this runner uses (everything before the destination)."""
        m = self.machine
        opts = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        opts += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if self._multiplex:
            opts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control_path}"]
            opts += ["-o", f"ControlPersist={PERSIST}"]
        else:
            opts += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        if m.port:
            opts += ["-p", str(m.port)]
        if m.user:
            opts += ["-l", m.user]
        if m.keyfile is not None:
            opts += ["-i", m.keyfile]  # "" too: libvirt hands ssh `-i ""` for `keyfile=`
        if m.no_verify:
            opts += ["-o", "StrictHostKeyChecking=no"]
        return opts

    def _ctl(self, command: str) -> list[str]:
        return [self._ssh, *self.ssh_options(), "-O", command, "--", str(self.machine.host)]

    def ssh_argv(self, remote: Sequence[str]) -> list[str]:
        """The local argv that runs ``remote`` (an argument list) on the machine."""
        words = list(remote)
        if self._netns is not None:
            words = ["ip", "netns", "exec", self._netns, *words]
        command = " ".join(shlex.quote(w) for w in words)
        return [self._ssh, *self.ssh_options(), "-T", "--", str(self.machine.host), command]

    def sibling(self, *, netns: str | None = None, multiplex: bool = True) -> SshRunner:
        """A runner for the same machine (another namespace there, or without multiplexing)
        that shares this one's connection when both multiplex."""
        return SshRunner(
            self.machine,
            netns=netns,
            control_dir=self._control_dir if multiplex and self._multiplex else None,
            multiplex=multiplex,
            ssh=self._ssh,
        )

    def fresh(self) -> SshRunner:
        """A runner for the same machine on a NEW connection of its own (its own master):
        what a confirmation uses to prove that a new session still gets in."""
        return SshRunner(self.machine, netns=self._netns, ssh=self._ssh)

    def __repr__(self) -> str:
        ns = f" netns {self._netns!r}" if self._netns else ""
        return f"<SshRunner {self.machine}{ns}>"

    # -- running -----------------------------------------------------------------------------

    def _exec(
        self, remote: Sequence[str], data: bytes | None, timeout: float
    ) -> tuple[int, bytes, bytes]:
        argv = self.ssh_argv(remote)
        log.debug("ssh %s: %s", self.machine, shlex.join(remote))
        try:
            proc = subprocess.run(  # noqa: S603 - argv list, never a local shell
                argv,
                input=data if data is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            return 127, b"", f"{self._ssh}: not found ({exc})".encode()
        except subprocess.TimeoutExpired:
            return 124, b"", f"timed out after {timeout:g} s over ssh to {self.machine}".encode()
        return proc.returncode, proc.stdout, proc.stderr

    def _helper(self, argv: Sequence[str]) -> list[str]:
        """kvmnet's own ``sys.executable -m kvmnet.X`` becomes the far side's python3 running
        the shipped zip; any other argv is left as it is."""
        words = list(argv)
        own = len(words) >= 3 and words[0] == sys.executable and words[1] == "-m"
        if own and words[2].split(".")[0] == "kvmnet":
            return ["python3", self.ensure_kvmnet(), *words[2:]]
        return words

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> CommandResult:
        remote = self._helper(argv)
        code, out, err = self._exec(remote, None if input is None else input.encode(), timeout)
        result = CommandResult(
            tuple(argv), code, out.decode(errors="replace"), err.decode(errors="replace")
        )
        if check:
            failed = _ssh_failed(self._ssh, self.machine, code, result.stderr, argv)
            if failed is not None:
                raise failed
            result.check()
        return result

    def _script(
        self, script: str, *args: str, data: bytes | None = None, what: str
    ) -> tuple[int, bytes]:
        code, out, err = self._exec(["sh", "-c", script, "kvmnet", *args], data, DEFAULT_TIMEOUT)
        if code == REFUSED and args:
            raise _refused(args[0], err, self.machine)
        if code not in (0, _MISSING):
            failed = _ssh_failed(self._ssh, self.machine, code, err.decode(errors="replace"), args)
            if failed is not None:
                raise failed
            text = " ".join(err.decode(errors="replace").split())
            raise CommandFailed(
                f"{what} on {self.machine} failed (exit {code}): {text or 'no output'}",
                argv=("sh", "-c", script, *args),
                returncode=code,
                stderr=text,
            )
        return code, out

    def spawn(self, argv: Sequence[str]) -> int:
        _code, out = self._script(_SPAWN, *self._helper(argv), what=f"starting {argv[0]}")
        return int(out.decode().strip())

    def read_file(self, path: str) -> bytes | None:
        code, out = self._script(_READ, path, what=f"reading {path}")
        return None if code == _MISSING else out

    def run_batch(
        self, argvs: Sequence[Sequence[str]], *, timeout: float = DEFAULT_TIMEOUT
    ) -> tuple[int, CommandResult | None]:
        """Run commands one after the other on the machine in ONE round trip, stopping at the
        first that fails. Returns how many succeeded and the failed one's result (None when
        all did). The plan's steps use it (see `kvmnet.hostnet.apply.apply_plan`)."""
        words = [list(a) for a in argvs]
        code, out, err = self._exec(["python3", "-c", _BATCH], json.dumps(words).encode(), timeout)
        if code != 0:
            text = err.decode(errors="replace")
            return 0, CommandResult(tuple(words[0]), code, "", text or "the batch did not run")
        raw = json.loads(out)
        done = int(raw["done"])
        if done == len(words):
            return done, None
        failed = raw["failed"]
        return done, CommandResult(
            tuple(words[done]), int(failed["rc"]), failed["stdout"], failed["stderr"]
        )

    def read_files(self, paths: Sequence[str]) -> dict[str, bytes | None]:
        """Many small files in one round trip (``/proc/*/cmdline`` when looking for DHCP
        clients): None for each that is missing or unreadable."""
        if not paths:
            return {}
        code, out, err = self._exec(["python3", "-c", _READ_MANY, *paths], None, DEFAULT_TIMEOUT)
        if code != 0:
            failed = _ssh_failed(self._ssh, self.machine, code, err.decode(errors="replace"), paths)
            if failed is not None:
                raise failed
            raise CommandFailed(
                f"reading {len(paths)} files on {self.machine} failed (exit {code}): "
                f"{' '.join(err.decode(errors='replace').split()) or 'no output'}",
                argv=("python3", "-c", "...", *paths),
                returncode=code,
                stderr=err.decode(errors="replace"),
            )
        raw = json.loads(out)
        return {p: None if raw.get(p) is None else base64.b64decode(raw[p]) for p in paths}

    def file_mode(self, path: str) -> int | None:
        code, out = self._script(_MODE, path, what=f"reading the mode of {path}")
        return None if code == _MISSING else int(out.decode().strip(), 8)

    def list_dir(self, path: str) -> tuple[str, ...] | None:
        code, out = self._script(_LIST, path, what=f"listing {path}")
        return None if code == _MISSING else tuple(sorted(out.decode().split("\n")[:-1]))

    def write_file(self, path: str, data: bytes, *, mode: int) -> None:
        log.debug("write %s:%s (%d bytes, mode %o)", self.machine, path, len(data), mode)
        # The far side runs kvmnet's own write (`kvmnet.hostnet.runners.files`, from the
        # shipped zip): through symlinks, keeping owner and extended attributes, atomic.
        argv = ["python3", self.ensure_kvmnet(), "kvmnet.hostnet.runners.files", path, f"{mode:o}"]
        code, _out, err = self._exec(argv, data, DEFAULT_TIMEOUT)
        if code == REFUSED:
            raise _refused(path, err, self.machine)
        if code != 0:
            failed = _ssh_failed(self._ssh, self.machine, code, err.decode(errors="replace"), argv)
            if failed is not None:
                raise failed
            text = " ".join(err.decode(errors="replace").split())
            raise CommandFailed(
                f"writing {path} on {self.machine} failed (exit {code}): {text or 'no output'}",
                argv=tuple(argv),
                returncode=code,
                stderr=text,
            )

    def remove_file(self, path: str) -> None:
        log.debug("remove %s:%s", self.machine, path)
        self._script('exec rm -f -- "$1"', path, what=f"removing {path}")

    def rename(self, src: str, dst: str) -> bool:
        """Rename ``src`` to ``dst`` on the machine (one ``rename(2)``: atomic, so it can
        serve as a claim); False if ``src`` is gone."""
        code, _ = self._script(
            '[ -e "$1" ] || exit 44; mv -T -- "$1" "$2" || { [ -e "$1" ] || exit 44; exit 1; }',
            src,
            dst,
            what=f"renaming {src}",
        )
        return code == 0

    # -- machine facts -----------------------------------------------------------------------

    def ensure_kvmnet(self) -> str:
        """Copy the zip of kvmnet's modules to the machine unless there; returns its path."""
        name, data = kvmnet_zip()
        path = f"{os.environ.get('KVMNET_REMOTE_LIB') or REMOTE_LIB}/{name}"
        if path not in self._shipped:
            code, _out, err = self._exec(["sh", "-c", _SHIP, "kvmnet", path], data, DEFAULT_TIMEOUT)
            if code != 0:
                text = err.decode(errors="replace")
                failed = _ssh_failed(self._ssh, self.machine, code, text, ["sh", "-c", _SHIP, path])
                if failed is not None:
                    raise failed
                raise CommandFailed(
                    f"copying kvmnet's helper to {self.machine}:{path} failed (exit {code}): "
                    f"{' '.join(err.decode(errors='replace').split()) or 'no output'}",
                    argv=("sh", "-c", _SHIP, path),
                    returncode=code,
                    stderr=err.decode(errors="replace"),
                )
            self._shipped.add(path)
        return path

    def ssh_connection(self) -> str | None:
        """``$SSH_CONNECTION`` of this runner's own session on the machine
        (``client cport server sport``): which of its addresses kvmnet comes in on."""
        if self._session is None:
            code, out, _ = self._exec(["sh", "-c", 'echo "$SSH_CONNECTION"'], None, 30)
            self._session = out.decode().strip() if code == 0 else ""
        return self._session or None

    def master_pid(self) -> int | None:
        """The PID of the shared master connection (None when there is none)."""
        if not self._multiplex:
            return None
        proc = subprocess.run(  # noqa: S603 - argv list
            self._ctl("check"), capture_output=True, text=True, timeout=10, check=False
        )
        text = proc.stderr + proc.stdout
        if proc.returncode != 0 or "pid=" not in text:
            return None
        return int(text.split("pid=", 1)[1].split(")", 1)[0])

    def close(self) -> None:
        """End the shared connection (``ssh -O exit``) and remove the control folder."""
        if self._finalizer is not None:
            self._finalizer()


def runner_machine(runner: Runner) -> Machine | None:
    """The machine ``runner`` acts on; None when it cannot tell (a recording runner, a
    runner of the embedder's own)."""
    machine = getattr(runner, "machine", None)
    if isinstance(machine, Machine):
        return machine
    if isinstance(runner, LocalRunner):
        return LOCAL
    return None

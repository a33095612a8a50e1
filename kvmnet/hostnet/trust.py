"""State that kvmnet acts on is trusted only if nobody but root (or the user kvmnet runs as)
could have written it: the dead-man watcher runs as root and executes the rollback steps it
reads from its state dir, and the MAC claims ledger (:mod:`kvmnet.virt.macledger`) decides which
MACs are free, so a state dir another user can write is a way to run commands as root or to
hand out a MAC twice. Both use this one module; a :class:`Trust` says what is at stake and
the way out in the refusal, and whether the directory must be the user's own.

The rule is OpenSSH's StrictModes: the directory and every directory above it up to ``/``
must be owned by root or by the effective user (the directory itself by the effective user
only, for a ``private`` Trust), and writable by nobody else (no group or world write bit).
Each directory is opened without following symlinks (``O_NOFOLLOW`` | ``O_DIRECTORY``, one
``openat`` per component) and the opened descriptor is ``fstat``-ed, so what is checked is
what is used. One exception, as in systemd's path chasing: an ancestor with the sticky bit
(``/tmp``) may be world-writable, because the sticky bit stops others from renaming or
removing what root made in it (and what others made there fails the owner check).
Symlinks: the state dir itself and its files must not be one; the directories above it are
resolved first (``/var/run`` -> ``/run``) and the real path is checked and used.

Usage::

    real = trusted_dir("/run/kvmnet", create=True)     # Path, or raises UntrustedPath
    data = read_trusted(real / "x.pending.json")       # bytes (None: no such file)
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import UntrustedPath

__all__ = ["ROLLBACK", "Trust", "check_file", "read_trusted", "trusted_dir"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Trust:
    """How a state dir is trusted, and what a refusal says.

    Attributes:
        stake: What another user's write there would allow (said in every refusal).
        elsewhere: The way out besides fixing the path ("use another state dir ...").
        private: The directory and its files must be the effective user's own, not root's
            (root's are fine for a process that runs as root anyway).
    """

    stake: str
    elsewhere: str
    private: bool = False


#: The dead-man watcher's state dir (kvmnet.hostnet.deadman, apply).
ROLLBACK = Trust(
    stake="kvmnet runs the rollback steps it keeps there as root, so it trusts only what "
    "root alone could have written",
    elsewhere="use another state dir (state_dir=, $KVMNET_STATE_DIR; default /run/kvmnet)",
)


def _owner_name(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _refuse(path: str, why: str, fix: str, trust: Trust) -> UntrustedPath:
    return UntrustedPath(
        f"{path} {why}: {trust.stake}. Fix: {fix}, or {trust.elsewhere}", path=path
    )


def _check_owner(st: os.stat_result, path: str, trust: Trust, *, own: bool) -> None:
    """Root or the effective user; only the effective user where ``own`` (a private Trust's
    directory and files)."""
    me = os.geteuid()
    if st.st_uid == me or (st.st_uid == 0 and not own):
        return
    if own:
        why = f"is owned by {_owner_name(st.st_uid)}, not by you ({_owner_name(me)})"
        raise _refuse(path, why, f"remove it (rm -r {path}) or chown it to yourself", trust)
    raise _refuse(path, f"is owned by {_owner_name(st.st_uid)}", f"`chown root {path}`", trust)


def _check_mode(st: os.stat_result, path: str, trust: Trust, *, sticky_ok: bool) -> None:
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        mode = f"{stat.S_IMODE(st.st_mode):04o}"
        why = f"is writable by group or others (mode {mode})"
        raise _refuse(path, why, f"`chmod go-w {path}`", trust)


def _check_dir(st: os.stat_result, path: str, trust: Trust, *, final: bool) -> None:
    _check_owner(st, path, trust, own=final and trust.private)
    _check_mode(st, path, trust, sticky_ok=not final)


def check_file(
    path: str | os.PathLike[str], st: os.stat_result, *, trust: Trust = ROLLBACK
) -> None:
    """Refuse a state file unless ``st`` (its ``lstat``, or ``fstat`` of a descriptor opened
    without following links) shows a regular file with one link, owned as ``trust`` says and
    writable by nobody else. Its directory must have passed :func:`trusted_dir` first.

    Args:
        path: The file, for the message.
        st: Its status.
        trust: Whose it must be, and what the refusal says.

    Raises:
        UntrustedPath: It is a symlink, not a plain file, someone else's, or writable by others.
    """
    name = os.fspath(path)
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(name, "is a symbolic link", f"remove the link (rm {name})", trust)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        raise _refuse(name, "is not a plain file with one link", f"remove it (rm {name})", trust)
    _check_owner(st, name, trust, own=trust.private)
    _check_mode(st, name, trust, sticky_ok=False)


def _open_component(parent_fd: int, name: str, here: str, trust: Trust) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        raise  # missing, not untrusted: the caller creates it or says there is nothing there
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(os.lstat(name, dir_fd=parent_fd).st_mode):
                    fix = f"give the real directory instead of {here}"
                    raise _refuse(here, "is a symbolic link", fix, trust) from exc
            raise _refuse(here, "is not a directory", f"remove {here}", trust) from exc
        why = f"cannot be opened ({exc.strerror})"
        raise _refuse(here, why, f"check {here}", trust) from exc


def _open_checked(real: str, trust: Trust) -> int:
    """An fd of directory ``real`` (absolute, no symlinks) after checking it and every
    ancestor through the descriptors opened one component at a time."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        parts = [p for p in real.split("/") if p]
        _check_dir(os.fstat(fd), "/", trust, final=not parts)
        here = ""
        for n, part in enumerate(parts):
            here += "/" + part
            child = _open_component(fd, part, here, trust)
            os.close(fd)
            fd = child
            _check_dir(os.fstat(fd), here, trust, final=n == len(parts) - 1)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _real(path: str | os.PathLike[str]) -> str:
    absolute = os.path.abspath(os.fspath(path))
    if absolute == "/":
        return absolute
    # Ancestors resolved (a root-owned /var/run -> /run is fine); the last component is kept
    # as given, so a symlinked state dir fails the O_NOFOLLOW open below.
    return os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))


def trusted_dir(
    path: str | os.PathLike[str], *, create: bool = False, trust: Trust = ROLLBACK
) -> Path:
    """The state dir ``path`` as a real path, after checking it as described above.

    Args:
        path: the directory.
        create: make it (mode 0700, missing parents too) when it does not exist.
        trust: whose it must be, and what a refusal says (default: the rollback state dir).

    Returns:
        Its real path (ancestors' symlinks resolved), to use from now on.

    Raises:
        UntrustedPath: it, or a directory above it, could be written by another user, or it is
            a symlink; the message names the path and the fix.
        FileNotFoundError: it does not exist (and ``create`` is False).
    """
    real = _real(path)
    if create and not os.path.lexists(real):
        missing = [p for p in (Path(real), *Path(real).parents) if not os.path.lexists(p)]
        for made in reversed(missing):
            # Made meanwhile by someone else: checked below like any existing directory.
            with contextlib.suppress(FileExistsError):
                os.mkdir(made, 0o700)
    os.close(_open_checked(real, trust))
    return Path(real)


def read_trusted(path: str | os.PathLike[str], *, trust: Trust = ROLLBACK) -> bytes | None:
    """The bytes of a file in a trusted directory, read through a descriptor opened without
    following symlinks and checked with ``fstat`` (:func:`check_file`).

    Args:
        path: the file.
        trust: whose it must be, and what a refusal says.

    Returns:
        Its content, or None when it does not exist.

    Raises:
        UntrustedPath: the file or its directory fails the checks.
    """
    real = _real(path)
    dir_fd = _open_checked(os.path.dirname(real), trust)
    try:
        try:
            fd = os.open(os.path.basename(real), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=dir_fd)  # fmt: skip
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refuse(real, "is a symbolic link", f"remove {real}", trust) from exc
            raise
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as handle:
        check_file(real, os.fstat(handle.fileno()), trust=trust)
        return handle.read()

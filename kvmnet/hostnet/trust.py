"""Files that root acts on are trusted only if only root (or the user kvmnet runs as) could
have written them: the dead-man watcher runs as root and executes the rollback steps it reads
from its state dir, so a state dir another user can write is a way to run commands as root.

The rule is OpenSSH's StrictModes: the directory and every directory above it up to ``/``
must be owned by root or by the effective user, and writable by nobody else (no group or
world write bit). Each directory is opened without following symlinks (``O_NOFOLLOW`` |
``O_DIRECTORY``, one ``openat`` per component) and the opened descriptor is ``fstat``-ed, so
what is checked is what is used. One exception, as in systemd's path chasing: an ancestor
owned by root with the sticky bit (``/tmp``) may be world-writable, because the sticky bit
stops others from renaming or removing what root made in it (and what others made there
fails the owner check). Symlinks: the state dir itself and its files must not be one; the
directories above it are resolved first (``/var/run`` -> ``/run``) and the real path is
checked and used.

Usage::

    real = trusted_dir("/run/kvmnet", create=True)     # Path, or raises UntrustedPath
    data = read_trusted(real / "x.pending.json")       # bytes (None: no such file)
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from ..errors import UntrustedPath

__all__ = ["read_trusted", "trusted_dir"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid())


def _refuse(path: str, why: str, fix: str) -> UntrustedPath:
    return UntrustedPath(
        f"{path} {why}: kvmnet runs the rollback steps it keeps there as root, so it trusts "
        f"only what root alone could have written. Fix: {fix}, or use another state dir "
        "(state_dir=, $KVMNET_STATE_DIR; default /run/kvmnet)",
        path=path,
    )


def _check_dir(st: os.stat_result, path: str, *, final: bool) -> None:
    if not _owner_ok(st):
        raise _refuse(path, f"is owned by uid {st.st_uid}", f"`chown root {path}`")
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    sticky_root = not final and st.st_uid == 0 and st.st_mode & stat.S_ISVTX
    if writable and not sticky_root:
        mode = f"{stat.S_IMODE(st.st_mode):04o}"
        raise _refuse(path, f"is writable by group or others (mode {mode})", f"`chmod go-w {path}`")


def _open_component(parent_fd: int, name: str, here: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(os.lstat(name, dir_fd=parent_fd).st_mode):
                    raise _refuse(
                        here, "is a symlink", f"give the real directory instead of {here}"
                    ) from exc
            raise _refuse(here, "is not a directory", f"remove {here}") from exc
        raise _refuse(here, f"cannot be opened ({exc.strerror})", f"check {here}") from exc


def _open_checked(real: str) -> int:
    """An fd of directory ``real`` (absolute, no symlinks) after checking it and every
    ancestor through the descriptors opened one component at a time."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        parts = [p for p in real.split("/") if p]
        _check_dir(os.fstat(fd), "/", final=not parts)
        here = ""
        for n, part in enumerate(parts):
            here += "/" + part
            child = _open_component(fd, part, here)
            os.close(fd)
            fd = child
            _check_dir(os.fstat(fd), here, final=n == len(parts) - 1)
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


def trusted_dir(path: str | os.PathLike[str], *, create: bool = False) -> Path:
    """The state dir ``path`` as a real path, after checking it as described above.

    Args:
        path: the directory.
        create: make it (mode 0700, parents as needed) when it does not exist.

    Returns:
        Its real path (ancestors' symlinks resolved), to use from now on.

    Raises:
        UntrustedPath: it, or a directory above it, could be written by another user, or it is
            a symlink; the message names the path and the fix.
    """
    real = _real(path)
    if create and not os.path.lexists(real):
        os.makedirs(os.path.dirname(real), mode=0o755, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(real, 0o700)
    os.close(_open_checked(real))
    return Path(real)


def read_trusted(path: str | os.PathLike[str]) -> bytes | None:
    """The bytes of a file in a trusted directory, read through a descriptor opened without
    following symlinks and checked with ``fstat`` (a regular file with one link, owned by
    root or the effective user, writable by nobody else).

    Args:
        path: the file.

    Returns:
        Its content, or None when it does not exist.

    Raises:
        UntrustedPath: the file or its directory fails the checks.
    """
    real = _real(path)
    dir_fd = _open_checked(os.path.dirname(real))
    try:
        try:
            fd = os.open(os.path.basename(real), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=dir_fd)  # fmt: skip
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refuse(real, "is a symlink", f"remove {real}") from exc
            raise
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise _refuse(real, "is not a plain file with one link", f"remove {real}")
        if not _owner_ok(st):
            raise _refuse(real, f"is owned by uid {st.st_uid}", f"remove {real}")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            mode = f"{stat.S_IMODE(st.st_mode):04o}"
            raise _refuse(real, f"is writable by group or others (mode {mode})", f"remove {real}")
        return handle.read()

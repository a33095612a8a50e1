"""How kvmnet writes a file on a machine, the same on this one and on one reached over SSH.

`atomic_write` changes the file a program on that machine would read:

- **Through symlinks.** ``/etc/netplan/01-netcfg.yaml -> /srv/net/01.yaml``: the link stays,
  its target gets the new bytes (`chase` follows the links as the kernel does, from ``/``).
- **Keeping what is not content.** The new file gets the old one's owner and group and its
  extended attributes (``security.*``: SELinux's label, without which NetworkManager or
  initscripts may not read the file under enforcing mode; ``user.*``, ``trusted.*``), and the
  caller's mode. An attribute that cannot be copied is logged, not fatal (a warning for
  ``security.selinux``: run ``restorecon`` on the file).
- **Atomically.** A temporary file in the target's folder, fsync, ``rename(2)``, fsync of the
  folder: a reader sees the old bytes or the new, never part of them.
- **Tidily.** A temporary file of kvmnet's own naming (``.kvmnet-XXXXXXXX.tmp``) older than
  `STALE_TEMP_AGE` in that folder is what a writer killed mid-write left behind: removed.

A directory (or a device, a FIFO) where a file is read or written is refused with
`UntrustedPath`, before anything changes.

Run as ``python3 -m kvmnet.hostnet.runners.files PATH MODE`` (content on stdin), it is the
SSH runner's write on the far side (from the zip of kvmnet's modules it ships there).
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import stat
import sys
import tempfile
import time

from ... import _log
from ...errors import UntrustedPath

__all__ = [
    "STALE_TEMP_AGE",
    "atomic_write",
    "chase",
    "check_regular",
    "remove_stale_temps",
    "write_target",
]

log = _log.get(__name__)

#: Seconds after which a temporary file of kvmnet's naming is taken as left behind.
STALE_TEMP_AGE = 600.0
# mkstemp's 8 characters; the 6 X's of mktemp(1) in older SSH runners' shell writes.
_TEMP = re.compile(r"\.kvmnet-[A-Za-z0-9_]{6,8}\.tmp\Z")
# Attribute namespaces copied to the new file (system.* holds ACLs, which chmod would fight).
_XATTRS = ("security.", "user.", "trusted.")
#: The SSH helper's exit status for a refused path (its message on stderr).
REFUSED = 45


def chase(root: str, path: str) -> str | None:
    """``path`` with every symlink on it followed as a program chrooted into ``root`` would
    follow it (systemd's ``chase()`` with a root): an absolute target starts again at the
    root, ``..`` stops there. The links are read on this machine's file system.

    Args:
        root: the root directory (``/``: this machine's own view).
        path: an absolute path as seen inside the root.

    Returns:
        The path it leads to, as seen inside the root; a missing part ends the chase there.
        None: more than 40 links (a loop), as the kernel gives up (ELOOP).
    """
    todo = [part for part in path.split("/") if part]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        try:
            target = os.readlink(posixpath.join(root, *done, part))
        except OSError:  # not a link, or missing: taken as it is
            done.append(part)
            continue
        links += 1
        if links > 40:
            return None
        if target.startswith("/"):
            done = []
        todo[:0] = [p for p in target.split("/") if p]
    return "/" + "/".join(done)


def write_target(path: str) -> str:
    """The file a write to ``path`` changes: ``path`` with its symlinks followed.

    Args:
        path: an absolute path.

    Returns:
        The path without symlinks (``path`` itself when there are none).

    Raises:
        UntrustedPath: the links loop.
    """
    target = chase("/", os.path.abspath(path))
    if target is None:
        raise UntrustedPath(
            f"{path} is a loop of symlinks: replace the link by the file it should be",
            path=path,
        )
    return target


def check_regular(path: str, st: os.stat_result, *, shown: str | None = None) -> None:
    """Refuse anything but a regular file where kvmnet reads or writes one.

    Args:
        path: the path as the caller named it.
        st: its `os.stat` (symlinks followed).
        shown: the file the links lead to, when it is another path.

    Raises:
        UntrustedPath: a directory, device, FIFO or socket.
    """
    if stat.S_ISREG(st.st_mode):
        return
    kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
    via = f" (a link to {shown})" if shown and shown != path else ""
    raise UntrustedPath(
        f"{path}{via} is {kind} where kvmnet reads and writes a configuration file: nothing "
        "was changed. Move it away (or make it the file it should be) and plan again",
        path=path,
    )


def remove_stale_temps(directory: str, *, now: float | None = None) -> list[str]:
    """Remove the temporary files of kvmnet's naming in ``directory`` older than
    `STALE_TEMP_AGE`: a writer killed between creating and renaming one left it.

    Only regular files named exactly as kvmnet names its temporaries are touched.

    Args:
        directory: the folder about to be written in.
        now: the current time (default: `time.time`).

    Returns:
        The paths removed.
    """
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    now = time.time() if now is None else now
    for name in names:
        if not _TEMP.match(name):
            continue
        full = posixpath.join(directory, name)
        try:
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > STALE_TEMP_AGE:
                os.unlink(full)
                removed.append(full)
                log.info("removed %s: a temporary file an interrupted write left behind", full)
        except OSError as exc:
            log.debug("leaving %s: %s", full, exc)
    return removed


def _keep_owner(fd: int, tmp: str, old: os.stat_result, target: str) -> None:
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) == (old.st_uid, old.st_gid):
        return
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except OSError as exc:
        log.warning(
            "%s: could not keep its owner %d:%d (%s); it is now %d:%d",
            target,
            old.st_uid,
            old.st_gid,
            exc.strerror,
            mine.st_uid,
            mine.st_gid,
        )


def _keep_xattrs(target: str, tmp: str) -> None:
    try:
        names = os.listxattr(target)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            log.info("%s: could not list its extended attributes: %s", target, exc.strerror)
        return
    for name in names:
        if not name.startswith(_XATTRS):
            continue
        try:
            os.setxattr(tmp, name, os.getxattr(target, name))
        except OSError as exc:
            if name == "security.selinux":
                # The new file keeps the folder's default label: a daemon confined to the
                # old label may no longer read its configuration.
                log.warning(
                    "%s: could not keep its SELinux label (%s); run `restorecon %s`",
                    target,
                    exc.strerror,
                    target,
                )
            else:
                log.info("%s: could not keep extended attribute %s: %s", target, name,
                         exc.strerror)  # fmt: skip


def atomic_write(path: str, data: bytes, mode: int) -> str:
    """Write ``data`` to the file ``path`` leads to (see the module docstring).

    Args:
        path: an absolute path (a symlink is written through).
        data: the new content.
        mode: the new file's permission bits.

    Returns:
        The file written (``path`` with its symlinks followed).

    Raises:
        UntrustedPath: ``path`` leads to a directory or another non-regular file, or the
            links loop; nothing was changed.
        OSError: the write itself failed (the temporary file is removed).
    """
    target = write_target(path)
    try:
        old: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        old = None
    if old is not None:
        check_regular(path, old, shown=target)
    directory = posixpath.dirname(target)
    os.makedirs(directory, exist_ok=True)
    remove_stale_temps(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".kvmnet-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            if old is not None:
                # Owner before mode: chown clears the set-id bits.
                _keep_owner(handle.fileno(), tmp, old, target)
        # chmod before the rename: the file never exists under its name with a wrong mode.
        os.chmod(tmp, mode)
        if old is not None:
            _keep_xattrs(target, tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def main(argv: list[str]) -> int:
    """``PATH MODE`` (octal), content on stdin: `atomic_write` on the machine it runs on.

    Returns:
        0; `REFUSED` with the reason on stderr for a refused path; 2 for bad arguments.
    """
    if len(argv) != 2:
        sys.stderr.write("usage: python3 -m kvmnet.hostnet.runners.files PATH MODE\n")
        return 2
    try:
        atomic_write(argv[0], sys.stdin.buffer.read(), int(argv[1], 8))
    except UntrustedPath as exc:
        sys.stderr.write(f"{exc}\n")
        return REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""MacLedger: short-lived claims on MACs, shared by every kvmnet process on one machine.

Between the moment an allocator picks a MAC and the moment libvirt holds it in a domain
definition, no inventory can see it. The ledger closes that window for processes on the
same machine: a claim is a row in one SQLite database (WAL, ``BEGIN IMMEDIATE``), so a claim
costs the same whatever the ledger's size, and a batch of claims is one transaction; each
claim expires after ``ttl`` seconds, by which time the MAC is in libvirt's XML.

The ledger is trusted the way OpenSSH's ``StrictModes`` trusts ``~/.ssh``: its directory and
every file in it must be owned by the current user, writable by nobody else and not symbolic
links, and the directory's ancestors must be owned by root or the current user and not
writable by others (unless sticky, like ``/tmp``). Anything else raises
`UntrustedPath` naming the path and the fix, before anything is written.

Usage::

    ledger = MacLedger.default()   # see default_state_dir()
    alloc = kvmnet.MacAllocator([host], ledger=ledger)
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _log
from ..errors import UntrustedPath
from ..hostnet.trust import Trust, check_file, trusted_dir

if TYPE_CHECKING:
    import sqlite3

__all__ = ["DEFAULT_TTL", "LEDGER_TRUST", "MacLedger", "check_private_dir", "default_state_dir"]

log = _log.get(__name__)

DEFAULT_TTL = 600.0
_DB = "mac-claims.sqlite"
# Seconds a claim waits for another process's transaction (they last microseconds each).
_BUSY_TIMEOUT = 30.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS claims ("
    " mac TEXT PRIMARY KEY, owner TEXT NOT NULL, expiry REAL NOT NULL, key TEXT"
    ") WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS claims_expiry ON claims (expiry)",
)


def default_state_dir() -> Path:
    """Where kvmnet keeps per-machine state such as MAC claims.

    ``$KVMNET_STATE_DIR``, else ``$XDG_RUNTIME_DIR/kvmnet``, else ``/run/kvmnet`` for root,
    else ``$XDG_STATE_HOME/kvmnet`` (``~/.local/state/kvmnet``): never a predictable name in
    a shared temporary folder, which another local user could create first.

    Returns:
        The directory (it may not exist yet).
    """
    explicit = os.environ.get("KVMNET_STATE_DIR")
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "kvmnet"
    if os.geteuid() == 0:
        return Path("/run/kvmnet")
    state_home = os.environ.get("XDG_STATE_HOME")
    return Path(state_home or Path.home() / ".local" / "state") / "kvmnet"


#: How the ledger's directory and files are trusted (the rule: :mod:`kvmnet.hostnet.trust`).
LEDGER_TRUST = Trust(
    stake="another user could change kvmnet's state there",
    elsewhere="set KVMNET_STATE_DIR to a directory only you can write",
    private=True,
)


def check_private_dir(directory: Path, *, create: bool = True) -> None:
    """Make sure ``directory`` can hold state only its owner could have written.

    Creates missing components with mode 0700 when ``create``. The checks are
    :func:`kvmnet.hostnet.trust.trusted_dir`'s with :data:`LEDGER_TRUST` (the directory the
    user's own).

    Args:
        directory: The state directory.
        create: Create it (and missing parents, mode 0700) if it does not exist.

    Raises:
        UntrustedPath: A symbolic link, not a directory, owned by another user, writable by
            group or others, or under an ancestor another user could rename it in.
        OSError: It cannot be created or read (e.g. a read-only file system); FileNotFoundError
            when it is missing and ``create`` is False.
    """
    trusted_dir(directory, create=create, trust=LEDGER_TRUST)



def _open_db(path: Path) -> sqlite3.Connection:
    """Open the database and set it up (WAL, schema), waiting out other processes doing it.

    Two processes opening a new ledger at the same moment both switch it to WAL and create
    the table; SQLite answers one of them "database is locked" at once, without waiting for
    the busy timeout. Taken for an unusable ledger, that let both processes claim the same
    MAC (the race test caught it in CI); it is retried until ``_BUSY_TIMEOUT`` instead.
    """
    import sqlite3  # imported on use: `kvmnet --help` must not pay for it

    deadline = time.monotonic() + _BUSY_TIMEOUT
    delay = 0.005
    while True:
        db = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            # WAL: readers never wait for a writer; NORMAL: no fsync per claim (claims are
            # short-lived and a lost one after a power cut is a non-event).
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                db.execute(statement)
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            busy = getattr(exc, "sqlite_errorcode", None) in (5, 6) or "locked" in str(exc)
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

def _check_db_files(path: Path) -> None:
    """Create the database 0600 if missing; check it and SQLite's side files.

    An existing database is checked with ``lstat`` and never opened here: closing any
    descriptor of a file drops every POSIX lock this process holds on it, including those of
    a SQLite connection still open on it, and another process could then checkpoint and
    delete the WAL under that connection (sqlite.org/howtocorrupt.html, 2.2). The check is
    sound without opening because the directory was verified first: nobody else can swap a
    file in it. Only a file that does not exist yet (a new inode nobody holds locks on) is
    created and checked through its descriptor.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        check_file(path, os.lstat(path), trust=LEDGER_TRUST)
    else:
        try:
            check_file(path, os.fstat(fd), trust=LEDGER_TRUST)
        finally:
            os.close(fd)
    for extra in ("-wal", "-shm"):
        side = Path(f"{path}{extra}")
        if os.path.lexists(side):
            check_file(side, os.lstat(side), trust=LEDGER_TRUST)


class MacLedger:
    """Claims ``{mac: (owner, expiry, key)}`` in ``directory``; claims are atomic across processes.

    Args:
        directory: The ledger's directory (checked as `check_private_dir` says).
        ttl: Seconds a claim lasts.
        clock: The time source (tests pass a fake one).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.ttl = ttl
        self._clock = clock
        # Who claims: this process and this ledger object, so a second ledger in the same
        # process is another claimant too.
        self.owner = f"pid {os.getpid()}/{secrets.token_hex(4)}"
        #: Why the ledger could not be used (then it claims nothing), or None.
        self.broken: str | None = None
        self._db: sqlite3.Connection | None = None
        self._db_pid = 0

    @classmethod
    def default(cls, *, ttl: float = DEFAULT_TTL) -> MacLedger:
        """The ledger in `default_state_dir`.

        Args:
            ttl: Seconds a claim lasts.

        Returns:
            A ledger (nothing is opened until its first use).
        """
        return cls(default_state_dir(), ttl=ttl)

    def __repr__(self) -> str:
        return f"<MacLedger {str(self.directory)!r} ttl={self.ttl:g}s>"

    @property
    def path(self) -> Path:
        """The database file."""
        return self.directory / _DB

    def open(self) -> bool:
        """Check the ledger's directory and file, then open it (done by every claim anyway).

        Returns:
            True if usable; False if it could not be opened (a warning says why; allocation
            then relies on the inventory alone).

        Raises:
            UntrustedPath: The directory or a file in it could have been written by another
                user (see the module docstring); nothing was written.
        """
        return self._connection() is not None

    def close(self) -> None:
        """Close the database connection (a later claim opens it again)."""
        if self._db is not None and self._db_pid == os.getpid():
            self._db.close()
        self._db = None

    def _connection(self) -> sqlite3.Connection | None:
        import sqlite3  # imported on use: `kvmnet --help` must not pay for it

        # An unusable ledger (read-only /run, a full disk) must not stop allocation: the
        # inventory check still holds; the ledger only narrows a race. Warn once. An
        # *untrusted* ledger is different: it raises, as someone may be playing tricks.
        if self.broken is not None:
            return None
        if self._db is not None and self._db_pid == os.getpid():
            return self._db
        try:
            check_private_dir(self.directory)
            _check_db_files(self.path)
            db = _open_db(self.path)
        except UntrustedPath:
            raise
        except (OSError, sqlite3.Error) as exc:
            self._give_up(exc)
            return None
        self._db, self._db_pid = db, os.getpid()
        return db

    def _give_up(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.broken = f"{exc.strerror or exc} ({exc.filename or self.directory})"
        else:
            self.broken = f"{exc} ({self.path}; removing that file starts the ledger afresh)"
        log.warning(
            "MAC ledger in %s is unusable: %s; MACs are checked against the inventory only, "
            "so two kvmnet processes allocating at this very moment could pick the same one",
            self.directory,
            self.broken,
        )

    def claim(self, mac: str, *, key: str | None = None) -> bool:
        """Claim ``mac`` (canonical form) for ``ttl`` seconds.

        A claim made for a deterministic ``key`` does not block a later claim for the same
        key: asking twice for ``web1/nic0`` must give the same MAC, not the next one.

        Args:
            mac: The MAC, lower case, colon separated.
            key: The deterministic key it was drawn for, if any.

        Returns:
            False if another live claim holds it; True otherwise (also when the ledger is
            unusable and claims nothing).

        Raises:
            UntrustedPath: As for `open`.
        """
        return not self.claim_many([(mac, key)])

    def claim_many(self, wanted: Sequence[tuple[str, str | None]]) -> list[str]:
        """Claim every ``(mac, key)`` that no other live claim holds, in one transaction.

        Args:
            wanted: MACs (canonical form) and the deterministic key each was drawn for.

        Returns:
            The MACs refused because another claim holds them (the rest are claimed).

        Raises:
            UntrustedPath: As for `open`.
        """
        import sqlite3

        db = self._connection()
        if db is None or not wanted:
            return []
        now = self._clock()
        expiry = now + self.ttl
        refused: list[str] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM claims WHERE expiry <= ?", (now,))
                # Two statements for the whole batch, each looping in C: who else holds any
                # of these MACs (one indexed lookup each), then every row this ledger may take.
                if len(wanted) == 1:  # a single claim: skip the JSON round trip
                    found = db.execute(
                        "SELECT mac, owner, key FROM claims WHERE mac = ?", (wanted[0][0],)
                    )
                else:
                    found = db.execute(
                        "SELECT mac, owner, key FROM claims"
                        " WHERE mac IN (SELECT value FROM json_each(?))",
                        (json.dumps([mac for mac, _ in wanted]),),
                    )
                held = {mac: key for mac, owner, key in found if owner != self.owner}
                rows = []
                for mac, key in wanted:
                    if mac in held and (key is None or held[mac] != key):
                        refused.append(mac)
                    else:
                        rows.append((mac, self.owner, expiry, key))
                db.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)", rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._give_up(exc)
            return []
        return refused

    def release(self, mac: str) -> None:
        """Drop this ledger's claim on ``mac`` (e.g. the define failed).

        Args:
            mac: The MAC, canonical form.
        """
        self.release_many([mac])

    def release_many(self, macs: Iterable[str]) -> None:
        """Drop this ledger's claims on ``macs``, in one transaction.

        Args:
            macs: MACs in canonical form; those this ledger does not hold are ignored.
        """
        import sqlite3

        db = self._connection()
        if db is None:
            return
        rows = [(mac, self.owner) for mac in macs]
        if not rows:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM claims WHERE mac = ? AND owner = ?", rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._give_up(exc)

    def holder(self, mac: str, *, key: str | None = None) -> str | None:
        """Who else holds a live claim on ``mac``.

        Args:
            mac: The MAC, canonical form.
            key: A deterministic key: a claim for the same key does not count.

        Returns:
            "kvmnet pid 123/ab12cd34 on this machine (...)"; None if nobody, this ledger, or
            a claim for the same ``key`` holds it.
        """
        import sqlite3

        db = self._connection()
        if db is None:
            return None
        try:
            row = db.execute(
                "SELECT owner, key FROM claims WHERE mac = ? AND expiry > ?", (mac, self._clock())
            ).fetchone()
        except sqlite3.Error as exc:
            self._give_up(exc)
            return None
        if row is None or row[0] == self.owner:
            return None
        if key is not None and row[1] == key:
            return None
        return f"kvmnet {row[0]} on this machine (a claim in {self.directory})"

    def claims(self) -> dict[str, str]:
        """Every live claim.

        Returns:
            MAC -> owner.
        """
        import sqlite3

        db = self._connection()
        if db is None:
            return {}
        try:
            rows = db.execute(
                "SELECT mac, owner FROM claims WHERE expiry > ?", (self._clock(),)
            ).fetchall()
        except sqlite3.Error as exc:
            self._give_up(exc)
            return {}
        return {str(mac): str(owner) for mac, owner in rows}

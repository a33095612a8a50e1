"""MacLedger: short-lived claims on MACs, shared by every kvmnet process on one machine.

Between the moment an allocator picks a MAC and the moment libvirt holds it in a domain
definition, no inventory can see it. The ledger closes that window for processes on the
same machine: a claim is a line in one JSON file, read and rewritten under an ``flock``;
each claim expires after ``ttl`` seconds, by which time the MAC is in libvirt's XML.

Usage::

    ledger = MacLedger.default()          # $KVMNET_STATE_DIR, $XDG_RUNTIME_DIR/kvmnet, /run/kvmnet
    alloc = kvmnet.MacAllocator([host], ledger=ledger)
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DEFAULT_TTL", "MacLedger", "default_state_dir"]

log = logging.getLogger(__name__)

DEFAULT_TTL = 600.0
_FILE = "mac-claims.json"
_LOCK = "mac-claims.lock"


def default_state_dir() -> Path:
    """$KVMNET_STATE_DIR, else $XDG_RUNTIME_DIR/kvmnet, else /run/kvmnet for root, else a
    per-user temp folder (the same order as kvmnet's other state)."""
    explicit = os.environ.get("KVMNET_STATE_DIR")
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "kvmnet"
    if os.geteuid() == 0:
        return Path("/run/kvmnet")
    return Path(tempfile.gettempdir()) / f"kvmnet-{os.geteuid()}"


class MacLedger:
    """Claims ``{mac: (owner, expiry)}`` in ``directory``; ``claim`` is atomic across processes."""

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

    @classmethod
    def default(cls, *, ttl: float = DEFAULT_TTL) -> MacLedger:
        return cls(default_state_dir(), ttl=ttl)

    def __repr__(self) -> str:
        return f"<MacLedger {str(self.directory)!r} ttl={self.ttl:g}s>"

    @contextmanager
    def _locked(self) -> Iterator[dict[str, list[object]]]:
        # An unusable ledger (read-only /run, no XDG_RUNTIME_DIR) must not stop allocation:
        # the inventory check still holds; the ledger only narrows a race. Warn once.
        if self.broken is not None:
            yield {}
            return
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            self._give_up(exc)
            yield {}
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            claims = self._read()
            before = dict(claims)
            yield claims
            if claims != before:
                try:
                    self._write(claims)
                except OSError as exc:
                    self._give_up(exc)
        finally:
            os.close(fd)  # closing releases the flock

    def _give_up(self, exc: OSError) -> None:
        self.broken = f"{exc.strerror or exc} ({exc.filename or self.directory})"
        log.warning(
            "MAC ledger in %s is unusable: %s; MACs are checked against the inventory only, "
            "so two kvmnet processes allocating at this very moment could pick the same one",
            self.directory,
            self.broken,
        )

    def _read(self) -> dict[str, list[object]]:
        try:
            raw = json.loads((self.directory / _FILE).read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("MAC ledger %s is not JSON; starting it afresh", self.directory / _FILE)
            return {}
        now = self._clock()
        claims: dict[str, list[object]] = {}
        if isinstance(raw, dict):
            for mac, entry in raw.items():
                if (
                    isinstance(entry, list)
                    and len(entry) in (2, 3)
                    and isinstance(entry[1], (int, float))
                    and entry[1] > now
                ):
                    claims[mac] = entry
        return claims

    def _write(self, claims: dict[str, list[object]]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".mac-claims-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(claims, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.directory / _FILE)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def claim(self, mac: str, *, key: str | None = None) -> bool:
        """Claim ``mac`` (canonical form) for ``ttl`` seconds; False if another claim holds it.

        A claim made for a deterministic ``key`` does not block a later claim for the same
        key: asking twice for ``web1/nic0`` must give the same MAC, not the next one.
        """
        with self._locked() as claims:
            entry = claims.get(mac)
            if entry is not None and entry[0] != self.owner:
                same_key = key is not None and len(entry) == 3 and entry[2] == key
                if not same_key:
                    return False
            claims[mac] = [self.owner, self._clock() + self.ttl, key]
            return True

    def release(self, mac: str) -> None:
        """Drop this ledger's claim on ``mac`` (e.g. the define failed)."""
        with self._locked() as claims:
            entry = claims.get(mac)
            if entry is not None and entry[0] == self.owner:
                del claims[mac]

    def holder(self, mac: str, *, key: str | None = None) -> str | None:
        """Who else holds a live claim on ``mac`` ("kvmnet pid 123/ab12cd34 on this machine...").

        None if nobody, this ledger, or a claim for the same deterministic ``key`` holds it.
        """
        with self._locked() as claims:
            entry = claims.get(mac)
        if entry is None or entry[0] == self.owner:
            return None
        if key is not None and len(entry) == 3 and entry[2] == key:
            return None
        return f"kvmnet {entry[0]} on this machine (a claim in {self.directory})"

    def claims(self) -> dict[str, str]:
        """Every live claim: MAC -> owner."""
        with self._locked() as claims:
            return {mac: str(entry[0]) for mac, entry in claims.items()}

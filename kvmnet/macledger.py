"""MacLedger: short-lived claims on MACs, shared by every kvmnet process on one machine.

Between the moment an allocator picks a MAC and the moment libvirt holds it in a domain
definition, no inventory can see it. The ledger closes that window for processes on the
same machine: a claim is a line in one JSON file, read and rewritten under an ``flock``;
each claim expires after ``ttl`` seconds, by which time the MAC is in libvirt's XML.

Usage::

    ledger = MacLedger.default()          # $XDG_RUNTIME_DIR/kvmnet, else /run/kvmnet (root)
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
    """$XDG_RUNTIME_DIR/kvmnet, else /run/kvmnet for root, else a per-user temp folder."""
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

    @classmethod
    def default(cls, *, ttl: float = DEFAULT_TTL) -> MacLedger:
        return cls(default_state_dir(), ttl=ttl)

    def __repr__(self) -> str:
        return f"<MacLedger {str(self.directory)!r} ttl={self.ttl:g}s>"

    @contextmanager
    def _locked(self) -> Iterator[dict[str, list[object]]]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            claims = self._read()
            before = dict(claims)
            yield claims
            if claims != before:
                self._write(claims)
        finally:
            os.close(fd)  # closing releases the flock

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
                    and len(entry) == 2
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

    def claim(self, mac: str) -> bool:
        """Claim ``mac`` (canonical form) for ``ttl`` seconds; False if another claim holds it."""
        with self._locked() as claims:
            entry = claims.get(mac)
            if entry is not None and entry[0] != self.owner:
                return False
            claims[mac] = [self.owner, self._clock() + self.ttl]
            return True

    def release(self, mac: str) -> None:
        """Drop this ledger's claim on ``mac`` (e.g. the define failed)."""
        with self._locked() as claims:
            entry = claims.get(mac)
            if entry is not None and entry[0] == self.owner:
                del claims[mac]

    def holder(self, mac: str) -> str | None:
        """Who else holds a live claim on ``mac`` ("kvmnet pid 123/ab12cd34 on this machine...")."""
        with self._locked() as claims:
            entry = claims.get(mac)
        if entry is None or entry[0] == self.owner:
            return None
        return f"kvmnet {entry[0]} on this machine (a claim in {self.directory})"

    def claims(self) -> dict[str, str]:
        """Every live claim: MAC -> owner."""
        with self._locked() as claims:
            return {mac: str(entry[0]) for mac, entry in claims.items()}

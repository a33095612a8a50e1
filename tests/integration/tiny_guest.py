"""The tiny real guest (Debian kernel + busybox initramfs), built on first use and cached.

``scripts/build-tiny-guest.py`` does the work; this module runs it once per session so that a
fresh CI machine builds the guest itself, and parses what the guest prints on its serial console.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BUILDER = Path(__file__).resolve().parents[2] / "scripts" / "build-tiny-guest.py"
LEASE = re.compile(r"^LEASE (\S+) (\S*)", re.MULTILINE)


@dataclass(frozen=True)
class TinyGuest:
    kernel: Path
    initrd: Path
    version: str


@functools.cache
def ensure_tiny_guest() -> TinyGuest:
    """Build (or find in the cache) the tiny guest; the first build downloads about 72 MB."""
    proc = subprocess.run(
        [sys.executable, str(BUILDER)], capture_output=True, text=True, timeout=900, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{BUILDER} failed ({proc.returncode}): {proc.stderr.strip()}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return TinyGuest(Path(info["kernel"]), Path(info["initrd"]), str(info["version"]))


def leases(serial: str) -> list[tuple[str, str]]:
    """Every ``(address, router)`` the guest reported on its console, oldest first."""
    return [(m.group(1), m.group(2)) for m in LEASE.finditer(serial.replace("\r", ""))]

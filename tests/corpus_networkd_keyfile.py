"""The networkd and keyfile corpora (real files from systemd's and NetworkManager's own test
suites), fetched by scripts/corpora/networkd_keyfile.py into a cache on first use.

::

    conf = corpus("networkd") / "test/test-network/conf"

Without the corpus (no network, no apt) a test skips with the reason; under CI=true it
fails instead: CI must run the corpora. Sources: tests/data/corpora/*/SOURCES.md.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import in_ci

__all__ = ["corpus"]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "corpora" / "networkd_keyfile.py"


@functools.cache
def _fetch() -> tuple[Path | None, str]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False, timeout=900
    )
    if proc.returncode != 0:
        return None, (proc.stderr or proc.stdout).strip()[-2000:]
    return Path(proc.stdout.strip().splitlines()[-1]), ""


def corpus(name: str) -> Path:
    """The cached corpus ``name`` ("networkd" or "keyfile"), fetched once per session.

    Args:
        name: The corpus.

    Returns:
        Its folder (the upstream tree's paths below it).
    """
    cache, why = _fetch()
    if cache is None or not (cache / name / ".done").exists():
        message = f"corpus {name!r} could not be fetched by {SCRIPT.name}: {why}"
        if in_ci():
            pytest.fail(f"{message} (CI=true: the corpora must run)")
        pytest.skip(message)
    return cache / name

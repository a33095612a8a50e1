"""Golden files and required tools for the backends' unit tests (no root).

::

    def golden(name: str, text: str) -> None:
        path = DATA / name
        assert text == golden_text(path, text), f"differs from golden file {path}"

The assertion stays in the test module, where pytest shows the diff.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

__all__ = ["golden_text", "require_tool"]


def golden_text(path: Path, text: str) -> str:
    """What the golden file ``path`` holds; with ``KVMNET_REGEN_GOLDEN`` set, ``text`` is
    written there first (review the diff before committing it)."""
    if os.environ.get("KVMNET_REGEN_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path.read_text()


def require_tool(tool: str) -> str:
    """The path of ``tool``; the test is skipped without it, and fails under CI=true, where
    scripts/install-system-deps.sh installs it."""
    found = shutil.which(tool)
    if found is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{tool} missing (CI=true): scripts/install-system-deps.sh installs it")
        pytest.skip(f"{tool} not installed")
    return found

"""Suite-wide policy: tests that need root skip outside CI and fail inside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real-world domain XMLs, copied from shared/examples/domains (sources in SOURCES.tsv).
EXAMPLES = Path(__file__).resolve().parent / "data" / "domains"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_root(reason: str) -> None:
    """Skip (or, under CI=true, fail) unless running as root."""
    if os.geteuid() == 0:
        return
    message = f"needs root: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a root test may not skip)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _root_marker(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("root")
    if marker is not None:
        require_root(str(marker.args[0]) if marker.args else "network namespaces")

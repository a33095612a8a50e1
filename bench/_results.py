"""A machine-readable record beside each benchmark's text: bench/results/<name>.json.

``record(name, figures)`` prints how the figures compare with the previous run's file (if
there is one), then writes the new one, so `make bench` shows the change between two commits.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _commit() -> str:
    try:
        out = subprocess.run(  # noqa: S603 (a fixed argument list)
            ["git", "-C", str(RESULTS.parent), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        )  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def record(name: str, figures: dict[str, float]) -> None:
    """Compare ``figures`` with bench/results/``name``.json, then replace that file."""
    path = RESULTS / f"{name}.json"
    if path.exists():
        previous = json.loads(path.read_text())
        old = previous.get("figures", {})
        print(f"  compared with the previous run ({previous.get('commit', '?')}):")
        for key, value in figures.items():
            if old.get(key):
                print(f"    {key:<40} {old[key]:10.3f} -> {value:10.3f} ({value / old[key]:.2f}x)")
    RESULTS.mkdir(exist_ok=True)
    data = {"benchmark": name, "commit": _commit(), "time": time.time(), "figures": figures}
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=f".{name}.")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")
    os.replace(tmp, path)
    print(f"  figures written to {path.relative_to(RESULTS.parent.parent)}")

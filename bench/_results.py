"""A machine-readable record beside each benchmark's text: bench/results/<name>.json.

``record(name, figures)`` prints, figure by figure, how this run compares with the record
already there (the committed one on a fresh checkout, else this machine's previous run), then
replaces it. The records are committed: ``git diff bench/results`` after ``make bench`` shows
what moved, and a commit that changes speed carries its figures. To compare the records of
two commits without running anything::

    python bench/_results.py OLD_COMMIT [NEW_COMMIT]     # NEW: the working tree

Figures are flat ``{"label": number}``; ``detail`` keeps anything richer (rows, settings).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent


def _commit() -> str:
    try:
        out = subprocess.run(  # noqa: S603 (a fixed argument list)
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        )  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def compare(old: dict[str, float], new: dict[str, float], *, indent: str = "    ") -> list[str]:
    """One line per figure: previous -> now (ratio); figures only one side has say so."""
    lines = []
    width = max((len(k) for k in (*old, *new)), default=0)
    for key in sorted(new.keys() | old.keys()):
        before, now = old.get(key), new.get(key)
        if before is None:
            lines.append(f"{indent}{key:<{width}} {'(new)':>12} -> {now:12.4g}")
        elif now is None:
            lines.append(f"{indent}{key:<{width}} {before:12.4g} -> {'(gone)':>12}")
        else:
            ratio = f"({now / before:.2f}x)" if before and math.isfinite(now / before) else ""
            lines.append(f"{indent}{key:<{width}} {before:12.4g} -> {now:12.4g} {ratio}")
    return lines


def record(name: str, figures: dict[str, float], detail: object = None) -> None:
    """Print how ``figures`` compare with bench/results/``name``.json, then replace that file.

    Args:
        name: the benchmark's name (the file's stem).
        figures: flat label -> number; what is compared between runs.
        detail: anything JSON can hold, kept beside the figures and not compared.
    """
    path = RESULTS / f"{name}.json"
    if path.exists():
        previous = json.loads(path.read_text())
        old = previous.get("figures", {})
        if isinstance(old, dict) and old:
            print(f"  compared with the previous run ({previous.get('commit', '?')}, "
                  f"{_when(previous.get('time'))}):")  # fmt: skip
            print("\n".join(compare(old, figures)))
    RESULTS.mkdir(exist_ok=True)
    data: dict[str, object] = {
        "benchmark": name,
        "commit": _commit(),
        "time": time.time(),
        "figures": figures,
    }
    if detail is not None:
        data["detail"] = detail
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=f".{name}.")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")
    os.replace(tmp, path)
    print(f"  figures written to {path.relative_to(REPO)}")


def _when(stamp: object) -> str:
    if isinstance(stamp, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))
    return str(stamp or "?")


def _records_at(commit: str | None) -> dict[str, dict[str, float]]:
    """Each benchmark's figures as committed at ``commit`` (None: the working tree)."""
    found: dict[str, dict[str, float]] = {}
    if commit is None:
        texts = {p.stem: p.read_text() for p in RESULTS.glob("*.json")}
    else:
        listing = subprocess.run(  # noqa: S603 (a fixed argument list)
            ["git", "-C", str(REPO), "ls-tree", "--name-only", commit, "bench/results/"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.split()  # fmt: skip
        texts = {}
        for path in listing:
            if path.endswith(".json"):
                texts[Path(path).stem] = subprocess.run(  # noqa: S603 (fixed argument list)
                    ["git", "-C", str(REPO), "show", f"{commit}:{path}"],
                    capture_output=True, text=True, check=True, timeout=30,
                ).stdout  # fmt: skip
    for stem, text in texts.items():
        figures = json.loads(text).get("figures")
        found[stem] = figures if isinstance(figures, dict) else {}
    return found


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python bench/_results.py OLD_COMMIT [NEW_COMMIT]", file=sys.stderr)
        return 2
    old = _records_at(argv[0])
    new = _records_at(argv[1] if len(argv) == 2 else None)
    for name in sorted(old.keys() | new.keys()):
        print(f"{name}:")
        print("\n".join(compare(old.get(name, {}), new.get(name, {}))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

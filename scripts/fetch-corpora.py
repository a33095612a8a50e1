#!/usr/bin/env python3
"""Fetch the test corpora (other projects' real configuration files) into the cache.

    scripts/fetch-corpora.py            # every corpus (each module in scripts/corpora/)
    scripts/fetch-corpora.py ifcfg      # just one
    scripts/fetch-corpora.py --refresh  # fetch again even when cached

Each module in scripts/corpora/ (except cache.py) provides ``fetch(cache, refresh=) -> Path``.
The cache is ``$KVMNET_CORPORA`` or ``~/.cache/kvmnet-corpora``; prints each corpus folder.
Exit status 1 (with the reason on stderr) when a fetch fails.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpora.cache import CorpusError, cache_root

HERE = Path(__file__).resolve().parent / "corpora"
NAMES = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in {"__init__", "cache"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[[], *NAMES], metavar="NAME")
    parser.add_argument("--refresh", action="store_true")
    args = parser.parse_args(argv)
    for name in args.names or NAMES:
        module = importlib.import_module(f"corpora.{name}")
        try:
            folder = module.fetch(cache_root(), refresh=args.refresh)
        except (CorpusError, OSError) as exc:
            print(f"fetch-corpora: {name}: {exc}", file=sys.stderr)
            return 1
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fetch the networkd and NetworkManager-keyfile test corpora into a local cache.

The files come from Debian's source packages (``systemd``: test/test-network/conf/*.network,
*.netdev and their drop-in folders; ``network-manager``: the keyfile plugin's and libnm's test
keyfiles; ``netplan.io``: its generator tests, whose expected NetworkManager keyfiles are
read out of the Python sources by the tests). Their licences differ from kvmnet's, so they
are fetched, never committed.

``apt-get source`` needs deb-src entries: :func:`corpora.cache.private_apt` derives them from
the machine's own apt sources (only Debian archives) into a private sources list, with private
apt lists and cache, through ``-o`` options. The machine's apt configuration is not touched.

Usage: scripts/corpora/networkd_keyfile.py [CACHE_DIR]
(default: $KVMNET_CORPORA, else ~/.cache/kvmnet-corpora, shared with
scripts/fetch-corpora.py). Prints the cache directory.
Exit status 0 when both corpora are in the cache (already, or fetched now).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# Run as a script (tests/corpus_networkd_keyfile.py) or imported as corpora.networkd_keyfile.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from corpora.cache import DEBIAN_HOSTS, CorpusError, cache_root, private_apt

#: package -> (corpus name, path patterns inside the upstream tree to extract)
PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "systemd": ("networkd", (r"test/test-network/conf/",)),
    "network-manager": (
        "keyfile",
        (
            r"src/core/settings/plugins/keyfile/tests/keyfiles/",
            r"src/libnm-core-impl/tests/",
        ),
    ),
    # netplan's NetworkManager renderer tests: the keyfiles it expects to write, which
    # NetworkManager reads (taken out of the Python test modules by the tests).
    "netplan.io": ("netplan-keyfile", (r"tests/generator/",)),
}


def extract(tarball: Path, patterns: tuple[str, ...], target: Path) -> int:
    """Copy the members under ``patterns`` (path after the top folder) into ``target``."""
    count = 0
    with tarfile.open(tarball) as tar:
        for member in tar:
            if not member.isfile():
                continue
            inner = member.name.split("/", 1)[1] if "/" in member.name else member.name
            if not any(inner.startswith(p) for p in patterns):
                continue
            out = target / inner
            out.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is not None:
                out.write_bytes(source.read())
                count += 1
    return count


def fetch(cache: Path, refresh: bool = False) -> Path:
    """Fetch what is missing from ``cache`` (everything with ``refresh``); returns ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [
        p for p, (name, _) in PACKAGES.items() if refresh or not (cache / name / ".done").exists()
    ]
    if not missing:
        return cache
    opts = private_apt(cache / ".apt", uri_ok=DEBIAN_HOSTS.search)
    subprocess.run(["apt-get", *opts, "-qq", "update"], check=True)  # noqa: S603 - argv list
    for package in missing:
        name, patterns = PACKAGES[package]
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            subprocess.run(  # noqa: S603 - argv list, never a shell
                ["apt-get", *opts, "-qq", "source", "--download-only", package],
                check=True,
                cwd=tmp,
            )
            dscs = sorted(Path(tmp).glob("*.dsc"))
            origs = sorted(Path(tmp).glob("*.orig.tar.*"))
            origs = [p for p in origs if not p.name.endswith(".asc")]
            if not origs:
                raise SystemExit(f"{package}: no upstream tarball in {sorted(os.listdir(tmp))}")
            target = cache / name
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            count = sum(extract(orig, patterns, target) for orig in origs)
            if count == 0:
                raise SystemExit(f"{package}: nothing under {patterns} in {origs}")
            version = dscs[0].name if dscs else origs[0].name
            (target / ".done").write_text(f"{version}\n{count} files\n")
    return cache


def main(argv: list[str]) -> int:
    cache = Path(argv[1]) if len(argv) > 1 else cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    try:
        fetch(cache)
    except CorpusError as exc:
        print(f"networkd_keyfile: {exc}", file=sys.stderr)
        return 1
    print(cache)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

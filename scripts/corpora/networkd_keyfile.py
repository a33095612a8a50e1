#!/usr/bin/env python3
"""Fetch the networkd and NetworkManager-keyfile test corpora into a local cache.

The files come from Debian's source packages (``systemd``: test/test-network/conf/*.network,
*.netdev and their drop-in folders; ``network-manager``: the keyfile plugin's and libnm's test
keyfiles; ``netplan.io``: its generator tests, whose expected NetworkManager keyfiles are
read out of the Python sources by the tests). Their licences differ from kvmnet's, so they
are fetched, never committed.

``apt-get source`` needs deb-src entries: they are derived from the machine's own apt sources
(only Debian archives) into a private sources list, with private apt lists and cache, through
``-o`` options. The machine's apt configuration is not touched.

Usage: scripts/corpora/networkd_keyfile.py [CACHE_DIR]
(default: $KVMNET_CORPORA, else ~/.cache/kvmnet-corpora, shared with
scripts/fetch-corpora.py). Prints the cache directory.
Exit status 0 when both corpora are in the cache (already, or fetched now).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

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
DEBIAN_HOSTS = re.compile(r"https?://[^/]*(debian\.org|debian\.net)/")


def default_cache() -> Path:
    """The corpora cache every fetcher shares (scripts/fetch-corpora.py): ``$KVMNET_CORPORA``,
    else ``~/.cache/kvmnet-corpora``."""
    env = os.environ.get("KVMNET_CORPORA")
    return Path(env) if env else Path.home() / ".cache" / "kvmnet-corpora"


def deb_src_lines(etc: Path = Path("/etc/apt")) -> list[str]:
    """One-line ``deb-src`` entries for every Debian ``deb`` entry of the machine's apt."""
    lines: list[str] = []
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in files:
        if not path.is_file():
            continue
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("deb ") and DEBIAN_HOSTS.search(line):
                lines.append("deb-src" + line[3:])
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for raw in stanza.splitlines():
                if raw.startswith("#") or ":" not in raw:
                    continue
                key, value = raw.split(":", 1)
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            options = f"[signed-by={fields['signed-by']}] " if "signed-by" in fields else ""
            for uri in fields.get("uris", "").split():
                if not DEBIAN_HOSTS.search(uri.rstrip("/") + "/"):
                    continue
                for suite in fields.get("suites", "").split():
                    lines.append(f"deb-src {options}{uri} {suite} {fields.get('components', '')}")
    return lines


def apt_options(state: Path) -> list[str]:
    sources = state / "sources.list"
    for sub in ("lists/partial", "archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    return [
        "-o", f"Dir::Etc::SourceList={sources}",
        "-o", "Dir::Etc::SourceParts=/nonexistent",
        "-o", f"Dir::State::Lists={state / 'lists'}",
        "-o", f"Dir::Cache={state}",
        "-o", f"Dir::Cache::Archives={state / 'archives'}",
        "-o", "APT::Sandbox::User=root",
        "-o", "Debug::NoLocking=1",
    ]  # fmt: skip


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
    missing = [p for p, (name, _) in PACKAGES.items()
               if refresh or not (cache / name / ".done").exists()]
    if not missing:
        return cache
    state = cache / ".apt"
    state.mkdir(parents=True, exist_ok=True)
    lines = deb_src_lines()
    if not lines:
        raise SystemExit("no Debian apt source on this machine to derive deb-src entries from")
    (state / "sources.list").write_text("\n".join(lines) + "\n")
    opts = apt_options(state)
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
    cache = Path(argv[1]) if len(argv) > 1 else default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    fetch(cache)
    print(cache)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

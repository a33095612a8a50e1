#!/usr/bin/env python3
"""Fetch netplan's own example and test-suite YAML into a local cache: the corpus that
tests/unit/test_netplan_corpus.py bridges and releases.

Usage: scripts/corpora/netplan.py [--cache DIR] [--quiet]

What it does (nothing committed):

1. Derives ``deb-src`` entries from this machine's own apt sources (``/etc/apt/sources.list``
   and ``sources.list.d/*.list|*.sources``) into a *private* list (the shared
   :func:`corpora.cache.private_apt`), and runs ``apt-get update`` and
   ``apt-get source --download-only netplan.io`` with a private state and cache dir
   (``-o Dir::Etc::SourceList=... -o Dir::State::Lists=...``): the machine's apt
   configuration is not changed.
2. Reads the upstream tarball (``netplan.io_*.orig.tar.*``) with :mod:`tarfile`: every
   ``examples/*.yaml`` and every YAML string embedded in ``tests/generator/*.py``.
3. Keeps each document that has ``network: ethernets:``, that the installed
   ``netplan generate`` accepts on its own; each of its ethernet definitions is one case.

Output under the cache (default ``$KVMNET_CORPORA`` or ``~/.cache/kvmnet-corpora``):
``netplan/cases/NNN.yaml`` (the document, byte for byte as upstream wrote it) and
``netplan/index.json`` (one entry per case: file, netplan ID, origin). Exits non-zero with a
message on stderr when it cannot fetch: the tests then fail under CI=true.

The files' licence (GPL-3) differs from kvmnet's: they are fetched, never committed; see
tests/data/corpora/netplan/SOURCES.md.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

# Run as a script, loaded from its path by the tests, or imported as corpora.netplan.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from corpora.cache import CorpusError, cache_root, private_apt

PACKAGE = "netplan.io"
SCHEMA = 3  # bump when the index's shape changes: an old cache is rebuilt


def default_cache() -> Path:
    """This corpus's folder in the shared cache (:func:`corpora.cache.cache_root`)."""
    return cache_root() / "netplan"


def download_source(cache: Path, log: list[str]) -> Path:
    """The upstream tarball of netplan.io, downloaded into ``cache/src`` once."""
    src = cache / "src"
    found = sorted(src.glob(f"{PACKAGE}_*.orig.tar.*"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise SystemExit("netplan corpus: apt-get is missing (a Debian machine is needed)")
    try:
        opts = private_apt(cache / "apt")
    except CorpusError as exc:
        raise SystemExit(f"netplan corpus: {exc}") from exc
    update = subprocess.run(  # noqa: S603 - argv list, never a shell
        ["apt-get", *opts, "update"], capture_output=True, text=True
    )
    log.append(update.stdout + update.stderr)
    src.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(  # noqa: S603 - argv list, never a shell
        ["apt-get", *opts, "source", "--download-only", PACKAGE],
        cwd=src,
        capture_output=True,
        text=True,
    )
    log.append(got.stdout + got.stderr)
    found = sorted(src.glob(f"{PACKAGE}_*.orig.tar.*"))
    if got.returncode != 0 or not found:
        raise SystemExit(
            "netplan corpus: `apt-get source --download-only netplan.io` failed "
            f"(exit {got.returncode}):\n" + "\n".join(log)[-3000:]
        )
    return found[-1]


# -- 2./3. documents and cases ----------------------------------------------------------------


def _yaml_strings(source: str) -> list[str]:
    """String constants of a Python test file that look like a netplan document."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if "network:" in text and "ethernets:" in text and "%" not in text:
                out.append(text)
    return out


def documents(tarball: Path) -> list[tuple[str, str]]:
    """(origin, text) of every candidate document in the upstream tarball."""
    out: list[tuple[str, str]] = []
    with tarfile.open(tarball) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            rel = member.name.split("/", 1)[-1]
            if not member.isfile():
                continue
            if re.fullmatch(r"examples/[^/]+\.yaml", rel):
                data = tar.extractfile(member)
                if data is not None:
                    out.append((rel, data.read().decode()))
            elif re.fullmatch(r"tests/generator/test_[^/]+\.py", rel):
                data = tar.extractfile(member)
                if data is not None:
                    texts = _yaml_strings(data.read().decode())
                    out += [(f"{rel}#{i}", t) for i, t in enumerate(texts, 1)]
    return out


def _accepted(text: str) -> bool:
    with tempfile.TemporaryDirectory() as root:
        d = Path(root, "etc/netplan")
        d.mkdir(parents=True)
        (d / "50-corpus.yaml").write_text(text)
        (d / "50-corpus.yaml").chmod(0o600)
        ran = subprocess.run(  # noqa: S603 - argv list, never a shell
            ["netplan", "generate", "--root-dir", root], capture_output=True, text=True
        )
        return ran.returncode == 0


def cases(docs: list[tuple[str, str]]) -> list[dict[str, str]]:
    """One case per ethernet definition of each accepted, distinct document."""
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    for origin, text in docs:
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        net = doc.get("network") if isinstance(doc, dict) else None
        ethernets = net.get("ethernets") if isinstance(net, dict) else None
        if not isinstance(ethernets, dict) or not ethernets or not _accepted(text):
            continue
        for netplan_id, stanza in ethernets.items():
            if not isinstance(stanza, dict):
                continue  # `renderer: networkd` inside ethernets is no device
            out.append({"origin": origin, "text": text, "id": str(netplan_id)})
    return out


def build(cache: Path, *, quiet: bool = False) -> Path:
    """Fetch (once) and extract the corpus; returns the index path."""
    index = cache / "index.json"
    if index.exists():
        meta = json.loads(index.read_text())
        if meta.get("schema") == SCHEMA and meta.get("cases"):
            return index
    if shutil.which("netplan") is None:
        raise SystemExit("netplan corpus: `netplan` is missing (apt-get install netplan.io)")
    log: list[str] = []
    tarball = download_source(cache, log)
    found = cases(documents(tarball))
    folder = cache / "cases"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    entries = []
    texts: dict[str, str] = {}
    for case in found:
        digest = hashlib.sha256(case["text"].encode()).hexdigest()[:12]
        if digest not in texts:
            texts[digest] = case["text"]
            (folder / f"{digest}.yaml").write_bytes(case["text"].encode())
        entries.append({"file": f"{digest}.yaml", "id": case["id"], "origin": case["origin"]})
    tmp = index.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"schema": SCHEMA, "source": tarball.name, "cases": entries}, indent=1)
    )
    os.replace(tmp, index)
    if not quiet:
        print(f"netplan corpus: {len(entries)} cases from {tarball.name} in {cache}")
    return index


def fetch(cache: Path, refresh: bool = False) -> Path:
    """For scripts/fetch-corpora.py: the corpus in ``cache/netplan`` (built once)."""
    folder = cache / "netplan"
    if refresh:
        (folder / "index.json").unlink(missing_ok=True)
    build(folder, quiet=True)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    build(args.cache, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())

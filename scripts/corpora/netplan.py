#!/usr/bin/env python3
"""Fetch netplan's own example and test-suite YAML into a local cache: the corpus that
tests/unit/test_netplan_corpus.py bridges and releases.

Usage: scripts/corpora/netplan.py [--cache DIR] [--quiet]

What it does, self-contained (no shared helper, nothing committed):

1. Derives ``deb-src`` entries from this machine's own apt sources (``/etc/apt/sources.list``
   and ``sources.list.d/*.list|*.sources``) into a *private* list, and runs ``apt-get update``
   and ``apt-get source --download-only netplan.io`` with a private state and cache dir
   (``-o Dir::Etc::SourceList=... -o Dir::Etc::SourceParts=... -o Dir::State=...``): the
   machine's apt configuration is not changed.
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

PACKAGE = "netplan.io"
SCHEMA = 3  # bump when the index's shape changes: an old cache is rebuilt


def default_cache() -> Path:
    base = os.environ.get("KVMNET_CORPORA") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kvmnet-corpora"
    )
    return Path(base) / "netplan"


# -- 1. deb-src entries from the machine's own sources ---------------------------------------


def _one_line_sources(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("deb "):
            out.append("deb-src " + line[4:])
    return out


def _deb822_sources(text: str) -> list[str]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and key:
                fields[key] += " " + raw.strip()
                continue
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        fields["types"] = "deb-src"
        body = "\n".join(f"{k.title()}: {v}" for k, v in fields.items() if k != "types")
        out.append("Types: deb-src\n" + body)
    return out


def private_sources(etc: Path = Path("/etc/apt")) -> tuple[str, str]:
    """(one-line list, deb822 text) of deb-src entries mirroring the machine's deb entries."""
    lines: list[str] = []
    stanzas: list[str] = []
    main = etc / "sources.list"
    if main.exists():
        lines += _one_line_sources(main.read_text())
    for path in sorted((etc / "sources.list.d").glob("*.list")):
        lines += _one_line_sources(path.read_text())
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        stanzas += _deb822_sources(path.read_text())
    return "\n".join(lines) + "\n", "\n\n".join(stanzas) + "\n"


def apt_options(work: Path) -> list[str]:
    """apt-get options that confine it to ``work``: its own source list, state and cache."""
    parts = work / "sources.list.d"
    for d in (parts, work / "state/lists/partial", work / "cache/archives/partial"):
        d.mkdir(parents=True, exist_ok=True)
    one_line, deb822 = private_sources()
    (work / "sources.list").write_text(one_line)
    (parts / "kvmnet-src.sources").write_text(deb822)
    return [
        "-o", f"Dir::Etc::SourceList={work / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={parts}",
        "-o", f"Dir::State={work / 'state'}",
        "-o", "Dir::State::status=/var/lib/dpkg/status",
        "-o", f"Dir::Cache={work / 'cache'}",
        "-o", "Debug::NoLocking=1",
        # Private folders: apt's download sandbox user could not write them.
        "-o", "APT::Sandbox::User=root",
        "-o", "Acquire::Languages=none",
        "-o", "APT::Get::List-Cleanup=0",
    ]  # fmt: skip


def download_source(cache: Path, log: list[str]) -> Path:
    """The upstream tarball of netplan.io, downloaded into ``cache/src`` once."""
    src = cache / "src"
    found = sorted(src.glob(f"{PACKAGE}_*.orig.tar.*"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise SystemExit("netplan corpus: apt-get is missing (a Debian machine is needed)")
    work = cache / "apt"
    opts = apt_options(work)
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

"""Shared by the corpus fetchers in this folder: where the cache lives, and how to get a
Debian source package or a PyPI sdist into it without touching the machine's configuration.

The corpora are other projects' test files under their own licences: fetched into a cache
(``$KVMNET_CORPORA``, default ``~/.cache/kvmnet-corpora``), never committed. Each fetcher
writes ``<cache>/<name>/.complete`` last, so a half-done fetch is redone next time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["CorpusError", "apt_source", "cache_root", "complete", "mark_complete", "pip_sdist"]


class CorpusError(RuntimeError):
    """A corpus could not be fetched (the message says which step and why)."""


def cache_root() -> Path:
    """``$KVMNET_CORPORA`` or ``~/.cache/kvmnet-corpora``."""
    env = os.environ.get("KVMNET_CORPORA")
    return Path(env) if env else Path.home() / ".cache" / "kvmnet-corpora"


def complete(folder: Path) -> bool:
    return (folder / ".complete").is_file()


def mark_complete(folder: Path, summary: str) -> None:
    (folder / ".complete").write_text(summary)


def _run(argv: list[str], cwd: Path | None = None, *, check: bool = True) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if check and done.returncode != 0:
        raise CorpusError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _deb_src_entries(etc: Path) -> tuple[str, str]:
    """The machine's own ``deb`` entries turned into ``deb-src``: (one-line list, deb822)."""
    lines: list[str] = []
    listing = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in listing:
        for line in path.read_text().splitlines() if path.is_file() else ():
            if re.match(r"^\s*deb\s", line):
                lines.append(re.sub(r"^\s*deb\s", "deb-src ", line, count=1))
    stanzas: list[str] = []
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            if re.search(r"^Types:.*\bdeb\b", stanza, re.M):
                stanzas.append(re.sub(r"^Types:.*$", "Types: deb-src", stanza, flags=re.M))
    return "\n".join(lines) + "\n", "\n\n".join(s.strip() for s in stanzas) + "\n"


def apt_source(package: str, dest: Path) -> Path:
    """Download Debian source package ``package`` into ``dest``; return its ``.dsc``.

    deb-src entries are derived from the machine's own apt sources into a private
    directory (``-o Dir::Etc::...``): the machine's apt configuration is not changed.
    """
    with tempfile.TemporaryDirectory(prefix="kvmnet-apt-") as tmp:
        work = Path(tmp)
        one_line, deb822 = _deb_src_entries(Path("/etc/apt"))
        (work / "parts").mkdir()
        (work / "sources.list").write_text(one_line)
        (work / "parts" / "src.sources").write_text(deb822)
        for sub in ("lists/partial", "cache/archives/partial"):
            (work / sub).mkdir(parents=True)
        options = [
            f"-oDir::Etc::SourceList={work / 'sources.list'}",
            f"-oDir::Etc::SourceParts={work / 'parts'}",
            f"-oDir::State::Lists={work / 'lists'}",
            f"-oDir::Cache={work / 'cache'}",
            "-qq",
        ]
        if os.geteuid() == 0:
            # Downloads into our own folder: apt's _apt user may not be able to write there.
            options.append("-oAPT::Sandbox::User=root")
        # A third-party source that cannot be reached only costs its own lists.
        _run(["apt-get", *options, "update"], check=False)
        dest.mkdir(parents=True, exist_ok=True)
        _run(["apt-get", *options, "source", "--download-only", package], cwd=dest)
    dscs = sorted(dest.glob(f"{package}_*.dsc"))
    if not dscs:
        raise CorpusError(f"apt-get source {package}: no .dsc in {dest}")
    return dscs[-1]


def pip_sdist(requirement: str, dest: Path) -> Path:
    """Download the sdist of ``requirement`` (e.g. ``os-net-config==18.1.0``) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    _run([*argv, "--no-binary", ":all:", "-d", str(dest), requirement])
    found = sorted(dest.glob("*.tar.gz"))
    if not found:
        raise CorpusError(f"pip download {requirement}: no sdist in {dest}")
    return found[-1]

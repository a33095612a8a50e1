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
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "DEBIAN_HOSTS",
    "CorpusError",
    "apt_source",
    "cache_root",
    "complete",
    "deb_src_entries",
    "mark_complete",
    "pip_sdist",
    "private_apt",
]


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


#: Debian's own archives (a corpus that must come from Debian, not a third-party mirror).
DEBIAN_HOSTS = re.compile(r"https?://[^/]*(debian\.org|debian\.net)/")


def _one_line_entries(text: str, uri_ok: Callable[[str], bool]) -> list[str]:
    out = []
    for raw in text.splitlines():
        match = re.match(r"deb\s+(.*)", raw.split("#", 1)[0].strip())
        if match is None:
            continue
        rest = match.group(1)
        # `deb [arch=amd64 signed-by=...] URI SUITE COMPONENTS`: the options may hold spaces
        after = rest.split("]", 1)[1] if rest.startswith("[") and "]" in rest else rest
        uri = (after.split() or [""])[0]
        if uri_ok(uri.rstrip("/") + "/"):
            out.append("deb-src " + rest)
    return out


def _deb822_entries(text: str, uri_ok: Callable[[str], bool]) -> list[str]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and key:
                fields[key] += "\n" + raw  # a continuation line (an inline Signed-By key)
                continue
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        uris = [u for u in fields.get("uris", "").split() if uri_ok(u.rstrip("/") + "/")]
        if not uris:
            continue
        fields["uris"] = " ".join(uris)
        body = "\n".join(f"{k.title()}: {v}" for k, v in fields.items() if k != "types")
        out.append("Types: deb-src\n" + body)
    return out


def deb_src_entries(
    etc: Path = Path("/etc/apt"), *, uri_ok: Callable[[str], bool] = lambda _uri: True
) -> tuple[str, str]:
    """The machine's enabled ``deb`` entries as ``deb-src``: (one-line list, deb822 text).

    Reads ``sources.list``, ``sources.list.d/*.list`` and ``*.sources`` (comments and
    ``Enabled: no`` stanzas left out); ``uri_ok`` keeps only the archives it accepts (e.g.
    ``DEBIAN_HOSTS.search``). Either text is a lone newline when it has no entry.
    """
    lines: list[str] = []
    listing = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in listing:
        if path.is_file():
            lines += _one_line_entries(path.read_text(), uri_ok)
    stanzas: list[str] = []
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        stanzas += _deb822_entries(path.read_text(), uri_ok)
    return "\n".join(lines) + "\n", "\n\n".join(stanzas) + "\n"


def private_apt(
    work: Path,
    *,
    etc: Path = Path("/etc/apt"),
    uri_ok: Callable[[str], bool] = lambda _uri: True,
) -> list[str]:
    """apt-get options confining it to ``work``: deb-src lists derived by
    :func:`deb_src_entries` (written there), its own package lists and cache. The machine's
    apt configuration is only read.

    Raises:
        CorpusError: the machine has no (accepted) ``deb`` entry to derive one from.
    """
    one_line, deb822 = deb_src_entries(etc, uri_ok=uri_ok)
    if not one_line.strip() and not deb822.strip():
        raise CorpusError(f"no apt source in {etc} to derive deb-src entries from")
    for sub in ("parts", "lists/partial", "cache/archives/partial"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "sources.list").write_text(one_line)
    (work / "parts" / "src.sources").write_text(deb822)
    options = [
        f"-oDir::Etc::SourceList={work / 'sources.list'}",
        f"-oDir::Etc::SourceParts={work / 'parts'}",
        f"-oDir::State::Lists={work / 'lists'}",
        f"-oDir::Cache={work / 'cache'}",
        "-oDebug::NoLocking=1",  # private lists and cache: nobody else uses them
        "-oAcquire::Languages=none",
        "-oAPT::Get::List-Cleanup=0",
    ]
    if os.geteuid() == 0:
        # Downloads into our own folder: apt's _apt user may not be able to write there.
        options.append("-oAPT::Sandbox::User=root")
    return options


def apt_source(package: str, dest: Path) -> Path:
    """Download Debian source package ``package`` into ``dest``; return its ``.dsc``.

    deb-src entries are derived from the machine's own apt sources into a private
    directory (:func:`private_apt`): the machine's apt configuration is not changed.
    """
    with tempfile.TemporaryDirectory(prefix="kvmnet-apt-") as tmp:
        options = [*private_apt(Path(tmp)), "-qq"]
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

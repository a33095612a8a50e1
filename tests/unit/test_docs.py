"""Every ```python block in docs/**/*.md and README.md runs, so the docs cannot drift.

Each page runs in a fresh Python process (libvirt's ``test:///default`` keeps its state per
process, so pages must not see each other's edits), its blocks in order in one namespace,
in a scratch directory, with ``LIBVIRT_DEFAULT_URI=test:///default``. As root the process
also gets a network namespace of its own, so an example that runs a real command can never
touch this machine's links.

A block is skipped only when it truly needs root and a real host; mark it with a reason on
the line before its fence::

    <!-- no-run: moves the host's own NIC into a bridge -->

or with ``title="needs root"`` on the fence. A block starting with ``>>>`` runs as a doctest
and its printed output is compared.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"])

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)(?P<info>[^\n]*)$")
_NO_RUN = re.compile(r"<!--\s*no-run(?::\s*(?P<why>.*?))?\s*-->")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the first code line
    code: str
    skip_reason: str | None


def extract_blocks(path: Path, *, root: Path = ROOT) -> list[Block]:
    """The page's python blocks in order; fenced blocks of other languages are ignored."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None or not match["lang"]:
            i += 1
            continue
        indent, lang, info = match["indent"], match["lang"], match["info"]
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if lang in {"python", "py", "pycon"}:
            body = [ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : end]]
            blocks.append(
                Block(
                    str(path.relative_to(root)),
                    i + 2,
                    "\n".join(body) + "\n",
                    _skip_reason(lines[i - 1] if i else "", info),
                )
            )
        i = end + 1
    return blocks


def _skip_reason(previous: str, info: str) -> str | None:
    marker = _NO_RUN.search(previous)
    if marker is not None:
        why = (marker["why"] or "").strip()
        if not why:
            raise AssertionError(f"a <!-- no-run --> marker needs a reason: {previous.strip()!r}")
        return why
    if 'title="needs root"' in info:
        return "needs root"
    return None


# Runs in the child: each block compiled with its page and line so a traceback points at the
# Markdown source; blocks starting with >>> run as doctests in the same namespace.
_RUNNER = r"""
import doctest, json, sys, traceback
blocks = json.load(sys.stdin)
ns = {"__name__": "__docs__"}
for b in blocks:
    name = f"{b['page']}:{b['line']}"
    try:
        if b["code"].lstrip().startswith(">>>"):
            parser = doctest.DocTestParser()
            test = parser.get_doctest(b["code"], ns, name, b["page"], b["line"] - 1)
            flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
            runner = doctest.DocTestRunner(optionflags=flags)
            runner.run(test, clear_globs=False)
            if runner.failures:
                raise AssertionError(f"doctest failed in {name}")
        else:
            exec(compile("\n" * (b["line"] - 1) + b["code"], b["page"], "exec"), ns)
    except BaseException:
        print(f"DOCS BLOCK FAILED: {name}", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


def _command() -> list[str]:
    argv = [sys.executable, "-c", _RUNNER]
    unshare = shutil.which("unshare")
    if os.geteuid() == 0 and unshare is not None:
        # An empty network namespace: a real command in an example cannot reach the host's links.
        argv = [unshare, "--net", "--", *argv]
    return argv


def run_page(blocks: list[Block], cwd: Path) -> subprocess.CompletedProcess[str]:
    # TMPDIR: the examples' tempfile.mkdtemp() worlds land in pytest's tmp_path, cleaned up.
    env = {
        **os.environ,
        "LIBVIRT_DEFAULT_URI": "test:///default",
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(cwd),
    }
    payload = [{"page": b.page, "line": b.line, "code": b.code} for b in blocks]
    return subprocess.run(
        _command(),
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


# Only pages with something to run; a page of prose and shell commands has nothing to check.
RUNNABLE = {
    str(page.relative_to(ROOT)): blocks
    for page in PAGES
    if (blocks := [b for b in extract_blocks(page) if b.skip_reason is None])
}


@pytest.mark.parametrize("page", sorted(RUNNABLE))
def test_page_examples_run(page: str, tmp_path: Path) -> None:
    result = run_page(RUNNABLE[page], tmp_path)
    assert result.returncode == 0, f"{result.stderr}\n--- stdout ---\n{result.stdout}"


def test_extractor_finds_blocks_lines_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nx = 1\n```\n\n<!-- no-run: touches the host's NIC -->\n"
        "```python\nboom()\n```\n\n```sh\nls\n```\n\n- item\n\n    ```python\n    y = x\n    ```\n",
        encoding="utf-8",
    )
    blocks = extract_blocks(page, root=tmp_path)
    assert [(b.line, b.code, b.skip_reason) for b in blocks] == [
        (4, "x = 1\n", None),
        (9, "boom()\n", "touches the host's NIC"),
        (19, "y = x\n", None),
    ]


def test_a_failing_block_fails_with_its_page_and_line(tmp_path: Path) -> None:
    blocks = [
        Block("docs/x.md", 3, "a = 1\n", None),
        Block("docs/x.md", 7, "raise ValueError(a)\n", None),
    ]
    result = run_page(blocks, tmp_path)
    assert result.returncode == 1
    assert "DOCS BLOCK FAILED: docs/x.md:7" in result.stderr
    assert 'File "docs/x.md", line 7' in result.stderr


def test_doctest_blocks_compare_output(tmp_path: Path) -> None:
    ok = Block("d.md", 1, ">>> 1 + 1\n2\n", None)
    bad = Block("d.md", 5, ">>> 1 + 1\n3\n", None)
    assert run_page([ok], tmp_path).returncode == 0
    assert run_page([bad], tmp_path).returncode == 1


def test_a_bare_no_run_marker_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- no-run -->\n```python\nx = 1\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="needs a reason"):
        extract_blocks(page, root=tmp_path)

"""The backend pages (docs/backends/{ifcfg,nmcli,netplan,networkd}.md) show real output: the
python block before "Output:", run, prints exactly the ```text block after it.

(One file for the four pages; tests/unit/test_docs.py separately runs every block.)
Regenerate after a deliberate change with ``KVMNET_REGEN_GOLDEN=1``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "backends"
PAGES = ["ifcfg", "nmcli", "netplan", "networkd"]
# The python block right before "Output:" (a page may show a real-host block, not run, first).
_BLOCKS = re.compile(
    r"```python\n(?P<code>(?:(?!```).)*?)```\n\nOutput:\n\n```text\n(?P<out>.*?)```", re.S
)


@pytest.mark.parametrize("page", PAGES)
def test_page_output_is_what_the_code_prints(page: str) -> None:
    path = DOCS / f"{page}.md"
    text = path.read_text()
    match = _BLOCKS.search(text)
    assert match is not None, f"{path}: no python block followed by an Output: text block"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(match["code"], str(path), "exec"), {"__name__": f"docs_{page}"})
    printed = out.getvalue()
    if os.environ.get("KVMNET_REGEN_GOLDEN"):
        path.write_text(text[: match.start("out")] + printed + text[match.end("out") :])
        return
    assert printed == match["out"], f"{path}: the Output block is stale (KVMNET_REGEN_GOLDEN=1)"

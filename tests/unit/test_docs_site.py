"""The built documentation site works offline: nothing is loaded from another host.

The mkdocs theme's own highlighting is highlight.js from a CDN; kvmnet colours code at build
time with Pygments instead. This builds the site (strict, as CI does) into a scratch folder
and reads every page's scripts and stylesheets, and checks that code blocks were coloured.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_ASSET = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?P<url>[^\"]+)\"", re.IGNORECASE)


def test_the_site_loads_no_asset_from_another_host_and_code_is_coloured(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20, pages
    external = sorted(
        {
            f"{page.relative_to(site)}: {m['url']}"
            for page in pages
            for m in _ASSET.finditer(page.read_text(encoding="utf-8"))
            if re.match(r"(?:https?:)?//", m["url"])
        }
    )
    assert not external, "assets from another host:\n" + "\n".join(external)
    quickstart = (site / "quickstart" / "index.html").read_text(encoding="utf-8")
    # Pygments marks Python keywords: `import` in the quick start's example is one.
    assert '<span class="kn">import</span>' in quickstart
    assert (site / "css" / "pygments.css").is_file()

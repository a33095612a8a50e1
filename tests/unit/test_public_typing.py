"""A typo in a public name fails ``mypy --strict``, though the names load lazily.

kvmnet and kvmnet.backends resolve their public names on first use through a module-level
``__getattr__``; were that visible to mypy, every attribute (``kvmnet.conect``) would be valid
for it. This runs the real mypy, with the project's own configuration, on an embedder's
snippets: the correct one must pass and each typo must be reported on its own line.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CORRECT = """\
import kvmnet
from kvmnet import Bridge, DomainXML, Host, HostNic, KvmnetError, Plan
from kvmnet.backends import IfcfgBackend, NetplanBackend, create_backend


def first_mac(host: Host) -> str | None:
    return host.domain("test").interfaces[0].mac


with kvmnet.connect("test:///default") as host:
    first_mac(host)
backend = IfcfgBackend(root="/")
plan: Plan = Bridge("br0", backend=backend).enslave(HostNic("eth0", backend=backend))
doc = DomainXML("<domain/>")
other: type[NetplanBackend] = NetplanBackend
auto = create_backend("auto")
error: type[Exception] = KvmnetError
version: str = kvmnet.__version__
"""

# Each line with a typo, and the name mypy must name in its error on that line.
TYPOS = {
    "import kvmnet": None,
    "from kvmnet import Hots": "Hots",
    "from kvmnet.backends import IfcfgBakend": "IfcfgBakend",
    'kvmnet.conect("test:///default")': "conect",
    "kvmnet.DomainXml": "DomainXml",
    "import kvmnet.backends": None,
    "kvmnet.backends.NmcliBackends": "NmcliBackends",
    # The guest moves take their options through **options (named once, kvmnet.lan.onboard):
    # still a keyword typo fails, and a correct call passes.
    'kvmnet.connect("x").bridge_guest("g", bridge="br0", nicc="eth0")': "nicc",
    'kvmnet.connect("x").nat_guest("g", release="eth0", dry_run=True, live=False)': None,
}


def _mypy(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            "--no-error-summary",
            "--show-error-codes",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"MYPYPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=300,
    )


def _import_everything() -> str:
    # Every name in __all__, so a lazy name that mypy cannot see (missing from the
    # TYPE_CHECKING imports) fails here rather than in an embedder's type check.
    import kvmnet
    import kvmnet.backends

    return "".join(
        f"from {module.__name__} import {name}\n"
        for module in (kvmnet, kvmnet.backends)
        for name in module.__all__
    )


def test_typos_in_public_names_fail_and_correct_use_passes(tmp_path: Path) -> None:
    correct = tmp_path / "correct.py"
    correct.write_text(CORRECT + _import_everything())
    typos = tmp_path / "typos.py"
    typos.write_text("\n".join(TYPOS) + "\n")

    result = _mypy(tmp_path, correct, typos)

    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    # The correct snippet (and kvmnet itself, read as source) has no error at all.
    assert all(line.startswith("typos.py:") for line in errors), errors
    by_line = {int(m.group(1)): line for line in errors if (m := re.match(r"typos.py:(\d+)", line))}
    for number, (code, name) in enumerate(TYPOS.items(), 1):
        if name is None:
            assert number not in by_line, f"{code!r} is correct but mypy said: {by_line[number]}"
        else:
            assert number in by_line, f"mypy accepted the typo {code!r}"
            assert f'"{name}"' in by_line[number]
            assert "[attr-defined]" in by_line[number] or "[call-arg]" in by_line[number]

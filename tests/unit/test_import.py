"""``import kvmnet`` has no side effects, so tools can embed it without surprises.

Each check runs in a fresh interpreter: this test process has long since imported libvirt
and configured logging through pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = r"""
import json, logging, sys
import kvmnet
report = {
    "libvirt_imported": "libvirt" in sys.modules,
    "root_handlers": [type(h).__name__ for h in logging.getLogger().handlers],
    "kvmnet_handlers": [type(h).__name__ for h in logging.getLogger("kvmnet").handlers],
    "root_level": logging.getLogger().level,
    "modules": sorted(m for m in sys.modules if m == "kvmnet" or m.startswith("kvmnet.")),
}
print(json.dumps(report))
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )


def _probe() -> dict[str, object]:
    result = _python(_PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"import kvmnet wrote to stderr: {result.stderr!r}"
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_import_does_not_import_libvirt() -> None:
    assert _probe()["libvirt_imported"] is False


def test_import_configures_no_logging() -> None:
    report = _probe()
    assert report["root_handlers"] == []
    assert report["root_level"] == 30  # WARNING, Python's untouched default
    assert report["kvmnet_handlers"] == ["NullHandler"]


def test_import_loads_only_the_light_modules() -> None:
    # Submodules load lazily on first use; the eager ones are the error tree, Mode and the
    # loggers' stand-in (kvmnet._log).
    assert _probe()["modules"] == ["kvmnet", "kvmnet._log", "kvmnet.errors", "kvmnet.mode"]


def test_public_names_resolve_without_installing_libvirts_error_handler() -> None:
    # libvirt's default handler prints "libvirt: ... error : ..." to stderr; kvmnet may replace
    # it only when it opens a connection. So after touching every public name, a failing
    # libvirt call made directly must still print through libvirt's own default.
    code = (
        "import kvmnet\n"
        "for name in kvmnet.__all__: getattr(kvmnet, name)\n"
        "import libvirt\n"
        "try:\n"
        "    libvirt.open('test:///nonexistent/kvmnet-import-check.xml')\n"
        "except libvirt.libvirtError:\n"
        "    pass\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert "libvirt:" in result.stderr


def test_every_public_name_resolves() -> None:
    result = _python(
        "import kvmnet\n"
        "missing = [n for n in kvmnet.__all__ if getattr(kvmnet, n, None) is None]\n"
        "print(missing)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_parser_builds_without_libvirt_or_lxml() -> None:
    # `kvmnet --help` must stay fast: the command modules import the library inside handlers.
    result = _python(
        "import sys\n"
        "from kvmnet.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in ('libvirt', 'lxml', 'lxml.etree') if m in sys.modules))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

"""What an embedder meets first: the version, ``python -m kvmnet``, and a Python without
libvirt-python (kvmnet works there except for connecting, which says how to install it).

Each check runs in a fresh interpreter. "No libvirt-python" is made by putting ``None`` in
``sys.modules['libvirt']``, which is how Python itself reports a module it cannot find;
tests/integration/test_wheel.py checks the same in a real venv that lacks it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kvmnet
from kvmnet.cli import main

ROOT = Path(__file__).resolve().parents[2]

_WITHOUT_LIBVIRT = "import sys\nsys.modules['libvirt'] = None\n"


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )


def test_version_is_defined_once_and_shown_by_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev)?\d*", kvmnet.__version__)
    pyproject = (ROOT / "pyproject.toml").read_text()
    # The version lives in kvmnet/__init__.py only; pyproject reads it from there.
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "kvmnet.__version__" }' in pyproject
    assert not re.search(r"^version\s*=\s*\"", pyproject, re.M)
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"kvmnet {kvmnet.__version__}\n"


def test_python_dash_m_kvmnet_is_the_command_and_importing_it_runs_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kvmnet", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, f"kvmnet {kvmnet.__version__}\n")
    # pydoc, API doc builders and import checks import every module: no command may run.
    imported = _python("import kvmnet.__main__\nprint('still here')")
    assert (imported.returncode, imported.stdout) == (0, "still here\n"), imported.stderr


def test_without_libvirt_the_pure_parts_work_and_connecting_says_how_to_install() -> None:
    code = _WITHOUT_LIBVIRT + (
        "import kvmnet\n"
        "xml = \"<domain><devices><interface type='network'><source network='default'/>"
        "</interface></devices></domain>\"\n"
        "doc = kvmnet.DomainXML(xml)\n"
        "doc.use_bridge('br0')\n"
        "print(doc.interfaces[0].source)\n"
        "try:\n"
        "    kvmnet.connect('test:///default')\n"
        "except kvmnet.LibvirtMissing as exc:\n"
        "    kinds = [kvmnet.ConnectionFailed, kvmnet.KvmnetError, ImportError]\n"
        "    print(all(isinstance(exc, k) for k in kinds), exc.name)\n"
        "    print(exc)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    source, kinds, message = result.stdout.splitlines()
    assert source == "br0"
    assert kinds == "True libvirt"
    assert "pip install libvirt-python" in message
    assert "libvirt-dev pkg-config gcc" in message and "libvirt-devel" in message
    assert "--system-site-packages" in message and "python3-libvirt" in message


@pytest.mark.parametrize(
    "argv",
    [
        ["domains"],
        ["domains", "--json"],
        ["bridge", "test", "br0", "--dry-run"],
        ["nat", "test", "--dry-run"],
        ["add-nic", "test", "--network", "default", "--dry-run"],
        ["remove-nic", "test", "0", "--dry-run"],
        ["mac"],
    ],
)
def test_cli_without_libvirt_is_one_line_naming_the_fix(argv: list[str]) -> None:
    code = _WITHOUT_LIBVIRT + (
        "from kvmnet.cli import main\nsys.exit(main(['-c', 'test:///default', *sys.argv[1:]]))\n"
    )
    result = _python(code, *argv)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    if "--json" in argv:  # the same line, as a JSON object
        error = json.loads(lines[0])
        assert (error["type"], error["status"]) == ("LibvirtMissing", 1)
        lines = [f"kvmnet: {error['error']}"]
    assert lines[0].startswith("kvmnet: libvirt-python is not installed in ")
    assert "pip install libvirt-python" in lines[0]
    assert "--system-site-packages" in lines[0]


def test_a_libvirt_python_that_does_not_load_is_told_apart() -> None:
    # libvirt.py present, its C module missing or unloadable (no libvirt.so.0 on the system).
    code = (
        "import sys, types\n"
        "sys.modules['libvirtmod'] = None\n"
        "sys.modules.pop('libvirt', None)\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('libvirt') is None:\n"
        "    raise SystemExit('libvirt-python is not installed here')\n"
        "import kvmnet\n"
        "try:\n"
        "    kvmnet.connect('test:///default')\n"
        "except kvmnet.LibvirtMissing as exc:\n"
        "    print(exc)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("libvirt-python is installed but does not load (")
    assert "pip install --force-reinstall --no-cache-dir libvirt-python" in result.stdout

"""The Ansible collection kvmnet.fleet builds with ansible-galaxy, installs from its tarball,
and every module's documentation renders with ansible-doc (real ansible-core, no root)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "kvmnet" / "fleet"
BIN = Path(sys.executable).parent
MODULES = ("guest_interface", "host_bridge", "confirm", "info")


def _env(tmp_path: Path, collections: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_HOME": str(tmp_path / "home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "home" / "tmp"),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
        "ANSIBLE_NOCOLOR": "1",
    }


def _run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    # stdin: /dev/null of its own: Ansible refuses a non-blocking stdin, and the suite's may
    # have been left so by a program an earlier test ran (see tests/integration/ansible_fleet).
    proc = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The collection built and installed from its tarball; (tarball, install root)."""
    tmp = tmp_path_factory.mktemp("collection")
    env = _env(tmp, tmp / "installed")
    _run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp)],
         env, cwd=COLLECTION)  # fmt: skip
    (tarball,) = tmp.glob("kvmnet-fleet-*.tar.gz")
    _run([str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(tmp / "installed"),
          str(tarball)], env)  # fmt: skip
    return tarball, tmp / "installed"


def test_the_tarball_holds_the_modules_the_role_and_the_manifest(built: tuple[Path, Path]) -> None:
    tarball, _ = built
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    assert manifest["collection_info"]["namespace"] == "kvmnet"
    assert manifest["collection_info"]["name"] == "fleet"
    for module in MODULES:
        assert f"plugins/modules/{module}.py" in names
    assert "plugins/action/guest_interface.py" in names
    assert "plugins/module_utils/kvmnet_common.py" in names
    assert "roles/safe_host_bridge/tasks/main.yml" in names
    assert not any(name.endswith(".pyc") or "__pycache__" in name for name in names)


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_each_installed_module(
    built: tuple[Path, Path], module: str, tmp_path: Path
) -> None:
    _, installed = built
    env = _env(tmp_path, installed)
    docs = json.loads(_run([str(BIN / "ansible-doc"), "--json", f"kvmnet.fleet.{module}"], env))
    doc = docs[f"kvmnet.fleet.{module}"]
    assert doc["doc"]["module"] == module
    assert doc["doc"]["short_description"]
    assert doc["examples"].strip() and doc["return"]
    for name, option in doc["doc"].get("options", {}).items():
        assert option.get("description"), f"{module}: option {name} has no description"
    text = _run([str(BIN / "ansible-doc"), f"kvmnet.fleet.{module}"], env)
    assert f"kvmnet.fleet.{module}" in text and "EXAMPLES" in text


def test_the_role_documents_its_arguments(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, installed = built
    env = _env(tmp_path, installed)
    text = _run([str(BIN / "ansible-doc"), "-t", "role", "kvmnet.fleet.safe_host_bridge"], env)
    assert "safe_host_bridge_nic" in text and "safe_host_bridge_confirm_within" in text


@pytest.mark.parametrize("module", MODULES)
def test_each_module_accepts_exactly_the_options_it_documents(
    built: tuple[Path, Path], module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate-modules' rule that matters most here: the argument spec and DOCUMENTATION
    name the same options with the same types, choices and defaults."""
    _, installed = built
    env = _env(tmp_path, installed)
    doc = json.loads(_run([str(BIN / "ansible-doc"), "--json", f"kvmnet.fleet.{module}"], env))
    options = doc[f"kvmnet.fleet.{module}"]["doc"]["options"]
    monkeypatch.syspath_prepend(str(REPO))
    code = importlib.import_module(f"ansible_collections.kvmnet.fleet.plugins.modules.{module}")
    spec: dict[str, dict[str, object]] = code.ARGUMENT_SPEC
    assert set(spec) == set(options), module
    for name, option in options.items():
        assert spec[name]["type"] == option["type"], (module, name)
        assert spec[name].get("choices") == option.get("choices"), (module, name)
        assert spec[name].get("default") == option.get("default"), (module, name)
        assert bool(spec[name].get("required")) == bool(option.get("required")), (module, name)

"""An embedder's first minute: kvmnet built as a wheel and installed in a fresh venv.

The wheel is built from a copy of the sources in an isolated build environment (only
``[build-system] requires``), then installed, not editable, into new venvs that see nothing of
this one: one with every dependency, one without libvirt-python. Each runs every backend's dry
run against the shipped fake host (tests/integration/wheel_dry_runs.py), the command line, and
mypy as an embedder's type checker would see the installed package.

The suite runs in a network namespace without the package index, so the dependencies' wheels
(and setuptools, for the build) come from the wheelhouse ``make wheelhouse`` fills, next to
the running venv (``$KVMNET_WHEELHOUSE`` overrides). Without it the tests skip, except under
CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import in_ci

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DRY_RUNS = Path(__file__).with_name("wheel_dry_runs.py")
# What the wheel is built from: the package and the files pyproject.toml names.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "kvmnet")
BACKENDS = ("iproute2", "ifcfg", "ifupdown", "nmcli", "netplan", "networkd")


def _wheelhouse() -> Path:
    path = Path(os.environ.get("KVMNET_WHEELHOUSE") or Path(sys.prefix) / "wheelhouse")
    if not any(path.glob("setuptools-*.whl")):
        message = f"no wheelhouse at {path}: run `make wheelhouse` (it needs the package index)"
        if in_ci():
            pytest.fail(f"{message} (CI=true: the wheel test may not skip)")
        pytest.skip(message)
    return path


def _run(
    argv: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
        timeout=600,
    )


def _pip_env() -> dict[str, str]:
    # No machine pip configuration (extra indexes, constraints): only the wheelhouse counts.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PIP_CONFIG_FILE": os.devnull}


def _pip(*args: str | Path, cwd: Path) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    result = _run(argv, cwd=cwd, env=_pip_env())
    assert result.returncode == 0, f"pip {' '.join(map(str, args))}:\n{result.stderr}"


class Venv:
    """A fresh venv (no pip of its own: this interpreter's pip installs into it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"
        self.work = path.parent / f"{path.name}-cwd"  # far from the sources: no stray import
        self.work.mkdir()

    def install(self, *args: str | Path, wheelhouse: Path) -> None:
        _pip("--python", self.python, "install", "--no-index", "--find-links", wheelhouse,
             *args, cwd=self.work)

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{self.path / 'bin'}:/usr/bin:/bin",
            "HOME": str(self.work),
            "LANG": "C.UTF-8",
        }
        return _run([str(a) for a in argv], cwd=self.work, env=env)

    def kvmnet(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.path / "bin" / "kvmnet", *args)

    def dry_runs(self) -> dict[str, object]:
        """wheel_dry_runs.py's report: where kvmnet was imported from, its version, and one
        entry per backend."""
        root = self.work / "root"
        root.mkdir(exist_ok=True)
        result = self.run(self.python, DRY_RUNS, root)
        assert result.returncode == 0, result.stderr
        report: dict[str, object] = json.loads(result.stdout)
        assert str(report.pop("kvmnet")).startswith(f"{self.path}/lib/")
        assert report.pop("version") == _version()
        return report


def _make_venv(path: Path) -> Venv:
    result = _run([sys.executable, "-m", "venv", "--without-pip", path], cwd=path.parent)
    assert result.returncode == 0, result.stderr
    return Venv(path)


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    return _wheelhouse()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    out = base / "dist"
    # Build isolation: a clean environment with only what [build-system] requires.
    _pip("wheel", "--no-deps", "--no-index", "--find-links", wheelhouse, "-w", out, src,
         cwd=base)
    (built,) = out.glob("kvmnet-*.whl")
    return built


def _requirements(wheel: Path) -> list[str]:
    """The wheel's own runtime Requires-Dist (no extras), as pip would read them."""
    with zipfile.ZipFile(wheel) as whl:
        (name,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = whl.read(name).decode()
    return [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]


@pytest.fixture(scope="module")
def full_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path, wheelhouse: Path) -> Venv:
    venv = _make_venv(tmp_path_factory.mktemp("full") / "venv")
    venv.install(wheel, wheelhouse=wheelhouse)
    return venv


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path, wheelhouse: Path) -> Venv:
    """The wheel and its dependencies except libvirt-python (as with ``pip install --no-deps``
    where the system's libvirt-python was meant to be used but is not there)."""
    venv = _make_venv(tmp_path_factory.mktemp("bare") / "venv")
    others = [r for r in _requirements(wheel) if not r.lower().startswith("libvirt-python")]
    venv.install("--no-deps", wheel, *others, wheelhouse=wheelhouse)
    return venv


def test_the_wheel_declares_what_kvmnet_imports(wheel: Path) -> None:
    import kvmnet

    requirements = {r.split(">")[0].split("=")[0].lower() for r in _requirements(wheel)}
    assert requirements == {"libvirt-python", "lxml", "pyyaml"}
    assert wheel.name == f"kvmnet-{kvmnet.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    assert "kvmnet/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "docs/", "scripts/"))]


def test_every_backend_dry_runs_from_the_wheel(full_venv: Venv) -> None:
    _check_dry_runs(full_venv.dry_runs(), full_venv.work / "root")


def test_cli_from_the_wheel(full_venv: Venv) -> None:
    version = full_venv.kvmnet("--version")
    assert (version.returncode, version.stdout) == (0, f"kvmnet {_version()}\n")
    module = full_venv.run(full_venv.python, "-m", "kvmnet", "--version")
    assert (module.returncode, module.stdout) == (0, version.stdout)

    domains = full_venv.kvmnet("-c", "test:///default", "domains", "--json")
    assert domains.returncode == 0, domains.stderr
    assert [d["name"] for d in json.loads(domains.stdout)] == ["test"]
    listed = full_venv.kvmnet("-c", "test:///default", "domains")
    assert listed.returncode == 0, listed.stderr
    assert "test" in listed.stdout


def test_dependencies_are_consistent(full_venv: Venv) -> None:
    # pip's own check, from inside: every requirement of every installed package is met.
    result = _run(
        [sys.executable, "-m", "pip", "--python", full_venv.python, "check"],
        cwd=full_venv.work,
        env=_pip_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_libvirt_python_the_host_side_works_and_the_cli_says_how(
    bare_venv: Venv,
) -> None:
    probe = bare_venv.run(bare_venv.python, "-c", "import libvirt")
    assert probe.returncode == 1 and "No module named 'libvirt'" in probe.stderr

    _check_dry_runs(bare_venv.dry_runs(), bare_venv.work / "root")
    version = bare_venv.kvmnet("--version")
    assert (version.returncode, version.stdout) == (0, f"kvmnet {_version()}\n")

    domains = bare_venv.kvmnet("-c", "test:///default", "domains")
    assert domains.returncode == 1
    assert domains.stdout == ""
    (line,) = domains.stderr.splitlines()
    assert line.startswith(f"kvmnet: libvirt-python is not installed in {bare_venv.path}: ")
    assert "pip install libvirt-python" in line and "--system-site-packages" in line

    connect = bare_venv.run(
        bare_venv.python,
        "-c",
        "import kvmnet\n"
        "try:\n"
        "    kvmnet.connect('test:///default')\n"
        "except kvmnet.LibvirtMissing as exc:\n"
        "    print(isinstance(exc, kvmnet.KvmnetError))\n",
    )
    assert (connect.returncode, connect.stdout) == (0, "True\n"), connect.stderr


def test_an_embedders_mypy_sees_the_installed_wheel_typed(full_venv: Venv) -> None:
    snippet = full_venv.work / "embedder.py"
    snippet.write_text(
        "import kvmnet\n"
        "from kvmnet.backends import NetplanBackend\n"
        "with kvmnet.connect('test:///default') as host:\n"
        "    names: list[str] = [d.name for d in host.domains()]\n"
        "backend: NetplanBackend = NetplanBackend(root='/')\n"
        "kvmnet.conect('test:///default')\n"
    )
    result = _run(
        [sys.executable, "-m", "mypy", "--strict", "--python-executable", full_venv.python,
         "--no-error-summary", "--cache-dir", full_venv.work / "mypy-cache", snippet],
        cwd=full_venv.work,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    # Only the typo: kvmnet itself is found installed and typed (py.typed), not as Any.
    assert len(errors) == 1, result.stdout + result.stderr
    assert errors[0].startswith("embedder.py:6:") and '"conect"' in errors[0]


def _version() -> str:
    import kvmnet

    return kvmnet.__version__


def _check_dry_runs(report: dict[str, object], root: Path) -> None:
    assert sorted(report) == sorted(
        [*BACKENDS, "auto/ifupdown", "auto/netplan", "auto/networkd", "auto/ifcfg"]
    )
    for name, result in report.items():
        assert isinstance(result, dict)
        stack = name.removeprefix("auto/")
        assert result["backend"] == f"kvmnet.hostnet.backends.{name.split('/')[0]}", name
        if name.startswith("auto/"):
            assert result["chosen"] == f"kvmnet.hostnet.backends.{stack}", name
        commands = result["commands"]
        files = result["files"]
        assert isinstance(commands, list) and isinstance(files, list)
        assert commands or files, f"{name}: an empty plan"
        assert "br0" in str(result["text"]), name
        # A dry run: the fake host saw no write, removal or process started.
        assert result["changed"] == [], name
        if stack != "iproute2":
            assert files and all(str(f).startswith(f"{root}/") for f in files), (name, files)
    assert ["ip", "link", "set", "enp1s0", "master", "br0"] in _list(report, "iproute2", "commands")
    assert f"{root}/etc/netplan/60-kvmnet-br0.yaml" in _list(report, "netplan", "files")


def _list(report: dict[str, object], backend: str, key: str) -> list[object]:
    result = report[backend]
    assert isinstance(result, dict)
    value = result[key]
    assert isinstance(value, list)
    return value

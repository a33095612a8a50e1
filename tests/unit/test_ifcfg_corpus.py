"""The ifcfg backend against real ifcfg files from upstream test suites (NetworkManager's
ifcfg-rh tests, os-net-config's expectations; tests/data/corpora/ifcfg/SOURCES.md).

``scripts/fetch-corpora.py ifcfg`` fetches them into the cache when this module is collected;
a failed fetch fails the run under CI=true and skips it elsewhere. Every wired-NIC profile is
bridged (or refused with the expected check, then bridged with that check forced) and released:

- bash sources the files before and after (as initscripts does): every IP-level variable
  has the same value in ``ifcfg-br0`` and is gone from the port, every other one keeps its
  value on the port; route/rule files moved to the bridge's name;
- Augeas' Shellvars lens parses every file kvmnet wrote when it parsed the original;
- after release every file in network-scripts is byte-identical to the original.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvmnet.errors import InvalidInput, KvmnetError, PreflightRefused
from kvmnet.hostnet.backends.ifcfg import SCRIPTS_DIR, IfcfgBackend
from kvmnet.hostnet.backends.ifcfgfiles import COMPANION_KINDS, retarget
from kvmnet.hostnet.backends.ifcfgkeys import classify, is_8021x, name_matches
from kvmnet.hostnet.backends.shellvars import ShellVars
from kvmnet.hostnet.model.plan import Plan, RemoveFile, WriteFile
from kvmnet.hostnet.model.request import BridgeRequest, HostState
from kvmnet.hostnet.model.state import LinkState
from kvmnet.hostnet.runners.runner import LocalRunner
from tests.conftest import in_ci
from tests.lab.golden import require_tool

REPO = Path(__file__).resolve().parents[2]
FALLBACK_MAC = "52:54:00:12:34:56"
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# Profiles that are not an Ethernet NIC of their own: bridging them is another question.
_NOT_WIRED_KEYS = ("ESSID", "BONDING_OPTS", "BONDING_MASTER", "TEAM_CONFIG", "VLAN", "PHYSDEV")


def fetch_corpus() -> tuple[Path | None, str]:
    """The corpus folder (fetched or cached), or None and why not."""
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fetch-corpora.py"), "ifcfg"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None, done.stderr.strip() or f"exit status {done.returncode}"
    return Path(done.stdout.strip().splitlines()[-1]), ""


@dataclass(frozen=True)
class Case:
    """One profile: its file, the names it gets in network-scripts, its NIC and MAC."""

    path: Path
    name: str  # ifcfg-X as written into network-scripts
    nic: str
    mac: str
    refusal: str | None  # the check that refuses it, if any

    @property
    def companions(self) -> list[Path]:
        suffix = self.path.name[len("ifcfg-") :]
        names = [f"{kind}-{suffix}" for kind in COMPANION_KINDS]
        return [self.path.parent / n for n in names if (self.path.parent / n).is_file()]


def has_commands(doc: ShellVars) -> bool:
    """Lines bash would run as commands (refused by kvmnet with InvalidInput)."""
    return any(
        ln.key is None and ln.text.strip() and not ln.text.strip().startswith("#")
        for ln in doc.lines
    )


def expected_refusal(doc: ShellVars) -> str | None:
    if has_commands(doc):
        return "commands"
    if (doc.get("NETBOOT") or "").lower() == "yes" or (doc.get("BOOTPROTO") or "") == "ibft":
        return "netboot"
    if any(classify(k) == "membership" for k, _ in doc):
        return "enslaved"
    if any(is_8021x(k) for k, _ in doc):
        return "802.1x"
    return None


def wired_case(path: Path) -> Case | str:
    """A Case for a wired-NIC profile, else why the file is not one."""
    name = re.sub(r"\.c?expected$", "", path.name)
    if ":" in name:
        return "alias file"
    try:
        doc = ShellVars.parse(path.read_text())
    except (KvmnetError, UnicodeDecodeError) as exc:
        return f"unparsable: {exc}"
    refusal = expected_refusal(doc)
    kind = (doc.get("TYPE") or "Ethernet").strip()
    if kind != "Ethernet" or any(k in doc for k in _NOT_WIRED_KEYS):
        return f"not a wired NIC (TYPE={kind})"
    if doc.get("DEVICETYPE") and refusal is None:
        return f"DEVICETYPE={doc.get('DEVICETYPE')}"
    mac = (doc.get("HWADDR") or "").lower()
    mac = mac if _MAC.match(mac) else FALLBACK_MAC
    device, suffix = doc.get("DEVICE"), name[len("ifcfg-") :]
    if device and _IFNAME.match(device):
        nic = device
    elif device is None and _IFNAME.match(suffix):
        nic = suffix
    elif device is None and mac != FALLBACK_MAC:
        nic = "eth9"  # found by HWADDR alone
    elif device is None and doc.get("MATCH_INTERFACE_NAME"):
        patterns = doc.get("MATCH_INTERFACE_NAME") or ""
        fits = [n for n in ("eth0", "ens3", "enp1s0", "eth1", "em1") if name_matches(patterns, n)]
        if not fits:
            return f"MATCH_INTERFACE_NAME={patterns} fits none of the names tried"
        nic = fits[0]
    elif device is None:
        nic = "eth9"  # bound to no device: NetworkManager activates it on any Ethernet NIC
    else:
        return f"DEVICE={device} is no interface name"
    return Case(path, name, nic, mac, refusal)


def collect() -> tuple[list[Case], list[tuple[str, str]], str]:
    folder, why = fetch_corpus()
    if folder is None:
        return [], [], why
    cases: list[Case] = []
    excluded: list[tuple[str, str]] = []
    for path in sorted(folder.glob("*/files/ifcfg-*")):
        found = wired_case(path)
        if isinstance(found, Case):
            cases.append(found)
        else:
            excluded.append((path.name, found))
    return cases, excluded, ""


CASES, EXCLUDED, FETCH_ERROR = collect()
# Without a corpus one placeholder case still runs, so the fixture below fails it under CI
# (an empty parameter list would be skipped by pytest itself).
PARAMS: list[object] = [*CASES] or [pytest.param(None, id="corpus-missing")]


@pytest.fixture(autouse=True)
def _corpus_fetched() -> None:
    if FETCH_ERROR:
        message = f"ifcfg corpus not fetched: {FETCH_ERROR}"
        if in_ci():
            pytest.fail(f"{message} (CI=true: the corpus tests may not skip)")
        pytest.skip(message)


# -- real tools ----------------------------------------------------------------------------
def bash_vars(path: Path) -> dict[str, str]:
    """The variables bash ends with after sourcing ``path`` (as initscripts does)."""
    script = 'set -a; . "$1" >/dev/null 2>&1; exec env -0'
    out = subprocess.run(
        ["/bin/bash", "--noprofile", "--norc", "-c", script, "bash", str(path)],
        capture_output=True,
        env={},
        cwd=path.parent,
        timeout=10,
        check=True,
    ).stdout
    found = dict(
        item.decode(errors="surrogateescape").partition("=")[::2]
        for item in out.split(b"\0")
        if item
    )
    for noise in ("PWD", "SHLVL", "_", "OLDPWD"):
        found.pop(noise, None)
    return found


def augeas_errors(root: Path) -> set[str]:
    """The network-scripts files Augeas' Shellvars lens fails to parse."""
    script = (
        "set /augeas/load/Shellvars/lens Shellvars.lns\n"
        f"set /augeas/load/Shellvars/incl {SCRIPTS_DIR}/ifcfg-*\n"
        "load\n"
        "match /augeas/files//error\n"
    )
    out = subprocess.run(
        [require_tool("augtool"), "--noautoload", f"--root={root}", "-A"],
        input=script,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m.group(1) for m in re.finditer(r"/augeas/files.*/([^/\s]+)/error", out)}


# -- driving the backend -------------------------------------------------------------------
def tree(scripts: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(scripts.iterdir())}


def apply_files(plan: Plan) -> None:
    """The plan's file steps, done as plan.apply() would (its commands need a live host)."""
    for step in plan.steps:
        if isinstance(step, WriteFile):
            Path(step.path).parent.mkdir(parents=True, exist_ok=True)
            Path(step.path).write_text(step.content, errors="surrogateescape")
        elif isinstance(step, RemoveFile):
            Path(step.path).unlink()


def setup_root(tmp_path: Path, case: Case) -> Path:
    scripts = tmp_path / "root" / SCRIPTS_DIR.lstrip("/")
    scripts.mkdir(parents=True)
    shutil.copyfile(case.path, scripts / case.name)
    for companion in case.companions:
        shutil.copyfile(companion, scripts / companion.name)
    return scripts


def plan(case: Case, scripts: Path, action: str, force: frozenset[str] = frozenset()) -> Plan:
    root = str(scripts.parents[2])
    backend = IfcfgBackend(root=root, runner=LocalRunner(), network_manager=True)
    nic = LinkState(case.nic, case.mac, master="br0" if action == "release" else None)
    bridge = LinkState("br0", case.mac, kind="bridge") if action == "release" else None
    current = HostState(nic=nic, bridge=bridge, files=LocalRunner())
    request = BridgeRequest(case.nic, "br0", force=force)
    if action == "release":
        return backend.plan_release(request, current)
    return backend.plan_enslave(request, current)


def ids(case: Case) -> str:
    return f"{case.path.parent.parent.name}/{case.path.name}"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("case", PARAMS, ids=ids)
def test_profile_bridged_and_released(tmp_path: Path, case: Case) -> None:
    scripts = setup_root(tmp_path, case)
    original = tree(scripts)
    before_vars = bash_vars(scripts / case.name)
    before_errors = augeas_errors(scripts.parents[2])
    force: frozenset[str] = frozenset()
    if case.refusal == "commands":
        with pytest.raises(InvalidInput, match=r"line \d+ .* neither an assignment nor a comment"):
            plan(case, scripts, "enslave")
        assert tree(scripts) == original
        return
    if case.refusal is not None:
        with pytest.raises(PreflightRefused) as refused:
            plan(case, scripts, "enslave")
        assert refused.value.check == case.refusal
        assert f"force=('{case.refusal}',)" in str(refused.value)
        assert tree(scripts) == original  # refused before anything changed
        force = frozenset({"netboot", "enslaved", "802.1x"})

    bridged = plan(case, scripts, "enslave", force)
    unknown = sorted({k for k in before_vars if classify(k) == "unknown"})
    if unknown:
        assert any(all(k in w for k in unknown) for w in bridged.warnings), bridged.warnings
    apply_files(bridged)

    port, bridge = bash_vars(scripts / case.name), bash_vars(scripts / "ifcfg-br0")
    assert port.get("BRIDGE") == "br0" and bridge.get("TYPE") == "Bridge"
    assert bridge.get("ONBOOT") == (before_vars.get("ONBOOT") or "yes")
    for key, value in before_vars.items():
        where = classify(key)
        if where == "ip":
            assert bridge.get(key) == value, f"{key} not carried to ifcfg-br0"
            assert key not in port, f"{key} left on the port"
        elif where != "membership":
            assert port.get(key) == value, f"{key} changed on the port"
    for key in bridge:
        assert classify(key) != "ip" or key in before_vars, f"{key} invented on ifcfg-br0"
    for companion in case.companions:
        kind = companion.name.split("-", 1)[0]
        assert not (scripts / companion.name).exists(), f"{companion.name} left behind"
        text = (scripts / f"{kind}-br0").read_text()
        assert text == retarget(companion.read_text(), case.nic, "br0")
    after_errors = augeas_errors(scripts.parents[2])
    for name in (case.name, "ifcfg-br0"):
        assert name not in after_errors or case.name in before_errors, f"Augeas: {name}"

    apply_files(plan(case, scripts, "release"))
    assert tree(scripts) == original


def test_corpus_is_large_enough() -> None:
    """At least 50 wired-NIC profiles from at least two upstream projects."""
    assert len(CASES) >= 50, EXCLUDED
    assert len({c.path.parent.parent.name for c in CASES}) == 2
    assert sum(1 for c in CASES if c.companions) >= 3  # route files travel too


def test_refusals_in_the_corpus_are_the_documented_ones() -> None:
    found = {c.refusal for c in CASES if c.refusal}
    assert found == {"netboot", "enslaved", "802.1x", "commands"}


def test_corpus_keys_are_all_classified() -> None:
    """Every key the upstream files use is in the split (no silent guess), except in
    NetworkManager's tests of unknown keys (``test-write-unknown-*``): those stay on the port
    with a warning (checked per profile)."""
    unknown = set()
    for case in CASES:
        doc = ShellVars.parse(case.path.read_text())
        if "unknown" not in case.name:
            unknown |= {k for k, _ in doc if classify(k) == "unknown"}
    assert not unknown, sorted(unknown)


def test_unparsable_profiles_are_refused_naming_the_line(tmp_path: Path) -> None:
    """A file whose quoting is broken (NetworkManager's corner-case tests) is refused with
    the line to fix, before anything is written; bridging never guesses at it."""
    broken = [name for name, why in EXCLUDED if why.startswith("unparsable")]
    assert broken, "the corpus has a file with broken quoting"
    folder = next(iter(CASES)).path.parent
    for name in broken:
        scripts = tmp_path / name / "root" / SCRIPTS_DIR.lstrip("/")
        scripts.mkdir(parents=True)
        shutil.copyfile(folder / name, scripts / name)
        device = re.search(r"^DEVICE=(\S+)$", (folder / name).read_text(), re.M)
        case = Case(scripts / name, name, device[1] if device else "eth0", FALLBACK_MAC, None)
        with pytest.raises(InvalidInput, match=r"line \d+: .*fix the quoting"):
            plan(case, scripts, "enslave")
        assert [p.name for p in scripts.iterdir()] == [name]

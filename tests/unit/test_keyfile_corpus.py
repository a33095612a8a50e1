"""nmcli keyfiles against real NetworkManager profiles: NetworkManager's own keyfile test
profiles (src/core/settings/plugins/keyfile/tests/keyfiles) and the keyfiles netplan's test
suite expects its NetworkManager renderer to write (tests/generator/test_*.py), both from
Debian's source packages, fetched by scripts/corpora/networkd_keyfile.py (sources:
tests/data/corpora/keyfile/SOURCES.md).

Each wired profile is put in an image's keyfile folder and its NIC bridged with
``root`` the image: the plan runs no command (only the real ``nmcli --offline`` checks the
files) and is applied through the shared mechanism on a fake host. Then the REAL
``nmcli --offline`` normalises the original, the port's and the bridge's profile, and every
property of the original is found, with the same value, on the side nm-settings-nmcli(5)
says; release restores every file byte for byte. A refusal must name its reason.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections import Counter
from dataclasses import dataclass

import pytest

from kvmnet.errors import PreflightRefused
from kvmnet.hostnet.backends.keyfile import Keyfile, mac_value, split_list
from kvmnet.hostnet.backends.nmcli import CONNECTION_SPLIT, KEYFILE_BRIDGE_SECTIONS, NmcliBackend
from kvmnet.hostnet.fake import fake_host
from kvmnet.hostnet.model.plan import WriteFile
from kvmnet.hostnet.model.request import BridgeRequest, HostState
from kvmnet.hostnet.model.state import LinkState
from kvmnet.hostnet.runners.runner import RecordingRunner
from tests.corpus_networkd_keyfile import corpus
from tests.lab.golden import require_tool

DIR = "/image/etc/NetworkManager/system-connections"
MAC = "52:54:00:12:34:56"


@dataclass(frozen=True)
class Case:
    name: str  # file name in the keyfile folder
    text: str
    nic: str
    mac: str


def _concrete(glob: str) -> str:
    glob = glob.lstrip("|&")
    return re.sub(r"\[([^\]])[^\]]*\]", r"\1", glob).replace("*", "0").replace("?", "0")


def _case(name: str, text: str) -> Case | None:
    kf = Keyfile.parse(text)
    kind = kf.get("connection", "type")
    wired = "ethernet" in kf.sections or "802-3-ethernet" in kf.sections
    if kind not in ("ethernet", "802-3-ethernet") and not (kind is None and wired):
        return None
    nic = kf.get("connection", "interface-name")
    globs = [g for g in split_list(kf.get("match", "interface-name") or "") if "!" not in g]
    nic = nic or (_concrete(globs[0]) if globs else "eth0")
    raw_mac = kf.get("ethernet", "mac-address") or kf.get("802-3-ethernet", "mac-address")
    return Case(name, text, nic, mac_value(raw_mac) if raw_mac else MAC)


def cases() -> list[Case]:
    out: list[Case] = []
    nm = corpus("keyfile") / "src/core/settings/plugins/keyfile/tests/keyfiles"
    for path in sorted(nm.glob("Test_*")):
        case = _case(f"{path.name}.nmconnection", path.read_text())
        if case is not None:
            out.append(case)
    generator = corpus("netplan-keyfile") / "tests/generator"
    for path in sorted(generator.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        n = 0
        for node in ast.walk(tree):
            if not isinstance(node, ast.Dict):
                continue
            for value in node.values:
                text = value.value if isinstance(value, ast.Constant) else None
                if not isinstance(text, str) or not text.lstrip().startswith("[connection]"):
                    continue
                n += 1
                case = _case(f"{path.stem}-{n}.nmconnection", text)
                if case is not None:
                    out.append(case)
    return out


def normalised(nmcli: str, text: str) -> dict[tuple[str, str], str] | None:
    """What NetworkManager makes of a keyfile: ``nmcli --offline`` reads, normalises and
    writes it back (id and uuid set, since a profile must have them); None if it rejects
    the keyfile."""
    kf = Keyfile.parse(text)
    proc = subprocess.run(
        [nmcli, "--offline", "connection", "modify", "connection.id",
         kf.get("connection", "id") or "x", "connection.uuid",
         kf.get("connection", "uuid") or "2e6c2a5d-7a8e-4d0b-9d59-111111111111"],
        input=text, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return None
    return {
        (section, key): value
        for section, entries in Keyfile.parse(proc.stdout).sections.items()
        for key, value in entries.items()
    }


def bridge_side(section: str, key: str) -> bool | None:
    """True: IP-level; False: link-level; None: on both, or each profile has its own."""
    if section == "connection":
        where = CONNECTION_SPLIT[key]
        return None if where in ("both", "ours") else where == "bridge"
    return section in KEYFILE_BRIDGE_SECTIONS


def check_case(case: Case, nmcli: str) -> str:
    files = {f"{DIR}/{case.name}": case.text.encode()}
    host = fake_host([LinkState(case.nic, case.mac)], files=files)
    current = HostState(nic=LinkState(case.nic, case.mac), bridge=None, files=host)
    backend = NmcliBackend(root="/image", runner=host, validate=False)
    request = BridgeRequest(case.nic, "br0")
    try:
        plan = backend.plan_enslave(request, current)
    except PreflightRefused as exc:
        assert exc.check in {"already-port", "keyfile-unknown-key", "keyfile-invalid"}, exc.check
        assert str(exc).startswith(case.name), str(exc)
        if exc.check == "keyfile-invalid":  # only a profile NetworkManager rejects itself
            assert normalised(nmcli, case.text) is None, str(exc)
        return f"refused: {exc.check}"
    want = normalised(nmcli, case.text)
    if want is None:
        # One of netplan's expectations is a fragment NetworkManager itself refuses.
        return "not a valid profile for NetworkManager"
    assert plan.commands == () and not plan.checks and not plan.rollback_hints
    written = {s.path.rsplit("/", 1)[1]: s.content for s in plan.steps if isinstance(s, WriteFile)}
    port_name, br_name = f"kvmnet-br0-port-{case.nic}.nmconnection", "kvmnet-br0.nmconnection"
    assert sorted(written) == sorted([port_name, br_name])
    plan.apply(verify=False)
    assert not [c for c in host.calls if c.kind in ("run", "spawn") and c.argv[:1] != ("ip",)]
    assert host.files[f"{DIR}/{port_name}"] == written[port_name].encode()

    port = normalised(nmcli, written[port_name])
    bridge = normalised(nmcli, written[br_name])
    assert port is not None and bridge is not None, "nmcli --offline rejects kvmnet's files"
    assert port[("connection", "master")] == "br0" and bridge[("connection", "type")] == "bridge"
    problems = []
    for (section, key), value in want.items():
        side = bridge_side(section, key)
        if side is None:
            continue
        where = bridge if side else port
        if where.get((section, key)) != value:
            problems.append(
                f"[{section}] {key}={value!r}: {'bridge' if side else 'port'} has "
                f"{where.get((section, key))!r}"
            )
    assert not problems, "; ".join(problems)

    release = backend.plan_release(request, current)
    assert release.commands == ()
    release.apply(verify=False)
    image = {p: b for p, b in host.files.items() if p.startswith("/image/")}
    assert image == files, "release is not the exact inverse"
    return "bridged"


def test_networkmanager_and_netplan_keyfile_corpus() -> None:
    nmcli = require_tool("nmcli")
    all_cases = cases()
    outcomes: dict[str, str] = {}
    failures: list[str] = []
    for case in all_cases:
        try:
            outcomes[case.name] = check_case(case, nmcli)
        except AssertionError as exc:
            failures.append(f"{case.name}: {exc}")
    assert not failures, "\n".join(failures)
    counts = Counter(outcomes.values())
    assert counts["bridged"] >= 50, counts
    assert counts["not a valid profile for NetworkManager"] <= 1, counts


def test_keyfiles_only_plan_no_command() -> None:
    """keyfiles=True (no netns): files only, on a RecordingRunner nothing but the real
    validator would run (validation off here): zero commands, planned or run."""
    runner = RecordingRunner()
    current = HostState(nic=LinkState("eth0", MAC), bridge=None, files=runner)
    plan = NmcliBackend(keyfiles=True, runner=runner, validate=False).plan_enslave(
        BridgeRequest("eth0", "br0"), current
    )
    assert plan.commands == () and runner.commands == [] and not plan.rollback_hints
    assert any("only files" in w for w in plan.warnings)


def test_every_documented_connection_property_is_placed() -> None:
    """Every connection.* property nm-settings-nmcli(5) on this machine documents is placed."""
    import gzip
    from pathlib import Path

    man = Path("/usr/share/man/man5/nm-settings-nmcli.5.gz")
    if not man.exists():
        pytest.skip("nm-settings-nmcli(5) is not installed")
    text = gzip.decompress(man.read_bytes()).decode(errors="replace").replace("\\-", "-")
    block = text.split('.SS "connection setting"', 1)[1].split(".SS ", 1)[0]
    props = set(re.findall(r"^\\fB([a-z0-9-]+)\\fR$", block, re.M))
    assert len(props) > 20, props
    assert props <= set(CONNECTION_SPLIT), props - set(CONNECTION_SPLIT)

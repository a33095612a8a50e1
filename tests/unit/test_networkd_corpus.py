"""networkd against systemd's own test-network configurations (test/test-network/conf of the
systemd source package, fetched by scripts/corpora/networkd_keyfile.py; sources in
tests/data/corpora/networkd/SOURCES.md).

Each .network file (with its drop-ins) is taken as the configuration of the link it names;
kvmnet bridges that link with ``root`` an image folder: the plan runs no command, and is
applied through the shared mechanism on a fake host whose files are the corpus. Then every
setting of the original is found once, unchanged, in the port's or the bridge's file, on the
side systemd.network(5) says; release restores every file byte for byte. A refusal must
name its reason. networkd itself parses the results in
tests/integration/test_networkd_corpus.py.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvmnet.errors import PreflightRefused
from kvmnet.hostnet.backends.networkd import (
    BRIDGE_SECTIONS,
    NETWORK_SPLIT,
    PORT_SECTIONS,
    NetworkdBackend,
)
from kvmnet.hostnet.backends.unitfile import UnitFile
from kvmnet.hostnet.fake import fake_host
from kvmnet.hostnet.model.plan import Plan, WriteFile
from kvmnet.hostnet.model.request import BridgeRequest, HostState
from kvmnet.hostnet.model.state import LinkState
from kvmnet.hostnet.runners.runner import RecordingRunner, is_read_only
from tests.conftest import in_ci
from tests.corpus_networkd_keyfile import corpus

ETC = "/etc/systemd/network"
MAC = "52:54:00:12:34:56"
# The links systemd's tests use as plain wired NICs (dummies and veths stand in for them).
WIRED = {"dummy98", "veth99", "test1", "veth-peer", "eni99np1"}
# What kvmnet itself adds (not the NIC's): the port's role, the bridge's MAC and identity.
OURS_PORT = {("Network", "Bridge", "br0"), ("Network", "LinkLocalAddressing", "no"),
             ("Network", "IPv6AcceptRA", "no")}  # fmt: skip
OURS_BRIDGE = {("Link", "MACAddress", MAC), ("DHCPv4", "ClientIdentifier", "mac")}


@dataclass(frozen=True)
class Case:
    name: str
    nic: str
    mac: str
    files: dict[str, bytes]  # absolute path in the image -> bytes


def _concrete(glob: str) -> str:
    return re.sub(r"\[([^\]])[^\]]*\]", r"\1", glob).replace("*", "0").replace("?", "0")


def cases() -> list[Case]:
    conf = corpus("networkd") / "test/test-network/conf"
    out: list[Case] = []
    for path in sorted(conf.glob("*.network")):
        doc = UnitFile.parse(path.read_text(errors="surrogateescape"))
        names = (doc.get("Match", "Name") or "").split()
        if not names or names[0].startswith("!"):
            continue
        nic = _concrete(names[0])
        if nic not in WIRED:
            continue
        macs = doc.get("Match", "MACAddress") or doc.get("Match", "PermanentMACAddress") or ""
        files = {f"{ETC}/{path.name}": path.read_bytes()}
        dropins = conf / f"{path.name}.d"
        for conf_file in sorted(dropins.glob("*.conf")) if dropins.is_dir() else ():
            files[f"{ETC}/{path.name}.d/{conf_file.name}"] = conf_file.read_bytes()
        out.append(Case(path.name, nic, macs.split()[0].lower() if macs else MAC, files))
    return out


def entries(text: str, *, skip_match: bool = True) -> Counter[tuple[str, str, str]]:
    doc = UnitFile.parse(text)
    return Counter(
        (s.name, k, v) for s in doc.sections for k, v in s.entries
        if not (skip_match and s.name == "Match")
    )  # fmt: skip


def original(case: Case) -> str:
    return "\n".join(b.decode("utf-8", "surrogateescape") for b in case.files.values())


def bridge_side(section: str, key: str) -> bool:
    if section == "Network":
        return NETWORK_SPLIT[key] == "bridge"
    if section == "Link":
        return key == "RequiredFamilyForOnline"
    return section in BRIDGE_SECTIONS


def plan_for(case: Case, host: RecordingRunner) -> Plan:
    nic = LinkState(case.nic, case.mac)
    current = HostState(nic=nic, bridge=None, files=host)
    backend = NetworkdBackend(root="/image", runner=host)
    # root "/image": the case's files are mapped there.
    return backend.plan_enslave(BridgeRequest(case.nic, "br0"), current)


def check_case(case: Case) -> str:
    """'bridged' or 'refused: REASON'; an assertion error says what was lost."""
    files = {f"/image{p}": b for p, b in case.files.items()}
    host = fake_host([LinkState(case.nic, case.mac)], files=files)
    try:
        plan = plan_for(case, host)
    except PreflightRefused as exc:
        assert exc.check in {
            "already-port",
            "networkd-unknown-key",
            "networkd-unmanaged",
            "networkd-port-conflict",
        }
        assert str(exc).startswith(case.name), str(exc)
        return f"refused: {exc.check}"
    assert plan.commands == () and not plan.checks and not plan.rollback_hints
    written = {Path(s.path).name: s.content for s in plan.steps if isinstance(s, WriteFile)}
    assert sorted(written) == sorted(
        ["10-kvmnet-br0.netdev", "10-kvmnet-br0.network", f"10-kvmnet-{case.nic}.network"]
    ), sorted(written)
    plan.apply(verify=False)
    # Through the shared mechanism: files written, and nothing but reads ran on "the machine".
    assert all(is_read_only(c.argv) for c in host.calls if c.kind == "run"), host.commands
    assert not [c for c in host.calls if c.kind == "spawn"]
    port_text = written[f"10-kvmnet-{case.nic}.network"]
    br_text = written["10-kvmnet-br0.network"]
    assert host.files[f"/image{ETC}/10-kvmnet-{case.nic}.network"] == port_text.encode()
    port, bridge = entries(port_text), entries(br_text)
    want = entries(original(case))
    lost, added = want - (port + bridge), (port + bridge) - want
    assert not lost, f"lost: {dict(lost)}"
    assert set(added) <= OURS_PORT | OURS_BRIDGE, f"added: {dict(added)}"
    for section, key, value in bridge:
        ok = bridge_side(section, key) or (section, key, value) in OURS_BRIDGE
        assert ok, f"[{section}] {key}={value} moved to the bridge"
    for section, key, value in port:
        ok = not bridge_side(section, key) or (section, key, value) in OURS_PORT
        assert ok, f"[{section}] {key}={value} stayed on the port"
    assert UnitFile.parse(port_text).get("Match", "Name") == case.nic
    assert UnitFile.parse(br_text).get("Match", "Name") == "br0"

    current = HostState(nic=LinkState(case.nic, case.mac), bridge=None, files=host)
    backend = NetworkdBackend(root="/image", runner=host)
    release = backend.plan_release(BridgeRequest(case.nic, "br0"), current)
    assert release.commands == ()
    release.apply(verify=False)
    image = {p: b for p, b in host.files.items() if p.startswith("/image/")}
    assert image == files, "release is not the exact inverse"
    return "bridged"


def test_systemd_test_network_corpus() -> None:
    all_cases = cases()
    assert len(all_cases) >= 50, f"only {len(all_cases)} wired cases in the corpus"
    outcomes: dict[str, str] = {}
    failures: list[str] = []
    for case in all_cases:
        try:
            outcomes[case.name] = check_case(case)
        except AssertionError as exc:
            failures.append(f"{case.name}: {exc}")
    assert not failures, "\n".join(failures)
    counts = Counter(outcomes.values())
    # Most of them are NICs kvmnet can bridge: refusals are the exception, each with a reason.
    assert counts["bridged"] >= 50, counts


def test_every_documented_key_is_placed() -> None:
    """Every [Network] key and section systemd.network(5) on this machine documents is
    classified: the split is derived from the reader's manual, not a list of common keys."""
    import gzip

    man = Path("/usr/share/man/man5/systemd.network.5.gz")
    if not man.exists():
        pytest.skip("systemd.network(5) is not installed")
    text = gzip.decompress(man.read_bytes()).decode(errors="replace").replace("\\-", "-")
    # Each ".SH "[NAME] SECTION OPTIONS"" chapter, with the "\\fIKey=\\fR" entries in it.
    chapters = dict(re.findall(r'^\.SH "\[([A-Z0-9-]+)\] SECTION OPTIONS"\n(.*?)(?=^\.SH )', text,
                               re.M | re.S))  # fmt: skip
    placed = {p.upper() for p in BRIDGE_SECTIONS | PORT_SECTIONS | {"Match", "Network"}}
    assert len(chapters) > 40 and set(chapters) <= placed, set(chapters) - placed
    # A key's entry: ".PP", its name(s), ".RS 4" (a key named in prose is not one).
    heads = re.findall(
        r"^\.PP\n((?:\\fI[A-Za-z0-9]+=\\fR(?:, )?)+)\n\.RS", chapters["NETWORK"], re.M
    )
    keys = {k for head in heads for k in re.findall(r"fI([A-Za-z0-9]+)=", head)}
    assert len(keys) > 40, keys
    assert keys <= set(NETWORK_SPLIT), keys - set(NETWORK_SPLIT)


def test_every_network_key_networkd_knows_is_placed() -> None:
    """The reader itself: every ``Network.KEY`` of systemd-networkd's own key table (its
    binary) is placed, except networkd.conf's [Network] keys, which share the prefix."""
    places = (Path("/lib/systemd/systemd-networkd"), Path("/usr/lib/systemd/systemd-networkd"))
    binary = next((p for p in places if p.exists()), None)
    if binary is None:
        if in_ci():
            pytest.fail("systemd-networkd missing (CI=true): scripts/install-system-deps.sh")
        pytest.skip("systemd-networkd is not installed")
    keys = set(re.findall(rb"\x00Network\.([A-Za-z0-9]+)\x00", binary.read_bytes()))
    networkd_conf = {b"ManageForeignRoutes", b"ManageForeignRoutingPolicyRules", b"RouteTable",
                     b"SpeedMeter", b"SpeedMeterIntervalSec"}  # fmt: skip
    found = {k.decode() for k in keys - networkd_conf}
    assert len(found) > 40, found
    assert found <= set(NETWORK_SPLIT), found - set(NETWORK_SPLIT)

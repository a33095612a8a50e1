"""The netplan backend against netplan's own examples and test-suite YAML (the corpus that
scripts/corpora/netplan.py fetches from Debian's netplan.io source package; sources in
tests/data/corpora/netplan/SOURCES.md).

Each case is one ethernet definition in one upstream document, installed as the host's only
netplan file (named to sort before kvmnet's ``60-kvmnet-br0.yaml`` for even cases, after it for
odd ones). It is bridged, or cleanly refused with a reason; then the real ``netplan generate
--root-dir`` renders the bridged tree, and what it rendered is compared with what it rendered
from the original: the bridge carries exactly the NIC's IP settings, the port keeps exactly its
link settings, gets ``Bridge=br0`` and no IP. Release must give back every file byte for byte.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kvmnet.errors import PreflightRefused
from kvmnet.hostnet.backends.netplan import (
    NETPLAN_DIR,
    NetplanBackend,
    netplan_generate,
    port_ip_config,
)
from kvmnet.hostnet.model.plan import Plan, RemoveFile, WriteFile
from kvmnet.hostnet.model.request import BridgeRequest, HostState
from kvmnet.hostnet.model.state import LinkState
from kvmnet.hostnet.preflight import preflight
from kvmnet.hostnet.runners.runner import LocalRunner
from tests.conftest import in_ci
from tests.lab.golden import require_tool

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "corpora" / "netplan.py"
DEFAULT_MAC = "52:54:00:c0:00:01"
#: Refusals a corpus case may end in (the check names of PreflightRefused).
REFUSALS = {
    "netplan-passthrough",
    "loopback",
    "802.1x",
    "sriov-vf",
    "infiniband",
    "vlan-parent",
    "enslaved",
    "netplan-match",
}


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kvmnet_corpus_netplan", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _index() -> dict[str, Any] | None:
    path = Path(_script().default_cache()) / "index.json"
    return json.loads(path.read_text()) if path.exists() else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        index = _index()
        cases = index["cases"] if index else [None]
        ids = [f"{i:03d}-{c['origin']}:{c['id']}" if c else "missing" for i, c in enumerate(cases)]
        metafunc.parametrize("case", list(enumerate(cases)), ids=ids)


def _corpus_missing() -> None:
    message = f"netplan corpus not fetched: run {SCRIPT.relative_to(REPO)} (make test does)"
    if in_ci():
        pytest.fail(message + " (CI=true: the corpus may not be skipped)")
    pytest.skip(message)


class HostFacts(LocalRunner):
    """This machine, plus the /sys facts of a NIC the corpus case describes (its driver)."""

    def __init__(self, uevents: dict[str, bytes]) -> None:
        super().__init__()
        self.uevents = uevents

    def read_file(self, path: str) -> bytes | None:
        return self.uevents[path] if path in self.uevents else super().read_file(path)


def _example(pattern: str) -> str:
    """A name that the glob ``pattern`` matches (``enp1s16f[2-3]`` -> ``enp1s16f2``)."""
    name = re.sub(r"\[!?([^]])[^]]*\]", r"\1", pattern).replace("*", "0").replace("?", "0")
    assert fnmatch.fnmatchcase(name, pattern), (name, pattern)
    return name


def nic_of(stanza: dict[str, Any], netplan_id: str) -> tuple[LinkState, dict[str, bytes]]:
    """The kernel's view of the NIC a stanza defines, and its /sys uevent (driver)."""
    match = stanza.get("match") if isinstance(stanza.get("match"), dict) else None
    if stanza.get("set-name"):
        name = str(stanza["set-name"])
    elif match is None:
        name = netplan_id
    elif "name" in match:
        name = _example(str(match["name"]))
    else:
        name = "corpus0"
    mac = str(match.get("macaddress", DEFAULT_MAC)) if match else DEFAULT_MAC
    uevents = {}
    if match and "driver" in match:
        drivers = match["driver"] if isinstance(match["driver"], list) else [match["driver"]]
        uevents[f"/sys/class/net/{name}/device/uevent"] = (
            f"DRIVER={_example(str(drivers[0]))}\n".encode()
        )
    return LinkState(name, mac.lower()), uevents


def apply_files(plan: Plan) -> None:
    runner = LocalRunner()
    for step in plan.steps:
        if isinstance(step, WriteFile):
            runner.write_file(step.path, step.content.encode(), mode=step.mode)
        elif isinstance(step, RemoveFile):
            runner.remove_file(step.path)


def tree(root: Path) -> dict[str, bytes]:
    folder = root / NETPLAN_DIR.lstrip("/")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def render(root: Path) -> dict[str, str]:
    files = {p.name: p.read_text() for p in (root / NETPLAN_DIR.lstrip("/")).iterdir()}
    return netplan_generate(LocalRunner(), files)


def sections(text: str) -> Iterator[tuple[str, str]]:
    """(section, "Key=Value") of an INI-style file, repeated sections numbered apart."""
    section, seen = "", {name: 0 for name in _REPEATED}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            if section in seen:
                seen[section] += 1
                section = f"{section}#{seen[section]}"
        elif line and not line.startswith("#"):
            yield section, line


_REPEATED = {"Address", "Route", "RoutingPolicyRule"}
# networkd: what netplan writes for any port or any bridge whatever the NIC said.
_ND_PORT_ONLY = {"Bridge=br0", "LinkLocalAddressing=no", "IPv6AcceptRA=no"}
# networkd: [Network] keys that configure the link (emit-lldp stays on the port).
_ND_LINK_NETWORK = ("EmitLLDP=",)
_ND_BRIDGE_ONLY = {"ConfigureWithoutCarrier=yes"}
_ND_LINK_SECTIONS = {"Match", "Link"}
# NetworkManager: the keys that name the connection or tie a port to its bridge.
_NM_IDENTITY = {"id", "uuid", "type", "interface-name", "master", "slave-type"}


def compare_networkd(
    before: dict[str, str], after: dict[str, str], netplan_id: str, optional: bool
) -> list[str]:
    """Differences between the NIC's rendered .network before and the port's + bridge's after."""
    name = f"systemd/network/10-netplan-{netplan_id}.network"
    nic = set(sections(before.get(name, "")))
    port = set(sections(after.get(name, "")))
    bridge = set(sections(after.get("systemd/network/10-netplan-br0.network", "")))
    link = {p for p in nic if p[0] in _ND_LINK_SECTIONS or p[1].startswith(_ND_LINK_NETWORK)}
    ip = {p for p in nic if p not in link and p[1] not in _ND_BRIDGE_ONLY}
    if optional:  # copied to the bridge
        ip |= {p for p in nic if p == ("Link", "RequiredForOnline=no")}
    problems = []
    if {p for p in port if p[0] in _ND_LINK_SECTIONS or p[1].startswith(_ND_LINK_NETWORK)} != link:
        problems.append(f"port's link settings {sorted(port)} differ from the NIC's {sorted(link)}")
    extra_port = {p for p in port - link if p[1] not in _ND_PORT_ONLY and p[0] != "Network"}
    extra_port |= {p for p in port - link if p[0] == "Network" and p[1] not in _ND_PORT_ONLY}
    if extra_port:
        problems.append(f"port keeps {sorted(extra_port)}")
    if ("Network", "Bridge=br0") not in port:
        problems.append("port lacks Bridge=br0")
    # The bridge's [Link]: kvmnet's MACAddress, and RequiredForOnline copied from an optional NIC.
    ip_bridge = {
        p
        for p in bridge
        if p[0] != "Match" and p[1] not in _ND_BRIDGE_ONLY and not p[1].startswith("MACAddress=")
    }
    # A bridge the file already defined keeps its own settings next to the NIC's.
    own = set(sections(before.get("systemd/network/10-netplan-br0.network", "")))
    ip_nic = {p for p in ip | own if p[0] != "Match" and p[1] != "LinkLocalAddressing=ipv6"}
    ip_nic -= {p for p in ip_nic if p[1] in _ND_BRIDGE_ONLY}
    ip_bridge = {p for p in ip_bridge if p[1] != "LinkLocalAddressing=ipv6"}
    if ip_bridge != ip_nic:
        problems.append(
            f"bridge's IP settings {sorted(ip_bridge)} differ from the NIC's {sorted(ip_nic)}"
        )
    for rendered in (before, after):
        rendered.pop(name, None)
    return problems


def compare_keyfiles(
    before: dict[str, str], after: dict[str, str], netplan_id: str, optional: bool
) -> list[str]:
    """The same for NetworkManager keyfiles: [ipv4]/[ipv6] move, the rest stays."""
    name = f"NetworkManager/system-connections/netplan-{netplan_id}.nmconnection"
    nic = set(sections(before.get(name, "")))
    port = set(sections(after.get(name, "")))
    bridge = set(
        sections(after.get("NetworkManager/system-connections/netplan-br0.nmconnection", ""))
    )

    def ip(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return {p for p in pairs if p[0] in ("ipv4", "ipv6")}

    def rest(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return {
            p
            for p in pairs
            if p[0] not in ("ipv4", "ipv6") and p[1].split("=")[0] not in _NM_IDENTITY
        }

    problems = []
    if rest(port) != rest(nic):
        problems.append(f"port's settings {sorted(rest(port))} differ from {sorted(rest(nic))}")
    if ip(port) - {("ipv4", "method=link-local"), ("ipv6", "method=ignore")}:
        problems.append(f"port keeps {sorted(ip(port))}")
    if ("connection", "master=br0") not in port:
        problems.append("port lacks master=br0")
    if ip(bridge) != ip(nic):
        problems.append(f"bridge's {sorted(ip(bridge))} differ from the NIC's {sorted(ip(nic))}")
    return problems


def test_corpus_case(case: tuple[int, dict[str, str] | None], tmp_path: Path) -> None:
    require_tool("netplan")
    number, entry = case
    if entry is None:
        _corpus_missing()
        return
    import yaml

    cache = Path(_script().default_cache())
    text = (cache / "cases" / entry["file"]).read_text()
    stanza = yaml.safe_load(text)["network"]["ethernets"][entry["id"]] or {}
    nic, uevents = nic_of(stanza, entry["id"])
    root = tmp_path / "root"
    folder = root / NETPLAN_DIR.lstrip("/")
    folder.mkdir(parents=True)
    name = "10-corpus.yaml" if number % 2 == 0 else "90-corpus.yaml"
    (folder / name).write_text(text)
    (folder / name).chmod(0o600)
    original = tree(root)
    before = render(root)

    runner = HostFacts(uevents)
    # validate=False: the same `netplan generate` runs below on the written tree, and its
    # output is read here (test_netplan.py covers the planner's own validation).
    backend = NetplanBackend(root=str(root), runner=runner, backup_stamp="corpus", validate=False)
    request = BridgeRequest(nic.name, "br0")
    current = HostState(nic=nic, bridge=None, files=runner)
    try:
        preflight(request, current, backend=backend.name)
        plan = backend.plan_enslave(request, current)
    except PreflightRefused as refused:
        assert refused.check in REFUSALS, refused
        assert str(refused), "a refusal must say why"
        assert tree(root) == original
        return
    if not any(isinstance(s, WriteFile) for s in plan.steps):
        assert any("already makes" in w for w in plan.warnings), plan.warnings
        # Nothing changed: nothing to run, verify or roll back.
        assert plan.steps == () and plan.checks == (), plan
        return
    # Another root: files only (nothing runs or is verified on this machine).
    assert plan.commands == () and plan.checks == (), plan
    apply_files(plan)
    after = render(root)
    assert port_ip_config(after, entry["id"]) == []
    networkd = f"systemd/network/10-netplan-{entry['id']}.network" in before
    problems = (compare_networkd if networkd else compare_keyfiles)(
        before, after, entry["id"], str(stanza.get("optional")).lower() == "true"
    )
    assert problems == [], f"{entry['origin']} ({entry['id']} as {nic.name}): {problems}"

    bridged = HostState(nic=nic, bridge=LinkState("br0", nic.mac, kind="bridge"), files=runner)
    release = backend.plan_release(request, bridged)
    apply_files(release)
    assert tree(root) == original, "release must give back every file byte for byte"
    edited = [s for s in plan.steps if isinstance(s, WriteFile) and s.path.endswith(name)]
    if edited:  # the original's bytes were kept aside, under a name of this bridging's own
        assert (root / f"var/lib/kvmnet/backup/corpus-netplan-br0/{name}").read_bytes() == (
            original[name]
        )


def test_fetch_derives_deb_src_from_the_machines_own_sources(tmp_path: Path) -> None:
    """The private list mirrors the machine's deb entries as deb-src (both formats), and
    leaves out disabled stanzas; the machine's own files are only read."""
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(
        "deb [arch=amd64] http://mirror.example/debian bookworm main  # comment\n"
        "# deb http://old.example/debian buster main\n"
    )
    (etc / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: x\nComponents: main\n"
        "Enabled: no\n"
    )
    # The one helper every corpus fetcher uses (scripts/corpora/cache.py).
    spec = importlib.util.spec_from_file_location("kvmnet_corpus_cache", SCRIPT.parent / "cache.py")
    assert spec is not None and spec.loader is not None
    cache = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cache)
    one_line, deb822 = cache.deb_src_entries(etc)
    assert one_line == "deb-src [arch=amd64] http://mirror.example/debian bookworm main\n"
    assert deb822 == (
        "Types: deb-src\nUris: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    # Only Debian's archives, when asked (the networkd/keyfile corpora): mirror.example is not.
    assert cache.deb_src_entries(etc, uri_ok=cache.DEBIAN_HOSTS.search) == ("\n", "\n")
    (etc / "sources.list").write_text("deb [ arch=amd64 ] http://deb.debian.org/debian sid main\n")
    assert cache.deb_src_entries(etc, uri_ok=cache.DEBIAN_HOSTS.search)[0] == (
        "deb-src [ arch=amd64 ] http://deb.debian.org/debian sid main\n"
    )
    with pytest.raises(cache.CorpusError, match="no apt source"):
        cache.private_apt(tmp_path / "work", etc=tmp_path / "empty")

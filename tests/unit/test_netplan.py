"""netplan backend: YAML rendered for the classic scenario and checked by the REAL
``netplan generate --root-dir`` (offline, no root). ``netplan apply`` needs systemctl and
cannot run on the test machines; instead these tests read the networkd and NetworkManager
files that netplan itself generates from our YAML."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from kvmnet.errors import InvalidInput, ValidationFailed
from kvmnet.hostnet.backends.netplan import (
    NETPLAN_DIR,
    NetplanBackend,
    netplan_generate,
    port_ip_config,
)
from kvmnet.hostnet.backends.nmcli import NmcliBackend
from kvmnet.hostnet.model.plan import Plan, RunCommand, WriteFile
from kvmnet.hostnet.model.request import BridgeRequest, HostState
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.runners.runner import LocalRunner, RecordingRunner
from tests.lab.golden import golden_text, require_tool

DATA = Path(__file__).resolve().parent.parent / "data" / "backends" / "netplan"
NIC = "enp0s20f0u1"
MAC = "52:54:00:aa:00:01"
STAMP = "20261127T231500Z"
DHCP_NIC = LinkState(NIC, MAC, addresses=(IpAddress("10.231.0.185/24", 3600, 3600, True),))
STALE_BR0 = LinkState(
    "br0", "aa:bb:cc:00:00:01", kind="bridge", addresses=(IpAddress("192.168.0.1/24"),)
)
ROUTES = (IpRoute("default", NIC, "10.231.0.1"),)

CLOUD_INIT_DHCP = f"""# This file is generated from information provided by the datasource.
network:
    ethernets:
        {NIC}:
            dhcp4: true
            match:
                macaddress: '{MAC}'
            set-name: {NIC}
    version: 2
"""

STATIC = f"""network:
  version: 2
  renderer: NetworkManager
  ethernets:
    {NIC}:
      addresses: [10.231.0.5/24]
      routes: [{{to: default, via: 10.231.0.1}}]
      nameservers: {{addresses: [10.231.0.1], search: [lab.example]}}
      mtu: 9000
"""


def golden(name: str, text: str) -> None:
    path = DATA / name
    assert text == golden_text(path, text), f"differs from golden file {path}"


@pytest.fixture
def netplan() -> str:
    return require_tool("netplan")


def make_root(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "root"
    d = root / NETPLAN_DIR.lstrip("/")
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
        (d / name).chmod(0o600)
    return root


def plan_for(
    root: Path, nic: LinkState = DHCP_NIC, bridge: LinkState | None = STALE_BR0, **options: str
) -> Plan:
    current = HostState(nic=nic, bridge=bridge, routes=ROUTES, files=LocalRunner())
    # files_only=False: these tests read the commands and checks a live host would get.
    backend = NetplanBackend(
        root=str(root),
        runner=LocalRunner(),
        backup_stamp=STAMP,
        files_only=False,
        **options,  # type: ignore[arg-type]
    )
    return backend.plan_enslave(BridgeRequest(NIC, "br0"), current)


def written(plan: Plan) -> dict[str, WriteFile]:
    return {s.path: s for s in plan.steps if isinstance(s, WriteFile)}


def netplan_files(root: Path, plan: Plan) -> dict[str, str]:
    """/etc/netplan as the plan leaves it: what is there, with the plan's writes."""
    folder = root / NETPLAN_DIR.lstrip("/")
    files = {p.name: p.read_text() for p in folder.iterdir()}
    for step in plan.steps:
        if isinstance(step, WriteFile) and step.path.startswith(str(folder)):
            files[Path(step.path).name] = step.content
    return files


def test_classic_scenario_validated_and_rendered_by_netplan(tmp_path: Path, netplan: str) -> None:
    root = make_root(tmp_path, {"50-cloud-init.yaml": CLOUD_INIT_DHCP})
    plan = plan_for(root)
    ours = written(plan)[f"{root}/etc/netplan/60-kvmnet-br0.yaml"]
    assert ours.mode == 0o600
    golden("dhcp-60-kvmnet-br0.yaml", ours.content)
    doc = yaml.safe_load(ours.content)["network"]
    assert doc["bridges"]["br0"]["parameters"] == {"stp": False, "forward-delay": 0}
    assert doc["bridges"]["br0"]["macaddress"] == MAC and doc["bridges"]["br0"]["dhcp4"] is True
    # The port keeps cloud-init's match as written; no `match: name:` is added.
    assert doc["ethernets"][NIC] == {"match": {"macaddress": MAC}}
    # cloud-init's file loses only its `dhcp4: true` line; every other byte stays.
    edited = written(plan)[f"{root}/etc/netplan/50-cloud-init.yaml"]
    assert edited.content == CLOUD_INIT_DHCP.replace("            dhcp4: true\n", "")
    backup = written(plan)[f"{root}/var/lib/kvmnet/backup/{STAMP}-netplan-br0/50-cloud-init.yaml"]
    assert backup.content == CLOUD_INIT_DHCP
    assert [s.argv for s in plan.steps if isinstance(s, RunCommand)] == [
        ("ip", "addr", "del", "192.168.0.1/24", "dev", "br0"),
        ("netplan", "apply"),
    ]
    # What netplan renders from both files together: the networkd files that will run.
    out = netplan_generate(LocalRunner(), netplan_files(root, plan))
    netdev = out["systemd/network/10-netplan-br0.netdev"]
    assert "Kind=bridge" in netdev and f"MACAddress={MAC}" in netdev
    assert "STP=false" in netdev and "ForwardDelaySec=0" in netdev
    assert "DHCP=ipv4" in out["systemd/network/10-netplan-br0.network"]
    port = out[f"systemd/network/10-netplan-{NIC}.network"]
    assert "Bridge=br0" in port and "DHCP" not in port
    assert f"MACAddress={MAC}" in port  # still matched by MAC
    assert port_ip_config(out, NIC) == []


@pytest.mark.parametrize("name", ["90-dhcp.yaml", "dhcp.yaml", "00-dhcp.yaml"])
def test_nic_file_sorting_after_ours_loses_its_dhcp_too(
    tmp_path: Path, netplan: str, name: str
) -> None:
    """netplan merges `dhcp4: true` of a later file over an earlier `false`: the NIC's own
    file must lose it, whatever its name sorts as."""
    text = f"network:\n  version: 2\n  ethernets:\n    {NIC}:\n      dhcp4: true\n"
    root = make_root(tmp_path, {name: text})
    plan = plan_for(root, bridge=None)
    out = netplan_generate(LocalRunner(), netplan_files(root, plan))
    assert port_ip_config(out, NIC) == []
    assert "DHCP=ipv4" in out["systemd/network/10-netplan-br0.network"]
    # ... and kvmnet's own check reads the rendered port: the unedited file is caught.
    unedited = {**netplan_files(root, plan), name: text}
    assert port_ip_config(netplan_generate(LocalRunner(), unedited), NIC) == [
        f"10-netplan-{NIC}.network: [Network] DHCP=ipv4"
    ]


def test_static_nic_elsewhere_is_moved_and_that_file_edited(tmp_path: Path, netplan: str) -> None:
    root = make_root(tmp_path, {"01-static.yaml": STATIC})
    plan = plan_for(
        root, nic=LinkState(NIC, MAC, addresses=(IpAddress("10.231.0.5/24"),)), bridge=None
    )
    files = written(plan)
    edited = files[f"{root}/etc/netplan/01-static.yaml"].content
    assert edited == STATIC.replace(
        "      addresses: [10.231.0.5/24]\n"
        "      routes: [{to: default, via: 10.231.0.1}]\n"
        "      nameservers: {addresses: [10.231.0.1], search: [lab.example]}\n",
        "",
    )
    assert files[f"{root}/var/lib/kvmnet/backup/{STAMP}-netplan-br0/01-static.yaml"].content == (
        STATIC
    )
    ours = files[f"{root}/etc/netplan/60-kvmnet-br0.yaml"].content
    golden("static-60-kvmnet-br0.yaml", ours)
    br = yaml.safe_load(ours)["network"]
    assert br["bridges"]["br0"]["renderer"] == "NetworkManager"  # as the existing file says
    assert br["bridges"]["br0"]["addresses"] == ["10.231.0.5/24"]
    out = netplan_generate(LocalRunner(), netplan_files(root, plan))
    bridge_kf = out["NetworkManager/system-connections/netplan-br0.nmconnection"]
    assert "address1=10.231.0.5/24" in bridge_kf and "stp=false" in bridge_kf
    assert "dns=10.231.0.1;" in bridge_kf and "dns-search=lab.example;" in bridge_kf
    port_kf = out[f"NetworkManager/system-connections/netplan-{NIC}.nmconnection"]
    assert "master=br0" in port_kf and "10.231.0.5" not in port_kf
    assert "mtu=9000" in port_kf  # link-level: stays on the port
    # NetworkManager itself (nmcli --offline) accepts the keyfiles netplan rendered from ours.
    if shutil.which("nmcli"):
        checker = NmcliBackend(runner=LocalRunner())
        for name, keyfile in (("netplan-br0", bridge_kf), (f"netplan-{NIC}", port_kf)):
            checker.validate_keyfile(keyfile, name)  # raises ValidationFailed if rejected


def test_rejected_yaml_raises_with_netplans_position(tmp_path: Path, netplan: str) -> None:
    broken = f"network:\n  version: 2\n  ethernets:\n    {NIC}:\n      dhcp4: maybe\n"
    root = make_root(tmp_path, {"50-broken.yaml": broken})
    with pytest.raises(ValidationFailed) as err:
        plan_for(root)
    assert "50-broken.yaml:5:14" in str(err.value) and "maybe" in str(err.value)
    assert not (root / "etc/netplan/60-kvmnet-br0.yaml").exists()


def test_no_definition_uses_runtime_state_and_renderer_option(tmp_path: Path, netplan: str) -> None:
    plan = plan_for(make_root(tmp_path, {}), renderer="NetworkManager")
    doc = yaml.safe_load(next(iter(written(plan).values())).content)["network"]
    assert doc["bridges"]["br0"]["renderer"] == "NetworkManager"
    assert doc["ethernets"][NIC] == {"renderer": "NetworkManager"}  # port and bridge alike
    assert doc["bridges"]["br0"]["dhcp4"] is True


def test_recording_runner_sees_only_the_validator(tmp_path: Path) -> None:
    runner = RecordingRunner()
    current = HostState(nic=DHCP_NIC, bridge=None, routes=ROUTES, files=LocalRunner())
    NetplanBackend(root=str(make_root(tmp_path, {})), runner=runner).plan_enslave(
        BridgeRequest(NIC, "br0"), current
    )
    assert [c[:2] for c in runner.commands] == [("netplan", "generate")]
    assert runner.changes == [runner.calls[0]]  # a read-only query, nothing written


def test_unknown_renderer_refused() -> None:
    with pytest.raises(InvalidInput, match="renderer"):
        NetplanBackend(renderer="ifupdown")


def test_nic_defined_under_another_id_is_referenced_by_that_id(
    tmp_path: Path, netplan: str
) -> None:
    """cloud-init often names the stanza ``eth0`` and renames by MAC: the bridge must list that
    ID, and DHCP must be turned off on it, not on a second definition of the same NIC."""
    by_mac = (
        "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n"
        f"      match: {{macaddress: '{MAC}'}}\n      set-name: {NIC}\n"
    )
    root = make_root(tmp_path, {"50-cloud-init.yaml": by_mac})
    plan = plan_for(root, bridge=None)
    ours = yaml.safe_load(written(plan)[f"{root}/etc/netplan/60-kvmnet-br0.yaml"].content)
    assert ours["network"]["ethernets"] == {"eth0": {"match": {"macaddress": MAC}}}
    assert ours["network"]["bridges"]["br0"]["interfaces"] == ["eth0"]
    assert ours["network"]["bridges"]["br0"]["dhcp4"] is True
    out = netplan_generate(LocalRunner(), netplan_files(root, plan))
    port = out["systemd/network/10-netplan-eth0.network"]
    assert "Bridge=br0" in port and "DHCP" not in port
    link = out["systemd/network/10-netplan-eth0.link"]
    assert f"MACAddress={MAC}" in link and f"Name={NIC}" in link  # the rename still applies

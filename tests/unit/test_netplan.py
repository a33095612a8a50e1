"""netplan backend: YAML rendered for the classic scenario and checked by the REAL
``netplan generate --root-dir`` (offline, no root). ``netplan apply`` needs systemctl and
cannot run on the test machines; instead these tests read the networkd and NetworkManager
files that netplan itself generates from our YAML."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from kvmnet.backends.netplan import NETPLAN_DIR, NetplanBackend, netplan_generate
from kvmnet.backends.nmcli import NmcliBackend
from kvmnet.errors import InvalidInput, ValidationFailed
from kvmnet.hostnet.plan import Plan, RunCommand, WriteFile
from kvmnet.hostnet.request import BridgeRequest, HostState
from kvmnet.hostnet.runner import LocalRunner, RecordingRunner
from kvmnet.hostnet.state import IpAddress, IpRoute, LinkState
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
    backend = NetplanBackend(root=str(root), runner=LocalRunner(), backup_stamp=STAMP, **options)  # type: ignore[arg-type]
    return backend.plan_enslave(BridgeRequest(NIC, "br0"), current)


def written(plan: Plan) -> dict[str, WriteFile]:
    return {s.path: s for s in plan.steps if isinstance(s, WriteFile)}


def test_classic_scenario_validated_and_rendered_by_netplan(tmp_path: Path, netplan: str) -> None:
    root = make_root(tmp_path, {"50-cloud-init.yaml": CLOUD_INIT_DHCP})
    plan = plan_for(root)
    ours = written(plan)[f"{root}/etc/netplan/60-kvmnet-br0.yaml"]
    assert ours.mode == 0o600
    golden("dhcp-60-kvmnet-br0.yaml", ours.content)
    doc = yaml.safe_load(ours.content)["network"]
    assert doc["bridges"]["br0"]["parameters"] == {"stp": False, "forward-delay": 0}
    assert doc["bridges"]["br0"]["macaddress"] == MAC and doc["bridges"]["br0"]["dhcp4"] is True
    assert doc["ethernets"][NIC] == {"dhcp4": False, "dhcp6": False}
    assert len(written(plan)) == 1  # the cloud-init file is only overridden, not edited
    assert [s.argv for s in plan.steps if isinstance(s, RunCommand)] == [
        ("ip", "addr", "del", "192.168.0.1/24", "dev", "br0"),
        ("netplan", "apply"),
    ]
    # What netplan renders from both files together: the networkd files that will run.
    out = netplan_generate(
        LocalRunner(), {"50-cloud-init.yaml": CLOUD_INIT_DHCP, "60-kvmnet-br0.yaml": ours.content}
    )
    netdev = out["systemd/network/10-netplan-br0.netdev"]
    assert "Kind=bridge" in netdev and f"MACAddress={MAC}" in netdev
    assert "STP=false" in netdev and "ForwardDelaySec=0" in netdev
    assert "DHCP=ipv4" in out["systemd/network/10-netplan-br0.network"]
    port = out[f"systemd/network/10-netplan-{NIC}.network"]
    assert "Bridge=br0" in port and "DHCP" not in port


def test_static_nic_elsewhere_is_moved_and_that_file_edited(tmp_path: Path, netplan: str) -> None:
    root = make_root(tmp_path, {"01-static.yaml": STATIC})
    plan = plan_for(
        root, nic=LinkState(NIC, MAC, addresses=(IpAddress("10.231.0.5/24"),)), bridge=None
    )
    files = written(plan)
    edited = yaml.safe_load(files[f"{root}/etc/netplan/01-static.yaml"].content)
    assert edited["network"]["ethernets"][NIC] == {"mtu": 9000, "dhcp4": False, "dhcp6": False}
    assert files[f"{root}/var/lib/kvmnet/backup/{STAMP}/01-static.yaml"].content == STATIC
    ours = files[f"{root}/etc/netplan/60-kvmnet-br0.yaml"].content
    golden("static-60-kvmnet-br0.yaml", ours)
    br = yaml.safe_load(ours)["network"]
    assert br["renderer"] == "NetworkManager"  # as the existing file says
    assert br["bridges"]["br0"]["addresses"] == ["10.231.0.5/24"]
    assert any("comments are lost" in w for w in plan.warnings)
    out = netplan_generate(
        LocalRunner(),
        {
            "01-static.yaml": files[f"{root}/etc/netplan/01-static.yaml"].content,
            "60-kvmnet-br0.yaml": ours,
        },
    )
    bridge_kf = out["NetworkManager/system-connections/netplan-br0.nmconnection"]
    assert "address1=10.231.0.5/24" in bridge_kf and "stp=false" in bridge_kf
    port_kf = out[f"NetworkManager/system-connections/netplan-{NIC}.nmconnection"]
    assert "master=br0" in port_kf and "10.231.0.5" not in port_kf
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
    assert doc["renderer"] == "NetworkManager" and doc["bridges"]["br0"]["dhcp4"] is True


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


def test_release_removes_our_file(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"60-kvmnet-br0.yaml": "network: {version: 2}\n"})
    current = HostState(nic=DHCP_NIC, bridge=STALE_BR0, files=LocalRunner())
    plan = NetplanBackend(root=str(root), runner=RecordingRunner()).plan_release(
        BridgeRequest(NIC, "br0"), current
    )
    assert plan.files == (f"{root}/etc/netplan/60-kvmnet-br0.yaml",)
    assert plan.commands == (("netplan", "apply"),)


def test_nic_defined_under_another_id_is_referenced_by_that_id(
    tmp_path: Path, netplan: str
) -> None:
    """cloud-init often names the stanza ``eth0`` and renames by MAC: the bridge must list that
    ID, and DHCP must be turned off on it, not on a second definition of the same NIC."""
    by_mac = (
        "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n"
        f"      match: {{macaddress: '{MAC}'}}\n      set-name: {NIC}\n"
    )
    plan = plan_for(make_root(tmp_path, {"50-cloud-init.yaml": by_mac}), bridge=None)
    ours = yaml.safe_load(next(iter(written(plan).values())).content)["network"]
    assert ours["ethernets"] == {"eth0": {"dhcp4": False, "dhcp6": False}}
    assert ours["bridges"]["br0"]["interfaces"] == ["eth0"]
    assert ours["bridges"]["br0"]["dhcp4"] is True
    out = netplan_generate(
        LocalRunner(),
        {"50-cloud-init.yaml": by_mac, "60-kvmnet-br0.yaml": yaml.safe_dump({"network": ours})},
    )
    port = out["systemd/network/10-netplan-eth0.network"]
    assert "Bridge=br0" in port and "DHCP" not in port

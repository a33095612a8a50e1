"""netplan backend: match rules kept, refusals, and release as the exact inverse (files
byte-identical), each checked with the real ``netplan generate`` where it renders."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kvmnet.errors import PreflightRefused, ValidationFailed
from kvmnet.hostnet.backends.netplan import (
    NETPLAN_DIR,
    NetplanBackend,
    netplan_generate,
    port_ip_config,
)
from kvmnet.hostnet.model.plan import Plan, RemoveFile, RunCommand, StopProcess, WriteFile
from kvmnet.hostnet.model.request import BridgeRequest, DhcpClient, HostState
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.preflight import preflight
from kvmnet.hostnet.runners.runner import LocalRunner, RecordingRunner
from tests.lab.golden import require_tool

NIC, MAC = "enp1s16f2", "52:54:00:12:34:56"
STAMP = "20261202T000000Z"
DATA = Path(__file__).resolve().parent.parent / "data" / "backends" / "netplan"

# Comments, odd spacing, an unquoted MAC that YAML 1.1 reads as a sexagesimal integer: a
# round trip through a YAML loader would change all three.
STATIC = f"""# static LAN port, keep this comment
network:
  version: 2
  ethernets:
    lan:
      match:
        macaddress: {MAC}   # the onboard port
      set-name: {NIC}
      mtu: 9000
      wakeonlan: true
      addresses:
        - 10.231.0.5/24   # fixed
      routes:
        - to: default
          via: 10.231.0.1
      nameservers:
          addresses: [10.231.0.1]
      dhcp6: false
  vlans: {{}}
"""


@pytest.fixture(autouse=True)
def _netplan() -> None:
    require_tool("netplan")


def make_root(tmp_path: Path, files: dict[str, str], folder: str = NETPLAN_DIR) -> Path:
    root = tmp_path / "root"
    for name, text in files.items():
        path = root / folder.lstrip("/") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o600)
    (root / NETPLAN_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return root


def backend(root: Path, files_only: bool = False) -> NetplanBackend:
    # files_only=False: most tests read the commands and checks a live host would get.
    return NetplanBackend(
        root=str(root), runner=LocalRunner(), backup_stamp=STAMP, files_only=files_only
    )


def enslave(
    root: Path,
    nic: LinkState | None = None,
    bridge: LinkState | None = None,
    force: frozenset[str] = frozenset(),
) -> Plan:
    nic = nic or LinkState(NIC, MAC)
    current = HostState(nic=nic, bridge=bridge, files=LocalRunner())
    request = BridgeRequest(nic.name, "br0", force=force)
    preflight(request, current, force=force, backend="netplan")
    return backend(root).plan_enslave(request, current)


def apply_files(plan: Plan) -> None:
    runner = LocalRunner()
    for step in plan.steps:
        if isinstance(step, WriteFile):
            runner.write_file(step.path, step.content.encode(), mode=step.mode)
        elif isinstance(step, RemoveFile):
            runner.remove_file(step.path)


def release(root: Path, bridge: LinkState | None = None) -> Plan:
    nic = LinkState(NIC, MAC, master="br0")
    bridge = bridge or LinkState("br0", MAC, kind="bridge", ports=(NIC,))
    current = HostState(nic=nic, bridge=bridge, files=LocalRunner())
    return backend(root).plan_release(BridgeRequest(NIC, "br0"), current)


def etc(root: Path) -> dict[str, bytes]:
    folder = root / NETPLAN_DIR.lstrip("/")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def render(root: Path) -> dict[str, str]:
    return netplan_generate(LocalRunner(), {k: v.decode() for k, v in etc(root).items()})


def test_bridge_then_release_gives_every_byte_back(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"90-lan.yaml": STATIC})
    before = etc(root)
    plan = enslave(root)
    apply_files(plan)
    edited = (root / "etc/netplan/90-lan.yaml").read_text()
    assert "# static LAN port, keep this comment" in edited
    assert f"macaddress: {MAC}   # the onboard port" in edited  # not turned into an integer
    assert "addresses" not in edited and "nameservers" not in edited and "dhcp6" not in edited
    out = render(root)
    assert port_ip_config(out, "lan") == []
    port = out["systemd/network/10-netplan-lan.network"]
    assert "Bridge=br0" in port and "MTUBytes=9000" in port
    bridge = out["systemd/network/10-netplan-br0.network"]
    assert "Address=10.231.0.5/24" in bridge and "DNS=10.231.0.1" in bridge
    assert "Gateway=10.231.0.1" in bridge or "[Route]" in bridge
    link = out["systemd/network/10-netplan-lan.link"]
    assert f"MACAddress={MAC}" in link and f"Name={NIC}" in link and "WakeOnLan=magic" in link

    back = release(root)
    assert [s.argv for s in back.steps if isinstance(s, RunCommand)] == [("netplan", "apply")]
    apply_files(back)
    assert etc(root) == before


def test_name_glob_definition_is_recognised_not_duplicated(tmp_path: Path) -> None:
    glob = (
        "network:\n  version: 2\n  ethernets:\n    sriov-ports:\n"
        "      match:\n        name: enp1s16f[2-3]\n      dhcp4: true\n"
    )
    root = make_root(tmp_path, {"50-glob.yaml": glob})
    plan = enslave(root)
    ours = yaml.safe_load(
        next(s for s in plan.steps if isinstance(s, WriteFile) and "60-kvmnet" in s.path).content
    )["network"]
    assert ours["ethernets"] == {"sriov-ports": {"match": {"name": "enp1s16f[2-3]"}}}
    assert ours["bridges"]["br0"]["interfaces"] == ["sriov-ports"]
    apply_files(plan)
    out = render(root)
    assert not any(NIC in name for name in out), "no second definition under the NIC's name"
    port = out["systemd/network/10-netplan-sriov-ports.network"]
    assert "Name=enp1s16f[2-3]" in port and "Bridge=br0" in port and "DHCP" not in port


@pytest.mark.parametrize(
    ("stanza", "check"),
    [
        (
            "      auth: {key-management: 802.1x, method: peap, identity: a, password: b}\n",
            "802.1x",
        ),
        ("      link: enp1s16f0\n", "sriov-vf"),
    ],
)
def test_8021x_and_vf_refused_unless_forced(tmp_path: Path, stanza: str, check: str) -> None:
    text = (
        f"network:\n  version: 2\n  ethernets:\n    enp1s16f0: {{}}\n"
        f"    {NIC}:\n{stanza}      dhcp4: true\n"
    )
    root = make_root(tmp_path, {"50-nic.yaml": text})
    with pytest.raises(PreflightRefused) as refused:
        enslave(root)
    assert refused.value.check == check and f"force=('{check}',)" in str(refused.value)
    plan = enslave(root, force=frozenset({check}))
    apply_files(plan)
    assert port_ip_config(render(root), NIC) == []


def test_vlan_parent_refused(tmp_path: Path) -> None:
    text = (
        f"network:\n  version: 2\n  ethernets:\n    {NIC}: {{dhcp4: true}}\n"
        f"  vlans:\n    vlan10: {{id: 10, link: {NIC}}}\n"
    )
    with pytest.raises(PreflightRefused, match="vlan10 runs on") as refused:
        enslave(make_root(tmp_path, {"50-nic.yaml": text}))
    assert refused.value.check == "vlan-parent"


def test_infiniband_and_loopback_refused_for_good(tmp_path: Path) -> None:
    text = (
        f"network:\n  version: 2\n  ethernets:\n    {NIC}:\n"
        "      infiniband-mode: connected\n      dhcp4: true\n"
    )
    root = make_root(tmp_path, {"50-ib.yaml": text})
    with pytest.raises(PreflightRefused, match="InfiniBand") as refused:
        enslave(root, force=frozenset({"802.1x"}))
    assert refused.value.check == "infiniband"
    ib_mac = ":".join(["80"] + ["00"] * 19)
    with pytest.raises(PreflightRefused, match="only Ethernet") as kernel:
        enslave(make_root(tmp_path / "k", {}), nic=LinkState("ib0", ib_mac))
    assert kernel.value.check == "infiniband" and "force" not in str(kernel.value)
    with pytest.raises(PreflightRefused, match="loopback") as lo:
        enslave(make_root(tmp_path / "l", {}), nic=LinkState("lo", "00:00:00:00:00:00"))
    assert lo.value.check == "loopback"
    with pytest.raises(PreflightRefused, match="unknown force"):
        preflight(
            BridgeRequest("lo", "br0"),
            HostState(nic=LinkState("lo", "00:00:00:00:00:00"), bridge=None),
            force=("nonsense",),
        )


def test_lib_file_is_shadowed_and_the_shadow_removed_on_release(tmp_path: Path) -> None:
    text = f"network:\n  version: 2\n  ethernets:\n    {NIC}:\n      dhcp4: true\n"
    root = make_root(tmp_path, {"10-lib.yaml": text}, folder="/lib/netplan")
    plan = enslave(root)
    shadow = next(s for s in plan.steps if isinstance(s, WriteFile) and "10-lib" in s.path)
    assert shadow.path == f"{root}/etc/netplan/10-lib.yaml" and shadow.previous is None
    apply_files(plan)
    files = {k: v.decode() for k, v in etc(root).items()}
    files["/lib/netplan/10-lib.yaml"] = text
    assert port_ip_config(netplan_generate(LocalRunner(), files), NIC) == []
    apply_files(release(root))
    assert etc(root) == {}
    assert (root / "lib/netplan/10-lib.yaml").read_text() == text


def test_release_refuses_a_file_changed_since(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"90-lan.yaml": STATIC})
    apply_files(enslave(root))
    path = root / "etc/netplan/90-lan.yaml"
    path.write_text(path.read_text() + "# admin edit\n")
    with pytest.raises(ValidationFailed, match="changed since kvmnet edited it"):
        release(root)


def test_bridges_own_configured_address_is_not_stale(tmp_path: Path) -> None:
    text = (
        f"network:\n  version: 2\n  ethernets:\n    {NIC}: {{dhcp4: true}}\n"
        "  bridges:\n    br0:\n      interfaces: []\n      addresses: [192.168.0.1/24]\n"
    )
    root = make_root(tmp_path, {"50-br.yaml": text})
    nic = LinkState(NIC, MAC, addresses=(IpAddress("10.231.0.185/24", 3600, 3600, True),))
    live = LinkState("br0", MAC, kind="bridge", addresses=(IpAddress("192.168.0.1/24"),))
    plan = enslave(root, nic=nic, bridge=live)
    assert not [s for s in plan.steps if isinstance(s, RunCommand) and "del" in s.argv]
    assert not [c for c in plan.checks if c.value == "192.168.0.1/24"]
    assert any("already defined" in w for w in plan.warnings)
    # Its definition sets no macaddress: kvmnet's file gives br0 the NIC's, and checks it.
    assert [c.value for c in plan.checks if c.kind == "has-mac"] == [MAC]
    apply_files(plan)
    bridge = render(root)["systemd/network/10-netplan-br0.network"]
    assert "Address=192.168.0.1/24" in bridge and "DHCP=ipv4" in bridge
    back = release(root, bridge=live)
    assert not [c for c in back.checks if c.kind == "link-absent"]
    assert not [c for c in back.checks if c.value == "192.168.0.1/24"]


def test_another_root_only_writes_files(tmp_path: Path) -> None:
    """root= an image: `netplan apply` would apply THIS machine's /etc/netplan and the checks
    would read this machine's links (held-out finding A): files only, as networkd does."""
    text = f"network:\n  version: 2\n  ethernets:\n    {NIC}: {{dhcp4: true}}\n"
    root = make_root(tmp_path, {"50-cloud-init.yaml": text})
    nic = LinkState(NIC, MAC, addresses=(IpAddress("10.231.0.185/24", 3600, 3600, True),))
    stale = LinkState("br0", MAC, kind="bridge", addresses=(IpAddress("192.168.0.1/24"),))
    current = HostState(
        nic=nic,
        bridge=stale,
        routes=(IpRoute("default", NIC, "10.231.0.1"),),
        dhcp_clients=(DhcpClient(4242, ("dhclient", NIC), NIC),),
        files=LocalRunner(),
    )
    request = BridgeRequest(NIC, "br0")
    images = NetplanBackend(root=str(root), runner=LocalRunner(), backup_stamp=STAMP)
    assert images.files_only
    plan = images.plan_enslave(request, current)
    assert plan.commands == () and plan.checks == () and not plan.restore_runtime
    assert not [s for s in plan.steps if not isinstance(s, WriteFile)]
    assert f"{root}/etc/netplan/60-kvmnet-br0.yaml" in plan.files
    assert any(f"only files are written under {root}" in w for w in plan.warnings)
    # The same files a live host would get.
    live = backend(root, files_only=False).plan_enslave(request, current)
    assert [s for s in live.steps if isinstance(s, WriteFile)] == list(plan.steps)
    assert ("netplan", "apply") in live.commands and live.checks
    assert [s.pid for s in live.steps if isinstance(s, StopProcess)] == [4242]
    apply_files(plan)
    bridged = HostState(nic=nic, bridge=stale, files=LocalRunner())
    back = images.plan_release(request, bridged)
    assert back.commands == () and back.checks == () and not back.restore_runtime
    assert ("netplan", "apply") in backend(root).plan_release(request, bridged).commands
    # A lab namespace that reads root's folder, or the machine's own root, keeps them.
    assert not NetplanBackend(root=str(root), netns="lab", runner=LocalRunner()).files_only
    assert not NetplanBackend(root="/", runner=RecordingRunner()).files_only
    assert NetplanBackend(root="/", runner=RecordingRunner(), files_only=True).files_only


# cloud-init's large_v1 rendered for netplan: br0 with its own macaddress and ports eth3,
# eth4; eth5 (DHCP) defined beside it (held-out finding I).
LARGE_V1 = (DATA / "cloud-init-large_v1.yaml").read_text()


def test_joining_a_bridge_that_sets_its_mac_checks_that_mac(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"50-cloud-init.yaml": LARGE_V1})
    plan = enslave(root, nic=LinkState("eth5", "98:bb:9f:2c:e8:8a"))
    # br0 keeps its own macaddress (kvmnet's file sets none), so that is the MAC to expect:
    # the NIC's would never appear and apply would always roll back.
    ours = written(plan)[f"{root}/etc/netplan/60-kvmnet-br0.yaml"].content
    assert "macaddress" not in yaml.safe_load(ours)["network"]["bridges"]["br0"]
    assert [(c.subject, c.value) for c in plan.checks if c.kind == "has-mac"] == [
        ("br0", "bb:bb:bb:bb:bb:aa")
    ]
    assert not [c for c in plan.checks if c.value == "98:bb:9f:2c:e8:8a"]
    apply_files(plan)
    netdev = render(root)["systemd/network/10-netplan-br0.netdev"]
    assert "MACAddress=bb:bb:bb:bb:bb:aa" in netdev


def test_a_bridge_mac_netplan_picks_is_not_checked(tmp_path: Path) -> None:
    text = (
        f"network:\n  version: 2\n  ethernets:\n    {NIC}: {{dhcp4: true}}\n"
        "  bridges:\n    br0: {interfaces: [], macaddress: random}\n"
    )
    root = make_root(tmp_path, {"50-br.yaml": text})
    current = HostState(nic=LinkState(NIC, MAC), bridge=None, files=LocalRunner())
    unvalidated = NetplanBackend(
        root=str(root), runner=LocalRunner(), files_only=False, validate=False
    )
    plan = unvalidated.plan_enslave(BridgeRequest(NIC, "br0"), current)
    assert not [c for c in plan.checks if c.kind == "has-mac"]
    assert [c.kind for c in plan.checks][:2] == ["link-up", "port-of"]


@pytest.mark.parametrize("port", ["eth3", "eth4"])
def test_a_nic_the_config_already_makes_a_port_gets_an_empty_plan(
    tmp_path: Path, port: str
) -> None:
    """Nothing written, so nothing to run, verify or roll back: the checks of kvmnet's own
    change ("br0 has eth3's MAC") could never pass against the admin's br0."""
    root = make_root(tmp_path, {"50-cloud-init.yaml": LARGE_V1})
    mac = {"eth3": "66:bb:9f:2c:e8:80", "eth4": "98:bb:9f:2c:e8:80"}[port]
    plan = enslave(root, nic=LinkState(port, mac))
    assert plan.steps == () and plan.checks == () and not plan.restore_runtime
    assert any(f"already makes {port} a port of br0: nothing to write" in w for w in plan.warnings)


def written(plan: Plan) -> dict[str, WriteFile]:
    return {s.path: s for s in plan.steps if isinstance(s, WriteFile)}


class SysFacts(LocalRunner):
    """This machine's files, with /sys folders of a NIC the test describes (an upper named
    NIC.10 is a VLAN, as its uevent would say; others are macvlans)."""

    def __init__(self, dirs: dict[str, tuple[str, ...]]) -> None:
        super().__init__()
        self.dirs = dirs

    def list_dir(self, path: str) -> tuple[str, ...] | None:
        return self.dirs[path] if path in self.dirs else super().list_dir(path)

    def read_file(self, path: str) -> bytes | None:
        if path.startswith("/sys/class/net/") and path.endswith("/uevent"):
            upper = path.split("/")[4]
            return b"DEVTYPE=vlan\n" if upper.endswith(".10") else b"DEVTYPE=macvlan\n"
        return super().read_file(path)


@pytest.mark.parametrize(
    ("dirs", "check"),
    [
        ({f"/sys/class/net/{NIC}/device/physfn": ("uevent",)}, "sriov-vf"),
        ({f"/sys/class/net/{NIC}": ("address", f"upper_{NIC}.10", "uevent")}, "vlan-parent"),
    ],
)
def test_kernel_vf_and_vlan_parent_refused_unless_forced(
    dirs: dict[str, tuple[str, ...]], check: str
) -> None:
    current = HostState(nic=LinkState(NIC, MAC), bridge=None, files=SysFacts(dirs))
    request = BridgeRequest(NIC, "br0")
    with pytest.raises(PreflightRefused) as refused:
        preflight(request, current)
    assert refused.value.check == check and f"force=('{check}',)" in str(refused.value)
    preflight(request, current, force=(check,))  # overridden
    # The NIC's own bridge as an upper (bridged already) is no reason to refuse.
    mine = HostState(
        nic=LinkState(NIC, MAC),
        bridge=None,
        files=SysFacts({f"/sys/class/net/{NIC}": ("upper_br0",)}),
    )
    preflight(request, mine)
    # A macvlan on the NIC is a backend's to move (networkd does), not a VLAN parent.
    macvlan = HostState(
        nic=LinkState(NIC, MAC),
        bridge=None,
        files=SysFacts({f"/sys/class/net/{NIC}": ("upper_mv0",)}),
    )
    preflight(request, macvlan)

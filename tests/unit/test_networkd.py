"""networkd backend (pure part): files for the classic scenario, names that sort before the
NIC's current .network, the DHCP identity kept. The real networkd run is in
tests/integration/test_bridge_networkd.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kvmnet.errors import InvalidInput, InvalidName, PreflightRefused
from kvmnet.hostnet.backends.networkd import NetworkdBackend, lease_iaid, matches
from kvmnet.hostnet.backends.unitfile import UnitFile
from kvmnet.hostnet.model.plan import Plan, RemoveFile, RunCommand, StopProcess, WriteFile
from kvmnet.hostnet.model.request import BridgeRequest, DhcpClient, HostState
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.runners.runner import CommandResult, LocalRunner, RecordingRunner
from tests.lab.golden import golden_text

DATA = Path(__file__).resolve().parent.parent / "data" / "backends" / "networkd"
NIC = "enp0s20f0u1"
MAC = "52:54:00:aa:00:01"
DHCP_NIC = LinkState(NIC, MAC, addresses=(IpAddress("10.231.0.185/24", 3600, 3600, True),))
STALE_BR0 = LinkState(
    "br0", "aa:bb:cc:00:00:01", kind="bridge", addresses=(IpAddress("192.168.0.1/24"),)
)
ROUTES = (IpRoute("default", NIC, "10.231.0.1"),)
LEASE = """# This is private data. Do not parse.
ADDRESS=10.231.0.185
NETMASK=255.255.255.0
ROUTER=10.231.0.1
CLIENTID=ff5c5e1c0b00020000ab11a1b2c3d4e5f60718
"""


def golden(name: str, text: str) -> None:
    path = DATA / name
    assert text == golden_text(path, text), f"differs from golden file {path}"


def plan_for(
    tmp_path: Path,
    files: dict[str, str],
    *,
    nic: LinkState = DHCP_NIC,
    bridge: LinkState | None = STALE_BR0,
    lease: bool = False,
) -> Plan:
    root = tmp_path / "root"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    leases = tmp_path / "leases"
    leases.mkdir(exist_ok=True)
    if lease:
        (leases / "2").write_text(LEASE)
    current = HostState(nic=nic, bridge=bridge, routes=ROUTES, files=LocalRunner())
    backend = NetworkdBackend(
        root=str(root), runner=RecordingRunner(), lease_dir=str(leases), files_only=False
    )
    return backend.plan_enslave(BridgeRequest(NIC, "br0"), current)


def written(plan: Plan) -> dict[str, str]:
    return {Path(s.path).name: s.content for s in plan.steps if isinstance(s, WriteFile)}


def test_classic_scenario(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {"etc/systemd/network/20-wired.network": f"[Match]\nName={NIC}\n\n[Network]\nDHCP=ipv4\n"},
        lease=True,
    )
    files = written(plan)
    assert sorted(files) == [
        "10-kvmnet-br0.netdev",
        "10-kvmnet-br0.network",
        f"10-kvmnet-{NIC}.network",
    ]
    for name, text in files.items():
        golden(name, text)
    netdev = UnitFile.parse(files["10-kvmnet-br0.netdev"])
    assert netdev.get("NetDev", "Kind") == "bridge" and netdev.get("NetDev", "MACAddress") == MAC
    assert (netdev.get("Bridge", "STP"), netdev.get("Bridge", "ForwardDelaySec")) == ("false", "0")
    br = UnitFile.parse(files["10-kvmnet-br0.network"])
    assert br.get("Network", "DHCP") == "ipv4"
    assert br.get("DHCPv4", "IAID") == str(0x5C5E1C0B)  # the NIC's, read from its lease
    port = UnitFile.parse(files[f"10-kvmnet-{NIC}.network"])
    assert port.get("Network", "Bridge") == "br0"
    assert port.get("Network", "LinkLocalAddressing") == "no"
    assert plan.commands == (
        ("ip", "addr", "del", "192.168.0.1/24", "dev", "br0"),
        ("networkctl", "reload"),
        ("networkctl", "reconfigure", NIC),
    )
    assert not plan.warnings


def test_our_files_sort_before_an_early_existing_match(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {
            "lib/systemd/network/02-eth.network": "[Match]\nName=enp*\n[Network]\nDHCP=yes\n",
            "etc/systemd/network/01-other.network": "[Match]\nName=wl*\n[Network]\nDHCP=yes\n",
        },
    )
    names = sorted(written(plan))
    assert names[0].startswith("00-kvmnet-") and all(n < "02-eth.network" for n in names)


def test_static_settings_and_sections_move(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {
            "etc/systemd/network/50-static.network": (
                f"[Match]\nMACAddress={MAC}\n\n[Network]\nAddress=10.231.0.5/24\nGateway=10.231.0.1\n"
                "DNS=10.231.0.1\nDNS=9.9.9.9\n\n[Route]\nDestination=10.9.0.0/16\nGateway=10.231.0.254\n"
            )
        },
        nic=LinkState(NIC, MAC, addresses=(IpAddress("10.231.0.5/24"),)),
        bridge=None,
    )
    br = written(plan)["10-kvmnet-br0.network"]
    assert "Address=10.231.0.5/24\nGateway=10.231.0.1\nDNS=10.231.0.1\nDNS=9.9.9.9\n" in br
    assert "[Route]\nDestination=10.9.0.0/16\n" in br and "DHCP" not in br


def test_without_lease_asks_by_mac_and_warns(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, {})
    assert "ClientIdentifier=mac" in written(plan)["10-kvmnet-br0.network"]
    assert any("different address" in w for w in plan.warnings)


def test_match_rules() -> None:
    nic = LinkState("eth0", "52:54:00:00:00:01")
    assert matches(UnitFile.parse("[Match]\nName=eth*\n"), nic)
    assert not matches(UnitFile.parse("[Match]\nName=!eth*\n"), nic)
    assert not matches(UnitFile.parse("[Match]\nName=wl*\n"), nic)
    assert not matches(UnitFile.parse("[Match]\nMACAddress=52:54:00:00:00:02\n"), nic)
    assert matches(UnitFile.parse("[Match]\nType=ether\n"), nic)  # unknown: place ours first


def test_lease_iaid() -> None:
    assert lease_iaid("CLIENTID=01525400aa0001\n") is None  # a MAC client id has no IAID
    assert lease_iaid(LEASE) == 0x5C5E1C0B


def test_bus_address_and_names_checked() -> None:
    backend = NetworkdBackend(runner=RecordingRunner(), bus_address="unix:path=/tmp/bus")
    assert backend.networkctl("reload")[:2] == ("env", "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/bus")
    with pytest.raises(InvalidName):
        NetworkdBackend(netns="bad/ns")
    with pytest.raises(InvalidInput):
        UnitFile().add("Network").add("DNS", "1.1.1.1\n[Network]")


def test_release_removes_our_files(tmp_path: Path) -> None:
    d = tmp_path / "etc/systemd/network"
    d.mkdir(parents=True)
    for name in (
        "10-kvmnet-br0.netdev",
        "10-kvmnet-br0.network",
        f"10-kvmnet-{NIC}.network",
        "20-wired.network",
    ):
        (d / name).write_text("[Match]\n")
    current = HostState(nic=DHCP_NIC, bridge=STALE_BR0, files=LocalRunner())
    backend = NetworkdBackend(root=str(tmp_path), runner=RecordingRunner(), files_only=False)
    plan = backend.plan_release(BridgeRequest(NIC, "br0"), current)
    removed = sorted(Path(s.path).name for s in plan.steps if isinstance(s, RemoveFile))
    assert removed == ["10-kvmnet-br0.netdev", "10-kvmnet-br0.network", f"10-kvmnet-{NIC}.network"]


def test_a_dhcp_client_on_the_nic_is_stopped_first(tmp_path: Path) -> None:
    client = DhcpClient(4242, ("dhclient", "-v", NIC), NIC)
    current = HostState(nic=DHCP_NIC, bridge=None, routes=ROUTES, dhcp_clients=(client,),
                        files=LocalRunner())  # fmt: skip
    backend = NetworkdBackend(root=str(tmp_path), runner=RecordingRunner(), files_only=False)
    plan = backend.plan_enslave(BridgeRequest(NIC, "br0"), current)
    stops = [s for s in plan.steps if isinstance(s, StopProcess)]
    assert [s.pid for s in stops] == [4242]
    assert plan.commands.index(("kill", "-TERM", "4242")) < plan.commands.index(
        ("networkctl", "reload")
    )


def test_link_settings_stay_on_the_port_ip_settings_and_dropins_move(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {
            "lib/systemd/network/30-uplink.network": (
                "[Match]\nName=enp0s20f0u*\n\n[Link]\nMTUBytes=9000\nRequiredFamilyForOnline=ipv4\n"
                "[Network]\nDescription=uplink\nVLAN=vlan10\nLLDP=yes\nEmitLLDP=nearest-bridge\n"
                "DHCP=ipv4\nDomains=example.org\n"
            ),
            "etc/systemd/network/30-uplink.network.d/50-dns.conf": "[Network]\nDNS=9.9.9.9\n",
            "lib/systemd/network/30-uplink.network.d/60-rule.conf": (
                "[RoutingPolicyRule]\nTable=7\nFrom=10.0.0.0/8\n"
            ),
        },
    )
    files = written(plan)
    port = UnitFile.parse(files[f"10-kvmnet-{NIC}.network"])
    br = UnitFile.parse(files["10-kvmnet-br0.network"])
    assert port.get("Match", "Name") == NIC  # the glob reaches no other link through our file
    assert port.get("Link", "MTUBytes") == "9000" and port.get("Network", "VLAN") == "vlan10"
    assert port.get("Network", "LLDP") == "yes" and port.get("Network", "Bridge") == "br0"
    assert port.get("Network", "DHCP") is None and port.get("Network", "DNS") is None
    assert br.get("Network", "DHCP") == "ipv4" and br.get("Network", "DNS") == "9.9.9.9"
    assert br.get("Network", "Domains") == "example.org"
    assert br.get("RoutingPolicyRule", "Table") == "7"
    assert br.get("Link", "RequiredFamilyForOnline") == "ipv4"
    assert port.get("Link", "RequiredFamilyForOnline") is None
    assert "30-uplink.network, 50-dns.conf, 60-rule.conf" in str(plan)


def test_the_bridges_own_files_are_merged_not_shadowed(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {
            "etc/systemd/network/20-wired.network": f"[Match]\nName={NIC}\n[Network]\nDHCP=ipv4\n",
            "etc/systemd/network/05-br0.network": (
                "[Match]\nName=br0\n[Network]\nAddress=192.168.7.1/24\nConfigureWithoutCarrier=yes\n"
            ),
            "etc/systemd/network/05-br0.netdev": (
                "[NetDev]\nName=br0\nKind=bridge\n[Bridge]\nSTP=true\nVLANFiltering=yes\n"
            ),
        },
    )
    files = written(plan)
    assert sorted(files)[0].startswith("00-kvmnet-")  # before 05-br0.*
    br = UnitFile.parse(files["00-kvmnet-br0.network"])
    assert br.get("Network", "Address") == "192.168.7.1/24"
    assert br.get("Network", "ConfigureWithoutCarrier") == "yes"
    assert br.get("Network", "DHCP") == "ipv4"
    netdev = UnitFile.parse(files["00-kvmnet-br0.netdev"])
    assert netdev.get("Bridge", "VLANFiltering") == "yes" and netdev.get("Bridge", "STP") == "false"
    assert any("05-br0.netdev says [Bridge] STP=true" in w for w in plan.warnings)


@pytest.mark.parametrize(
    ("files", "check", "words"),
    [
        ({"20-w.network": f"[Match]\nName={NIC}\n[Network]\nBond=bond0\n"},
         "already-port", "bond0"),
        ({"20-w.network": f"[Match]\nName={NIC}\n[Link]\nUnmanaged=yes\n"},
         "networkd-unmanaged", "Unmanaged=yes"),
        ({"20-w.network": f"[Match]\nName={NIC}\n[Network]\nDHCPP=yes\n"},
         "networkd-unknown-key", "DHCPP=yes"),
        ({"20-w.network": f"[Match]\nName={NIC}\n[Frobnicate]\nX=1\n"},
         "networkd-unknown-key", "[Frobnicate]"),
        ({"20-w.network": f"[Match]\nName={NIC}\n[Network]\nDHCP=ipv4\n",
          "05-br.network": "[Match]\nName=br0\n[Network]\nDHCP=ipv6\n"},
         "networkd-conflict", "DHCP"),
        ({"20-w.network": f"[Match]\nName={NIC}\n[Network]\nDHCP=ipv4\n",
          "05-br.netdev": "[NetDev]\nName=br0\nKind=bond\n"}, "bridge-kind", "bond"),
    ],
)  # fmt: skip
def test_refusals_name_the_file_and_the_reason(
    tmp_path: Path, files: dict[str, str], check: str, words: str
) -> None:
    with pytest.raises(PreflightRefused, match=re.escape(words)) as caught:
        plan_for(tmp_path, {f"etc/systemd/network/{k}": v for k, v in files.items()})
    assert caught.value.check == check


def test_another_root_plans_no_command(tmp_path: Path) -> None:
    root = tmp_path / "image"
    (root / "etc/systemd/network").mkdir(parents=True)
    (root / "etc/systemd/network/20-w.network").write_text(
        f"[Match]\nName={NIC}\n[Network]\nDHCP=yes\n"
    )
    runner = RecordingRunner()
    client = DhcpClient(4242, ("dhclient", NIC), NIC)
    current = HostState(nic=DHCP_NIC, bridge=STALE_BR0, routes=ROUTES, dhcp_clients=(client,),
                        files=LocalRunner())  # fmt: skip
    backend = NetworkdBackend(root=str(root), runner=runner)
    request = BridgeRequest(NIC, "br0")
    plan = backend.plan_enslave(request, current)
    assert plan.commands == () and not plan.checks and not plan.rollback_hints
    assert len(plan.files) == 3 and runner.commands == []
    assert any("only files" in w for w in plan.warnings)
    assert backend.plan_release(request, current).commands == ()


def test_macvlan_moves_to_the_bridge_and_the_old_one_goes_first(tmp_path: Path) -> None:
    """The kernel refuses a bridge port that has a MACVLAN (EBUSY): the MACVLAN= line moves to
    the bridge, and the existing device is deleted before networkd recreates it there."""
    root = tmp_path / "root"
    (root / "etc/systemd/network").mkdir(parents=True)
    (root / "etc/systemd/network/20-w.network").write_text(
        f"[Match]\nName={NIC}\n[Network]\nDHCP=yes\nMACVLAN=mv0\nMACVLAN=mv1\nVLAN=v10\n"
    )
    shown = ("ip", "-j", "link", "show", "dev")
    runner = RecordingRunner(
        replies={
            (*shown, "mv0"): '[{"ifname": "mv0"}]',
            (*shown, "mv1"): CommandResult((*shown, "mv1"), 1, "", 'Device "mv1" does not exist.'),
        }
    )
    current = HostState(nic=DHCP_NIC, bridge=None, routes=ROUTES, files=LocalRunner())
    backend = NetworkdBackend(root=str(root), runner=runner, files_only=False)
    plan = backend.plan_enslave(BridgeRequest(NIC, "br0"), current)
    files = written(plan)
    br, port = files["10-kvmnet-br0.network"], files[f"10-kvmnet-{NIC}.network"]
    assert "MACVLAN=mv0\nMACVLAN=mv1\n" in br and "MACVLAN" not in port
    assert "VLAN=v10" in port
    assert ("ip", "link", "del", "mv0") in plan.commands
    assert ("ip", "link", "del", "mv1") not in plan.commands  # it does not exist
    assert plan.commands.index(("ip", "link", "del", "mv0")) < plan.commands.index(
        ("networkctl", "reload")
    )
    # Rollback: br0 (and the MACVLAN on it) goes before the NIC is reconfigured.
    hints = [s.argv for s in plan.rollback_hints if isinstance(s, RunCommand)]
    assert hints.index(("ip", "link", "del", "br0")) < hints.index(
        ("networkctl", "reconfigure", NIC)
    )


def test_macsec_on_the_nic_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PreflightRefused, match="receive hook") as caught:
        plan_for(
            tmp_path,
            {"etc/systemd/network/20-w.network": f"[Match]\nName={NIC}\n[Network]\nMACsec=ms0\n"},
        )
    assert caught.value.check == "networkd-port-conflict"


HELDOUT = DATA / "heldout"


def _image(tmp_path: Path, files: dict[str, str], links: dict[str, str]) -> Path:
    """A root folder with ``files`` (relative path -> text) and symlinks (path -> target)."""
    root = tmp_path / "image"
    root.mkdir(exist_ok=True)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for rel, target in links.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(target)
    return root


def _plan_in(root: Path, nic: LinkState, *, files_only: bool | None = None) -> Plan:
    current = HostState(nic=nic, bridge=None, files=LocalRunner())
    backend = NetworkdBackend(root=str(root), runner=RecordingRunner(), files_only=files_only)
    return backend.plan_enslave(BridgeRequest(nic.name, "br0"), current)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        # systemd.syntax(7): the backslash becomes a space, the next line is joined as it is.
        ("[N]\nDNS=192.0.2.53 \\\n    198.51.100.53\nDomains=x\n",
         [("DNS", "192.0.2.53      198.51.100.53"), ("Domains", "x")]),
        # A comment line inside a continuation is skipped; the line goes on after it.
        ("[N]\nDNS=1.1.1.1 \\\n# DNS=9.9.9.9 \\\n  ; more\n 8.8.8.8\nNTP=t\n",
         [("DNS", "1.1.1.1   8.8.8.8"), ("NTP", "t")]),
        # An escaped backslash does not continue the line.
        ("[N]\nDescription=a\\\\\nDNS=1.1.1.1\n", [("Description", "a\\\\"), ("DNS", "1.1.1.1")]),
        # An empty line ends a continuation; a backslash at the end of the file joins nothing.
        ("[N]\nDNS=1.1.1.1 \\\n\nNTP=t \\\n", [("DNS", "1.1.1.1"), ("NTP", "t")]),
        # CRLF line ends and a byte order mark, as config_parse() reads them.
        ("\ufeff[N]\r\nDNS=1.1.1.1\\\r\n2.2.2.2\r\n", [("DNS", "1.1.1.1 2.2.2.2")]),
    ],
)  # fmt: skip
def test_unit_files_are_read_as_systemd_reads_them(text: str, want: list[tuple[str, str]]) -> None:
    doc = UnitFile.parse(text)
    assert [(s.name, s.entries) for s in doc.sections] == [("N", want)]
    # What kvmnet writes back reads the same, and a continued value is written as it was.
    again = UnitFile.parse(doc.render())
    assert [(s.name, s.entries) for s in again.sections] == [("N", want)]
    if "\\\n    198" in text:
        assert "DNS=192.0.2.53 \\\n    198.51.100.53\nDomains=x\n" in doc.render()


def test_a_continued_line_moves_whole_to_the_bridge(tmp_path: Path) -> None:
    """Held-out finding C: ``DNS=192.0.2.53 \\`` + ``    198.51.100.53`` was cut: the bridge
    got ``DNS=192.0.2.53 \\`` then ``Domains=example.com``, which networkd joins into one DNS=
    value (the second server and Domains= lost)."""
    original = (HELDOUT / "line-continuation/20-wired.network").read_text()
    root = _image(tmp_path, {"etc/systemd/network/20-wired.network": original}, {})
    nic = LinkState("eno1", MAC, addresses=(IpAddress("192.0.2.10/24"),))
    files = written(_plan_in(root, nic))
    br = UnitFile.parse(files["10-kvmnet-br0.network"])
    assert (br.get("Network", "DNS") or "").split() == ["192.0.2.53", "198.51.100.53"]
    assert br.get("Network", "Domains") == "example.com"
    # Carried verbatim: the two lines as the admin wrote them, then the next setting.
    assert (
        "DNS=192.0.2.53 \\\n    198.51.100.53\nDomains=example.com\n"
        in files["10-kvmnet-br0.network"]
    )
    assert "DNS" not in files["10-kvmnet-eno1.network"]
    assert (root / "etc/systemd/network/20-wired.network").read_text() == original


def _al2023(tmp_path: Path, target: str) -> Path:
    base = HELDOUT / "al2023-ec2"
    files = {str(p.relative_to(base)): p.read_text() for p in base.rglob("*") if p.is_file()}
    return _image(tmp_path, files, {"run/systemd/network/70-ens5.network": target})


@pytest.mark.parametrize(
    "target",
    ["/usr/lib/systemd/network/80-ec2.network", "../../../usr/lib/systemd/network/80-ec2.network"],
)
def test_an_images_own_symlink_is_followed_inside_the_image(tmp_path: Path, target: str) -> None:
    """Held-out finding D: AL2023's ``70-ens5.network -> /usr/lib/systemd/network/80-ec2.network``
    (absolute, as amazon-ec2-net-utils makes it) was followed on this machine, where the target
    is missing: kvmnet skipped 70-ens5.network and its drop-ins and bridged from 80-ec2.network
    (alias address, policy rule, table-10000 routes, RouteMetric lost, no warning)."""
    root = _al2023(tmp_path, target)
    leased = IpAddress("172.31.20.15/20", 3600, 3600, True)
    nic = LinkState("ens5", "0a:1b:2c:3d:4e:5f", addresses=(leased,))
    plan = _plan_in(root, nic)
    files = written(plan)
    assert sorted(files) == [
        "10-kvmnet-br0.netdev",
        "10-kvmnet-br0.network",
        "10-kvmnet-ens5.network",
    ]
    br = UnitFile.parse(files["10-kvmnet-br0.network"])
    assert br.get("Address", "Address") == "172.31.20.99/32"
    assert br.get("RoutingPolicyRule", "Table") == "10000"
    assert br.get("DHCPv4", "RouteMetric") == "512"
    assert [s.get("Table") for s in br.sections if s.name == "Route"] == ["10000"] * 3
    port = UnitFile.parse(files["10-kvmnet-ens5.network"])
    assert port.get("Link", "MTUBytes") == "9001"
    assert port.get("Match", "Driver") == "ena ixgbevf vif"
    assert "70-ens5.network, ec2net_alias.conf, ec2net_policy_4.conf, eni.conf" in str(plan)


def test_a_symlink_never_leads_out_of_the_root(tmp_path: Path) -> None:
    """An absolute or a ``../..`` target is the image's path: a file of this machine at that
    path is never read (here it would make the NIC static 203.0.113.9)."""
    outside = tmp_path / "outside.network"
    outside.write_text(f"[Match]\nName={NIC}\n[Network]\nAddress=203.0.113.9/24\n")
    up = "../" * 12 + str(outside).lstrip("/")
    root = _image(
        tmp_path,
        {"usr/lib/systemd/network/90-dhcp.network": f"[Match]\nName={NIC}\n[Network]\nDHCP=yes\n"},
        {"etc/systemd/network/20-abs.network": str(outside),
         "etc/systemd/network/21-up.network": up},
    )  # fmt: skip
    files = written(_plan_in(root, DHCP_NIC))
    assert "203.0.113.9" not in "".join(files.values())
    assert UnitFile.parse(files["10-kvmnet-br0.network"]).get("Network", "DHCP") == "yes"


def test_masked_and_empty_files_are_skipped_as_networkd_skips_them(tmp_path: Path) -> None:
    """``80-ec2.network -> /dev/null`` in /etc masks the same name in /usr/lib (the image's
    /dev/null need not exist); an empty [Match] matches nothing ("No valid settings found in
    the [Match] section, ignoring file"); a symlink loop is skipped. networkd then uses
    99-fallback.network, so kvmnet bridges from that one."""
    nic_file = f"[Match]\nName={NIC}\n[Network]\nAddress=10.9.9.9/24\n"
    root = _image(
        tmp_path,
        {"usr/lib/systemd/network/80-ec2.network": nic_file,
         "etc/systemd/network/50-nomatch.network": "# nothing to match\n[Network]\nDHCP=ipv6\n",
         "etc/systemd/network/60-empty.network": "",
         "usr/lib/systemd/network/60-empty.network": nic_file,
         "usr/lib/systemd/network/99-fallback.network": "[Match]\nName=*\n[Network]\nDHCP=yes\n"},
        {"etc/systemd/network/80-ec2.network": "/dev/null",
         "etc/systemd/network/70-loop.network": "/etc/systemd/network/71-loop.network",
         "etc/systemd/network/71-loop.network": "70-loop.network"},
    )  # fmt: skip
    plan = _plan_in(root, DHCP_NIC)
    br = UnitFile.parse(written(plan)["10-kvmnet-br0.network"])
    assert br.get("Network", "DHCP") == "yes" and br.get("Network", "Address") is None
    assert "from 99-fallback.network" in str(plan)


def test_chase_follows_links_as_a_chroot_would(tmp_path: Path) -> None:
    from kvmnet.hostnet.backends.filebackend import Rooted

    root = _image(tmp_path, {"usr/lib/x/f": "x"},
                  {"lib": "usr/lib", "a/abs": "/lib/x", "a/up": "../../../../lib/x/f",
                   "a/loop": "loop", "a/null": "/dev/null"})  # fmt: skip
    rooted = Rooted(str(root))
    assert rooted.chase("/a/abs/f") == "/usr/lib/x/f"
    assert rooted.chase("/a/up") == "/usr/lib/x/f"
    assert rooted.chase("/a/missing/../abs") == "/usr/lib/x"
    assert rooted.chase("/a/null") == "/dev/null"
    assert rooted.chase("/a/loop") is None


def test_the_bridges_own_mac_is_kept_and_checked(tmp_path: Path) -> None:
    """Held-out minor finding: networkd replaced an existing br0.netdev's MACAddress= with the
    NIC's silently (netplan keeps it, nmcli refuses). Now it is kept, said, and verified."""
    root = _image(
        tmp_path,
        {"etc/systemd/network/20-w.network": f"[Match]\nName={NIC}\n[Network]\nDHCP=ipv4\n",
         "etc/systemd/network/05-br0.netdev":
             "[NetDev]\nName=br0\nKind=bridge\nMACAddress=02:00:00:00:00:42\n"},
        {},
    )  # fmt: skip
    plan = _plan_in(root, DHCP_NIC, files_only=False)
    files = written(plan)
    netdev = UnitFile.parse(files["00-kvmnet-br0.netdev"])
    assert netdev.get("NetDev", "MACAddress") == "02:00:00:00:00:42"
    br = UnitFile.parse(files["00-kvmnet-br0.network"])
    assert br.get("Link", "MACAddress") == "02:00:00:00:00:42"
    kept = "05-br0.netdev gives br0 the MAC 02:00:00:00:00:42: kept"
    assert any(kept in w for w in plan.warnings)
    macs = [c.value for c in plan.checks if c.kind == "has-mac"]
    assert macs == ["02:00:00:00:00:42"]


def test_a_mac_in_the_bridges_own_network_is_kept_not_refused(tmp_path: Path) -> None:
    root = _image(
        tmp_path,
        {"etc/systemd/network/20-w.network": f"[Match]\nName={NIC}\n[Network]\nDHCP=ipv4\n",
         "etc/systemd/network/05-br0.network":
             "[Match]\nName=br0\n[Link]\nMACAddress=02-00-00-00-00-43\n",
         "etc/systemd/network/05-br0.netdev": "[NetDev]\nName=br0\nKind=bridge\nMACAddress=none\n"},
        {},
    )  # fmt: skip
    plan = _plan_in(root, DHCP_NIC, files_only=False)
    files = written(plan)
    br = UnitFile.parse(files["00-kvmnet-br0.network"])
    assert br.get("Link", "MACAddress") == "02-00-00-00-00-43"  # as the admin wrote it
    netdev = UnitFile.parse(files["00-kvmnet-br0.netdev"])
    assert netdev.get("NetDev", "MACAddress") == "02:00:00:00:00:43"
    assert any("MACAddress=none" in w for w in plan.warnings)
    assert [c.value for c in plan.checks if c.kind == "has-mac"] == ["02:00:00:00:00:43"]


def test_without_a_mac_of_its_own_the_bridge_takes_the_nics(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {"etc/systemd/network/20-w.network": f"[Match]\nName={NIC}\n[Network]\nDHCP=ipv4\n",
         "etc/systemd/network/05-br0.netdev": "[NetDev]\nName=br0\nKind=bridge\n"},
    )  # fmt: skip
    netdev = UnitFile.parse(written(plan)["00-kvmnet-br0.netdev"])
    assert netdev.get("NetDev", "MACAddress") == MAC
    assert [c.value for c in plan.checks if c.kind == "has-mac"] == [MAC]
    assert not any("MACAddress" in w or "the MAC" in w for w in plan.warnings)

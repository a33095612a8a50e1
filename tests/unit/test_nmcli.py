"""nmcli backend: runtime plans from canned ``nmcli -t`` replies (RecordingRunner), keyfiles
validated by the REAL ``nmcli --offline`` (no daemon, no root)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kvmnet.errors import PreflightRefused, ValidationFailed
from kvmnet.hostnet.backends.keyfile import Keyfile, escape, split_list
from kvmnet.hostnet.backends.nmcli import (
    PROFILE_SETTINGS,
    NmcliBackend,
    match_interface_name,
    parse_terse,
    profile_uuid,
)
from kvmnet.hostnet.model.plan import Plan, RunCommand, WriteFile
from kvmnet.hostnet.model.request import BridgeRequest, HostState
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.runners.runner import CommandResult, LocalRunner, RecordingRunner
from tests.lab.golden import golden_text, require_tool

DATA = Path(__file__).resolve().parent.parent / "data" / "backends" / "nmcli"
NIC = "enp0s20f0u1"
MAC = "52:54:00:aa:00:01"
OLD = "1b3f0f5e-7a43-4b51-9c1e-6d7b0a5f2c11"
DHCP_NIC = LinkState(NIC, MAC, addresses=(IpAddress("10.231.0.185/24", 3600, 3600, True),))
STALE_BR0 = LinkState(
    "br0", "aa:bb:cc:00:00:01", kind="bridge", addresses=(IpAddress("192.168.0.1/24"),)
)
ROUTES = (IpRoute("default", NIC, "10.231.0.1"),)
ACTIVE = ("nmcli", "-t", "-f", "NAME,UUID,DEVICE", "connection", "show", "--active")
SHOW = (
    "nmcli",
    "-t",
    "-f",
    ",".join(PROFILE_SETTINGS),
    "connection",
    "show",
    "uuid",
    OLD,
)
UPLINK_KEYFILE = f"""[connection]
id=Wired connection 1
uuid={OLD}
type=ethernet
autoconnect-priority=5
interface-name={NIC}

[ethernet]

[ipv4]
address1=10.231.0.5/24,10.231.0.1
dns=10.231.0.1;
method=manual

[ipv6]
addr-gen-mode=stable-privacy
method=ignore
"""


def golden(name: str, text: str) -> None:
    path = DATA / name
    assert text == golden_text(path, text), f"differs from golden file {path}"


@pytest.fixture
def nmcli() -> str:
    return require_tool("nmcli")


def canned(settings: str) -> RecordingRunner:
    return RecordingRunner(
        replies={
            ACTIVE: f"Wired connection 1:{OLD}:{NIC}\nlo:3c0e9d4a-1c7e-4b7e-8f55-2f4c5d6e7f80:lo\n",
            SHOW: settings,
            ("nmcli", "-t", "-f", "UUID", "connection", "show"): f"{OLD}\n",
        }
    )


def test_runtime_plan_from_the_active_profile() -> None:
    runner = canned(
        "ipv4.method:auto\nipv4.addresses:\nipv4.dns:\nipv4.route-metric:-1\n"
        "ipv4.dhcp-client-id:--\nipv6.method:auto\nipv6.addr-gen-mode:default\n"
        "connection.zone:\nconnection.autoconnect-priority:5\n"
    )
    current = HostState(nic=DHCP_NIC, bridge=STALE_BR0, routes=ROUTES, files=runner)
    plan = NmcliBackend(runner=runner).plan_enslave(BridgeRequest(NIC, "br0"), current)
    br_uuid, port_uuid = profile_uuid("bridge", "br0"), profile_uuid("port", "br0", NIC)
    assert plan.commands == (
        (
            "nmcli",
            "connection",
            "add",
            "type",
            "bridge",
            "con-name",
            "br0",
            "ifname",
            "br0",
            "connection.uuid",
            br_uuid,
            "bridge.stp",
            "no",
            "bridge.forward-delay",
            "0",
            "bridge.mac-address",
            MAC,
            "ipv4.method",
            "auto",
            "ipv6.method",
            "auto",
        ),
        (
            "nmcli",
            "connection",
            "add",
            "type",
            "ethernet",
            "con-name",
            f"br0-port-{NIC}",
            "ifname",
            NIC,
            "connection.uuid",
            port_uuid,
            "connection.master",
            "br0",
            "connection.slave-type",
            "bridge",
            "connection.autoconnect-priority",
            "6",
        ),
        ("ip", "addr", "del", "192.168.0.1/24", "dev", "br0"),
        # NM would only "assume" the existing br0 and find our profile incompatible with
        # its other MAC: give it the NIC's MAC and activate our bridge profile explicitly.
        ("ip", "link", "set", "br0", "address", MAC),
        ("nmcli", "connection", "up", "uuid", br_uuid),
        ("nmcli", "connection", "up", "uuid", port_uuid),
    )
    # The old profile is never touched; rollback brings it back and deletes ours.
    assert not any(OLD in argv for argv in plan.commands)
    assert [s.argv for s in plan.rollback_hints if isinstance(s, RunCommand)] == [
        ("nmcli", "connection", "up", "uuid", OLD),
        ("nmcli", "connection", "delete", "uuid", port_uuid),
        ("nmcli", "connection", "delete", "uuid", br_uuid),
    ]
    assert plan.restore_runtime is False
    assert all(c.kind == "run" for c in runner.calls)  # planning only asked questions


def test_static_profile_settings_move_and_earlier_run_is_cleaned() -> None:
    runner = canned(
        "ipv4.method:manual\nipv4.addresses:10.231.0.5/24\n"
        "ipv4.gateway:10.231.0.1\nipv4.dns:10.231.0.1,9.9.9.9\n"
        "ipv6.method:ignore\nconnection.autoconnect-priority:0\n"
    )
    runner.replies[("nmcli", "-t", "-f", "UUID", "connection", "show")] = (  # type: ignore[index]
        f"{OLD}\n{profile_uuid('bridge', 'br0')}\n"
    )
    current = HostState(nic=DHCP_NIC, bridge=None, routes=ROUTES, files=runner)
    plan = NmcliBackend(runner=runner).plan_enslave(BridgeRequest(NIC, "br0"), current)
    assert plan.commands[0] == (
        "nmcli",
        "connection",
        "delete",
        "uuid",
        profile_uuid("bridge", "br0"),
    )
    add = plan.commands[1]
    assert add[add.index("ipv4.addresses") + 1] == "10.231.0.5/24"
    assert add[add.index("ipv4.dns") + 1] == "10.231.0.1,9.9.9.9"


def test_private_bus_goes_through_env() -> None:
    backend = NmcliBackend(runner=RecordingRunner(), bus_address="unix:path=/x")
    assert backend.nmcli("connection", "reload") == (
        "env",
        "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/x",
        "nmcli",
        "connection",
        "reload",
    )


def test_parse_terse_unescapes() -> None:
    assert parse_terse("a\\:b:c\\\\d:\n") == [["a:b", "c\\d", ""]]


def test_stp_on_warns() -> None:
    runner = canned("ipv4.method:auto\n")
    current = HostState(nic=DHCP_NIC, bridge=None, routes=ROUTES, files=runner)
    plan = NmcliBackend(runner=runner).plan_enslave(
        BridgeRequest(NIC, "br0", stp=True, forward_delay=15), current
    )
    assert any("30 s" in w for w in plan.warnings)
    assert "bridge.stp" in plan.commands[0] and "yes" in plan.commands[0]


def keyfile_root(tmp_path: Path, text: str | None) -> Path:
    d = tmp_path / "root/etc/NetworkManager/system-connections"
    d.mkdir(parents=True)
    if text is not None:
        (d / "Wired connection 1.nmconnection").write_text(text)
    return tmp_path / "root"


def test_keyfiles_validated_by_real_nmcli_offline(tmp_path: Path, nmcli: str) -> None:
    root = keyfile_root(tmp_path, UPLINK_KEYFILE)
    current = HostState(nic=DHCP_NIC, bridge=STALE_BR0, routes=ROUTES, files=LocalRunner())
    backend = NmcliBackend(root=str(root), runner=LocalRunner(), files_only=False)
    plan = backend.plan_enslave(BridgeRequest(NIC, "br0"), current)
    files = {Path(s.path).name: s for s in plan.steps if isinstance(s, WriteFile)}
    assert sorted(files) == ["kvmnet-br0-port-enp0s20f0u1.nmconnection", "kvmnet-br0.nmconnection"]
    for name, step in files.items():
        assert step.mode == 0o600
        golden(name, step.content)
    bridge = Keyfile.parse(files["kvmnet-br0.nmconnection"].content)
    assert bridge.get("ipv4", "address1") == "10.231.0.5/24,10.231.0.1"
    assert (bridge.get("bridge", "stp"), bridge.get("bridge", "forward-delay")) == ("false", "0")
    port = Keyfile.parse(files["kvmnet-br0-port-enp0s20f0u1.nmconnection"].content)
    assert port.get("connection", "autoconnect-priority") == "6"
    assert plan.commands[-4:] == (
        ("nmcli", "connection", "reload"),
        ("ip", "link", "set", "br0", "address", MAC),
        ("nmcli", "connection", "up", "uuid", profile_uuid("bridge", "br0")),
        ("nmcli", "connection", "up", "uuid", profile_uuid("port", "br0", NIC)),
    )
    assert ("nmcli", "connection", "up", "uuid", OLD) in [
        s.argv for s in plan.rollback_hints if isinstance(s, RunCommand)
    ]
    # The real tool reads our files back as what we meant.
    out = LocalRunner().run(
        [nmcli, "--offline", "connection", "modify", "ipv4.dns", "1.1.1.1"],
        input=files["kvmnet-br0.nmconnection"].content,
    )
    assert "stp=false" in out.stdout and "address1=10.231.0.5/24,10.231.0.1" in out.stdout


def test_keyfile_rejected_by_nmcli_raises(tmp_path: Path, nmcli: str) -> None:
    root = keyfile_root(tmp_path, UPLINK_KEYFILE.replace("method=manual", "method=bogus"))
    current = HostState(nic=DHCP_NIC, bridge=None, routes=ROUTES, files=LocalRunner())
    with pytest.raises(ValidationFailed, match=r"ipv4\.method"):
        NmcliBackend(root=str(root), runner=LocalRunner()).plan_enslave(
            BridgeRequest(NIC, "br0"), current
        )


def test_validation_failure_via_runner_names_the_file(tmp_path: Path) -> None:
    root = keyfile_root(tmp_path, None)
    runner = RecordingRunner(
        replies={
            ("nmcli", "--offline", "connection", "modify", "connection.id", "br0"): CommandResult(
                (), 1, "", "Error: bad"
            ),
        }
    )
    current = HostState(nic=DHCP_NIC, bridge=None, routes=ROUTES, files=LocalRunner())
    with pytest.raises(ValidationFailed, match=r"kvmnet-br0\.nmconnection: Error: bad"):
        NmcliBackend(root=str(root), runner=runner).plan_enslave(BridgeRequest(NIC, "br0"), current)


def test_keyfile_escape() -> None:
    assert escape(" a\\b\n") == "\\sa\\\\b\\n"


def test_networkmanager_not_running_is_a_clear_refusal() -> None:
    runner = RecordingRunner(
        replies={
            ACTIVE: CommandResult(ACTIVE, 8, "", "Error: NetworkManager is not running."),
        }
    )
    current = HostState(nic=DHCP_NIC, bridge=None, routes=ROUTES, files=runner)
    with pytest.raises(PreflightRefused, match=r"NetworkManager is not running.*keyfiles=True"):
        NmcliBackend(runner=runner).plan_enslave(BridgeRequest(NIC, "br0"), current)


def keyfile_plan(tmp_path: Path, files: dict[str, str], **kwargs: object) -> Plan:
    d = tmp_path / "root/etc/NetworkManager/system-connections"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    current = HostState(nic=DHCP_NIC, bridge=None, routes=ROUTES, files=LocalRunner())
    backend = NmcliBackend(root=str(tmp_path / "root"), runner=LocalRunner(), **kwargs)  # type: ignore[arg-type]
    return backend.plan_enslave(BridgeRequest(NIC, "br0"), current)


def keyfiles_of(plan: Plan) -> tuple[Keyfile, Keyfile]:
    files = {Path(s.path).name: s.content for s in plan.steps if isinstance(s, WriteFile)}
    return (
        Keyfile.parse(files["kvmnet-br0.nmconnection"]),
        Keyfile.parse(files[f"kvmnet-br0-port-{NIC}.nmconnection"]),
    )


GLOB_PROFILE = """[connection]
id=uplink
type=ethernet
autoconnect=false
mdns=2
lldp=1

[match]
interface-name=enp0s20f0u*;!enp0s20f0u9;

[ethernet]
mtu=9000
wake-on-lan=64

[ethtool]
feature-tso=false

[ipv4]
method=auto
dhcp-hostname=kvm1

[ipv6]
method=disabled

[proxy]
method=1
pac-url=http://wpad/wpad.dat
"""


def test_link_settings_stay_on_the_port_ip_settings_move(tmp_path: Path, nmcli: str) -> None:
    plan = keyfile_plan(tmp_path, {"uplink.nmconnection": GLOB_PROFILE})
    bridge, port = keyfiles_of(plan)
    # Found through its [match] interface-name glob (no interface-name=, no uuid=).
    assert port.get("ethernet", "wake-on-lan") == "64" and port.get("ethernet", "mtu") == "9000"
    assert port.get("ethtool", "feature-tso") == "false"
    assert port.get("match", "interface-name") == "enp0s20f0u*;!enp0s20f0u9;"
    assert port.get("connection", "lldp") == "1" and port.get("connection", "mdns") is None
    assert bridge.get("connection", "mdns") == "2"
    assert (
        bridge.get("ipv4", "dhcp-hostname") == "kvm1" and bridge.get("ipv6", "method") == "disabled"
    )
    assert bridge.get("proxy", "pac-url") == "http://wpad/wpad.dat"
    assert "ipv4" not in port.sections and "ethernet" not in bridge.sections
    # autoconnect=false on the NIC: neither new profile comes up at boot by itself.
    assert (
        port.get("connection", "autoconnect") == bridge.get("connection", "autoconnect") == "false"
    )
    # Files only (another root): nothing planned against this machine.
    assert plan.commands == () and not plan.checks


def test_rollback_finds_a_profile_without_uuid_by_id_or_file_name(
    tmp_path: Path, nmcli: str
) -> None:
    plan = keyfile_plan(tmp_path, {"uplink.nmconnection": GLOB_PROFILE}, files_only=False)
    assert RunCommand(("nmcli", "connection", "up", "id", "uplink"), f"{NIC}'s old profile") in (
        plan.rollback_hints
    )
    nameless = GLOB_PROFILE.replace("id=uplink\n", "")
    plan = keyfile_plan(tmp_path / "2", {"Wired 2.nmconnection": nameless}, files_only=False)
    assert ("nmcli", "connection", "up", "id", "Wired 2") in [
        s.argv for s in plan.rollback_hints if isinstance(s, RunCommand)
    ]


def test_the_bridges_own_profile_is_merged_and_outranked(tmp_path: Path, nmcli: str) -> None:
    own = (
        "[connection]\nid=lan bridge\ntype=bridge\ninterface-name=br0\nautoconnect-priority=3\n"
        "[bridge]\nstp=true\nvlan-filtering=true\n[ipv4]\nmethod=manual\n[ipv6]\nmethod=ignore\n"
    )
    plan = keyfile_plan(tmp_path, {"Wired.nmconnection": UPLINK_KEYFILE, "br.nmconnection": own})
    bridge, _ = keyfiles_of(plan)
    assert bridge.get("connection", "autoconnect-priority") == "4"
    assert (
        bridge.get("bridge", "vlan-filtering") == "true" and bridge.get("bridge", "stp") == "false"
    )
    assert bridge.get("ipv4", "address1") == "10.231.0.5/24,10.231.0.1"
    assert any("br.nmconnection says [bridge] stp=true" in w for w in plan.warnings)
    clash = own.replace("method=ignore", "method=auto")
    with pytest.raises(PreflightRefused, match=r"\[ipv6\] method") as caught:
        keyfile_plan(
            tmp_path / "2", {"Wired.nmconnection": UPLINK_KEYFILE, "br.nmconnection": clash}
        )
    assert caught.value.check == "keyfile-conflict"


@pytest.mark.parametrize(
    ("extra", "check"),
    [
        ("[connection]\nmaster=bond0\nslave-type=bond\n", "already-port"),
        ("[wobble]\nx=1\n", "keyfile-unknown-key"),
        ("[connection]\nfrobnicate=1\n", "keyfile-unknown-key"),
    ],
)
def test_keyfile_refusals(tmp_path: Path, extra: str, check: str) -> None:
    text = UPLINK_KEYFILE + "\n" + extra
    if extra.startswith("[connection]"):
        text = UPLINK_KEYFILE.replace("[connection]\n", extra)
    with pytest.raises(PreflightRefused, match=r"Wired\.nmconnection") as caught:
        keyfile_plan(tmp_path, {"Wired.nmconnection": text}, validate=False)
    assert caught.value.check == check


def test_8021x_stays_on_the_port_with_a_warning(tmp_path: Path, nmcli: str) -> None:
    text = UPLINK_KEYFILE + "\n[802-1x]\neap=peap;\nidentity=host1\nphase2-auth=mschapv2\n"
    plan = keyfile_plan(tmp_path, {"Wired.nmconnection": text})
    _, port = keyfiles_of(plan)
    assert port.get("802-1x", "identity") == "host1"
    assert any("802.1X" in w for w in plan.warnings)


def test_match_interface_name_semantics() -> None:
    assert match_interface_name(["eth*"], "eth0")
    assert not match_interface_name(["eth*", "!eth0"], "eth0")
    assert match_interface_name(["|wl*", "|eth*"], "eth3")
    assert not match_interface_name(["&eth*", "&*9"], "eth3")
    assert match_interface_name([], "eth3")
    assert split_list("a;b\\;c;;") == ["a", "b;c"]


def test_the_profile_networkmanager_picks_is_the_one_carried(tmp_path: Path, nmcli: str) -> None:
    """Of several profiles that fit the NIC, NetworkManager runs the autoconnecting one with the
    highest priority: that one is carried; the port outranks all of them."""
    plan = keyfile_plan(
        tmp_path,
        {
            "a-bound.nmconnection": UPLINK_KEYFILE.replace(
                "autoconnect-priority=5", "autoconnect-priority=1"
            ),
            "b-glob.nmconnection": GLOB_PROFILE.replace(
                "autoconnect=false", "autoconnect-priority=7"
            ),
            "c-off.nmconnection": UPLINK_KEYFILE.replace(
                "autoconnect-priority=5", "autoconnect=false\nautoconnect-priority=9"
            ),
            "d-other.nmconnection": UPLINK_KEYFILE.replace(
                f"interface-name={NIC}", "interface-name=eth9"
            ),
        },
    )
    bridge, port = keyfiles_of(plan)
    assert bridge.get("ipv4", "dhcp-hostname") == "kvm1"  # b-glob's
    assert port.get("ethernet", "wake-on-lan") == "64"
    assert port.get("connection", "autoconnect-priority") == "10"


def test_runtime_split_of_the_active_profiles_properties() -> None:
    runner = canned(
        "connection.id:uplink\nconnection.mdns:2\nconnection.lldp:1\nconnection.timestamp:17\n"
        "connection.autoconnect-priority:5\n802-3-ethernet.mtu:1496\n"
        "802-3-ethernet.wake-on-lan:magic\nethtool.feature-tso:off\nipv4.method:auto\n"
        "ipv4.dns-search:example.org\nipv6.method:disabled\nproxy.method:none\n"
    )
    current = HostState(nic=DHCP_NIC, bridge=None, routes=ROUTES, files=runner)
    plan = NmcliBackend(runner=runner).plan_enslave(BridgeRequest(NIC, "br0"), current)
    bridge_add, port_add = plan.commands[0], plan.commands[1]

    def props(argv: tuple[str, ...]) -> dict[str, str]:
        words = argv[argv.index("ifname") + 2 :]
        return dict(zip(words[::2], words[1::2], strict=True))

    assert props(port_add) == {
        "connection.uuid": profile_uuid("port", "br0", NIC),
        "connection.master": "br0",
        "connection.slave-type": "bridge",
        "connection.autoconnect-priority": "6",
        "connection.lldp": "1",
        "802-3-ethernet.mtu": "1496",
        "802-3-ethernet.wake-on-lan": "magic",
        "ethtool.feature-tso": "off",
    }
    moved = props(bridge_add)
    assert moved["connection.mdns"] == "2" and moved["ipv4.dns-search"] == "example.org"
    assert moved["ipv6.method"] == "disabled" and "802-3-ethernet.mtu" not in moved
    assert "connection.timestamp" not in moved and "connection.id" not in moved


@pytest.mark.parametrize(
    ("reply", "check"),
    [
        ("ipv4.method:auto\n802-1x.eap:peap\n802-1x.password:<hidden>\n", "802.1x-runtime"),
        ("ipv4.method:auto\nconnection.master:bond0\n", "already-port"),
        ("ipv4.method:auto\nwobble.x:1\n", "keyfile-unknown-key"),
    ],
)
def test_runtime_refusals(reply: str, check: str) -> None:
    runner = canned(reply)
    current = HostState(nic=DHCP_NIC, bridge=None, routes=ROUTES, files=runner)
    with pytest.raises(PreflightRefused, match="Wired connection 1") as caught:
        NmcliBackend(runner=runner).plan_enslave(BridgeRequest(NIC, "br0"), current)
    assert caught.value.check == check


# Held-out campaign (2026-12-02, finding H): a profile without [ipv4]/[ipv6] is NetworkManager's
# default method=auto (DHCP/SLAAC). implicit-dhcp-*: the campaign's minimal form of cloud-init's
# large_v1 expected_network_manager; cloud-init-large_v1-*: that expectation itself, and
# cloud-init-ipv6-without-method: v2-mixed-routes-no-ipv6-addr's ([ipv6] without method=), from
# https://github.com/canonical/cloud-init/blob/04eacd06ee60de9dbb9e7be784be20dab7342c1a/tests/unittests/net/network_configs.py
HELDOUT = DATA / "heldout"
ETH0 = LinkState("eth0", "c0:d6:9f:2c:e8:80")


def heldout_plan(tmp_path: Path, files: dict[str, str], **kwargs: object) -> Plan:
    """Plan bridging eth0 with ``files`` (name -> text) as the keyfile folder of an image."""
    d = tmp_path / "root/etc/NetworkManager/system-connections"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    current = HostState(nic=ETH0, bridge=None, files=LocalRunner())
    backend = NmcliBackend(root=str(tmp_path / "root"), runner=LocalRunner(), **kwargs)  # type: ignore[arg-type]
    return backend.plan_enslave(BridgeRequest("eth0", "br0"), current)


def heldout(name: str) -> str:
    return (HELDOUT / name).read_text()


def nm_reads(nmcli: str, text: str) -> Keyfile:
    """The profile as NetworkManager reads it (normalised by the real ``nmcli --offline``)."""
    out = LocalRunner().run(
        [nmcli, "--offline", "connection", "modify", "connection.zone", ""], input=text
    )
    return Keyfile.parse(out.stdout)


def implicit(section: str) -> str:
    """The refusal's note on a left-out section, as a pattern."""
    return re.escape(f"has no [{section}] section, which NetworkManager reads as method=auto")


@pytest.mark.parametrize(
    ("nic", "br", "match"),
    [
        # The finding: the NIC's DHCP would have been dropped for br0's static address.
        (
            heldout("implicit-dhcp-eth0.nmconnection"),
            heldout("implicit-dhcp-br0.nmconnection"),
            rf"\[ipv4\] method: br0\.nmconnection and eth0\.nmconnection disagree "
            rf"\('manual' vs 'auto'; eth0\.nmconnection {implicit('ipv4')}",
        ),
        # The same written out was refused before: still refused, the same way.
        (
            heldout("implicit-dhcp-eth0.nmconnection") + "\n[ipv4]\nmethod=auto\n",
            heldout("implicit-dhcp-br0.nmconnection"),
            r"\[ipv4\] method: .*\('manual' vs 'auto'\); make them agree",
        ),
        # SLAAC lost the same way: the NIC says nothing of IPv6, br0 ignores it.
        (
            heldout("implicit-dhcp-eth0.nmconnection") + "\n[ipv4]\nmethod=manual\n"
            "address1=192.168.14.1/24\n",
            heldout("implicit-dhcp-br0.nmconnection").replace(
                "address1=192.168.14.1/24\nmethod=manual", "method=disabled"
            ),
            r"\[ipv4\] method: .*\('disabled' vs 'manual'\)",
        ),
        (
            heldout("implicit-dhcp-eth0.nmconnection") + "\n[ipv4]\nmethod=disabled\n",
            heldout("implicit-dhcp-br0.nmconnection").replace(
                "address1=192.168.14.1/24\nmethod=manual", "method=disabled"
            ),
            rf"\[ipv6\] method: .*\('ignore' vs 'auto'; eth0\.nmconnection {implicit('ipv6')}",
        ),
        # And the other way round: br0's own profile without [ipv4] runs DHCP on br0.
        (
            heldout("implicit-dhcp-eth0.nmconnection") + "\n[ipv4]\nmethod=manual\n"
            "address1=192.168.14.1/24\n[ipv6]\nmethod=ignore\n",
            "[connection]\nid=br0\ntype=bridge\ninterface-name=br0\n\n[bridge]\nstp=false\n",
            rf"\('auto' vs 'manual'; br0\.nmconnection {implicit('ipv4')}",
        ),
        # cloud-init's own files: eth0 without [ipv4] next to a static br0.
        (
            heldout("cloud-init-large_v1-eth0.nmconnection"),
            heldout("cloud-init-large_v1-br0.nmconnection"),
            rf"\('manual' vs 'auto'; eth0\.nmconnection {implicit('ipv4')}",
        ),
    ],
)
def test_a_left_out_ip_method_conflicts_like_a_written_one(
    tmp_path: Path, nic: str, br: str, match: str
) -> None:
    with pytest.raises(PreflightRefused, match=match) as caught:
        heldout_plan(tmp_path, {"eth0.nmconnection": nic, "br0.nmconnection": br}, validate=False)
    assert caught.value.check == "keyfile-conflict"


def test_a_profile_without_ip_sections_bridges_as_dhcp_and_slaac(
    tmp_path: Path, nmcli: str
) -> None:
    """No br0 profile: the bridge's profile leaves [ipv4]/[ipv6] out as the NIC's did, and
    NetworkManager reads it exactly as it read the NIC's: method=auto for both (and the same
    IPv6 address generation, which a written [ipv6] without addr-gen-mode= would change)."""
    nic = heldout("implicit-dhcp-eth0.nmconnection")
    plan = heldout_plan(tmp_path, {"eth0.nmconnection": nic})  # validated by the real nmcli
    files = {Path(s.path).name: s.content for s in plan.steps if isinstance(s, WriteFile)}
    bridge = files["kvmnet-br0.nmconnection"]
    assert "ipv4" not in Keyfile.parse(bridge).sections
    want, got = nm_reads(nmcli, nic), nm_reads(nmcli, bridge)
    assert want.get("ipv4", "method") == got.get("ipv4", "method") == "auto"
    assert want.get("ipv6", "method") == got.get("ipv6", "method") == "auto"
    assert want.sections["ipv6"] == got.sections["ipv6"]
    port = nm_reads(nmcli, files["kvmnet-br0-port-eth0.nmconnection"])
    assert "ipv4" not in port.sections and "ipv6" not in port.sections


def test_left_out_methods_that_agree_are_merged(tmp_path: Path, nmcli: str) -> None:
    nic = heldout("implicit-dhcp-eth0.nmconnection")
    # Neither writes [ipv4]/[ipv6]: both DHCP/SLAAC, br0's [bridge] settings carried.
    own = "[connection]\nid=br0\ntype=bridge\ninterface-name=br0\n\n[bridge]\nhello-time=3\n"
    bridge, _ = keyfiles_of_eth0(
        heldout_plan(tmp_path, {"eth0.nmconnection": nic, "br0.nmconnection": own})
    )
    assert bridge.get("bridge", "hello-time") == "3"
    assert "ipv4" not in bridge.sections and "ipv6" not in bridge.sections
    # br0 says auto with a DNS server: it agrees with the NIC's implicit auto and is carried.
    own += "\n[ipv4]\nmethod=auto\ndns=192.0.2.53;\n"
    bridge, _ = keyfiles_of_eth0(
        heldout_plan(tmp_path / "2", {"eth0.nmconnection": nic, "br0.nmconnection": own})
    )
    assert (bridge.get("ipv4", "method"), bridge.get("ipv4", "dns")) == ("auto", "192.0.2.53;")
    assert "ipv6" not in bridge.sections


def test_no_profile_for_the_nic_does_not_guess_its_ipv6(tmp_path: Path, nmcli: str) -> None:
    """IP settings from the kernel say nothing of IPv6: br0's own [ipv6] is carried, not
    refused for a method the NIC never stated."""
    own = heldout("implicit-dhcp-br0.nmconnection").replace(
        "address1=192.168.14.1/24\nmethod=manual", "method=disabled"
    )  # ETH0 has no address: IPv4 disabled, as br0 says
    bridge, _ = keyfiles_of_eth0(heldout_plan(tmp_path, {"br0.nmconnection": own}))
    assert (bridge.get("ipv4", "method"), bridge.get("ipv6", "method")) == ("disabled", "ignore")


def keyfiles_of_eth0(plan: Plan) -> tuple[Keyfile, Keyfile]:
    files = {Path(s.path).name: s.content for s in plan.steps if isinstance(s, WriteFile)}
    return (
        Keyfile.parse(files["kvmnet-br0.nmconnection"]),
        Keyfile.parse(files["kvmnet-br0-port-eth0.nmconnection"]),
    )


@pytest.mark.parametrize("whose", ["eth0", "br0"])
def test_an_ip_section_without_method_is_refused(tmp_path: Path, nmcli: str, whose: str) -> None:
    """NetworkManager rejects such a profile outright (ipv6.method: property is missing): it is
    not what runs, so nothing is carried from it, and the refusal names it (before, a bridge
    profile's method filled the gap silently, or nmcli rejected kvmnet's file)."""
    bad = heldout("cloud-init-ipv6-without-method.nmconnection")
    assert LocalRunner().run(
        [nmcli, "--offline", "connection", "modify", "connection.zone", ""],
        input=bad, check=False,
    ).returncode != 0  # fmt: skip
    if whose == "eth0":
        files = {"eth0.nmconnection": bad}
    else:
        own = bad.replace("type=ethernet", "type=bridge").replace(
            "interface-name=eth0", "interface-name=br0"
        )
        files = {
            "eth0.nmconnection": heldout("implicit-dhcp-eth0.nmconnection"),
            "br0.nmconnection": own,
        }
    with pytest.raises(
        PreflightRefused, match=rf"^{whose}\.nmconnection: \[ipv6\] has no method="
    ) as caught:
        heldout_plan(tmp_path, files, validate=False)
    assert caught.value.check == "keyfile-invalid"

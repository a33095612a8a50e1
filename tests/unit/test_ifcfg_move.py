"""ifcfg backend: what moves where, refusals, companions by profile name, exact release,
unique backups. Files on disk under a temporary root, read back after each plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmnet.errors import InvalidInput, PreflightRefused
from kvmnet.hostnet.backends.ifcfg import SCRIPTS_DIR, IfcfgBackend
from kvmnet.hostnet.backends.ifcfgkeys import name_matches
from kvmnet.hostnet.backends.shellvars import ShellVars
from kvmnet.hostnet.model.plan import Plan, RemoveFile, WriteFile
from kvmnet.hostnet.model.request import BridgeRequest, HostState
from kvmnet.hostnet.model.state import LinkState
from kvmnet.hostnet.runners.runner import LocalRunner, RecordingRunner

NIC, MAC = "eth0", "52:54:00:aa:00:07"
DATA = Path(__file__).resolve().parent.parent / "data" / "backends" / "ifcfg"


def scripts_with(tmp_path: Path, files: dict[str, str]) -> Path:
    scripts = tmp_path / "root" / SCRIPTS_DIR.lstrip("/")
    scripts.mkdir(parents=True)
    for name, text in files.items():
        (scripts / name).write_bytes(text.encode())
    return scripts


def plan(
    scripts: Path,
    action: str = "enslave",
    force: frozenset[str] = frozenset(),
    backup_stamp: str | None = None,
) -> Plan:
    backend = IfcfgBackend(
        root=str(scripts.parents[2]),
        runner=LocalRunner(),
        network_manager=True,
        backup_stamp=backup_stamp,
    )
    releasing = action == "release"
    nic = LinkState(NIC, MAC, master="br0" if releasing else None)
    bridge = LinkState("br0", MAC, kind="bridge") if releasing else None
    current = HostState(nic=nic, bridge=bridge, files=LocalRunner())
    request = BridgeRequest(NIC, "br0", force=force)
    return (
        backend.plan_release(request, current)
        if releasing
        else backend.plan_enslave(request, current)
    )


def apply_files(done: Plan) -> None:
    for step in done.steps:
        if isinstance(step, WriteFile):
            Path(step.path).parent.mkdir(parents=True, exist_ok=True)
            Path(step.path).write_text(step.content)
        elif isinstance(step, RemoveFile):
            Path(step.path).unlink()


def tree(scripts: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(scripts.iterdir())}


PROFILE = """# by hand
HWADDR=52-54-00-AA-00-07
TYPE=Ethernet
ONBOOT=no
BOOTPROTO='none'
IPADDR0="192.0.2.7"   # the LAN address
PREFIX0=24
RES_OPTIONS=
IPV6_DISABLED=yes
ROUTING_RULE_1="priority 10 from 192.0.2.0/24 table 5"
PROXY_METHOD=auto
PAC_URL=http://wpad/wpad.dat
ETHTOOL_OPTS="-K eth0 gro off"
IEEE_8021X_OPTIONAL=no
X_SITE=rack7"""


def test_profile_without_device_found_by_hwaddr_and_released_byte_for_byte(
    tmp_path: Path,
) -> None:
    scripts = scripts_with(
        tmp_path,
        {
            "ifcfg-System_eth0": PROFILE,
            "route-System_eth0": "10.9.0.0/16 via 192.0.2.254 dev eth0\r\n",
            "rule-eth0": "from 192.0.2.0/24 table 5\n",
            "route6-System_eth0": "2001:db8:9::/48 via 2001:db8::1\n",
        },
    )
    original = tree(scripts)
    apply_files(plan(scripts, force=frozenset({"802.1x"})))
    after = tree(scripts)
    assert set(after) == {
        "ifcfg-System_eth0",
        "ifcfg-br0",
        "route-br0",
        "route6-br0",
        "rule-br0",
    }  # one profile for the NIC: no second ifcfg-eth0 written
    port, br0 = after["ifcfg-System_eth0"].decode(), after["ifcfg-br0"].decode()
    assert 'IPADDR0="192.0.2.7"   # the LAN address\n' in br0  # verbatim, comment and all
    for line in (
        "RES_OPTIONS=\n",
        "IPV6_DISABLED=yes",
        "ROUTING_RULE_1=",
        "PAC_URL=",
        "PROXY_METHOD=",
    ):
        assert line in br0 and line not in port
    assert "ONBOOT=no" in br0  # the bridge does not start at boot without its port either
    for line in ("HWADDR=", "ETHTOOL_OPTS=", "IEEE_8021X_OPTIONAL=no", "X_SITE=rack7"):
        assert line in port and line not in br0
    assert after["route-br0"] == b"10.9.0.0/16 via 192.0.2.254 dev br0\r\n"
    assert "# kvmnet: route-br0 was route-System_eth0 (dev eth0 renamed)" in br0
    assert "# kvmnet: rule-br0 was rule-eth0" in br0

    apply_files(plan(scripts, "release"))
    assert tree(scripts) == original


def test_release_takes_the_bridges_current_values_into_the_original_places(
    tmp_path: Path,
) -> None:
    scripts = scripts_with(tmp_path, {"ifcfg-eth0": "DEVICE=eth0\nIPADDR=10.0.0.2\nMTU=9000\n"})
    apply_files(plan(scripts))
    br0 = scripts / "ifcfg-br0"
    br0.write_text(br0.read_text().replace("IPADDR=10.0.0.2", "IPADDR=10.0.0.3") + "DNS1=1.1.1.1\n")
    apply_files(plan(scripts, "release"))
    assert (scripts / "ifcfg-eth0").read_text() == (
        "DEVICE=eth0\nIPADDR=10.0.0.3\nMTU=9000\nDNS1=1.1.1.1\n"
    )


@pytest.mark.parametrize(
    ("line", "check"),
    [
        ("NETBOOT=yes", "netboot"),
        ("BOOTPROTO=ibft", "netboot"),
        ("MASTER=bond0", "enslaved"),
        ("BRIDGE=br9", "enslaved"),
        ("TEAM_MASTER=team0", "enslaved"),
        ("IEEE_8021X_EAP_METHODS=PEAP", "802.1x"),
    ],
)
def test_refused_before_anything_changes_then_forced(tmp_path: Path, line: str, check: str) -> None:
    scripts = scripts_with(tmp_path, {"ifcfg-eth0": f"DEVICE=eth0\n{line}\nIPADDR=10.0.0.2\n"})
    original = tree(scripts)
    with pytest.raises(PreflightRefused, match=rf"override: force=\('{check}',\)") as refused:
        plan(scripts)
    assert refused.value.check == check and tree(scripts) == original
    apply_files(plan(scripts, force=frozenset({check})))
    assert "BRIDGE=br0" in (scripts / "ifcfg-eth0").read_text()
    apply_files(plan(scripts, "release"))
    assert tree(scripts) == original


def test_unknown_keys_stay_on_the_port_with_a_warning(tmp_path: Path) -> None:
    scripts = scripts_with(tmp_path, {"ifcfg-eth0": "DEVICE=eth0\nMY_HOOK=1\nIPADDR=10.0.0.2\n"})
    done = plan(scripts)
    assert any("MY_HOOK" in w and "stay in eth0's file" in w for w in done.warnings)
    apply_files(done)
    assert "MY_HOOK=1" in (scripts / "ifcfg-eth0").read_text()


def test_companion_collisions_are_refused(tmp_path: Path) -> None:
    scripts = scripts_with(
        tmp_path,
        {"ifcfg-eth0": "DEVICE=eth0\n", "route-eth0": "a\n", "route-br0": "b\n"},
    )
    with pytest.raises(InvalidInput, match="route-br0 exists already"):
        plan(scripts)


def test_backups_never_overwrite_each_other(tmp_path: Path) -> None:
    scripts = scripts_with(tmp_path, {"ifcfg-eth0": "DEVICE=eth0\nIPADDR=10.0.0.2\n"})
    backup_root = tmp_path / "root" / "var/lib/kvmnet/backup"
    apply_files(plan(scripts, backup_stamp="same"))
    apply_files(plan(scripts, "release", backup_stamp="same"))
    assert sorted(p.name for p in backup_root.iterdir()) == ["same", "same-2"]
    first, second = (backup_root / "same" / "ifcfg-eth0"), (backup_root / "same-2" / "ifcfg-eth0")
    assert first.read_text() == "DEVICE=eth0\nIPADDR=10.0.0.2\n" != second.read_text()
    apply_files(plan(scripts))
    apply_files(plan(scripts, "release"))  # default stamps, the same second
    assert len(list(backup_root.iterdir())) == 4


def test_alias_files_are_refused_not_dropped(tmp_path: Path) -> None:
    scripts = scripts_with(
        tmp_path,
        {"ifcfg-eth0": "DEVICE=eth0\nIPADDR=10.0.0.2\n", "ifcfg-eth0:1": "IPADDR=10.0.0.3\n"},
    )
    with pytest.raises(InvalidInput, match=r"ifcfg-eth0:1 add alias addresses"):
        plan(scripts)


def test_a_bridge_profile_kvmnet_did_not_write_is_not_replaced(tmp_path: Path) -> None:
    scripts = scripts_with(
        tmp_path,
        {"ifcfg-eth0": "DEVICE=eth0\n", "ifcfg-br0": "DEVICE=br0\nTYPE=Bridge\nSTP=yes\n"},
    )
    with pytest.raises(InvalidInput, match="not written by kvmnet"):
        plan(scripts)


def test_bridge_enslave_passes_force_to_the_backend() -> None:
    """The public entry point: Bridge.enslave refuses what only the file shows, and its
    force= reaches the backend (fake host: canned ip -j replies and files)."""
    from kvmnet import Bridge, HostNic
    from kvmnet.hostnet.fake import fake_host

    host = fake_host(
        [LinkState(NIC, MAC)],
        files={f"{SCRIPTS_DIR}/ifcfg-{NIC}": b"DEVICE=eth0\nBOOTPROTO=ibft\n"},
    )
    backend = IfcfgBackend(root="/", runner=host, network_manager=True)
    bridge, nic = Bridge("br0", backend=backend), HostNic(NIC, backend=backend)
    with pytest.raises(PreflightRefused) as refused:
        bridge.enslave(nic, dry_run=True, ssh_connection="")
    assert refused.value.check == "netboot"
    done = bridge.enslave(nic, dry_run=True, ssh_connection="", force=("netboot",))
    assert "BOOTPROTO=ibft" in str(done)


def test_a_broken_file_of_another_device_does_not_block(tmp_path: Path) -> None:
    broken = "DEVICE=wlan0\nESSID='open\n"
    scripts = scripts_with(tmp_path, {"ifcfg-eth0": "DEVICE=eth0\n", "ifcfg-wlan0": broken})
    assert "BRIDGE=br0" in str(plan(scripts))
    (scripts / "ifcfg-eth0").unlink()
    (scripts / "ifcfg-wlan0").write_text("HWADDR=52:54:00:AA:00:07\nNAME='x\n")  # may be eth0's
    with pytest.raises(InvalidInput, match=r"ifcfg-wlan0: line 2: unterminated single quote"):
        plan(scripts)


def test_multi_line_values_are_kept_as_bash_reads_them(tmp_path: Path) -> None:
    text = "DEVICE=eth0\nX_NOTE='two\nlines'\nDNS_SEARCH_EXTRA=1\nDOMAIN=\"a\nb\"\n"
    scripts = scripts_with(tmp_path, {"ifcfg-eth0": text})
    apply_files(plan(scripts))
    assert 'DOMAIN="a\nb"\n' in (scripts / "ifcfg-br0").read_text()
    assert "X_NOTE='two\nlines'\n" in (scripts / "ifcfg-eth0").read_text()
    apply_files(plan(scripts, "release"))
    assert (scripts / "ifcfg-eth0").read_text() == text


@pytest.mark.parametrize(
    ("patterns", "name", "matches"),
    [
        ("ens* eth\\ 1? !veth*", "ens3", True),
        ("ens* eth\\ 1? !veth*", "eth 12", True),
        ("ens* eth\\ 1? !veth*", "veth0", False),
        ("ens* eth\\ 1? !veth*", "eth0", False),
        ("!veth*", "eth0", True),  # only exclusions: everything else matches
        ("&eth* !eth1", "eth2", True),
        ("&eth* !eth1", "eth1", False),
        ("&eth* ens*", "ens3", False),  # a required pattern must match
    ],
)
def test_match_interface_name_as_ifcfg_rh_reads_it(patterns: str, name: str, matches: bool) -> None:
    assert name_matches(patterns, name) is matches


@pytest.mark.parametrize(
    "profile",
    [
        'TYPE=Ethernet\nMATCH_INTERFACE_NAME="eth* !eth1"\nBOOTPROTO=dhcp\n',
        "TYPE=Ethernet\nBOOTPROTO=dhcp\n",  # bound to no device: NetworkManager's catch-all
    ],
)
def test_profiles_bound_by_match_or_to_any_device_are_found(tmp_path: Path, profile: str) -> None:
    scripts = scripts_with(tmp_path, {"ifcfg-Wired_connection_1": profile})
    original = tree(scripts)
    apply_files(plan(scripts))
    assert set(tree(scripts)) == {"ifcfg-Wired_connection_1", "ifcfg-br0"}  # no second profile
    assert "BOOTPROTO=dhcp" in (scripts / "ifcfg-br0").read_text()
    apply_files(plan(scripts, "release"))
    assert tree(scripts) == original


# The held-out campaign's case ifcfg/hp-crlf-trailing-comments: the ETHTOOL_OPTS example of a
# public note saved with CRLF line ends and a trailing comment (an admin's file edited on
# Windows). kvmnet took it for no file of eth0 and wrote a generated ifcfg-eth0 over it.
CRLF_NIC = (DATA / "crlf-ifcfg-eth0").read_bytes()


def test_a_crlf_file_is_the_nics_edited_in_its_style_and_released_byte_for_byte(
    tmp_path: Path,
) -> None:
    assert CRLF_NIC.count(b"\r\n") == CRLF_NIC.count(b"\n") == 7  # not normalised by git
    scripts = scripts_with(tmp_path, {"ifcfg-eth0": CRLF_NIC.decode()})
    original = tree(scripts)
    done = plan(scripts)
    assert not any("no ifcfg file describes" in w for w in done.warnings)
    apply_files(done)
    port, br0 = (scripts / "ifcfg-eth0").read_bytes(), (scripts / "ifcfg-br0").read_bytes()
    assert port.count(b"\r\n") == port.count(b"\n")  # every line, kvmnet's included, in CRLF
    assert b"BRIDGE=br0\r\n" in port and b"# kvmnet moved IPADDR to ifcfg-br0\r\n" in port
    assert b'ETHTOOL_OPTS="speed 100 duplex full autoneg off"\r\n' in port  # link-level stays
    assert b"\r" not in br0  # a new file: LF, the moved lines without their CR
    assert b"IPADDR=192.168.1.100   # office LAN\nNETMASK=255.255.255.0\nBOOTPROTO=static\n" in br0
    bridge = ShellVars.parse(br0.decode())
    assert (bridge.get("IPADDR"), bridge.get("NETMASK")) == ("192.168.1.100", "255.255.255.0")

    apply_files(plan(scripts, "release"))
    assert tree(scripts) == original


@pytest.mark.parametrize("action", ["enslave", "release"])
def test_an_ifcfg_file_of_the_nics_name_for_another_device_is_refused_not_overwritten(
    tmp_path: Path, action: str
) -> None:
    """No file describes eth0, so kvmnet would write ifcfg-eth0: the one there (DEVICE=eth1)
    must not be replaced by it."""
    scripts = scripts_with(tmp_path, {"ifcfg-eth0": "DEVICE=eth1\nIPADDR=10.0.0.9\nPREFIX=24\n"})
    original = tree(scripts)
    with pytest.raises(InvalidInput) as refused:
        plan(scripts, action)
    message = str(refused.value)
    assert f"{scripts}/ifcfg-eth0 exists but does not describe eth0" in message
    assert "DEVICE='eth1'" in message and "set DEVICE=eth0 in it" in message
    assert tree(scripts) == original


@pytest.mark.parametrize("action", ["enslave", "release"])
def test_an_ifcfg_file_of_the_bridges_name_for_another_device_is_refused(
    tmp_path: Path, action: str
) -> None:
    scripts = scripts_with(
        tmp_path,
        {"ifcfg-eth0": "DEVICE=eth0\nBOOTPROTO=dhcp\n", "ifcfg-br0": "DEVICE=br1\nTYPE=Bridge\n"},
    )
    with pytest.raises(InvalidInput, match=r"ifcfg-br0 exists but does not describe br0"):
        plan(scripts, action)


def plan_with(backend: IfcfgBackend, scripts: Path, action: str) -> Plan:
    releasing = action == "release"
    nic = LinkState(NIC, MAC, master="br0" if releasing else None)
    bridge = LinkState("br0", MAC, kind="bridge") if releasing else None
    current = HostState(nic=nic, bridge=bridge, files=LocalRunner())
    request = BridgeRequest(NIC, "br0")
    if releasing:
        return backend.plan_release(request, current)
    return backend.plan_enslave(request, current)


def test_another_root_writes_files_only(tmp_path: Path) -> None:
    """root= an image's folder: ifdown/ifup/nmcli would act on THIS machine's network, and
    the checks would verify it: neither is planned, and nothing is asked of the runner."""
    scripts = scripts_with(tmp_path, {"ifcfg-eth0": "DEVICE=eth0\nBOOTPROTO=dhcp\n"})
    root = str(scripts.parents[2])
    runner = RecordingRunner()
    backend = IfcfgBackend(root=root, runner=runner)  # network_manager unknown: not probed
    assert backend.files_only
    enslave = plan_with(backend, scripts, "enslave")
    assert (enslave.commands, enslave.checks, enslave.rollback_hints) == ((), (), ())
    assert enslave.restore_runtime is False
    assert f"{scripts}/ifcfg-br0" in enslave.files
    assert any(
        w.startswith(f"only files are written under {root}: nothing runs or is verified")
        for w in enslave.warnings
    )
    apply_files(enslave)
    release = plan_with(backend, scripts, "release")
    assert (release.commands, release.checks) == ((), ())
    assert f"{scripts}/ifcfg-br0" in release.files
    assert runner.commands == []  # not even the NetworkManager probe


def test_files_only_is_decided_explicitly_or_by_a_netns(tmp_path: Path) -> None:
    scripts = scripts_with(tmp_path, {"ifcfg-eth0": "DEVICE=eth0\nBOOTPROTO=dhcp\n"})
    root = str(scripts.parents[2])
    live = [
        IfcfgBackend(root=root, runner=RecordingRunner(), network_manager=False, files_only=False),
        IfcfgBackend(root=root, netns="lab", runner=RecordingRunner(), network_manager=False),
    ]
    for backend in live:
        done = plan_with(backend, scripts, "enslave")
        assert ("ifup", "br0") in done.commands and done.checks, backend
    assert not IfcfgBackend(runner=RecordingRunner()).files_only  # root "/": this machine
    image = IfcfgBackend(root="/", runner=RecordingRunner(), files_only=True)
    assert image.files_only

"""ifcfg backend: shell-variable files parsed, edited and quoted safely; plans for the classic
scenario. Real tools: bash sources the files (as initscripts does) and Augeas' Shellvars lens
parses them; both must read back exactly the values kvmnet meant."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmnet.errors import InvalidInput, InvalidName
from kvmnet.hostnet.backends.ifcfg import (
    NM_RUNNING,
    SCRIPTS_DIR,
    IfcfgBackend,
    bridge_uuid,
    render_bridge,
    render_port,
)
from kvmnet.hostnet.backends.shellvars import ShellVars, quote, unquote
from kvmnet.hostnet.model.plan import Plan, RemoveFile, RunCommand, WriteFile
from kvmnet.hostnet.model.request import BridgeRequest, HostState
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.runners.runner import LocalRunner, RecordingRunner
from tests.lab.golden import golden_text, require_tool

DATA = Path(__file__).resolve().parent.parent / "data" / "backends" / "ifcfg"
NIC = "enp0s20f0u1"
MAC = "52:54:00:aa:00:01"
STAMP = "20261127T231500Z"


def golden(name: str, text: str) -> None:
    path = DATA / name
    assert text == golden_text(path, text), f"differs from golden file {path}"


def nic_state(*, dhcp: bool = True) -> LinkState:
    addr = IpAddress("10.231.0.185/24", 3600, 3600, True) if dhcp else IpAddress("10.231.0.5/24")
    return LinkState(NIC, MAC, addresses=(addr,))


STALE_BR0 = LinkState(
    "br0",
    "aa:bb:cc:00:00:01",
    kind="bridge",
    addresses=(IpAddress("192.168.0.1/24"),),
    stp=False,
    forward_delay=0,
)
ROUTES = (IpRoute("default", NIC, "10.231.0.1"),)


def write_root(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "root"
    scripts = root / SCRIPTS_DIR.lstrip("/")
    scripts.mkdir(parents=True)
    for name, text in files.items():
        (scripts / name).write_text(text)
    return root


def plan_for(
    root: Path,
    *,
    bridge: LinkState | None = STALE_BR0,
    dhcp: bool = True,
    nm: bool | None = True,
    runner: RecordingRunner | None = None,
) -> Plan:
    reader = LocalRunner()
    current = HostState(nic=nic_state(dhcp=dhcp), bridge=bridge, routes=ROUTES, files=reader)
    # The temporary root stands for this machine's /: plan the commands and checks too.
    backend = IfcfgBackend(
        root=str(root),
        runner=runner or RecordingRunner(),
        network_manager=nm,
        backup_stamp=STAMP,
        files_only=False,
    )
    return backend.plan_enslave(BridgeRequest(NIC, "br0"), current)


def files_written(plan: Plan) -> dict[str, str]:
    return {s.path: s.content for s in plan.steps if isinstance(s, WriteFile)}


DHCP_NIC = f"""TYPE=Ethernet
PROXY_METHOD=none
BROWSER_ONLY=no
BOOTPROTO=dhcp
DEFROUTE=yes
IPV4_FAILURE_FATAL=no
IPV6INIT=yes
IPV6_AUTOCONF=yes
IPV6_DEFROUTE=yes
IPV6_FAILURE_FATAL=no
NAME={NIC}
UUID=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03
DEVICE={NIC}
ONBOOT=yes
"""

STATIC_NIC = f"""# Installer wrote this; ops added the comments.
DEVICE={NIC}
HWADDR={MAC.upper()}
TYPE=Ethernet
ONBOOT=yes
NM_CONTROLLED="yes"
BOOTPROTO=none
IPADDR=10.231.0.5
PREFIX=24
GATEWAY=10.231.0.1
DNS1=10.231.0.1
DNS2="9.9.9.9"
DOMAIN="lab.example corp.example"
MTU=9000
ETHTOOL_OPTS="-K ${{DEVICE}} tso off"   # keep TSO off: the switch mangles it
X_VENDOR_KEY='left alone'
"""


class TestQuoting:
    @pytest.mark.parametrize(
        "value",
        [
            "10.0.0.1",
            "my nic",
            "$(reboot)",
            "`reboot`",
            'a"b',
            "it's",
            "back\\slash",
            "$HOME",
            "",
            " lead",
            "a;b&c|d",
        ],
    )
    def test_round_trip(self, value: str) -> None:
        assert unquote(quote(value)) == value

    def test_plain_values_stay_bare(self) -> None:
        assert quote("52:54:00:aa:00:01") == "52:54:00:aa:00:01"
        assert quote("x y") == '"x y"'

    def test_line_break_refused(self) -> None:
        with pytest.raises(InvalidInput, match="line break"):
            quote("a\nIPADDR=1.2.3.4")

    @pytest.mark.parametrize(
        ("raw", "value"),
        [
            ('"a b" # c', "a b"),
            ("'x $y'", "x $y"),
            (r"a\ b", "a b"),
            ("$'t\\tab'", "t\tab"),
            ("pre\"fix\"'d'", "prefixd"),
            ("", ""),
        ],
    )
    def test_unquote(self, raw: str, value: str) -> None:
        assert unquote(raw) == value

    def test_unterminated_quote_names_line(self) -> None:
        with pytest.raises(InvalidInput, match="line 2"):
            ShellVars.parse('A=1\nB="open\n')

    @settings(max_examples=60, deadline=None)
    @given(
        st.text(
            st.characters(blacklist_characters="\n\r\x00", blacklist_categories=["Cs"]), max_size=30
        )
    )
    def test_bash_reads_back_exactly_and_runs_nothing(
        self, tmp_path_factory: pytest.TempPathFactory, value: str
    ) -> None:
        """bash sources the file (what initscripts does): same text back, no code run."""
        bash = require_tool("bash")
        tmp = tmp_path_factory.mktemp("sh")
        marker = tmp / "ran"
        evil = value + f"$(touch {marker})`touch {marker}`"
        f = tmp / "ifcfg-x"
        f.write_text(f"V={quote(value)}\nW={quote(evil)}\n")
        out = subprocess.run(
            [
                bash,
                "--norc",
                "--noprofile",
                "-c",
                '. "$1"; printf "%s\\0%s" "$V" "$W"',
                "_",
                str(f),
            ],
            capture_output=True,
            check=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert out.stdout.decode().split("\0") == [value, evil]
        assert not marker.exists()


class TestShellVars:
    def test_edit_keeps_comments_order_and_unknown_keys(self) -> None:
        doc = ShellVars.parse(STATIC_NIC)
        doc.set("BRIDGE", "br0")
        doc.remove("IPADDR")
        text = doc.render()
        assert "# Installer wrote this" in text
        assert "X_VENDOR_KEY='left alone'" in text  # untouched lines keep their own quoting
        assert text.endswith("BRIDGE=br0\n")
        assert doc.get("ETHTOOL_OPTS") == "-K ${DEVICE} tso off"

    def test_last_assignment_wins_and_set_dedups(self) -> None:
        doc = ShellVars.parse("A=1\nA=2\n")
        assert doc.get("A") == "2"
        doc.set("A", "3")
        assert doc.render() == "A=3\n"

    def test_crlf_values_carry_no_cr_and_added_lines_end_in_crlf(self) -> None:
        """A file saved with CRLF: the CR is the line end, not part of a value
        (``DEVICE=eth0\\r`` is eth0, as NetworkManager's ifcfg-rh reads it); lines kvmnet adds
        end in CRLF like the others, and untouched text renders back byte for byte."""
        text = 'DEVICE=eth0\r\nIPADDR=192.0.2.7   # LAN\r\nX="a\r\nb"\r\n# note\r\n'
        doc = ShellVars.parse(text)
        assert (doc.newline, doc.render()) == ("\r\n", text)
        assert list(doc) == [("DEVICE", "eth0"), ("IPADDR", "192.0.2.7"), ("X", "a\r\nb")]
        doc.set("BRIDGE", "br0")
        assert doc.render() == text + "BRIDGE=br0\r\n"
        unterminated = ShellVars.parse("A=1\r\nB=2")
        assert (unterminated.get("B"), unterminated.render()) == ("2", "A=1\r\nB=2")

    def test_mixed_line_ends_keep_their_bytes_and_lose_the_cr_in_values(self) -> None:
        text = "DEVICE=eth0\r\nBOOTPROTO=dhcp\nONBOOT=yes\r"
        doc = ShellVars.parse(text)
        assert (doc.newline, doc.render()) == ("\n", text)
        assert list(doc) == [("DEVICE", "eth0"), ("BOOTPROTO", "dhcp"), ("ONBOOT", "yes")]

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(["A=1", "B='x", "y'", "# c", "\r", "\n", "\r\n", " ", "="])))
    def test_parse_then_render_gives_the_text_back(self, pieces: list[str]) -> None:
        text = "".join(pieces)
        try:
            doc = ShellVars.parse(text)
        except InvalidInput:
            return  # a quote left open up to the end: refused, not guessed
        assert doc.render() == text
        assert all(not v.endswith("\r") for _, v in doc)


class TestRender:
    def test_static_bridge_and_port(self) -> None:
        nic = ShellVars.parse(STATIC_NIC)
        bridge = render_bridge(nic, bridge="br0", nic=NIC, mac=MAC, stp=False, forward_delay=0)
        port = render_port(nic, "br0")
        assert bridge.get("IPADDR") == "10.231.0.5" and bridge.get("DNS2") == "9.9.9.9"
        assert bridge.get("DOMAIN") == "lab.example corp.example"
        assert bridge.get("NM_CONTROLLED") == "yes" and bridge.get("MTU") is None
        assert (bridge.get("STP"), bridge.get("DELAY"), bridge.get("MACADDR")) == ("no", "0", MAC)
        for key in ("IPADDR", "PREFIX", "GATEWAY", "DNS1", "DNS2", "DOMAIN"):
            assert port.get(key) is None, key
        for key in ("HWADDR", "MTU", "ETHTOOL_OPTS", "X_VENDOR_KEY", "NM_CONTROLLED"):
            assert port.get(key) == ShellVars.parse(STATIC_NIC).get(key), key
        assert (port.get("BRIDGE"), port.get("BOOTPROTO")) == ("br0", None)  # moved, not reset
        golden("static-ifcfg-br0", bridge.render())
        golden("static-ifcfg-nic", port.render())

    def test_dhcp_golden(self) -> None:
        nic = ShellVars.parse(DHCP_NIC)
        golden(
            "dhcp-ifcfg-br0",
            render_bridge(nic, bridge="br0", nic=NIC, mac=MAC, stp=False, forward_delay=0).render(),
        )
        golden("dhcp-ifcfg-nic", render_port(nic, "br0").render())

    @pytest.mark.parametrize("source", [STATIC_NIC, DHCP_NIC])
    def test_parse_back(self, source: str) -> None:
        nic = ShellVars.parse(source)
        bridge = render_bridge(nic, bridge="br0", nic=NIC, mac=MAC, stp=True, forward_delay=2)
        port = render_port(nic, "br0")
        again_b, again_p = ShellVars.parse(bridge.render()), ShellVars.parse(port.render())
        assert list(again_b) == list(bridge) and list(again_p) == list(port)
        # Nothing is lost: every key ends up on one of the two devices.
        moved = {k for k, _ in again_b} | {k for k, _ in again_p}
        assert {k for k, _ in nic} <= moved
        assert again_b.get("STP") == "yes" and again_b.get("DELAY") == "2"


class TestPlan:
    def test_classic_scenario_with_networkmanager(self, tmp_path: Path) -> None:
        root = write_root(tmp_path, {f"ifcfg-{NIC}": DHCP_NIC, "ifcfg-lo": "DEVICE=lo\n"})
        plan = plan_for(root)
        scripts = f"{root}{SCRIPTS_DIR}"
        written = files_written(plan)
        backup = f"{root}/var/lib/kvmnet/backup/{STAMP}/ifcfg-{NIC}"
        assert written[backup] == DHCP_NIC
        assert not any(p.startswith(scripts) and "backup" in p for p in written)
        assert "BOOTPROTO=dhcp" in written[f"{scripts}/ifcfg-br0"]
        assert "BRIDGE=br0" in written[f"{scripts}/ifcfg-{NIC}"]
        commands = [s.argv for s in plan.steps if isinstance(s, RunCommand)]
        assert commands == [
            ("ip", "addr", "del", "192.168.0.1/24", "dev", "br0"),
            ("nmcli", "connection", "reload"),
            # NM would only "assume" the existing br0 (and refuse our profile for its other
            # MAC): the bridge gets the NIC's MAC and our profile is activated explicitly.
            ("ip", "link", "set", "br0", "address", MAC),
            ("nmcli", "connection", "up", "uuid", bridge_uuid("br0")),
            ("nmcli", "connection", "up", "uuid", "5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03"),
        ]
        assert "stale" in str(plan) and "192.168.0.1/24" in str(plan)
        assert plan.restore_runtime is False
        assert ("lacks-address", "br0", "192.168.0.1/24") in {
            (c.kind, c.subject, c.value) for c in plan.checks
        }

    def test_initscripts_when_no_networkmanager(self, tmp_path: Path) -> None:
        root = write_root(tmp_path, {f"ifcfg-{NIC}": STATIC_NIC})
        runner = RecordingRunner(fail=[("nmcli",)])
        plan = plan_for(root, bridge=None, dhcp=False, nm=None, runner=runner)
        assert runner.commands == [NM_RUNNING]  # the only thing it asked
        commands = [s.argv for s in plan.steps if isinstance(s, RunCommand)]
        assert commands == [("ifdown", NIC), ("ifup", NIC), ("ifup", "br0")]

    def test_nm_controlled_no_means_initscripts(self, tmp_path: Path) -> None:
        root = write_root(tmp_path, {f"ifcfg-{NIC}": DHCP_NIC + "NM_CONTROLLED=no\n"})
        plan = plan_for(root, nm=True)
        assert ("ifup", "br0") in plan.commands

    def test_profile_found_by_device_in_any_file_and_routes_follow(self, tmp_path: Path) -> None:
        root = write_root(
            tmp_path,
            {
                "ifcfg-System_eth": STATIC_NIC,
                "ifcfg-old.bak": f"DEVICE={NIC}\nBOOTPROTO=dhcp\n",  # ignored like initscripts does
                f"route-{NIC}": f"10.9.0.0/16 via 10.231.0.254 dev {NIC}\n",
            },
        )
        plan = plan_for(root, bridge=None, dhcp=False)
        scripts = f"{root}{SCRIPTS_DIR}"
        written = files_written(plan)
        assert "BRIDGE=br0" in written[f"{scripts}/ifcfg-System_eth"]
        assert written[f"{scripts}/route-br0"] == "10.9.0.0/16 via 10.231.0.254 dev br0\n"
        removed = [s.path for s in plan.steps if isinstance(s, RemoveFile)]
        assert removed == [f"{scripts}/route-{NIC}"]
        assert ("nmcli", "connection", "up", "id", NIC) not in plan.commands  # no UUID, no NAME
        assert ("nmcli", "connection", "up", "id", f"System {NIC}") in plan.commands

    def test_no_file_written_from_state(self, tmp_path: Path) -> None:
        plan = plan_for(write_root(tmp_path, {}), bridge=None)
        assert any("no ifcfg file describes" in w for w in plan.warnings)
        br0 = files_written(plan)[f"{tmp_path}/root{SCRIPTS_DIR}/ifcfg-br0"]
        assert "BOOTPROTO=dhcp" in br0

    def test_stp_on_warns(self, tmp_path: Path) -> None:
        root = write_root(tmp_path, {f"ifcfg-{NIC}": DHCP_NIC})
        backend = IfcfgBackend(root=str(root), runner=RecordingRunner(), network_manager=True)
        current = HostState(nic=nic_state(), bridge=None, routes=ROUTES, files=LocalRunner())
        plan = backend.plan_enslave(BridgeRequest(NIC, "br0", stp=True, forward_delay=15), current)
        assert any("30 s" in w for w in plan.warnings)
        assert "STP=yes" in files_written(plan)[f"{root}{SCRIPTS_DIR}/ifcfg-br0"]

    def test_bad_names_never_reach_a_path(self) -> None:
        with pytest.raises(InvalidName):
            BridgeRequest(NIC, "../../etc/passwd")

    def test_release_moves_settings_back(self, tmp_path: Path) -> None:
        nic = ShellVars.parse(STATIC_NIC)
        root = write_root(
            tmp_path,
            {
                "ifcfg-br0": render_bridge(
                    nic, bridge="br0", nic=NIC, mac=MAC, stp=False, forward_delay=0
                ).render(),
                f"ifcfg-{NIC}": render_port(nic, "br0").render(),
            },
        )
        backend = IfcfgBackend(
            root=str(root), runner=RecordingRunner(), network_manager=True, backup_stamp=STAMP
        )
        current = HostState(nic=nic_state(dhcp=False), bridge=None, files=LocalRunner())
        plan = backend.plan_release(BridgeRequest(NIC, "br0"), current)
        restored = ShellVars.parse(files_written(plan)[f"{root}{SCRIPTS_DIR}/ifcfg-{NIC}"])
        assert restored.get("BRIDGE") is None and restored.get("IPADDR") == "10.231.0.5"
        assert restored.get("X_VENDOR_KEY") == "left alone"
        assert f"{root}{SCRIPTS_DIR}/ifcfg-br0" in [
            s.path for s in plan.steps if isinstance(s, RemoveFile)
        ]


def test_augeas_shellvars_lens_parses_every_rendered_file(tmp_path: Path) -> None:
    """Augeas (real tool, syntax only) reads both rendered files with no error, and sees the
    same keys and values (its Shellvars lens keeps quotes raw: compare after unquoting)."""
    augtool = require_tool("augtool")
    root = write_root(tmp_path, {f"ifcfg-{NIC}": STATIC_NIC + 'EVIL="$(reboot)"\n'})
    plan = plan_for(root, bridge=None, dhcp=False)
    for path, content in files_written(plan).items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    script = (
        "set /augeas/load/Shellvars/lens Shellvars.lns\n"
        f"set /augeas/load/Shellvars/incl {SCRIPTS_DIR}/ifcfg-*\n"
        "load\n"
        f"print /files{SCRIPTS_DIR}\n"
        "print /augeas//error\n"
    )
    out = subprocess.run(
        [augtool, "--noautoload", f"--root={root}", "-A"],
        input=script,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "/error" not in out, out
    seen: dict[tuple[str, str], str] = {}
    for line in out.splitlines():
        left, _, right = line.partition(" = ")
        parts = left.split("/")
        if right and not parts[-1].startswith("#"):
            raw = right[1:-1].encode().decode("unicode_escape")
            seen[(parts[-2], parts[-1])] = unquote(raw)
    assert seen[("ifcfg-br0", "IPADDR")] == "10.231.0.5"
    assert seen[("ifcfg-br0", "DOMAIN")] == "lab.example corp.example"
    assert seen[(f"ifcfg-{NIC}", "EVIL")] == "$(reboot)"
    assert seen[(f"ifcfg-{NIC}", "BRIDGE")] == "br0"


def test_replaced_files_keep_their_mode(tmp_path: Path) -> None:
    root = write_root(
        tmp_path, {f"ifcfg-{NIC}": DHCP_NIC, f"route-{NIC}": "10.9.0.0/16 via 10.231.0.254\n"}
    )
    (root / SCRIPTS_DIR.lstrip("/") / f"ifcfg-{NIC}").chmod(0o600)
    (root / SCRIPTS_DIR.lstrip("/") / f"route-{NIC}").chmod(0o640)
    backend = IfcfgBackend(root=str(root), runner=LocalRunner(), network_manager=True)
    current = HostState(nic=nic_state(), bridge=None, routes=ROUTES, files=LocalRunner())
    plan = backend.plan_enslave(BridgeRequest(NIC, "br0"), current)
    modes = {Path(s.path).name: s.mode for s in plan.steps if isinstance(s, WriteFile)}
    assert modes[f"ifcfg-{NIC}"] == 0o600 and modes["route-br0"] == 0o640
    assert modes["ifcfg-br0"] == 0o644

"""Bad-input campaign findings F1, F6, F7, F12, F13 (fuzz-api report): names kvmnet writes
into config files, seconds and keepalive values libvirt or float() cannot take, and refusal
messages that must stay one short line.

F7: kernel-legal link names such as ``*``, ``!eth0``, ``br*``, ``x\\`` or ``&`` were written
into files whose readers take them as something else (networkd's ``[Match] Name=`` globs and
``!`` negation gave the bridge's address to eth0 and lo; a trailing backslash continued the
line; netplan's YAML keys broke). F6: names the kernel refuses (``all``, ``default``, any
``%``; ``br%d`` becomes br0) were accepted. Both are refused by the one interface-name rule
(`kvmnet.core.names`), while names kvmnet only reads stay readable.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import kvmnet
from kvmnet import (
    DomainXML,
    InvalidInput,
    InvalidName,
    InvalidType,
    KvmnetError,
    bulk,
)
from kvmnet.backends import Iproute2Backend, create_backend
from kvmnet.core import validate
from kvmnet.core.macs import MacPrefix
from kvmnet.core.names import validate_ifname
from kvmnet.errors import InvalidBridgeName
from kvmnet.hostnet.model.plan import WriteFile
from kvmnet.hostnet.model.request import BridgeRequest
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.nic import Bridge, HostNic
from kvmnet.hostnet.runners.runner import RecordingRunner
from kvmnet.testing import Guest, Nic, World, fake_host
from kvmnet.virt import _libvirt
from kvmnet.virt.neighbours import probe

OFF_MAC = "52:54:00:bb:00:01"
WORLD = World(
    (
        Guest("run1", nics=(Nic.network(mac="52:54:00:aa:00:01"),)),
        Guest("off1", running=False, nics=(Nic.network(mac=OFF_MAC),)),
        # A bridge made by hand with a name kvmnet would not write: still readable.
        Guest("odd1", running=False, nics=(Nic.bridge("br*", mac="52:54:00:cc:00:01"),)),
    )
)

# Kernel-legal (created with `ip link add NAME type bridge` in a throwaway namespace, see
# the campaign's kernel_names.txt) but read as something else by a config format kvmnet
# writes: networkd globs/negation, a line-continuing backslash, YAML specials, shell quotes.
CONFIG_HOSTILE = [
    "*", "br*", "?", "[a]", "!x", "!eth0", "!!x", "x\\", "\\", "#", "#x", "x#", ";x",
    "'", '"', "a'b", "$(id)", "`id`", "&a", "&", "*a", "|", "{}", "[x", "]", "@", "=",
    "a=b", "~", "x,y", "x;y", "{a", "a}", ">", "<", "%%",
]  # fmt: skip
# Refused by the kernel itself: EINVAL, or '%d' renamed (br%d -> br0).
KERNEL_REFUSED = ["all", "default", "%s", "%n", "a%b", "br%d"]
# Real naming schemes: udev/systemd predictable names, VLANs, bonds, OVS, libvirt, docker.
REAL_NAMES = [
    "enp0s20f0u1", "eth0.101", "wlp2s0", "ens5", "bond0.100", "br-ex", "br-int", "vnet0",
    "virbr0", "virbr0-nic", "docker0", "br_lan", "veth1a2b3c4d", "enx00e04c680001",
    "flannel.1", "cni0", "macvtap0", "1", "x-",
]  # fmt: skip


@pytest.fixture(scope="module")
def world_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return WORLD.write(tmp_path_factory.mktemp("world"))


@pytest.fixture
def host(world_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[kvmnet.Host]:
    monkeypatch.setenv("KVMNET_STATE_DIR", str(tmp_path / "state"))
    with kvmnet.connect(world_uri) as h:
        yield h


def _refusal(exc: BaseException, value: object) -> str:
    message = str(exc)
    assert validate.shown(value) in message, message
    assert "\n" not in message and len(message) < 400, message
    return message


# -- F6/F7: one rule for every name kvmnet writes ---------------------------------------------


@pytest.mark.parametrize("name", CONFIG_HOSTILE + KERNEL_REFUSED)
def test_a_name_a_config_file_would_misread_is_refused_everywhere(
    name: str, host: kvmnet.Host
) -> None:
    backend = Iproute2Backend(runner=RecordingRunner())
    off1 = host.domain("off1")
    before = off1.xml(inactive=True)
    calls: dict[str, Callable[[], object]] = {
        "Domain.use_bridge": lambda: off1.use_bridge(name, dry_run=True),
        "Domain.add_interface": lambda: off1.add_interface(bridge=name, dry_run=True),
        "bulk.bridge_many": lambda: bulk.bridge_many(host, name, ["off1"], dry_run=True),
        "Bridge": lambda: Bridge(name, backend=backend),
        "HostNic": lambda: HostNic(name, backend=backend),
        "BridgeRequest": lambda: BridgeRequest("eth0", name),
        "DomainXML.use_bridge": lambda: DomainXML(before).use_bridge(name),
        "validate.ifname": lambda: validate.ifname(name, what="bridge"),
    }
    for label, call in calls.items():
        with pytest.raises(InvalidName) as info:
            call()
        message = _refusal(info.value, name)
        assert "use 1-15 letters, digits, '-', '_' or '.'" in message, (label, message)
    assert off1.xml(inactive=True) == before
    with pytest.raises(InvalidBridgeName):  # the preflight refusal, and an InvalidName
        Bridge(name, backend=backend)


@pytest.mark.parametrize("name", KERNEL_REFUSED)
def test_the_message_says_why_the_kernel_refuses(name: str) -> None:
    with pytest.raises(InvalidName) as info:
        validate.ifname(name, what="bridge", existing=True)  # not even an existing link
    reason = "reserved" if "%" not in name else "'%'"
    assert reason in str(info.value)


@pytest.mark.parametrize("name", REAL_NAMES)
def test_real_interface_names_are_accepted(name: str, host: kvmnet.Host) -> None:
    assert validate.ifname(name) == name
    backend = Iproute2Backend(runner=RecordingRunner())
    assert Bridge(name, backend=backend).name == name
    assert HostNic(name, backend=backend).name == name
    change = host.domain("off1").use_bridge(name, dry_run=True)
    assert change.interface is not None and change.interface.source == name


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=15))
def test_every_accepted_name_reads_back_as_itself(name: str) -> None:
    # What the config readers do with an accepted name: nothing special.
    try:
        validate_ifname(name)
    except InvalidName:
        return
    assert not set(name) & set("*?[]!\\'\"#;$&|{},=@%~<>` :/")
    assert name not in ("all", "default", ".", "..") and not name.startswith("-")
    # networkd [Match] Name=: a glob that matches only itself.
    assert fnmatch.fnmatchcase(name, name)
    assert not any(
        fnmatch.fnmatchcase(other, name) for other in ("eth0", "lo", "br0", "x") if other != name
    )
    # netplan: a YAML key (libyaml reads keys as text, as BaseLoader does).
    assert yaml.load(f"bridges:\n  {name}:\n    interfaces: [eth0]\n", Loader=yaml.BaseLoader) == {
        "bridges": {name: {"interfaces": ["eth0"]}}
    }


def _networkd_plan(tmp_path: Path, name: str) -> dict[str, str]:
    root = tmp_path / "root"
    (root / "etc/systemd/network").mkdir(parents=True)
    network = root / "etc/systemd/network/10-eth0.network"
    network.write_text("[Match]\nName=eth0\n\n[Network]\nAddress=10.0.0.5/24\n")
    runner = fake_host(
        [LinkState("eth0", "52:54:00:aa:00:01", addresses=(IpAddress("10.0.0.5/24"),))],
        routes=[IpRoute("default", "eth0", gateway="10.0.0.1")],
        files={str(network): network.read_bytes()},
    )
    backend = create_backend("networkd", root=str(root), runner=runner)
    plan = Bridge(name, backend=backend).enslave(HostNic("eth0", backend=backend), dry_run=True)
    return {s.path: s.content for s in plan.steps if isinstance(s, WriteFile)}


def test_a_glob_bridge_name_gets_no_networkd_file(tmp_path: Path) -> None:
    # F7's worst case: [Match] Name=* would have given the bridge's address to every link.
    for name in ("*", "!eth0", "br*", "x\\"):
        with pytest.raises(InvalidName):
            _networkd_plan(tmp_path / name.encode().hex(), name)
    written = _networkd_plan(tmp_path / "ok", "br-lan.1")
    match = [t for p, t in written.items() if p.endswith("kvmnet-br-lan.1.network")]
    assert match and "Name=br-lan.1\n" in match[0]


def test_names_kvmnet_only_reads_keep_the_kernel_rule(host: kvmnet.Host) -> None:
    # A bridge made by hand as "br*": its guest is listed, selected and its addresses read.
    assert [i.source for i in host.domain("odd1").interfaces] == ["br*"]
    assert [t.domain.name for t in bulk.select(host, on_bridge="br*")] == ["odd1"]
    assert validate.ifname("br*", existing=True) == "br*"
    for name in ("all", "br%d", "a/b", "a:b", "-x", ""):
        with pytest.raises(InvalidName):
            bulk.select(host, on_bridge=name)
    # probe reads an existing bridge (the name goes into argv only): looked up, not refused.
    runner = RecordingRunner()
    assert probe("br*", ["52:54:00:cc:00:01"], runner=runner).found == ()
    assert any("br*" in call for call in map(str, runner.calls))
    with pytest.raises(InvalidName):
        probe("default", ["52:54:00:cc:00:01"], runner=RecordingRunner())


def test_the_cli_refuses_a_hostile_bridge_name_in_one_line(world_uri: str, tmp_path: Path) -> None:
    env = {**os.environ, "KVMNET_STATE_DIR": str(tmp_path / "state")}
    for name, args in (
        ("br*", ("-c", world_uri, "bridge", "off1", "br*", "--dry-run")),
        ("!eth0", ("host-bridge", "eth0", "!eth0", "--backend", "iproute2", "--dry-run")),
        ("br%d", ("host-bridge", "eth0", "br%d", "--backend", "iproute2", "--dry-run")),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "kvmnet", *args],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and repr(name) in result.stderr, result.stderr


# -- F1: seconds ----------------------------------------------------------------------------


def test_seconds_too_large_for_a_float_are_refused(world_uri: str, host: kvmnet.Host) -> None:
    big = 10**400
    bridge = Bridge("br9", backend=Iproute2Backend(runner=RecordingRunner()))
    off1 = host.domain("off1")
    before = off1.xml(inactive=True)
    calls: dict[str, Callable[[], object]] = {
        "connect(readback_timeout)": lambda: kvmnet.connect(world_uri, readback_timeout=big),
        "use_bridge(bounce_link)": lambda: off1.use_bridge("br9", bounce_link=big),
        "use_nat(bounce_link)": lambda: off1.use_nat("default", bounce_link=-big),
        "bounce_link(seconds)": lambda: host.domain("run1").bounce_link(seconds=big),
        "enslave(confirm_within)": lambda: bridge.enslave("eth9", dry_run=True, confirm_within=big),
        "release(confirm_within)": lambda: bridge.release("eth9", dry_run=True, confirm_within=big),
        "duration(10**5000)": lambda: validate.duration(10**5000, "wait"),
    }
    for label, call in calls.items():
        with pytest.raises(InvalidInput) as info:
            call()
        assert "bits>" in str(info.value) and "seconds" in str(info.value), label
    assert off1.xml(inactive=True) == before


def test_plan_apply_refuses_huge_seconds_before_anything_runs(tmp_path: Path) -> None:
    runner = fake_host(
        [LinkState("eth0", "52:54:00:aa:00:01", addresses=(IpAddress("10.0.0.5/24"),))],
        routes=[IpRoute("default", "eth0", gateway="10.0.0.1")],
    )
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave("eth0", dry_run=True)
    ran = len(runner.calls)
    for option, value in (("confirm_within", 10**400), ("retry_interval", 10**400),
                          ("confirm_within", 1e-300), ("confirm_within", 0.5),
                          ("confirm_within", 86401)):  # fmt: skip
        with pytest.raises(InvalidInput) as info:
            plan.apply(**{option: value, "state_dir": str(tmp_path / "state")})  # type: ignore[arg-type]
        assert f"{option}=" in str(info.value)
        if option == "confirm_within":
            assert "from 1 to 86400" in str(info.value)
    assert len(runner.calls) == ran and not (tmp_path / "state").exists()


def test_confirm_within_has_a_usable_minimum() -> None:
    bridge = Bridge("br9", backend=Iproute2Backend(runner=RecordingRunner()))
    for tiny in (1e-300, 0.5, 5e-324):
        with pytest.raises(InvalidInput, match=r"use 1 up to 86400"):
            bridge.enslave("eth9", dry_run=True, confirm_within=tiny)
    assert validate.confirm_within(1) == 1.0
    assert validate.confirm_within(86400) == 86400.0
    assert validate.confirm_within(None) is None


# -- F13: keepalive -------------------------------------------------------------------------


@pytest.mark.parametrize("keepalive", [(2**31, 3), (2147484, 3), (5, 2**32), (5, 2**64)])
def test_keepalive_beyond_what_libvirt_takes_is_refused(
    keepalive: tuple[int, int], world_uri: str
) -> None:
    with pytest.raises(InvalidInput, match="keepalive") as info:
        kvmnet.connect(world_uri, keepalive=keepalive)
    _refusal(info.value, max(keepalive))


def test_keepalive_at_libvirts_limits_is_taken() -> None:
    assert validate.keepalive((2147483, 4294967295)) == (2147483, 4294967295)


def test_a_failed_keepalive_closes_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    # The binding raises OverflowError (not libvirtError) for a C int overflow: the connection
    # opened just before must not be left open.
    closed: list[bool] = []

    class Conn:
        def setKeepAlive(self, interval: int, count: int) -> None:  # libvirt's name
            raise OverflowError("signed integer is greater than maximum")

        def close(self) -> int:
            closed.append(True)
            return 0

    monkeypatch.setattr(_libvirt, "_ensure_event_loop", lambda: None)
    monkeypatch.setattr("libvirt.open", lambda uri: Conn())
    with pytest.raises(OverflowError):
        _libvirt.open_connection("qemu:///system", keepalive=(2**31, 3))
    assert closed == [True]


# -- F12: messages --------------------------------------------------------------------------


def test_messages_stay_short_for_a_huge_value(host: kvmnet.Host) -> None:
    big = "a" * 1_000_000
    calls: dict[str, Callable[[], object]] = {
        "Host.domain": lambda: host.domain(big),
        "use_bridge(bridge)": lambda: host.domain("off1").use_bridge(big, dry_run=True),
        "use_bridge(iface)": lambda: host.domain("off1").use_bridge("br0", big, dry_run=True),
        "create_backend": lambda: create_backend(big),
        "MacAllocator(prefix)": lambda: kvmnet.MacAllocator(host, prefix=big, kernel_links=False),
        "MacPrefix.parse": lambda: MacPrefix.parse(big),
        "Host.network": lambda: host.network("n" * 255),
        "bulk.select(names)": lambda: bulk.select(host, [big, big + "b"]),
    }
    for label, call in calls.items():
        with pytest.raises(KvmnetError) as info:
            call()
        # The value is cut to about 120 characters; the rest is the URI and the advice.
        assert len(str(info.value)) < 600 and "\n" not in str(info.value), label


def test_a_duplicate_mac_lists_a_few_indexes_and_counts_the_rest() -> None:
    nic = "<interface type='network'><mac address='52:54:00:00:00:01'/></interface>"
    doc = DomainXML(f"<domain><name>x</name><devices>{nic * 20000}</devices></domain>")
    with pytest.raises(InvalidInput) as info:
        doc.use_bridge("br0", "52:54:00:00:00:01")
    message = str(info.value)
    assert "0, 1, 2" in message and "and 19990 more" in message and len(message) < 300


def test_an_unknown_mac_lists_a_few_interfaces() -> None:
    nics = "".join(
        f"<interface type='network'><mac address='52:54:00:00:{i // 256:02x}:{i % 256:02x}'/>"
        "</interface>"
        for i in range(1, 2001)
    )
    doc = DomainXML(f"<domain><name>x</name><devices>{nics}</devices></domain>")
    with pytest.raises(KvmnetError) as info:
        doc.use_bridge("br0", "52:54:00:ff:00:01")
    assert "and 1990 more" in str(info.value) and len(str(info.value)) < 400


def test_an_index_too_large_to_print_is_refused_by_name() -> None:
    doc = DomainXML("<domain><name>x</name><devices><interface type='network'/></devices></domain>")
    with pytest.raises(KvmnetError) as info:
        doc.use_bridge("br0", 10**5000)
    assert "bits>" in str(info.value)


def test_library_errors_become_one_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        DomainXML("<domain><name>\x00</name></domain>")
    assert "\n" not in str(info.value) and "line 1, column" in str(info.value)
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("not xml")
    with pytest.raises(kvmnet.ConnectionFailed) as conn:
        kvmnet.connect(f"test://{garbage}")
    assert "\n" not in str(conn.value) and "Start tag expected" in str(conn.value)


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _TallRepr:
    def __repr__(self) -> str:
        return "line one\nline two"


def test_shown_never_raises_and_stays_on_one_line() -> None:
    assert validate.shown(_BadRepr()) == "<_BadRepr object whose repr() fails>"
    assert validate.shown(_TallRepr()) == "line one line two"
    assert validate.shown(10**5000) == f"<an int of {(10**5000).bit_length()} bits>"
    assert validate.shown(-(10**400)).startswith("<a negative int of")
    assert validate.shown("br0") == "'br0'" and validate.shown(2**31) == "2147483648"
    assert len(validate.shown("a" * 10**6)) <= 120
    # In a refusal: the argument's error, not the message code's RuntimeError.
    for call in (
        lambda: validate.flag(_BadRepr(), "live"),
        lambda: validate.ifname(_BadRepr()),
        lambda: kvmnet.MacAllocator(_BadRepr()),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInput, match="repr"):
            call()


def test_listed_caps_and_counts() -> None:
    assert validate.listed(range(3)) == "0, 1, 2"
    assert validate.listed(range(25), limit=2) == "0, 1 and 23 more"
    assert validate.one_line("a:1: bad\nnot xml\n  ^\n") == "a:1: bad not xml"
    assert validate.one_line("range\n, line 1") == "range, line 1"
    assert len(validate.one_line("x" * 1000)) == 300


def test_mac_prefix_of_the_wrong_type() -> None:
    for value in (5, None, "52:54:00", b"RT"):
        with pytest.raises(InvalidType, match=r"MacPrefix\.parse"):
            MacPrefix(value)  # type: ignore[arg-type]
    listed = MacPrefix([0x52, 0x54, 0x00])  # type: ignore[arg-type]
    assert listed == MacPrefix((0x52, 0x54, 0x00)) and hash(listed)

"""kvmnet.lan.onboard: one plan for guest and host.

The guest side is real (libvirt's test driver, a fresh world per test); the host side is a
RecordingRunner that describes a NIC with a DHCP address and, once the plan has enslaved it,
the bridged state, so the shared apply mechanism's verification really runs against it.
The real end-to-end run (a booted guest, a real bridge) is tests/integration/test_real_guest.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kvmnet
from kvmnet.backends import Iproute2Backend
from kvmnet.hostnet.fake import link_json, route_json
from kvmnet.hostnet.inspect import LINKS_ARGV, ROUTES6_ARGV, ROUTES_ARGV
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.runners.runner import CommandResult, RecordingRunner
from kvmnet.lan.onboard import LanPlan, bridge_guest, nat_guest, plan_bridge_guest, plan_nat_guest
from kvmnet.testing import Guest, Nic, World

NIC, BR, MAC = "eth0", "br0", "52:54:00:aa:00:01"
ADDR = IpAddress("10.0.0.5/24", valid_lft=3600, preferred_lft=3600, dynamic=True)
ENSLAVE = ("ip", "link", "set", NIC, "master", BR)
RELEASE = ("ip", "link", "set", NIC, "nomaster")


class LanHost:
    """A host whose `ip -j` answers follow the commands it receives: eth0 alone with its
    address until `ip link set eth0 master br0` runs, then eth0 in br0 with br0 holding the
    address and the default route."""

    def __init__(
        self,
        *,
        bridged: bool = False,
        fail: tuple[tuple[str, ...], ...] = (),
        other_ports: tuple[str, ...] = (),
    ) -> None:
        self.start_bridged = bridged
        self.other_ports = other_ports  # e.g. a guest's tap, also a port of br0
        self.runner = RecordingRunner(
            replies={
                LINKS_ARGV: self._links,
                ROUTES_ARGV: self._routes,
                ROUTES6_ARGV: "[]",
                ("iptables", "-S", "FORWARD"): "-P FORWARD ACCEPT\n",
            },
            files={f"/sys/class/net/{NIC}/uevent": b"INTERFACE=eth0\n"},
            fail=fail,
        )

    @property
    def bridged(self) -> bool:
        state = self.start_bridged
        for argv in self.runner.commands:
            if argv == ENSLAVE and ENSLAVE not in self.runner.fail:
                state = True
            elif argv[:5] == RELEASE[:5] and argv[-1] == "nomaster":
                state = False
        return state

    def _links(self, argv: tuple[str, ...]) -> CommandResult:
        if self.bridged:
            links = [
                LinkState(NIC, MAC, master=BR, operstate="UP"),
                *(LinkState(p, "fe:54:00:00:00:01", master=BR) for p in self.other_ports),
                LinkState(
                    BR,
                    MAC,
                    kind="bridge",
                    stp=False,
                    forward_delay=0,
                    operstate="UP",
                    addresses=(ADDR,),
                    ports=(NIC, *self.other_ports),
                ),
            ]
        else:
            links = [LinkState(NIC, MAC, operstate="UP", addresses=(ADDR,))]
        data = [link_json(link, n) for n, link in enumerate(links, 1)]
        return CommandResult(argv, 0, json.dumps(data))

    def _routes(self, argv: tuple[str, ...]) -> CommandResult:
        dev = BR if self.bridged else NIC
        route = IpRoute("default", dev, gateway="10.0.0.1")
        return CommandResult(argv, 0, json.dumps([route_json(route)]))

    def backend(self) -> Iproute2Backend:
        return Iproute2Backend(runner=self.runner)

    def writes(self) -> list[tuple[str, ...]]:
        """Commands that change the host: every `ip` command that is not a JSON query (kvmnet
        reads with `ip -j`), every process started; daemon probes (nmcli, networkctl) and
        other reads are left out, whatever their argv."""
        return [
            c.argv
            for c in self.runner.calls
            if (c.kind == "run" and c.argv[:1] == ("ip",) and "-j" not in c.argv)
            or c.kind in ("spawn", "write", "remove")
        ]


Hosts = Callable[[str], kvmnet.Host]


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Open connections that stay open for the whole test (a test-driver world lives only as
    long as its connection), closed at teardown."""
    opened: list[kvmnet.Host] = []

    def open_host(uri: str) -> kvmnet.Host:
        opened.append(kvmnet.connect(uri))
        return opened[-1]

    yield open_host
    for host in opened:
        host.close()


def world(tmp_path: Path, *guests: Guest) -> str:
    return World(guests=guests or (Guest("web1", running=False),)).write(tmp_path)


def persistent_sources(host: kvmnet.Host, name: str = "web1") -> list[tuple[str, str | None]]:
    # Each test-driver connection starts from the world as written: ask the same connection.
    return [(i.type, i.source) for i in host.domain(name).persistent_interfaces]


def test_dry_run_shows_host_plan_diff_and_checks_and_changes_nothing(
    tmp_path: Path, hosts: Hosts
) -> None:
    uri, lan = world(tmp_path), LanHost()
    host = hosts(uri)
    result = bridge_guest(host, "web1", bridge=BR, nic=NIC, backend=lan.backend(), dry_run=True)
    assert not result.applied
    text = str(result)
    assert "ip link add br0" in text and "ip link set eth0 master br0" in text  # host commands
    assert "-    <interface type='network'>" in text or '-    <interface type="network">' in text
    assert "<source bridge='br0'/>" in text  # the XML diff
    assert "eth0 is a port of br0" in text  # a host check
    assert "web1's interface 52:54:00:fe:00:00 is on br0" in text  # a guest check
    assert text.index("## 1. host") < text.index("## 2. guest")
    assert lan.writes() == []
    assert persistent_sources(host) == [("network", "default")]


def test_existing_bridge_leaves_the_host_alone(tmp_path: Path, hosts: Hosts) -> None:
    uri, lan = world(tmp_path), LanHost(bridged=True)
    host = hosts(uri)
    plan = plan_bridge_guest(host, "web1", bridge=BR, nic=NIC, backend=lan.backend())
    assert plan.host_plan is None
    assert any("br0 exists already" in n for n in plan.notes)
    assert "host: nothing to do" in str(plan)


def test_apply_bridges_the_host_then_moves_the_guest(tmp_path: Path, hosts: Hosts) -> None:
    uri, lan = world(tmp_path), LanHost()
    steps: list[tuple[int, int, str]] = []
    host = hosts(uri)
    result = bridge_guest(
        host,
        "web1",
        bridge=BR,
        nic=NIC,
        backend=lan.backend(),
        progress=lambda d, t, s: steps.append((d, t, s)),
    )
    assert result.applied
    assert result.host_result is not None and result.host_result.verified
    assert ENSLAVE in lan.writes()
    assert lan.writes()[0][:4] == ("ip", "link", "add", "br0")
    assert persistent_sources(host) == [("bridge", "br0")]
    assert result.change is not None and result.change.applied_config
    assert [d for d, _, _ in steps] == [0, 1, 2, 3] and {t for _, t, _ in steps} == {3}
    assert "web1: interface 52:54:00:fe:00:00 is on br0" in str(result)
    assert "eth0 bridged into br0 (iproute2)" in str(result)
    assert "web1 is not running; it gets one when it boots" in str(result)
    html = result._repr_html_()
    assert "bridged into <code" in html and "(iproute2, verified)" in html
    assert "web1 is not running; it gets one when it boots" in html
    assert repr(result) == "<LanResult 'web1' on br0: no address yet>"


def test_guest_failure_after_host_step_says_what_stands(tmp_path: Path, hosts: Hosts) -> None:
    # live=True on a running guest: libvirt's test driver cannot change a running guest, so the
    # guest step fails after the host step succeeded.
    uri, lan = world(tmp_path, Guest("web1")), LanHost()
    host = hosts(uri)
    plan = plan_bridge_guest(
        host, "web1", bridge=BR, nic=NIC, backend=lan.backend(), live=True, address_timeout=0
    )
    with pytest.raises(kvmnet.PartiallyApplied) as caught:
        plan.apply()
    message = str(caught.value)
    assert "eth0 is bridged into br0" in message
    assert "guest web1 is unchanged" in message
    assert "live=False" in message  # the guest step's own advice survives
    assert isinstance(caught.value.__cause__, kvmnet.LiveChangeUnsupported)
    assert caught.value.done and "bridged into br0" in caught.value.done[0]
    assert ENSLAVE in lan.writes()  # the host stays bridged: verified and consistent
    assert persistent_sources(host) == [("network", "default")]


def test_host_failure_rolls_back_and_leaves_the_guest_alone(tmp_path: Path, hosts: Hosts) -> None:
    uri, lan = world(tmp_path), LanHost(fail=(ENSLAVE,))
    host = hosts(uri)
    with pytest.raises(kvmnet.RolledBack):
        bridge_guest(host, "web1", bridge=BR, nic=NIC, backend=lan.backend())
    assert persistent_sources(host) == [("network", "default")]
    # The plan stopped at the failing step: the address was never copied onto br0.
    assert not any(c[:3] == ("ip", "addr", "add") and "br0" in c for c in lan.writes())


def test_nic_without_backend_on_the_test_driver_is_refused(tmp_path: Path, hosts: Hosts) -> None:
    # Without backend= the host step acts on the Host's machine: the test driver has none.
    host = hosts(world(tmp_path))
    with pytest.raises(kvmnet.PreflightRefused, match="test driver") as caught:
        plan_bridge_guest(host, "web1", bridge=BR, nic=NIC)
    assert caught.value.check == "host-side"


def test_backend_without_nic_is_refused(tmp_path: Path, hosts: Hosts) -> None:
    host = hosts(world(tmp_path))
    with pytest.raises(kvmnet.PreflightRefused, match="give nic=") as caught:
        plan_bridge_guest(host, "web1", bridge=BR, backend=LanHost().backend())
    assert caught.value.check == "nic-and-backend"


def test_without_nic_the_bridge_must_exist_and_only_the_guest_moves(
    tmp_path: Path, hosts: Hosts
) -> None:
    uri = world(tmp_path)
    host = hosts(uri)
    result = bridge_guest(host, "web1", bridge=BR, address_timeout=0)
    assert result.plan.host_plan is None and result.host_result is None
    assert persistent_sources(host) == [("bridge", "br0")]


def test_back_to_nat_then_release_the_bridge(tmp_path: Path, hosts: Hosts) -> None:
    uri = world(tmp_path, Guest("web1", nics=(Nic.bridge(BR),), running=False))
    lan = LanHost(bridged=True)
    host = hosts(uri)
    steps: list[tuple[int, int, str]] = []
    result = nat_guest(
        host,
        "web1",
        release=NIC,
        backend=lan.backend(),
        progress=lambda d, t, s: steps.append((d, t, s)),
    )
    text = str(result.plan)
    assert text.index("## 1. guest") < text.index("## 2. host")
    assert [d for d, _, _ in steps] == [0, 1, 2, 3]
    assert steps[2][2] == "host: eth0 released from br0"
    assert persistent_sources(host) == [("network", "default")]
    assert result.host_result is not None and result.host_result.verified
    assert any(c[-1] == "nomaster" for c in lan.writes())


def test_release_is_refused_while_other_guests_use_the_bridge(tmp_path: Path, hosts: Hosts) -> None:
    uri = world(
        tmp_path,
        Guest("web1", nics=(Nic.bridge(BR),), running=False),
        Guest("db1", nics=(Nic.bridge(BR),), running=False),
    )
    lan = LanHost(bridged=True)
    host = hosts(uri)
    with pytest.raises(kvmnet.PreflightRefused, match="db1") as caught:
        nat_guest(host, "web1", release=NIC, backend=lan.backend())
    assert caught.value.check == "bridge-in-use"
    forced = nat_guest(
        host, "web1", release=NIC, backend=lan.backend(), force=("bridge-in-use",), dry_run=True
    )
    assert forced.plan.host_plan is not None
    # The Host method takes the same options as the module function.
    via_host = host.nat_guest(
        "web1", release=NIC, backend=lan.backend(), force=("bridge-in-use",), dry_run=True
    )
    assert via_host.plan.host_plan is not None
    assert lan.writes() == []
    assert persistent_sources(host) == [("bridge", "br0")]


def test_html_shows_the_plan_and_the_coloured_diff(tmp_path: Path, hosts: Hosts) -> None:
    uri, lan = world(tmp_path), LanHost()
    host = hosts(uri)
    plan = plan_bridge_guest(host, "web1", bridge=BR, nic=NIC, backend=lan.backend())
    assert isinstance(plan, LanPlan)
    html = plan._repr_html_()
    assert "ip link set eth0 master br0" in html
    assert "&lt;source bridge=&#x27;br0&#x27;/&gt;" in html
    assert "#2ca02c" in html  # the added line is coloured
    assert "<LanPlan bridge 'web1' -> br0" in repr(plan)


def test_address_lookup_reports_a_new_address_only(tmp_path: Path, hosts: Hosts) -> None:
    from kvmnet.lan.onboard import wait_for_address

    uri = world(tmp_path, Guest("web1"))
    host = hosts(uri)
    dom = host.domain("web1")
    mac = dom.interfaces[0].mac
    found = wait_for_address(dom, mac, timeout=0)
    assert [a.source for a in found] == ["lease"]
    # The address it had before the move does not count as the new one.
    old = frozenset(a.address for a in found)
    slept: list[float] = []
    assert wait_for_address(dom, mac, timeout=0, exclude=old, sleep=slept.append) == ()
    assert slept == []  # timeout 0: one look, no wait


def test_host_methods_are_the_same_calls(tmp_path: Path, hosts: Hosts) -> None:
    uri = world(tmp_path, Guest("web1", running=False))
    host, lan = hosts(uri), LanHost()
    dry = host.bridge_guest("web1", bridge=BR, nic=NIC, backend=lan.backend(), dry_run=True)
    assert dry.plan.host_plan is not None and not dry.applied
    done = host.bridge_guest("web1", bridge=BR, address_timeout=0)
    assert done.applied and persistent_sources(host) == [("bridge", "br0")]
    back = host.nat_guest("web1", address_timeout=0)
    assert back.applied and persistent_sources(host) == [("network", "default")]


def test_a_guest_on_a_libvirt_network_over_the_bridge_blocks_release(
    tmp_path: Path, hosts: Hosts
) -> None:
    # World()'s network "lan" is <forward mode='bridge'/> over br0: its guests use br0 too.
    uri = world(
        tmp_path,
        Guest("web1", nics=(Nic.bridge(BR),), running=False),
        Guest("app1", nics=(Nic.network("lan"),), running=False),
    )
    host = hosts(uri)
    with pytest.raises(kvmnet.PreflightRefused, match="app1"):
        nat_guest(host, "web1", release=NIC, backend=LanHost(bridged=True).backend())
    assert persistent_sources(host) == [("bridge", "br0")]


def test_dead_man_timer_is_shown_with_what_a_rollback_would_mean(
    tmp_path: Path, hosts: Hosts
) -> None:
    host, lan = hosts(world(tmp_path)), LanHost()
    plan = plan_bridge_guest(
        host, "web1", bridge=BR, nic=NIC, backend=lan.backend(), confirm_within=60
    )
    text = str(plan)
    assert "rolled back unless confirmed within 60 s" in text
    assert "br0 goes away: move web1 back with `kvmnet nat web1`" in text


def test_release_is_planned_again_after_the_guest_left_the_bridge(
    tmp_path: Path, hosts: Hosts
) -> None:
    # While the guest runs, its tap is a second port of br0, so a release planned then keeps
    # br0. The guest step takes the tap out; the host step must plan with that view.
    # (The test driver names a running guest's tap testnet0.)
    uri = world(tmp_path, Guest("web1", nics=(Nic.bridge(BR),), running=True))
    host, lan = hosts(uri), LanHost(bridged=True, other_ports=("testnet0",))
    plan = plan_nat_guest(host, "web1", release=NIC, backend=lan.backend(), address_timeout=0)
    assert plan.host_plan is not None
    assert not any(c[:3] == ("ip", "link", "del") for c in plan.host_plan.commands)
    assert any("planned again once web1's tap testnet0 has left br0" in n for n in plan.notes)
    lan.other_ports = ()  # what the guest's move does to the host
    result = plan.apply()
    assert result.host_result is not None
    applied = result.host_result.plan.commands
    assert ("ip", "link", "del", BR) in [c[:4] for c in applied]


def test_release_is_refused_up_front_while_a_port_no_guest_names_is_on_the_bridge(
    tmp_path: Path, hosts: Hosts
) -> None:
    """Another NIC (or a container's veth) on the bridge would lose the LAN: refused before
    the guest moves, not after (a refusal then would leave the guest on NAT, the NIC bridged)."""
    uri = world(tmp_path, Guest("web1", nics=(Nic.bridge(BR),), running=True))
    host, lan = hosts(uri), LanHost(bridged=True, other_ports=("testnet0", "eno2"))
    with pytest.raises(kvmnet.PreflightRefused) as caught:
        plan_nat_guest(host, "web1", release=NIC, backend=lan.backend(), address_timeout=0)
    assert caught.value.check == "bridge-in-use" and "(eno2)" in str(caught.value)
    assert host.domain("web1").interfaces[0].source == BR  # the guest did not move
    plan = plan_nat_guest(
        host, "web1", release=NIC, backend=lan.backend(), address_timeout=0,
        force=("bridge-in-use",),
    )  # fmt: skip
    assert plan.host_plan is not None

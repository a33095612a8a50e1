"""The iproute2 planner: the measured zero-outage order, lifetimes, routes, DHCP clients."""

from __future__ import annotations

import pytest

from kvmnet.backends import Iproute2Backend
from kvmnet.hostnet.inspect import inspect_host
from kvmnet.hostnet.model.plan import StartProcess, StopProcess
from kvmnet.hostnet.model.request import BridgeRequest
from kvmnet.hostnet.nic import Bridge
from tests.lab.fakes import MAC, NIC, bridge, classic_host, dhcp_host, nic, routes


def test_enslave_runs_the_measured_order() -> None:
    backend = Iproute2Backend(runner=dhcp_host())
    plan = Bridge("br0", backend=backend).enslave(NIC, dry_run=True)
    assert plan.commands == (
        ("kill", "-TERM", "4242"),
        ("ip", "link", "add", "br0", "address", MAC, "type", "bridge",
         "stp_state", "0", "forward_delay", "0"),
        ("ip", "link", "set", "br0", "up"),
        ("ip", "link", "set", NIC, "master", "br0"),
        ("ip", "addr", "add", "10.231.0.185/24", "brd", "10.231.0.255", "dev", "br0",
         "valid_lft", "3600", "preferred_lft", "3000"),
        ("ip", "route", "replace", "10.99.0.0/16", "via", "10.231.0.254", "dev", "br0"),
        ("ip", "route", "replace", "default", "via", "10.231.0.1", "dev", "br0",
         "proto", "dhcp", "metric", "100"),
        ("ip", "addr", "del", "10.231.0.185/24", "dev", NIC),
    )  # fmt: skip
    assert plan.dry_run and plan.backend == "iproute2" and plan.files == ()


def test_dry_run_changes_nothing() -> None:
    runner = dhcp_host()
    backend = Iproute2Backend(runner=runner)
    Bridge("br0", backend=backend).enslave(NIC, dry_run=True)
    assert all(c.kind == "run" for c in runner.calls)
    ran = {c.argv[:3] for c in runner.calls}
    assert ("ip", "link", "add") not in ran and ("kill", "-TERM", "4242") not in ran


def test_dhcp_client_is_stopped_and_one_started_on_the_bridge() -> None:
    backend = Iproute2Backend(runner=dhcp_host())
    plan = Bridge("br0", backend=backend).enslave(
        NIC, dry_run=True, dhcp_client=("udhcpc", "-i", "br0")
    )
    stops = [s for s in plan.steps if isinstance(s, StopProcess)]
    assert [(s.pid, s.argv[1]) for s in stops] == [(4242, "udhcpc")]
    assert plan.steps[0] is stops[0], "the client must stop before anything moves"
    assert isinstance(plan.steps[-1], StartProcess)
    assert plan.steps[-1].argv == ("udhcpc", "-i", "br0")
    assert not any("expires" in w for w in plan.warnings)


def test_without_a_client_on_the_bridge_the_plan_warns_about_the_lease() -> None:
    backend = Iproute2Backend(runner=dhcp_host())
    plan = Bridge("br0", backend=backend).enslave(NIC, dry_run=True)
    assert any("expires in 3600 s" in w for w in plan.warnings)


def test_classic_stale_address_is_removed_and_the_plan_says_so() -> None:
    backend = Iproute2Backend(runner=classic_host())
    plan = Bridge("br0", backend=backend).enslave(NIC, dry_run=True)
    assert ("ip", "addr", "del", "192.168.0.1/24", "dev", "br0") in plan.commands
    assert ("ip", "link", "set", "br0", "address", MAC) in plan.commands
    assert not any(c[:3] == ("ip", "link", "add") for c in plan.commands)
    text = str(plan)
    assert "stale address on the existing br0" in text
    assert "stale 192.168.0.1/24 is gone from br0" in text
    assert [c.kind for c in plan.checks].count("lacks-address") == 2


def test_stp_on_warns_about_the_outage() -> None:
    runner = dhcp_host()
    plan = Iproute2Backend(runner=runner).plan_enslave(
        BridgeRequest(NIC, "br0", stp=True, forward_delay=2), inspect_host(runner, NIC, "br0")
    )
    assert any("STP on" in w and "30 s" in w for w in plan.warnings)
    assert plan.commands[1][-4:] == ("stp_state", "1", "forward_delay", "200")


def test_release_is_the_way_back() -> None:
    from kvmnet.hostnet.fake import fake_host

    moved = bridge(mac=MAC, addresses=nic().addresses)
    runner = fake_host([nic(master="br0", addresses=()), moved], routes("br0"))
    backend = Iproute2Backend(runner=runner)
    plan = Bridge("br0", backend=backend).release(NIC, dry_run=True)
    assert plan.commands == (
        ("ip", "addr", "add", "10.231.0.185/24", "brd", "10.231.0.255", "dev", NIC,
         "valid_lft", "3600", "preferred_lft", "3000"),
        ("ip", "link", "set", NIC, "nomaster"),
        ("ip", "link", "set", NIC, "up"),
        ("ip", "route", "replace", "10.99.0.0/16", "via", "10.231.0.254", "dev", NIC),
        ("ip", "route", "replace", "default", "via", "10.231.0.1", "dev", NIC,
         "proto", "dhcp", "metric", "100"),
        ("ip", "addr", "del", "10.231.0.185/24", "dev", "br0"),
        ("ip", "link", "del", "br0"),
    )  # fmt: skip
    assert {c.kind for c in plan.checks} >= {"not-port", "has-address", "link-absent"}


def test_release_keeps_a_bridge_with_other_ports() -> None:
    from kvmnet.hostnet.fake import fake_host

    runner = fake_host(
        [nic(master="br0", addresses=()), bridge(), nic(name="vnet0", master="br0")],
        routes("br0"),
    )
    br = Bridge("br0", backend=Iproute2Backend(runner=runner))
    plan = br.release(NIC, dry_run=True, force=("bridge-in-use",))  # see test_release_ports
    assert ("ip", "link", "del", "br0") not in plan.commands
    assert any("vnet0" in w for w in plan.warnings)


def test_backend_takes_netns_and_validates_it() -> None:
    from kvmnet.errors import InvalidName

    assert Iproute2Backend(netns="lab-host").runner.netns == "lab-host"
    with pytest.raises(InvalidName, match="namespace"):
        Iproute2Backend(netns="../etc")


def test_enslaving_twice_is_a_no_op() -> None:
    from kvmnet.hostnet.fake import fake_host

    moved = bridge(mac=MAC, addresses=nic().addresses)
    runner = fake_host([nic(master="br0", addresses=()), moved], routes("br0"))
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC)
    assert plan.steps == () and "already a port of br0" in plan.warnings[0]
    assert all(c.kind == "run" and c.argv[:2] != ("ip", "addr") for c in runner.calls)


def test_dhcpcd_is_killed_without_its_deconfigure_on_sigterm() -> None:
    from kvmnet.hostnet.fake import fake_host

    runner = fake_host([nic()], routes(), processes={99: ["dhcpcd", "-4", "-B", NIC]})
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    assert plan.commands[0] == ("kill", "-KILL", "99")

"""Preflight on server topologies: a bond's slave and a VLAN's parent are refused by mistake,
naming the object to bridge instead; the bond and the VLAN themselves are bridged."""

from __future__ import annotations

import pytest

from kvmnet.backends import Iproute2Backend
from kvmnet.errors import PreflightRefused
from kvmnet.hostnet.model.plan import Plan
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.nic import Bridge, HostNic
from kvmnet.testing import fake_host

UP = ("BROADCAST", "MULTICAST", "UP", "LOWER_UP")


def _backend() -> Iproute2Backend:
    links = [
        LinkState("eth0", "52:54:00:aa:00:01", master="bond0", flags=UP),
        LinkState("eth1", "52:54:00:aa:00:01", master="bond0", flags=UP),
        LinkState("bond0", "52:54:00:aa:00:01", kind="bond", flags=UP,
                  addresses=(IpAddress("10.0.0.5/24"),)),
        LinkState("eth2", "52:54:00:aa:00:03", flags=UP, addresses=(IpAddress("10.1.0.5/24"),)),
        LinkState("eth2.100", "52:54:00:aa:00:03", kind="vlan", parent="eth2", flags=UP,
                  addresses=(IpAddress("10.100.0.5/24"),)),
        LinkState("eth2.200", "52:54:00:aa:00:03", kind="vlan", parent="eth2", flags=UP),
    ]
    return Iproute2Backend(runner=fake_host(links, [IpRoute("default", "bond0", "10.0.0.1")]))


def _enslave(nic: str, bridge: str = "br0", **kw: object) -> Plan:
    backend = _backend()
    return Bridge(bridge, backend=backend).enslave(HostNic(nic, backend=backend),
                                                   dry_run=True, **kw)  # type: ignore[arg-type]


def test_a_bond_slave_is_refused_naming_the_bond() -> None:
    with pytest.raises(PreflightRefused, match=r"slave of bond bond0: bridge the bond") as info:
        _enslave("eth1")
    assert info.value.check == "enslaved"


def test_the_bond_itself_is_bridged_with_its_slaves_untouched() -> None:
    plan = _enslave("bond0")
    commands = [" ".join(c) for c in plan.commands]
    assert "ip link set bond0 master br0" in commands
    assert not any("eth0" in c or "eth1" in c for c in commands)


def test_a_vlan_parent_is_refused_naming_its_vlans() -> None:
    with pytest.raises(PreflightRefused, match=r"eth2.100, eth2.200") as info:
        _enslave("eth2")
    assert info.value.check == "vlan-parent"
    assert "force=('vlan-parent',)" in str(info.value)
    assert _enslave("eth2", force=("vlan-parent",)) is not None


def test_a_vlan_is_bridged_and_its_parent_left_alone() -> None:
    plan = _enslave("eth2.100", "br100")
    commands = [" ".join(c) for c in plan.commands]
    assert "ip link set eth2.100 master br100" in commands
    assert "ip addr add 10.100.0.5/24 dev br100" in commands
    assert not any(" eth2 " in f" {c} " or "eth2.200" in c for c in commands)

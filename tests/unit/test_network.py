"""Network values and mode resolution (pure), and Host.networks() on the test driver."""

from __future__ import annotations

from pathlib import Path

import pytest

import kvmnet
from kvmnet import Mode, Network, NetworkNotFound
from kvmnet.core.network import NetworkIndex, mode_of_forward
from kvmnet.testing import (
    World,
    bridge_network,
    isolated_network,
    nat_network,
    network_xml,
    routed_network,
)

NETS = [
    Network.from_xml(network_xml(n))
    for n in (
        nat_network(reservations=[("52:54:00:AA:00:01", "192.168.122.10")]),
        bridge_network(),
        isolated_network(),
        routed_network(),
    )
]


def test_network_xml_is_parsed() -> None:
    nat, lan, iso, routed = NETS
    assert (nat.name, nat.bridge, nat.forward, nat.subnets) == (
        "default",
        "virbr0",
        "nat",
        ("192.168.122.0/24",),
    )
    assert nat.addresses == ("192.168.122.1/24",)
    assert nat.reservations == {"52:54:00:aa:00:01": "192.168.122.10"}
    assert nat.bridge_mac == "52:54:00:0a:0b:0c"
    assert (lan.forward, lan.bridge, lan.subnet) == ("bridge", "br0", None)
    assert iso.forward is None and iso.mode is Mode.ISOLATED
    assert routed.mode is Mode.ROUTED
    assert repr(nat) == "<Network 'default' nat on virbr0 192.168.122.0/24>"


def test_forward_without_mode_is_nat() -> None:
    net = Network.from_xml("<network><name>n</name><forward/><bridge name='virbr9'/></network>")
    assert net.mode is Mode.NAT


@pytest.mark.parametrize(
    ("forward", "mode"),
    [
        ("nat", Mode.NAT),
        ("bridge", Mode.BRIDGED),
        (None, Mode.ISOLATED),
        ("route", Mode.ROUTED),
        ("open", Mode.ROUTED),
        ("passthrough", Mode.DIRECT),
        ("hostdev", Mode.OTHER),
    ],
)
def test_mode_of_forward(forward: str | None, mode: Mode) -> None:
    assert mode_of_forward(forward) is mode


@pytest.mark.parametrize(
    ("iface_type", "source", "mode"),
    [
        ("network", "default", Mode.NAT),
        ("network", "lan", Mode.BRIDGED),
        ("network", "isolated", Mode.ISOLATED),
        ("network", "routed", Mode.ROUTED),
        ("network", "missing", Mode.OTHER),
        ("bridge", "virbr0", Mode.NAT),
        ("bridge", "br0", Mode.BRIDGED),  # the bridge-mode network's bridge: the LAN
        ("bridge", "br7", Mode.BRIDGED),
        ("bridge", "virbr2", Mode.ISOLATED),
        ("direct", "eth0", Mode.DIRECT),
        ("user", None, Mode.OTHER),
    ],
)
def test_index_resolves_modes(iface_type: str, source: str | None, mode: Mode) -> None:
    assert NetworkIndex(NETS).mode_of(iface_type, source) is mode


def test_invalid_network_xml() -> None:
    with pytest.raises(kvmnet.InvalidInput):
        Network.from_xml("<domain/>")


def test_host_networks_and_lookup(tmp_path: Path) -> None:
    with kvmnet.connect(World().write(tmp_path)) as host:
        names = sorted(n.name for n in host.networks())
        assert names == ["default", "isolated", "lan", "routed"]
        assert host.network("default").bridge == "virbr0"
        with pytest.raises(NetworkNotFound, match=r"'nope'.*networks: default, isolated"):
            host.network("nope")

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


def _by_ipaddress(address: str, prefix: str | None) -> tuple[str, str] | None:
    import ipaddress

    try:
        iface = ipaddress.ip_interface(f"{address}/{prefix}" if prefix else address)
    except ValueError:
        return None
    return str(iface.network), str(iface)


_ADDRESSES = [
    "192.168.122.1", "10.0.0.0", "0.0.0.0", "255.255.255.255", "1.2.3.4", "01.2.3.4",
    "1.2.3.04", "256.1.1.1", "1.2.3", "1.2.3.4.5", "1..3.4", " 1.2.3.4", "1.2.3.4 ",
    "\uff11.2.3.4", "1.2.3.+4", "fd00::1", "::", "1.2.3.-4", "", "1.2.3.4/8",
]  # fmt: skip
_PREFIXES = [
    None, "", "0", "8", "24", "024", "32", "33", "-1", "+24", "\uff12\uff14", "255.255.255.0",
    "255.255.0.0", "0.0.0.0", "255.255.255.255", "0.0.0.255", "255.0.255.0", "255.255.255",
    "255.255.255.00", "64", "128", "ffff::",
]  # fmt: skip


@pytest.mark.parametrize("address", _ADDRESSES)
def test_subnets_are_what_ipaddress_says(address: str) -> None:
    # Network parsing skips importing ipaddress for plain IPv4: the answers must not differ.
    from kvmnet.core.network import _subnet_and_address

    for prefix in _PREFIXES:
        expected = _by_ipaddress(address, prefix) if address else None
        assert _subnet_and_address(address, prefix) == expected, (address, prefix)


def test_random_ipv4_subnets_are_what_ipaddress_says() -> None:
    import random

    from kvmnet.core.network import _subnet_and_address

    rng = random.Random(9)
    for _ in range(2000):
        address = ".".join(str(rng.randrange(256)) for _ in range(4))
        length = rng.randrange(33)
        mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
        netmask = ".".join(str(mask >> s & 255) for s in (24, 16, 8, 0))
        for prefix in (str(length), netmask):
            assert _subnet_and_address(address, prefix) == _by_ipaddress(address, prefix)

"""kvmnet.testing builds node files that libvirt's test driver really accepts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kvmnet.testing import (
    DEFAULT_NETWORKS,
    Guest,
    Nic,
    World,
    domain_xml,
    nat_network,
    world_uri,
)
from kvmnet.virt._libvirt import Connection, open_connection

# These tests check kvmnet.testing against libvirt itself, below kvmnet's own Host/Domain
# (whose tests build on this module).
Opener = Callable[[str], Connection]


@pytest.fixture
def conn_for() -> Iterator[Opener]:
    opened: list[Connection] = []

    def open_(uri: str) -> Connection:
        opened.append(open_connection(uri))
        return opened[-1]

    yield open_
    for conn in opened:
        conn.close()


def test_world_runs_and_stops_guests_as_told(tmp_path: Path, conn_for: Opener) -> None:
    uri = world_uri(
        tmp_path,
        Guest("on", nics=(Nic.network(), Nic.bridge("br0"))),
        Guest("off", running=False, nics=(Nic.direct("eth0", mode="vepa"),)),
    )
    assert uri == f"test://{tmp_path.resolve() / 'world.xml'}"
    conn = conn_for(uri)
    states = {d.name: d.is_active() for d in conn.list_domains()}
    assert states == {"on": True, "off": False}
    xml = conn.lookup_domain("off").xml()
    assert "<source dev='eth0' mode='vepa'/>" in xml
    assert "52:54:00:fe:01:00" in xml


def test_default_networks_are_all_there(tmp_path: Path, conn_for: Opener) -> None:
    conn = conn_for(World().write(tmp_path))
    nets = {name: xml for name, _active, xml in conn.network_xmls()}
    names = sorted(nets)
    assert (
        names
        == sorted(n.name for n in DEFAULT_NETWORKS)
        == [
            "default",
            "isolated",
            "lan",
            "routed",
        ]
    )
    default = nets["default"]
    assert "<forward mode='nat'" in default and "virbr0" in default


def test_reservations_and_no_mac(tmp_path: Path, conn_for: Opener) -> None:
    world = World(
        (Guest("g", nics=(Nic.network(mac=None), Nic.network(mac="52:54:00:12:34:56"))),),
        (nat_network(reservations=[("52:54:00:aa:bb:cc", "192.168.122.9")]),),
    )
    conn = conn_for(world.write(tmp_path))
    net = conn.network_xml("default")
    assert "<host mac='52:54:00:aa:bb:cc' ip='192.168.122.9'/>" in net
    dom = conn.lookup_domain("g").xml()
    assert dom.count("<mac address=") == 2  # the driver invented the missing one
    assert "52:54:00:12:34:56" in dom


def test_domain_xml_defines_alone(tmp_path: Path, conn_for: Opener) -> None:
    conn = conn_for(World().write(tmp_path))
    text = domain_xml(Guest("kvmnet-testing-alone", running=False))
    assert "runstate" not in text
    dom = conn.define_domain(text)
    assert not dom.is_active()
    assert dom.name in {d.name for d in conn.list_domains()}


def test_uuids_are_stable_per_name(tmp_path: Path, conn_for: Opener) -> None:
    # Two connections to one world see the same guests; a define of the same name and UUID
    # (what a test re-running an edit does) is accepted, a clash of names is not hidden.
    uri = World((Guest("a"), Guest("b", uuid="12345678-1234-5678-1234-567812345678"))).write(
        tmp_path
    )
    first, second = conn_for(uri), conn_for(uri)
    xml_a = first.lookup_domain("a").xml()
    assert xml_a == second.lookup_domain("a").xml()
    assert "12345678-1234-5678-1234-567812345678" in first.lookup_domain("b").xml()
    first.define_domain(domain_xml(Guest("a"), index=0))

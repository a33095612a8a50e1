"""Switches on libvirt's test driver where the edited definition used to differ from what
libvirt then takes: a <virtualport> onto a NAT network, an ethernet tap's host-side
addresses, and interfaces that share a MAC (virtio failover pairs, virt-clone copies)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import kvmnet
from kvmnet import bulk
from kvmnet.testing import Guest, Nic, World
from kvmnet.virt import _libvirt
from kvmnet.virt import domain as domain_module

PCI = "<address type='pci' domain='0x0000' bus='0x00' slot='{}' function='0x0'/>"


def _domain(name: str, nics: str) -> str:
    return (
        f"<domain type='test'><name>{name}</name><memory>65536</memory>"
        f"<os><type>hvm</type></os><devices>{nics}</devices></domain>"
    )


MIDONET = (
    "<interface type='bridge'><mac address='52:54:00:11:00:01'/><source bridge='midonet'/>"
    "<virtualport type='midonet'><parameters interfaceid='09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f'/>"
    "</virtualport><model type='virtio'/></interface>"
)
# Two interfaces with one MAC, told apart by their PCI addresses (virt-clone leaves such).
TWINS = (
    "<interface type='user'><mac address='00:11:22:33:44:55'/><model type='virtio'/>"
    f"{PCI.format('0x03')}</interface>"
    "<interface type='network'><mac address='00:11:22:33:44:55'/><source network='default'/>"
    f"{PCI.format('0x04')}</interface>"
)
# A virtio failover pair: the virtio NIC and a VF (hostdev) with the same MAC, by design.
TEAM = (
    "<interface type='network'><mac address='52:54:00:10:00:01'/><source network='default'/>"
    "<model type='virtio'/><teaming type='persistent'/><alias name='ua-backup0'/>"
    f"{PCI.format('0x03')}</interface>"
    "<interface type='hostdev' managed='yes'><mac address='52:54:00:10:00:01'/>"
    "<source><address type='pci' domain='0x0000' bus='0x03' slot='0x07' function='0x1'/>"
    f"</source><teaming type='transient' persistent='ua-backup0'/>{PCI.format('0x04')}"
    "</interface>"
)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[kvmnet.Host]:
    uri = World((Guest("plain", running=False, nics=(Nic.network(),)),)).write(tmp_path)
    with kvmnet.connect(uri) as h:
        yield h


def _define(host: kvmnet.Host, name: str, nics: str, *, start: bool = False) -> kvmnet.Domain:
    dom = host.connection._conn.defineXML(_domain(name, nics))
    if start:
        dom.create()
    return host.domain(name)


def _sources(xml: str) -> list[tuple[str, str | None]]:
    return [(i.type, i.source) for i in kvmnet.DomainXML(xml).interfaces]


# -- a <virtualport> onto a network libvirt routes -----------------------------------------


def test_use_nat_drops_a_virtualport_the_nat_network_would_refuse(host: kvmnet.Host) -> None:
    # Before: kept without a note; libvirt's network driver refuses any virtualport on a
    # nat network, so the guest failed at its next start.
    dom = _define(host, "vp", MIDONET)
    change = dom.use_nat("default")
    assert "virtualport" not in change.after
    assert "virtualport" not in dom.xml(inactive=True)
    assert any("dropped <virtualport type='midonet'>" in n for n in change.notes)
    # A network that hands the guest a host bridge keeps today's behaviour: kept.
    kept = _define(host, "vp2", MIDONET).use_nat("lan", dry_run=True)
    assert "<virtualport type='midonet'>" in kept.after
    assert not any("virtualport" in n for n in kept.notes)


def test_nat_many_drops_it_too(host: kvmnet.Host) -> None:
    _define(host, "vp", MIDONET)
    (change,) = bulk.nat_many(host, "isolated", ["vp"])
    assert "virtualport" not in change.after
    assert any("'isolated' (isolated)" in n for n in change.notes)


# -- an ethernet tap's host side ------------------------------------------------------------

ETH_HOSTIP = (
    "<interface type='ethernet'><mac address='00:11:22:33:44:66'/><source>"
    "<ip address='192.168.125.1' family='ipv4' prefix='24' peer='192.168.125.2'/>"
    "<route family='ipv4' address='10.20.0.0' prefix='16' gateway='192.168.125.2'/>"
    "</source><model type='rtl8139'/></interface>"
)


@pytest.mark.parametrize(("verb", "where"), [("use_bridge", "br0"), ("use_nat", "default")])
def test_the_dry_run_of_an_ethernet_tap_with_host_addresses_predicts_the_real_call(
    host: kvmnet.Host, verb: str, where: str
) -> None:
    # Before: the dry run passed and the real call failed (libvirt: host-side IP route
    # and/or address info only on type 'ethernet').
    dom = _define(host, "eth", ETH_HOSTIP)
    dry = getattr(dom, verb)(where, dry_run=True)
    real = getattr(dom, verb)(where)
    assert real.applied_config and real.notes == dry.notes and len(real.notes) == 2
    assert "<ip " not in dom.xml(inactive=True) and "<route " not in dom.xml(inactive=True)


# -- interfaces sharing a MAC ---------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool, bool]]:
    """Device calls as a driver with them gets them (the test driver has none)."""
    sent: list[tuple[str, str, bool, bool]] = []
    for verb in ("update", "attach", "detach"):

        def call(
            self: _libvirt.DomainHandle, xml: str, *, live: bool, config: bool, verb: str = verb
        ) -> None:
            sent.append((verb, xml, live, config))

        monkeypatch.setattr(_libvirt.DomainHandle, f"{verb}_device", call)
    return sent


@pytest.mark.parametrize("running", [False, True])
def test_with_device_calls_an_index_sends_that_interface_with_its_address(
    host: kvmnet.Host, calls: list[tuple[str, str, bool, bool]], running: bool
) -> None:
    # Before: InvalidInput "... 2 interfaces with MAC ...; select one by index instead
    # (0, 1)" for the very index it asked for, whenever device calls were possible.
    dom = _define(host, "twins", TWINS, start=running)
    host.connection.device_calls = True
    change = dom.use_bridge("br0", 1)
    assert change.interface is not None
    assert (change.interface.index, change.interface.source) == (1, "br0")
    assert _sources(change.after) == [("user", None), ("bridge", "br0")]
    (verb, xml, live, config) = calls[-1]
    assert (verb, live, config) == ("update", running, True)
    assert "slot='0x04'" in xml and "<source bridge='br0'/>" in xml
    calls.clear()
    removed = dom.remove_interface(1)
    assert removed.interface is not None and removed.interface.source == "default"
    assert _sources(removed.after) == [("user", None)]
    assert {(v, "slot='0x04'" in x) for v, x, _, _ in calls} == {("detach", True)}
    assert [(live, config) for *_, live, config in calls] == (
        [(True, False), (False, True)] if running else [(False, True)]
    )


def test_without_device_calls_an_index_selects_the_twin_on_a_fresh_read_too(
    host: kvmnet.Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The guarded define makes the edit again when another writer changed the definition
    # meanwhile: it finds the same twin there (by its address), not the first with the MAC.
    dom = _define(host, "twins", TWINS)
    conn = host.connection._conn
    other_writer: list[bool] = []

    def meanwhile(_: kvmnet.Domain) -> None:
        if not other_writer:
            other_writer.append(True)
            xml = conn.lookupByName("twins").XMLDesc(2)
            conn.defineXML(xml.replace("<model type='virtio'/>", "<model type='e1000'/>"))

    monkeypatch.setattr(domain_module, "_before_define_check", meanwhile)
    dom.use_bridge("br0", 1)
    assert other_writer
    final = dom.xml(inactive=True)
    assert _sources(final) == [("user", None), ("bridge", "br0")] and "e1000" in final
    dom.remove_interface(0)
    assert _sources(dom.xml(inactive=True)) == [("bridge", "br0")]


def test_a_bulk_call_moves_the_virtio_half_of_a_failover_pair(host: kvmnet.Host) -> None:
    # Before: the whole bulk call was refused for this one guest (a bulk call has no index).
    # kvmnet never moves the hostdev, so the pair's MAC can only mean the virtio NIC.
    _define(host, "team", TEAM)
    changes = bulk.bridge_many(host, "br0", on_network="default")
    assert sorted(c.domain for c in changes) == ["plain", "team"]
    final = host.domain("team").xml(inactive=True)
    assert _sources(final)[0] == ("bridge", "br0") and _sources(final)[1][0] == "hostdev"
    back = bulk.nat_many(host, "default", on_bridge="br0")
    assert sorted(c.domain for c in back) == ["plain", "team"]
    assert host.domain("team").xml(inactive=True) == _domain_xml_of(host, "team")


def _domain_xml_of(host: kvmnet.Host, name: str) -> str:
    return str(host.connection._conn.lookupByName(name).XMLDesc(2))


def test_a_bulk_call_refuses_a_guest_whose_mac_two_movable_interfaces_share(
    host: kvmnet.Host,
) -> None:
    # Which of two clones to move is a guess kvmnet does not make: that guest's own error,
    # naming the indexes that select each, before any guest changed.
    _define(host, "twins", TWINS)
    with pytest.raises(kvmnet.InvalidInput, match=r"'twins'.*select one by index instead"):
        bulk.bridge_many(host, "br0", on_network="default")
    assert _sources(host.domain("plain").xml(inactive=True)) == [("network", "default")]


def test_pending_changes_tells_twins_apart(host: kvmnet.Host) -> None:
    """Two interfaces sharing a MAC pair in XML order: the first twin's next-boot change shows,
    where pairing by MAC alone kept only the second twin of each side (and saw no change)."""
    dom = _define(host, "twins-pending", TWINS.replace("type='user'", "type='network'", 1)
                  .replace("<model type='virtio'/>", "<source network='default'/>", 1),
                  start=True)  # fmt: skip
    assert dom.pending_changes() == ()
    dom.use_bridge("br0", 0, live=False)
    (pair,) = dom.pending_changes()
    live, nxt = pair
    assert live is not None and nxt is not None
    assert (live.index, live.source, nxt.index, nxt.source) == (0, "default", 0, "br0")

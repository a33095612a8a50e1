"""Domain on libvirt's test driver: modes, edits, live/persistent semantics, errors."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import kvmnet
from kvmnet import (
    Domain,
    InterfaceNotFound,
    InvalidMac,
    LiveChangeUnsupported,
    MacInUse,
    Mode,
    NetworkNotFound,
)
from kvmnet.testing import Guest, Nic, World, domain_xml, nat_network, world_uri

MIXED = Guest(
    "mixed",
    running=False,
    nics=(
        Nic.network("default"),
        Nic.network("lan"),
        Nic.network("isolated"),
        Nic.network("routed"),
        Nic.bridge("virbr0"),
        Nic.bridge("br0"),
        Nic.bridge("br7"),
        Nic.direct("eth0"),
        Nic(type="user", source=None),
    ),
)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[kvmnet.Host]:
    world = World(
        (
            Guest("web1", nics=(Nic.network(), Nic.bridge("br0"))),
            Guest("off", running=False, nics=(Nic.network(), Nic.bridge("br0"))),
            Guest("mv", nics=(Nic.direct("eth0"),)),
            MIXED,
        ),
        (
            nat_network(reservations=[("52:54:00:77:00:01", "192.168.122.77")]),
            *World().networks[1:],
        ),
    )
    with kvmnet.connect(world.write(tmp_path)) as h:
        yield h


def test_modes_resolved_through_the_hosts_networks(host: kvmnet.Host) -> None:
    modes = [i.mode for i in host.domain("mixed").interfaces]
    assert modes == [
        Mode.NAT,
        Mode.BRIDGED,
        Mode.ISOLATED,
        Mode.ROUTED,
        Mode.NAT,
        Mode.BRIDGED,
        Mode.BRIDGED,
        Mode.DIRECT,
        Mode.OTHER,
    ]


def test_interfaces_read_networks_once(host: kvmnet.Host) -> None:
    calls: list[int] = []
    real = host.connection.network_xmls

    def counting() -> list[tuple[str, bool, str]]:
        calls.append(1)
        return real()

    host.connection.network_xmls = counting  # type: ignore[method-assign]
    for dom in host.domains():
        assert dom.interfaces
    assert len(calls) == 1


def test_repr(host: kvmnet.Host) -> None:
    assert repr(host.domain("web1")) == "<Domain 'web1' running, 2 NICs: nat, bridged>"
    assert repr(host.domain("off")) == "<Domain 'off' shut off, 2 NICs: nat, bridged>"
    assert "<table" in host.domain("web1")._repr_html_()


def test_use_bridge_on_a_shut_off_guest(host: kvmnet.Host) -> None:
    dom = host.domain("off")
    macs = [i.mac for i in dom.interfaces]
    change = dom.use_bridge("br1")
    assert change.applied_config and not change.applied_live and not change.dry_run
    assert change.notes == ()
    after = dom.interfaces
    assert (after[0].type, after[0].source, after[0].mode) == ("bridge", "br1", Mode.BRIDGED)
    assert [i.mac for i in after] == macs  # every MAC kept
    assert change.before != change.after
    assert "-    <interface type='network'>" in change.diff()
    assert "+      <source bridge='br1'/>" in change.diff()
    assert change.interface is not None and change.interface.mode is Mode.BRIDGED
    # and back
    back = dom.use_nat("default", macs[0])
    assert dom.interfaces[0].mode is Mode.NAT
    assert back.after == change.before


def test_dry_run_changes_nothing(host: kvmnet.Host) -> None:
    dom = host.domain("web1")
    live, persistent = dom.xml(), dom.xml(inactive=True)
    change = dom.use_bridge("br1", dry_run=True)
    assert change.dry_run and not change.applied
    assert "br1" in change.diff()
    assert dom.add_interface(bridge="br0", dry_run=True).dry_run
    assert dom.remove_interface(1, dry_run=True).dry_run
    assert (dom.xml(), dom.xml(inactive=True)) == (live, persistent)


def test_running_guest_on_a_driver_without_live_changes(
    host: kvmnet.Host, caplog: pytest.LogCaptureFixture
) -> None:
    dom = host.domain("web1")
    with caplog.at_level(logging.WARNING, logger="kvmnet.virt.domain"):
        change = dom.use_bridge("br1")
    assert change.applied_config and not change.applied_live
    assert any("persistent definition only" in n for n in change.notes)
    assert any("cannot change a running guest" in r.getMessage() for r in caplog.records)
    # The running guest still runs as before; the next boot differs, visibly.
    assert dom.interfaces[0].source == "default"
    assert dom.live_interfaces[0].source == "default"
    assert dom.persistent_interfaces[0].source == "br1"
    (pair,) = dom.pending_changes()
    assert pair[0] is not None and pair[1] is not None
    assert (pair[0].mode, pair[1].mode) == (Mode.NAT, Mode.BRIDGED)


def test_live_true_raises_before_changing_anything(
    host: kvmnet.Host, capfd: pytest.CaptureFixture[str]
) -> None:
    dom = host.domain("web1")
    before = dom.xml(inactive=True)
    with pytest.raises(LiveChangeUnsupported, match="live=False"):
        dom.use_bridge("br1", live=True)
    with pytest.raises(LiveChangeUnsupported):
        dom.add_interface(bridge="br1", live=True)
    with pytest.raises(LiveChangeUnsupported, match="not running"):
        host.domain("off").use_bridge("br1", live=True)
    assert dom.xml(inactive=True) == before
    assert capfd.readouterr().err == ""


def test_live_false_changes_next_boot_only(host: kvmnet.Host) -> None:
    change = host.domain("web1").use_bridge("br1", live=False)
    assert change.applied_config and change.notes == ()


def test_direct_cannot_switch_live(host: kvmnet.Host) -> None:
    dom = host.domain("mv")
    before = dom.xml(inactive=True)
    with pytest.raises(LiveChangeUnsupported, match=r"macvtap.*live=False"):
        dom.use_bridge("br0")
    assert dom.xml(inactive=True) == before
    change = dom.use_bridge("br0", live=False)
    assert dom.persistent_interfaces[0].mode is Mode.BRIDGED
    assert any("mode='bridge'" in n for n in change.notes)


def test_use_nat_needs_an_existing_network(host: kvmnet.Host) -> None:
    with pytest.raises(NetworkNotFound, match="'nope'"):
        host.domain("off").use_nat("nope")
    change = host.domain("off").use_nat("lan", 1)
    assert any("not NAT" in n for n in change.notes)


def test_selecting_interfaces(host: kvmnet.Host) -> None:
    dom = host.domain("off")
    second = dom.interfaces[1]
    assert dom.use_nat("default", second).interface.mac == second.mac  # type: ignore[union-attr]
    assert dom.use_bridge("br5", second.mac.upper()).interface.source == "br5"  # type: ignore[union-attr]
    with pytest.raises(InterfaceNotFound, match="no interface #9"):
        dom.use_bridge("br0", 9)
    with pytest.raises(InvalidMac):
        dom.use_bridge("br0", "zz:zz")


def test_already_there_is_a_no_op(host: kvmnet.Host) -> None:
    change = host.domain("off").use_bridge("br0", 1)
    assert not change.changed and not change.applied_config
    assert change.diff() == ""


def test_add_interface_generates_a_unique_mac(host: kvmnet.Host) -> None:
    used = {i.mac for d in host.domains() for i in d.interfaces} | {"52:54:00:77:00:01"}
    dom = host.domain("off")
    change = dom.add_interface(network="default")
    new = change.interface
    assert new is not None and new.mac is not None
    assert new.mac.startswith("52:54:00:") and new.mac not in used
    assert dom.interfaces[-1].mac == new.mac and dom.interfaces[-1].model == "virtio"
    assert dom.interfaces[:2] == dom.persistent_interfaces[:2]


def test_add_interface_with_a_taken_mac(host: kvmnet.Host) -> None:
    taken = host.domain("web1").interfaces[0].mac
    assert taken is not None
    with pytest.raises(MacInUse, match="web1") as info:
        host.domain("off").add_interface(bridge="br0", mac=taken)
    assert "web1" in " ".join(info.value.used_by)
    with pytest.raises(MacInUse, match="reservation"):
        host.domain("off").add_interface(bridge="br0", mac="52:54:00:77:00:01")
    with pytest.raises(InvalidMac):
        host.domain("off").add_interface(bridge="br0", mac="ff:ff:ff:ff:ff:ff")
    change = host.domain("off").add_interface(bridge="br0", mac="52-54-00-00-AB-CD")
    assert change.interface is not None and change.interface.mac == "52:54:00:00:ab:cd"


def test_add_interface_retries_when_another_writer_takes_the_mac(
    host: kvmnet.Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kvmnet.virt.macalloc import MacAllocator

    real_allocate = MacAllocator.allocate
    drawn: list[str] = []

    def racing_allocate(self: MacAllocator, *, key: str | None = None) -> str:
        mac = real_allocate(self, key=key)
        drawn.append(mac)
        if len(drawn) == 1:
            # Another tool defines a guest with the very MAC just drawn.
            rival = Guest(
                f"rival-{uuid.uuid4().hex[:8]}", running=False, nics=(Nic.bridge(mac=mac),)
            )
            host.connection.define_domain(domain_xml(rival))
        return mac

    monkeypatch.setattr(MacAllocator, "allocate", racing_allocate)
    change = host.domain("off").add_interface(bridge="br0")
    assert len(drawn) == 2
    assert change.interface is not None and change.interface.mac == drawn[1] != drawn[0]


def test_remove_interface(host: kvmnet.Host) -> None:
    dom = host.domain("off")
    keep = dom.interfaces[1].mac
    change = dom.remove_interface(0)
    assert change.interface is not None and change.interface.source == "default"
    assert [i.mac for i in dom.interfaces] == [keep]
    # The contract's selector: None is the first interface, as for every other edit.
    change = dom.remove_interface(None)
    assert change.interface is not None and change.interface.mac == keep
    assert dom.interfaces == ()


def test_addresses_say_their_source(host: kvmnet.Host) -> None:
    addrs = host.domain("web1").addresses()
    assert {a.mac for a in addrs} == {i.mac for i in host.domain("web1").interfaces}
    assert {a.source for a in addrs} == {"lease"}  # the test driver answers the lease query
    assert host.domain("off").addresses() == []


def test_persistent_edits_survive_a_reconnect() -> None:
    # test:///default is shared by the connections of a process while one stays open (a
    # world file is fresh per connection).
    name = f"kvmnet-persist-{uuid.uuid4().hex[:8]}"
    with kvmnet.connect("test:///default") as keeper:
        with kvmnet.connect("test:///default") as host:
            host.connection.define_domain(domain_xml(Guest(name, nics=(Nic.network(mac=None),))))
            host.domain(name).use_bridge("br0")
        with kvmnet.connect("test:///default") as host:
            dom: Domain = host.domain(name)
            assert (dom.interfaces[0].type, dom.interfaces[0].source) == ("bridge", "br0")
        assert keeper.domain(name).persistent_interfaces[0].source == "br0"


def test_change_renders_for_humans_and_notebooks(host: kvmnet.Host) -> None:
    change = host.domain("off").use_bridge("br1", dry_run=True)
    assert repr(change) == "<Change use_bridge 'off' dry run>"
    assert "dry run, nothing applied" in str(change)
    html = change._repr_html_()
    assert "&lt;source bridge=&#x27;br1&#x27;/&gt;" in html
    assert "<source" not in html


def test_unknown_world_file_is_a_clear_error(tmp_path: Path) -> None:
    uri = world_uri(tmp_path, Guest("x"))
    with kvmnet.connect(uri) as host, pytest.raises(kvmnet.DomainNotFound):
        host.domain("y")


def test_repeating_a_next_boot_switch_still_tries_the_running_guest(host: kvmnet.Host) -> None:
    dom = host.domain("web1")
    dom.use_bridge("br1", live=False)
    # The definition has br1 already, the running guest does not: not a no-op.
    change = dom.use_bridge("br1")
    assert not change.applied_config and not change.applied_live
    assert any("has this already" in n for n in change.notes)
    with pytest.raises(LiveChangeUnsupported):
        dom.use_bridge("br1", live=True)
    # With live=False it is one.
    assert not dom.use_bridge("br1", live=False).changed


def test_no_bounce_without_a_live_change(host: kvmnet.Host) -> None:
    change = host.domain("web1").use_bridge("br1", bounce_link=True)
    assert not change.applied_live
    assert not any("bounced" in n for n in change.notes)


def test_html_shows_what_the_next_boot_changes(host: kvmnet.Host) -> None:
    dom = host.domain("web1")
    assert "Next boot differs" not in dom._repr_html_()
    dom.use_bridge("br1", live=False)
    html = dom._repr_html_()
    assert "Next boot differs" in html and "br1" in html


def test_a_next_boot_only_nic_of_a_running_guest_is_selectable_by_mac(
    host: kvmnet.Host,
) -> None:
    # Added where the running guest cannot take it (the test driver has no hot-plug): the NIC
    # is in the persistent definition only, and its MAC still names it for every edit.
    dom = host.domain("web1")
    mac = "52:54:00:77:00:42"
    dom.add_interface(bridge="br0", mac=mac)
    assert mac not in {i.mac for i in dom.interfaces}
    (added,) = [i for i in dom.persistent_interfaces if i.mac == mac]
    with pytest.raises(LiveChangeUnsupported, match=r"52:54:00:77:00:42.*live=True"):
        dom.use_nat("default", mac, live=True)
    change = dom.use_nat("default", mac.upper())
    assert change.applied_config and not change.applied_live
    assert any("not on the running guest" in n for n in change.notes)
    assert [i.source for i in dom.persistent_interfaces if i.mac == mac] == ["default"]
    dom.use_bridge("br0", added)
    assert [i.source for i in dom.persistent_interfaces if i.mac == mac] == ["br0"]
    dom.remove_interface(mac)
    assert mac not in {i.mac for i in dom.persistent_interfaces}
    with pytest.raises(InterfaceNotFound, match="52:54:00:77:00:42"):
        dom.remove_interface(mac)


_RUNNING_PIECES = [
    "<domain", "<domains", "<domain_", "<domainé", " ", "\t", "\n", "\u00a0", "\u2003", "id=",
    "id", "=", ">", "<", "'", "type='kvm'", "x", "_", "<devices>", "uuid=",
]  # fmt: skip


def test_a_running_domains_id_is_found_as_the_regex_finds_it() -> None:
    # _has_running_id is the regex below written out (so no start compiles it).
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from kvmnet.virt.domain import _has_running_id

    regex = re.compile(r"\s*<domain\b[^>]*\sid=")

    @settings(max_examples=600)
    @given(st.lists(st.sampled_from(_RUNNING_PIECES), max_size=14).map("".join))
    def check(text: str) -> None:
        assert _has_running_id(text) == (regex.match(text) is not None), text

    check()
    assert _has_running_id("<domain type='kvm' id='7'>\n  <name>a</name>")
    assert not _has_running_id("<domain type='kvm'>\n  <uuid>x</uuid>id=")


def test_a_change_made_by_an_edit_is_the_dataclass_its_fields_make() -> None:
    # Domain._change fills the frozen dataclass's __dict__ directly (bulk speed): every field,
    # nothing else, and equal to the Change its __init__ would make.
    import dataclasses

    from kvmnet.core.change import Change

    with kvmnet.connect("test:///default") as host:
        change = host.domain("test").use_bridge("br0", dry_run=True)
    assert set(vars(change)) == {f.name for f in dataclasses.fields(Change)}
    assert change == Change(**vars(change))
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.dry_run = False  # type: ignore[misc]

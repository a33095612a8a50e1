"""DomainXML: the pure edits, their selectors, and what happens to elements that cannot stay."""

from __future__ import annotations

import logging

import pytest
from lxml import etree

from kvmnet import (
    DomainXML,
    GuestInterface,
    InterfaceNotFound,
    InvalidInput,
    InvalidMac,
    InvalidName,
    MacInUse,
    Mode,
    UnsupportedEdit,
)

BASE = """<?xml version="1.0"?>
<!-- kept: a comment before the root -->
<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>web1</name>
  <devices>
    <disk type='file' device='disk'><source file='/x &amp; y.img'/><target dev='vda'/></disk>
    <!-- the LAN NIC -->
    <interface type='network'>
      <mac address='52:54:00:AA:BB:01'/>
      <source network='default' portgroup='web'/>
      <model type='virtio'/>
      <driver name='vhost' queues='4'/>
      <bandwidth><inbound average='1000' floor='200'/><outbound average='500'/></bandwidth>
      <!-- boot from it -->
      <boot order='2'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <interface type="bridge">
      <mac address="52:54:00:aa:bb:02"/>
      <source bridge="br0"/>
      <vlan><tag id="42"/></vlan>
    </interface>
    <interface type='direct'>
      <mac address='52:54:00:aa:bb:03'/>
      <source dev='eth0' mode='vepa'/>
    </interface>
    <serial type='pty'/>
  </devices>
  <qemu:commandline><qemu:arg value='-s'/></qemu:commandline>
</domain>
"""


def doc() -> DomainXML:
    return DomainXML(BASE)


def test_interfaces_are_read_in_order_with_normalised_macs() -> None:
    ifaces = doc().interfaces
    assert [(i.index, i.type, i.source, i.mac) for i in ifaces] == [
        (0, "network", "default", "52:54:00:aa:bb:01"),
        (1, "bridge", "br0", "52:54:00:aa:bb:02"),
        (2, "direct", "eth0", "52:54:00:aa:bb:03"),
    ]
    assert ifaces[0].model == "virtio" and ifaces[0].portgroup == "web"
    # Without a host, modes are libvirt-convention guesses.
    assert [i.mode for i in ifaces] == [Mode.NAT, Mode.BRIDGED, Mode.DIRECT]
    assert "52:54:00:aa:bb:01" in repr(ifaces[0])


def test_unedited_document_comes_back_byte_for_byte() -> None:
    assert doc().tostring() == BASE


@pytest.mark.parametrize(
    "selector",
    [None, 0, -3, "52:54:00:aa:bb:01", "52-54-00-AA-BB-01", "5254.00aa.bb01"],
)
def test_selectors_pick_the_same_interface(selector: str | int | None) -> None:
    assert doc().find(selector).mac == "52:54:00:aa:bb:01"


def test_selector_by_guestinterface() -> None:
    d = doc()
    assert d.find(d.interfaces[1]).source == "br0"


def test_selector_errors_say_what_exists() -> None:
    with pytest.raises(InterfaceNotFound, match=r"no interface #7: it has 3"):
        doc().find(7)
    with pytest.raises(InterfaceNotFound, match="52:54:00:aa:bb:03") as info:
        doc().find("52:54:00:00:00:99")
    assert isinstance(info.value, LookupError)
    with pytest.raises(InvalidMac):
        doc().find("not-a-mac")
    with pytest.raises(InvalidInput):
        doc().find(True)
    with pytest.raises(InterfaceNotFound, match="has no network interface"):
        DomainXML("<domain><name>x</name><devices/></domain>").find()


def test_use_bridge_changes_only_type_and_source_and_drops_floor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = doc()
    with caplog.at_level(logging.WARNING, logger="kvmnet.core.domainxml"):
        new = d.use_bridge("br1")
    assert (new.type, new.source, new.mac) == ("bridge", "br1", "52:54:00:aa:bb:01")
    out = d.tostring()
    assert "<interface type='bridge'>" in out
    assert "<source bridge='br1'/>" in out
    # floor goes (only networks guarantee it), the other limits stay
    assert "<inbound average='1000'/>" in out and "<outbound average='500'/>" in out
    # portgroup goes (a network's setting)
    assert "portgroup" not in out
    assert len(d.notes) == 2 and any("floor" in n for n in d.notes)
    assert any("floor" in r.getMessage() for r in caplog.records)
    # the rest of the interface, comments, namespaces and entities stay as written
    for kept in (
        "<driver name='vhost' queues='4'/>",
        "<!-- boot from it -->",
        "<boot order='2'/>",
        "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>",
        "<!-- kept: a comment before the root -->",
        '<?xml version="1.0"?>',
        "/x &amp; y.img",
        "<qemu:commandline><qemu:arg value='-s'/></qemu:commandline>",
        '<interface type="bridge">\n      <mac address="52:54:00:aa:bb:02"/>',
    ):
        assert kept in out


def test_floor_alone_removes_the_empty_bandwidth() -> None:
    d = DomainXML(
        "<domain><name>x</name><devices><interface type='network'>"
        "<source network='default'/><bandwidth><inbound floor='10'/></bandwidth>"
        "</interface></devices></domain>"
    )
    d.use_bridge("br0")
    assert "bandwidth" not in d.tostring()


def test_use_nat_from_direct_drops_mode_keeps_the_rest() -> None:
    d = doc()
    d.use_nat("default", "52:54:00:aa:bb:03")
    out = d.tostring()
    assert "<interface type='network'>\n      <mac address='52:54:00:aa:bb:03'/>\n" in out
    assert "<source network='default'/>" in out
    assert any("mode='vepa'" in n for n in d.notes)


def test_use_nat_to_the_same_network_keeps_portgroup() -> None:
    d = doc()
    d.use_nat("default")
    assert d.tostring() == BASE
    assert d.notes == ()


@pytest.mark.parametrize("vport", ["<virtualport/>", "<virtualport type='802.1Qbh'/>"])
def test_virtualport_refused_on_a_plain_bridge(vport: str) -> None:
    xml = (
        "<domain><name>x</name><devices><interface type='network'>"
        f"<source network='ovs'/>{vport}</interface></devices></domain>"
    )
    d = DomainXML(xml)
    with pytest.raises(UnsupportedEdit, match="virtualport") as info:
        d.use_bridge("br0")
    assert isinstance(info.value, ValueError)
    assert d.tostring() == xml  # nothing half-edited


def test_openvswitch_virtualport_stays_on_a_bridge() -> None:
    d = DomainXML(
        "<domain><name>x</name><devices><interface type='network'>"
        "<source network='ovs'/><virtualport type='openvswitch'/></interface></devices></domain>"
    )
    d.use_bridge("ovsbr0")
    assert "<virtualport type='openvswitch'/>" in d.tostring()


def test_unswitchable_types_are_refused() -> None:
    d = DomainXML(
        "<domain><name>x</name><devices><interface type='vhostuser'>"
        "<source type='unix' path='/s' mode='client'/></interface></devices></domain>"
    )
    with pytest.raises(UnsupportedEdit, match="vhostuser"):
        d.use_bridge("br0")


def test_user_interface_gets_a_source_indented_like_its_siblings() -> None:
    d = DomainXML(
        "<domain>\n  <name>x</name>\n  <devices>\n    <interface type='user'>\n"
        "      <mac address='52:54:00:00:00:07'/>\n    </interface>\n  </devices>\n</domain>\n"
    )
    d.use_bridge("br0")
    assert d.tostring() == (
        "<domain>\n  <name>x</name>\n  <devices>\n    <interface type='bridge'>\n"
        "      <mac address='52:54:00:00:00:07'/>\n      <source bridge='br0'/>\n"
        "    </interface>\n  </devices>\n</domain>\n"
    )


def test_add_interface_matches_indentation_and_quotes() -> None:
    d = doc()
    new = d.add_interface(bridge="br0", mac="52:54:00:00:00:10", model="e1000")
    assert (new.index, new.type, new.mac, new.model) == (3, "bridge", "52:54:00:00:00:10", "e1000")
    out = d.tostring()
    expected = (
        "      <source dev='eth0' mode='vepa'/>\n    </interface>\n"
        "    <interface type='bridge'>\n      <mac address='52:54:00:00:00:10'/>\n"
        "      <source bridge='br0'/>\n      <model type='e1000'/>\n    </interface>\n"
        "    <serial type='pty'/>"
    )
    assert expected in out
    assert out.replace(expected, "") == BASE.replace(
        "      <source dev='eth0' mode='vepa'/>\n    </interface>\n    <serial type='pty'/>", ""
    )


def test_add_interface_with_tabs_and_to_a_domain_without_interfaces() -> None:
    xml = "<domain>\n\t<name>x</name>\n\t<devices>\n\t\t<disk/>\n\t</devices>\n</domain>\n"
    d = DomainXML(xml)
    d.add_interface(network="default")
    assert d.tostring() == (
        "<domain>\n\t<name>x</name>\n\t<devices>\n\t\t<disk/>\n"
        "\t\t<interface type='network'>\n\t\t\t<source network='default'/>\n\t\t</interface>\n"
        "\t</devices>\n</domain>\n"
    )


def test_add_interface_arguments() -> None:
    with pytest.raises(InvalidInput, match="exactly one"):
        doc().add_interface()
    with pytest.raises(InvalidInput, match="exactly one"):
        doc().add_interface(bridge="a", network="b")
    with pytest.raises(InvalidMac):
        doc().add_interface(bridge="br0", mac="01:00:5e:00:00:01")
    with pytest.raises(InvalidName):
        doc().use_bridge("br 0")


def test_add_interface_refuses_a_mac_the_domain_has_already() -> None:
    d = doc()
    before = d.tostring()
    with pytest.raises(MacInUse, match=r"52:54:00:aa:bb:01.*'web1'") as info:
        d.add_interface(bridge="br0", mac="52-54-00-AA-BB-01")
    assert info.value.mac == "52:54:00:aa:bb:01"
    assert d.tostring() == before and len(d.interfaces) == len(doc().interfaces)


def test_remove_interface_takes_its_line_and_nothing_else() -> None:
    d = doc()
    removed = d.remove_interface("52:54:00:aa:bb:02")
    assert removed.source == "br0"
    out = d.tostring()
    assert "bb:02" not in out
    start = BASE.index('    <interface type="bridge">')
    end = BASE.index("    <interface type='direct'>")
    assert out == BASE[:start] + BASE[end:]


def test_remove_then_add_and_edit_combined() -> None:
    d = doc()
    d.remove_interface(2)
    d.add_interface(network="default", mac="52:54:00:00:00:11")
    d.use_bridge("br9", 1)
    again = DomainXML(d.tostring())
    assert [(i.type, i.source) for i in again.interfaces] == [
        ("network", "default"),
        ("bridge", "br9"),
        ("network", "default"),
    ]


def test_set_link_and_interface_xml() -> None:
    d = doc()
    d.set_link("down", 1)
    fragment = d.interface_xml(1)
    el = etree.fromstring(fragment)
    assert el.find("link").get("state") == "down"  # type: ignore[union-attr]
    assert el.find("vlan/tag").get("id") == "42"  # type: ignore[union-attr]
    d.set_link("up", 1)
    assert d.find(1).link == "up"
    with pytest.raises(InvalidInput):
        d.set_link("sideways", 1)


def test_rejects_non_domain_and_entity_tricks() -> None:
    with pytest.raises(InvalidInput, match="<network>"):
        DomainXML("<network/>")
    with pytest.raises(InvalidInput, match="well-formed"):
        DomainXML("<domain>")
    # Entities are never expanded: the reference stays a reference.
    bomb = (
        '<!DOCTYPE domain [<!ENTITY a "aaaaaaaaaa">]>\n'
        "<domain><name>&a;</name><devices><interface type='network'>"
        "<source network='default'/></interface></devices></domain>"
    )
    d = DomainXML(bomb)
    d.use_bridge("br0")
    out = d.tostring()
    assert "&a;" in out and "aaaaaaaaaa</name>" not in out
    assert "<source bridge='br0'/>" in out
    assert out.startswith('<!DOCTYPE domain [<!ENTITY a "aaaaaaaaaa">]>')


def test_guestinterface_is_frozen() -> None:
    iface = doc().interfaces[0]
    assert isinstance(iface, GuestInterface)
    with pytest.raises(AttributeError):
        iface.mac = "x"  # type: ignore[misc]


def test_adopt_address_copies_the_hot_plugged_slot() -> None:
    live = DomainXML(
        "<domain><name>x</name><devices><interface type='bridge'>"
        "<mac address='52:54:00:00:00:20'/><source bridge='br0'/>"
        "<address type='pci' domain='0x0000' bus='0x07' slot='0x00' function='0x0'/>"
        "</interface></devices></domain>"
    )
    doc = doc_with_new = DomainXML(BASE)
    doc_with_new.add_interface(bridge="br0", mac="52:54:00:00:00:20")
    doc.adopt_address("52:54:00:00:00:20", live, "52:54:00:00:00:20")
    fragment = etree.fromstring(doc.interface_xml("52:54:00:00:00:20"))
    assert fragment.find("address").get("bus") == "0x07"  # type: ignore[union-attr]
    assert DomainXML(doc.tostring()).find(-1).mac == "52:54:00:00:00:20"


def test_interface_with_its_own_namespace_and_quotes_in_values() -> None:
    xml = (
        "<domain xmlns:qemu='urn:q'>\n  <name>x</name>\n  <devices>\n"
        "    <interface type='network' xmlns:my='urn:my'>\n"
        "      <source network='default'/>\n"
        "      <my:note text='it&apos;s \"quoted\"'>a \"b\" 'c'</my:note>\n"
        "    </interface>\n  </devices>\n</domain>\n"
    )
    d = DomainXML(xml)
    d.use_bridge("br0")
    out = d.tostring()
    # lxml does not say where a namespace declaration stood among the attributes: kvmnet
    # writes it first, so only that one start tag differs from the original beyond the edit.
    expected = xml.replace("'network'", "'bridge'").replace("network='default'", "bridge='br0'")
    assert out == expected.replace(
        "<interface type='bridge' xmlns:my='urn:my'>", "<interface xmlns:my='urn:my' type='bridge'>"
    )
    again = etree.fromstring(out.encode())
    note = again.find("devices/interface/{urn:my}note")
    assert note is not None and note.get("text") == 'it\'s "quoted"' and note.text == "a \"b\" 'c'"


@pytest.mark.parametrize(
    "head",
    [
        "<interface type='network' x=\"it's\" y='>'>",
        "<interface type=\"network\" y='a>b'>",
        "<interface type='network' y=\"a>b\">",
    ],
)
def test_greater_than_inside_attribute_values(head: str) -> None:
    xml = (
        f"<domain><name>x</name><devices>{head}<source network='default'/></interface>"
        "<!-- > --></devices></domain>"
    )
    d = DomainXML(xml)
    d.use_bridge("br0")
    out = d.tostring()
    assert out.endswith("</interface><!-- > --></devices></domain>")
    assert DomainXML(out).find().source == "br0"


def test_a_pi_holding_an_end_tag_stays_inside_its_interface() -> None:
    # notes/fuzz-api/repro/r07_domainxml_pi_splice.py (finding F8): the splice cut the
    # interface at the "</interface>" inside the PI.
    text = (
        "<domain><name>x</name><devices><interface type='network'><?x </interface>?>"
        "<mac address='52:54:00:00:00:01'/><source network='default'/></interface>"
        "</devices></domain>"
    )
    d = DomainXML(text)
    d.use_bridge("br9")
    assert d.tostring() == text.replace("'network'", "'bridge'").replace(
        "network='default'", "bridge='br9'"
    )
    d = DomainXML(text)
    d.add_interface(bridge="br7", mac="52:54:00:77:77:77")
    out = d.tostring()
    assert [i.mac for i in DomainXML(out).interfaces] == ["52:54:00:00:00:01", "52:54:00:77:77:77"]
    assert out.startswith(text[: -len("</devices></domain>")])

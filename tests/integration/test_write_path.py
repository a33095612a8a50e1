"""Which libvirt calls a switch of a running guest makes, seen from what they leave (issue 13).

When the running and the persistent interface agree, one ``updateDeviceFlags(LIVE|CONFIG)``
does both; when they disagree, each gets its own device XML, so a pending next-boot edit of
another part of the interface survives the switch. Read back with virsh.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lxml import etree

import kvmnet

from .libvirt_lab import LibvirtLab

pytestmark = [pytest.mark.integration, pytest.mark.root("starts libvirtd in a namespace")]

MAC = "52:54:00:7e:0b:01"


@pytest.fixture
def host(lab: LibvirtLab) -> Iterator[kvmnet.Host]:
    with kvmnet.connect(lab.uri) as host:
        yield host


def nic(lab: LibvirtLab, name: str, *, inactive: bool) -> tuple[str, str | None, str | None]:
    """(type, source, model) of the guest's NIC with MAC, from virsh."""
    root = etree.fromstring(lab.domain_xml(name, inactive=inactive).encode())
    iface = root.find(f"devices/interface/mac[@address='{MAC}']/..")
    assert iface is not None
    source, model = iface.find("source"), iface.find("model")
    attr = "network" if iface.get("type") == "network" else "bridge"
    return (
        str(iface.get("type")),
        None if source is None else source.get(attr),
        None if model is None else model.get("type"),
    )


def test_a_pending_next_boot_edit_survives_a_live_switch(
    lab: LibvirtLab, host: kvmnet.Host
) -> None:
    lab.define_guest("kvl-pending", network="default", mac=MAC)
    # Next boot only: the NIC becomes an e1000 (another tool's pending edit).
    xml = lab.state_dir / "pending.xml"
    xml.write_text(
        f"<interface type='network'><mac address='{MAC}'/><source network='default'/>"
        "<model type='e1000'/><rom enabled='no'/></interface>"
    )
    lab.virsh("update-device", "kvl-pending", str(xml), "--config")

    change = host.domain("kvl-pending").use_bridge("br0")

    assert change.applied_live and change.applied_config
    assert nic(lab, "kvl-pending", inactive=False) == ("bridge", "br0", "virtio")
    # One LIVE|CONFIG call with the live device would have made this virtio again.
    assert nic(lab, "kvl-pending", inactive=True) == ("bridge", "br0", "e1000")


def test_an_agreeing_switch_leaves_live_and_persistent_the_same(
    lab: LibvirtLab, host: kvmnet.Host
) -> None:
    lab.define_guest("kvl-agree", network="default", mac=MAC)
    before = etree.fromstring(lab.domain_xml("kvl-agree", inactive=True).encode())
    slot = before.find(f"devices/interface/mac[@address='{MAC}']/../address")
    assert slot is not None

    change = host.domain("kvl-agree").use_nat("default")  # there already: nothing to do
    assert not change.changed and not change.applied
    host.domain("kvl-agree").use_bridge("br0")

    assert nic(lab, "kvl-agree", inactive=False) == ("bridge", "br0", "virtio")
    assert nic(lab, "kvl-agree", inactive=True) == ("bridge", "br0", "virtio")
    after = etree.fromstring(lab.domain_xml("kvl-agree", inactive=True).encode())
    iface = after.find(f"devices/interface/mac[@address='{MAC}']/..")
    assert iface is not None
    # Nothing live-only leaked into the definition; the PCI slot stayed.
    assert iface.find("alias") is None and iface.find("target") is None
    address = iface.find("address")
    assert address is not None and address.get("slot") == slot.get("slot")

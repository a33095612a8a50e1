"""The guarded defineXML path: a second writer between kvmnet's read and its define.

libvirt's test driver has no device-level calls (VIR_ERR_NO_SUPPORT), so every edit there
goes through ``defineXML``. ``test:///default`` is shared by the connections of one process,
so a second, real connection can define the domain in the window kvmnet guards: the
``kvmnet.virt.domain._before_define_check`` seam runs right before the definition is read again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import libvirt
import pytest

import kvmnet
from kvmnet.core.domainxml import DomainXML
from kvmnet.testing import Guest, Nic, domain_xml
from kvmnet.virt import domain as domain_module

MAC_A = "52:54:00:c0:00:01"
MAC_B = "52:54:00:c0:00:02"
MAC_C = "52:54:00:c0:00:03"


@pytest.fixture
def name() -> Iterator[str]:
    """A shut-off two-NIC domain in the process-wide test:///default, undefined afterwards."""
    dom_name = f"kvmnet-race-{uuid.uuid4().hex[:8]}"
    with kvmnet.connect("test:///default") as keeper:
        guest = Guest(
            dom_name, running=False, nics=(Nic.network(mac=MAC_A), Nic.network(mac=MAC_B))
        )
        keeper.connection.define_domain(domain_xml(guest))
        yield dom_name
        raw = libvirt.open("test:///default")  # while keeper holds the shared world open
        raw.lookupByName(dom_name).undefine()
        raw.close()


def rival(name: str, edit: Callable[[DomainXML], object], times: int = 1) -> Callable[..., None]:
    """A hook that makes a second connection define ``edit`` of the current definition."""
    left = [times]

    def hook(_dom: object) -> None:
        if left[0] == 0:
            return
        left[0] -= 1
        with kvmnet.connect("test:///default") as other:
            doc = DomainXML(other.domain(name).xml(inactive=True))
            edit(doc)
            other.connection.define_domain(doc.tostring())

    return hook


def persistent(name: str) -> dict[str | None, tuple[str, str | None]]:
    with kvmnet.connect("test:///default") as host:
        return {i.mac: (i.type, i.source) for i in host.domain(name).persistent_interfaces}


def test_a_switch_redone_on_the_definition_a_second_writer_changed(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        domain_module, "_before_define_check", rival(name, lambda d: d.use_bridge("br9", MAC_B))
    )
    with kvmnet.connect("test:///default") as host:
        change = host.domain(name).use_bridge("br0", MAC_A)

    # Both writers' changes stand: kvmnet's NIC A and the rival's NIC B.
    assert persistent(name) == {MAC_A: ("bridge", "br0"), MAC_B: ("bridge", "br9")}
    assert change.applied_config
    # The change is described against the definition it was finally made on.
    assert "br9" in change.before and "br9" in change.after
    edited = [
        line
        for line in change.diff().splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert any("br0" in line for line in edited)
    assert not any("br9" in line for line in edited)


def test_an_addition_and_a_removal_keep_the_other_writers_change(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = rival(name, lambda d: d.add_interface(bridge="br7", mac=MAC_C))
    monkeypatch.setattr(domain_module, "_before_define_check", hook)
    with kvmnet.connect("test:///default") as host:
        host.domain(name).remove_interface(MAC_A)
    assert persistent(name) == {MAC_B: ("network", "default"), MAC_C: ("bridge", "br7")}

    hook = rival(name, lambda d: d.use_bridge("br5", MAC_B))
    monkeypatch.setattr(domain_module, "_before_define_check", hook)
    with kvmnet.connect("test:///default") as host:
        host.domain(name).add_interface(network="default", mac=MAC_A)
    assert persistent(name) == {
        MAC_A: ("network", "default"),
        MAC_B: ("bridge", "br5"),
        MAC_C: ("bridge", "br7"),
    }


def test_a_writer_that_never_stops_gets_a_refusal_and_nothing_overwritten(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = iter(range(100))

    def edit(doc: DomainXML) -> None:
        doc.use_bridge(f"busy{next(count)}", MAC_B)

    monkeypatch.setattr(domain_module, "_before_define_check", rival(name, edit, times=100))
    with kvmnet.connect("test:///default") as host:
        dom = host.domain(name)
        with pytest.raises(kvmnet.ConcurrentChange, match=rf"{name}.*nothing was overwritten"):
            dom.use_bridge("br0", MAC_A)
    # NIC A never reached br0 and the rival's last definition is what stands.
    now = persistent(name)
    assert now[MAC_A] == ("network", "default")
    assert now[MAC_B] == ("bridge", f"busy{domain_module._DEFINE_ATTEMPTS - 1}")


def test_the_other_writer_made_the_same_change_already(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        domain_module, "_before_define_check", rival(name, lambda d: d.use_bridge("br0", MAC_A))
    )
    with kvmnet.connect("test:///default") as host:
        change = host.domain(name).use_bridge("br0", MAC_A)
    assert persistent(name)[MAC_A] == ("bridge", "br0")
    assert change.before == change.after  # nothing left for kvmnet to define


def test_no_second_writer_defines_exactly_the_edit(name: str) -> None:
    with kvmnet.connect("test:///default") as host:
        dom = host.domain(name)
        before = dom.xml(inactive=True)
        change = dom.use_bridge("br0", MAC_B)
        assert change.before == before
        doc = DomainXML(before)
        doc.use_bridge("br0", MAC_B)
        assert change.after == doc.tostring()
    assert persistent(name) == {MAC_A: ("network", "default"), MAC_B: ("bridge", "br0")}


LIVE_NIC = """<interface type='bridge'>
      <mac address='52:54:00:c0:00:01'/>
      <source bridge='br0'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
      <alias name='net0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>"""
CONFIG_NIC = """<interface type='bridge'>
  <mac address='52:54:00:c0:00:01'/>
  <source bridge='br0'/>
  <model type='virtio'/>
  <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
</interface>"""


def test_one_call_only_when_the_live_device_makes_the_persistent_one() -> None:
    same = domain_module._same_device
    # libvirt's live-only parts (alias, generated tap name) and whitespace do not count.
    assert same(LIVE_NIC, CONFIG_NIC)
    # Anything else does: the persistent definition keeps its own device XML then.
    assert not same(LIVE_NIC, CONFIG_NIC.replace("virtio", "e1000"))
    assert not same(LIVE_NIC, CONFIG_NIC.replace("slot='0x03'", "slot='0x04'"))
    assert not same(LIVE_NIC, CONFIG_NIC.replace("<model", "<link state='down'/><model"))
    assert not same(
        LIVE_NIC.replace("net0", "ua-lan"),
        CONFIG_NIC.replace("<model", "<alias name='ua-x'/><model"),
    )
    assert not same(LIVE_NIC.replace("vnet3", "mytap"), CONFIG_NIC)


def test_an_edit_on_a_closed_host_says_so_and_is_no_lost_daemon(name: str) -> None:
    with kvmnet.connect("test:///default") as host:
        dom = host.domain(name)
    with pytest.raises(kvmnet.KvmnetError, match="connection is closed") as caught:
        dom.use_bridge("br0", MAC_A)
    assert not isinstance(caught.value, kvmnet.ConnectionLost)
    assert persistent(name)[MAC_A] == ("network", "default")

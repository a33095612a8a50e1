"""Two real libvirtds (two hypervisors of one LAN): a MAC used on B is never allocated for A.

The prefix 52:54:00:77:00 holds 256 MACs. Host A runs a guest on ...:00. Host B runs a guest
on ...:01, with a NIC hot-plugged live only (...:02), a NIC added for the next boot only
(...:03), and a libvirt network reserving ...:04 to ...:fe for DHCP. So for A and B together
exactly one MAC is free, ...:ff, and the allocator must find it and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import kvmnet
from kvmnet.errors import MacInUse, MacSpaceExhausted
from kvmnet.virt.macalloc import MacAllocator

from .libvirt_lab import LabFactory, LibvirtLab

pytestmark = [
    pytest.mark.root("two real libvirtds in private network + mount namespaces"),
    pytest.mark.integration,
]

PREFIX = "52:54:00:77:00"


def _mac(i: int) -> str:
    return f"{PREFIX}:{i:02x}"


@pytest.fixture
def host_b(lab_factory: LabFactory) -> Iterator[LibvirtLab]:
    lab = lab_factory.start(bridge=None)
    try:
        yield lab
    finally:
        lab.stop()


def _reservations_network(state: Path) -> Path:
    hosts = "".join(f"<host mac='{_mac(i)}' ip='10.77.0.{i}'/>" for i in range(4, 255))
    xml = (
        "<network><name>resv</name><bridge name='kvxresv0'/>"
        "<ip address='10.77.0.1' netmask='255.255.255.0'><dhcp>"
        f"<range start='10.77.0.2' end='10.77.0.3'/>{hosts}</dhcp></ip></network>"
    )
    path = state / "resv.xml"
    path.write_text(xml)
    return path


def test_a_mac_used_on_host_b_is_never_allocated_for_host_a(
    lab: LibvirtLab, host_b: LibvirtLab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.define_guest("mac-a", network="default", mac=_mac(0x00))
    host_b.define_guest("mac-b", network="default", mac=_mac(0x01))
    host_b.virsh("attach-interface", "mac-b", "network", "default", "--mac", _mac(0x02), "--live")
    host_b.virsh("attach-interface", "mac-b", "network", "default", "--mac", _mac(0x03), "--config")
    host_b.virsh("net-define", str(_reservations_network(host_b.state_dir)))
    # The two NICs really are where the test says: one only live, one only persistent.
    live = {n.mac for n in host_b.nics("mac-b")}
    persistent = {n.mac for n in host_b.nics("mac-b", inactive=True)}
    assert _mac(0x02) in live - persistent
    assert _mac(0x03) in persistent - live

    with kvmnet.connect(lab.uri) as a, kvmnet.connect(host_b.uri) as b:
        alloc = MacAllocator([a, b], prefix=PREFIX)
        assert [r for r in alloc.sources if not r.ok and r.host in (a.uri, b.uri)] == []
        in_use = alloc.in_use
        assert in_use[_mac(0x00)] == (f"domain 'mac-a' on {a.uri}",)
        assert in_use[_mac(0x02)] == (f"domain 'mac-b' on {b.uri}",)  # live only
        assert in_use[_mac(0x03)] == (f"domain 'mac-b' on {b.uri}",)  # next boot only
        assert in_use[_mac(0x80)] == (
            f"network 'resv' on {b.uri} (a DHCP reservation for 10.77.0.128)",
        )
        assert alloc.allocate() == _mac(0xFF)
        with pytest.raises(MacSpaceExhausted):
            alloc.allocate()
        with pytest.raises(MacInUse) as info:
            MacAllocator([a, b], prefix=PREFIX).reserve(_mac(0x02))
        assert info.value.used_by == (f"domain 'mac-b' on {b.uri}",)

        # Host A alone would happily hand out what B uses: B is what makes them taken.
        only_a = MacAllocator(a, prefix=PREFIX)
        assert {_mac(0x01), _mac(0x02), _mac(0x03)} <= set(only_a.allocate_many(255))

        # And the kvmnet command line says the same.
        from kvmnet.cli import main

        assert main(["-c", a.uri, "-c", b.uri, "mac", "--prefix", PREFIX, "--no-ledger"]) == 0
        assert capsys.readouterr().out == f"{_mac(0xFF)}\n"

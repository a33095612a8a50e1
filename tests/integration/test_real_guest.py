"""A real guest goes from NAT to the LAN and back, end to end (issue 5's proof).

The tiny guest (Debian kernel + busybox, ``scripts/build-tiny-guest.py``) boots under a
hermetic libvirtd whose namespace (the "host") has a NIC on a LAN namespace with its own DHCP
server (``lan_lab.py``). The guest prints ``LEASE <ip> <router>`` on its serial console for
every lease it takes: that console is the ground truth each step is checked against, besides
what kvmnet reports.

1. On libvirt's ``default`` network the guest leases 192.168.122.x; ``dom.addresses()`` has it
   from the lease.
2. kvmnet bridges the host's NIC into a new br0 and moves the running guest to br0 live,
   bouncing its link.
3. The guest leases an address from the LAN's server; kvmnet finds it by probing br0 (nobody
   has talked to the guest on the LAN before: libvirt has no lease for it, and the host's
   neighbour table does not know it); then the LAN pings it.
4. Back to NAT: 192.168.122.x again.

Done twice: with the building blocks (``Bridge.enslave`` + ``dom.use_bridge``) and with the
combined call (``host.bridge_guest`` / ``host.nat_guest``). Each scenario gets its own
libvirtd and LAN, because each must start with no br0.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import kvmnet
from kvmnet.backends import Iproute2Backend

from .lab_host import wait_for
from .lan_lab import NIC, Lan, ipv4_of, start_lan
from .libvirt_lab import LabFactory, LibvirtLab
from .tiny_guest import ensure_tiny_guest, leases

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root("a real guest under a hermetic libvirtd, a LAN namespace with DHCP"),
]

GUEST = "kvl-tiny"
GUEST_MAC = "52:54:00:7e:02:01"
NAT_PREFIX = "192.168.122."

# kvmnet as it runs on a real host: in the namespace where libvirtd and br0 live, so that the
# bridge it probes and the neighbour table it reads for a bridged guest are that host's, not
# the test runner's.
ADDRESSES_ON_HOST = """
import json, sys, kvmnet
with kvmnet.connect(sys.argv[1]) as host:
    found = host.domain(sys.argv[2]).addresses(probe=True)
print(json.dumps([[a.mac, a.address, a.source] for a in found]))
"""


@dataclass
class World:
    lab: LibvirtLab
    lan: Lan
    backend: Iproute2Backend

    def boot_guest(self) -> tuple[str, float]:
        """Start the tiny guest on NAT; its first lease and the seconds from start to it."""
        began = time.monotonic()
        self.lab.define_guest(GUEST, network="default", mac=GUEST_MAC, kernel_boot=True)
        address = self.next_lease(0, timeout=180)
        return address, time.monotonic() - began

    def next_lease(self, seen: int, *, timeout: float = 60) -> str:
        """The first address the guest leases after it had printed ``seen`` leases."""
        def new() -> str | None:
            found = leases(self.lab.serial_log(GUEST))
            return found[seen][0] if len(found) > seen else None

        return wait_for(new, timeout=timeout, what=f"lease #{seen + 1} on {GUEST}'s console")

    def addresses_on_host(self) -> set[tuple[str, str, str]]:
        """``dom.addresses(probe=True)`` computed by kvmnet inside the lab's namespace."""
        argv = [sys.executable, "-c", ADDRESSES_ON_HOST, self.lab.uri, GUEST]
        return {(m, a, s) for m, a, s in json.loads(self.lab.run(argv).stdout)}


@pytest.fixture
def world(lab_factory: LabFactory) -> Iterator[World]:
    # Built before the daemon starts, so a first (downloading) build is not counted as boot.
    ensure_tiny_guest()
    lab = lab_factory.start(bridge=None)  # no br0: kvmnet must create it from the NIC
    try:
        lan = start_lan(lab_factory, lab)
        try:
            assert lan.in_subnet(lan.nic_address), "the host NIC got no LAN lease to start from"
            yield World(lab, lan, Iproute2Backend(netns=lab.netns))
        finally:
            lan.stop()
    finally:
        lab.stop()


def reported(dom: kvmnet.Domain) -> set[tuple[str, str, str]]:
    return {(a.mac, a.address, a.source) for a in dom.addresses()}


def assert_on_lan(world: World, tap: str, *, sources: tuple[str, ...] = ("probe",)) -> str:
    """Step 3: the guest took a LAN lease, kvmnet reports it (from one of ``sources``) with
    nobody having talked to the guest for it, and the LAN reaches it."""
    assert world.lab.bridge_ports("br0") == {NIC: "br0", tap: "br0"}
    address = world.next_lease(1)
    assert world.lan.in_subnet(address), f"guest leased {address}, not a LAN address"
    # A bridged guest has no libvirt lease and the host's neighbour table does not know it:
    # kvmnet probes br0's subnet and reads the table after.
    if "arp" not in sources:
        table = world.lab.run(["ip", "neigh", "show", "dev", "br0"]).stdout.lower()
        assert GUEST_MAC not in table, "the host knew the guest before kvmnet probed"
    wait_for(lambda: {(GUEST_MAC, address, s) for s in sources} & world.addresses_on_host()
             or None, timeout=15, what=f"kvmnet on the host to report {address}")
    wait_for(lambda: world.lan.ping(address) or None, timeout=15,
             what=f"the LAN namespace to ping the guest at {address}")
    return address


def assert_back_on_nat(world: World, dom: kvmnet.Domain, tap: str) -> None:
    """Step 4: on virbr0 again with a fresh 192.168.122.x lease that kvmnet reports."""
    assert world.lab.bridge_ports()[tap] == "virbr0"
    address = world.next_lease(2)
    assert address.startswith(NAT_PREFIX)
    wait_for(lambda: (GUEST_MAC, address, "lease") in reported(dom) or None, timeout=15,
             what=f"kvmnet to report the NAT lease {address}")


def test_guest_goes_from_nat_to_the_lan_and_back(world: World) -> None:
    nat_address, boot = world.boot_guest()
    assert nat_address.startswith(NAT_PREFIX)
    with kvmnet.connect(world.lab.uri) as host:
        dom = host.domain(GUEST)
        wait_for(lambda: (GUEST_MAC, nat_address, "lease") in reported(dom) or None,
                 timeout=15, what="kvmnet to report the NAT lease")
        tap = world.lab.tap_of(GUEST, GUEST_MAC)

        bridge = kvmnet.Bridge("br0", backend=world.backend)
        bridge.enslave(kvmnet.HostNic(NIC, backend=world.backend), dry_run=True).apply()
        assert ipv4_of(world.lab, "br0") == world.lan.nic_address
        assert ipv4_of(world.lab, NIC) == ""
        dom.use_bridge("br0", bounce_link=True)
        assert_on_lan(world, tap)

        dom.use_nat("default", bounce_link=True)
        assert_back_on_nat(world, dom, tap)
    print(f"boot to first lease: {boot:.1f} s")  # noqa: T201 (shown with -rP)


def test_one_call_puts_the_guest_on_the_lan_and_back(world: World) -> None:
    nat_address, boot = world.boot_guest()
    assert nat_address.startswith(NAT_PREFIX)
    with kvmnet.connect(world.lab.uri) as host:
        tap = world.lab.tap_of(GUEST, GUEST_MAC)
        preview = host.bridge_guest(GUEST, bridge="br0", nic=NIC, backend=world.backend,
                                    dry_run=True)
        assert not preview.applied
        shown = str(preview.plan)  # one dry run shows the host commands and the guest's diff
        assert f"ip link set {NIC} master br0" in shown
        assert "+      <source bridge='br0'/>" in shown
        assert "br0" not in world.lab.links()
        assert world.lab.bridge_ports()[tap] == "virbr0"

        # The address wait probes br0 through the backend's runner, in the lab's namespace.
        result = host.bridge_guest(GUEST, bridge="br0", nic=NIC, backend=world.backend)
        assert result.applied and result.host_result is not None
        assert ipv4_of(world.lab, "br0") == world.lan.nic_address
        lan_address = world.next_lease(1)
        assert [(a.mac, a.address, a.source) for a in result.addresses] == [
            (GUEST_MAC, lan_address, "probe")
        ], result.notes
        # Found now, the guest is in the host's neighbour table: a plain lookup has it too.
        assert assert_on_lan(world, tap, sources=("arp", "probe")) == lan_address

        back = host.nat_guest(GUEST, release=NIC, backend=world.backend)
        assert back.applied
        # libvirt still holds the lease from the first boot (same MAC, same address): the
        # wait must not take it for the new one, so the guest has leased again by the time
        # nat_guest returns (its console line may trail the DHCP ACK by a moment).
        renewed = world.next_lease(2, timeout=1.0)
        assert [(a.mac, a.address, a.source) for a in back.addresses] == [
            (GUEST_MAC, renewed, "lease")
        ], back.notes
        assert_back_on_nat(world, host.domain(GUEST), tap)
        # The NIC was released: it holds the host's LAN address again and br0 is gone.
        assert NIC not in world.lab.bridge_ports()
        assert ipv4_of(world.lab, NIC) == world.lan.nic_address
        assert world.lan.ping(world.lan.nic_address)
        assert "br0" not in world.lab.links()
    print(f"boot to first lease: {boot:.1f} s")  # noqa: T201 (shown with -rP)

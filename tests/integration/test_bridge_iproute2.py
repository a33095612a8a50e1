"""iproute2 bridging for real: a LAN namespace with dnsmasq, a host namespace whose veth NIC
got its address by DHCP (udhcpc still running, as on a real host)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kvmnet.backends import Iproute2Backend
from kvmnet.hostnet.nic import Bridge, HostNic
from tests.lab import LabHost, Lan, default_devs, run, snapshot_diff, wait_for

pytestmark = [pytest.mark.root("network namespaces, dnsmasq, udhcpc"), pytest.mark.integration]


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan("kvb") as lan:
        yield lan


@pytest.fixture
def host(lan: Lan) -> LabHost:
    host = lan.add_host(mac=f"52:54:00:bb:00:{len(lan.hosts) + 1:02x}")
    host.dhcp()
    return host


def objects(host: LabHost) -> tuple[HostNic, Bridge]:
    backend = Iproute2Backend(netns=host.ns)
    return HostNic(host.nic, backend=backend), Bridge("br0", backend=backend)


def test_dhcp_nic_is_bridged_without_losing_the_lan(lan: Lan, host: LabHost) -> None:
    address = host.address
    nic, br = objects(host)
    assert nic.mac == host.mac and not br.exists
    pid = host.dhcp_pid
    assert pid is not None and host.running(pid)

    plan = br.enslave(nic)

    assert plan.action == "enslave" and not plan.dry_run
    assert br.exists and br.mac == host.mac and br.ports == (host.nic,)
    assert f"{address}/24" in host.addresses("br0")
    assert host.addresses(host.nic) == []
    assert nic.master == "br0"
    assert default_devs(host) == ["br0"]
    assert br.stp is False and br.forward_delay == 0
    lease = next(a for a in br.addresses if a.cidr == f"{address}/24")
    assert lease.valid_lft is not None and lease.valid_lft > 3000, "lifetimes were kept"
    assert lan.ping(address), "the LAN must still reach the host"
    wait_for(lambda: not host.running(pid), what="the NIC's DHCP client to stop")


def test_a_dhcp_client_is_started_on_the_bridge(lan: Lan, host: LabHost) -> None:
    nic, br = objects(host)
    client = ("busybox", "udhcpc", "-f", "-i", "br0", "-s", str(lan.hook), "-t", "5", "-T", "1")
    br.enslave(nic, dhcp_client=client)
    clients = [argv for argv in host.commands().values() if "udhcpc" in argv]
    assert clients == [list(client)], "only the new udhcpc on br0 runs in the namespace"
    # It renews through br0 with the NIC's MAC: the same lease, still on br0.
    host.exec("kill", "-USR1", str(next(p for p, a in host.commands().items() if "udhcpc" in a)))
    assert lan.ping(host.address)
    assert host.addresses(host.nic) == []


def test_classic_stale_bridge_address_is_replaced(lan: Lan, host: LabHost) -> None:
    address = host.address
    host.ip("link", "add", "br0", "type", "bridge")
    host.ip("addr", "add", "192.168.0.1/24", "dev", "br0")
    host.ip("link", "set", "br0", "up")
    nic, br = objects(host)
    plan = br.enslave(nic, dry_run=True)
    assert "stale address on the existing br0" in str(plan)
    plan.apply()
    assert host.addresses("br0") == [f"{address}/24"]
    assert br.mac == host.mac and nic.master == "br0"
    assert lan.ping(address)


def test_release_is_the_exact_way_back(lan: Lan, host: LabHost) -> None:
    nic, br = objects(host)
    host.exec("kill", "-TERM", str(host.dhcp_pid))  # so the snapshots compare only our work
    wait_for(lambda: host.dhcp_pid is not None and not host.running(host.dhcp_pid))
    before = host.snapshot()
    br.enslave(nic)
    assert host.snapshot() != before
    plan = br.release(nic)
    assert ("ip", "link", "del", "br0") in plan.commands
    assert not snapshot_diff(before, host.snapshot())
    assert not br.exists and nic.master is None
    assert lan.ping(host.address)


def test_preflight_refusals_on_a_real_namespace(lan: Lan, host: LabHost) -> None:
    """The refusals that a namespace can show for real (Wi-Fi and br_netfilter cannot be
    made here without touching the machine's kernel: their tests fake the runner)."""
    from kvmnet.errors import HostNicNotFound, PreflightRefused

    before = host.snapshot()
    nic, br = objects(host)
    with pytest.raises(HostNicNotFound, match="eth9"):
        br.enslave("eth9")
    # The SSH session's local address is the NIC's: a dead-man timer is required.
    ssh = f"{lan.gateway} 50000 {host.address} 22"
    assert nic.ssh_session_uses(ssh)
    with pytest.raises(PreflightRefused, match="confirm_within") as info:
        br.enslave(nic, ssh_connection=ssh)
    assert info.value.check == "ssh"
    # A link named like the bridge that is no bridge.
    host.ip("link", "add", "br0", "type", "veth", "peer", "name", "kvbpeer")
    with pytest.raises(PreflightRefused, match="veth, not a bridge"):
        br.enslave(nic)
    host.ip("link", "del", "br0")
    # Already a port of another bridge.
    host.ip("link", "add", "kvbother", "type", "bridge")
    host.ip("link", "set", host.nic, "master", "kvbother")
    with pytest.raises(PreflightRefused, match="already a port of kvbother"):
        br.enslave(nic)
    host.ip("link", "set", host.nic, "nomaster")
    host.ip("link", "del", "kvbother")
    host.ip("link", "set", host.nic, "up")
    assert not snapshot_diff(before, host.snapshot())


def test_a_gateway_that_drops_ping_still_counts_by_arp(lan: Lan, host: LabHost) -> None:
    drop = ["-p", "icmp", "--icmp-type", "echo-request", "-j", "DROP"]
    iptables = ["ip", "netns", "exec", lan.ns, "iptables"]
    run([*iptables, "-I", "INPUT", *drop])
    try:
        nic, br = objects(host)
        br.enslave(nic)  # verified: the gateway resolved by ARP on br0
        assert nic.master == "br0" and lan.ping(host.address)
    finally:
        run([*iptables, "-D", "INPUT", *drop])


def test_isc_dhclient_daemon_is_found_and_stopped(lan: Lan) -> None:
    host = lan.add_host(mac="52:54:00:bb:00:dc")
    pid = host.dhclient()
    nic, br = objects(host)
    plan = br.enslave(nic, dry_run=True)
    assert plan.commands[0] == ("kill", "-TERM", str(pid)), "the forked daemon, by its PID"
    plan.apply()
    wait_for(lambda: not host.running(pid), what="dhclient to stop")
    assert host.addresses(host.nic) == [] and lan.ping(host.address)

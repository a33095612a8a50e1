"""MacAllocator over real libvirt test-driver hosts: inventory, allocation, reservation."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import kvmnet
from kvmnet.core.macs import (
    LocalSpace,
    MacPrefix,
    int_to_mac,
    is_assignable,
    is_locally_administered,
    is_multicast,
    mac_to_int,
)
from kvmnet.errors import InvalidInput, InvalidMac, MacInUse, MacSpaceExhausted
from kvmnet.hostnet.runners.runner import CommandResult, RecordingRunner
from kvmnet.testing import Guest, Nic, World, bridge_network, nat_network
from kvmnet.virt.macalloc import MacAllocator, SourceReport, is_local_uri
from kvmnet.virt.macledger import MacLedger

SHARED = "52:54:00:00:00:01"


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[kvmnet.Host]]:
    """Three test-driver hosts of one LAN; SHARED is used on host a and host c."""
    a = World(
        (
            Guest("web1", nics=(Nic.network("default", mac=SHARED),)),
            Guest("web2", nics=(Nic.bridge("br0", mac="52:54:00:00:00:02"),), running=False),
        ),
        (nat_network(reservations=[("52:54:00:00:00:03", "192.168.122.3")]), bridge_network()),
    ).write(tmp_path, name="a.xml")
    b = World(
        (
            Guest(
                "db1",
                nics=(Nic.network(mac="52:54:00:00:00:04"), Nic.bridge(mac="52:54:00:00:00:05")),
            ),
        )
    ).write(tmp_path, name="b.xml")
    c = World((Guest("backup", nics=(Nic.bridge(mac=SHARED),), running=False),)).write(
        tmp_path, name="c.xml"
    )
    opened = [kvmnet.connect(u) for u in (a, b, c)]
    try:
        yield opened
    finally:
        for h in opened:
            h.close()


def test_inventory_covers_every_host_and_source(hosts: list[kvmnet.Host]) -> None:
    alloc = MacAllocator(hosts)
    in_use = alloc.in_use
    a, b, c = (h.uri for h in hosts)
    assert in_use[SHARED] == (f"domain 'web1' on {a}", f"domain 'backup' on {c}")
    assert in_use["52:54:00:00:00:02"] == (f"domain 'web2' on {a}",)  # shut off
    assert in_use["52:54:00:00:00:03"] == (
        f"network 'default' on {a} (a DHCP reservation for 192.168.122.3)",
    )
    assert in_use["52:54:00:0a:0b:0c"][0].endswith("(its bridge's MAC)")
    assert {"52:54:00:00:00:04", "52:54:00:00:00:05"} <= set(in_use)
    assert all(r.ok for r in alloc.sources), alloc.sources
    domains = {r.host: r.count for r in alloc.sources if r.source == "domains"}
    assert domains == {a: 2, b: 2, c: 1}
    assert not alloc.kernel_links  # test:/// is not this machine's kernel


def test_reserve_names_the_domain_and_host(hosts: list[kvmnet.Host]) -> None:
    alloc = MacAllocator(hosts)
    with pytest.raises(MacInUse) as info:
        alloc.reserve("52-54-00-00-00-04")
    assert str(info.value).startswith(
        f"MAC 52:54:00:00:00:04 is already used by domain 'db1' on {hosts[1].uri}"
    )
    assert info.value.mac == "52:54:00:00:00:04"
    assert info.value.used_by == (f"domain 'db1' on {hosts[1].uri}",)
    with pytest.raises(InvalidMac, match="'01:00:5e:00:00:01'"):
        alloc.reserve("01:00:5e:00:00:01")
    assert alloc.reserve("5254.0000.00AA") == "52:54:00:00:00:aa"
    with pytest.raises(MacInUse, match="this allocator"):
        alloc.reserve("52:54:00:00:00:aa")


def test_a_mac_used_on_one_host_is_never_allocated_for_another(tmp_path: Path) -> None:
    # Under 52:54:00:00:00 (256 MACs, 00 to ff) host B uses every MAC but 77, host A none:
    # allocating for A alone could give anything; for A and B together only ...:77.
    used = [f"52:54:00:00:00:{i:02x}" for i in range(256) if i != 0x77]
    guests = [Guest(f"g{i}", nics=tuple(Nic.bridge(mac=m) for m in used[i::20])) for i in range(20)]
    a = World((Guest("lonely", nics=(Nic.bridge(mac="02:00:00:00:00:01"),)),)).write(
        tmp_path, name="a.xml"
    )
    b = World(tuple(guests)).write(tmp_path, name="b.xml")
    with kvmnet.connect(a) as host_a, kvmnet.connect(b) as host_b:
        alloc = MacAllocator([host_a, host_b], prefix="52:54:00:00:00")
        assert alloc.allocate() == "52:54:00:00:00:77"
        with pytest.raises(MacSpaceExhausted, match="prefix 52:54:00:00:00"):
            alloc.allocate()
        only_a = MacAllocator(host_a, prefix="52:54:00:00:00")
        assert len({only_a.allocate() for _ in range(50)}) == 50


def _running_guest_with_next_boot_change(tmp_path: Path) -> tuple[str, str, str]:
    uri = World((Guest("vm", nics=(Nic.network(mac="52:54:00:00:00:10"),)),)).write(tmp_path)
    return uri, "52:54:00:00:00:10", "52:54:00:00:00:11"


def test_next_boot_only_nic_is_taken(tmp_path: Path) -> None:
    uri, live_mac, boot_mac = _running_guest_with_next_boot_change(tmp_path)
    with kvmnet.connect(uri) as host:
        handle = host.connection.lookup_domain("vm")
        # Add a NIC to the persistent definition only, as `virsh attach-interface --config`.
        persistent = handle.xml(inactive=True).replace(
            "</devices>",
            f"<interface type='bridge'><mac address='{boot_mac}'/><source bridge='br0'/>"
            "</interface></devices>",
        )
        host.connection.define_domain(persistent)
        assert boot_mac not in handle.xml() and boot_mac in handle.xml(inactive=True)
        alloc = MacAllocator(host)
        assert alloc.in_use[boot_mac] == (f"domain 'vm' on {uri}",)
        assert live_mac in alloc.in_use
        assert not alloc.is_free(boot_mac)


def test_live_only_nic_is_taken(tmp_path: Path) -> None:
    # A running guest whose persistent definition lost a NIC: the NIC lives on in the live
    # XML only, exactly as a hot-plugged (live-only) NIC does. Real hot-plug needs a real
    # libvirtd (the test driver cannot attach): see the integration tests.
    uri, live_mac, _ = _running_guest_with_next_boot_change(tmp_path)
    with kvmnet.connect(uri) as host:
        handle = host.connection.lookup_domain("vm")
        persistent = handle.xml(inactive=True)
        start = persistent.index("<interface")
        end = persistent.index("</interface>") + len("</interface>")
        host.connection.define_domain(persistent[:start] + persistent[end:])
        assert live_mac in handle.xml() and live_mac not in handle.xml(inactive=True)
        alloc = MacAllocator(host)
        assert alloc.in_use[live_mac] == (f"domain 'vm' on {uri}",)


def test_refresh_sees_a_domain_defined_meanwhile(tmp_path: Path) -> None:
    uri = World(()).write(tmp_path)
    with kvmnet.connect(uri) as host:
        alloc = MacAllocator(host)
        mac = "52:54:00:12:34:56"
        assert alloc.is_free(mac)
        from kvmnet.testing import domain_xml

        host.connection.define_domain(
            domain_xml(Guest("late", nics=(Nic.network(mac=mac),), running=False))
        )
        assert alloc.is_free(mac)  # the inventory is a snapshot...
        alloc.refresh()
        assert not alloc.is_free(mac)  # ...until refreshed
        assert alloc.used_by(mac) == (f"domain 'late' on {uri}",)


def test_allocated_macs_stay_taken_across_refresh(tmp_path: Path) -> None:
    uri = World(()).write(tmp_path)
    with kvmnet.connect(uri) as host:
        alloc = MacAllocator(host, prefix="52:54:00:00:00")
        first = alloc.allocate()
        alloc.refresh()
        assert not alloc.is_free(first)
        assert first not in {alloc.allocate() for _ in range(200)}
        alloc.release(first)
        assert alloc.is_free(first)


def test_closed_connection_is_reported_not_skipped(
    hosts: list[kvmnet.Host], caplog: pytest.LogCaptureFixture
) -> None:
    dead = hosts[2]
    dead.connection.close()
    with caplog.at_level(logging.WARNING, logger="kvmnet.virt.macalloc"):
        alloc = MacAllocator(hosts)
    failed = alloc.failed_sources
    assert {(r.host, r.source) for r in failed} == {
        (dead.uri, "domains"),
        (dead.uri, "networks"),
        (dead.uri, "host interfaces (libvirt)"),
    }
    assert all(not r.ok and r.error for r in failed)
    assert "NOT READ" in str(failed[0])
    assert sum(dead.uri in m for m in caplog.messages) == 3
    # The hosts that could be read still count.
    assert "52:54:00:00:00:04" in alloc.in_use


def test_kernel_links_and_neighbours_through_the_runner() -> None:
    links = json.dumps(
        [
            {"ifname": "lo", "address": "00:00:00:00:00:00"},
            {"ifname": "eno1", "address": "52:54:00:aa:00:01", "permaddr": "52:54:00:aa:00:09"},
            {"ifname": "wg0"},  # no link-layer address
        ]
    )
    neigh = json.dumps(
        [
            {"dst": "10.0.0.7", "dev": "eno1", "lladdr": "52:54:00:aa:00:02"},
            {"dst": "10.0.0.8", "dev": "eno1", "state": ["FAILED"]},
        ]
    )
    runner = RecordingRunner(
        replies={("ip", "-j", "link", "show"): links, ("ip", "-j", "neigh", "show"): neigh}
    )
    alloc = MacAllocator([], kernel_links=True, neighbours=True, runner=runner)
    assert alloc.in_use["52:54:00:aa:00:01"] == ("host link 'eno1' (this machine)",)
    assert "52:54:00:aa:00:09" in alloc.in_use  # the permanent MAC under a changed one
    assert alloc.in_use["52:54:00:aa:00:02"] == ("neighbour 10.0.0.7 on 'eno1' (this machine)",)
    assert [(r.source, r.count) for r in alloc.sources] == [
        ("kernel links (ip link)", 3),
        ("neighbour table (ip neigh)", 1),
    ]


def test_failing_kernel_source_is_reported() -> None:
    runner = RecordingRunner(
        replies={("ip", "-j", "neigh", "show"): CommandResult(("ip",), 0, "not json")},
        fail=[("ip", "-j", "link")],
    )
    alloc = MacAllocator([], kernel_links=True, neighbours=True, runner=runner)
    assert [(r.source, r.ok) for r in alloc.sources] == [
        ("kernel links (ip link)", False),
        ("neighbour table (ip neigh)", False),
    ]
    assert "exited 1" in str(alloc.sources[0].error)
    assert "no JSON" in str(alloc.sources[1].error)


def test_missing_namespace_is_reported() -> None:
    alloc = MacAllocator([], netns="kvx-does-not-exist", neighbours=True)
    assert alloc.kernel_links  # a namespace means: read its kernel view
    assert [r.ok for r in alloc.sources] == [False, False]
    assert all("kvx-does-not-exist" in r.host for r in alloc.sources)


def test_local_uris() -> None:
    assert is_local_uri("qemu:///system")
    assert is_local_uri("qemu+unix:///system?socket=/tmp/x/libvirt-sock")
    assert not is_local_uri("qemu+ssh://h2/system")
    assert not is_local_uri("test:///default")


def test_deterministic_keys(tmp_path: Path) -> None:
    uri = World(()).write(tmp_path)
    with kvmnet.connect(uri) as host:
        first = MacAllocator(host).allocate(key="host/web1/nic0")
        assert MacAllocator(host).allocate(key="host/web1/nic0") == first
        assert MacAllocator(host).allocate(key="host/web1/nic1") != first
        again = MacAllocator(host)
        assert again.allocate(key="host/web1/nic0") == first
        # Handed out already by this allocator: the same key moves on.
        assert again.allocate(key="host/web1/nic0") != first
    # The same LAN state but the key's MAC used by a guest: the next free one.
    taken = World((Guest("squatter", nics=(Nic.bridge(mac=first),)),)).write(
        tmp_path, name="taken.xml"
    )
    with kvmnet.connect(taken) as host:
        moved = MacAllocator(host).allocate(key="host/web1/nic0")
    assert moved == int_to_mac(0x525400000000 | ((mac_to_int(first) + 1) & 0xFFFFFF))


def _lands_on_tap_octet(key: str) -> bool:
    """True if ``key``'s own hash picks a MAC in the random space's FE (tap) block."""
    digest = hashlib.sha256(key.encode()).digest()
    index = int.from_bytes(digest[:8], "big") & ((1 << 46) - 1)
    return index >> 40 == 0b111111  # the top 6 index bits: first octet 111111|10


def test_keys_whose_hash_lands_on_the_tap_octet_get_spread_macs_at_once() -> None:
    # The fleet's derived MACs (random space, no host): 1 key in 64 hashes into the FE block,
    # which a linear probe walked one MAC at a time (2**40 steps: a hung Ansible module).
    keys = [k for k in (f"hv{i}/guest{j}/lan2" for i in range(8) for j in range(64))
            if _lands_on_tap_octet(k)]  # fmt: skip
    assert len(keys) >= 3, "the sample must contain such keys"
    macs = [MacAllocator([], mode="random").allocate(key=k) for k in keys]
    assert all(is_assignable(mac_to_int(m)) and mac_to_int(m) >> 40 != 0xFE for m in macs)
    assert len(set(macs)) == len(macs), "they spread, not pile up on the first MAC after FE"
    assert macs == [MacAllocator([], mode="random").allocate(key=k) for k in keys]
    # Keys off the block keep the MAC they always had: their own hash's.
    plain = "hv0/web/lan2"
    assert not _lands_on_tap_octet(plain)
    digest = hashlib.sha256(plain.encode()).digest()
    index = int.from_bytes(digest[:8], "big") & ((1 << 46) - 1)
    assert MacAllocator([], mode="random").allocate(key=plain) == int_to_mac(
        LocalSpace().mac_at(index)
    )


def test_random_mode(tmp_path: Path) -> None:
    uri = World(()).write(tmp_path)
    with kvmnet.connect(uri) as host:
        alloc = MacAllocator(host, mode="random")
        macs = alloc.allocate_many(2000)
        assert len(set(macs)) == 2000
        values = [mac_to_int(m) for m in macs]
        assert all(is_locally_administered(v) and not is_multicast(v) for v in values)
        assert all(v >> 40 != 0xFE for v in values)
        assert len({v >> 40 for v in values}) > 32  # the first octet varies too
        assert alloc.prefix is None
        with pytest.raises(InvalidInput, match="exclude each other"):
            MacAllocator(host, mode="random", prefix="52:54:00")
        with pytest.raises(InvalidInput, match="'sequential'"):
            MacAllocator(host, mode="sequential")
        with pytest.raises(InvalidMac, match="multicast"):
            MacAllocator(host, prefix="01:00:5e")


def test_default_prefix_and_repr(tmp_path: Path) -> None:
    uri = World((Guest("a"),)).write(tmp_path)
    with kvmnet.connect(uri) as host:
        alloc = MacAllocator(host)
        assert alloc.prefix == MacPrefix.parse("52:54:00")
        assert alloc.allocate().startswith("52:54:00:")
        assert repr(alloc).startswith("<MacAllocator prefix 52:54:00 (16777216 MACs), 1 hosts")
        assert isinstance(alloc.sources[0], SourceReport)


def test_zero_first_octet_prefix_never_gives_all_zero(tmp_path: Path) -> None:
    uri = World(()).write(tmp_path)
    with kvmnet.connect(uri) as host:
        alloc = MacAllocator(host, prefix="00:00:00:00:00")
        macs = alloc.allocate_many(255)
        assert "00:00:00:00:00:00" not in macs and len(set(macs)) == 255
        with pytest.raises(MacSpaceExhausted):
            alloc.allocate()


def test_ledger_keeps_two_allocators_apart(tmp_path: Path) -> None:
    uri = World(()).write(tmp_path)
    with kvmnet.connect(uri) as host:
        one = MacAllocator(host, prefix="52:54:00:00:00", ledger=MacLedger(tmp_path / "state"))
        two = MacAllocator(host, prefix="52:54:00:00:00", ledger=MacLedger(tmp_path / "state"))
        got_one, got_two = set(one.allocate_many(100)), set(two.allocate_many(100))
        assert not got_one & got_two
        mac = next(iter(got_one))
        assert not two.is_free(mac)
        with pytest.raises(MacInUse, match="kvmnet pid"):
            two.reserve(mac)
        one.release(mac)
        assert two.reserve(mac) == mac


def test_ledger_claims_expire_and_keys_share(tmp_path: Path) -> None:
    now = [1000.0]
    first = MacLedger(tmp_path, ttl=10, clock=lambda: now[0])
    second = MacLedger(tmp_path, ttl=10, clock=lambda: now[0])
    assert first.claim("52:54:00:00:00:01")
    assert not second.claim("52:54:00:00:00:01")
    assert second.holder("52:54:00:00:00:01") is not None
    now[0] += 11
    assert second.claim("52:54:00:00:00:01")
    assert first.claim("52:54:00:00:00:02", key="k")
    assert second.claim("52:54:00:00:00:02", key="k")
    assert first.claim("52:54:00:00:00:03", key="k")
    assert not second.claim("52:54:00:00:00:03", key="other")
    assert set(first.claims()) == {"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"}


def test_unusable_ledger_degrades_to_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    ledger = MacLedger(blocker / "state")  # a directory under a file: cannot exist
    uri = World(()).write(tmp_path)
    with kvmnet.connect(uri) as host, caplog.at_level(logging.WARNING):
        alloc = MacAllocator(host, ledger=ledger)
        assert alloc.allocate()
    assert ledger.broken is not None
    assert any("MAC ledger" in m for m in caplog.messages)


_WORKER = """
import json, sys
import kvmnet
from kvmnet.virt.macalloc import MacAllocator
from kvmnet.virt.macledger import MacLedger
with kvmnet.connect(sys.argv[1]) as host:
    alloc = MacAllocator(host, prefix="52:54:00:00:00", ledger=MacLedger(sys.argv[2]))
    sys.stdin.readline()  # start together
    print(json.dumps(alloc.allocate_many(100)))
"""


def test_two_processes_allocating_at_once_never_collide(tmp_path: Path) -> None:
    # 2 x 100 MACs from a space of 256 with 30 used: without the ledger two processes would
    # share about 40 of them.
    used = tuple(Nic.bridge(mac=f"52:54:00:00:00:{i:02x}") for i in range(0, 256, 9))
    uri = World((Guest("g", nics=used),)).write(tmp_path)
    state = str(tmp_path / "state")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, uri, state],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate("go\n", timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    first, second = (set(json.loads(o)) for o in outs)
    assert len(first) == len(second) == 100
    assert not first & second
    assert not (first | second) & {n.mac for n in used}


def test_dense_space_walk_finds_every_free_mac(tmp_path: Path) -> None:
    rng = random.Random(7)
    free = set(rng.sample(range(256), 5))
    nics = tuple(Nic.bridge(mac=f"52:54:00:00:00:{i:02x}") for i in range(256) if i not in free)
    uri = World((Guest("g", nics=nics),)).write(tmp_path)
    with kvmnet.connect(uri) as host:
        alloc = MacAllocator(host, prefix="52:54:00:00:00", rng=rng)
        got = {alloc.allocate() for _ in range(5)}
        assert got == {f"52:54:00:00:00:{i:02x}" for i in free}
        with pytest.raises(MacSpaceExhausted, match="256 are in use"):
            alloc.allocate()


class _Elsewhere:
    """A HostLike naming another machine: a real test-driver connection under a remote URI,
    whose interface API must never be asked (it is what can abort a real libvirtd)."""

    class _NoInterfaceApi:
        def __init__(self, conn: object) -> None:
            self._conn = conn

        def __getattr__(self, name: str) -> object:
            if name == "host_interface_macs":
                raise AssertionError("libvirt's interface API was asked of a real daemon")
            return getattr(self._conn, name)

    def __init__(self, uri: str, host: kvmnet.Host, runner: RecordingRunner | None) -> None:
        self.uri = uri
        self.connection = self._NoInterfaceApi(host.connection)
        # Like a kvmnet.Host, runner() gives the machine's runner; None: a HostLike without.
        self.runner = (lambda: runner) if runner is not None else None


def test_an_ssh_hosts_links_are_read_over_its_runner_not_libvirts_interface_api(
    hosts: list[kvmnet.Host],
) -> None:
    uri = "qemu+ssh://root@hv2/system"
    links = [
        {"ifname": "eno1", "address": "52:54:00:aa:00:01", "permaddr": "52:54:00:aa:00:09"},
        {"ifname": "br0", "address": "52:54:00:aa:00:01"},
    ]
    runner = RecordingRunner(replies={("ip", "-j", "link", "show"): json.dumps(links)})
    remote = _Elsewhere(uri, hosts[1], runner)
    alloc = MacAllocator([hosts[0], remote])  # type: ignore[list-item]
    assert alloc.in_use["52:54:00:aa:00:01"] == (
        f"host link 'eno1' on {uri}",
        f"host link 'br0' on {uri}",
    )
    assert "52:54:00:aa:00:09" in alloc.in_use  # eno1's permanent MAC
    assert "52:54:00:00:00:04" in alloc.in_use  # its domains are still read through libvirt
    assert runner.commands == [("ip", "-j", "link", "show")]
    assert [(r.source, r.ok, r.count) for r in alloc.sources if r.host == uri] == [
        ("domains", True, 2),
        ("networks", True, 1),
        ("host links (ip link over ssh)", True, 2),
    ]
    alloc.refresh()  # every refresh reads them again
    assert runner.commands == [("ip", "-j", "link", "show")] * 2


def test_a_local_uri_gets_its_links_from_the_kernel_read_only(hosts: list[kvmnet.Host]) -> None:
    links = [{"ifname": "eno1", "address": "52:54:00:aa:00:05"}]
    runner = RecordingRunner(replies={("ip", "-j", "link", "show"): json.dumps(links)})
    local = _Elsewhere("qemu:///system", hosts[0], None)
    alloc = MacAllocator(local, runner=runner)  # type: ignore[arg-type]
    assert alloc.kernel_links
    assert alloc.in_use["52:54:00:aa:00:05"] == ("host link 'eno1' (this machine)",)
    assert [r.source for r in alloc.sources] == ["domains", "networks", "kernel links (ip link)"]


def test_a_tls_hosts_links_are_reported_not_read(
    hosts: list[kvmnet.Host], caplog: pytest.LogCaptureFixture
) -> None:
    uri = "qemu+tls://hv3/system"
    with caplog.at_level(logging.WARNING, logger="kvmnet.virt.macalloc"):
        alloc = MacAllocator(_Elsewhere(uri, hosts[1], None))  # type: ignore[arg-type]
    (failed,) = alloc.failed_sources
    assert (failed.host, failed.source) == (uri, "host links (ip link over ssh)")
    assert "only over ssh" in str(failed.error)
    assert any("NOT READ" in m and uri in m for m in caplog.messages)
    assert "52:54:00:00:00:04" in alloc.in_use  # the rest is still used


def test_a_failing_ssh_read_is_reported(hosts: list[kvmnet.Host]) -> None:
    runner = RecordingRunner(fail=[("ip", "-j", "link")])
    alloc = MacAllocator(_Elsewhere("qemu+ssh://hv2/system", hosts[1], runner))  # type: ignore[arg-type]
    (failed,) = alloc.failed_sources
    assert failed.source == "host links (ip link over ssh)" and "exited 1" in str(failed.error)

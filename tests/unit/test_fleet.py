"""kvmnet.fleet (bulk switches on several hosts at once) and MacAllocator over several hosts,
on libvirt's test driver: each world is a host of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import kvmnet
from kvmnet import fleet
from kvmnet.testing import Guest, Nic, World, bridge_network, nat_network

NAMES = ("web1", "web2", "db1")


def _world(tmp: Path, index: int, names: tuple[str, ...] = NAMES) -> str:
    # Distinct MACs per world, so the inventory can tell the hosts apart.
    guests = tuple(
        Guest(name, nics=(Nic.network("default", mac=f"52:54:00:0{index}:00:0{n}"),),
              running=False)
        for n, name in enumerate(names)
    )  # fmt: skip
    folder = tmp / f"host{index}"
    folder.mkdir()
    return World(guests=guests).write(folder)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[kvmnet.Host]]:
    # One connection per world for the whole test: a test-driver world lives as long as it.
    with ExitStack() as stack:
        yield [stack.enter_context(kvmnet.connect(_world(tmp_path, i))) for i in range(3)]


def sources(host: kvmnet.Host, name: str) -> list[tuple[str, str | None]]:
    return [(i.type, i.source) for i in host.domain(name).persistent_interfaces]


def test_every_host_switches_its_guests(hosts: list[kvmnet.Host]) -> None:
    per_host = fleet.bridge_many(hosts, "br0", on_network="default")
    assert len(per_host) == 3
    for host, changes in zip(hosts, per_host, strict=True):
        assert sorted(c.domain for c in changes) == sorted(NAMES)
        assert all(c.applied_config for c in changes)
        for name in NAMES:
            assert sources(host, name) == [("bridge", "br0")]
    back = fleet.nat_many(hosts, "default", ["web1"])
    assert [[c.domain for c in changes] for changes in back] == [["web1"]] * 3
    for host in hosts:
        assert sources(host, "web1") == [("network", "default")]
        assert sources(host, "web2") == [("bridge", "br0")]


def test_results_follow_the_order_of_the_hosts(hosts: list[kvmnet.Host]) -> None:
    reordered = [hosts[2], hosts[0], hosts[1]]
    per_host = fleet.bridge_many(reordered, "br0", ["db1"], dry_run=True)
    # Each Change carries its host's own XML: host N's guests have MACs 52:54:00:0N:...
    assert ["52:54:00:02:" in per_host[0][0].before, "52:54:00:00:" in per_host[1][0].before,
            "52:54:00:01:" in per_host[2][0].before] == [True, True, True]  # fmt: skip
    for host in hosts:  # a dry run changes nothing anywhere
        assert sources(host, "db1") == [("network", "default")]


def test_a_failing_host_does_not_stop_the_others(tmp_path: Path) -> None:
    with ExitStack() as stack:
        ok1 = stack.enter_context(kvmnet.connect(_world(tmp_path, 0)))
        short = stack.enter_context(kvmnet.connect(_world(tmp_path, 1, ("db1",))))
        ok2 = stack.enter_context(kvmnet.connect(_world(tmp_path, 2)))
        with pytest.raises(kvmnet.PartiallyApplied) as caught:
            fleet.bridge_many([ok1, short, ok2], "br0", ["web1", "web2"])
        message = str(caught.value)
        assert "failed on 1 of 3 hosts" in message
        assert short.uri in message and "web1" in message
        assert f"Hosts done in full: {ok1.uri}, {ok2.uri}" in message
        assert sorted(caught.value.done) == sorted(
            f"{name} on {h.uri}" for h in (ok1, ok2) for name in ("web1", "web2")
        )
        assert isinstance(caught.value.__cause__, kvmnet.DomainNotFound)
        for host in (ok1, ok2):
            assert sources(host, "web1") == [("bridge", "br0")]
        assert sources(short, "db1") == [("network", "default")]


def test_a_network_missing_on_one_host_changes_nothing_anywhere(tmp_path: Path) -> None:
    guests = (Guest("web1", nics=(Nic.bridge("br0"),), running=False),)
    with ExitStack() as stack:
        full = stack.enter_context(kvmnet.connect(World(guests=guests).write(tmp_path)))
        (tmp_path / "other").mkdir()
        other = World(guests=guests, networks=(nat_network("lan2", "virbr9"), bridge_network()))
        lacking = stack.enter_context(kvmnet.connect(other.write(tmp_path / "other")))
        with pytest.raises(kvmnet.NetworkNotFound, match="default"):
            fleet.nat_many([full, lacking], "default", ["web1"])
        for host in (full, lacking):
            assert sources(host, "web1") == [("bridge", "br0")]


@pytest.mark.parametrize(
    ("hosts_arg", "match"),
    [("test:///default", "list of kvmnet.Host"), ([], "empty"), (["test:///default"], "hold")],
)
def test_bad_hosts_are_refused(hosts_arg: object, match: str) -> None:
    with pytest.raises(kvmnet.InvalidInput, match=match):
        fleet.bridge_many(hosts_arg, "br0")  # type: ignore[arg-type]


def test_the_same_host_twice_is_refused(hosts: list[kvmnet.Host]) -> None:
    with pytest.raises(kvmnet.InvalidInput, match="same Host twice"):
        fleet.bridge_many([hosts[0], hosts[1], hosts[0]], "br0", on_network="default")
    assert sources(hosts[0], "web1") == [("network", "default")]


def test_bad_arguments_are_refused_before_any_host_is_read(hosts: list[kvmnet.Host]) -> None:
    with pytest.raises(kvmnet.InvalidInput):
        fleet.bridge_many(hosts, "not a bridge name!")
    with pytest.raises(kvmnet.InvalidInput):
        fleet.nat_many(hosts, "default", "web1")  # one str, not a list
    for host in hosts:
        assert sources(host, "web1") == [("network", "default")]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda hs: fleet.bridge_many(hs, "br0"), "too broad to guess"),
        (lambda hs: fleet.nat_many(hs, "default"), "too broad to guess"),
        (lambda hs: fleet.bridge_many(hs, "br0", ["web1"], every=True), "every=True"),
        (lambda hs: fleet.nat_many(hs, on_bridge="br0", every=True), "every=True"),
    ],
    ids=["bridge-no-selector", "nat-no-selector", "bridge-every-and-names", "nat-every-and-bridge"],
)
def test_a_selection_is_checked_once_up_front_as_for_one_host(
    hosts: list[kvmnet.Host], call: Callable[[list[kvmnet.Host]], object], match: str
) -> None:
    # The one-host call's rule, raised as InvalidInput before any host is read: not three
    # per-host failures wrapped in PartiallyApplied.
    with pytest.raises(kvmnet.InvalidInput, match=match) as info:
        call(hosts)
    assert not isinstance(info.value, kvmnet.PartiallyApplied)
    for host in hosts:
        assert sources(host, "web1") == [("network", "default")]


def test_every_moves_every_guest_of_every_host(hosts: list[kvmnet.Host]) -> None:
    per_host = fleet.bridge_many(hosts, "br0", every=True)
    assert [sorted(c.domain for c in changes) for changes in per_host] == [sorted(NAMES)] * 3
    back = fleet.nat_many(hosts, "default", every=True)
    assert all(len(changes) == len(NAMES) for changes in back)
    for host in hosts:
        assert {sources(host, n)[0] for n in NAMES} == {("network", "default")}


def test_mac_inventory_reads_every_host_and_reports_in_host_order(
    hosts: list[kvmnet.Host],
) -> None:
    alloc = kvmnet.MacAllocator(hosts, kernel_links=False, ledger=None)
    for index in range(3):
        for n in range(len(NAMES)):
            assert not alloc.is_free(f"52:54:00:0{index}:00:0{n}")
    domain_reports = [r for r in alloc.sources if r.source == "domains"]
    assert [r.host for r in domain_reports] == [h.uri for h in hosts]
    assert all(r.ok and r.count == len(NAMES) for r in domain_reports)
    assert alloc.used_by("52:54:00:01:00:02") == (f"domain 'db1' on {hosts[1].uri}",)

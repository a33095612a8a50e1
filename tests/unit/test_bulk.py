"""kvmnet.bulk and ``kvmnet bridge-all`` / ``nat-all`` on libvirt's test driver."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import kvmnet
from kvmnet.bulk import bridge_many, nat_many, select
from kvmnet.testing import Guest, Nic, World

GUESTS = (
    Guest("web1", nics=(Nic.network("default"),), running=False),
    Guest("web2", nics=(Nic.network("isolated"), Nic.network("default")), running=False),
    Guest("db1", nics=(Nic.bridge("br0"),), running=False),
    Guest("app1", nics=(Nic.network("isolated"),), running=False),
)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[kvmnet.Host]:
    # One connection for the whole test: a test-driver world lives as long as its connection.
    with kvmnet.connect(World(guests=GUESTS).write(tmp_path)) as h:
        yield h


def sources(host: kvmnet.Host, name: str) -> list[tuple[str, str | None]]:
    return [(i.type, i.source) for i in host.domain(name).persistent_interfaces]


def test_every_guest_on_a_network_moves_that_interface(host: kvmnet.Host) -> None:
    seen: list[tuple[int, int, str]] = []
    changes = bridge_many(host, "br0", on_network="default",
                          progress=lambda d, t, label: seen.append((d, t, label)))  # fmt: skip
    # In libvirt's listing order, which the test driver does not keep stable.
    assert sorted(c.domain for c in changes) == ["web1", "web2"]
    assert sources(host, "web1") == [("bridge", "br0")]
    # web2's second interface was the one on "default"; its first stays where it was.
    assert sources(host, "web2") == [("network", "isolated"), ("bridge", "br0")]
    assert sources(host, "app1") == [("network", "isolated")]
    assert [d for d, _, _ in seen] == [0, 1, 2] and seen[0][1] == 2
    assert "web1 (52:54:00:fe:00:00)" in {label for _, _, label in seen}


def test_named_guests_move_their_first_interface(host: kvmnet.Host) -> None:
    changes = nat_many(host, "default", ["db1", "app1"])
    assert [c.domain for c in changes] == ["db1", "app1"]
    assert sources(host, "db1") == [("network", "default")]
    assert sources(host, "app1") == [("network", "default")]


def test_dry_run_changes_nothing(host: kvmnet.Host) -> None:
    changes = nat_many(host, on_bridge="br0", dry_run=True)  # db1 alone is on br0
    assert [c.domain for c in changes] == ["db1"] and changes[0].dry_run
    assert "<source network='default'/>" in changes[0].after
    assert sources(host, "db1") == [("bridge", "br0")]


def test_nothing_selected_is_refused(host: kvmnet.Host) -> None:
    with pytest.raises(kvmnet.InvalidInput, match="too broad"):
        select(host)


def test_unknown_name_fails_before_anything_changes(host: kvmnet.Host) -> None:
    with pytest.raises(kvmnet.DomainNotFound, match="web9"):
        bridge_many(host, "br0", ["web1", "web9"])
    assert sources(host, "web1") == [("network", "default")]


def test_a_failure_midway_says_what_was_switched_and_what_was_not(host: kvmnet.Host) -> None:
    # After web1 is switched, the interface selected for web2 disappears (another tool removed
    # it meanwhile), so web2's switch fails.
    def boom(done: int, total: int, label: str) -> None:
        if done == 1:
            host.domain("web2").remove_interface(1)  # the interface selected for web2 goes

    with pytest.raises(kvmnet.PartiallyApplied) as caught:
        bridge_many(host, "br0", ["web1", "web2"], on_network="default", progress=boom)
    message = str(caught.value)
    assert "stopped at web2" in message
    assert "Switched already: web1" in message and "not tried: none" in message
    assert caught.value.done == ("web1",)
    assert sources(host, "web1") == [("bridge", "br0")]


def kvmnet_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvmnet", *argv], capture_output=True,
                          text=True, check=False, timeout=120,
                          env={**os.environ, "LIBVIRT_DEFAULT_URI": "test:///default"})  # fmt: skip


def test_cli_bridge_all_dry_run_prints_diffs_and_nothing_else(tmp_path: Path) -> None:
    uri = World(guests=GUESTS).write(tmp_path)
    result = kvmnet_cli("-c", uri, "bridge-all", "br0", "--on-network", "default", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("+++ ") == 2
    assert "web1.xml (after)" in result.stdout and "web2.xml (after)" in result.stdout
    assert result.stderr == ""  # piped: no progress bar


def test_cli_nat_all_prints_one_line_per_guest(tmp_path: Path) -> None:
    uri = World(guests=GUESTS).write(tmp_path)
    result = kvmnet_cli("-c", uri, "nat-all", "db1", "app1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("use_nat on domain") for line in lines)


def test_cli_needs_names_or_a_selector(tmp_path: Path) -> None:
    uri = World(guests=GUESTS).write(tmp_path)
    result = kvmnet_cli("-c", uri, "bridge-all", "br0")
    assert result.returncode == 2
    assert "needs DOMAIN names or --on-network NETWORK" in result.stderr


def test_host_bulk_calls_refuse_a_known_refusal_before_any_guest_changes(tmp_path: Path) -> None:
    # g1 runs on macvtap, which libvirt cannot move live: kvmnet knows it before any write,
    # so the bulk refuses up front (it used to switch g0 first and stop at g1).
    guests = (
        Guest("g0", running=False, nics=(Nic.network(),)),
        Guest("g1", running=True, nics=(Nic.direct("eth0"),)),
        Guest("g2", running=False, nics=(Nic.network(),)),
    )
    with kvmnet.connect(World(guests).write(tmp_path)) as host:
        with pytest.raises(kvmnet.LiveChangeUnsupported, match=r"'g1'.*macvtap"):
            host.use_bridge_all(["g0", "g1", "g2"], "br0")
        assert sources(host, "g0") == [("network", "default")]
        assert sources(host, "g2") == [("network", "default")]


def test_host_bulk_calls_report_how_far_they_got_like_bridge_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failure libvirt reports during the writes (g1's define, here) stops the bulk there.
    from kvmnet.virt import domain as domain_module

    def refuse_g1(dom: kvmnet.Domain) -> None:
        if dom.name == "g1":
            raise kvmnet.LibvirtError("operation failed: disk full", code=1)

    monkeypatch.setattr(domain_module, "_before_define_check", refuse_g1)
    guests = tuple(Guest(f"g{n}", running=False, nics=(Nic.network(),)) for n in range(3))
    with kvmnet.connect(World(guests).write(tmp_path)) as host:
        with pytest.raises(kvmnet.PartiallyApplied) as caught:
            host.use_bridge_all(["g0", "g1", "g2"], "br0")
        assert caught.value.done == ("g0",)
        message = str(caught.value)
        assert "stopped at g1" in message and "disk full" in message
        assert "Switched already: g0; not tried: g2" in message
        assert isinstance(caught.value.__cause__, kvmnet.LibvirtError)
        assert sources(host, "g0") == [("bridge", "br0")]
        assert sources(host, "g2") == [("network", "default")]

        monkeypatch.setattr(domain_module, "_before_define_check", None)
        host.use_bridge_all(["g1", "g2"], "br0")
        monkeypatch.setattr(domain_module, "_before_define_check", refuse_g1)
        with pytest.raises(kvmnet.PartiallyApplied, match="not tried: g2") as back:
            host.use_nat_all(["g0", "g1", "g2"], "default")
        assert back.value.done == ("g0",)
        assert sources(host, "g0") == [("network", "default")]
        assert sources(host, "g2") == [("bridge", "br0")]


def test_every_guest_moves_its_first_interface(host: kvmnet.Host) -> None:
    changes = nat_many(host, "default", every=True, dry_run=True)
    assert sorted(c.domain for c in changes) == ["app1", "db1", "web1", "web2"]
    with pytest.raises(kvmnet.InvalidInput, match="every=True selects every guest"):
        bridge_many(host, "br0", ["web1"], every=True)
    with pytest.raises(kvmnet.InvalidInput, match="every=True"):
        bridge_many(host, "br0")  # no selector at all: named in the refusal
    assert sources(host, "web1") == [("network", "default")]  # nothing moved


def test_host_aliases_are_the_bulk_calls(host: kvmnet.Host) -> None:
    # names=None is every=True; a list is the named guests; the failure is the same error.
    alias = host.use_nat_all(None, "default", dry_run=True)
    assert sorted(c.domain for c in alias) == ["app1", "db1", "web1", "web2"]
    assert [c.after for c in host.use_bridge_all(["web1"], "br0", dry_run=True)] == [
        c.after for c in bridge_many(host, "br0", ["web1"], dry_run=True)
    ]
    with pytest.raises(kvmnet.NetworkNotFound):
        host.use_nat_all(["web1"], "nope")

"""The kernel sources for real: links and the neighbour table inside namespaces we create.

Two namespaces joined by a veth pair: ``kvx-<pid>-h`` plays the hypervisor, ``kvx-<pid>-p``
another machine on the LAN. The peer pings the host, so the host's kernel learns the peer's
MAC in its neighbour table, the one place the host can see it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from kvmnet.virt.macalloc import MacAllocator

PREFIX = "52:54:00:99:00"
HOST_MAC = f"{PREFIX}:01"
PEER_MAC = f"{PREFIX}:02"


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    assert proc.returncode == 0, f"ip {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def lan() -> Iterator[tuple[str, str]]:
    host, peer = f"kvx-{os.getpid()}-h", f"kvx-{os.getpid()}-p"
    try:
        _ip("netns", "add", host)
        _ip("netns", "add", peer)
        _ip("-n", host, "link", "add", "kvx0", "address", HOST_MAC, "type", "veth",
            "peer", "name", "kvx1", "netns", peer)  # fmt: skip
        _ip("-n", peer, "link", "set", "kvx1", "address", PEER_MAC)
        for ns, dev, addr in ((host, "kvx0", "10.99.0.1/24"), (peer, "kvx1", "10.99.0.2/24")):
            _ip("-n", ns, "addr", "add", addr, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield host, peer
    finally:
        for ns in (host, peer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    assert host not in _ip("netns", "list")


@pytest.mark.root("network namespaces and a veth pair")
@pytest.mark.integration
def test_a_neighbour_that_talked_to_the_host_is_taken(lan: tuple[str, str]) -> None:
    host, peer = lan
    before = MacAllocator([], netns=host, neighbours=True)
    assert PEER_MAC not in before.in_use  # nobody has talked yet
    assert before.in_use[HOST_MAC] == (f"host link 'kvx0' (network namespace {host!r})",)
    ping = subprocess.run(
        ["ip", "netns", "exec", peer, "ping", "-c", "1", "-W", "2", "10.99.0.1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr

    alloc = MacAllocator([], netns=host, neighbours=True, prefix=PREFIX)
    assert alloc.in_use[PEER_MAC] == (
        f"neighbour 10.99.0.2 on 'kvx0' (network namespace {host!r})",
    )
    assert all(r.ok for r in alloc.sources), alloc.sources
    got = set(alloc.allocate_many(254))
    assert HOST_MAC not in got and PEER_MAC not in got
    assert len(got) == 254  # the 256 MACs under the prefix but those two

    # The neighbour table is opt-in: without it the peer's MAC is invisible from the host.
    blind = MacAllocator([], netns=host, prefix=PREFIX)
    assert PEER_MAC not in blind.in_use
    assert blind.is_free(PEER_MAC)

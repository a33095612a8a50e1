"""The bridge probe for real: a host namespace with a bridge, a peer namespace behind a veth
port of it, and kvmnet finding the peer's address from its MAC alone.

    kvp-PID-host: kvpbr0 10.233.7.1/24 (+ 10.99.0.1/20, too large to sweep), port kvp-h
    kvp-PID-peer: kvp-p 10.233.7.77/24, MAC 52:54:00:33:07:77 (the "guest")

The host never talks to the peer before the probe, so its neighbour table starts without it
(asserted): the probe's own datagrams are what makes the kernel learn it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kvmnet.hostnet.runners.runner import NetnsRunner
from kvmnet.virt.neighbours import probe, read_neighbours

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root("network namespaces with a bridge and a veth"),
]

BRIDGE = "kvpbr0"
PEER_MAC = "52:54:00:33:07:77"
PEER_ADDRESS = "10.233.7.77"

# kvmnet as it runs on a host: a process in the host namespace, default (local) runner.
PROBE_IN_PROCESS = """
import json, sys
from kvmnet.virt.neighbours import probe
result = probe(sys.argv[1], {sys.argv[2]})
print(json.dumps({"found": [[n.mac, n.address] for n in result.found], "sent": result.sent,
                  "swept": result.swept, "refused": result.refused}))
"""


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@dataclass
class Pair:
    host: str
    peer: str

    def table(self) -> str:
        return ip("-n", self.host, "neigh", "show", "dev", BRIDGE)


@pytest.fixture
def pair() -> Iterator[Pair]:
    made: list[str] = []
    names = Pair(f"kvp-{os.getpid()}-host", f"kvp-{os.getpid()}-peer")
    try:
        for ns in (names.host, names.peer):
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        h, p = names.host, names.peer
        ip("-n", h, "link", "add", BRIDGE, "type", "bridge", "stp_state", "0",
           "forward_delay", "0")
        ip("-n", h, "addr", "add", "10.233.7.1/24", "dev", BRIDGE)
        ip("-n", h, "addr", "add", "10.99.0.1/20", "dev", BRIDGE)
        ip("-n", h, "link", "add", "kvp-h", "type", "veth", "peer", "name", "kvp-p", "netns", p)
        ip("-n", h, "link", "set", "kvp-h", "master", BRIDGE)
        ip("-n", p, "link", "set", "kvp-p", "address", PEER_MAC)
        ip("-n", p, "addr", "add", f"{PEER_ADDRESS}/24", "dev", "kvp-p")
        for ns, dev in ((h, "kvp-h"), (h, BRIDGE), (p, "kvp-p")):
            ip("-n", ns, "link", "set", dev, "up")
        yield names
    finally:
        for ns in reversed(made):  # deleting a namespace deletes its links too
            subprocess.run(["ip", "netns", "delete", ns], check=False)


def test_probe_through_a_netns_runner_finds_the_peer(pair: Pair) -> None:
    runner = NetnsRunner(pair.host)
    assert PEER_MAC not in pair.table()  # nothing but the probe can teach the host
    result = probe(BRIDGE, {PEER_MAC}, runner=runner)
    assert [(n.mac, n.address) for n in result.found] == [(PEER_MAC, PEER_ADDRESS)]
    assert result.swept == ("10.233.7.0/24",) and result.sent == 253
    assert result.refused and result.refused[0].startswith("10.99.0.0/20")
    # Nothing went to the refused subnet: the kernel never tried to resolve an address there.
    assert "10.99." not in ip("-n", pair.host, "neigh", "show")
    # Now known, a second probe answers from the table without sending anything.
    again = probe(BRIDGE, {PEER_MAC}, runner=runner)
    assert again.sent == 0 and [n.address for n in again.found] == [PEER_ADDRESS]
    assert (PEER_MAC, PEER_ADDRESS) in {(n.mac, n.address) for n in read_neighbours(runner, BRIDGE)}


def test_probe_in_a_process_on_the_host_finds_the_peer(pair: Pair) -> None:
    assert PEER_MAC not in pair.table()
    argv = ["ip", "netns", "exec", pair.host, sys.executable, "-c", PROBE_IN_PROCESS, BRIDGE,
            PEER_MAC]
    out = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    assert out["found"] == [[PEER_MAC, PEER_ADDRESS]]
    assert out["sent"] == 253 and out["swept"] == ["10.233.7.0/24"]


def test_probe_of_a_missing_bridge_says_so(pair: Pair) -> None:
    from kvmnet.errors import KvmnetError

    with pytest.raises(KvmnetError, match="bridge 'kvpbr9' not found"):
        probe("kvpbr9", {PEER_MAC}, runner=NetnsRunner(pair.host))

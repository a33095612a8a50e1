"""Finding a host on a bridge's LAN by its MAC: an opt-in sweep of the bridge's IPv4 subnet.

A guest bridged onto the LAN leases its address from the LAN's DHCP server, so libvirt has no
lease for it, and the host's neighbour table knows it only once the host has talked to it.
`probe` reads the bridge's subnets (``ip -j addr show dev BR``) and, unless the table
already knows every wanted MAC, sends one 1-byte UDP datagram to the discard port (9) of every
other address in them. The kernel must resolve each address first, so it ARPs for it (up to
3 broadcasts over 3 s per address); the guest answers for its own, and `probe` polls
``ip -j neigh show dev BR`` for the wanted MACs for a short, bounded time.

Traffic: only on the bridge's own subnets, one small datagram per address plus the kernel's
ARP requests. A subnet with more than ``max_addresses`` addresses (default 1022, a /22) is
refused, not swept: larger sweeps flood the LAN with broadcasts and overflow the kernel's
neighbour table (``gc_thresh3`` is 1024 entries by default). Link-local subnets
(169.254.0.0/16) are never swept.

Everything runs through a runner: with a `NetnsRunner` the
datagrams are sent by ``python -m kvmnet.virt.neighbours send BR ADDR...`` inside the namespace.

Usage::

    result = probe("br0", {"52:54:00:7e:02:01"})
    result.found        # (Neighbour(address='10.231.0.158', mac='52:54:00:7e:02:01', ...),)
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from .. import _log
from ..core import validate
from ..errors import InvalidType, KvmnetError
from ..hostnet.runners.runner import LocalRunner, Runner, default_runner

__all__ = [
    "DEFAULT_MAX_ADDRESSES",
    "DEFAULT_WAIT",
    "Neighbour",
    "ProbeResult",
    "bridge_subnets",
    "parse_neighbours",
    "probe",
    "read_neighbours",
    "send_datagrams",
    "sweep_targets",
]

log = _log.get(__name__)

#: The largest sweep `probe` does: the usable addresses of a /22.
DEFAULT_MAX_ADDRESSES = 1022
#: Seconds `probe` polls the neighbour table after sending.
DEFAULT_WAIT = 2.0
DISCARD_PORT = 9
_POLL = 0.1
# States of an entry that carries a MAC the kernel got from the wire (or was told).
_UNRESOLVED = frozenset({"INCOMPLETE", "FAILED", "NONE"})
_LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")


@dataclass(frozen=True)
class Neighbour:
    """One resolved entry of a link's neighbour table."""

    address: str
    mac: str
    state: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeResult:
    """What `probe` did on ``bridge``: entries found for the wanted MACs, the subnets it
    swept, why it left others alone, and how many datagrams it sent (0: the table knew them)."""

    bridge: str
    found: tuple[Neighbour, ...] = ()
    swept: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    sent: int = 0


def parse_neighbours(text: str) -> list[Neighbour]:
    """Resolved IPv4 and IPv6 entries of ``ip -j neigh show`` output (MACs lower-cased)."""
    try:
        entries = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise KvmnetError(
            f"`ip -j neigh show` printed no JSON ({exc}): is iproute2 too old?"
        ) from exc
    found = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        dst, mac, state = entry.get("dst"), entry.get("lladdr"), entry.get("state", [])
        states = tuple(str(s) for s in state) if isinstance(state, list) else ()
        if isinstance(dst, str) and isinstance(mac, str) and not _UNRESOLVED & set(states):
            found.append(Neighbour(dst, mac.lower(), states))
    return found


def read_neighbours(runner: Runner, bridge: str) -> list[Neighbour]:
    """The resolved entries of ``bridge``'s neighbour table; none if the link is gone."""
    result = runner.run(("ip", "-j", "neigh", "show", "dev", bridge), check=False)
    return parse_neighbours(result.stdout) if result.ok else []


def bridge_subnets(runner: Runner, bridge: str) -> tuple[ipaddress.IPv4Interface, ...]:
    """The IPv4 addresses (with their prefixes) the host holds on ``bridge``."""
    argv = ("ip", "-j", "addr", "show", "dev", bridge)
    result = runner.run(argv, check=False)
    if not result.ok:
        raise KvmnetError(
            f"bridge {bridge!r} not found on the host ({' '.join(result.stderr.split())}): "
            "probe a bridge of this host, or of the namespace the runner runs in"
        )
    try:
        links = json.loads(result.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise KvmnetError(f"`{' '.join(argv)}` printed no JSON ({exc})") from exc
    found = []
    for link in links if isinstance(links, list) else ():
        infos = link.get("addr_info", []) if isinstance(link, dict) else []
        for info in infos if isinstance(infos, list) else ():
            local, plen = info.get("local"), info.get("prefixlen")
            if info.get("family") == "inet" and isinstance(local, str) and isinstance(plen, int):
                found.append(ipaddress.IPv4Interface(f"{local}/{plen}"))
    return tuple(found)


def sweep_targets(
    interfaces: Sequence[ipaddress.IPv4Interface], *, max_addresses: int = DEFAULT_MAX_ADDRESSES
) -> tuple[list[str], list[str], list[str]]:
    """The addresses to send to, the subnets swept and the refusals, for the host's
    ``interfaces`` on one bridge. The host's own addresses are left out."""
    own = {i.ip for i in interfaces}
    targets: list[str] = []
    swept: list[str] = []
    refused: list[str] = []
    for net in dict.fromkeys(i.network for i in interfaces):
        if net.subnet_of(_LINK_LOCAL):
            refused.append(f"{net}: link-local, not swept")
            continue
        size = max(net.num_addresses - 2, 1) if net.prefixlen < 31 else net.num_addresses
        if size > max_addresses:
            refused.append(
                f"{net}: {size} addresses, more than the {max_addresses} a probe sweeps "
                "(a /22); find the guest through its DHCP server or a guest agent instead"
            )
            continue
        swept.append(str(net))
        targets += [str(a) for a in net.hosts() if a not in own]
    return targets, swept, refused


def send_datagrams(targets: Sequence[str], *, bridge: str | None = None) -> int:
    """Send one byte to the discard port of each of ``targets`` from this process's network
    namespace, never blocking; returns how many the kernel took (the rest are logged)."""
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        if bridge is not None:
            try:  # keeps the datagrams on the bridge even if a route says otherwise
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, bridge.encode())
            except OSError as exc:
                log.debug("not bound to %s (%s): the routes decide", bridge, exc)
        for target in targets:
            try:
                sock.sendto(b"\0", (target, DISCARD_PORT))
                sent += 1
            except OSError as exc:  # ENOBUFS (table full), EAGAIN, EHOSTUNREACH: skip it
                log.debug("probe to %s not sent: %s", target, exc)
    if sent < len(targets):
        log.info("probe on %s: %d of %d datagrams sent", bridge, sent, len(targets))
    return sent


def _send(runner: Runner, bridge: str, targets: Sequence[str]) -> int:
    if type(runner) is LocalRunner:
        return send_datagrams(targets, bridge=bridge)
    # Another namespace (or a recording runner): the sender runs where the runner runs.
    argv = (sys.executable, "-m", "kvmnet.virt.neighbours", "send", bridge, *targets)
    result = runner.run(argv, check=False)
    if not result.ok:
        log.warning("probe on %s: the sender failed: %s", bridge, " ".join(result.stderr.split()))
        return 0
    return len(targets)


def _wanted(entries: Sequence[Neighbour], macs: Collection[str]) -> list[Neighbour]:
    return [n for n in entries if n.mac in macs and ":" not in n.address]


def probe(
    bridge: str,
    macs: Collection[str],
    *,
    runner: Runner | None = None,
    max_addresses: int = DEFAULT_MAX_ADDRESSES,
    wait: float = DEFAULT_WAIT,
    sleep: Callable[[float], None] = time.sleep,
) -> ProbeResult:
    """IPv4 neighbours of ``bridge`` whose MAC is in ``macs``, sweeping its subnets first
    unless the table already knows them all (see the module doc for the traffic it sends).

    ``runner`` reads and sends in its host or namespace (default: this one). Raises
    `KvmnetError` when the bridge is missing, and
    `InvalidInput` for a bad argument before anything is sent.
    """
    # A bridge that is there already, only read and probed (names go into argv, not files).
    bridge = validate.ifname(bridge, what="bridge", existing=True)
    if isinstance(macs, (str, bytes)):
        raise InvalidType(f"macs must be a list of MACs, got {validate.shown(macs)}")
    wanted_macs = [validate.mac(m) for m in macs]
    validate.runner(runner)
    validate.count(max_addresses, "max_addresses")
    validate.duration(wait, "wait", zero=True)
    runner = runner if runner is not None else default_runner()
    wanted = set(wanted_macs)
    known = _wanted(read_neighbours(runner, bridge), wanted)
    if {n.mac for n in known} >= wanted:
        return ProbeResult(bridge, tuple(known))
    targets, swept, refused = sweep_targets(
        bridge_subnets(runner, bridge), max_addresses=max_addresses
    )
    for reason in refused:
        log.warning("probe on %s refused %s", bridge, reason)
    if not targets:
        return ProbeResult(bridge, tuple(known), tuple(swept), tuple(refused))
    log.info("probe on %s: one datagram to each of %d addresses in %s",
             bridge, len(targets), ", ".join(swept))
    sent = _send(runner, bridge, targets)
    deadline = time.monotonic() + wait
    while True:
        known = _wanted(read_neighbours(runner, bridge), wanted)
        if {n.mac for n in known} >= wanted or time.monotonic() >= deadline:
            return ProbeResult(bridge, tuple(known), tuple(swept), tuple(refused), sent)
        sleep(_POLL)


def main(argv: Sequence[str]) -> int:
    """``python -m kvmnet.virt.neighbours send BRIDGE ADDR...``: the sender in a namespace."""
    if len(argv) < 2 or argv[0] != "send":
        log.error("usage: python -m kvmnet.virt.neighbours send BRIDGE ADDRESS...")
        return 2
    for target in argv[2:]:
        ipaddress.IPv4Address(target)  # only addresses: nothing else reaches sendto
    send_datagrams(argv[2:], bridge=argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

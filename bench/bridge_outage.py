"""How long is the host unreachable while a backend bridges its NIC? (root; namespaces only)

A LAN namespace (bridge + dnsmasq) and a host namespace whose veth NIC holds a DHCP lease,
its DHCP client still running (udhcpc, or NetworkManager / systemd-networkd confined to the
namespace when they own the NIC). From the LAN, one prober process sends an ICMP echo every
0.5 ms at a fixed rate (raw socket, non-blocking: iputils ping pauses ~10 ms after a loss
and cannot time this) and runs a TCP ping-pong every 1 ms over one long-lived connection to
an echo server in the host namespace. Meanwhile a scenario bridges the NIC; probing goes on
until SETTLE seconds after the switch returned (a daemon may still be at work then).

Reported per run: probes sent/lost, the longest gap (consecutive lost probes x 0.5 ms), the
TCP connection's longest stall and whether it survived; then per scenario the worst run and
whether the issue's target is met (iproute2: 0 lost and TCP survives; NetworkManager: longest
gap <= 100 ms; networkd and the reference scenarios: no target).

    python bench/bridge_outage.py                     # every scenario, 3 runs each
    python bench/bridge_outage.py --scenario nmcli --runs 10

Scenarios live in SCENARIOS; add one with @scenario("name"): a context manager taking the
LabHost (NIC not leased yet) that leases the NIC the way that stack does, yields the callable
doing the switch, and stops what it started on exit (the lab removes the namespaces).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

# The bench drives the test lab (tests/lab: namespaces, NetworkManager and networkd confined
# to them); `tests` is not installed, so run from a checkout with the repo root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kvmnet.backends import Iproute2Backend, NetworkdBackend, NmcliBackend
from kvmnet.hostnet.nic import Bridge, HostNic
from tests.lab import LabHost, Lan, wait_for
from tests.lab.networkd import NetworkdLab
from tests.lab.nm import NetworkManagerLab

INTERVAL = 0.0005  # ICMP every 0.5 ms
TCP_INTERVAL = 0.001
PORT = 7777
SWITCH_AT = 1.0  # seconds into the probe run
SETTLE = 2.0  # seconds of probing after the switch returned
MAX_PROBE = 60.0  # hard bound on one probe run (seconds)
NM_TARGET_MS = 100.0

Switch = Callable[[], None]
Setup = Callable[[LabHost], AbstractContextManager[Switch]]
Row = dict[str, object]


@dataclass(frozen=True)
class Scenario:
    setup: Setup
    stack: str  # what is measured: a backend, or "reference"
    target: str  # the target, "" for none
    met: Callable[[list[Row]], bool] | None


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str,
    *,
    stack: str = "reference",
    target: str = "",
    met: Callable[[list[Row]], bool] | None = None,
) -> Callable[[Callable[[LabHost], Iterator[Switch]]], Setup]:
    def register(fn: Callable[[LabHost], Iterator[Switch]]) -> Setup:
        setup = contextlib.contextmanager(fn)
        SCENARIOS[name] = Scenario(setup, stack, target, met)
        return setup

    return register


def _no_loss_tcp_alive(rows: list[Row]) -> bool:
    return all(r["lost"] == 0 and r["tcp_survived"] for r in rows)


def _gap_within_nm_target(rows: list[Row]) -> bool:
    return all(_ms(r["longest_gap_ms"]) <= NM_TARGET_MS for r in rows)


def _ms(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else float("inf")


def _enslave(bridge: Bridge, nic: HostNic | str) -> Switch:
    # verify=False: the probes are the check here, and the plan's own verification (with its
    # gateway pings) would only add to the time the switch call takes.
    def switch() -> None:
        bridge.enslave(nic, verify=False)

    return switch


@scenario("iproute2", stack="iproute2", target="0 lost, TCP survives", met=_no_loss_tcp_alive)
def iproute2(host: LabHost) -> Iterator[Switch]:
    """kvmnet's iproute2 backend, its order with the address off the NIC last (udhcpc holds
    the NIC). Measured 2026-11-28, 70 runs: 0 lost in 57; exactly one probe (0.5 ms) in 13;
    TCP survived all, with one retransmission (~207 ms stall) in 6. In 20 of those runs the
    runner's commands were timed: every lost probe and every stall fell inside `ip link set
    NIC master br0`. A frame reaching the NIC as it becomes a port is dropped, whatever the
    order of the other steps (copying the NIC's neighbours to br0 first did not help)."""
    host.dhcp()  # the client keeps running, as on a real host
    yield _enslave(Bridge("br0", backend=Iproute2Backend(netns=host.ns)), host.nic)


@scenario("nmcli", stack="NetworkManager", target=f"gap <= {NM_TARGET_MS:g} ms",
          met=_gap_within_nm_target)  # fmt: skip
def nmcli(host: LabHost) -> Iterator[Switch]:
    """kvmnet's nmcli backend; NetworkManager (confined to the host namespace, private bus)
    leased the NIC through a profile of its own, as on a desktop or RHEL host."""
    with NetworkManagerLab(host) as nm:
        nm.nmcli("connection", "add", "type", "ethernet", "con-name", "uplink",
                 "ifname", host.nic, "ipv4.method", "auto", "ipv6.method", "disabled")  # fmt: skip
        nm.nmcli("connection", "up", "uplink")
        backend = NmcliBackend(netns=host.ns, bus_address=nm.bus_address)
        yield _enslave(Bridge("br0", backend=backend), HostNic(host.nic, backend=backend))


@scenario("networkd", stack="networkd", target="report only")
def networkd(host: LabHost) -> Iterator[Switch]:
    """kvmnet's networkd backend; systemd-networkd (standalone in the host namespace)
    leased the NIC from a 20-wired.network of its own."""
    with NetworkdLab(host) as nd:
        nd.write("20-wired.network", f"[Match]\nName={host.nic}\n\n[Network]\nDHCP=ipv4\n")
        nd.start()
        wait_for(lambda: bool(host.addresses(host.nic)), timeout=20, what="networkd's lease")
        backend = NetworkdBackend(root=str(nd.root), netns=host.ns, bus_address=nd.bus_address,
                                  lease_dir=str(nd.leases))  # fmt: skip
        yield _enslave(Bridge("br0", backend=backend), HostNic(host.nic, backend=backend))


@scenario("ifupdown", stack="ifupdown", target="report only")
def ifupdown(host: LabHost) -> Iterator[Switch]:
    """kvmnet's ifupdown backend; ifupdown (its own files, state and a private mount
    namespace for dhclient's: tests/lab/ifupdown.py) leased the NIC from an `inet dhcp`
    stanza, as on a Debian server. The switch is `ifdown NIC`, the file, `ifup br0`: the host
    is unreachable until br0 has its lease (same MAC, so the same address). Measured
    2026-12-02, 3 runs: a gap of 1.11-1.15 s; TCP survived all (longest stall ~1.7 s)."""
    import shutil
    import tempfile

    from tests.lab.ifupdown import IfupdownLab

    root = Path(tempfile.mkdtemp(prefix="kvmnet-bench-ifupdown-"))
    lab = IfupdownLab(host, root)
    try:
        lab.write(f"auto {host.nic}\niface {host.nic} inet dhcp\n")
        lab.ifup(host.nic)
        backend = lab.backend()
        yield _enslave(Bridge("br0", backend=backend), HostNic(host.nic, backend=backend))
    finally:
        lab.ifdown("-a", "--force")
        lab.close()
        shutil.rmtree(root, ignore_errors=True)


@scenario("baseline")
def baseline(host: LabHost) -> Iterator[Switch]:
    """Nothing switches: the probers' own jitter on this machine, for reference."""
    host.dhcp()
    yield lambda: None


@scenario("naive")
def naive(host: LabHost) -> Iterator[Switch]:
    """For comparison: the order people type by hand (address off the NIC first)."""
    host.dhcp()
    addr = f"{host.address}/24"
    gateway = f"{host.lan.subnet}.1"

    def switch() -> None:
        if host.dhcp_pid:
            host.exec("kill", "-TERM", str(host.dhcp_pid))
        for args in (
            ("link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"),
            ("link", "set", "br0", "up"),
            ("addr", "del", addr, "dev", host.nic),
            ("link", "set", host.nic, "master", "br0"),
            ("addr", "add", addr, "dev", "br0"),
            ("route", "add", "default", "via", gateway, "dev", "br0"),
        ):
            host.ip(*args)

    yield switch


# --- the two probers, run inside the namespaces by this same script ---------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo_request(ident: int, seq: int) -> bytes:
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    payload = b"kvmnet-bench"
    return struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload


def probe(target: str, limit: float = MAX_PROBE) -> dict[str, object]:
    """ICMP every INTERVAL and a TCP ping-pong every TCP_INTERVAL, until a line (or EOF)
    arrives on stdin or ``limit`` seconds have passed; answers are awaited 0.3 s longer."""
    ident = os.getpid() & 0xFFFF
    icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    icmp.setblocking(False)
    tcp = socket.create_connection((target, PORT), timeout=2)
    tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tcp.setblocking(False)
    stdin = sys.stdin.fileno()
    count = int(limit / INTERVAL)
    answered = bytearray(count)
    start = time.monotonic()
    end = start + limit
    seq = 0
    tcp_sent_at: float | None = None
    last_tcp_reply = start
    max_stall, stall_from = 0.0, start
    tcp_alive, tcp_error = True, ""
    next_tcp = start
    while True:
        now = time.monotonic()
        while seq < count and now >= start + seq * INTERVAL:
            with contextlib.suppress(OSError):  # an unsent probe counts as lost
                icmp.sendto(_echo_request(ident, seq & 0xFFFF), (target, 0))
            seq += 1
        if tcp_alive and tcp_sent_at is None and now >= next_tcp and seq < count:
            try:
                tcp.send(b"x")
                tcp_sent_at = now
            except (BlockingIOError, OSError) as exc:
                tcp_alive, tcp_error = False, str(exc)
        if seq >= count and now > end + 0.3:
            break
        wake = [end + 0.3]
        if seq < count:
            wake.append(start + seq * INTERVAL)
            if tcp_alive and tcp_sent_at is None:
                wake.append(next_tcp)
        wait = max(0.0, min(wake) - time.monotonic())
        watched = [icmp, tcp] if tcp_alive else [icmp]
        readable, _, _ = select.select([*watched, stdin] if seq < count else watched, [], [], wait)
        if stdin in readable:
            os.read(stdin, 64)
            count, end = seq, time.monotonic()  # stop sending; collect late answers
        if icmp in readable:
            while True:
                try:
                    packet = icmp.recv(2048)
                except BlockingIOError:
                    break
                ihl = (packet[0] & 0x0F) * 4
                kind, _, _, rid, rseq = struct.unpack("!BBHHH", packet[ihl : ihl + 8])
                # seq wraps at 65536: the sequence number of the latest probe with these 16 bits.
                full = rseq + ((seq - 1 - rseq) // 65536) * 65536 if seq else -1
                if kind == 0 and rid == ident and 0 <= full < len(answered):
                    answered[full] = 1
        if tcp_alive and tcp in readable:
            try:
                data = tcp.recv(64)
            except OSError as exc:
                data, tcp_error = b"", str(exc)
            if not data:
                tcp_alive = False
                tcp_error = tcp_error or "connection closed"
            else:
                t = time.monotonic()
                if t - last_tcp_reply > max_stall:
                    max_stall, stall_from = t - last_tcp_reply, last_tcp_reply
                last_tcp_reply, tcp_sent_at = t, None
                next_tcp = t + TCP_INTERVAL
    waited = time.monotonic() - last_tcp_reply
    if tcp_alive and tcp_sent_at is not None and waited > max_stall:
        # A request still unanswered at the end: the stall lasts at least until now.
        max_stall, stall_from = waited, last_tcp_reply
    lost = [n for n in range(count) if not answered[n]]
    longest = run = 0
    for n in range(count):
        run = run + 1 if not answered[n] else 0
        longest = max(longest, run)
    tcp.close()
    return {
        "sent": count,
        "lost": len(lost),
        "longest_gap_ms": round(longest * INTERVAL * 1000, 1),
        "start": start,  # CLOCK_MONOTONIC is one clock for every process on the machine
        "lost_span": [lost[0] * INTERVAL, lost[-1] * INTERVAL] if lost else [],
        "tcp_survived": tcp_alive,
        "tcp_error": tcp_error,
        "tcp_max_stall_ms": round(max_stall * 1000, 2),
        "stall_from": stall_from,
    }


def echo_server() -> None:
    """One connection, echoed until it closes (runs in the host namespace)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", PORT))
    server.listen(1)
    print("listening", flush=True)
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(ConnectionResetError):  # the prober left with its namespace
        while data := conn.recv(64):
            conn.sendall(data)


# --- orchestration ------------------------------------------------------------------------


def one_run(name: str) -> Row:
    me = str(Path(__file__).resolve())
    with Lan("kvb") as lan:
        host = lan.add_host()
        with SCENARIOS[name].setup(host) as switch:
            server = subprocess.Popen(  # noqa: S603 - fixed argv
                ["ip", "netns", "exec", host.ns, sys.executable, me, "--echo-server"],
                stdout=subprocess.PIPE,
                text=True,
            )
            prober: subprocess.Popen[str] | None = None
            try:
                assert server.stdout is not None
                server.stdout.readline()
                address = host.address
                prober = subprocess.Popen(  # noqa: S603 - fixed argv
                    ["ip", "netns", "exec", lan.ns, sys.executable, me, "--probe", address],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                time.sleep(SWITCH_AT)
                began = time.monotonic()
                switch()
                took = time.monotonic() - began
                time.sleep(SETTLE)
                out, _ = prober.communicate("stop\n", timeout=MAX_PROBE + 30)
                result: Row = json.loads(out)
                result["switch_ms"] = round(took * 1000, 1)
                result["lost_ms_after_switch"] = _lost_after(result, began)
                stall_from = result.pop("stall_from")
                if isinstance(stall_from, float):
                    result["stall_ms_after_switch"] = round((stall_from - began) * 1000, 1)
                result["same_address"] = host.address == address
                result["reachable_after"] = lan.ping(host.address)
                return result
            finally:
                for proc in (prober, server):
                    if proc is not None and proc.poll() is None:
                        proc.kill()
                        proc.wait()


def _lost_after(result: Row, began: float) -> str:
    """When the first and the last lost probe were sent, in ms after the switch began."""
    start, span = result.pop("start"), result.pop("lost_span")
    if not isinstance(start, float) or not isinstance(span, list) or not span:
        return "-"
    first, last = ((start + float(t) - began) * 1000 for t in span)
    return f"{first:.1f}..{last:.1f}"


def summary(name: str, rows: list[Row]) -> str:
    """One line: the worst run of a scenario, and whether its target is met."""
    s = SCENARIOS[name]
    lost = [int(_ms(r["lost"])) for r in rows]
    survived = f"{sum(1 for r in rows if r['tcp_survived'])}/{len(rows)}"
    gap = max(_ms(r["longest_gap_ms"]) for r in rows)
    stall = max(_ms(r["tcp_max_stall_ms"]) for r in rows)
    switch = statistics.median(_ms(r["switch_ms"]) for r in rows)
    target = s.target or "-"
    if s.met is not None:
        target += ": met" if s.met(rows) else ": MISSED"
    return (f"{name:9} {s.stack:15} {len(rows):>4} {f'{min(lost)}-{max(lost)}':>13} "
            f"{gap:>8.1f} {survived:>8} {stall:>9.2f} {switch:>10.0f}  {target}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (1-20)")
    parser.add_argument("--probe", metavar="TARGET", help=argparse.SUPPRESS)
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print raw results as JSON")
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe)))
        return 0
    if args.echo_server:
        echo_server()
        return 0
    if os.geteuid() != 0:
        print("bridge_outage: skipped, needs root (network namespaces)")
        return 0
    runs = max(1, min(args.runs, 20))
    results: dict[str, list[Row]] = {}
    for name in args.scenario or list(SCENARIOS):
        results[name] = [one_run(name) for _ in range(runs)]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"ICMP every {INTERVAL * 1000:g} ms, TCP ping-pong every {TCP_INTERVAL * 1000:g} ms; "
          f"switch at {SWITCH_AT:g} s, probing until {SETTLE:g} s after it returned")  # fmt: skip
    print("(stall at, lost: ms after the switch began)")
    print(f"{'scenario':9} {'lost':>6} {'sent':>6} {'gap ms':>8} {'tcp':>9} {'stall ms':>9} "
          f"{'switch ms':>9} {'same addr':>9} {'stall at':>9}  lost")  # fmt: skip
    for name, rows in results.items():
        for r in rows:
            tcp = "survived" if r["tcp_survived"] else "BROKEN"
            print(f"{name:9} {r['lost']!s:>6} {r['sent']!s:>6} {r['longest_gap_ms']!s:>8} "
                  f"{tcp:>9} {r['tcp_max_stall_ms']!s:>9} {r['switch_ms']!s:>9} "
                  f"{r['same_address']!s:>9} {r.get('stall_ms_after_switch')!s:>9}  "
                  f"{r['lost_ms_after_switch']}")  # fmt: skip
    print()
    print(f"{'scenario':9} {'backend':15} {'runs':>4} {'lost min-max':>13} {'gap ms':>8} "
          f"{'tcp ok':>8} {'stall ms':>9} {'switch ms':>10}  target")  # fmt: skip
    for name, rows in results.items():
        print(summary(name, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

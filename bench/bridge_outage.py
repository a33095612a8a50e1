"""How long is the host unreachable while a backend bridges its NIC? (root; namespaces only)

A LAN namespace (bridge + dnsmasq) and a host namespace whose veth NIC holds a DHCP lease,
with udhcpc still running on it. From the LAN, one prober process sends an ICMP echo every
0.5 ms at a fixed rate (raw socket, non-blocking: iputils ping pauses ~10 ms after a loss
and cannot time this) and runs a TCP ping-pong every 1 ms over one long-lived connection to
an echo server in the host namespace. Meanwhile a scenario bridges the NIC.

Reported per run: probes sent/lost, the longest gap (consecutive lost probes x 0.5 ms), the
TCP connection's longest stall and whether it survived.

    python bench/bridge_outage.py                     # every scenario, 3 runs each
    python bench/bridge_outage.py --scenario iproute2 --runs 10

Scenarios live in SCENARIOS; add one with @scenario("name"): a function taking the LabHost
that returns the callable doing the switch (setup before, e.g. starting NetworkManager, goes
in the function itself; cleanup is the lab's).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kvmnet.backends import Iproute2Backend
from kvmnet.hostnet.nic import Bridge
from tests.lab import LabHost, Lan

INTERVAL = 0.0005  # ICMP every 0.5 ms
TCP_INTERVAL = 0.001
PORT = 7777
SWITCH_AT = 1.0  # seconds into the probe run
DURATION = 3.0  # seconds of probing per run (6000 ICMP probes)

Switch = Callable[[], None]
SCENARIOS: dict[str, Callable[[LabHost], Switch]] = {}


def scenario(name: str) -> Callable[[Callable[[LabHost], Switch]], Callable[[LabHost], Switch]]:
    def register(fn: Callable[[LabHost], Switch]) -> Callable[[LabHost], Switch]:
        SCENARIOS[name] = fn
        return fn

    return register


@scenario("iproute2")
def iproute2(host: LabHost) -> Switch:
    """kvmnet's iproute2 backend, the measured zero-outage order."""
    bridge = Bridge("br0", backend=Iproute2Backend(netns=host.ns))

    def switch() -> None:
        bridge.enslave(host.nic, verify=False)

    return switch


@scenario("baseline")
def baseline(host: LabHost) -> Switch:
    """Nothing switches: the probers' own jitter on this machine, for reference."""
    return lambda: None


@scenario("naive")
def naive(host: LabHost) -> Switch:
    """For comparison: the order people type by hand (address off the NIC first)."""
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

    return switch


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


def probe(target: str, duration: float) -> dict[str, object]:
    """ICMP every INTERVAL and a TCP ping-pong every TCP_INTERVAL, for ``duration`` seconds."""
    ident = os.getpid() & 0xFFFF
    icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    icmp.setblocking(False)
    tcp = socket.create_connection((target, PORT), timeout=2)
    tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tcp.setblocking(False)
    count = int(duration / INTERVAL)
    answered = bytearray(count)
    start = time.monotonic()
    seq = 0
    tcp_sent_at: float | None = None
    last_tcp_reply = start
    max_stall = 0.0
    tcp_alive, tcp_error = True, ""
    next_tcp = start
    while True:
        now = time.monotonic()
        while seq < count and now >= start + seq * INTERVAL:
            with contextlib.suppress(OSError):  # an unsent probe counts as lost
                icmp.sendto(_echo_request(ident, seq & 0xFFFF), (target, 0))
            seq += 1
        if tcp_alive and tcp_sent_at is None and now >= next_tcp:
            try:
                tcp.send(b"x")
                tcp_sent_at = now
            except (BlockingIOError, OSError) as exc:
                tcp_alive, tcp_error = False, str(exc)
        if seq >= count and now > start + duration + 0.3:
            break
        wait = max(0.0, min(start + seq * INTERVAL, next_tcp) - time.monotonic())
        readable, _, _ = select.select([icmp, tcp] if tcp_alive else [icmp], [], [], wait)
        if icmp in readable:
            while True:
                try:
                    packet = icmp.recv(2048)
                except BlockingIOError:
                    break
                ihl = (packet[0] & 0x0F) * 4
                kind, _, _, rid, rseq = struct.unpack("!BBHHH", packet[ihl : ihl + 8])
                # seq wraps at 65536; a run has fewer probes than that.
                if kind == 0 and rid == ident and rseq < count:
                    answered[rseq] = 1
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
                max_stall = max(max_stall, t - last_tcp_reply)
                last_tcp_reply, tcp_sent_at = t, None
                next_tcp = t + TCP_INTERVAL
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
        "first_lost": lost[:1],
        "tcp_survived": tcp_alive,
        "tcp_error": tcp_error,
        "tcp_max_stall_ms": round(max_stall * 1000, 2),
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


def one_run(name: str) -> dict[str, object]:
    with Lan("kvb") as lan:
        host = lan.add_host()
        host.dhcp()  # the client keeps running, as on a real host
        me = str(Path(__file__).resolve())
        server = subprocess.Popen(  # noqa: S603 - fixed argv
            ["ip", "netns", "exec", host.ns, sys.executable, me, "--echo-server"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            server.stdout.readline()
            switch = SCENARIOS[name](host)
            prober = subprocess.Popen(  # noqa: S603 - fixed argv
                ["ip", "netns", "exec", lan.ns, sys.executable, me, "--probe", host.address],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(SWITCH_AT)
            began = time.monotonic()
            switch()
            took = time.monotonic() - began
            out, _ = prober.communicate(timeout=DURATION + 30)
            result: dict[str, object] = json.loads(out)
            result["switch_ms"] = round(took * 1000, 1)
            result["reachable_after"] = lan.ping(host.address)
            return result
        finally:
            server.kill()
            server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--probe", metavar="TARGET", help=argparse.SUPPRESS)
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print raw results as JSON")
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe, DURATION)))
        return 0
    if args.echo_server:
        echo_server()
        return 0
    if os.geteuid() != 0:
        print("bridge_outage: skipped, needs root (network namespaces)")
        return 0
    runs = max(1, min(args.runs, 20))
    results: dict[str, list[dict[str, object]]] = {}
    for name in args.scenario or list(SCENARIOS):
        results[name] = [one_run(name) for _ in range(runs)]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"ICMP every {INTERVAL * 1000:g} ms for {DURATION:g} s, TCP ping-pong every "
          f"{TCP_INTERVAL * 1000:g} ms; switch at {SWITCH_AT:g} s")  # fmt: skip
    print(f"{'scenario':10} {'lost':>6} {'gap ms':>8} {'tcp':>9} {'stall ms':>9} {'switch ms':>9}")
    for name, rows in results.items():
        for r in rows:
            tcp = "survived" if r["tcp_survived"] else "BROKEN"
            print(f"{name:10} {r['lost']!s:>6} {r['longest_gap_ms']!s:>8} {tcp:>9} "
                  f"{r['tcp_max_stall_ms']!s:>9} {r['switch_ms']!s:>9}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

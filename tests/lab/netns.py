"""The LAN namespace (bridge + dnsmasq) and host namespaces with a DHCP'd veth NIC.

See the package docstring for the topology. Everything here is test-harness code: it runs
commands directly (argument lists) and cleans up by PID and by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

SUBNET = "10.231.0"
LAN_BRIDGE = "lanbr0"
NIC = "enp0s20f0u1"

# udhcpc's hook: only `ip addr` and `ip route`. The stock scripts would rewrite the host's
# resolv.conf and hostname (a netns shares the file system and UTS namespace).
HOOK = """#!/bin/sh
case "$1" in
deconfig)
    # Like dhclient-script's PREINIT: keep what is there (busybox's sample script flushes
    # the link here, which would drop the copied address when a client starts on br0).
    ip link set "$interface" up
    ;;
bound|renew)
    ip addr replace "$ip/$mask" broadcast + dev "$interface" \\
        valid_lft "$lease" preferred_lft "$lease"
    for r in $router; do
        ip route replace default via "$r" dev "$interface"
        break
    done
    ;;
esac
exit 0
"""

# The same for ISC dhclient (-sf): its variables differ.
DHCLIENT_HOOK = """#!/bin/sh
case "$reason" in
PREINIT)
    ip link set "$interface" up
    ;;
BOUND|RENEW|REBIND|REBOOT)
    ip addr replace "$new_ip_address/$new_subnet_mask" broadcast + dev "$interface" \\
        valid_lft "$new_dhcp_lease_time" preferred_lft "$new_dhcp_lease_time"
    for r in $new_routers; do
        ip route replace default via "$r" dev "$interface"
        break
    done
    ;;
esac
exit 0
"""


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def wait_for(predicate: Callable[[], bool], *, timeout: float = 10, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def stop_process(proc: subprocess.Popen[bytes] | None, *, timeout: float = 10) -> None:
    """SIGTERM ``proc`` if it still runs, SIGKILL it after ``timeout`` s; reaped either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _disable_ipv6(ns: str) -> None:
    for key in ("all", "default", "lo"):
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"])


# Values the kernel derives by itself: timers count down, and a bridge's offload limits follow
# the ports it has had (an empty new bridge reports 65536, after a port left 524280).
_DERIVED = ("_timer", "tso_max_", "gso_max_", "gso_ipv4_max_", "gro_max_", "gro_ipv4_max_")


def _normalise(value: object) -> object:
    if isinstance(value, dict):
        return {
            k: _normalise(v)
            for k, v in value.items()
            if not any(k.endswith(d) or k.startswith(d) for d in _DERIVED)
        }
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _normalise_addr(entries: list[dict[str, object]]) -> list[dict[str, object]]:
    out = []
    for entry in entries:
        entry = dict(entry)
        infos = entry.get("addr_info")
        if isinstance(infos, list):
            entry["addr_info"] = [
                {k: v for k, v in i.items() if not k.endswith("life_time")} for i in infos
            ]
        out.append(entry)
    return out


@dataclass
class LabHost:
    """A host namespace whose NIC (a veth) sits on the LAN."""

    lan: Lan
    ns: str
    nic: str
    mac: str
    dhcp_pid: int | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ip(self, *args: str, check: bool = True) -> str:
        return run(["ip", "-n", self.ns, *args], check=check)

    def exec(self, *argv: str, check: bool = True, timeout: float = 30) -> str:
        return run(["ip", "netns", "exec", self.ns, *argv], check=check, timeout=timeout)

    def addresses(self, dev: str) -> list[str]:
        data = json.loads(self.ip("-j", "addr", "show", "dev", dev, check=False) or "[]")
        return [
            f"{i['local']}/{i['prefixlen']}"
            for e in data
            for i in e.get("addr_info", [])
            if i.get("scope") == "global"
        ]

    @property
    def address(self) -> str:
        """The NIC's (or, once bridged, any link's) leased IPv4 address, without prefix."""
        data = json.loads(self.ip("-j", "-4", "addr", "show"))
        for entry in data:
            for info in entry.get("addr_info", []):
                if info.get("scope") == "global":
                    return str(info["local"])
        raise AssertionError(f"no global address in {self.ns}")

    def dhcp(self, *, dev: str | None = None, stay: bool = True, timeout: float = 15) -> int:
        """Lease an address on ``dev`` (the NIC) with busybox udhcpc and our hook.

        ``stay``: the client keeps running (as on a real host) and its PID is returned; else
        it quits once bound (``-q``)."""
        dev = dev or self.nic
        argv = ["ip", "netns", "exec", self.ns, "busybox", "udhcpc", "-f", "-i", dev,
                "-s", str(self.lan.hook), "-t", "10", "-T", "1", "-A", "1"]  # fmt: skip
        if not stay:
            argv.append("-q")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(proc)
        wait_for(lambda: bool(self.addresses(dev)), timeout=timeout, what=f"a lease on {dev}")
        if stay:
            self.dhcp_pid = proc.pid
        return proc.pid

    def dhclient(self, *, dev: str | None = None, timeout: float = 15) -> int:
        """Lease with ISC dhclient, which forks a daemon; returns the daemon's PID."""
        dev = dev or self.nic
        hook = self.lan.state / "dhclient-hook.sh"
        hook.write_text(DHCLIENT_HOOK)
        hook.chmod(0o755)
        pidfile = self.lan.state / f"dhclient-{self.ns}-{dev}.pid"
        leases = self.lan.state / f"dhclient-{self.ns}-{dev}.leases"
        self.exec("dhclient", "-pf", str(pidfile), "-lf", str(leases), "-sf", str(hook), dev,
                  timeout=timeout + 5)  # fmt: skip
        wait_for(lambda: bool(self.addresses(dev)), timeout=timeout, what=f"a lease on {dev}")
        self.dhcp_pid = int(pidfile.read_text().strip())
        return self.dhcp_pid

    def snapshot(self) -> dict[str, object]:
        """``ip -j`` link/addr/route of the namespace, lifetimes' countdown removed."""
        return {
            "link": _normalise(json.loads(self.ip("-j", "-d", "link", "show"))),
            "addr": _normalise_addr(json.loads(self.ip("-j", "addr", "show"))),
            "route": json.loads(self.ip("-j", "route", "show", "table", "all")),
        }

    def commands(self) -> dict[int, list[str]]:
        """PID -> argv of every process running in this namespace."""
        out: dict[int, list[str]] = {}
        for pid in _pids_in(self.ns):
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            out[pid] = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        return out

    def running(self, pid: int) -> bool:
        for proc in self.processes:
            if proc.pid == pid:
                return proc.poll() is None
        return Path(f"/proc/{pid}").exists()

    def stop(self) -> None:
        for proc in self.processes:
            stop_process(proc, timeout=5)



def kill_if_running(pid: int, program: str, sig: int = signal.SIGTERM) -> bool:
    """Signal ``pid`` only if it still runs ``program`` (its argv[0]'s base name).

    A PID read from a PID file outlives its process, and PIDs wrap (32,768 by default, often
    within one run of the suite): killing the number blindly once SIGTERMed the suite's
    shared libvirtd. Returns True if the signal was sent.
    """
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    # A daemon may retitle itself ("sshd: /usr/sbin/sshd -f ... [listener] ..."): the first
    # word names the program either way.
    words = argv0.decode(errors="replace").split()
    if not words or Path(words[0]).name.rstrip(":") != program:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    return True


class Lan:
    """The LAN namespace with a bridge and dnsmasq; hosts join it with :meth:`add_host`."""

    def __init__(self, prefix: str = "kvb", *, subnet: str = SUBNET, lease: int = 3600) -> None:
        # dnsmasq leases for at least 120 s whatever it is told.
        self.lease = lease
        self.prefix = f"{prefix}-{os.getpid()}-{os.urandom(2).hex()}"
        self.subnet = subnet
        self.ns = f"{self.prefix}-lan"
        self.gateway = f"{subnet}.1"
        self.hosts: list[LabHost] = []
        self.namespaces: list[str] = []
        self.dnsmasq: subprocess.Popen[bytes] | None = None
        self.state = Path(tempfile.mkdtemp(prefix=f"{prefix}-lab-"))
        self.hook = self.state / "udhcpc-hook.sh"

    def __enter__(self) -> Lan:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _netns(self, name: str) -> None:
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        _disable_ipv6(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])

    def start(self) -> None:
        self.hook.write_text(HOOK)
        self.hook.chmod(0o755)
        self._netns(self.ns)
        ip = ["ip", "-n", self.ns]
        run([*ip, "link", "add", LAN_BRIDGE, "type", "bridge", "stp_state", "0",
             "forward_delay", "0"])  # fmt: skip
        run([*ip, "addr", "add", f"{self.gateway}/24", "dev", LAN_BRIDGE])
        run([*ip, "link", "set", LAN_BRIDGE, "up"])
        s = self.subnet
        argv = ["ip", "netns", "exec", self.ns, "dnsmasq", "--keep-in-foreground",
             "--conf-file=/dev/null", "--user=root", "--group=root", "--port=0", "--no-ping",
             "--bind-interfaces", f"--interface={LAN_BRIDGE}", "--except-interface=lo",
             f"--dhcp-range={s}.100,{s}.199,255.255.255.0,{self.lease}",
             f"--dhcp-option=option:router,{self.gateway}", "--dhcp-authoritative",
             f"--dhcp-leasefile={self.state}/lan.leases", "--log-dhcp",
             f"--log-facility={self.state}/dnsmasq.log"]  # fmt: skip
        self.dnsmasq = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def add_host(self, *, nic: str = NIC, mac: str | None = None) -> LabHost:
        n = len(self.hosts)
        ns = f"{self.prefix}-h{n}"
        mac = mac or f"52:54:00:aa:00:{n + 1:02x}"
        self._netns(ns)
        port = f"lan-h{n}"
        run(["ip", "-n", ns, "link", "add", nic, "address", mac, "type", "veth", "peer",
             "name", port, "netns", self.ns])  # fmt: skip
        run(["ip", "-n", self.ns, "link", "set", port, "master", LAN_BRIDGE])
        run(["ip", "-n", self.ns, "link", "set", port, "up"])
        run(["ip", "-n", ns, "link", "set", nic, "up"])
        host = LabHost(self, ns, nic, mac)
        self.hosts.append(host)
        return host

    def attach(self, ns: str, *, nic: str = NIC, mac: str | None = None) -> LabHost:
        """Put namespace ``ns``, made by someone else (e.g. a libvirtd lab's), on the LAN
        with a veth NIC, as :meth:`add_host` does for a namespace of its own. The LAN does
        not delete ``ns``; the veth goes with the LAN namespace."""
        n = len(self.hosts)
        mac = mac or f"52:54:00:aa:00:{n + 1:02x}"
        _disable_ipv6(ns)
        port = f"lan-h{n}"
        run(["ip", "-n", ns, "link", "add", nic, "address", mac, "type", "veth", "peer",
             "name", port, "netns", self.ns])  # fmt: skip
        run(["ip", "-n", self.ns, "link", "set", port, "master", LAN_BRIDGE])
        run(["ip", "-n", self.ns, "link", "set", port, "up"])
        run(["ip", "-n", ns, "link", "set", nic, "up"])
        host = LabHost(self, ns, nic, mac)
        self.hosts.append(host)
        return host

    def ping(self, address: str, *, count: int = 1) -> bool:
        """Does ``address`` answer from the LAN namespace?"""
        argv = ["ip", "netns", "exec", self.ns, "ping", "-c", str(count), "-W", "1", address]
        return subprocess.run(argv, capture_output=True).returncode == 0

    def close(self) -> None:
        for host in self.hosts:
            host.stop()
        stop_process(self.dnsmasq, timeout=5)
        for ns in reversed(self.namespaces):
            # Processes a test started in the namespace by itself (DHCP clients the code
            # under test spawned) are found by their netns and stopped by PID.
            for pid in _pids_in(ns):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            run(["ip", "netns", "del", ns], check=False)
        self.namespaces.clear()
        shutil.rmtree(self.state, ignore_errors=True)


def default_devs(host: LabHost) -> list[str]:
    """The devices the host namespace's default routes leave through."""
    return [str(r["dev"]) for r in json.loads(host.ip("-j", "route", "show", "default"))]


def snapshot_diff(before: object, after: object, path: str = "") -> list[str]:
    """Readable differences between two :meth:`LabHost.snapshot` values (empty: equal)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            out += snapshot_diff(before.get(key), after.get(key), f"{path}.{key}")
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d
            for n, (b, a) in enumerate(zip(before, after, strict=True))
            for d in snapshot_diff(b, a, f"{path}[{n}]")
        ]
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def _pids_in(ns: str) -> list[int]:
    out = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]

"""DHCP clients in a dead-man rollback, for real: dnsmasq in the LAN namespace with a 120 s
lease (dnsmasq's minimum), udhcpc in one host namespace and a forking ISC dhclient in
another. A caller bridges each NIC with a dhclient started on br0, and is SIGKILLed after
that dhclient forked, before verification: its journal never reached the pending file. The
watcher must notice the dead caller, roll back, start the original client again (same command
line, in the namespace) and stop the plan's dhclient daemon; the restarted client must renew,
so the address is still there after the original lease would have expired."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import pytest

from kvmnet.hostnet.runners.runner import DEFAULT_TIMEOUT, CommandResult, NetnsRunner
from tests.lab import LabHost, Lan, snapshot_diff, wait_for
from tests.lab.netns import DHCLIENT_HOOK

pytestmark = [pytest.mark.root("network namespaces, dnsmasq, udhcpc, dhclient"),
              pytest.mark.integration]  # fmt: skip

LEASE = 120

CALLER = """
import sys, time
from pathlib import Path
from kvmnet.backends import Iproute2Backend
from kvmnet.hostnet.nic import Bridge
from kvmnet.hostnet.runners.runner import NetnsRunner

class Stall(NetnsRunner):
    # The plan's last step starts dhclient on br0; the caller then hangs until SIGKILLed.
    def spawn(self, argv):
        pid = super().spawn(argv)
        pidfile = Path(argv[list(argv).index("-pf") + 1])
        deadline = time.time() + 30
        while time.time() < deadline:  # until dhclient has forked its daemon
            text = pidfile.read_text().strip() if pidfile.exists() else ""
            if text.isdigit() and int(text) != pid and Path(f"/proc/{text}").exists():
                break
            time.sleep(0.05)
        print("spawned", pid, text, flush=True)
        time.sleep(600)
        return pid

ns, nic, state, *client = sys.argv[1:]
backend = Iproute2Backend(runner=Stall(ns))
plan = Bridge("br0", backend=backend).enslave(nic, dry_run=True, dhcp_client=tuple(client))
plan.apply(confirm_within=60, state_dir=state)
"""


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan("kvr", lease=LEASE) as lan:
        hook = lan.state / "dhclient-hook.sh"
        hook.write_text(DHCLIENT_HOOK)
        hook.chmod(0o755)
        yield lan


def clients(host: LabHost, argv: list[str]) -> list[int]:
    """PIDs in the host's namespace running exactly ``argv`` (scanned in /proc)."""
    return [pid for pid, cmd in host.commands().items() if cmd == argv]


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper that is not us."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def acks(lan: Lan, mac: str) -> int:
    log = (lan.state / "dnsmasq.log").read_text()
    return sum(1 for line in log.splitlines() if "DHCPACK" in line and mac in line)


def acked_since(lan: Lan, host: LabHost, count: int) -> bool:
    return acks(lan, host.mac) > count


def rolled_back(state: Path) -> bool:
    return bool(list(state.glob("*.rolled-back.json")))


def as_before(host: LabHost, before: dict[str, object]) -> bool:
    return not snapshot_diff(before, host.snapshot())


def start_caller(lan: Lan, host: LabHost, state: Path) -> tuple[subprocess.Popen[str], list[str]]:
    plan_client = ["dhclient", "-pf", str(lan.state / f"plan-{host.ns}.pid"),
                   "-lf", str(lan.state / f"plan-{host.ns}.leases"),
                   "-sf", str(lan.state / "dhclient-hook.sh"), "br0"]  # fmt: skip
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, host.ns, host.nic, str(state), *plan_client],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return caller, plan_client


def test_killed_caller_mid_steps_gets_its_dhcp_clients_back(lan: Lan, tmp_path: Path) -> None:
    udhcpc_host = lan.add_host(mac="52:54:00:ee:00:01")
    dhclient_host = lan.add_host(mac="52:54:00:ee:00:02")
    leased_at = time.monotonic()
    udhcpc_host.dhcp(stay=True)
    dhclient_host.dhclient()
    hosts = (udhcpc_host, dhclient_host)
    originals = {h.ns: h.commands()[h.dhcp_pid or 0] for h in hosts}
    assert originals[udhcpc_host.ns][:2] == ["busybox", "udhcpc"]
    assert originals[dhclient_host.ns][0] == "dhclient"
    before = {h.ns: h.snapshot() for h in hosts}
    runs = []
    for host in hosts:
        state = tmp_path / host.ns
        caller, plan_client = start_caller(lan, host, state)
        runs.append((host, state, caller, plan_client))
    daemons = {}
    try:
        for host, _state, caller, plan_client in runs:
            assert caller.stdout is not None
            line = caller.stdout.readline().split()
            assert line[:1] == ["spawned"], line
            launcher, daemon = int(line[1]), int(line[2])
            assert daemon != launcher, "dhclient forked: the daemon is not the launcher"
            assert clients(host, plan_client) == [daemon]
            assert clients(host, originals[host.ns]) == [], "the plan stopped the original"
            assert host.addresses("br0"), "mid-apply: br0 carries the address"
            daemons[host.ns] = daemon
        acks_before = {h.ns: acks(lan, h.mac) for h in hosts}
        for _host, _state, caller, _ in runs:
            caller.send_signal(signal.SIGKILL)
            caller.wait()
    finally:
        for _host, _state, caller, _ in runs:
            if caller.poll() is None:
                caller.kill()
                caller.wait()
    for host, state, _caller, plan_client in runs:
        wait_for(partial(rolled_back, state), timeout=30, what=f"the watcher in {host.ns}")
        done = json.loads(next(state.glob("*.rolled-back.json")).read_text())
        assert done["started"] == [] and done["stopped"] == [], "the journal never got there"
        assert done["remaining"] == [], "the watcher says it restored everything"
        log = next(state.glob("*.log")).read_text()
        assert "died before its steps were done" in log
        # The plan's dhclient: no process runs its command line in the namespace any more.
        assert clients(host, plan_client) == []
        assert not alive(daemons[host.ns])
        # The original client runs again: same command line, a new process, in the namespace.
        again = clients(host, originals[host.ns])
        assert len(again) == 1 and again[0] != host.dhcp_pid
    for host in hosts:
        # It talks to the server: a fresh DHCPACK for the NIC's MAC since the rollback.
        wait_for(partial(acked_since, lan, host, acks_before[host.ns]), timeout=20,
                 what=f"{host.ns}'s restarted client to lease")  # fmt: skip
        wait_for(partial(as_before, host, before[host.ns]), timeout=10,
                 what=f"{host.ns} to look as before")  # fmt: skip
    # Past the original lease's end: only a client that renews keeps the address.
    time.sleep(max(0.0, leased_at + LEASE + 5 - time.monotonic()))
    for host in hosts:
        assert host.addresses(host.nic), f"{host.ns} kept its address past the lease"
        assert len(clients(host, originals[host.ns])) == 1
        assert lan.ping(host.address)


class DeafGateway(NetnsRunner):
    """A real namespace runner on which the gateway check fails (ping and ARP say no), so
    verification fails after the plan's dhclient started."""

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> CommandResult:
        if argv[0] == "ping" or tuple(argv[:3]) == ("ip", "-j", "neigh"):
            return CommandResult(tuple(argv), 1, "", "injected: no answer")
        return super().run(argv, input=input, check=check, timeout=timeout)


def test_in_process_rollback_restarts_dhclient_and_stops_the_plans(lan: Lan) -> None:
    from kvmnet.backends import Iproute2Backend
    from kvmnet.errors import RolledBack
    from kvmnet.hostnet.nic import Bridge

    host = lan.add_host(mac="52:54:00:ee:00:03")
    original_pid = host.dhclient()
    original = host.commands()[original_pid]
    before = host.snapshot()
    plan_client = ["dhclient", "-pf", str(lan.state / f"plan-{host.ns}.pid"),
                   "-lf", str(lan.state / f"plan-{host.ns}.leases"),
                   "-sf", str(lan.state / "dhclient-hook.sh"), "br0"]  # fmt: skip
    plan = Bridge("br0", backend=Iproute2Backend(runner=DeafGateway(host.ns))).enslave(
        host.nic, dry_run=True, dhcp_client=tuple(plan_client)
    )
    with pytest.raises(RolledBack, match=r"gateway 10\.231\.0\.1 answers.*as it was before"):
        plan.apply(retries=3, retry_interval=0.5)
    assert clients(host, plan_client) == []
    again = clients(host, original)
    assert len(again) == 1 and again[0] != original_pid
    wait_for(partial(as_before, host, before), timeout=10, what="the namespace to look as before")


def test_a_started_dhclient_is_reported_by_its_daemon_pid(lan: Lan) -> None:
    from kvmnet.backends import Iproute2Backend
    from kvmnet.hostnet.nic import Bridge

    host = lan.add_host(mac="52:54:00:ee:00:04")
    host.dhcp(stay=True)
    pidfile = lan.state / f"plan-{host.ns}.pid"
    plan_client = ("dhclient", "-pf", str(pidfile), "-lf", str(lan.state / f"plan-{host.ns}.l"),
                   "-sf", str(lan.state / "dhclient-hook.sh"), "br0")  # fmt: skip
    plan = Bridge("br0", backend=Iproute2Backend(netns=host.ns)).enslave(
        host.nic, dry_run=True, dhcp_client=plan_client
    )
    result = plan.apply(retries=20, retry_interval=0.25)
    (pid,) = result.started_pids
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() == str(pid), timeout=10,
             what="dhclient's pidfile to name the recorded daemon")  # fmt: skip
    assert clients(host, list(plan_client)) == [pid]

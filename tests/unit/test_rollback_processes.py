"""DHCP clients in rollback, on the fake host (the real clients run in
tests/integration/test_rollback_dhcp_clients.py): the snapshot holds them, rollback starts
again the ones that no longer run and stops the daemons the plan started (not the launcher's
PID), and a rollback that cannot do either says so instead of "as it was before"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from kvmnet.backends import Iproute2Backend
from kvmnet.errors import RollbackFailed, RolledBack
from kvmnet.hostnet import rollback, snapshot
from kvmnet.hostnet.fake import NETNS_ID, FakeHostRunner, fake_host
from kvmnet.hostnet.inspect import process_argv
from kvmnet.hostnet.nic import Bridge
from kvmnet.hostnet.rollback import daemon_pid
from kvmnet.hostnet.snapshot import Snapshot, take_snapshot
from tests.lab.fakes import NIC, ROUTE_STEP, dhcp_host, nic, routes

UDHCPC = ("busybox", "udhcpc", "-f", "-i", NIC, "-s", "/hook")
DHCLIENT = ("dhclient", "-pf", "/run/br0.pid", "-lf", "/run/br0.leases", "br0")


@dataclass
class Forking(FakeHostRunner):
    """dhclient as it is: the launcher exits, its daemon (another PID) writes the pidfile."""

    daemon: int = 0

    def spawn(self, argv: Sequence[str]) -> int:
        launcher = super().spawn(argv)
        if tuple(argv) == DHCLIENT:
            self.files.pop(f"/proc/{launcher}/cmdline")
            self.daemon = launcher + 500
            self.files[f"/proc/{self.daemon}/cmdline"] = b"\0".join(map(str.encode, argv))
            self.files["/run/br0.pid"] = f"{self.daemon}\n".encode()
            self.replies = {**self.replies, ("readlink", f"/proc/{self.daemon}/ns/net"): NETNS_ID}
        return launcher


def running(runner: FakeHostRunner, argv: tuple[str, ...]) -> list[int]:
    pids = [int(p) for p in runner.list_dir("/proc") or () if p.isdigit()]
    return [p for p in pids if process_argv(runner, p) == argv]


def forking_host() -> Forking:
    base = dhcp_host()
    return Forking(replies=base.replies, files=dict(base.files))


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "PROCESS_WAIT", 0.3)
    monkeypatch.setattr(rollback, "PROCESS_WAIT", 0.3)


def test_the_snapshot_holds_the_dhcp_clients_and_round_trips() -> None:
    snap = take_snapshot(dhcp_host(), links=(NIC, "br0"), files=())
    assert [(c.pid, c.argv, c.link) for c in snap.dhcp_clients] == [(4242, UDHCPC, NIC)]
    assert Snapshot.from_json(snap.to_json()) == snap


def test_a_stopped_client_runs_again_after_rollback() -> None:
    runner = dhcp_host()
    runner.fail = [ROUTE_STEP]
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    with pytest.raises(RolledBack, match="as it was before"):
        plan.apply()
    assert ("kill", "-TERM", "4242") in runner.commands
    assert running(runner, UDHCPC), "udhcpc runs again with the same command line"
    assert runner.commands.count(UDHCPC) == 1, "started once"


def test_a_forking_client_the_plan_started_is_stopped_by_its_daemon_pid() -> None:
    runner = forking_host()
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(
        NIC, dry_run=True, dhcp_client=DHCLIENT
    )
    with pytest.raises(RolledBack):
        plan.apply(retries=1, retry_interval=0)
    assert runner.daemon, "the plan started dhclient"
    assert ("kill", "-TERM", str(runner.daemon)) in runner.commands
    assert running(runner, DHCLIENT) == []
    assert running(runner, UDHCPC)


def test_the_result_names_the_daemon_not_the_launcher() -> None:
    runner = forking_host()
    launcher = runner.spawn(DHCLIENT)
    assert daemon_pid(runner, DHCLIENT, launcher) == runner.daemon != launcher


def test_a_client_that_will_not_restart_is_reported() -> None:
    runner = dhcp_host()
    runner.die_at_start = [UDHCPC]
    runner.fail = [ROUTE_STEP]
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    with pytest.raises(RollbackFailed) as info:
        plan.apply()
    message = str(info.value)
    assert f"udhcpc on {NIC}" in message and "restarted but does not run" in message
    assert "as it was before" not in message


def test_a_started_client_that_will_not_stop_is_reported() -> None:
    runner = forking_host()
    runner.survive_kill = [DHCLIENT]
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(
        NIC, dry_run=True, dhcp_client=DHCLIENT
    )
    with pytest.raises(RollbackFailed) as info:
        plan.apply(retries=1, retry_interval=0)
    assert f"dhclient (PID {runner.daemon}) on br0, started by the plan, still runs" in str(
        info.value
    )
    assert ("kill", "-KILL", str(runner.daemon)) in runner.commands


def test_clients_elsewhere_are_left_alone() -> None:
    other = ("udhcpc", "-f", "-i", "eth9")
    runner = fake_host([nic()], routes(), processes={4242: UDHCPC, 5000: other})
    runner.fail = [ROUTE_STEP]
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    with pytest.raises(RolledBack):
        plan.apply()
    assert not any(c[:2] == ("kill", "-TERM") and c[2] == "5000" for c in runner.commands)
    assert running(runner, other) == [5000]


class Exiting(FakeHostRunner):
    """/proc/PID/cmdline of a process that exits between the open and the read: ESRCH."""

    def read_file(self, path: str) -> bytes | None:
        if path == "/proc/4242/cmdline":
            raise ProcessLookupError(3, "No such process")
        return super().read_file(path)


def test_a_process_exiting_while_read_is_no_process() -> None:
    base = dhcp_host()
    runner = Exiting(replies=base.replies, files=dict(base.files))
    assert process_argv(runner, 4242) == ()
    assert take_snapshot(runner, links=(NIC,), files=()).dhcp_clients == ()


def test_a_launcher_waiting_for_its_child_is_not_the_daemon() -> None:
    # dhclient 4.4: the launcher forks at once and waits for the lease; the child is the
    # daemon and has written no pidfile yet.
    runner = dhcp_host()
    launcher = runner.spawn(DHCLIENT)
    child = launcher + 1
    runner.files[f"/proc/{child}/cmdline"] = b"\0".join(map(str.encode, DHCLIENT))
    runner.files[f"/proc/{child}/stat"] = f"{child} (dhclient) S {launcher} 1 1".encode()
    runner.replies = {**runner.replies, ("readlink", f"/proc/{child}/ns/net"): NETNS_ID}
    assert daemon_pid(runner, DHCLIENT, launcher) == child


def test_the_same_command_line_in_another_namespace_is_not_ours() -> None:
    runner = dhcp_host()
    launcher = runner.spawn(DHCLIENT)
    runner.files.pop(f"/proc/{launcher}/cmdline")  # it forked and exited
    elsewhere = 9999
    runner.files[f"/proc/{elsewhere}/cmdline"] = b"\0".join(map(str.encode, DHCLIENT))
    runner.replies = {**runner.replies, ("readlink", f"/proc/{elsewhere}/ns/net"): "net:[1]\n"}
    assert daemon_pid(runner, DHCLIENT, launcher) == launcher, "not the other namespace's"


def test_a_client_that_does_not_fork_is_its_own_daemon() -> None:
    runner = dhcp_host()
    launcher = runner.spawn(UDHCPC)
    assert daemon_pid(runner, UDHCPC, launcher) == launcher


def test_a_pid_that_runs_something_else_by_apply_time_is_not_killed() -> None:
    # The plan was made while udhcpc held PID 4242; before it is applied udhcpc exits and the
    # number goes to another program (PIDs wrap at 32,768 by default). kill must not hit it.
    runner = dhcp_host()
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    assert ("kill", "-TERM", "4242") in plan.commands, "the plan stops udhcpc by its PID"
    runner.files["/proc/4242/cmdline"] = b"/usr/sbin/libvirtd\0"
    with pytest.raises(RolledBack):  # the fake host does not bridge: what counts is the kill
        plan.apply()
    assert not [c for c in runner.commands if c[0] == "kill" and "4242" in c], runner.commands
    assert "/usr/sbin/libvirtd" in process_argv(runner, 4242)


def test_a_pid_of_the_same_program_in_another_namespace_is_not_killed() -> None:
    runner = dhcp_host()
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    runner.replies = {**runner.replies, ("readlink", "/proc/4242/ns/net"): "net:[4026531999]"}
    with pytest.raises(RolledBack):
        plan.apply()
    assert not [c for c in runner.commands if c[0] == "kill" and "4242" in c], runner.commands

"""The one apply mechanism with a RecordingRunner: steps, verification, rollback, dead-man
bookkeeping (the real thing runs in tests/integration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvmnet.backends import Iproute2Backend
from kvmnet.errors import (
    ConfirmationError,
    InvalidInput,
    PlanFailed,
    RollbackFailed,
    RolledBack,
)
from kvmnet.hostnet import confirm
from kvmnet.hostnet.apply import apply_plan
from kvmnet.hostnet.fake import fake_host, link_json
from kvmnet.hostnet.inspect import LINKS_ARGV
from kvmnet.hostnet.model.plan import Plan, RunCommand, WriteFile
from kvmnet.hostnet.model.state import IpAddress
from kvmnet.hostnet.nic import Bridge
from kvmnet.hostnet.runners.runner import CommandResult, RecordingRunner
from kvmnet.hostnet.snapshot import Snapshot, take_snapshot
from tests.lab.fakes import LEASE, MAC, NIC, ROUTE_STEP, bridge, dhcp_host, nic, routes


def enslaved_after_master(runner: RecordingRunner) -> None:
    """Make the fake host report the bridged state once `ip link set NIC master br0` ran."""
    before = runner.replies[LINKS_ARGV]
    after = json.dumps(
        [
            link_json(nic(master="br0", addresses=()), 1),
            link_json(bridge(mac=MAC, addresses=(LEASE,)), 2),
        ]
    )

    def links(argv: tuple[str, ...]) -> CommandResult:
        done = ("ip", "link", "set", NIC, "master", "br0") in runner.commands
        return CommandResult(argv, 0, after if done else str(before))

    runner.replies = {**runner.replies, LINKS_ARGV: links}


def test_apply_runs_steps_and_verifies() -> None:
    runner = fake_host([nic()], routes("br0"))  # routes as they will be after the move
    enslaved_after_master(runner)
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    ping = ("ping", "-c", "1", "-W", "1", "-I", "br0", "10.231.0.1")
    assert not any(c == ping for c in runner.commands)
    result = plan.apply(retries=1)
    assert result.verified and result.attempts == 1
    assert ("ip", "link", "set", NIC, "master", "br0") in runner.commands
    assert ping not in runner.commands, "no default route through the NIC: no gateway check"


def test_a_failing_step_rolls_back_and_says_so() -> None:
    runner = dhcp_host()
    runner.fail = [ROUTE_STEP]
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    with pytest.raises(RolledBack, match=r"step 6 `ip route replace .*rolled back") as info:
        plan.apply()
    assert isinstance(info.value, PlanFailed)
    failed_at = max(i for i, c in enumerate(runner.commands) if c[:3] == ("ip", "route", "replace"))
    after = runner.commands[failed_at + 1 :]
    # The DHCP client the plan stopped is started again.
    assert ("busybox", "udhcpc", "-f", "-i", NIC, "-s", "/hook") in after


def test_a_failing_verification_rolls_back() -> None:
    runner = dhcp_host()
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    with pytest.raises(RolledBack, match=r"verification failed after 2 attempts: .*port of br0"):
        plan.apply(retries=2, retry_interval=0)


def test_no_rollback_when_asked() -> None:
    runner = dhcp_host()
    runner.fail = [("ip", "link", "add")]
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    with pytest.raises(PlanFailed, match="NOT rolled back") as info:
        plan.apply(rollback_on_failure=False)
    assert not isinstance(info.value, RolledBack)


def test_rollback_failed_lists_what_stands() -> None:
    runner = dhcp_host()
    enslaved_after_master(runner)
    runner.fail = [("ip", "route", "replace", "default"), ("ip", "link", "del"),
                   ("ip", "link", "set", NIC, "nomaster")]  # fmt: skip
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    with pytest.raises(RollbackFailed, match=r"master is br0, was None; br0 exists.*by hand"):
        plan.apply()


def test_files_are_restored_byte_for_byte(tmp_path: Path) -> None:
    runner = RecordingRunner(
        replies={LINKS_ARGV: json.dumps([link_json(nic(), 1)])},
        files={"/etc/a": b"old\x00bytes"},
        modes={"/etc/a": 0o600},
    )
    plan = Plan(
        backend="test",
        action="enslave",
        nic=NIC,
        bridge="br0",
        steps=(
            WriteFile("/etc/a", "new", mode=0o644, previous="old\x00bytes"),
            WriteFile("/etc/b", "created"),
            RunCommand(("false",)),
        ),
        rollback_hints=(RunCommand(("nmcli", "connection", "reload")),),
        runner=runner,
        applier=apply_plan,
    )
    runner.fail = [("false",)]
    with pytest.raises(RolledBack):
        plan.apply()
    assert runner.files["/etc/a"] == b"old\x00bytes" and runner.modes["/etc/a"] == 0o600
    assert "/etc/b" not in runner.files
    assert runner.commands[-1][:2] != ("false",)
    assert ("nmcli", "connection", "reload") in runner.commands


def test_snapshot_round_trips_through_json() -> None:
    runner = dhcp_host(files={"/etc/x": b"\xffbinary"})
    snap = take_snapshot(runner, links=(NIC, "br0"), files=("/etc/x", "/etc/absent"))
    again = Snapshot.from_json(snap.to_json())
    assert again == snap
    assert again.links["br0"] is None and again.files[1].content is None
    restored = again.links[NIC]
    assert restored is not None and restored.addresses == (LEASE,)


def test_confirm_without_anything_pending(tmp_path: Path) -> None:
    with pytest.raises(ConfirmationError, match="nothing waits"):
        confirm(state_dir=str(tmp_path))
    (tmp_path / "x.rolled-back.json").write_text("{}")
    with pytest.raises(ConfirmationError, match="was rolled back"):
        confirm(state_dir=str(tmp_path))


def test_confirm_takes_the_pending_file(tmp_path: Path) -> None:
    (tmp_path / "20261127-1-br0.pending.json").write_text("{}")
    assert confirm(state_dir=str(tmp_path)) == ["20261127-1-br0"]
    assert (tmp_path / "20261127-1-br0.confirmed.json").exists()
    with pytest.raises(ConfirmationError):
        confirm(state_dir=str(tmp_path))


def test_lifetimes_are_kept_when_read() -> None:
    runner = fake_host([nic(addresses=(IpAddress("10.0.0.2/24", 50, 20, True),))])
    snap = take_snapshot(runner, links=(NIC,), files=())
    state = snap.links[NIC]
    assert state is not None and state.addresses[0].valid_lft == 50
    assert state.addresses[0].preferred_lft == 20 and state.addresses[0].dynamic


@pytest.mark.parametrize(("state", "answers"), [("REACHABLE", True), ("FAILED", False)])
def test_gateway_check_falls_back_to_the_neighbour_table(state: str, answers: bool) -> None:
    from kvmnet.hostnet.apply import gateway_answers

    ping = ("ping", "-c", "1", "-W", "1", "-I", "br0", "10.0.0.1")
    neigh = ("ip", "-j", "neigh", "show", "10.0.0.1", "dev", "br0")
    runner = RecordingRunner(
        replies={
            ping: CommandResult(ping, 1, "", "100% packet loss"),
            neigh: json.dumps([{"dst": "10.0.0.1", "dev": "br0", "state": [state]}]),
        }
    )
    assert gateway_answers(runner, "br0", "10.0.0.1") is answers


@pytest.mark.parametrize("within", [0.0, -1.0, float("nan"), float("inf")])
def test_confirm_within_must_be_seconds_above_zero(within: float, tmp_path: Path) -> None:
    # A 0 s dead-man timer would roll back before anyone could confirm: refused before any step.
    runner = dhcp_host()
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    ran = len(runner.commands)
    with pytest.raises(InvalidInput, match="confirm_within"):
        plan.apply(confirm_within=within, state_dir=str(tmp_path))
    assert len(runner.commands) == ran and not list(tmp_path.iterdir())

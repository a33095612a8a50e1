"""Compare-and-set for host files: a plan applies only to the files it was made from, and a
rollback never restores a file over a change another writer made after kvmnet wrote it (in
the caller and in the dead-man watcher). Also: a rollback command that fails is reported
even when nothing differs afterwards, and a failed file step's message is one line."""

from __future__ import annotations

import errno
import json
import logging
import time
from pathlib import Path

import pytest

import kvmnet
from kvmnet.backends import IfupdownBackend, Iproute2Backend
from kvmnet.errors import ConcurrentChange, PlanFailed, RollbackFailed, RolledBack, StalePlan
from kvmnet.hostnet import deadman
from kvmnet.hostnet.apply import apply_plan
from kvmnet.hostnet.fake import link_json
from kvmnet.hostnet.inspect import LINKS_ARGV
from kvmnet.hostnet.model.plan import Plan, RemoveFile, RunCommand, WriteFile
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.nic import Bridge, HostNic
from kvmnet.hostnet.runners.runner import CommandResult, LocalRunner, RecordingRunner
from kvmnet.hostnet.snapshot import FileSnapshot, Snapshot
from kvmnet.testing import fake_host
from tests.lab.fakes import NIC, dhcp_host, nic

MAC = "52:54:00:aa:00:01"
INTERFACES = "/etc/network/interfaces"
ORIGINAL = (
    b"auto lo\niface lo inet loopback\n\n"
    b"auto eth0\niface eth0 inet static\n    address 192.168.0.42/24\n    gateway 192.168.0.1\n"
)
ADMIN = b"\n# added by the admin\nauto eth1\niface eth1 inet dhcp\n"


def _ifupdown_plan() -> tuple[Plan, RecordingRunner]:
    """An ifupdown plan (ifdown, write interfaces, ifup) on a fake host whose interfaces
    file is ORIGINAL."""
    links = [
        LinkState("eth0", MAC, operstate="UP", flags=("UP",),
                  addresses=(IpAddress("192.168.0.42/24"),)),
    ]  # fmt: skip
    runner = fake_host(links, [IpRoute("default", "eth0", "192.168.0.1")],
                       files={INTERFACES: ORIGINAL})  # fmt: skip
    backend = IfupdownBackend(runner=runner, files_only=False)
    plan = Bridge("br0", backend=backend).enslave(HostNic("eth0", backend=backend), dry_run=True)
    assert any(isinstance(s, WriteFile) and s.path == INTERFACES for s in plan.steps)
    return plan, runner


def test_a_file_changed_after_the_plan_refuses_the_whole_apply() -> None:
    plan, runner = _ifupdown_plan()
    runner.files[INTERFACES] = ORIGINAL + ADMIN  # another writer, after the plan was shown
    ran = len(runner.commands)
    with pytest.raises(StalePlan, match=rf"{INTERFACES} has changed since the plan.*plan again"
                       ) as info:  # fmt: skip
        plan.apply(verify=False)
    assert isinstance(info.value, PlanFailed) and isinstance(info.value, ConcurrentChange)
    assert info.value.paths == (INTERFACES,)
    assert runner.files[INTERFACES] == ORIGINAL + ADMIN, "the other writer's change stands"
    assert not runner.changes, "no file written or removed"
    assert not [c for c in runner.commands[ran:] if c[0] in ("ifdown", "ifup")], "no step ran"


def test_a_file_created_after_the_plan_refuses_it(tmp_path: Path) -> None:
    # The plan creates /etc/new (previous None): someone else created it meanwhile.
    runner = RecordingRunner(replies={LINKS_ARGV: json.dumps([link_json(nic(), 1)])})
    plan = Plan(backend="test", action="enslave", nic=NIC, bridge="br0",
                steps=(WriteFile("/etc/new", "ours\n"), RunCommand(("true",))),
                runner=runner, applier=apply_plan)  # fmt: skip
    runner.files["/etc/new"] = b"theirs\n"
    with pytest.raises(StalePlan, match="/etc/new"):
        plan.apply(confirm_within=60, state_dir=str(tmp_path))
    assert runner.files["/etc/new"] == b"theirs\n" and ("true",) not in runner.commands
    assert not list(tmp_path.glob("*.json")), "the dead-man timer was never armed"


def test_a_removed_file_that_came_back_different_refuses_it() -> None:
    runner = RecordingRunner(replies={LINKS_ARGV: json.dumps([link_json(nic(), 1)])},
                             files={"/etc/old": b"changed\n"})  # fmt: skip
    plan = Plan(backend="test", action="release", nic=NIC, bridge="br0",
                steps=(RemoveFile("/etc/old", previous="as planned\n"),),
                runner=runner, applier=apply_plan)  # fmt: skip
    with pytest.raises(StalePlan, match=r"releasing .*/etc/old has changed"):
        plan.apply(verify=False)
    assert runner.files["/etc/old"] == b"changed\n"


def test_a_current_plan_applies() -> None:
    # The control: the same plan with nobody else writing goes through.
    plan, runner = _ifupdown_plan()
    plan.apply(verify=False)
    assert runner.files[INTERFACES] != ORIGINAL and b"br0" in runner.files[INTERFACES]


def test_rollback_leaves_a_file_another_writer_changed_after_kvmnet_wrote_it() -> None:
    plan, runner = _ifupdown_plan()
    links = runner.replies[LINKS_ARGV]

    def admin_edits_during_verification(argv: tuple[str, ...]) -> CommandResult:
        if INTERFACES in [c.path for c in runner.changes] and ADMIN not in runner.files[INTERFACES]:
            runner.files[INTERFACES] += ADMIN
        return links(argv) if callable(links) else CommandResult(argv, 0, str(links))

    runner.replies = {**runner.replies, LINKS_ARGV: admin_edits_during_verification}
    with pytest.raises(RollbackFailed) as info:
        plan.apply(retries=1, retry_interval=0)
    message = str(info.value)
    assert f"{INTERFACES} was changed by another writer after kvmnet wrote it" in message
    assert "as it was before" not in message
    assert runner.files[INTERFACES].endswith(ADMIN), "the admin's edit survives the rollback"
    assert info.value.originals[INTERFACES] == ORIGINAL, "kvmnet's copy of the original"


def test_rollback_restores_a_file_only_kvmnet_changed() -> None:
    # The control: no other writer, the file comes back byte for byte.
    plan, runner = _ifupdown_plan()
    with pytest.raises(RolledBack):
        plan.apply(retries=1, retry_interval=0)
    assert runner.files[INTERFACES] == ORIGINAL


def _pending(state: Path, target: Path) -> Path:
    """A dead-man pending file for a plan that rewrote ``target`` (ORIGINAL -> b"ours\\n")."""
    plan = Plan(backend="test", action="enslave", nic=NIC, bridge="br0",
                steps=(WriteFile(str(target), "ours\n", previous=ORIGINAL.decode()),),
                restore_runtime=False, runner=LocalRunner(), applier=apply_plan)  # fmt: skip
    snap = Snapshot(links={}, routes=(), files=(FileSnapshot(str(target), ORIGINAL, 0o644),))
    record = deadman.pending_record(plan, snap, "t", 1, now=time.time() - 1000)
    record["applied"] = True
    path = state / "t.pending.json"
    path.write_text(json.dumps(record))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("other_writer", [True, False])
def test_the_deadman_watcher_follows_the_same_rule(tmp_path: Path, other_writer: bool) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    target = tmp_path / "interfaces"
    target.write_bytes(b"ours\n" + (ADMIN if other_writer else b""))
    path = _pending(state, target)
    assert deadman.watch(path) == (1 if other_writer else 0)
    done = state / "t.rolled-back.json"
    remaining = json.loads(done.read_text())["remaining"]
    if other_writer:
        assert target.read_bytes() == b"ours\n" + ADMIN, "not restored over the change"
        assert any(f"{target} was changed by another writer" in r and str(done) in r
                   for r in remaining), remaining  # fmt: skip
    else:
        assert target.read_bytes() == ORIGINAL and remaining == []


def test_a_failed_rollback_command_is_reported_though_nothing_differs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every `ip route replace` fails: the plan's step and the rollback's own. The fake host's
    # routes never change, so compare() finds nothing: the failure must still be told.
    runner = dhcp_host()
    runner.fail = [("ip", "route", "replace")]
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    with caplog.at_level(logging.WARNING, logger="kvmnet"), pytest.raises(RollbackFailed) as info:
        plan.apply()
    message = str(info.value)
    assert "as it was before" not in message
    assert f"rollback command `ip route replace default via 10.231.0.1 dev {NIC}" in message
    assert "run it by hand" in message
    assert any("rollback command `ip route replace" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)  # fmt: skip


def test_a_failed_file_write_is_one_line_naming_the_file() -> None:
    runner = RecordingRunner(replies={LINKS_ARGV: json.dumps([link_json(nic(), 1)])})
    content = "".join(f"line {n} of a long file\n" for n in range(40))
    plan = Plan(backend="test", action="enslave", nic=NIC, bridge="br0",
                steps=(WriteFile("/etc/big.yaml", content),), runner=runner,
                applier=apply_plan)  # fmt: skip

    def full(path: str, data: bytes, *, mode: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    runner.write_file = full  # type: ignore[method-assign]
    with pytest.raises(kvmnet.RolledBack) as info:
        plan.apply(verify=False)
    message = str(info.value)
    assert "\n" not in message and "line 3 of" not in message
    assert "step 1 `write /etc/big.yaml`: [Errno 28] No space left on device" in message

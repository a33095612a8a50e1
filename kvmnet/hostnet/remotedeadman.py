"""The dead-man timer on the machine a plan changes, wherever kvmnet itself runs.

For a plan on this machine, `kvmnet.hostnet.deadman` does everything here. For a plan
whose runner acts on another machine (an `SshRunner`), the
watcher and the rollback must run **there**: the SSH connection is exactly what a bad bridge
change cuts, so a watcher on the laptop could never roll back. `RemoteDeadMan` writes
the same pending file through the runner (on the far machine, atomically), starts the same
watcher there (``python3 kvmnet.pyz kvmnet.hostnet.deadman FILE``: the runner ships the zip
of kvmnet's modules; see `kvmnet.hostnet.runners.sshrunner`), and renames through the runner
(one ``rename(2)`` there: the claim stays atomic). Its deadline is in the far machine's
clock, read from it.

`confirm_on` confirms over a NEW connection (not the shared one): that a fresh session
gets in after the change is what the confirmation has to prove.

Usage::

    dm = deadman_for(plan.runner)           # what kvmnet.hostnet.apply uses
    kvmnet.hostnet.remotedeadman.confirm_on(host.runner())   # or: kvmnet -c URI confirm
"""

from __future__ import annotations

import json
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from .. import _log
from ..errors import CommandFailed, ConfirmationError
from . import deadman
from .runners.runner import Runner

if TYPE_CHECKING:
    from .apply import Journal
    from .model.plan import Plan
    from .snapshot import Snapshot

__all__ = ["DeadMan", "LocalDeadMan", "RemoteDeadMan", "confirm_on", "deadman_for"]

log = _log.get(__name__)

DEFAULT_STATE_DIR = "/run/kvmnet"


class DeadMan(Protocol):
    """Arms, updates and disarms one dead-man timer (see `kvmnet.hostnet.deadman`)."""

    def arm(
        self, plan: Plan, snap: Snapshot, *, confirm_within: float, state_dir: str | None
    ) -> PurePath: ...

    def update(self, path: PurePath, journal: Journal, *, confirm_within: float) -> None: ...

    def disarm(self, path: PurePath) -> None: ...


class LocalDeadMan:
    """This machine's: `kvmnet.hostnet.deadman` itself."""

    def arm(
        self, plan: Plan, snap: Snapshot, *, confirm_within: float, state_dir: str | None
    ) -> PurePath:
        return deadman.arm(plan, snap, confirm_within=confirm_within, state_dir=state_dir)

    def update(self, path: PurePath, journal: Journal, *, confirm_within: float) -> None:
        deadman.update(Path(path), journal, confirm_within=confirm_within)

    def disarm(self, path: PurePath) -> None:
        deadman.disarm(Path(path))


def _remote_now(runner: Runner) -> float:
    """The far machine's clock: the deadline is compared there, not here."""
    out = runner.run(["date", "+%s.%N"]).stdout.strip()
    return float(out.replace("N", "0"))  # busybox date prints a literal N


def _rename(runner: Runner, src: PurePath, state: str) -> bool:
    dst = src.with_name(src.name.replace(".pending.", f".{state}."))
    rename = getattr(runner, "rename", None)
    if callable(rename):
        done: bool = rename(str(src), str(dst))
        return done
    result = runner.run(["mv", "-T", "--", str(src), str(dst)], check=False)
    return result.ok


class RemoteDeadMan:
    """The dead-man timer on the machine ``runner`` acts on (see the module docstring)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def arm(
        self, plan: Plan, snap: Snapshot, *, confirm_within: float, state_dir: str | None
    ) -> PurePath:
        runner = self.runner
        directory = PurePosixPath(state_dir or DEFAULT_STATE_DIR)
        runner.run(["mkdir", "-p", "-m", "0700", str(directory)])
        ident = deadman.new_id(plan)
        path = directory / f"{ident}.pending.json"
        record = deadman.pending_record(plan, snap, ident, confirm_within, now=_remote_now(runner))
        runner.write_file(str(path), json.dumps(record).encode(), mode=0o600)
        pid = runner.spawn(deadman.watcher_argv(str(path)))
        log.info("dead-man watcher %d armed on %r: %s", pid, runner, path)
        return path

    def update(self, path: PurePath, journal: Journal, *, confirm_within: float) -> None:
        raw = self.runner.read_file(str(path))
        if raw is None:
            return  # already taken by the watcher (or confirmed): nothing to extend
        data = json.loads(raw)
        data["started"] = list(journal.started)
        data["stopped"] = [list(a) for a in journal.stopped]
        data["deadline"] = _remote_now(self.runner) + confirm_within
        self.runner.write_file(str(path), json.dumps(data).encode(), mode=0o600)

    def disarm(self, path: PurePath) -> None:
        try:
            _rename(self.runner, path, "disarmed")
        except CommandFailed as exc:
            # Unreachable: the watcher there stays armed and rolls back by itself, which is
            # what must happen when this side cannot reach the machine any more.
            log.warning("could not disarm %s on %r (%s): its watcher rolls back", path,
                        self.runner, exc)  # fmt: skip


def deadman_for(runner: Runner) -> DeadMan:
    """The dead-man timer for a plan run by ``runner``: this machine's, or the far one's."""
    from .runners.sshrunner import runner_machine

    machine = runner_machine(runner)
    if machine is not None and not machine.is_local:
        return RemoteDeadMan(runner)
    return LocalDeadMan()


def confirm_on(runner: Runner, *, state_dir: str | None = None) -> list[str]:
    """Keep every change waiting for confirmation on ``runner``'s machine; returns their ids.

    Over SSH it opens ONE NEW connection for this (not the shared one): a confirmation must
    prove that a fresh session still gets in after the change.

    Args:
        runner: a runner on the machine that waits (e.g. ``host.runner()``).
        state_dir: the folder of pending files there (default ``/run/kvmnet``).

    Returns:
        The ids confirmed.

    Raises:
        ConfirmationError: nothing waits (never applied, confirmed, or rolled back already).
        CommandFailed: the machine could not be reached.
    """
    make_fresh = getattr(runner, "fresh", None)
    fresh: Runner = make_fresh() if callable(make_fresh) else runner
    directory = PurePosixPath(state_dir or DEFAULT_STATE_DIR)
    try:
        names = fresh.list_dir(str(directory)) or ()
        done = [
            deadman.pending_id(directory / name)
            for name in sorted(names)
            if name.endswith(".pending.json") and _rename(fresh, directory / name, "confirmed")
        ]
    finally:
        if fresh is not runner:
            close = getattr(fresh, "close", None)
            if callable(close):
                close()
    if done:
        return done
    late = sorted(n for n in names if n.endswith(".rolled-back.json"))
    hint = ""
    if late:
        hint = f"; the last one, {deadman.pending_id(directory / late[-1])}, was rolled back"
    raise ConfirmationError(f"nothing waits for confirmation in {directory} on {runner!r}{hint}")

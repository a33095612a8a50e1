"""The ONE apply mechanism for every backend: snapshot -> steps -> verify -> commit/rollback.

1. snapshot: the NIC's and bridge's runtime state, the main routing table, and the bytes and
   mode of every file the plan touches (absent files recorded as absent);
2. the plan's steps, in order, through the plan's runner;
3. the plan's checks, retried (``retries`` x ``retry_interval``) until all pass in one round;
4. on any failure: files restored byte for byte, the backend's ``rollback_hints`` run,
   links/addresses/routes restored, processes the plan stopped restarted and the ones it
   started stopped; then :class:`~kvmnet.RolledBack`, or :class:`~kvmnet.RollbackFailed`
   listing what still differs;
5. with ``confirm_within``: a detached watcher (:mod:`kvmnet.hostnet.deadman`) holds the
   snapshot and rolls back by itself unless :func:`kvmnet.hostnet.deadman.confirm` comes in
   time, even if the caller and its SSH session die.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import time
from dataclasses import dataclass, field

from ..errors import (
    CommandFailed,
    InvalidInput,
    PlanFailed,
    PreflightRefused,
    RollbackFailed,
    RolledBack,
)
from . import deadman
from .inspect import read_links, read_routes
from .plan import Check, Plan, RemoveFile, RunCommand, StartProcess, Step, StopProcess, WriteFile
from .remotedeadman import deadman_for
from .runner import Runner
from .snapshot import Snapshot, compare, restore_files, restore_runtime, take_snapshot
from .state import LinkState

__all__ = ["ApplyResult", "Journal", "apply_plan", "evaluate_checks", "roll_back", "run_step"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyResult:
    """What applying a plan did. ``pending_confirmation`` is the dead-man id when armed."""

    plan: Plan
    verified: bool
    attempts: int = 0
    pending_confirmation: str | None = None
    started_pids: tuple[int, ...] = ()

    def __repr__(self) -> str:
        pending = f", confirm {self.pending_confirmation}" if self.pending_confirmation else ""
        state = "verified" if self.verified else "not verified"
        return f"<ApplyResult {self.plan.backend} {self.plan.action} {state}{pending}>"


@dataclass
class Journal:
    """What the steps did that rollback must undo beyond the snapshot."""

    started: list[int] = field(default_factory=list)
    stopped: list[tuple[str, ...]] = field(default_factory=list)
    done: int = 0


def run_step(runner: Runner, step: Step, journal: Journal) -> None:
    """Execute one step; raise CommandFailed (or OSError) when it fails."""
    if isinstance(step, RunCommand):
        runner.run(step.argv)
    elif isinstance(step, WriteFile):
        runner.write_file(step.path, step.content.encode(), mode=step.mode)
    elif isinstance(step, RemoveFile):
        runner.remove_file(step.path)
    elif isinstance(step, StopProcess):
        runner.run(step.command)
        journal.stopped.append(step.argv)
    elif isinstance(step, StartProcess):
        journal.started.append(runner.spawn(step.argv))
    journal.done += 1


def _check(
    runner: Runner, check: Check, links: dict[str, LinkState], defaults: list[tuple[str, str]]
) -> bool:
    link = links.get(check.subject)
    kind, value = check.kind, check.value
    if kind == "link-absent":
        return link is None
    if link is None:
        return False
    if kind == "link-exists":
        return True
    if kind == "link-up":
        return link.admin_up
    if kind == "port-of":
        return link.master == value
    if kind == "not-port":
        return link.master is None
    if kind == "has-address":
        return any(a.cidr == value for a in link.addresses)
    if kind == "lacks-address":
        return all(a.cidr != value for a in link.addresses)
    if kind == "has-mac":
        return link.mac.lower() == (value or "").lower()
    if kind == "default-route-via":
        return any(dev == link.name and (value in (None, gw)) for dev, gw in defaults)
    if kind == "gateway-answers" and value:
        return gateway_answers(runner, link.name, value)
    return False


_NEIGH_OK = {"REACHABLE", "STALE", "DELAY", "PERMANENT"}


def gateway_answers(runner: Runner, dev: str, gateway: str) -> bool:
    """A ping out of ``dev`` is answered, or at least ARP/ND resolved the gateway on ``dev``
    (some routers drop ICMP echo; a host without ``ping`` still gets the ARP answer)."""
    ping = runner.run(["ping", "-c", "1", "-W", "1", "-I", dev, gateway], check=False, timeout=5)
    if ping.ok:
        return True
    neigh = runner.run(["ip", "-j", "neigh", "show", gateway, "dev", dev], check=False)
    try:
        entries = json.loads(neigh.stdout or "[]") if neigh.ok else []
    except json.JSONDecodeError:
        return False
    return any(_NEIGH_OK & set(e.get("state", [])) for e in entries if isinstance(e, dict))


def evaluate_checks(runner: Runner, checks: tuple[Check, ...]) -> list[Check]:
    """The checks that fail now (one fresh read of the host)."""
    links = read_links(runner)
    defaults = [(r.dev, r.gateway or "") for r in read_routes(runner) if r.dst == "default"]
    return [c for c in checks if not _check(runner, c, links, defaults)]


def _verify(plan: Plan, runner: Runner, retries: int, interval: float) -> tuple[list[Check], int]:
    failed: list[Check] = list(plan.checks)
    attempts = 0
    for attempts in range(1, max(retries, 1) + 1):
        failed = evaluate_checks(runner, plan.checks)
        if not failed:
            break
        log.info("verify attempt %d: %d checks fail", attempts, len(failed))
        if attempts < retries:
            time.sleep(interval)
    return failed, attempts


def roll_back(
    runner: Runner,
    snap: Snapshot,
    *,
    hints: tuple[Step, ...] = (),
    runtime: bool = True,
    journal: Journal | None = None,
) -> list[str]:
    """Restore ``snap``; returns what still differs (empty when the restore is exact)."""
    errors = restore_files(runner, snap)
    for step in hints:
        try:
            run_step(runner, step, Journal())
        except (CommandFailed, OSError) as exc:
            errors.append(f"rollback step {step.describe()}: {exc}")
    if journal is not None:
        for pid in journal.started:
            runner.run(["kill", "-TERM", str(pid)], check=False)
    if runtime:
        errors += restore_runtime(runner, snap)
    remaining = compare(snap, runner) if runtime else _files_differ(runner, snap)
    # Restarted last, after the comparison: a DHCP client starting up may deconfigure its
    # link before it leases again, which is its business, not a failed restore.
    if journal is not None:
        for argv in journal.stopped:
            runner.spawn(argv)
    return remaining + ([f"(while restoring: {'; '.join(errors)})"] if remaining and errors else [])


def _files_differ(runner: Runner, snap: Snapshot) -> list[str]:
    return [f"{f.path} differs" for f in snap.files if runner.read_file(f.path) != f.content]


def _fail(plan: Plan, runner: Runner, snap: Snapshot, journal: Journal, why: str) -> PlanFailed:
    remaining = roll_back(
        runner, snap, hints=plan.rollback_hints, runtime=plan.restore_runtime, journal=journal
    )
    what = f"{plan.backend}: bridging {plan.nic} into {plan.bridge}"
    if plan.action == "release":
        what = f"{plan.backend}: releasing {plan.nic} from {plan.bridge}"
    if remaining:
        return RollbackFailed(
            f"{what} failed ({why}) and the rollback did not restore everything: "
            + "; ".join(remaining)
            + ". Fix these by hand."
        )
    return RolledBack(f"{what} failed ({why}); rolled back: the host is as it was before")


def apply_plan(
    plan: Plan,
    *,
    verify: bool = True,
    confirm_within: float | None = None,
    retries: int = 10,
    retry_interval: float = 0.5,
    rollback_on_failure: bool = True,
    state_dir: str | None = None,
) -> ApplyResult:
    """See :meth:`kvmnet.hostnet.plan.Plan.apply`."""
    if confirm_within is not None and not (0 < confirm_within < math.inf):
        # 0 s (or nan) would roll back before anyone could confirm; inf never would.
        raise InvalidInput(
            f"confirm_within={confirm_within!r}: give the seconds (above 0) the dead-man timer "
            "waits for a confirm, e.g. confirm_within=60, or None for no timer"
        )
    runner = plan.runner
    if runner is None:
        raise PlanFailed(f"{plan!r} has no runner: build it through a backend to apply it")
    if plan.requires_confirmation and confirm_within is None:
        raise PreflightRefused(
            f"the SSH session runs over {plan.nic}: bridging it may cut you off. Apply with "
            "confirm_within=SECONDS (CLI: --confirm-within 60) so it rolls back by itself, "
            "or force=('ssh',) to skip this check",
            check="ssh",
        )
    snap = take_snapshot(runner, links=(plan.nic, plan.bridge), files=plan.files)
    journal = Journal()
    # Armed before the first step: if the caller dies halfway, the watcher still rolls back.
    armed = None
    # On the machine the runner acts on: over SSH the watcher must not depend on the link.
    dm = deadman_for(runner)
    if confirm_within is not None:
        armed = dm.arm(plan, snap, confirm_within=confirm_within, state_dir=state_dir)
    log.info("applying %r", plan)
    try:
        attempts = _run_and_verify(plan, runner, journal, verify, retries, retry_interval)
    except _StepFailed as exc:
        if armed is not None:
            dm.disarm(armed)
        if not rollback_on_failure:
            raise PlanFailed(f"{plan.backend}: {exc}; NOT rolled back") from exc.__cause__
        raise _fail(plan, runner, snap, journal, str(exc)) from exc.__cause__
    if armed is not None:
        dm.update(armed, journal, confirm_within=float(confirm_within or 0))
    return ApplyResult(
        plan,
        verified=verify and bool(plan.checks),
        attempts=attempts,
        pending_confirmation=deadman.pending_id(armed) if armed else None,
        started_pids=tuple(journal.started),
    )


class _StepFailed(Exception):
    """Internal: a step or the verification failed; the message says which."""


def _run_and_verify(
    plan: Plan, runner: Runner, journal: Journal, verify: bool, retries: int, interval: float
) -> int:
    for group in _groups(runner, plan.steps):
        try:
            if len(group) > 1:
                _run_batch(runner, group, journal)
            else:
                run_step(runner, group[0], journal)
        except (CommandFailed, OSError) as exc:
            step = plan.steps[journal.done]
            raise _StepFailed(f"step {journal.done + 1} `{_short(step)}`: {exc}") from exc
    if not (verify and plan.checks):
        return 0
    failed, attempts = _verify(plan, runner, retries, interval)
    if failed:
        raise _StepFailed(
            f"verification failed after {attempts} attempts: "
            + "; ".join(c.describe() for c in failed)
        )
    return attempts


def _groups(runner: Runner, steps: tuple[Step, ...]) -> list[list[Step]]:
    """The steps in the order they run: one by one, except that a runner on another machine
    (one with ``run_batch``) runs consecutive commands in one round trip. Over SSH that is
    not only faster: a step that moves the session's own address (a NIC leaving its bridge)
    cannot answer until the next step puts the route right, so they must run together."""
    if not callable(getattr(runner, "run_batch", None)):
        return [[step] for step in steps]
    groups: list[list[Step]] = []
    for step in steps:
        if isinstance(step, RunCommand) and groups and isinstance(groups[-1][-1], RunCommand):
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def _run_batch(runner: Runner, group: list[Step], journal: Journal) -> None:
    argvs = [step.argv for step in group if isinstance(step, RunCommand)]
    done, failed = runner.run_batch(argvs)  # type: ignore[attr-defined]
    journal.done += done
    if failed is not None:
        failed.check()


def _short(step: Step) -> str:
    if isinstance(step, RunCommand | StartProcess):
        return shlex.join(step.argv)
    if isinstance(step, StopProcess):
        return shlex.join(step.command)
    return step.describe()

"""The ONE apply mechanism for every backend: snapshot -> steps -> verify -> commit/rollback.

1. snapshot: the NIC's and bridge's runtime state, the main routing table, and the bytes and
   mode of every file the plan touches (absent files recorded as absent); each file must
   still be what the plan was made from (its first step's ``previous``), else `StalePlan`
   and nothing runs (compare-and-set: another writer's change is never overwritten);
2. the plan's steps, in order, through the plan's runner;
3. the plan's checks, retried (``retries`` x ``retry_interval``) until all pass in one round;
4. on any failure: files restored byte for byte (unless another writer changed one after
   kvmnet wrote it: that one is left and reported), the backend's ``rollback_hints`` run,
   links/addresses/routes restored, processes the plan stopped restarted and the ones it
   started stopped; then `RolledBack`, or `RollbackFailed`
   listing what still differs and every rollback command that failed;
5. with ``confirm_within``: a detached watcher (`kvmnet.hostnet.deadman`) holds the
   snapshot and rolls back by itself unless `kvmnet.hostnet.deadman.confirm` comes in
   time, even if the caller and its SSH session die.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass

from .. import _log
from ..core.validate import CONFIRM_WITHIN_RANGE, shown
from ..errors import (
    CommandFailed,
    InvalidInput,
    InvalidType,
    PlanFailed,
    PreflightRefused,
    RollbackFailed,
    RolledBack,
    StalePlan,
    UntrustedPath,
)
from . import deadman
from .inspect import read_links, read_routes
from .model.plan import Check, Plan, RemoveFile, RunCommand, Step, WriteFile
from .model.state import LinkState
from .remotedeadman import deadman_for
from .rollback import (
    FORK_GRACE,
    Journal,
    daemon_pid,
    one_line,
    roll_back,
    run_step,
    written_by,
)
from .runners.runner import Runner
from .snapshot import Snapshot, take_snapshot
from .trust import trusted_dir

__all__ = [
    "FORK_GRACE",
    "ApplyResult",
    "Journal",
    "apply_plan",
    "check_apply_options",
    "check_state_dir_arg",
    "daemon_pid",
    "evaluate_checks",
    "roll_back",
    "run_step",
    "stale_files",
]

log = _log.get(__name__)


@dataclass(frozen=True)
class ApplyResult:
    """What applying a plan did.

    Attributes:
        plan: the plan applied.
        verified: its checks ran and passed (False with ``verify=False`` or no checks).
        attempts: rounds of checks it took.
        pending_confirmation: the dead-man id when ``confirm_within`` armed the timer.
        started_pids: PIDs of the processes the plan started (DHCP clients).
    """

    plan: Plan
    verified: bool
    attempts: int = 0
    pending_confirmation: str | None = None
    started_pids: tuple[int, ...] = ()

    def __repr__(self) -> str:
        pending = f", confirm {self.pending_confirmation}" if self.pending_confirmation else ""
        state = "verified" if self.verified else "not verified"
        return f"<ApplyResult {self.plan.backend} {self.plan.action} {state}{pending}>"


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


def _what(plan: Plan) -> str:
    if plan.action == "release":
        return f"{plan.backend}: releasing {plan.nic} from {plan.bridge}"
    return f"{plan.backend}: bridging {plan.nic} into {plan.bridge}"


def _fail(plan: Plan, runner: Runner, snap: Snapshot, journal: Journal, why: str) -> PlanFailed:
    remaining = roll_back(
        runner,
        snap,
        hints=plan.rollback_hints,
        runtime=plan.restore_runtime,
        journal=journal,
        written=written_by(plan.steps),
        originals_at="in this error's `originals`",
    )
    what = _what(plan)
    if remaining:
        return RollbackFailed(
            f"{what} failed ({why}) and the rollback did not restore everything: "
            + "; ".join(remaining)
            + ". Fix these by hand.",
            originals={f.path: f.content for f in snap.files},
        )
    return RolledBack(f"{what} failed ({why}); rolled back: the host is as it was before")


def stale_files(plan: Plan, snap: Snapshot) -> list[str]:
    """The files the plan writes or removes that are no longer what it was made from: the
    first file step on each path carries the text the plan read (``previous``; None: the file
    was absent), and ``snap`` holds what is there now.

    Args:
        plan: the plan about to run.
        snap: the snapshot taken right before its steps.

    Returns:
        The paths whose content differs, in step order (empty: the plan is current).
    """
    now = {f.path: f.content for f in snap.files}
    seen: set[str] = set()
    stale: list[str] = []
    for step in plan.steps:
        if not isinstance(step, WriteFile | RemoveFile) or step.path in seen:
            continue
        # Only the first step on a path was made from the host; a later one from the plan.
        seen.add(step.path)
        before = None if step.previous is None else step.previous.encode(errors="surrogateescape")
        if now.get(step.path) != before:
            stale.append(step.path)
    return stale


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
    """See `kvmnet.hostnet.model.plan.Plan.apply`."""
    check_apply_options(
        verify=verify,
        confirm_within=confirm_within,
        retries=retries,
        retry_interval=retry_interval,
        rollback_on_failure=rollback_on_failure,
        state_dir=state_dir,
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
    if confirm_within is not None:
        # Refused before the first read of the host, not only when arming: nothing runs.
        trusted_dir(deadman.state_dir(state_dir), create=True)
    snap = take_snapshot(runner, links=(plan.nic, plan.bridge), files=plan.files)
    # Compare-and-set, before the first step and before the dead-man is armed: a file that
    # changed since the plan was made would be overwritten with a stale edit (and its new
    # content "restored" away by a rollback). The plan's `previous` is what was read then.
    stale = stale_files(plan, snap)
    if stale:
        raise StalePlan(
            f"{_what(plan)}: refused, nothing was changed: "
            + ", ".join(stale)
            + (" has" if len(stale) == 1 else " have")
            + " changed since the plan was made (another writer). Make the plan again, so "
            "that it builds on what is there now",
            paths=stale,
        )
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
    # Looked up again now that the steps are verified: a client that forks once it has
    # leased (udhcpc) has usually done so by now.
    journal.started = [(daemon_pid(runner, argv, pid), argv) for pid, argv in journal.started]
    if armed is not None:
        dm.update(armed, journal, confirm_within=float(confirm_within or 0))
    return ApplyResult(
        plan,
        verified=verify and bool(plan.checks),
        attempts=attempts,
        pending_confirmation=deadman.pending_id(armed) if armed else None,
        started_pids=tuple(pid for pid, _argv in journal.started),
    )


def _flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidType(f"{name}={value!r}: give True or False")


def _seconds(
    name: str,
    value: object,
    *,
    zero_ok: bool,
    example: str,
    bounds: tuple[float, float] = (0.0, sys.float_info.max),
) -> float:
    # bool is an int: confirm_within=True would arm a 1 s timer nobody meant.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidType(f"{name}={shown(value)}: give a number of seconds, e.g. {name}={example}")
    low, high = bounds
    # Compared before float(), which raises OverflowError for an int past float's range; NaN
    # fails every comparison and infinity the (finite) upper bound.
    if not ((value >= 0 if zero_ok else value > 0) and low <= value <= high):
        if bounds[1] < sys.float_info.max:
            least = f"from {low:g} to {high:g}"
        else:
            least = "0 or more" if zero_ok else "above 0"
        raise InvalidInput(
            f"{name}={shown(value)}: give a finite number of seconds ({least}), "
            f"e.g. {name}={example}"
        )
    return float(value)


def check_apply_options(
    *,
    verify: object,
    confirm_within: object,
    retries: object,
    retry_interval: object,
    rollback_on_failure: object,
    state_dir: object,
) -> None:
    """Refuse a `apply` option of the wrong type or value
    before anything runs or the dead-man timer is armed.

    Args:
        verify: must be a bool.
        confirm_within: None, or seconds from 1 to 86400 (not a bool or a string): less
            would roll back before anyone could confirm, inf never would.
        retries: an int of 1 or more (not a bool).
        retry_interval: seconds, 0 or more, finite.
        rollback_on_failure: must be a bool.
        state_dir: None, or a non-empty path (str or os.PathLike) without NUL bytes.

    Raises:
        InvalidType: a value of the wrong type (also a TypeError).
        InvalidInput: a value out of range (also a ValueError).
    """
    _flag("verify", verify)
    _flag("rollback_on_failure", rollback_on_failure)
    if confirm_within is not None:
        _seconds(
            "confirm_within",
            confirm_within,
            zero_ok=False,
            example="60",
            bounds=CONFIRM_WITHIN_RANGE,
        )
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise InvalidType(f"retries={retries!r}: give a whole number of attempts, e.g. retries=10")
    if retries < 1:
        raise InvalidInput(f"retries={retries!r}: give 1 or more verification attempts")
    _seconds("retry_interval", retry_interval, zero_ok=True, example="0.5")
    if state_dir is not None:
        check_state_dir_arg(state_dir)


def check_state_dir_arg(state_dir: object) -> str:
    """``state_dir`` as a str path; refuses other types, an empty path and NUL bytes.

    Args:
        state_dir: the value given as ``state_dir=``.

    Returns:
        The path as a str.

    Raises:
        InvalidType: not a str or os.PathLike of str.
        InvalidInput: empty, or holding a NUL byte.
    """
    path = os.fspath(state_dir) if isinstance(state_dir, os.PathLike) else state_dir
    if not isinstance(path, str):
        raise InvalidType(
            f"state_dir={state_dir!r}: give a directory path as a str, e.g. '/run/kvmnet'"
        )
    if not path or "\0" in path:
        raise InvalidInput(
            f"state_dir={state_dir!r}: give a non-empty directory path without NUL bytes, "
            "e.g. '/run/kvmnet'"
        )
    return path


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
        except (CommandFailed, UntrustedPath, OSError) as exc:
            # UntrustedPath: a file's path became a directory or a symlink loop since the plan.
            step = plan.steps[journal.done]
            raise _StepFailed(f"step {journal.done + 1} `{one_line(step)}`: {exc}") from exc
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

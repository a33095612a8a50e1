"""Dead-man timer, like ``netplan try`` and nmstate's checkpoints.

``plan.apply(confirm_within=60)`` arms it before the first step: the snapshot and the way back
go into ``STATE_DIR/<id>.pending.json`` and a detached watcher (``python -m
kvmnet.hostnet.deadman FILE``, its own session, stdio closed) rolls back by itself at the
deadline unless `confirm` renamed the file first. It survives the caller and the
caller's SSH session dying. Whoever renames ``<id>.pending.json`` first wins: ``confirm``
renames it to ``.confirmed.json``, the watcher to ``.rolling-back.json``. The state files
are always this machine's (whatever runner the plan has): they are written atomically through
`LocalRunner`, the watcher is started through it too, and the
renames stay here because an atomic rename *is* the claim. ``sys.exit`` appears only in the
watcher process's own ``__main__`` entry.

Usage::

    plan.apply(confirm_within=60)
    # ... from a NEW ssh session, proving the host is still reachable:
    kvmnet.hostnet.confirm()          # or: kvmnet confirm

``STATE_DIR``: ``state_dir=`` > ``$KVMNET_STATE_DIR`` > ``/run/kvmnet``. The watcher runs as
root and executes what the pending file says, so the state dir and its files are trusted only
if only root could have written them (`kvmnet.hostnet.trust`, OpenSSH's StrictModes):
checked when armed, at every read, and again right before the rollback runs; a refusal is
`UntrustedPath` and nothing is executed.

A caller that dies before its steps are done (SIGKILL, a lost SSH session) will neither
finish nor confirm: while the steps run, the watcher checks the caller's PID (and its start
time, against PID reuse) and rolls back at once when it is gone, instead of waiting out the
apply budget.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from .. import _log
from ..errors import ConfirmationError, UntrustedPath
from .model.plan import STEP_TYPES, Step, step_kind
from .rollback import Journal, roll_back, written_by
from .runners.runner import LocalRunner, Runner, default_runner
from .snapshot import Snapshot
from .trust import read_trusted, trusted_dir

if TYPE_CHECKING:
    from .model.plan import Plan

__all__ = ["arm", "confirm", "disarm", "pending", "pending_id", "state_dir", "update", "watch"]

# Named explicitly: run as `python -m`, __name__ would be "__main__".
log = _log.get("kvmnet.hostnet.deadman")

POLL = 0.1
# Room for the steps and verification before the countdown proper starts (update() resets it).
APPLY_BUDGET = 120.0


def state_dir(path: str | None = None) -> Path:
    """Where pending confirmations live."""
    return Path(path or os.environ.get("KVMNET_STATE_DIR") or "/run/kvmnet")


_dir = state_dir  # the functions below take a parameter of the same name


def _step_dict(step: Step) -> dict[str, object]:
    return {"type": step_kind(step), **asdict(step)}


def _step_from(raw: dict[str, object]) -> Step:
    fields = dict(raw)
    cls = STEP_TYPES[str(fields.pop("type"))]
    if "argv" in fields:
        fields["argv"] = tuple(fields["argv"])  # type: ignore[arg-type]
    return cls(**fields)  # type: ignore[arg-type]


def _write(path: Path, data: dict[str, object]) -> None:
    # Always this machine's files, whatever runner the plan has: the watcher is local. The
    # directory is checked first; once it is trusted nobody else can swap what is in it.
    trusted_dir(path.parent)
    LocalRunner().write_file(str(path), json.dumps(data).encode(), mode=0o600)


def _read(path: Path) -> dict[str, object] | None:
    """The pending file's data, read through `read_trusted` (None: gone)."""
    raw = read_trusted(path)
    if raw is None:
        return None
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise json.JSONDecodeError("not an object", raw.decode(errors="replace"), 0)
    return data


def _start_time(pid: int) -> str | None:
    """Process ``pid``'s start time (clock ticks since boot, field 22 of /proc/PID/stat):
    with the PID, it names one process even after the PID is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    # A zombie has exited (SIGKILLed, not yet reaped): it will not finish its steps.
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _caller_gone(data: dict[str, object]) -> bool:
    pid, started = data.get("caller"), data.get("caller_start")
    if not isinstance(pid, int) or started is None:
        return False
    return _start_time(pid) != started


def pending_id(path: PurePath) -> str:
    """The id in a dead-man file's name, ``<id>.<state>.json`` (the id may hold dots: it
    ends with the bridge's name)."""
    return path.name.rsplit(".", 2)[0]


def new_id(plan: Plan) -> str:
    """A fresh dead-man id: time, this process, the bridge."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{plan.bridge}"


def pending_record(
    plan: Plan, snap: Snapshot, ident: str, confirm_within: float, *, now: float
) -> dict[str, object]:
    """What a pending file holds; ``now`` is the watcher's machine's clock."""
    runner = plan.runner
    return {
        "id": ident,
        "plan": repr(plan),
        "netns": runner.netns if runner is not None else None,
        "confirm_within": confirm_within,
        "deadline": now + confirm_within + APPLY_BUDGET,
        "snapshot": json.loads(snap.to_json()),
        "hints": [_step_dict(s) for s in plan.rollback_hints],
        # What the plan's own steps may leave in each file (SHA-256; null: removed): the
        # rollback restores a file only while it holds that or the snapshot's content.
        "written": {
            path: sorted(found, key=lambda d: d or "")
            for path, found in written_by(plan.steps).items()
        },
        "restore_runtime": plan.restore_runtime,
        "started": [],
        "stopped": [],
        "applied": False,
    }


def watcher_argv(path: str) -> list[str]:
    """The watcher's command line (a runner on another machine runs it there)."""
    return [sys.executable, "-m", "kvmnet.hostnet.deadman", path]


def arm(
    plan: Plan,
    snap: Snapshot,
    *,
    confirm_within: float,
    state_dir: str | None = None,
) -> Path:
    """Write the pending file and start the watcher.

    Args:
        plan: the plan about to run.
        snap: what to restore.
        confirm_within: seconds to wait for a confirm once the steps are done.
        state_dir: where the pending file goes (None: $KVMNET_STATE_DIR or /run/kvmnet).

    Returns:
        The pending file's path.

    Raises:
        UntrustedPath: the state dir could be written by someone other than root.
    """
    directory = trusted_dir(_dir(state_dir), create=True)
    ident = new_id(plan)
    path = directory / f"{ident}.pending.json"
    record = pending_record(plan, snap, ident, confirm_within, now=time.time())
    # The caller is on this machine: the watcher rolls back at once if it dies mid-steps
    # (PID and start time name one process even after the PID is reused).
    record["caller"] = os.getpid()
    record["caller_start"] = _start_time(os.getpid())
    _write(path, record)
    pid = LocalRunner().spawn(watcher_argv(str(path)))
    log.info("dead-man watcher %d armed: %s", pid, path)
    return path


def update(path: Path, journal: Journal, *, confirm_within: float) -> None:
    """After the steps: record what they started/stopped; the countdown starts now.

    Args:
        path: the pending file `arm` returned.
        journal: what the steps started and stopped.
        confirm_within: seconds from now until the watcher rolls back.

    Raises:
        UntrustedPath: the state dir or file is no longer trusted.
        ConfirmationError: the watcher already took the file (it rolled back).
    """
    data = _read(path)
    if data is None:
        raise ConfirmationError(f"{path} is gone: the dead-man watcher rolled back already")
    data["started"] = [[pid, list(argv)] for pid, argv in journal.started]
    data["stopped"] = [list(a) for a in journal.stopped]
    data["deadline"] = time.time() + confirm_within
    data["applied"] = True
    _write(path, data)


def disarm(path: Path) -> None:
    """The caller rolled back (or failed) by itself: the watcher has nothing to do."""
    with contextlib.suppress(FileNotFoundError):
        path.rename(path.with_name(path.name.replace(".pending.", ".disarmed.")))


def pending(directory: str | None = None) -> list[Path]:
    """Pending files waiting for confirmation, oldest first."""
    d = state_dir(directory)
    if not d.is_dir():
        return []
    return sorted(trusted_dir(d).glob("*.pending.json"))


def confirm(*, state_dir: str | None = None) -> list[str]:
    """Keep every change waiting for confirmation; returns their ids.

    Args:
        state_dir: where the pending files are (None: $KVMNET_STATE_DIR or /run/kvmnet).

    Returns:
        The ids confirmed.

    Raises:
        ConfirmationError: nothing waits (never applied, already confirmed, or rolled back
            because confirmation came too late).
        UntrustedPath: the state dir could be written by someone other than root.
    """
    done: list[str] = []
    for path in pending(state_dir):
        try:
            path.rename(path.with_name(path.name.replace(".pending.", ".confirmed.")))
        except FileNotFoundError:
            continue  # the watcher took it a moment ago
        done.append(pending_id(path))
    if done:
        return done
    d = _dir(state_dir)
    late = sorted(trusted_dir(d).glob("*.rolled-back.json")) if d.is_dir() else []
    hint = f"; the last one, {pending_id(late[-1])}, was rolled back" if late else ""
    raise ConfirmationError(f"nothing waits for confirmation in {d}{hint}")


def _runner_for(data: dict[str, object]) -> Runner:
    netns = data.get("netns")
    return default_runner(netns if isinstance(netns, str) else None)


def _wait_for_deadline(path: Path) -> dict[str, object] | None:
    """Poll the pending file until its deadline passes (its data) or it is gone (None)."""
    while True:
        try:
            data = _read(path)
        except json.JSONDecodeError:
            time.sleep(POLL)
            continue
        if data is None:
            log.info("%s confirmed or disarmed", path.name)
            return None
        if not data.get("applied") and _caller_gone(data):
            log.warning("the caller (PID %s) died before its steps were done", data["caller"])
            return data
        if time.time() >= float(str(data["deadline"])):
            return data
        time.sleep(POLL)


def _journal(data: dict[str, object]) -> Journal:
    started = data.get("started")
    stopped = data.get("stopped")
    return Journal(
        started=[(int(p), tuple(str(a) for a in argv)) for p, argv in started or ()],  # type: ignore[attr-defined]
        stopped=[tuple(str(a) for a in argv) for argv in stopped or ()],  # type: ignore[attr-defined]
    )


def _written(data: dict[str, object]) -> dict[str, frozenset[str | None]] | None:
    """The pending file's ``written`` (None: a file from before it was recorded, whose
    files are restored as they always were)."""
    raw = data.get("written")
    if not isinstance(raw, dict):
        return None
    return {
        str(p): frozenset(None if d is None else str(d) for d in found)
        for p, found in raw.items()
        if isinstance(found, list)
    }


def watch(path: Path) -> int:
    """The watcher's loop: wait for confirmation or the deadline (or the caller's death
    before its steps were done), then roll back.

    Args:
        path: the pending file.

    Returns:
        0: confirmed, or rolled back exactly; 1: rolled back with differences left;
        3: refused (UntrustedPath), nothing executed.
    """
    try:
        if _wait_for_deadline(path) is None:
            return 0
        taken = path.with_name(path.name.replace(".pending.", ".rolling-back."))
        try:
            path.rename(taken)
        except FileNotFoundError:
            return 0  # confirmed at the last moment
        # Read again, and checked again, right before executing: what runs is what is there now.
        data = _read(taken)
    except UntrustedPath as exc:
        log.error("not rolling back, nothing executed: %s", exc)
        return 3
    if data is None:
        return 0
    log.warning("no confirmation for %s: rolling back", data["id"])
    done = taken.with_name(taken.name.replace(".rolling-back.", ".rolled-back."))
    remaining = roll_back(
        _runner_for(data),
        Snapshot.from_json(json.dumps(data["snapshot"])),
        hints=tuple(_step_from(s) for s in data["hints"]),  # type: ignore[attr-defined]
        runtime=bool(data["restore_runtime"]),
        journal=_journal(data),
        written=_written(data),
        originals_at=f"in {done}, snapshot.files (base64)",
    )
    data["remaining"] = remaining
    data["rolled_back_at"] = time.time()
    _write(taken, data)
    taken.rename(done)
    log.warning(
        "rolled back %s%s", data["id"], f"; still differs: {remaining}" if remaining else ""
    )
    return 1 if remaining else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        return 2
    path = Path(args[0])
    try:
        trusted_dir(path.parent)  # before the log file is opened there
    except UntrustedPath:
        return 3
    handler = logging.FileHandler(path.with_name(pending_id(path) + ".log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger("kvmnet").addHandler(handler)
    logging.getLogger("kvmnet").setLevel(logging.INFO)
    try:
        return watch(path)
    except Exception:
        # stderr is closed: the log file is the only place anyone will look.
        log.exception("the watcher failed")
        raise


if __name__ == "__main__":
    sys.exit(main())

"""Dead-man timer, like ``netplan try`` and nmstate's checkpoints.

``plan.apply(confirm_within=60)`` arms it before the first step: the snapshot and the way back
go into ``STATE_DIR/<id>.pending.json`` and a detached watcher (``python -m
kvmnet.hostnet.deadman FILE``, its own session, stdio closed) rolls back by itself at the
deadline unless :func:`confirm` renamed the file first. It survives the caller and the
caller's SSH session dying. Whoever renames ``<id>.pending.json`` first wins: ``confirm``
renames it to ``.confirmed.json``, the watcher to ``.rolling-back.json``. The state files
are always this machine's (whatever runner the plan has): they are written atomically through
:class:`~kvmnet.hostnet.runner.LocalRunner`, the watcher is started through it too, and the
renames stay here because an atomic rename *is* the claim. ``sys.exit`` appears only in the
watcher process's own ``__main__`` entry.

Usage::

    plan.apply(confirm_within=60)
    # ... from a NEW ssh session, proving the host is still reachable:
    kvmnet.hostnet.confirm()          # or: kvmnet confirm

``STATE_DIR``: ``state_dir=`` > ``$KVMNET_STATE_DIR`` > ``/run/kvmnet``.
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

from ..errors import ConfirmationError
from .plan import STEP_TYPES, Step, step_kind
from .runner import LocalRunner, Runner, default_runner
from .snapshot import Snapshot

if TYPE_CHECKING:
    from .apply import Journal
    from .plan import Plan

__all__ = ["arm", "confirm", "disarm", "pending", "pending_id", "state_dir", "update", "watch"]

# Named explicitly: run as `python -m`, __name__ would be "__main__".
log = logging.getLogger("kvmnet.hostnet.deadman")

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
    # Always this machine's files, whatever runner the plan has: the watcher is local.
    LocalRunner().write_file(str(path), json.dumps(data).encode(), mode=0o600)


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
        "restore_runtime": plan.restore_runtime,
        "started": [],
        "stopped": [],
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
    """Write the pending file and start the watcher; returns the pending file's path."""
    directory = _dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ident = new_id(plan)
    path = directory / f"{ident}.pending.json"
    _write(path, pending_record(plan, snap, ident, confirm_within, now=time.time()))
    pid = LocalRunner().spawn(watcher_argv(str(path)))
    log.info("dead-man watcher %d armed: %s", pid, path)
    return path


def update(path: Path, journal: Journal, *, confirm_within: float) -> None:
    """After the steps: record what they started/stopped; the countdown starts now."""
    data = json.loads(path.read_text())
    data["started"] = list(journal.started)
    data["stopped"] = [list(a) for a in journal.stopped]
    data["deadline"] = time.time() + confirm_within
    _write(path, data)


def disarm(path: Path) -> None:
    """The caller rolled back (or failed) by itself: the watcher has nothing to do."""
    with contextlib.suppress(FileNotFoundError):
        path.rename(path.with_name(path.name.replace(".pending.", ".disarmed.")))


def pending(directory: str | None = None) -> list[Path]:
    """Pending files waiting for confirmation, oldest first."""
    d = state_dir(directory)
    return sorted(d.glob("*.pending.json")) if d.is_dir() else []


def confirm(*, state_dir: str | None = None) -> list[str]:
    """Keep every change waiting for confirmation; returns their ids.

    Raises :class:`~kvmnet.ConfirmationError` when nothing waits (never applied, already
    confirmed, or rolled back because confirmation came too late).
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
    late = sorted(d.glob("*.rolled-back.json")) if d.is_dir() else []
    hint = f"; the last one, {pending_id(late[-1])}, was rolled back" if late else ""
    raise ConfirmationError(f"nothing waits for confirmation in {d}{hint}")


def _runner_for(data: dict[str, object]) -> Runner:
    netns = data.get("netns")
    return default_runner(netns if isinstance(netns, str) else None)


def watch(path: Path) -> int:
    """The watcher's loop: wait for confirmation or the deadline, then roll back."""
    from .apply import Journal, roll_back

    while True:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            log.info("%s confirmed or disarmed", path.name)
            return 0
        except json.JSONDecodeError:
            time.sleep(POLL)
            continue
        if time.time() >= float(data["deadline"]):
            break
        time.sleep(POLL)
    taken = path.with_name(path.name.replace(".pending.", ".rolling-back."))
    try:
        path.rename(taken)
    except FileNotFoundError:
        return 0  # confirmed at the last moment
    log.warning("no confirmation for %s: rolling back", data["id"])
    journal = Journal(
        started=[int(p) for p in data["started"]],
        stopped=[tuple(a) for a in data["stopped"]],
    )
    remaining = roll_back(
        _runner_for(data),
        Snapshot.from_json(json.dumps(data["snapshot"])),
        hints=tuple(_step_from(s) for s in data["hints"]),
        runtime=bool(data["restore_runtime"]),
        journal=journal,
    )
    data["remaining"] = remaining
    data["rolled_back_at"] = time.time()
    _write(taken, data)
    taken.rename(taken.with_name(taken.name.replace(".rolling-back.", ".rolled-back.")))
    log.warning(
        "rolled back %s%s", data["id"], f"; still differs: {remaining}" if remaining else ""
    )
    return 1 if remaining else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        return 2
    path = Path(args[0])
    handler = logging.FileHandler(path.with_name(pending_id(path) + ".log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger("kvmnet").addHandler(handler)
    logging.getLogger("kvmnet").setLevel(logging.INFO)
    return watch(path)


if __name__ == "__main__":
    sys.exit(main())

"""Undoing a plan, shared by :mod:`~kvmnet.hostnet.apply` (a failed check) and
:mod:`~kvmnet.hostnet.deadman` (no confirmation in time): the :class:`Journal` of what the
steps did, :func:`run_step` (rollback runs the backend's hint steps with it too) and
:func:`roll_back`. Both import it from here, so neither needs the other to undo a change.

Compare-and-set: a file is restored only while it holds what the snapshot or one of the
plan's own steps left there (`written_by`, by SHA-256); a file another writer changed after
kvmnet wrote it is left as it is and named in what still differs.
"""

from __future__ import annotations

import hashlib
import itertools
import shlex
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from .. import _log
from ..errors import CommandFailed
from .inspect import in_runner_netns, process_argv
from .model.plan import (
    RemoveFile,
    RunCommand,
    StartProcess,
    Step,
    StopProcess,
    WriteFile,
    step_command,
)
from .runners.runner import Runner
from .snapshot import (
    PROCESS_WAIT,
    Snapshot,
    compare,
    failed_command,
    restart_clients,
    restore_files,
    restore_runtime,
    stop_new_clients,
)

__all__ = [
    "FORK_GRACE",
    "Journal",
    "daemon_pid",
    "digest",
    "one_line",
    "roll_back",
    "run_step",
    "written_by",
]

log = _log.get(__name__)


@dataclass
class Journal:
    """What the steps did that rollback must undo beyond the snapshot: ``started`` holds
    (daemon PID, argv) of each process a StartProcess step launched, ``stopped`` the argv of
    each process a StopProcess step stopped (the snapshot's DHCP clients restart them)."""

    started: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    stopped: list[tuple[str, ...]] = field(default_factory=list)
    done: int = 0


_PIDFILE_FLAGS = ("-pf", "-p", "--pidfile")  # dhclient, udhcpc, udhcpc/dhcpcd


def _pidfile_pid(runner: Runner, argv: tuple[str, ...]) -> int | None:
    for flag, value in itertools.pairwise(argv):
        if flag in _PIDFILE_FLAGS:
            text = (runner.read_file(value) or b"").decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
    return None


def _processes_running(runner: Runner, argv: tuple[str, ...]) -> list[int]:
    pids = [int(p) for p in runner.list_dir("/proc") or () if p.isdigit()]
    return in_runner_netns(runner, [p for p in pids if process_argv(runner, p) == argv])


def _ppid(runner: Runner, pid: int) -> int | None:
    try:
        stat = (runner.read_file(f"/proc/{pid}/stat") or b"").decode(errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


#: How long a launcher that still runs may take to fork its daemon (dhclient forks at once
#: and the parent waits for the lease; udhcpc forks only once it has leased).
FORK_GRACE = 0.3


def daemon_pid(runner: Runner, argv: tuple[str, ...], launcher: int) -> int:
    """The PID of the daemon that ``runner.spawn(argv)`` (which returned ``launcher``) left
    running. A forking client's daemon is not the launcher: dhclient forks at once, its
    parent waiting for the lease and then exiting; udhcpc without -f forks once leased.
    In order: the process the pidfile (``-pf``/``-p``) names, if it runs ``argv``; a child
    of the launcher running ``argv``; another process running ``argv`` once the launcher has
    exited; the launcher itself, still running ``argv`` after FORK_GRACE (a client that does
    not fork, or has not yet). The launcher's PID when nothing is found in PROCESS_WAIT.

    Args:
        runner: the runner that spawned it (its /proc view).
        argv: the command line spawned.
        launcher: the PID ``spawn`` returned (or the one found before).

    Returns:
        The daemon's PID.
    """
    begin = time.monotonic()
    while True:
        from_file = _pidfile_pid(runner, argv)
        if from_file is not None and process_argv(runner, from_file) == argv:
            return from_file
        others = [p for p in _processes_running(runner, argv) if p != launcher]
        children = [p for p in others if _ppid(runner, p) == launcher]
        if children:
            return min(children)
        launcher_runs = process_argv(runner, launcher) == argv
        if others and not launcher_runs:
            return max(others)
        waited = time.monotonic() - begin
        if launcher_runs and waited >= FORK_GRACE:
            return launcher
        if waited >= PROCESS_WAIT:
            log.warning("no daemon found for `%s`; keeping PID %d", shlex.join(argv), launcher)
            return launcher
        time.sleep(0.05)


def run_step(runner: Runner, step: Step, journal: Journal) -> None:
    """Execute one step; raise CommandFailed (or OSError) when it fails.

    Args:
        runner: executes it.
        step: the step.
        journal: records what a process step started or stopped.

    Raises:
        CommandFailed: a command exited non-zero.
        OSError: a file could not be written or a program not started.
    """
    if isinstance(step, RunCommand):
        runner.run(step.argv)
    elif isinstance(step, WriteFile):
        runner.write_file(step.path, step.content.encode(), mode=step.mode)
    elif isinstance(step, RemoveFile):
        runner.remove_file(step.path)
    elif isinstance(step, StopProcess):
        # The PID is the one the plan saw when it was made; by now that process may be gone
        # and its number another process's (PIDs wrap, 32,768 by default): kill it only while
        # it still runs the same command line in the plan's namespace.
        if process_argv(runner, step.pid) == step.argv and in_runner_netns(runner, [step.pid]):
            runner.run(step.command)
            journal.stopped.append(step.argv)
        else:
            log.info("PID %d no longer runs `%s` here: nothing to stop", step.pid,
                     shlex.join(step.argv))  # fmt: skip
    elif isinstance(step, StartProcess):
        launcher = runner.spawn(step.argv)
        journal.started.append((daemon_pid(runner, step.argv, launcher), step.argv))
    journal.done += 1


def one_line(step: Step) -> str:
    """``step`` on one line for a message: a command as its argv, a file step as its verb
    and path (never the file's content, which `Step.describe` shows in full)."""
    argv = step_command(step)
    if argv is not None:
        return shlex.join(argv)
    if isinstance(step, WriteFile):
        return f"write {step.path}"
    if isinstance(step, RemoveFile):
        return f"remove {step.path}"
    return step.describe().splitlines()[0]


def digest(data: bytes | None) -> str | None:
    """SHA-256 of a file's bytes, hex (None for an absent file): what the dead-man file
    keeps of each content the plan writes, to recognise it without holding it twice."""
    return None if data is None else hashlib.sha256(data).hexdigest()


def written_by(steps: Iterable[Step]) -> dict[str, frozenset[str | None]]:
    """What each file step of a plan may leave at its path, as `digest` values: a
    WriteFile's content (encoded as `run_step` writes it), None for a RemoveFile.

    Args:
        steps: the plan's steps.

    Returns:
        Path -> the digests of every content the steps write there (None: removed).
    """
    out: dict[str, set[str | None]] = {}
    for step in steps:
        if isinstance(step, WriteFile):
            data = step.content.encode("utf-8", errors="surrogateescape")
            out.setdefault(step.path, set()).add(digest(data))
        elif isinstance(step, RemoveFile):
            out.setdefault(step.path, set()).add(None)
    return {path: frozenset(found) for path, found in out.items()}


def _changed_by_others(
    runner: Runner,
    snap: Snapshot,
    written: Mapping[str, Collection[str | None]],
    originals_at: str,
) -> tuple[list[str], list[str]]:
    """The snapshot's files that hold neither their snapshot content nor one the plan
    wrote: another writer changed them after kvmnet did. ``(paths, sentences)``."""
    paths: list[str] = []
    sentences: list[str] = []
    for f in snap.files:
        if f.path not in written:
            continue
        try:
            now = runner.read_file(f.path)
        except OSError as exc:
            paths.append(f.path)
            sentences.append(f"{f.path} could not be read to check it before restoring: {exc}")
            continue
        if now == f.content or digest(now) in written[f.path]:
            continue
        paths.append(f.path)
        sentences.append(
            f"{f.path} was changed by another writer after kvmnet wrote it: left as it is, "
            f"not restored over that change (the original is {originals_at})"
        )
    return paths, sentences


def roll_back(
    runner: Runner,
    snap: Snapshot,
    *,
    hints: tuple[Step, ...] = (),
    runtime: bool = True,
    journal: Journal | None = None,
    written: Mapping[str, Collection[str | None]] | None = None,
    originals_at: str = "in kvmnet's snapshot",
) -> list[str]:
    """Restore ``snap``: files, the backend's ``hints``, the DHCP clients the plan started
    stopped, links/addresses/routes (``runtime``), the snapshot's DHCP clients that no longer
    run started again.

    With ``written``, a file is restored only while it holds its snapshot content or one
    the plan wrote (compare-and-set): one changed by another writer since is left alone and
    reported. A rollback command that fails is logged and reported even when nothing is
    found to differ afterwards (a daemon may not have re-read the restored files).

    Args:
        runner: acts on the host (in the plan's network namespace).
        snap: what to restore.
        hints: backend steps run after the files are back.
        runtime: restore links, addresses and routes (False: the backend's daemon does).
        journal: what the steps started (their daemons are stopped too).
        written: `written_by` of the plan's steps (None: restore every file regardless).
        originals_at: where the snapshot's copy of a file left alone can be found, for
            the message (e.g. the dead-man file's path).

    Returns:
        What still differs or failed, one sentence each (empty when the restore is exact).
    """
    others: list[str] = []
    if written is not None:
        skip, others = _changed_by_others(runner, snap, written, originals_at)
        snap = replace(snap, files=tuple(f for f in snap.files if f.path not in skip))
    for sentence in others:
        log.warning("rollback: %s", sentence)
    errors = restore_files(runner, snap)
    for step in hints:
        try:
            run_step(runner, step, Journal())
        except CommandFailed as exc:
            errors.append(failed_command(one_line(step), exc.stderr, exc.returncode))
        except OSError as exc:
            errors.append(f"rollback step `{one_line(step)}` failed ({exc}): do it by hand")
    # Stopped before the links are restored: a client left on br0 would lease again there.
    processes = stop_new_clients(runner, snap, started=journal.started if journal else ())
    if runtime:
        errors += restore_runtime(runner, snap)
    remaining = compare(snap, runner) if runtime else _files_differ(runner, snap)
    # Restarted last, after the comparison: a DHCP client starting up may deconfigure its
    # link before it leases again, which is its business, not a failed restore.
    restarted, problems = restart_clients(runner, snap)
    processes += problems
    # A launcher that was forking while the first sweep ran leaves its daemon only now.
    processes += [p for p in stop_new_clients(runner, snap) if p not in processes]
    if restarted:
        log.info("DHCP clients restarted: %s", ", ".join(restarted))
    remaining += processes
    # Reported even when nothing differs: what compare() reads (links, routes, files) is
    # not a daemon's in-memory configuration, which a failed reload leaves as it was.
    for error in errors:
        log.warning("rollback: %s", error)
    return others + remaining + errors


def _files_differ(runner: Runner, snap: Snapshot) -> list[str]:
    return [f"{f.path} differs" for f in snap.files if runner.read_file(f.path) != f.content]

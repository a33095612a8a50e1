"""A host change you can read before it runs: `Plan` and its steps (pure, no I/O).

A backend returns a Plan; ``str(plan)`` shows every file it writes (full content and a
unified diff against what is there now), every command as an argv, in order, and every check
made afterwards. ``plan.apply()`` hands it to the one shared mechanism in
`kvmnet.hostnet.apply` (snapshot -> steps -> verify -> commit or roll back)::

    plan = br.enslave(nic, dry_run=True)
    print(plan)
    plan.apply(confirm_within=60)

Step types: `RunCommand`, `WriteFile`, `RemoveFile`,
`StopProcess`, `StartProcess`. `Check` is one verification.
"""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from ...core import _html
from ...errors import PlanFailed

if TYPE_CHECKING:
    from ..apply import ApplyResult
    from ..runners.runner import Runner

__all__ = [
    "STEP_TYPES",
    "Applier",
    "Check",
    "CheckKind",
    "Plan",
    "RemoveFile",
    "RunCommand",
    "StartProcess",
    "Step",
    "StopProcess",
    "WriteFile",
    "step_command",
    "step_kind",
]


@dataclass(frozen=True)
class RunCommand:
    """Run ``argv`` (through the plan's runner); ``why`` says what it is for."""

    argv: tuple[str, ...]
    why: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "argv", tuple(self.argv))

    def describe(self) -> str:
        return f"$ {shlex.join(self.argv)}" + (f"    # {self.why}" if self.why else "")


@dataclass(frozen=True)
class WriteFile:
    """Write ``content`` to ``path`` atomically with ``mode``; ``previous`` is what is there
    now (None: the file does not exist), kept for the diff."""

    path: str
    content: str
    mode: int = 0o644
    previous: str | None = None
    why: str = ""

    def diff(self) -> str:
        before = (self.previous or "").splitlines(keepends=True)
        after = self.content.splitlines(keepends=True)
        old = self.path if self.previous is not None else "/dev/null"
        lines = difflib.unified_diff(before, after, fromfile=old, tofile=self.path)
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def describe(self) -> str:
        verb = "create" if self.previous is None else "replace"
        why = f"    # {self.why}" if self.why else ""
        head = f"{verb} {self.path} (mode {self.mode:04o}){why}"
        body = "".join(f"    | {line}\n" for line in self.content.splitlines())
        diff = self.diff()
        if self.previous is not None and diff:
            body += "  diff:\n" + "".join(f"    {line}" for line in diff.splitlines(True))
        elif self.previous is not None:
            body += "  (unchanged)\n"
        return head + "\n" + body.rstrip("\n")


@dataclass(frozen=True)
class RemoveFile:
    """Remove ``path``; ``previous`` is its content now (restored on rollback)."""

    path: str
    previous: str | None = None
    why: str = ""

    def describe(self) -> str:
        return f"remove {self.path}" + (f"    # {self.why}" if self.why else "")


@dataclass(frozen=True)
class StopProcess:
    """Stop process ``pid`` (running ``argv``) with ``kill -SIGNAL``; rollback restarts
    ``argv`` detached."""

    pid: int
    argv: tuple[str, ...]
    signal: str = "TERM"
    why: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "argv", tuple(self.argv))

    @property
    def command(self) -> tuple[str, ...]:
        return ("kill", f"-{self.signal}", str(self.pid))

    def describe(self) -> str:
        what = f"$ {shlex.join(self.command)}    # stop `{shlex.join(self.argv)}`"
        return what + (f": {self.why}" if self.why else "")


@dataclass(frozen=True)
class StartProcess:
    """Start ``argv`` as a detached process (e.g. a DHCP client on the bridge)."""

    argv: tuple[str, ...]
    why: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "argv", tuple(self.argv))

    def describe(self) -> str:
        return f"$ {shlex.join(self.argv)} &" + (f"    # {self.why}" if self.why else "")


Step = RunCommand | WriteFile | RemoveFile | StopProcess | StartProcess

CheckKind = Literal[
    "link-exists",  # subject exists
    "link-absent",  # subject does not exist
    "link-up",  # subject is administratively up
    "port-of",  # subject is a port of bridge `value`
    "not-port",  # subject is nobody's port
    "has-address",  # subject carries address `value` (CIDR)
    "lacks-address",  # subject does not carry address `value`
    "has-mac",  # subject's MAC is `value`
    "default-route-via",  # a default route goes through subject (gateway `value` if given)
    "gateway-answers",  # `value` answers a ping sent out of subject
]


@dataclass(frozen=True)
class Check:
    """One thing verified after the steps ran, e.g. ``Check("port-of", "eth0", "br0")``."""

    kind: CheckKind
    subject: str
    value: str | None = None
    description: str = ""

    def describe(self) -> str:
        if self.description:
            return self.description
        return f"{self.kind} {self.subject}" + (f" {self.value}" if self.value else "")


#: Each step type by its short name (the HTML table's "kind", the dead-man file's "type").
STEP_TYPES: dict[str, type[Step]] = {
    "run": RunCommand,
    "write": WriteFile,
    "remove": RemoveFile,
    "stop": StopProcess,
    "start": StartProcess,
}


def step_kind(step: Step) -> str:
    """The short name of ``step``'s type in `STEP_TYPES`, e.g. ``"run"``."""
    return next(kind for kind, cls in STEP_TYPES.items() if isinstance(step, cls))


def step_command(step: Step) -> tuple[str, ...] | None:
    """The argv ``step`` runs: a command's or started process's own, a StopProcess's ``kill``
    command; None for a file step. (``Plan.commands`` and apply's error messages.)"""
    if isinstance(step, RunCommand | StartProcess):
        return step.argv
    if isinstance(step, StopProcess):
        return step.command
    return None


class Applier(Protocol):
    """What applies a plan: :func:`kvmnet.hostnet.apply.apply_plan`, handed to the plan by
    whoever builds it (the backends, :class:`~kvmnet.Bridge`) so that this value module does
    not import the machinery that acts on it."""

    def __call__(
        self,
        plan: Plan,
        /,
        *,
        verify: bool,
        confirm_within: float | None,
        retries: int,
        retry_interval: float,
        rollback_on_failure: bool,
        state_dir: str | None,
    ) -> ApplyResult: ...


@dataclass(frozen=True, eq=False)
class Plan:
    """What a backend will do to bridge (``action="enslave"``) or release a NIC.

    Attributes:
        backend: the name of the backend that made it (``"nmcli"``, ``"netplan"``...).
        action: ``"enslave"`` or ``"release"``.
        nic: the NIC moved into (or out of) the bridge.
        bridge: the bridge.
        steps: what runs, in order: files written or removed, commands, processes.
        checks: what verification checks afterwards.
        rollback_hints: backend steps that re-activate the old configuration after the
            files were restored (e.g. ``nmcli connection reload``).
        warnings: what the user should know before applying.
        dry_run: made with ``dry_run=True`` (nothing applied yet).
        restore_runtime: False: the backend's daemon restores the runtime state itself, so
            the shared rollback leaves links, addresses and routes alone.
        requires_confirmation: set by preflight when the SSH session runs over the NIC:
            applying needs ``confirm_within``.
        notes: e.g. which backend ``auto`` chose, and why.
        runner: executes it (None: it cannot be applied).
        applier: the mechanism ``apply()`` hands it to (`kvmnet.hostnet.apply.apply_plan`,
            set by whoever builds the plan, so the value does not import what acts on it).
    """

    backend: str
    action: Literal["enslave", "release"]
    nic: str
    bridge: str
    steps: tuple[Step, ...]
    checks: tuple[Check, ...] = ()
    rollback_hints: tuple[Step, ...] = ()
    warnings: tuple[str, ...] = ()
    dry_run: bool = False
    restore_runtime: bool = True
    requires_confirmation: bool = False  # set by preflight: the SSH session runs over the NIC
    notes: tuple[str, ...] = ()  # e.g. which backend "auto" chose, and why
    runner: Runner | None = field(default=None, repr=False)
    # Handed in by the builder with the runner (see Applier); None: it cannot be applied.
    applier: Applier | None = field(default=None, repr=False)

    @property
    def files(self) -> tuple[str, ...]:
        """Every path the plan writes or removes, in step order."""
        seen: dict[str, None] = {}
        for step in self.steps:
            if isinstance(step, WriteFile | RemoveFile):
                seen[step.path] = None
        return tuple(seen)

    @property
    def commands(self) -> tuple[tuple[str, ...], ...]:
        """Every argv the plan runs, in order (StopProcess as its ``kill`` command)."""
        return tuple(argv for step in self.steps if (argv := step_command(step)) is not None)

    def apply(
        self,
        *,
        verify: bool = True,
        confirm_within: float | None = None,
        retries: int = 10,
        retry_interval: float = 0.5,
        rollback_on_failure: bool = True,
        state_dir: str | None = None,
    ) -> ApplyResult:
        """Run the steps, verify the checks (with retries), roll back on failure.

        Options are checked before anything runs (no read of the host, no dead-man armed).

        Args:
            verify: run the checks after the steps (False: only run the steps).
            confirm_within: seconds: arms the dead-man timer: a detached watcher rolls back
                unless `kvmnet.hostnet.confirm` is called in time (None: no timer).
            retries: how many rounds of checks before giving up (1 or more).
            retry_interval: seconds between rounds (0 or more).
            rollback_on_failure: roll back when a step or the checks fail (False leaves the
                host as the failure left it, for debugging).
            state_dir: where the dead-man timer keeps its state (default: kvmnet's run
                directory).

        Returns:
            The `ApplyResult`: what ran and what was verified.

        Raises:
            InvalidInput: a bad option (InvalidType for a wrong type).
            RolledBack: a step or check failed; the host is as before.
            RollbackFailed: the rollback left something different, a rollback command
                failed, or a file another writer changed after kvmnet wrote it was left
                as it is (all listed; ``.originals`` holds the files as they were).
            StalePlan: a file the plan writes or removes changed since the plan was made
                (another writer); nothing ran: make the plan again.
            PlanFailed: the plan cannot be applied (made without a runner).
            PreflightRefused: the plan needs confirmation (the SSH session runs over the
                NIC) and ``confirm_within`` is None.
        """
        if self.applier is None:
            raise PlanFailed(
                f"{self!r} has no applier: build it through a backend, or pass it to "
                "kvmnet.hostnet.apply.apply_plan()"
            )
        return self.applier(
            self,
            verify=verify,
            confirm_within=confirm_within,
            retries=retries,
            retry_interval=retry_interval,
            rollback_on_failure=rollback_on_failure,
            state_dir=state_dir,
        )

    def __repr__(self) -> str:
        dry = " dry-run" if self.dry_run else ""
        return (
            f"<Plan {self.backend} {self.action} {self.nic!r} -> {self.bridge!r}{dry}: "
            f"{len(self.steps)} steps, {len(self.checks)} checks, {len(self.files)} files>"
        )

    def __str__(self) -> str:
        verb = "bridge" if self.action == "enslave" else "release"
        into = "into" if self.action == "enslave" else "from"
        lines = [f"# {self.backend}: {verb} {self.nic} {into} {self.bridge}"]
        if self.dry_run:
            lines.append("# dry run: nothing was changed")
        lines += [f"# {n}" for n in self.notes]
        lines += [f"# WARNING: {w}" for w in self.warnings]
        lines.append("")
        lines.append("steps:")
        for n, step in enumerate(self.steps, 1):
            text = step.describe().splitlines()
            lines.append(f"{n:3}. {text[0]}")
            lines += [f"     {t}" for t in text[1:]]
        if self.checks:
            lines += ["", "checks (retried until they pass, else everything is rolled back):"]
            lines += [f"  - {c.describe()}" for c in self.checks]
        if self.rollback_hints:
            lines += ["", "on rollback, after restoring the files:"]
            lines += [f"  {s.describe()}" for s in self.rollback_hints]
        return "\n".join(lines) + "\n"

    def _repr_html_(self) -> str:
        verb, into = ("bridge", "into") if self.action == "enslave" else ("release", "from")
        flags = [_html.badge(self.backend)]
        if self.dry_run:
            flags.append(_html.badge("dry run"))
        if self.requires_confirmation:
            flags.append(_html.badge("needs confirmation"))
        head = (
            f'<div style="font-weight:bold;margin:4px 0;text-align:left">Plan: {verb} '
            f"{_html.code(self.nic)} {into} {_html.code(self.bridge)} "
            f"{' '.join(f.markup for f in flags)}</div>"
        )
        notes = [_html.callout(n, kind="note") for n in self.notes]
        notes += [_html.callout(w, kind="warning") for w in self.warnings]
        if self.requires_confirmation:
            notes.append(
                _html.callout(
                    f"this SSH session runs over {self.nic}: apply with confirm_within=SECONDS "
                    "(the dead-man timer rolls back unless confirmed)",
                    kind="warning",
                )
            )
        steps = _html.table(
            ["#", "kind", "step"],
            [(n, step_kind(s), _html.Raw(_step_html(s))) for n, s in enumerate(self.steps, 1)],
            caption=f"{len(self.steps)} steps, in order",
            empty="(no step: nothing to do)",
        )
        checks = _html.table(
            ["#", "check", "kind"],
            [(n, c.describe(), _html.code(c.kind)) for n, c in enumerate(self.checks, 1)],
            caption="checks (retried until they pass, else everything is rolled back)",
        )
        parts = [head, *notes, steps, checks]
        if self.rollback_hints:
            hints = [(_html.Raw(_step_html(s)),) for s in self.rollback_hints]
            parts.append(_html.table(["step"], hints, caption="on rollback, after the files"))
        return _html.section("", *parts)


def _step_html(step: Step) -> str:
    """One step for the plan's HTML table: the command or path in code, the why, the diff."""
    why = (
        f'<div style="font-style:italic;white-space:normal"># {_html.escape(step.why)}</div>'
        if step.why
        else ""
    )
    if isinstance(step, WriteFile):
        verb = "create" if step.previous is None else "replace"
        head = f"{verb} {_html.code(step.path)} (mode {step.mode:04o})"
        changes = step.diff()
        body = _html.diff(changes) if changes else "<div>(unchanged)</div>"
        return f"<div>{head}</div>{why}{body}"
    if isinstance(step, RemoveFile):
        head = f"remove {_html.code(step.path)}"
        if step.previous is None:
            return f"<div>{head}</div>{why}"
        gone = difflib.unified_diff(
            step.previous.splitlines(), [], fromfile=step.path, tofile="/dev/null", lineterm=""
        )
        removed = "\n".join(gone)
        return f"<div>{head}</div>{why}{_html.diff(removed)}"
    if isinstance(step, StopProcess):
        stopped = f"<div>stops {_html.code(shlex.join(step.argv))}</div>"
        return f"<div>{_html.code('$ ' + shlex.join(step.command))}</div>{stopped}{why}"
    detached = " &" if isinstance(step, StartProcess) else ""
    return f"<div>{_html.code('$ ' + shlex.join(step.argv) + detached)}</div>{why}"

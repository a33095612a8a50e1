"""What a guest move will do and did: `LanPlan` and `LanResult` (values only).

Built by `kvmnet.lan.onboard` (``plan_bridge_guest``, ``plan_nat_guest``, or
``host.bridge_guest(..., dry_run=True)``); ``str()`` and ``_repr_html_()`` show the host
plan, the guest's XML diff and the checks; ``LanPlan.apply()`` runs it through
`kvmnet.lan.onboard.apply_lan_plan`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from .._defaults import DEFAULT_ADDRESS_TIMEOUT
from ..core import _html
from ..errors import KvmnetError

if TYPE_CHECKING:
    from ..core.change import Change
    from ..host import Host
    from ..hostnet.apply import ApplyResult
    from ..hostnet.model.plan import Plan
    from ..hostnet.runners.runner import Runner
    from ..virt.addresses import GuestAddress

__all__ = ["DEFAULT_ADDRESS_TIMEOUT", "LanApplier", "LanPlan", "LanResult"]


class LanApplier(Protocol):
    """What runs a :class:`LanPlan` on a host: :func:`kvmnet.lan.onboard.apply_lan_plan`, handed
    to the plan by the planner that builds it, so this value module does not import the
    machinery that acts on it."""

    def __call__(
        self,
        plan: LanPlan,
        host: Host,
        /,
        *,
        progress: Callable[[int, int, str], None] | None,
        state_dir: str | None,
    ) -> LanResult: ...


@dataclass(frozen=True)
class LanPlan:
    """Everything one guest move will do, computed without changing anything.

    ``action`` is "bridge" (onto the LAN) or "nat" (back behind the host). ``host_plan`` is
    the host-bridge plan (enslave for "bridge", release for "nat"), None when the host is
    left alone. ``change`` is the guest's domain XML change as a dry run.
    """

    action: Literal["bridge", "nat"]
    domain: str
    bridge: str
    change: Change
    host_plan: Plan | None = None
    network: str | None = None
    iface: str | None = None  # the moved interface's MAC
    live: bool | None = None
    bounce_link: bool = True
    confirm_within: float | None = None
    address_timeout: float = DEFAULT_ADDRESS_TIMEOUT
    notes: tuple[str, ...] = ()
    host: Host | None = field(default=None, repr=False, compare=False)
    # Plans the host step again right before it runs (the release after the guest's tap has
    # left the bridge); None: ``host_plan`` runs as shown.
    replan_host: Callable[[], Plan] | None = field(default=None, repr=False, compare=False)
    # Where the address wait reads and probes the bridge (the backend's runner; None: here).
    runner: Runner | None = field(default=None, repr=False, compare=False)
    # Handed in by the planner with ``host`` (see LanApplier); None: it cannot be applied.
    applier: LanApplier | None = field(default=None, repr=False, compare=False)

    @property
    def checks(self) -> tuple[str, ...]:
        """What is verified: the host plan's checks, then the guest's."""
        host = [c.describe() for c in self.host_plan.checks] if self.host_plan else []
        return (*host, *self.guest_checks)

    @property
    def guest_checks(self) -> tuple[str, ...]:
        target = self.bridge if self.action == "bridge" else f"network {self.network}"
        out = [f"{self.domain}'s interface {self.iface} is on {target} (persistent XML)"]
        if self.live is not False:
            out.append(f"... and in the live XML when {self.domain} is running")
        if self.address_timeout > 0:
            out.append(
                f"{self.domain} reports an address on {self.iface} (waits up to "
                f"{self.address_timeout:g} s; a timeout is reported, not fatal)"
            )
        return tuple(out)

    def _host_heading(self) -> str:
        if self.host_plan is None:
            return "host: nothing to do"
        return (
            f"host: {self.host_plan.backend} {self.host_plan.action} "
            f"{self.host_plan.nic} {'into' if self.action == 'bridge' else 'from'} {self.bridge}"
        )

    def __repr__(self) -> str:
        host = "host untouched" if self.host_plan is None else f"host {self.host_plan.action}"
        return f"<LanPlan {self.action} {self.domain!r} -> {self._target()}: {host}, guest switch>"

    def _target(self) -> str:
        return self.bridge if self.action == "bridge" else (self.network or "default")

    def __str__(self) -> str:
        order = ["host", "guest"] if self.action == "bridge" else ["guest", "host"]
        lines = [
            f"# put {self.domain} {'on bridge' if self.action == 'bridge' else 'on NAT network'}"
            f" {self._target()}"
        ]
        lines += [f"# {n}" for n in self.notes]
        for number, part in enumerate(order, 1):
            lines.append("")
            if part == "host":
                lines.append(f"## {number}. {self._host_heading()}")
                if self.host_plan is not None:
                    lines.append(str(self.host_plan).rstrip("\n"))
                    if self.confirm_within:
                        lines.append(
                            f"# dead-man timer: rolled back unless confirmed within "
                            f"{self.confirm_within:g} s (`kvmnet confirm`)"
                        )
            else:
                bounce = ", link bounced" if self.bounce_link else ""
                lines.append(
                    f"## {number}. guest: {self.domain} interface {self.iface} -> "
                    f"{self._target()} ({_live_words(self.live)}{bounce})"
                )
                lines.append(self.change.diff().rstrip("\n") or "(no XML change)")
        lines += ["", f"## {len(order) + 1}. guest checks (the host's are listed with its plan)"]
        lines += [f"  - {c}" for c in self.guest_checks]
        return "\n".join(lines) + "\n"

    def _repr_html_(self) -> str:
        where = "on bridge" if self.action == "bridge" else "on NAT network"
        head = (
            f'<div style="font-weight:bold;margin:4px 0;text-align:left">LanPlan: put '
            f"{_html.code(self.domain)} {where} {_html.code(self._target())} "
            f"{_mode_badge(self.action)}</div>"
        )
        notes = [_html.callout(n, kind="note") for n in self.notes]
        host = [self.host_plan._repr_html_()] if self.host_plan is not None else []
        if self.host_plan is not None and self.confirm_within:
            host.append(
                _html.callout(
                    f"dead-man timer: rolled back unless confirmed within "
                    f"{self.confirm_within:g} s (kvmnet confirm)",
                    kind="warning",
                )
            )
        bounce = ", link bounced" if self.bounce_link else ""
        guest_title = (
            f"guest: {self.domain} interface {self.iface} -> {self._target()} "
            f"({_live_words(self.live)}{bounce})"
        )
        guest = _html.diff(self.change.diff() or "(no XML change)", caption="domain XML")
        parts = [(self._host_heading(), host), (guest_title, [guest])]
        if self.action == "nat":
            parts.reverse()
        numbered = [
            _html.section(f"{n}. {title}", *body, nested=True)
            for n, (title, body) in enumerate(parts, 1)
        ]
        checks = _html.table(
            ["#", "check"],
            list(enumerate(self.guest_checks, 1)),
            caption=f"{len(parts) + 1}. guest checks (the host's are listed with its plan)",
        )
        return _html.section("", head, *notes, *numbered, checks)

    def apply(
        self,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        state_dir: str | None = None,
    ) -> LanResult:
        """Run the plan: host then guest (bridge), or guest then host (nat); then the address.

        ``progress(done, total, step)`` is told of each step. Raises the host plan's error
        (the guest untouched) or `PartiallyApplied` when a later step fails.
        """
        if self.host is None or self.applier is None:
            raise KvmnetError(f"{self!r} has no host connection: build it with plan_bridge_guest")
        return self.applier(self, self.host, progress=progress, state_dir=state_dir)


@dataclass(frozen=True)
class LanResult:
    """What a guest move did.

    Attributes:
        plan: the plan it ran (for a dry run: the plan to read).
        applied: False: a dry run.
        change: the guest's `Change`, once made.
        host_result: what the host change did, when there was one.
        addresses: the guest's addresses found after the move.
        pending_confirmation: the dead-man id when the host change waits for
            `kvmnet.hostnet.confirm`.
        notes: what kvmnet decided on the way.
    """

    plan: LanPlan
    applied: bool
    change: Change | None = None
    host_result: ApplyResult | None = None
    addresses: tuple[GuestAddress, ...] = ()
    pending_confirmation: str | None = None
    notes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        if not self.applied:
            return f"<LanResult dry run of {self.plan!r}>"
        addrs = ", ".join(a.address for a in self.addresses) or "no address yet"
        return f"<LanResult {self.plan.domain!r} on {self.plan._target()}: {addrs}>"

    def __str__(self) -> str:
        if not self.applied:
            return str(self.plan)
        p = self.plan
        lines = [f"{p.domain}: interface {p.iface} is on {p._target()}"]
        if p.host_plan is not None and self.host_result is not None:
            verb = "bridged into" if p.action == "bridge" else "released from"
            lines.append(f"host: {p.host_plan.nic} {verb} {p.bridge} ({p.host_plan.backend})")
        if self.pending_confirmation:
            lines.append(f"host: {self.pending_confirmation}")
        if self.change is not None:
            lines += [f"guest: {n}" for n in self.change.notes]
        if self.addresses:
            lines.append("address: " + ", ".join(str(a) for a in self.addresses))
        lines += self.notes
        return "\n".join(lines) + "\n"

    def _repr_html_(self) -> str:
        if not self.applied:
            return self.plan._repr_html_()
        p = self.plan
        host: object = "untouched"
        if p.host_plan is not None and self.host_result is not None:
            verb = "bridged into" if p.action == "bridge" else "released from"
            checked = "verified" if self.host_result.verified else "NOT verified"
            host = _html.Raw(
                f"{_html.code(p.host_plan.nic)} {verb} {_html.code(p.bridge)} "
                f"({_html.escape(p.host_plan.backend)}, {checked})"
            )
        facts: list[tuple[str, object]] = [
            ("guest", _html.code(p.domain)),
            ("interface", _html.code(p.iface)),
            ("now on", _html.Raw(f"{_html.code(p._target())} {_mode_badge(p.action)}")),
            ("host", host),
        ]
        parts = [_html.keyvalues(facts, caption=f"LanResult: {p.domain} on {p._target()}")]
        if self.pending_confirmation:
            parts.append(_html.callout(self.pending_confirmation, kind="warning", label="confirm:"))
        guest_notes = self.change.notes if self.change is not None else ()
        parts += [_html.callout(n, kind="note", label="guest:") for n in guest_notes]
        parts += [_html.callout(n, kind="note") for n in self.notes]
        parts.append(
            _html.table(
                ["MAC", "address", "from"],
                [
                    (
                        _html.code(a.mac),
                        _html.code(a.address + (f"/{a.prefix}" if a.prefix is not None else "")),
                        a.source,
                    )
                    for a in self.addresses
                ],
                caption="addresses",
                empty="(no address yet)",
            )
        )
        if self.change is not None and self.change.diff():
            parts.append(
                '<details style="text-align:left"><summary>domain XML diff</summary>'
                f"{_html.diff(self.change.diff())}</details>"
            )
        return _html.section("", *parts)


def _live_words(live: bool | None) -> str:
    return {
        None: "persistent, and live if running",
        True: "persistent and live",
        False: "persistent only (next boot)",
    }[live]


def _mode_badge(action: str) -> str:
    """The mode a guest ends up in, as the HTML views' coloured badge."""
    return _html.badge("bridged" if action == "bridge" else "nat").markup

"""Change: what an interface edit did (or, dry run, would do) to a domain.

Usage::

    change = dom.use_bridge("br0", dry_run=True)
    print(change.diff())          # unified diff of the persistent domain XML
    change.applied_live, change.applied_config, change.notes
"""

from __future__ import annotations

from dataclasses import dataclass

from .domainxml import GuestInterface

__all__ = ["Change"]


# repr=False: the class writes its own (the generated one would be compiled for nothing).
@dataclass(frozen=True, repr=False)
class Change:
    """One edit of one domain's interfaces.

    Attributes:
        domain: the domain's name.
        action: what was done: ``"use_bridge"``, ``"use_nat"``, ``"add_interface"``...
        before: the persistent definition's XML before the edit (for a domain with no
            persistent definition: the live XML).
        after: the same XML after the edit.
        interface: the interface as it is after the edit (for a removal: as it was).
        applied_live: the running guest was changed too.
        applied_config: the persistent definition was redefined.
        dry_run: nothing was applied: the change was only computed.
        notes: what kvmnet decided on the way (elements dropped, a live change skipped
            and why).
        uri: the libvirt URI of the host the domain lives on.
    """

    domain: str
    action: str
    before: str
    after: str
    interface: GuestInterface | None = None
    applied_live: bool = False
    applied_config: bool = False
    dry_run: bool = False
    notes: tuple[str, ...] = ()
    uri: str | None = None

    @property
    def changed(self) -> bool:
        """False when the edit left the XML as it was (e.g. already on that bridge)."""
        return self.before != self.after

    @property
    def applied(self) -> bool:
        """True when anything was applied: the running guest or the definition."""
        return self.applied_live or self.applied_config

    def diff(self, *, context: int = 3) -> str:
        """Unified diff of the domain XML, before vs after ("" when nothing changed).

        Args:
            context: lines of context around each change.

        Returns:
            The diff as text.
        """
        import difflib  # listings never diff: not on every CLI start

        name = self.domain
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"{name}.xml (before)",
                tofile=f"{name}.xml (after)",
                n=context,
            )
        )

    def summary(self) -> str:
        """One line: what, where, applied how.

        Returns:
            The line, e.g. ``"web1: bridge br0 (52:54:00:..): applied live and config"``.
        """
        what = self.interface.describe() if self.interface is not None else ""
        if self.dry_run:
            how = "dry run, nothing applied"
        elif not self.changed:
            how = "nothing to change"
        elif self.applied_live and self.applied_config:
            how = "running guest and persistent definition"
        elif self.applied_live:
            how = "running guest only"
        elif self.applied_config:
            how = "persistent definition only"
        else:
            how = "not applied"
        return f"{self.action} on domain {self.domain!r}: {what} [{how}]"

    def __str__(self) -> str:
        lines = [self.summary(), *(f"note: {n}" for n in self.notes)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        flags = []
        if self.dry_run:
            flags.append("dry run")
        if self.applied_live:
            flags.append("live")
        if self.applied_config:
            flags.append("config")
        if not self.changed:
            flags.append("no-op")
        notes = f", {len(self.notes)} notes" if self.notes else ""
        return (
            f"<Change {self.action} {self.domain!r} {'+'.join(flags) or 'nothing applied'}{notes}>"
        )

    def _repr_html_(self) -> str:
        from . import _html  # only notebooks render HTML: not on every CLI start

        facts = _html.keyvalues(
            [
                ("domain", self.domain),
                ("action", self.action),
                ("interface", self.interface.describe() if self.interface else None),
                ("dry run", "yes" if self.dry_run else "no"),
                ("running guest changed", "yes" if self.applied_live else "no"),
                ("persistent definition changed", "yes" if self.applied_config else "no"),
                *(("note", n) for n in self.notes),
            ],
            caption=f"Change: {self.action} on {self.domain!r}",
        )
        return _html.section("", facts, _html.diff(self.diff() or "(no change)"))

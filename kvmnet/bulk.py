"""Many guests in one call: every guest on a network (or a bridge), a list of guests, or
every guest of the host. This is kvmnet's one bulk API; ``Host.use_bridge_all`` and
``Host.use_nat_all`` are aliases of :func:`bridge_many` and :func:`nat_many`.

::

    changes = bridge_many(host, "br0", on_network="default", progress=show)
    changes = nat_many(host, "default", ["web1", "web2"])
    changes = bridge_many(host, "br0", every=True)      # = host.use_bridge_all(None, "br0")

Guests are selected from one listing of the host. With ``on_network``/``on_bridge`` the
interface on that network or bridge is the one that moves (every such interface of the
guest); without, a named guest's first interface (``every=True``: every guest's first).
``progress(done, total, domain)`` is told of each guest (`kvmnet.core.progress`).

Every guest is read and its edit made before the first write: a refusal known in advance (a
guest without the interface to move, a running macvtap guest, ...) is raised as that guest's
own error, naming it, and no guest has changed. Then the writes: it stops at the first
failure libvirt reports, the guests switched before it stay switched, and `PartiallyApplied`
names them, the one that failed and the ones not tried.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from .core import validate
from .core.domainxml import iface_selector
from .core.progress import Progress, track
from .errors import (
    ConnectionLost,
    InvalidInput,
    InvalidType,
    KvmnetError,
    NetworkNotFound,
    PartiallyApplied,
)

if TYPE_CHECKING:
    from .core.change import Change
    from .core.network import Network
    from .host import Host
    from .virt.domain import Domain, _Switch

__all__ = ["Target", "bridge_many", "nat_many", "select", "switch_each"]


@dataclass(frozen=True)
class Target:
    """One guest interface a bulk call moves: ``mac`` None means the guest's first."""

    domain: Domain
    mac: str | None

    @property
    def label(self) -> str:
        return self.domain.name if self.mac is None else f"{self.domain.name} ({self.mac})"


def _check_host(host: object) -> Host:
    """``host`` if it is a `kvmnet.Host`, checked before anything is read from it.

    Raises:
        InvalidType: anything else (a URI string: open it with ``kvmnet.connect`` first).
    """
    # By what a bulk call uses of it, on the class (no property runs): importing kvmnet.host
    # here would make an import cycle (its use_bridge_all imports this module).
    kind = type(host)
    if not all(callable(getattr(kind, m, None)) for m in ("domains", "network", "networks")) or (
        not hasattr(kind, "connection")
    ):
        raise InvalidType(
            f"host must be a kvmnet.Host (from kvmnet.connect(uri)), got "
            f"{validate.shown(host)} ({type(host).__name__})"
        )
    return cast("Host", host)


def _domain_names(names: object) -> list[str] | None:
    """`validate.domain_names`, whose message for a wrong item names the whole value too: a
    bytearray or a range iterates into numbers, and "got 98 (int)" alone hides what was given."""
    if not isinstance(names, Iterable) or isinstance(names, (str, bytes)):
        return validate.domain_names(names)  # None, or refused as a whole already
    items = names if isinstance(names, (list, tuple)) else list(names)  # a generator: once
    for item in items:
        if not isinstance(item, str):
            raise InvalidType(
                f"domain names must be a list of names such as ['web1'] or None, got "
                f"{validate.shown(names)} ({type(names).__name__}) holding "
                f"{validate.shown(item)} ({type(item).__name__})"
            )
    return validate.domain_names(items)


def check_selection(
    names: Iterable[str] | None = None,
    *,
    on_network: str | None = None,
    on_bridge: str | None = None,
    every: bool = False,
) -> tuple[list[str] | None, str | None, str | None, bool]:
    """Check which guests a bulk call selects, before any host is read.

    Args:
        names: guest names (a list; one str is refused, not split into characters).
        on_network: select every interface on this libvirt network.
        on_bridge: select every interface on this host bridge.
        every: select every guest's first interface; goes with no other selector.

    Returns:
        ``(names, on_network, on_bridge, every)``, checked and normalised.

    Raises:
        InvalidInput: a malformed value, ``every=True`` with another selector, or no
            selector at all (every guest of a host is too broad to guess).
    """
    wanted = _domain_names(names)
    every = validate.flag(every, "every")
    if on_network is not None:
        on_network = validate.network_name(on_network)
    if on_bridge is not None:
        # Only compared with the guests' <source bridge=...>: a bridge made by hand with an
        # odd name can still select its guests (it is not written anywhere).
        on_bridge = validate.ifname(on_bridge, what="bridge", existing=True)
    selectors = wanted is not None or on_network is not None or on_bridge is not None
    if every and selectors:
        raise InvalidInput(
            "every=True selects every guest of the host: give it without guest names, "
            "on_network= or on_bridge="
        )
    if not every and not selectors:
        raise InvalidInput(
            "a bulk switch needs guest names, on_network=, on_bridge= or every=True: "
            "every guest of the host would be too broad to guess"
        )
    return wanted, on_network, on_bridge, every


def select(
    host: Host,
    names: Iterable[str] | None = None,
    *,
    on_network: str | None = None,
    on_bridge: str | None = None,
    every: bool = False,
) -> list[Target]:
    """The interfaces a bulk call moves: see the module docstring. One listing of the host
    (and one of its transient domains when some guests run).

    ``names`` is a list of names (one str is refused, not split into characters).
    ``every=True`` selects every guest of the host and goes with no other selector.

    Raises:
        InvalidInput: a bad argument (InvalidType: ``host`` is not a `kvmnet.Host`).
        DomainNotFound: a named guest is not on the host.
        NetworkNotFound: ``on_network`` selects nothing and no libvirt network has that name
            (a typo; a network that is gone still selects the guests that name it).
    """
    host = _check_host(host)
    wanted, on_network, on_bridge, every = check_selection(
        names, on_network=on_network, on_bridge=on_bridge, every=every
    )
    domains = host.domains()
    if wanted is not None:
        by_name = {d.name: d for d in domains}
        missing = [n for n in wanted if n not in by_name]
        if missing:
            from .errors import DomainNotFound

            raise DomainNotFound(
                f"no domain named {validate.listed(map(validate.shown, missing))} on "
                f"{host.uri}; "
                f"`kvmnet -c {host.uri} domains` lists them"
            )
        domains = [by_name[n] for n in dict.fromkeys(wanted)]
    hint_states(host, domains)
    if on_network is None and on_bridge is None:
        return [Target(d, None) for d in domains]
    kind, source = ("network", on_network) if on_network is not None else ("bridge", on_bridge)
    targets = []
    for dom in domains:
        # The persistent view too: a guest that boots onto the network is on it for this call.
        seen: dict[str, None] = {}
        for iface in (*dom.interfaces, *dom.persistent_interfaces):
            if iface.type == kind and iface.source == source and iface.mac is not None:
                seen[iface.mac] = None
        targets += [Target(dom, mac) for mac in seen]
    if not targets and on_network is not None:
        _check_network_named(host, on_network)
    return targets


def _check_network_named(host: Host, name: str) -> None:
    """NetworkNotFound when no libvirt network is called ``name``: a selection by a network
    that does not exist (a typo) is an error, as `nat_many`'s target network is, not an
    empty result. Asked only when nothing was selected: guests still naming a network that
    was undefined are selected (moving them off it is how they are repaired)."""
    try:
        host.network(name)
    except NetworkNotFound as exc:
        known = ", ".join(sorted(n.name for n in host.networks())) or "none"
        raise NetworkNotFound(
            f"no libvirt network named {name!r} on {host.uri} (networks: {known}), and no "
            f"guest interface is on one: check the name given as on_network"
        ) from exc


def hint_states(host: Host, domains: Sequence[Domain]) -> None:
    """Tell each domain what the listing said: running or not, and (one more listing, only
    when some run) persistent or not. Spares each guest's edit those libvirt calls."""
    transient: set[str] | None = None
    for dom in domains:
        running = dom._handle.listed_active()
        dom._running_hint = running
        if running:
            if transient is None:
                transient = host.connection.transient_names()
            dom._persistent_hint = dom.name not in transient


def _run(
    targets: Sequence[Target],
    action: str,
    switch: str,
    progress: Progress | None,
    change_one: _ChangeOne,
) -> list[Change]:
    # First every guest is read and edited, nothing written: a refusal known before any write
    # is that guest's own error (it names the guest), and no guest has changed.
    ready = [change_one.prepare(target) for target in targets]
    done: list[Change] = []
    seen: set[str] = set()
    steps = list(zip(targets, ready, strict=True))
    for n, (target, prepared) in enumerate(track(steps, progress, label=lambda s: s[0].label)):
        try:
            name = target.domain.name
            # A driver with device calls replaces the whole device, with no compare-and-set:
            # an edit planned in the first pass (seconds ago, on a big host) would overwrite
            # what another writer changed on that interface since. So there (and while not
            # yet known: a fresh connection's first guest) the guest is read and edited again
            # right before its write, and the first pass only refuses up front. Without device
            # calls the guarded define compares and redoes, so the plan is kept. A second
            # interface of a guest changed a moment ago is edited on the fresh XML too.
            stale = len(steps) > 1 and target.domain.host.connection.device_calls is not False
            if not change_one.dry_run and (name in seen or stale):
                # Persistence as the first pass found it, as a listing's hint: it changes only
                # by a define or undefine, and then the write itself fails (a CONFIG update of
                # a transient guest is refused), so the re-read is the XML only.
                target.domain._persistent_hint = prepared.persistent
                prepared = change_one.prepare(target)
            seen.add(name)
            done.append(change_one.finish(target, prepared))
        except KvmnetError as exc:
            rest = [t.label for t in targets[n + 1 :]]
            changed = [c.domain for c in done if c.applied]
            # A daemon that died mid-change was asked again on a fresh connection: if the
            # failing guest's change stands in full, it counts as switched.
            if isinstance(exc, ConnectionLost) and exc.outcome == "applied":
                changed.append(target.domain.name)
            raise PartiallyApplied(
                f"{action} stopped at {target.label}: {exc}. Switched already: "
                f"{', '.join(changed) or 'none'}; not tried: {', '.join(rest) or 'none'}. "
                f"Fix the cause and run it again for the rest ({switch})",
                done=tuple(changed),
            ) from exc
    return done


def switch_each(
    targets: Sequence[Target],
    verb: str,
    name: str,
    *,
    live: bool | None,
    dry_run: bool,
    progress: Progress | None,
    bounce_link: bool = False,
) -> list[Change]:
    """Switch every target onto bridge (``verb="bridge"``) or network ``name``, in order.

    The one bulk mechanism behind `bridge_many` and `nat_many` (and so behind their aliases
    ``Host.use_bridge_all``/``use_nat_all``). Every target is read and edited first, then
    the writes are made.

    Returns:
        One `Change` per target.

    Raises:
        KvmnetError: a refusal known before any write (e.g. `InterfaceNotFound`: a guest has
            no interface to move; `LiveChangeUnsupported`: a running macvtap guest), as that
            guest's own call raises it: no guest has changed.
        NetworkNotFound: ``verb="nat"`` and no libvirt network is called ``name``.
        PartiallyApplied: at the first failure during the writes, naming the guests
            switched, the one that failed and the ones not tried.
    """
    kind = "bridge" if verb == "bridge" else "network"
    # Checked here once, not by each guest's edit (use_bridge and use_nat check theirs).
    name = validate.ifname(name, what="bridge") if kind == "bridge" else validate.network_name(name)
    live = validate.optional_flag(live, "live")
    dry_run = validate.flag(dry_run, "dry_run")
    bounce_link = validate.flag(bounce_link, "bounce_link")
    # The network once for every guest (use_nat looks it up per call).
    net = targets[0].domain.host.network(name) if kind == "network" and targets else None
    change_one = _ChangeOne(verb, name, net, live=live, dry_run=dry_run, bounce_link=bounce_link)
    return _run(targets, f"moving guests to {kind} {name}", "already moved are skipped",
                progress, change_one)  # fmt: skip


class _ChangeOne:
    """Prepares and applies one target's switch (a class, not a lambda, so mypy sees the
    options)."""

    def __init__(
        self,
        verb: str,
        name: str,
        net: Network | None,
        *,
        live: bool | None,
        dry_run: bool,
        bounce_link: bool,
    ) -> None:
        self.verb, self.name, self.net = verb, name, net
        self.live, self.dry_run, self.bounce_link = live, dry_run, bounce_link
        self.new_type = "bridge" if verb == "bridge" else "network"
        self.action = "use_bridge" if verb == "bridge" else "use_nat"
        # What use_nat passes the edit (a <virtualport> goes on a network libvirt routes).
        # The domain module is loaded by now: the targets are its Domains.
        from .virt.domain import forward_of

        self.forward = forward_of(net) if net is not None else None

    def prepare(self, target: Target) -> _Switch:
        # The options were checked once for the whole call (bridge_many, nat_many): each guest
        # goes straight to the edit, its own MAC checked as use_bridge would.
        return target.domain._prepare_switch(
            self.action,
            self.new_type,
            self.name,
            iface_selector(target.mac),
            self.live,
            device_xml_later=True,
            forward=self.forward,
        )

    def finish(self, target: Target, prepared: _Switch) -> Change:
        dom = target.domain
        change = dom._finish_switch(prepared, self.live, self.dry_run, self.bounce_link)
        return dom._nat_noted(change, self.net) if self.net is not None else change


def _options(
    live: object, dry_run: object, bounce_link: object, progress: object
) -> tuple[bool | None, bool, bool]:
    validate.progress(progress)
    return (
        validate.optional_flag(live, "live"),
        validate.flag(dry_run, "dry_run"),
        validate.flag(bounce_link, "bounce_link"),
    )


def bridge_many(
    host: Host,
    bridge: str,
    names: Iterable[str] | None = None,
    *,
    on_network: str | None = None,
    every: bool = False,
    live: bool | None = None,
    dry_run: bool = False,
    bounce_link: bool = False,
    progress: Progress | None = None,
) -> list[Change]:
    """Put many guests' interfaces on ``bridge``: the named guests, every guest with an
    interface on libvirt network ``on_network`` (e.g. ``"default"``: everyone behind NAT),
    or (``every=True``) every guest's first interface.

    Every argument is checked before the host is read (`InvalidInput`; `InvalidType` when
    ``host`` is not a `kvmnet.Host`). Every guest is read and edited before the first write:
    a refusal known then (a guest with no interface to move: `InterfaceNotFound`; a running
    macvtap guest: `LiveChangeUnsupported`) is raised as that guest's own error and no guest
    has changed. An ``on_network`` that selects nothing and names no libvirt network raises
    `NetworkNotFound` (a typo), as `nat_many` does for its network.

    At the first failure during the writes it stops: the guests switched before it stay
    switched, and `PartiallyApplied` names them, the one that failed and the ones not tried."""
    host = _check_host(host)
    bridge = validate.ifname(bridge, what="bridge")
    live, dry_run, bounce_link = _options(live, dry_run, bounce_link, progress)
    targets = select(host, names, on_network=on_network, every=every)
    return switch_each(targets, "bridge", bridge, live=live, dry_run=dry_run,
                       progress=progress, bounce_link=bounce_link)  # fmt: skip


def nat_many(
    host: Host,
    network: str = "default",
    names: Iterable[str] | None = None,
    *,
    on_bridge: str | None = None,
    every: bool = False,
    live: bool | None = None,
    dry_run: bool = False,
    bounce_link: bool = False,
    progress: Progress | None = None,
) -> list[Change]:
    """Put many guests' interfaces on libvirt network ``network``: the named guests, every
    guest with an interface on host bridge ``on_bridge``, or (``every=True``) every guest's
    first interface. Fails as :func:`bridge_many` fails; a missing ``network`` raises
    :class:`~kvmnet.NetworkNotFound` before any guest changes.

    Every argument is checked before the host is read (`InvalidInput`; `InvalidType` when
    ``host`` is not a `kvmnet.Host`)."""
    host = _check_host(host)
    network = validate.network_name(network)
    live, dry_run, bounce_link = _options(live, dry_run, bounce_link, progress)
    check_selection(names, on_bridge=on_bridge, every=every)
    host.network(network)  # a missing network fails before any guest changes
    targets = select(host, names, on_bridge=on_bridge, every=every)
    return switch_each(targets, "nat", network, live=live, dry_run=dry_run,
                       progress=progress, bounce_link=bounce_link)  # fmt: skip

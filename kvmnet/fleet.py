"""Bulk switches on several hosts at once: one thread per host, each running :mod:`kvmnet.bulk`.

::

    with kvmnet.connect(uri1) as h1, kvmnet.connect(uri2) as h2:
        per_host = fleet.bridge_many([h1, h2], "br0", on_network="default")

libvirt-python releases the GIL while it waits for a daemon, so hosts served by separate
daemons (remote hosts, or libvirtds of their own) answer at the same time: the wall time is
close to the slowest host's alone rather than the sum. In-process drivers (``test:///``) do
their work under the GIL and gain nothing.

Every argument, and on ``nat_many`` the network on every host, is checked before any host
changes. Each host then stops at its own first failure, as :func:`kvmnet.bulk.bridge_many`
does; the other hosts run to their end. If any host failed, one
:class:`~kvmnet.PartiallyApplied` names, per host, what was switched and why it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from . import _log, bulk
from .core import validate
from .errors import InvalidInput, InvalidType, KvmnetError, PartiallyApplied

if TYPE_CHECKING:
    from .core.change import Change
    from .host import Host

__all__ = ["bridge_many", "nat_many"]

log = _log.get(__name__)


def _check_hosts(hosts: object) -> tuple[Host, ...]:
    """``hosts`` as a tuple of distinct open Hosts; InvalidInput otherwise (InvalidType for
    a wrong type: not a list, or an item that is not a Host)."""
    from .host import Host

    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, Iterable):
        raise InvalidType(
            f"hosts must be a list of kvmnet.Host objects (from kvmnet.connect), got "
            f"{validate.shown(hosts)} ({type(hosts).__name__})"
        )
    found = tuple(hosts)
    if not found:
        raise InvalidInput("hosts is empty: pass the kvmnet.Host objects to switch guests on")
    for host in found:
        if not isinstance(host, Host):
            raise InvalidType(
                f"hosts must hold kvmnet.Host objects (from kvmnet.connect), got "
                f"{validate.shown(host)} ({type(host).__name__})"
            )
    if len({id(h) for h in found}) != len(found):
        # One connection driven by two threads would switch the same guests twice at once.
        raise InvalidInput("hosts names the same Host twice: pass each host once")
    return found


def _on_each(
    hosts: Sequence[Host], action: str, switch: Callable[[Host], list[Change]]
) -> list[list[Change]]:
    """``switch(host)`` for every host, concurrently; results in the order of ``hosts``."""
    if len(hosts) == 1:
        return [switch(hosts[0])]
    from concurrent.futures import ThreadPoolExecutor  # only several hosts need threads

    def attempt(host: Host) -> list[Change] | KvmnetError:
        try:
            return switch(host)
        except KvmnetError as exc:  # the other hosts go on; reported together below
            return exc

    with ThreadPoolExecutor(len(hosts), thread_name_prefix="kvmnet-fleet") as pool:
        outcomes = list(pool.map(attempt, hosts))
    failures = [(h, o) for h, o in zip(hosts, outcomes, strict=True) if isinstance(o, Exception)]
    if not failures:
        return [o for o in outcomes if not isinstance(o, Exception)]
    done: list[str] = []
    for host, outcome in zip(hosts, outcomes, strict=True):
        if isinstance(outcome, PartiallyApplied):
            done += [f"{name} on {host.uri}" for name in outcome.done]
        elif not isinstance(outcome, Exception):
            done += [f"{c.domain} on {host.uri}" for c in outcome if c.applied]
    finished = [h.uri for h, o in zip(hosts, outcomes, strict=True) if not isinstance(o, Exception)]
    stops = "; ".join(f"{host.uri}: {exc}" for host, exc in failures)
    raise PartiallyApplied(
        f"{action} failed on {len(failures)} of {len(hosts)} hosts. {stops}. Hosts done in "
        f"full: {', '.join(finished) or 'none'}. Run it again on the failed hosts once "
        "their cause is fixed (guests already switched are skipped)",
        done=tuple(done),
    ) from failures[0][1]


def bridge_many(
    hosts: Iterable[Host],
    bridge: str,
    names: Iterable[str] | None = None,
    *,
    on_network: str | None = None,
    every: bool = False,
    live: bool | None = None,
    dry_run: bool = False,
    bounce_link: bool = False,
) -> list[list[Change]]:
    """:func:`kvmnet.bulk.bridge_many` on every host at once.

    Args:
        hosts: the open :class:`~kvmnet.Host` objects, each once.
        bridge: the host bridge, named alike on every host.
        names: the guests to move on each host (a guest missing on a host fails that host).
        on_network: move every interface on this libvirt network (e.g. ``"default"``); a
            name that selects nothing and is no network on a host fails that host (a typo).
        every: move every guest's first interface; goes with no other selector (one of
            ``names``, ``on_network`` or ``every`` is needed, as for the one-host call).
        live: as :meth:`kvmnet.Domain.use_bridge`.
        dry_run: compute and return the changes, apply none.
        bounce_link: as :meth:`kvmnet.Domain.use_bridge`.

    Returns:
        Per host, in the order of ``hosts``, one :class:`~kvmnet.Change` per interface moved.

    Raises:
        InvalidInput: a bad argument, before any host is read.
        PartiallyApplied: some host stopped at a failure (the others ran to their end);
            ``done`` names every guest switched, as ``"NAME on URI"``.
    """
    found = _check_hosts(hosts)
    bridge = validate.ifname(bridge, what="bridge")
    wanted, on_network, _, every = bulk.check_selection(names, on_network=on_network, every=every)
    live = validate.optional_flag(live, "live")
    dry_run = validate.flag(dry_run, "dry_run")
    bounce_link = validate.flag(bounce_link, "bounce_link")

    def switch(host: Host) -> list[Change]:
        return bulk.bridge_many(host, bridge, wanted, on_network=on_network, every=every,
                                live=live, dry_run=dry_run, bounce_link=bounce_link)  # fmt: skip

    return _on_each(found, f"moving guests to bridge {bridge}", switch)


def nat_many(
    hosts: Iterable[Host],
    network: str = "default",
    names: Iterable[str] | None = None,
    *,
    on_bridge: str | None = None,
    every: bool = False,
    live: bool | None = None,
    dry_run: bool = False,
    bounce_link: bool = False,
) -> list[list[Change]]:
    """:func:`kvmnet.bulk.nat_many` on every host at once.

    Args:
        hosts: the open :class:`~kvmnet.Host` objects, each once.
        network: the libvirt network, present on every host.
        names: the guests to move on each host.
        on_bridge: move every interface on this host bridge.
        every: move every guest's first interface; goes with no other selector (one of
            ``names``, ``on_bridge`` or ``every`` is needed).
        live: as :meth:`kvmnet.Domain.use_nat`.
        dry_run: compute and return the changes, apply none.
        bounce_link: as :meth:`kvmnet.Domain.use_nat`.

    Returns:
        Per host, in the order of ``hosts``, one :class:`~kvmnet.Change` per interface moved.

    Raises:
        InvalidInput: a bad argument, before any host is read.
        NetworkNotFound: ``network`` is missing on a host, before any host changes.
        PartiallyApplied: as :func:`bridge_many`.
    """
    found = _check_hosts(hosts)
    network = validate.network_name(network)
    wanted, _, on_bridge, every = bulk.check_selection(names, on_bridge=on_bridge, every=every)
    live = validate.optional_flag(live, "live")
    dry_run = validate.flag(dry_run, "dry_run")
    bounce_link = validate.flag(bounce_link, "bounce_link")
    for host in found:
        host.network(network)  # missing on any host: nothing changes anywhere

    def switch(host: Host) -> list[Change]:
        return bulk.nat_many(host, network, wanted, on_bridge=on_bridge, every=every,
                             live=live, dry_run=dry_run, bounce_link=bounce_link)  # fmt: skip

    return _on_each(found, f"moving guests to network {network}", switch)

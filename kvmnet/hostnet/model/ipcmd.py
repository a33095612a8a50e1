"""``ip`` argument lists shared by the iproute2 backend and rollback (pure)."""

from __future__ import annotations

from .state import IpAddress, IpRoute

__all__ = ["SELF_MANAGED", "address_args", "bridge_args", "movable_routes", "route_args"]

# Routes the kernel or router advertisements maintain by themselves.
SELF_MANAGED = {"kernel", "ra"}


def address_args(addr: IpAddress, dev: str) -> tuple[str, ...]:
    """``ip addr add`` argv for ``addr`` on ``dev``, keeping its lifetimes."""
    argv: list[str] = ["ip"]
    if addr.family == 6:
        argv.append("-6")
    argv += ["addr", "add", addr.cidr]
    if addr.broadcast:
        argv += ["brd", addr.broadcast]
    argv += ["dev", dev]
    if addr.valid_lft is not None:
        argv += ["valid_lft", str(addr.valid_lft)]
        preferred = addr.preferred_lft if addr.preferred_lft is not None else addr.valid_lft
        argv += ["preferred_lft", str(min(preferred, addr.valid_lft))]
    if addr.family == 6:
        # The address moves between this host's own links: duplicate address detection
        # would hold it tentative (answering nothing) for a second, for no one to find.
        argv.append("nodad")
    return tuple(argv)


def bridge_args(*, stp: bool, forward_delay: int) -> tuple[str, ...]:
    """``type bridge stp_state S forward_delay D`` for ``ip link add/set``; ``forward_delay``
    in centiseconds, as the kernel counts it."""
    return ("type", "bridge", "stp_state", "1" if stp else "0", "forward_delay", str(forward_delay))


def route_args(route: IpRoute, dev: str, verb: str = "replace") -> tuple[str, ...]:
    """``ip route replace`` argv for ``route`` moved to ``dev`` (same gateway, metric, proto)."""
    argv: list[str] = ["ip"]
    if route.family == 6:
        argv.append("-6")
    argv += ["route", verb, route.dst]
    if route.gateway:
        argv += ["via", route.gateway]
    argv += ["dev", dev]
    if route.protocol and route.protocol not in ("boot", "unspec"):
        argv += ["proto", route.protocol]
    if route.scope and route.scope not in ("global", "universe"):
        argv += ["scope", route.scope]
    if route.metric is not None:
        argv += ["metric", str(route.metric)]
    if route.prefsrc:
        argv += ["src", route.prefsrc]
    if route.onlink:
        argv.append("onlink")
    return tuple(argv)


def movable_routes(routes: tuple[IpRoute, ...], dev: str) -> tuple[IpRoute, ...]:
    """Routes through ``dev`` that do not follow its addresses by themselves."""
    return tuple(r for r in routes if r.dev == dev and r.protocol not in SELF_MANAGED)

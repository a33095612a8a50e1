"""``kvmnet domains``, ``bridge``, ``nat``, ``add-nic``, ``remove-nic``: guest interfaces.

::

    kvmnet domains --json
    kvmnet bridge web1 br0 --dry-run
    kvmnet nat web1 default --config
    kvmnet add-nic web1 --bridge br0
    kvmnet remove-nic web1 52:54:00:ab:cd:ef
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from . import onboard
from ._common import (
    CommandError,
    add_json_option,
    add_live_options,
    command_uri,
    iface_selector,
    print_json,
)

if TYPE_CHECKING:
    from ..core.change import Change
    from ..host import Host

__all__ = ["register"]


def _iface_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--iface",
        metavar="MAC|INDEX",
        help="which interface: a MAC or an index as `kvmnet domains` lists (default: the first)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add domains, bridge, nat, add-nic and remove-nic."""
    p = sub.add_parser("domains", help="list guests, their interfaces and modes")
    add_json_option(p)
    p.set_defaults(handler=_domains)

    p = sub.add_parser("bridge", help="put a guest interface on a host bridge (the LAN)")
    p.add_argument("domain", metavar="DOMAIN")
    p.add_argument("bridge", metavar="BRIDGE")
    _iface_arg(p)
    add_live_options(p)
    add_json_option(p)
    p.add_argument(
        "--bounce",
        action="store_true",
        help="after a live switch, take the guest's link down for 1 s so it renews DHCP",
    )
    onboard.add_bridge_options(p)
    p.set_defaults(handler=_bridge)

    p = sub.add_parser("nat", help="put a guest interface on a libvirt network (NAT)")
    p.add_argument("domain", metavar="DOMAIN")
    p.add_argument("network", metavar="NETWORK", nargs="?", default="default")
    _iface_arg(p)
    add_live_options(p)
    add_json_option(p)
    p.add_argument("--bounce", action="store_true", help="as for `bridge`")
    onboard.add_nat_options(p)
    p.set_defaults(handler=_nat)

    p = sub.add_parser("add-nic", help="add an interface (with a MAC unique on the host)")
    p.add_argument("domain", metavar="DOMAIN")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--bridge", metavar="BRIDGE")
    target.add_argument("--network", metavar="NETWORK")
    p.add_argument("--mac", metavar="MAC", help="default: a generated 52:54:00 MAC")
    p.add_argument("--model", metavar="MODEL", default="virtio", help="default: virtio")
    add_live_options(p)
    add_json_option(p)
    p.set_defaults(handler=_add_nic)

    p = sub.add_parser("remove-nic", help="remove an interface")
    p.add_argument("domain", metavar="DOMAIN")
    p.add_argument("iface", metavar="MAC|INDEX")
    add_live_options(p)
    add_json_option(p)
    p.set_defaults(handler=_remove_nic)


def _connect(args: argparse.Namespace) -> Host:
    from ..host import connect

    return connect(command_uri(args))


def _domains(args: argparse.Namespace) -> int:
    with _connect(args) as host:
        listing = [
            (dom.name, dom.state, dom.interfaces, bool(dom.pending_changes()))
            for dom in host.domains()
        ]
    if args.json:
        from ._json import interface_json

        print_json(
            [
                {
                    "name": name,
                    "state": state,
                    "next_boot_differs": differs,
                    "interfaces": [interface_json(i) for i in ifaces],
                }
                for name, state, ifaces, differs in listing
            ]
        )
        return 0
    table = [("DOMAIN", "STATE", "MAC", "TYPE", "SOURCE", "MODE")]
    for name, state, ifaces, differs in listing:
        shown = state + (" (next boot differs)" if differs else "")
        if not ifaces:
            table.append((name, shown, "-", "-", "-", "-"))
        for i in ifaces:
            table.append((name, shown, i.mac or "-", i.type, i.source or "-", str(i.mode)))
    widths = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _report(change: Change, args: argparse.Namespace) -> int:
    if args.json:
        from ._json import change_json

        print_json(change_json(change))
        return 0
    if change.dry_run:
        diff = change.diff()
        sys.stdout.write(diff if diff else f"{change.domain}: no change\n")
        return 0
    # The library logs every note as a warning (stderr); the summary is the result.
    print(change.summary())
    return 0


def _bridge(args: argparse.Namespace) -> int:
    if onboard.wants_onboard(args):
        return onboard.run_bridge(args)
    with _connect(args) as host:
        change = host.domain(args.domain).use_bridge(
            args.bridge,
            iface_selector(args.iface),
            live=args.live,
            dry_run=args.dry_run,
            bounce_link=args.bounce,
        )
    return _report(change, args)


def _nat(args: argparse.Namespace) -> int:
    if onboard.wants_onboard(args):
        return onboard.run_nat(args)
    with _connect(args) as host:
        change = host.domain(args.domain).use_nat(
            args.network,
            iface_selector(args.iface),
            live=args.live,
            dry_run=args.dry_run,
            bounce_link=args.bounce,
        )
    return _report(change, args)


def _add_nic(args: argparse.Namespace) -> int:
    with _connect(args) as host:
        change = host.domain(args.domain).add_interface(
            bridge=args.bridge,
            network=args.network,
            mac=args.mac,
            model=args.model,
            live=args.live,
            dry_run=args.dry_run,
        )
    return _report(change, args)


def _remove_nic(args: argparse.Namespace) -> int:
    selector = iface_selector(args.iface)
    if selector is None:
        raise CommandError("remove-nic needs a MAC or an index", status=2)
    with _connect(args) as host:
        change = host.domain(args.domain).remove_interface(
            selector, live=args.live, dry_run=args.dry_run
        )
    return _report(change, args)

"""``kvmnet bridge-all`` and ``nat-all``: many guests in one command, with a progress bar.

::

    kvmnet bridge-all br0 --on-network default        # everyone behind NAT onto the LAN
    kvmnet bridge-all br0 web1 web2 web3 --dry-run
    kvmnet nat-all --on-bridge br0                     # and back

The bar is drawn on stderr when it is a terminal; piped, only the results are printed.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ._common import CommandError, add_json_option, add_live_options, command_uri, print_json

if TYPE_CHECKING:
    from ..core.change import Change

__all__ = ["register"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("domains", metavar="DOMAIN", nargs="*", help="guests to switch (by name)")
    add_live_options(p, many=True)
    p.add_argument("--bounce", action="store_true", help="bounce each link after a live switch")
    add_json_option(p)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add bridge-all and nat-all."""
    p = sub.add_parser(
        "bridge-all",
        help="put many guests on a host bridge (named, or all on a network)",
        description="Switch the named guests' first interface, or every interface on "
        "NETWORK (--on-network), to host bridge BRIDGE.",
    )
    p.add_argument("bridge", metavar="BRIDGE")
    _common(p)
    p.add_argument("--on-network", metavar="NETWORK", help="every guest interface on NETWORK")
    p.set_defaults(handler=_bridge_all)

    p = sub.add_parser(
        "nat-all",
        help="put many guests on a libvirt network (named, or all on a bridge)",
        description="Switch the named guests' first interface, or every interface on host "
        "bridge BRIDGE (--on-bridge), to libvirt network NETWORK (--network, default: default).",
    )
    _common(p)
    p.add_argument("--network", default="default", help="the NAT network (default: default)")
    p.add_argument("--on-bridge", metavar="BRIDGE", help="every guest interface on BRIDGE")
    p.set_defaults(handler=_nat_all)


def _report(changes: list[Change], args: argparse.Namespace) -> int:
    if args.json:
        from ._json import change_json

        print_json([change_json(c) for c in changes])
        return 0
    for change in changes:
        if args.dry_run:
            diff = change.diff()
            sys.stdout.write(diff if diff else f"{change.domain}: no change\n")
        else:
            print(change.summary())
    if not changes:
        print("no guest matched: nothing to do")
    return 0


def _names(args: argparse.Namespace, selector: str | None, flag: str) -> list[str] | None:
    if not args.domains and selector is None:
        raise CommandError(f"{args.command} needs DOMAIN names or {flag}", status=2)
    return list(args.domains) or None


def _bridge_all(args: argparse.Namespace) -> int:
    from ..bulk import bridge_many
    from ..host import connect
    from .progress import ProgressBar

    names = _names(args, args.on_network, "--on-network NETWORK")
    with connect(command_uri(args)) as host, ProgressBar(f"-> {args.bridge}") as bar:
        changes = bridge_many(host, args.bridge, names, on_network=args.on_network,
                              live=args.live, dry_run=args.dry_run, bounce_link=args.bounce,
                              progress=bar)  # fmt: skip
    return _report(changes, args)


def _nat_all(args: argparse.Namespace) -> int:
    from ..bulk import nat_many
    from ..host import connect
    from .progress import ProgressBar

    names = _names(args, args.on_bridge, "--on-bridge BRIDGE")
    with connect(command_uri(args)) as host, ProgressBar(f"-> {args.network}") as bar:
        changes = nat_many(host, args.network, names, on_bridge=args.on_bridge,
                           live=args.live, dry_run=args.dry_run, bounce_link=args.bounce,
                           progress=bar)  # fmt: skip
    return _report(changes, args)

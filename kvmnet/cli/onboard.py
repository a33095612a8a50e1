"""Options of ``kvmnet bridge`` / ``kvmnet nat`` that join the host and the guest in one plan.

::

    kvmnet bridge web1 br0 --create-from eno1 --backend nmcli --confirm-within 60
    kvmnet nat web1 --release eno1 --backend nmcli

``bridge ... --create-from NIC --backend B``: create BRIDGE from NIC when it is missing, then
switch the guest (persistent and live, link bounced), then wait for its new address.
``nat ... --release NIC --backend B``: the guest back on NAT, then NIC out of the bridge.
The commands in :mod:`kvmnet.cli.domains` hand over to :func:`run_bridge` / :func:`run_nat`
when these options are given.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import (
    BACKEND_NAMES,
    command_uri,
    command_words,
    confirm_command,
    iface_selector,
    print_json,
    seconds,
    seconds_or_zero,
)

if TYPE_CHECKING:
    from ..host import Host
    from ..hostnet.backends.base import Backend
    from ..lan.onboard import LanResult
    from ..topology import Topology

__all__ = ["add_bridge_options", "add_nat_options", "run_bridge", "run_nat", "wants_onboard"]


def _host_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        default="auto",
        help="how the host's network is configured (default auto: whatever owns NIC, said "
        "in the plan); the host is the machine -c URI names, over SSH for qemu+ssh://",
    )
    group.add_argument("--root", metavar="DIR", help="where a file backend reads and writes")
    group.add_argument("--netns", metavar="NS", help="act inside this network namespace")
    group.add_argument(
        "--confirm-within",
        metavar="SECONDS",
        type=seconds,
        help="the host change rolls back by itself unless `kvmnet confirm` comes in time",
    )
    group.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="CHECK",
        help="override a host preflight refusal by name (repeatable)",
    )
    group.add_argument(
        "--dhcp-client",
        metavar="COMMAND",
        type=command_words,
        help="start this DHCP client on the result",
    )
    group.add_argument(
        "--wait",
        metavar="SECONDS",
        type=seconds_or_zero,
        default=60.0,
        help="wait this long for the guest's new address (default 60; 0: don't)",
    )
    group.add_argument(
        "--no-bounce",
        dest="bounce_link",
        action="store_false",
        help="do not bounce the guest's link after the live switch",
    )
    group.add_argument(
        "--svg",
        metavar="FILE",
        help="draw the host before and after the plan into FILE (SVG; '-': stdout)",
    )
    group.add_argument("--state-dir", metavar="DIR", help=argparse.SUPPRESS)


def add_bridge_options(parser: argparse.ArgumentParser) -> None:
    """``--create-from NIC --backend B`` and friends, for ``kvmnet bridge``."""
    group = parser.add_argument_group(
        "guest and host in one step",
        "create BRIDGE from NIC when it is missing, switch the guest (link bounced), "
        "then wait for its new address",
    )
    group.add_argument("--create-from", metavar="NIC", help="the host NIC to bridge into BRIDGE")
    _host_options(group)


def add_nat_options(parser: argparse.ArgumentParser) -> None:
    """``--release NIC --backend B`` and friends, for ``kvmnet nat``."""
    group = parser.add_argument_group(
        "guest and host in one step",
        "after the guest is back on NAT, take NIC out of the bridge it was on "
        "(refused while other guests use it: --force bridge-in-use)",
    )
    group.add_argument("--release", metavar="NIC", help="the host NIC to release from the bridge")
    _host_options(group)


def wants_onboard(args: argparse.Namespace) -> bool:
    """True when the command line asks for the combined host + guest form."""
    return bool(getattr(args, "create_from", None) or getattr(args, "release", None))


def _backend(args: argparse.Namespace, host: Host) -> Backend:
    """The backend on the Host's machine (this one, or the qemu+ssh:// host over SSH).

    The test driver's guests belong to no machine: with it the host side stays on this one
    (labs and demos pair it with --netns)."""
    if host.uri.startswith("test:"):
        from ..hostnet.onmachine import backend_on, runner_for
        from ..hostnet.runners.machine import LOCAL

        runner = runner_for(LOCAL, netns=args.netns)
        return backend_on(runner, args.backend, root=args.root, netns=args.netns)
    return host.backend(args.backend, root=args.root, netns=args.netns)


def _svg_after(before: Topology | None, result: LanResult, args: argparse.Namespace) -> None:
    """``--svg FILE``: the host as it was before the call, with what the plan moves marked."""
    if before is not None:
        from .show import write_svg

        write_svg(args.svg, before.after(result).svg())


def _print(result: LanResult, args: argparse.Namespace) -> int:
    if args.json and args.svg != "-":
        from ._json import lan_result_json

        print_json(lan_result_json(result))
        return 0
    if args.svg == "-":
        return 0  # stdout holds the picture; the plan went into it
    print(result, end="")
    if result.pending_confirmation:
        command = confirm_command(command_uri(args))
        print(
            f"confirm within {args.confirm_within:g} s with `{command}` "
            "(from a new session), or the host rolls back by itself"
        )
    return 0


def run_bridge(args: argparse.Namespace) -> int:
    """``kvmnet bridge DOMAIN BRIDGE --create-from NIC --backend B ...``."""
    from ..host import connect
    from ..lan.onboard import bridge_guest
    from .progress import ProgressBar  # it imports logging: not on every start

    with connect(command_uri(args)) as host:
        backend = _backend(args, host)
        before = host.topology(runner=backend.runner) if args.svg else None
        with ProgressBar(f"{args.domain} -> {args.bridge}") as bar:
            result = bridge_guest(
                host,
                args.domain,
                bridge=args.bridge,
                nic=args.create_from,
                backend=backend,
                iface=iface_selector(args.iface),
                live=args.live,
                bounce_link=args.bounce_link,
                confirm_within=args.confirm_within,
                address_timeout=args.wait,
                force=tuple(args.force),
                dhcp_client=args.dhcp_client or (),
                dry_run=args.dry_run,
                progress=bar,
                state_dir=args.state_dir,
            )
    _svg_after(before, result, args)
    return _print(result, args)


def run_nat(args: argparse.Namespace) -> int:
    """``kvmnet nat DOMAIN [NETWORK] --release NIC --backend B ...``."""
    from ..host import connect
    from ..lan.onboard import nat_guest
    from .progress import ProgressBar  # it imports logging: not on every start

    with connect(command_uri(args)) as host:
        backend = _backend(args, host)
        before = host.topology(runner=backend.runner) if args.svg else None
        with ProgressBar(f"{args.domain} -> NAT") as bar:
            result = nat_guest(
                host,
                args.domain,
                args.network,
                iface=iface_selector(args.iface),
                live=args.live,
                bounce_link=args.bounce_link,
                release=args.release,
                backend=backend,
                force=tuple(args.force),
                dhcp_client=args.dhcp_client or (),
                confirm_within=args.confirm_within,
                address_timeout=args.wait,
                dry_run=args.dry_run,
                progress=bar,
                state_dir=args.state_dir,
            )
    _svg_after(before, result, args)
    return _print(result, args)

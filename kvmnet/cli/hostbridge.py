"""``kvmnet host-bridge``, ``host-release`` and ``confirm``: bridge a host NIC safely.

::

    kvmnet host-bridge eth0 br0 --backend iproute2 --dry-run
    kvmnet host-bridge eth0 br0 --backend nmcli --confirm-within 60
    kvmnet confirm
    kvmnet -c qemu+ssh://root@hv2/system host-bridge eno1 br0 --confirm-within 60
    kvmnet -c qemu+ssh://root@hv2/system confirm      # a new SSH connection proves it

They act on the machine the URI names, found as every command finds it: ``-c URI``, else
``$LIBVIRT_DEFAULT_URI``, else ``qemu:///system``: this machine for a local URI, that one
over SSH for ``qemu+ssh://`` (:mod:`kvmnet.hostnet.runners.sshrunner`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import (
    BACKEND_NAMES,
    CommandError,
    add_json_option,
    command_uri,
    command_words,
    confirm_command,
    first_uri,
    print_json,
    seconds,
    whole_number,
)

if TYPE_CHECKING:
    from ..hostnet.model.plan import Plan
    from ..hostnet.runners.runner import Runner

__all__ = ["register"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("nic", metavar="NIC", help="the host NIC, e.g. enp0s20f0u1")
    parser.add_argument("bridge", metavar="BRIDGE", help="the bridge, e.g. br0")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_NAMES,
        help="how that machine's network is configured (default auto: whatever owns NIC, "
        "said in the plan)",
    )
    parser.add_argument("--root", metavar="DIR", help="where a file backend reads and writes")
    parser.add_argument("--netns", metavar="NS", help="act inside this network namespace")
    parser.add_argument(
        "--confirm-within",
        metavar="SECONDS",
        type=seconds,
        help="roll back by itself unless `kvmnet confirm` comes within SECONDS",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="CHECK",
        help="override a preflight refusal (wireless, enslaved, libvirt, br-netfilter, ssh)",
    )
    parser.add_argument(
        "--dhcp-client",
        metavar="COMMAND",
        type=command_words,
        help="start this DHCP client afterwards, e.g. 'dhclient br0'",
    )
    parser.add_argument(
        "--svg",
        metavar="FILE",
        help="draw the machine before and after the plan into FILE (SVG; '-': stdout)",
    )
    parser.add_argument("--state-dir", metavar="DIR", help=argparse.SUPPRESS)
    add_json_option(parser)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add host-bridge, host-release and confirm."""
    bridge = sub.add_parser(
        "host-bridge",
        help="move a host NIC and its addresses into a bridge",
        description="Bridge NIC into BRIDGE: BRIDGE gets NIC's MAC, addresses and routes. "
        "Plans, checks, applies, verifies, rolls back on failure.",
    )
    _common(bridge)
    bridge.add_argument("--stp", action="store_true", help="STP on (about 30 s outage)")
    bridge.add_argument("--forward-delay", type=whole_number, default=0, metavar="SECONDS")
    bridge.set_defaults(handler=_host_bridge)
    release = sub.add_parser(
        "host-release",
        help="the way back: addresses onto the NIC again, bridge removed when empty",
    )
    _common(release)
    release.set_defaults(handler=_host_release)
    confirm = sub.add_parser("confirm", help="keep a change applied with --confirm-within")
    confirm.add_argument("--state-dir", metavar="DIR", help=argparse.SUPPRESS)
    add_json_option(confirm)
    confirm.set_defaults(handler=_confirm)


def _runner(args: argparse.Namespace, *, netns: str | None = None) -> Runner:
    """A runner on the machine the command's URI names (`command_uri`)."""
    from ..hostnet.onmachine import runner_for
    from ..hostnet.runners.machine import machine_of

    return runner_for(machine_of(command_uri(args)), netns=netns)


def _close(runner: Runner) -> None:
    close = getattr(runner, "close", None)
    if callable(close):
        close()  # an SSH runner's shared connection


def _plan(args: argparse.Namespace, action: str, runner: Runner) -> Plan:
    from ..hostnet.nic import Bridge, HostNic
    from ..hostnet.onmachine import backend_on

    backend = backend_on(runner, args.backend, root=args.root, netns=args.netns)
    nic, br = HostNic(args.nic, backend=backend), Bridge(args.bridge, backend=backend)
    dhcp = args.dhcp_client or ()
    force, within = tuple(args.force), args.confirm_within
    if action == "release":
        return br.release(nic, dry_run=True, dhcp_client=dhcp, force=force, confirm_within=within)
    return br.enslave(
        nic,
        dry_run=True,
        stp=args.stp,
        forward_delay=args.forward_delay,
        dhcp_client=dhcp,
        force=force,
        confirm_within=within,
    )


def _apply(args: argparse.Namespace, action: str) -> int:
    runner = _runner(args, netns=args.netns)
    try:
        plan = _plan(args, action, runner)
        if args.svg:
            _picture(args, plan, runner)
            if args.svg == "-" and args.dry_run:
                return 0  # stdout holds the picture
        if args.json:
            return _apply_json(args, plan)
        if args.dry_run:
            print(plan, end="")
            return 0
        import dataclasses  # not at import: it loads inspect, too much for `kvmnet --help`

        # Planned as a dry run to show it before running it; it is not one, so don't say so.
        print(dataclasses.replace(plan, dry_run=False), end="")
        result = plan.apply(confirm_within=args.confirm_within, state_dir=args.state_dir)
    finally:
        _close(runner)
    print(f"applied and verified ({result.attempts} check rounds)")
    if result.pending_confirmation:
        command = confirm_command(command_uri(args))
        print(
            f"confirm within {args.confirm_within:g} s with `{command}` "
            "(from a new session), or it rolls back by itself"
        )
    return 0


def _picture(args: argparse.Namespace, plan: Plan, runner: Runner) -> None:
    """``--svg FILE``: the machine as it is, with what the plan moves marked."""
    from ..hostnet.runners.sshrunner import runner_machine
    from ..topology.read import read_machine
    from .show import write_svg

    machine = runner_machine(runner)
    remote = machine is not None and not machine.is_local
    label = command_uri(args) if remote else first_uri(args) or "this machine"
    write_svg(args.svg, read_machine(runner, label).after(plan).svg())


def _apply_json(args: argparse.Namespace, plan: Plan) -> int:
    import dataclasses

    from ._json import apply_result_json

    if args.dry_run:
        print_json(apply_result_json(plan, None))
        return 0
    result = plan.apply(confirm_within=args.confirm_within, state_dir=args.state_dir)
    print_json(apply_result_json(dataclasses.replace(plan, dry_run=False), result))
    return 0


def _host_bridge(args: argparse.Namespace) -> int:
    if args.forward_delay and not args.stp:
        raise CommandError("--forward-delay needs --stp (without STP it is 0)", status=2)
    return _apply(args, "enslave")


def _host_release(args: argparse.Namespace) -> int:
    return _apply(args, "release")


def _confirm(args: argparse.Namespace) -> int:
    from ..hostnet.deadman import confirm
    from ..hostnet.remotedeadman import confirm_on
    from ..hostnet.runners.sshrunner import runner_machine

    runner = _runner(args)
    try:
        machine = runner_machine(runner)
        if machine is not None and not machine.is_local:
            ids = confirm_on(runner, state_dir=args.state_dir)  # over a new SSH connection
        else:
            ids = confirm(state_dir=args.state_dir)
    finally:
        _close(runner)
    if args.json:
        print_json({"confirmed": list(ids)})
        return 0
    for ident in ids:
        print(f"confirmed {ident}")
    return 0

"""The ``kvmnet`` command: parses arguments, calls the library, prints.

Exit status: 0 done, 1 refused or failed (one line on stderr), 2 usage error.
Each command lives in its own module with ``register(subparsers)``; heavy imports happen
inside the command functions so that ``kvmnet --help`` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import bulk, completion, domains, hostbridge, macs
from ._common import CommandError, run_command

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="kvmnet",
        description="KVM guest networking: NAT <-> bridged guests, LAN-unique MACs, host bridges.",
    )
    parser.add_argument("--version", action="version", version=f"kvmnet {__version__}")
    parser.add_argument(
        "-c",
        "--connect",
        dest="uris",
        action="append",
        metavar="URI",
        help="libvirt URI (default: $LIBVIRT_DEFAULT_URI, else qemu:///system); "
        "repeat for several hosts where that makes sense (mac)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (domains, bulk, macs, hostbridge, completion):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="kvmnet: %(levelname)s: %(message)s")
    try:
        return run_command(args)
    except CommandError as exc:
        print(f"kvmnet: {exc}", file=sys.stderr)
        return exc.status

"""The ``kvmnet`` command: parses arguments, calls the library, prints.

Exit status: 0 done, 1 refused or failed (one line on stderr), 2 usage error.
Each command lives in its own module with ``register(subparsers)``; heavy imports happen
inside the command functions so that ``kvmnet --help`` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import bulk, completion, domains, hostbridge, macs, show
from ._common import CommandError, run_command, undecodable

__all__ = ["build_parser", "main"]


def _columns() -> int:
    """What shutil.get_terminal_size() says, without importing shutil."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    # argparse asks shutil for the width on every add_argument, and shutil imports zlib, bz2
    # and lzma: a few ms on every start of a command that prints no help at all.
    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        width = width if width is not None else _columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose subcommand parsers use :class:`_Formatter` too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
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
    for module in (domains, bulk, macs, hostbridge, show, completion):
        module.register(sub)
    parser.set_defaults(root_parser=parser)  # for `completion`, which prints the whole tree
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    bad = undecodable(sys.argv[1:] if argv is None else argv)
    if bad is not None:
        # Names and paths reach libvirt, ip and config files as UTF-8: say so before parsing.
        parser.print_usage(sys.stderr)
        print(f"kvmnet: error: argument {bad} is not valid UTF-8", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="kvmnet: %(levelname)s: %(message)s")
    try:
        return run_command(args)
    except CommandError as exc:
        print(f"kvmnet: {exc}", file=sys.stderr)
        return exc.status

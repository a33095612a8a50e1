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
from typing import Any, NoReturn

from . import bulk, completion, domains, hostbridge, macs, show
from ._common import CommandError, run_command, undecodable
from .progress import LogHandler

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
    """ArgumentParser whose subcommand parsers use :class:`_Formatter` too.

    A usage error is a JSON object on stderr when the command line asked for ``--json``.
    """

    json_errors = False  # set by main() before parsing: every subparser must see it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if not _Parser.json_errors:
            super().error(message)
        self.exit(2, _json_error(f"{self.prog}: {message}", "UsageError", 2))


def _json_error(message: str, kind: str, status: int) -> str:
    import json

    return json.dumps({"error": message, "type": kind, "status": status}) + "\n"


def _wants_json(argv: Sequence[str]) -> bool:
    """``--json`` among the options (not after ``--``, where it would be a name)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


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
    """Run ``kvmnet`` with ``argv`` (default: ``sys.argv[1:]``).

    Args:
        argv: the arguments after the program name.

    Returns:
        The exit status: 0 done, 1 refused or failed, 2 usage error.
    """
    args_in = sys.argv[1:] if argv is None else list(argv)
    _Parser.json_errors = _wants_json(args_in)
    parser = build_parser()
    bad = undecodable(args_in)
    if bad is not None:
        # Names and paths reach libvirt, ip and config files as UTF-8: say so before parsing.
        parser.error(f"argument {bad} is not valid UTF-8")
    args = parser.parse_args(args_in)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    # On the root logger, as basicConfig would, but removed again: main() may run in-process.
    root, log = logging.getLogger(), LogHandler()
    root.setLevel(level)
    root.addHandler(log)
    try:
        status = run_command(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except CommandError as exc:
        if getattr(args, "json", False):
            sys.stderr.write(_json_error(str(exc), exc.kind, exc.status))
        else:
            print(f"kvmnet: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        # `kvmnet domains --json | head -1`: the reader has what it wanted. Python would
        # flush stdout again at exit and print a traceback: point stdout at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1
    finally:
        root.removeHandler(log)
        log.close()

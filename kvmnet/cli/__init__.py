"""The ``kvmnet`` command: parses arguments, calls the library, prints.

Exit status: 0 done, 1 refused or failed (one line on stderr), 2 usage error.
Each command lives in its own module with ``register(subparsers)``; heavy imports happen
inside the command functions so that ``kvmnet --help`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .. import _log
from ._common import CommandError, run_command, undecodable

if TYPE_CHECKING:
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


# The terminal's width while a parser is built: argparse makes a formatter for every
# add_argument only to check the argument, and each read of the width (an environment lookup
# and an ioctl that fails when stdout is no terminal) added up. Help and errors, formatted
# later, read it afresh.
_build_width: int | None = None


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
        if width is None:
            width = (_build_width if _build_width is not None else _columns()) - 2
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


def _json_error(message: str, kind: str, status: int, log: Sequence[str] = ()) -> str:
    import json

    error: dict[str, object] = {"error": message, "type": kind, "status": status}
    if log:  # the lines logged before the error: inside the object, so stderr is one object
        error["log"] = list(log)
    return json.dumps(error) + "\n"


def _wants_json(argv: Sequence[str]) -> bool:
    """``--json`` among the options (not after ``--``, where it would be a name)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


class _Skipped:
    """Stands in for the parser of a command this run does not use: takes every call."""

    def __getattr__(self, name: str) -> Any:
        return self._any

    def _any(self, *args: Any, **kwargs: Any) -> _Skipped:
        return self


class _OnlyOne:
    """A subparsers action that builds the parser of one command and skips the others.

    Each parser costs argparse about 1 ms (gettext looks for catalogues on disk for every
    one): building all of them was most of what ``kvmnet domains`` spent beyond libvirt.
    """

    def __init__(self, sub: argparse._SubParsersAction[Any], wanted: str) -> None:
        self._sub = sub
        self._wanted = wanted

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self._wanted or self._wanted in kwargs.get("aliases", ()):
            return self._sub.add_parser(name, **kwargs)
        return _Skipped()


def _command_word(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """The command ``argv`` names, skipping the global options and their values as argparse
    would; None when that is unclear (the full parser then decides and explains)."""
    takes_value = {
        option
        for action in parser._actions
        if action.nargs != 0
        for option in action.option_strings
    }
    longs = [option for option in takes_value if option.startswith("--")]
    helps = [
        option
        for action in parser._actions
        if isinstance(action, argparse._HelpAction)
        for option in action.option_strings
    ]
    words = iter(argv)
    for word in words:
        if word == "--":
            return None  # argparse itself refuses "--" before the command: let it say so
        if word in helps or (word.startswith("--") and [o for o in helps if o.startswith(word)]):
            return None  # the top-level help lists every command
        if word.startswith("--"):
            if "=" not in word and [o for o in longs if o.startswith(word)]:
                next(words, None)  # an abbreviated or whole long option and its value
        elif word.startswith("-") and len(word) > 1:
            for i, char in enumerate(word[1:], start=1):
                if f"-{char}" in helps:
                    return None
                if f"-{char}" in takes_value:  # "-c URI", "-cURI", "-vc URI"
                    if i == len(word) - 1:
                        next(words, None)
                    break
        else:
            return word
    return None


def _top_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[Any]]:
    """The global options and an empty set of commands."""
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
    # `completion` and `__complete` need the whole tree, whatever parser this run built:
    # handed over here, since completion importing this package would be an import cycle.
    parser.set_defaults(whole_parser=build_parser)
    return parser, sub


# The modules that register commands, in the order `kvmnet --help` lists them.
_MODULES = ("domains", "bulk", "macs", "hostbridge", "show", "completion")
# Each command's module: a run imports that one only (a test holds this equal to what the
# modules register). Importing all six was a few ms of every start.
_COMMAND_MODULES = {
    "domains": "domains",
    "bridge": "domains",
    "nat": "domains",
    "add-nic": "domains",
    "remove-nic": "domains",
    "bridge-all": "bulk",
    "nat-all": "bulk",
    "mac": "macs",
    "host-bridge": "hostbridge",
    "host-release": "hostbridge",
    "confirm": "hostbridge",
    "show": "show",
    "completion": "completion",
    "__complete": "completion",
}


def _register(
    sub: argparse._SubParsersAction[Any] | _OnlyOne, modules: Sequence[str] = _MODULES
) -> None:
    for name in modules:
        importlib.import_module(f"{__name__}.{name}").register(sub)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``kvmnet`` parser, every command in it."""
    global _build_width
    outer, _build_width = _build_width, _columns()
    try:
        parser, sub = _top_parser()
        _register(sub)
        return parser
    finally:
        _build_width = outer


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for this run: the global options and the named command's parser alone,
    unless the command is unclear or help may list them all (then the whole parser)."""
    global _build_width
    outer, _build_width = _build_width, _columns()
    try:
        return _parser_for_now(argv)
    finally:
        _build_width = outer


def _parser_for_now(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser, sub = _top_parser()
    command = _command_word(parser, argv)
    if command is None and any(w.startswith("--ve") and "--version".startswith(w) for w in argv):
        return parser  # --version prints and exits before any command is looked at
    module = _COMMAND_MODULES.get(command) if command is not None else None
    if command is None or module is None:
        return build_parser()  # help, or not a command: the whole parser says which ones
    _register(_OnlyOne(sub, command), (module,))
    if command not in sub.choices:
        return build_parser()  # the table above out of step: the whole parser still works
    return parser


class _Log:
    """The command's log: `LogHandler` on the root logger at the level ``-v`` asks for, as
    basicConfig would set it up, but removed again (main() may run in-process).

    ``hold`` (``--json``): the lines wait until the end, so that an error's JSON object can
    carry them (`take`) and stderr stays that one object."""

    def __init__(self, verbose: int, *, hold: bool = False) -> None:
        self.verbose = verbose
        self.hold = hold
        self.handler: LogHandler | None = None

    def start(self) -> None:
        import logging

        from .progress import LogHandler

        level = {0: logging.WARNING, 1: logging.INFO}.get(self.verbose, logging.DEBUG)
        root = logging.getLogger()
        root.setLevel(level)
        self.handler = LogHandler(hold=self.hold)
        root.addHandler(self.handler)

    def take(self) -> list[str]:
        """The lines held so far (none if the log never started, or without ``hold``)."""
        return self.handler.take() if self.handler is not None else []

    def stop(self) -> None:
        if self.handler is not None:
            import logging

            logging.getLogger().removeHandler(self.handler)
            self.handler.close()
            self.handler = None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kvmnet`` with ``argv`` (default: ``sys.argv[1:]``).

    Args:
        argv: the arguments after the program name.

    Returns:
        The exit status: 0 done, 1 refused or failed, 2 usage error.
    """
    args_in = sys.argv[1:] if argv is None else list(argv)
    _Parser.json_errors = _wants_json(args_in)
    parser = _parser_for(args_in)
    bad = undecodable(args_in)
    if bad is not None:
        # Names and paths reach libvirt, ip and config files as UTF-8: say so before parsing.
        parser.error(f"argument {bad} is not valid UTF-8")
    args = parser.parse_args(args_in)
    log = _Log(args.verbose, hold=bool(getattr(args, "json", False)))
    if args.verbose or "logging" in sys.modules:
        log.start()
    else:
        # Nothing has loaded logging, so nothing but kvmnet's own loggers can log: they
        # start the log before their first record that could be shown (a warning), and a
        # run without one never imports logging (kvmnet._log).
        _log.when_ready(log.start)
    try:
        status = run_command(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except CommandError as exc:
        if getattr(args, "json", False):
            sys.stderr.write(_json_error(str(exc), exc.kind, exc.status, log.take()))
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
        _log.cancel(log.start)
        log.stop()

"""What every command shares: URI selection, error-to-exit-code mapping, JSON output."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence

from .. import _log

__all__ = [
    "BACKEND_NAMES",
    "CommandError",
    "add_json_option",
    "add_live_options",
    "cli_words",
    "command_uri",
    "command_words",
    "confirm_command",
    "first_uri",
    "iface_selector",
    "print_json",
    "run_command",
    "seconds",
    "seconds_or_zero",
    "undecodable",
    "whole_number",
]

#: ``--backend`` choices, defined here once (the CLI must not import the backends to show
#: ``--help``; a test holds this equal to ``kvmnet.backends.BACKENDS`` plus "auto").
BACKEND_NAMES = ("auto", "iproute2", "ifcfg", "ifupdown", "nmcli", "netplan", "networkd")

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """Raised by a command to exit with ``status`` and a one-line message.

    ``kind`` names the error for ``--json`` (the library's exception class, e.g.
    ``"InvalidInput"``; ``"UsageError"`` for status 2).
    """

    def __init__(self, message: str, status: int = 1, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind if kind is not None else ("UsageError" if status == 2 else "Error")


class _Config(argparse.Action):
    """``--config``: next boot only, unless ``--live`` is given too (in either order).

    virsh users type ``--live --config`` for "both"; kvmnet's ``--live`` already means the
    persistent definition and the running guest, so together they mean ``--live``.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest, None) is not True:
            setattr(namespace, self.dest, False)


def add_live_options(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    """``--live`` / ``--config`` (``args.live``: True, False or None) and ``--dry-run``.

    Args:
        parser: the command's parser.
        many: word the help for a command that changes many guests.
    """
    guest = "each running guest" if many else "the running guest"
    definition = "definitions" if many else "definition"
    parser.add_argument(
        "--live",
        dest="live",
        action="store_const",
        const=True,
        default=None,
        help=f"fail unless {guest} changes too (with --config: the same)",
    )
    parser.add_argument(
        "--config",
        dest="live",
        action=_Config,
        nargs=0,
        help=f"change the persistent {definition} only (next boot)",
    )
    what = "diffs" if many else "diff"
    parser.add_argument("--dry-run", action="store_true", help=f"print the {what}, change nothing")


def add_json_option(parser: argparse.ArgumentParser | argparse._ActionsContainer) -> None:
    """``--json``: the result as one JSON document on stdout, an error as one on stderr.

    Args:
        parser: the command's parser, or a group of it (``show``'s output choices).
    """
    parser.add_argument(
        "--json",
        action="store_true",
        help="machine-readable output (errors: a JSON object on stderr)",
    )


def first_uri(args: argparse.Namespace) -> str | None:
    """The single ``-c URI`` a one-host command was given (None without ``-c``); see
    `command_uri` for the URI it acts on."""
    uris: list[str] | None = args.uris
    if uris and len(uris) > 1:
        raise CommandError(f"{args.command} takes one -c URI, got {len(uris)}", status=2)
    return uris[0] if uris else None


def command_uri(args: argparse.Namespace) -> str:
    """The URI a one-host command acts on: ``-c URI``, else ``$LIBVIRT_DEFAULT_URI``, else
    ``qemu:///system`` (`kvmnet._defaults.default_uri`: the rule `kvmnet.connect` and virsh
    follow). Every command resolves it here, so that all of them act on one machine.

    Args:
        args: the parsed command line.

    Returns:
        The URI.

    Raises:
        CommandError: more than one ``-c`` (exit status 2).
    """
    from .._defaults import default_uri

    return default_uri(first_uri(args))


def confirm_command(uri: str) -> str:
    """The command that confirms a change made through ``uri`` from a new session:
    ``kvmnet confirm`` for this machine when that alone acts on it too, else with ``-c URI``
    (another machine always: a new session may lack ``$LIBVIRT_DEFAULT_URI``).

    Args:
        uri: the URI the change was made through (`command_uri`).

    Returns:
        The command line to print.
    """
    import shlex  # only this message quotes: not on every start

    from .._defaults import default_uri
    from ..errors import KvmnetError
    from ..hostnet.runners.machine import machine_of

    try:
        if machine_of(uri).is_local and machine_of(default_uri()).is_local:
            return "kvmnet confirm"
    except KvmnetError:
        pass  # one of them names no machine: spell the URI out
    return f"kvmnet -c {shlex.quote(uri)} confirm"


# ASCII digits only: int() and float() also take fullwidth or Arabic-Indic digits and "1_0",
# which no one means on a command line. The patterns here are text, compiled (once, in re's
# cache) on first use: compiling them all cost every start that never needs them.
_INT = r"-?[0-9]+"
_DECIMAL = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"


def seconds(text: str) -> float:
    """argparse type for ``--confirm-within``: a finite number of seconds above 0.

    0 or less would arm a dead-man timer that rolls back before anyone could confirm.
    """
    if not re.fullmatch(_DECIMAL, text) or float(text) <= 0:
        raise argparse.ArgumentTypeError(f"wants a number of seconds above 0, got {text!r}")
    return float(text)


def seconds_or_zero(text: str) -> float:
    """argparse type for ``--wait``: a number of seconds, 0 included (0: don't wait)."""
    if not re.fullmatch(_DECIMAL, text):
        raise argparse.ArgumentTypeError(f"wants a number of seconds (0 or more), got {text!r}")
    return float(text)


def whole_number(text: str) -> int:
    """argparse type for a count in ASCII digits (``--forward-delay``)."""
    if not re.fullmatch(_INT, text):
        raise argparse.ArgumentTypeError(f"wants a whole number, got {text!r}")
    return int(text)


def command_words(text: str) -> tuple[str, ...]:
    """argparse type for ``--dhcp-client``: shell-like words (``'dhclient -v br0'``).

    An unbalanced quote is a usage error, not a traceback.
    """
    import shlex

    try:
        words = tuple(shlex.split(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"cannot split {text!r} into words: {exc}") from None
    if not words:
        raise argparse.ArgumentTypeError(f"wants a command such as 'dhclient br0', got {text!r}")
    return words


def iface_selector(text: str | None) -> str | int | None:
    """``--iface`` / ``MAC|INDEX``: an index in ASCII digits becomes an int, else a MAC str."""
    if text is None:
        return None
    stripped = text.strip()
    return int(stripped) if re.fullmatch(_INT, stripped) else stripped


def undecodable(argv: Sequence[str]) -> str | None:
    """The first argument that is not valid UTF-8 (Python keeps its bytes as lone
    surrogates), shown with the bytes escaped, else None."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            try:  # bytes the shell passed: show them as bytes (b'\xff' -> '\xff')
                return ascii(arg.encode("utf-8", "surrogateescape"))[1:]
            except UnicodeEncodeError:  # a lone surrogate no byte decodes to (main(argv))
                return ascii(arg)
    return None


def print_json(value: object) -> None:
    import json  # only the --json paths pay for it: every command imports this module

    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


# The library's messages speak Python (``live=False``, ``force=('ssh',)``); at the command
# line the same advice is an option. Keys the CLI has an option for, and how they read there.
_KEYS = "live|force|dry_run|confirm_within|bounce_link"
_PY_VALUE = rf"\b(?:{_KEYS})=(?:\([^()]*\)|[^\s,;()]+)"
# "live=False (CLI: --config)", "drop live=False (--config)": the message says it already.
_WITH_CLI = rf"{_PY_VALUE}\s+\((?:CLI:\s*)?(--[^()]+)\)"
_FORCE = r"\bforce=\(([^()]*)\)"
_SIMPLE = {
    "live=True": "--live",
    "live=False": "--config",
    "dry_run=True": "--dry-run",
    "bounce_link=True": "--bounce",
    "confirm_within=": "--confirm-within ",
    "force=": "--force",
}
_SIMPLE_RE = r"\b(" + "|".join(re.escape(k) for k in _SIMPLE) + ")"


def _force_words(match: re.Match[str]) -> str:
    checks = re.findall(r"""['"]([^'"]+)['"]""", match.group(1))
    return " ".join(f"--force {c}" for c in checks) if checks else "--force CHECK"


def cli_words(message: str) -> str:
    """``message`` with the library's keyword spellings turned into the CLI's options.

    ``"pass live=False (CLI: --config)"`` -> ``"pass --config"``;
    ``"override: force=('ssh',)"`` -> ``"override: --force ssh"``; ``live=True`` -> ``--live``.

    Args:
        message: a library error message (Python-worded for library callers).

    Returns:
        The message as a command-line user should read it.
    """
    message = re.sub(_WITH_CLI, lambda m: m.group(1).strip(), message)
    message = re.sub(_FORCE, _force_words, message)
    return re.sub(_SIMPLE_RE, lambda m: _SIMPLE[m.group(1)], message)


def _one_line(exc: BaseException) -> str:
    # One line: embedded newlines (e.g. a tool's stderr) would break scripts reading it.
    return " ".join(str(exc).split())


def run_command(args: argparse.Namespace) -> int:
    """Call the command's handler; every KvmnetError becomes one line on stderr and exit 1.

    Args:
        args: the parsed command line; ``args.handler`` is the command.

    Returns:
        The handler's exit status.

    Raises:
        CommandError: for every error but a closed stdout, worded for the command line.
        BrokenPipeError: stdout was closed (``| head -1``); :func:`kvmnet.cli.main` exits quietly.
    """
    from ..errors import KvmnetError

    handler: Handler = args.handler
    try:
        return handler(args)
    except KvmnetError as exc:
        raise CommandError(cli_words(_one_line(exc)), kind=type(exc).__name__) from exc
    except KeyboardInterrupt:
        raise CommandError("interrupted", status=130, kind="Interrupted") from None
    except BrokenPipeError:
        raise
    except OSError as exc:
        # A file or directory the command was pointed at (--root, --state-dir) failed.
        raise CommandError(_one_line(exc), kind=type(exc).__name__) from exc
    except CommandError:
        raise
    except Exception as exc:
        # A bug, not a mistake of the user's: still one line and exit 1, never a traceback
        # (scripts parse stderr); -vv logs the traceback for the report.
        _log.get(__name__).debug("unexpected error", exc_info=True)
        raise CommandError(
            f"internal error ({type(exc).__name__}: {_one_line(exc)}); "
            "please report it with the output of -vv",
            kind="InternalError",
        ) from exc

"""What every command shares: URI selection, error-to-exit-code mapping, JSON output."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence

__all__ = [
    "BACKEND_NAMES",
    "CommandError",
    "command_words",
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
    """Raised by a command to exit with ``status`` and a one-line message."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def first_uri(args: argparse.Namespace) -> str | None:
    """The single URI a one-host command uses: the last -c given, else the library default."""
    uris: list[str] | None = args.uris
    if uris and len(uris) > 1:
        raise CommandError(f"{args.command} takes one -c URI, got {len(uris)}", status=2)
    return uris[0] if uris else None


# ASCII digits only: int() and float() also take fullwidth or Arabic-Indic digits and "1_0",
# which no one means on a command line.
_INT = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def seconds(text: str) -> float:
    """argparse type for ``--confirm-within``: a finite number of seconds above 0.

    0 or less would arm a dead-man timer that rolls back before anyone could confirm.
    """
    if not _DECIMAL.fullmatch(text) or float(text) <= 0:
        raise argparse.ArgumentTypeError(f"wants a number of seconds above 0, got {text!r}")
    return float(text)


def seconds_or_zero(text: str) -> float:
    """argparse type for ``--wait``: a number of seconds, 0 included (0: don't wait)."""
    if not _DECIMAL.fullmatch(text):
        raise argparse.ArgumentTypeError(f"wants a number of seconds (0 or more), got {text!r}")
    return float(text)


def whole_number(text: str) -> int:
    """argparse type for a count in ASCII digits (``--forward-delay``)."""
    if not _INT.fullmatch(text):
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
    return int(stripped) if _INT.fullmatch(stripped) else stripped


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


def run_command(args: argparse.Namespace) -> int:
    """Call the command's handler; every KvmnetError becomes one line on stderr and exit 1."""
    from ..errors import KvmnetError

    handler: Handler = args.handler
    try:
        return handler(args)
    except KvmnetError as exc:
        # One line: embedded newlines (e.g. a tool's stderr) would break scripts reading it.
        raise CommandError(" ".join(str(exc).split())) from exc
    except KeyboardInterrupt:
        raise CommandError("interrupted", status=130) from None
    except OSError as exc:
        # A file or directory the command was pointed at (--root, --state-dir) failed.
        raise CommandError(" ".join(str(exc).split())) from exc
    except CommandError:
        raise
    except Exception as exc:
        # A bug, not a mistake of the user's: still one line and exit 1, never a traceback
        # (scripts parse stderr); -vv logs the traceback for the report.
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        raise CommandError(
            f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())}); "
            "please report it with the output of -vv"
        ) from exc

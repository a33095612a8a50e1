"""What every command shares: URI selection, error-to-exit-code mapping, JSON output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["BACKEND_CHOICES", "CommandError", "first_uri", "print_json", "run_command", "seconds"]

#: What ``--backend`` takes (kvmnet.backends.create_backend's names, and auto).
BACKEND_CHOICES = ("auto", "iproute2", "ifcfg", "ifupdown", "nmcli", "netplan", "networkd")

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


def seconds(text: str) -> float:
    """argparse type for ``--confirm-within``: a finite number of seconds above 0.

    0 or less would arm a dead-man timer that rolls back before anyone could confirm.
    """
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"wants a number of seconds above 0, got {text!r}")
    return value


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

"""Name validation: every interface or namespace name is checked before it reaches a command
or a path (the kernel's rules: 1-15 bytes, no ``/``, whitespace or ``:``, not ``.``/``..``; and
printable ASCII, which every config tool takes). `kvmnet.core.validate` checks the type first
and calls these, for host bridges and guest XML alike.

Usage::

    validate_ifname("br0")          # -> "br0"
    validate_ifname("br 0")         # raises InvalidName
"""

from __future__ import annotations

import re

from ..errors import InvalidName, InvalidType

__all__ = ["validate_ifname", "validate_netns_name"]

IFNAMSIZ = 16  # the kernel's buffer, including the terminating NUL


def validate_ifname(name: str, *, what: str = "interface") -> str:
    """Return ``name`` if the kernel would accept it as a link name, else raise InvalidName."""
    if not isinstance(name, str):
        raise InvalidType(
            f"{what} name must be a str such as 'br0', got {name!r} ({type(name).__name__})"
        )
    problem = None
    if not name:
        problem = "is empty"
    elif not all(" " <= c <= "~" for c in name):
        # The kernel takes any byte but NUL, '/', ':' and whitespace; ifcfg, networkd and
        # NetworkManager do not, and a guest's XML must name what the host can create.
        problem = "contains characters outside printable ASCII"
    elif len(name) > IFNAMSIZ - 1:
        problem = f"is {len(name)} characters long; the kernel allows at most 15"
    elif name in (".", ".."):
        problem = "is reserved"
    elif "/" in name or ":" in name or " " in name:  # the only whitespace left is " "
        problem = "contains '/', ':' or whitespace"
    elif name.startswith("-"):
        problem = "starts with '-', which commands would read as an option"
    if problem:
        raise InvalidName(f"{what} name {name!r} {problem}: use 1-15 characters such as 'br0'")
    return name


def validate_netns_name(name: str) -> str:
    """Return ``name`` if ``ip netns`` accepts it (a file name in /run/netns), else raise."""
    if not isinstance(name, str):
        raise InvalidType(
            f"network namespace name must be a str such as 'lab-host', got {name!r} "
            f"({type(name).__name__})"
        )
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or len(name) > 255
        or re.search(r"[/\s\x00-\x1f\x7f]", name)
        or name.startswith("-")
    ):
        raise InvalidName(
            f"network namespace name {name!r} is not valid: use a name such as 'lab-host' "
            "(no '/', whitespace or leading '-')"
        )
    return name

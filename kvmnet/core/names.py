"""Name validation: every interface or namespace name is checked before it reaches a command,
a path or a config file. `kvmnet.core.validate` calls these, for host bridges and guest XML
alike.

Two rules for link names:

- a name kvmnet writes, creates or acts on (the default): letters, digits, ``-``, ``_`` and
  ``.`` only, 1-15 of them, not ``.``/``..``, ``all`` or ``default``, no leading ``-``. That
  is every real naming scheme (``enp0s20f0u1``, ``eth0.101``, ``br-ex``, ``virbr0``,
  ``bond0.100``) and nothing a config format reads specially: systemd-networkd's
  ``[Match] Name=`` takes globs (``*``, ``?``, ``[...]``) and ``!`` negates, so a bridge
  named ``*`` would match -- and give its address to -- every link; a trailing ``\\``
  continues a line in networkd and ifupdown; netplan writes the name as a YAML key, where
  ``&``, ``*``, ``!``, ``#``, ``|``, quotes and brackets mean something else;
- ``existing=True``, a name kvmnet only reads or selects by (a link that is there already):
  the kernel's own rules, so an oddly named link made by hand can still be looked at.

Usage::

    validate_ifname("br0")                    # -> "br0"
    validate_ifname("br*")                    # raises InvalidName
    validate_ifname("br*", existing=True)     # -> "br*"
"""

from __future__ import annotations

import re

from ..errors import InvalidName, InvalidType
from .messages import shown as _shown

__all__ = ["IFNAME_CHARS", "RESERVED_IFNAMES", "validate_ifname", "validate_netns_name"]

IFNAMSIZ = 16  # the kernel's buffer, including the terminating NUL
# What a name kvmnet writes may hold: no config format kvmnet writes reads any of these
# specially, and udev/systemd, VLAN ('.'), Open vSwitch and libvirt names use nothing else.
IFNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
# The kernel refuses these as link names (dev_valid_name): they are the entries of
# /proc/sys/net/ipv4/conf/ (and ipv6) that set every link's and new links' defaults.
RESERVED_IFNAMES = ("all", "default")
_RULE = "use 1-15 letters, digits, '-', '_' or '.' such as 'br0'"


def validate_ifname(name: str, *, what: str = "interface", existing: bool = False) -> str:
    """Return ``name`` if kvmnet may use it as a link name, else raise InvalidName.

    Args:
        name: The name.
        what: "bridge", "NIC"..., for the message.
        existing: True for a link kvmnet only reads or selects by: the kernel's rules (no
            ``/``, ``:``, whitespace or ``%``; not ``.``, ``..``, ``all`` or ``default``;
            1-15 bytes), printable ASCII, and no leading ``-`` (it goes into commands).
            False (the default) for a name written into a config file or created: also
            nothing but letters, digits, ``-``, ``_`` and ``.``.

    Returns:
        The name.

    Raises:
        InvalidType: not a ``str``.
        InvalidName: the name breaks the rule; the message quotes it and says why.
    """
    if not isinstance(name, str):
        raise InvalidType(
            f"{what} name must be a str such as 'br0', got {_shown(name)} ({type(name).__name__})"
        )
    if IFNAME_CHARS.issuperset(name) and 0 < len(name) < IFNAMSIZ:
        # The usual case, kept cheap: only the whole-name rules are left.
        problem = _whole_name_problem(name)
    else:
        problem = _problem(name, existing=existing)
    if problem:
        raise InvalidName(f"{what} name {_shown(name)} {problem}: {_RULE}")
    return name


def _whole_name_problem(name: str) -> str | None:
    if name in (".", ".."):
        return "is reserved (the kernel refuses it)"
    if name in RESERVED_IFNAMES:
        return (
            f"is reserved: the kernel refuses it (/proc/sys/net/ipv4/conf/{name} sets "
            "every link's defaults)"
        )
    if name.startswith("-"):
        return "starts with '-', which commands would read as an option"
    return None


def _problem(name: str, *, existing: bool) -> str | None:
    if not name:
        return "is empty"
    if not all(" " <= c <= "~" for c in name):
        # The kernel takes any byte but NUL, '/', ':' and whitespace; ifcfg, networkd and
        # NetworkManager do not, and a guest's XML must name what the host can create.
        return "contains characters outside printable ASCII"
    if len(name) > IFNAMSIZ - 1:
        return f"is {len(name)} characters long; the kernel allows at most 15"
    if "/" in name or ":" in name or " " in name:  # the only whitespace left is " "
        return "contains '/', ':' or whitespace, which the kernel refuses"
    if "%" in name:
        # The kernel reads '%d' as "the next free number" ('br%d' becomes br0) and
        # refuses any other '%'.
        return "contains '%', which the kernel reads as a pattern ('br%d' becomes br0) or refuses"
    problem = _whole_name_problem(name)
    if problem or existing:
        return problem
    odd = "".join(sorted(set(name) - IFNAME_CHARS))
    return (
        f"contains {odd!r}, which config files read specially (networkd's Name= globs and '!', "
        "a line-continuing '\\', YAML keys, shell quotes)"
    )


def validate_netns_name(name: str) -> str:
    """Return ``name`` if ``ip netns`` accepts it (a file name in /run/netns), else raise."""
    if not isinstance(name, str):
        raise InvalidType(
            f"network namespace name must be a str such as 'lab-host', got {_shown(name)} "
            f"({type(name).__name__})"
        )
    if (
        not name
        or name in (".", "..")
        or len(name) > 255
        or re.search(r"[/\s\x00-\x1f\x7f]", name)
        or name.startswith("-")
    ):
        raise InvalidName(
            f"network namespace name {_shown(name)} is not valid: use a name such as 'lab-host' "
            "(no '/', whitespace or leading '-')"
        )
    return name

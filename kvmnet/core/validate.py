"""Argument checks for every public entry point, in one place, with one set of rules.

Pure: imports only `kvmnet.errors`, `kvmnet.core.messages` and the name and MAC rules
(`kvmnet.core.names`, `kvmnet.core.macs`, the latter when a MAC is checked). Each function
returns the value (normalised where that is the rule, e.g. a MAC in lower-case colon form)
or raises a `KvmnetError` subclass quoting the value (`shown`: its repr, one line,
shortened) and saying what is accepted:

- a value of the wrong type: `InvalidType` (also ``TypeError``);
- a name the kernel, libvirt or a config file kvmnet writes would misread: `InvalidName`;
- a MAC that no guest NIC may have: `InvalidMac`;
- any other value out of range: `InvalidInput` (also ``ValueError``).

Entry points call these first, before any read-modify-write, command or file write, so
that a refused call has changed nothing. Usage::

    bridge = validate.ifname(bridge, what="bridge")
    live = validate.optional_flag(live, "live")
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

from ..errors import InvalidInput, InvalidMac, InvalidName, InvalidType, UntrustedPath
from .messages import listed, one_line, shown
from .names import validate_ifname, validate_netns_name

__all__ = [
    "backend",
    "bounce",
    "count",
    "dhcp_client",
    "domain_name",
    "domain_names",
    "duration",
    "flag",
    "force",
    "guest_mac",
    "ifname",
    "listed",
    "mac",
    "model",
    "netns",
    "network_name",
    "one_line",
    "optional_duration",
    "optional_flag",
    "optional_path",
    "path",
    "progress",
    "root_dir",
    "runner",
    "shown",
    "text",
    "uri",
]

# Patterns as text, compiled (once, in re's cache) by the first check that uses them: each
# compile costs a command-line start that never checks such a name.
# libvirt network names: no '/', whitespace, quotes or XML specials (kvmnet writes them into
# XML attributes and virsh users type them); at most 255 characters.
_NETWORK_NAME = r"[^\s/'\"<>&]{1,255}"
# libvirt's <model type=...>: a driver name such as virtio, e1000e, rtl8139.
_MODEL = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}"
_CONTROL = frozenset(map(chr, [*range(0x20), 0x7F]))  # a set: every check, no regex to compile
# A MAC as libvirt writes it (lower case, colons): as text, it shares the compiled pattern
# kvmnet.domainxml makes of the same text, in re's cache.
_CANONICAL_MAC = r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}"


def _type_error(what: str, value: object, expected: str) -> InvalidType:
    return InvalidType(f"{what} must be {expected}, got {shown(value)} ({type(value).__name__})")


def text(value: object, what: str, *, error: type[InvalidInput] = InvalidInput) -> str:
    """``value`` if it is a ``str`` without NUL, control characters or lone surrogates.

    Args:
        value: The argument.
        what: What it is, for the message ("domain name").
        error: The class raised for a bad value (a wrong type is always InvalidType).

    Returns:
        The string unchanged.

    Raises:
        InvalidType: ``value`` is not a ``str`` (bytes included).
        InvalidInput: it is empty or holds NUL, a control character or a lone surrogate.
    """
    if not isinstance(value, str):
        raise _type_error(what, value, "a str")
    problem = None
    if not value:
        problem = "is empty"
    elif "\x00" in value:
        problem = "contains a NUL character"
    elif not _CONTROL.isdisjoint(value):
        problem = "contains a control character (newline, tab, escape...)"
    else:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problem = "is not valid text (a lone surrogate: undecodable bytes)"
    if problem:
        raise error(f"{what} {shown(value)} {problem}: give printable text")
    return value


def ifname(value: object, *, what: str = "interface", existing: bool = False) -> str:
    """A Linux link name (bridge, NIC) kvmnet may write, create or act on.

    The same rule applies to a bridge in a guest's XML and to a host bridge created, so a
    name one side accepts is never refused by the other. It is stricter than the kernel:
    letters, digits, ``-``, ``_`` and ``.`` only, because kvmnet writes the name into config
    files that read other characters specially (networkd's ``Name=`` globs and ``!``, a
    line-continuing ``\\``, netplan's YAML keys); see `kvmnet.core.names`.

    Args:
        value: The name.
        what: "bridge", "NIC"..., for the message.
        existing: True where kvmnet only reads or selects by the name of a link that is
            there already: the kernel's rules only, so oddly named links stay readable.

    Returns:
        The name.

    Raises:
        InvalidType: not a ``str``.
        InvalidName: empty, over 15 bytes, ``.``/``..``, ``all``/``default``, a leading
            ``-``, or a character other than letters, digits, ``-``, ``_`` and ``.``
            (``existing=True``: only ``/``, ``:``, ``%``, whitespace and characters outside
            printable ASCII).
    """
    # validate_ifname checks the type.
    return validate_ifname(value, what=what, existing=existing)  # type: ignore[arg-type]


def network_name(value: object) -> str:
    """A libvirt network name (``default``).

    Args:
        value: The name.

    Returns:
        The name.

    Raises:
        InvalidType: not a ``str``.
        InvalidName: empty, longer than 255, or with whitespace, ``/``, quotes or ``<>&``.
    """
    text(value, "network name", error=InvalidName)
    assert isinstance(value, str)
    if not re.fullmatch(_NETWORK_NAME, value):
        raise InvalidName(
            f"network name {shown(value)} is not valid: use a name without spaces, quotes or "
            "slashes such as 'default'"
        )
    return value


def domain_name(value: object) -> str:
    """A libvirt domain (guest) name to look up.

    Args:
        value: The name.

    Returns:
        The name.

    Raises:
        InvalidType: not a ``str``.
        InvalidName: empty, or with NUL, control characters or lone surrogates (no domain
            can be called that).
    """
    return text(value, "domain name", error=InvalidName)


def domain_names(value: object) -> list[str] | None:
    """``None`` or an iterable of domain names; a single ``str`` is refused, not split.

    Args:
        value: The names.

    Returns:
        The names as a list, or None.

    Raises:
        InvalidType: a ``str``/``bytes`` (``["web1"]`` was meant), or not iterable.
        InvalidName: a name as `domain_name` refuses it.
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise _type_error("domain names", value, "a list of names such as ['web1'] or None")
    return [domain_name(name) for name in value]


def netns(value: object) -> str | None:
    """``None`` or a network namespace name (a file name in /run/netns).

    Raises:
        InvalidType: not a ``str`` or None.
        InvalidName: a name ``ip netns`` cannot have.
    """
    if value is None:
        return None
    text(value, "network namespace name", error=InvalidName)
    assert isinstance(value, str)
    return validate_netns_name(value)


def mac(value: object, what: str = "MAC") -> str:
    """A unicast MAC in any accepted spelling, normalised (e.g. to select an interface).

    Raises:
        InvalidType: not a ``str``.
        InvalidMac: malformed, multicast, broadcast or all-zero.
    """
    if not isinstance(value, str):
        raise _type_error(what, value, "a str such as '52:54:00:ab:cd:ef'")
    if (
        re.fullmatch(_CANONICAL_MAC, value)
        and not int(value[1], 16) & 1  # the multicast bit (broadcast has it too)
        and value != "00:00:00:00:00:00"
    ):
        return value  # a unicast MAC in its normal form already: the usual case, kept cheap
    from .macs import normalize_mac  # other spellings, and the refusal's message

    return normalize_mac(value)


def guest_mac(value: object, what: str = "MAC") -> str:
    """A MAC to give a guest NIC: `mac`'s rules, and not one libvirt refuses.

    libvirt gives the host-side tap the guest MAC with first octet ``fe``; it refuses to
    start a guest whose own MAC starts with ``fe``, so kvmnet refuses it when defining.

    Raises:
        InvalidType: not a ``str``.
        InvalidMac: as `mac`, or the first octet is ``fe``.
    """
    if not isinstance(value, str):
        raise _type_error(what, value, "a str such as '52:54:00:ab:cd:ef'")
    from .macs import LIBVIRT_TAP_OCTET, int_to_mac, parse_mac

    number = parse_mac(value)
    if number >> 40 == LIBVIRT_TAP_OCTET:
        raise InvalidMac(
            f"invalid MAC {shown(value)}: {int_to_mac(number)} starts with fe, which libvirt "
            "reserves for the host side of a guest's tap and refuses for the guest; "
            "use e.g. 52:54:00:ab:cd:ef"
        )
    return int_to_mac(number)


def flag(value: object, what: str) -> bool:
    """A real ``bool``: ``"false"``, 0 and 1 are refused rather than read as truthy.

    Raises:
        InvalidType: anything but True or False.
    """
    if not isinstance(value, bool):
        raise _type_error(what, value, "True or False")
    return value


def optional_flag(value: object, what: str) -> bool | None:
    """``None``, True or False (``live``: None means "live if running").

    Raises:
        InvalidType: anything else (``"false"`` included).
    """
    if value is not None and not isinstance(value, bool):
        raise _type_error(what, value, "True, False or None")
    return value


def count(value: object, what: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """An ``int`` (not bool) from ``minimum`` to ``maximum``.

    Raises:
        InvalidType: not an int.
        InvalidInput: out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(what, value, "an int")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" to {maximum}" if maximum is not None else " or more"
        raise InvalidInput(f"{what} {shown(value)} is out of range: use {minimum}{upper}")
    return value


def duration(
    value: object,
    what: str,
    *,
    zero: bool = False,
    minimum: float = 0.0,
    maximum: float = 86400.0,
) -> float:
    """Seconds: a finite int or float (not bool, not str) above 0 (or ``zero=True``: >= 0),
    at least ``minimum`` and at most ``maximum``.

    Raises:
        InvalidType: not a number.
        InvalidInput: NaN, infinite, negative, zero (unless allowed), below ``minimum`` or
            above ``maximum`` (an int too large for a float included).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(what, value, "a number of seconds")
    # Compared as they are (Python compares an int with a float exactly), before float():
    # an int past float's range raises OverflowError there. NaN fails every comparison and
    # infinity the maximum, so what passes is finite.
    low_ok = value >= minimum and (value >= 0 if zero else value > 0)
    if not low_ok or not value <= maximum:
        low = f"{minimum:g}" if minimum > 0 else "0" if zero else "above 0"
        raise InvalidInput(
            f"{what} {shown(value)} is not a usable number of seconds: use {low} up to {maximum:g}"
        )
    return float(value)


def optional_duration(
    value: object, what: str, *, zero: bool = False, minimum: float = 0.0
) -> float | None:
    """``None`` or `duration`."""
    return None if value is None else duration(value, what, zero=zero, minimum=minimum)


# A dead-man timer (``confirm_within``) shorter than this rolls back before anyone can
# confirm from a new SSH session (the CLI takes whole seconds); longer than a day is a typo.
CONFIRM_WITHIN_RANGE = (1.0, 86400.0)


def confirm_within(value: object) -> float | None:
    """``None`` or the dead-man timer's seconds: from 1 to 86400 (`CONFIRM_WITHIN_RANGE`).

    Raises:
        InvalidType: not a number or None.
        InvalidInput: out of that range, NaN or infinite.
    """
    low, high = CONFIRM_WITHIN_RANGE
    if value is None:
        return None
    return duration(value, "confirm_within", minimum=low, maximum=high)


def bounce(value: object) -> bool | float:
    """``bounce_link``: True/False, or seconds the link stays down (> 0, finite).

    Raises:
        InvalidType: a string, None or another type.
        InvalidInput: a number that is not a usable duration.
    """
    if isinstance(value, bool):
        return value
    return duration(value, "bounce_link", maximum=600.0)


def path(value: object, what: str) -> str:
    """A file system path: ``str`` or ``os.PathLike`` of str, without NUL or lone surrogates.

    Raises:
        InvalidType: bytes, a bytes path or another type.
        InvalidInput: empty, NUL, or a lone surrogate.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise _type_error(what, value, "a str or pathlib.Path")
    return text(value, what)


def optional_path(value: object, what: str) -> str | None:
    """``None`` or `path`."""
    return None if value is None else path(value, what)


def root_dir(value: object, *, config_dirs: Iterable[str] = ()) -> str:
    """A backend's ``root``: an existing directory, absolute, whose config dirs stay inside.

    A missing root is refused, not created (a typo must not grow a tree somewhere); a config
    dir under it that resolves outside it (a symlink to ``/etc``) is refused too, because
    writes would land on the real system.

    Args:
        value: The root (str or path-like).
        config_dirs: Absolute paths the backend reads and writes, as on ``/``.

    Returns:
        The normalised root.

    Raises:
        InvalidType: not a str or path-like.
        InvalidInput: relative, missing, not a directory, or a config dir escapes it.
    """
    root = path(value, "root")
    if not root.startswith("/"):
        raise InvalidInput(f"root {shown(value)} is not an absolute path: use '/' or e.g. '/tmp/r'")
    root = os.path.normpath(root)
    if not os.path.isdir(root):
        state = "does not exist" if not os.path.lexists(root) else "is not a directory"
        raise InvalidInput(
            f"root {shown(value)} {state}: create the directory first (kvmnet does not) or use '/'"
        )
    real = os.path.realpath(root)
    for config in config_dirs:
        inside = os.path.join(root, config.lstrip("/"))
        resolved = os.path.realpath(inside)
        if os.path.commonpath([real, resolved]) != real:
            raise UntrustedPath(
                f"root {shown(value)}: {inside} resolves to {resolved}, outside the root; "
                "replace that symlink with a directory (writes would land outside the root)",
                path=inside,
            )
    return root


# What libvirt's virConnectSetKeepAlive takes: the interval is a C int that libvirt refuses
# above INT_MAX / 1000 (it counts milliseconds; "keepalive interval too large"), the count
# an unsigned int, which the Python binding wraps without a word (2**32 would become 0).
KEEPALIVE_MAX_INTERVAL = (2**31 - 1) // 1000
KEEPALIVE_MAX_COUNT = 2**32 - 1


def keepalive(value: object) -> tuple[int, int] | None:
    """None, or libvirt keepalive's ``(interval, count)``: whole numbers libvirt takes, the
    interval from 1 to 2147483 seconds and the count from 1 to 4294967295.

    Raises:
        InvalidInput: anything else (InvalidType for a wrong type).
    """
    if value is None:
        return None
    if not isinstance(value, tuple) or len(value) != 2:
        raise _type_error("keepalive", value, "a tuple (interval, count) such as (5, 3), or None")
    return (
        count(value[0], "keepalive interval", maximum=KEEPALIVE_MAX_INTERVAL),
        count(value[1], "keepalive count", maximum=KEEPALIVE_MAX_COUNT),
    )


def uri(value: object) -> str | None:
    """``None`` or a libvirt URI string (``qemu:///system``).

    Raises:
        InvalidType: not a str.
        InvalidInput: empty, NUL, control characters, lone surrogates, or no ``:``.
    """
    if value is None:
        return None
    text(value, "libvirt URI")
    assert isinstance(value, str)
    if ":" not in value or any(c.isspace() for c in value):
        raise InvalidInput(
            f"libvirt URI {shown(value)} is not a URI: use e.g. 'qemu:///system' or "
            "'qemu+ssh://root@host/system'"
        )
    return value


def model(value: object) -> str | None:
    """``None`` or a NIC model name (``virtio``, ``e1000e``).

    Raises:
        InvalidType: not a str or None.
        InvalidInput: not a model name.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise _type_error("model", value, "a str such as 'virtio', or None")
    if not re.fullmatch(_MODEL, value):
        raise InvalidInput(f"NIC model {shown(value)} is not valid: use e.g. 'virtio' or 'e1000e'")
    return value


def force(value: object) -> tuple[str, ...]:
    """Preflight overrides: a collection of check names; a single ``str`` is refused (it would
    be read as its characters). Which names exist is the preflight's to say.

    Raises:
        InvalidType: a str (``("ssh",)`` was meant) or not a collection of str.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise _type_error("force", value, "a tuple of check names such as ('ssh',)")
    names = tuple(value)
    for name in names:
        if not isinstance(name, str):
            raise _type_error("force entry", name, "a str")
    return names


def dhcp_client(value: object) -> tuple[str, ...]:
    """An argv (tuple or list of str, the program first), or empty; a single str is refused.

    Raises:
        InvalidType: a str (``("dhclient", "-v")`` was meant) or entries that are not str.
        InvalidInput: an entry with NUL or a lone surrogate, or an empty program.
    """
    if not isinstance(value, (tuple, list)):
        raise _type_error("dhcp_client", value, "an argv tuple such as ('dhclient', '-v')")
    for arg in value:
        if not isinstance(arg, str):
            raise _type_error("dhcp_client argument", arg, "a str")
        if "\x00" in arg:
            raise InvalidInput(f"dhcp_client argument {shown(arg)} contains a NUL character")
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                f"dhcp_client argument {shown(arg)} is not valid text (a lone surrogate)"
            ) from None
    if value and not value[0]:
        raise InvalidInput(f"dhcp_client {shown(value)} has an empty program name")
    return tuple(value)


def progress(value: object) -> Callable[..., object] | None:
    """``None`` or a callable ``progress(done, total, label)``.

    Raises:
        InvalidType: anything else.
    """
    if value is not None and not callable(value):
        raise _type_error("progress", value, "a callable progress(done, total, label) or None")
    return value


# What a runner and a backend must have (their Protocols live with the machinery; checking
# the names here keeps this module free of it).
_RUNNER_METHODS = ("run", "spawn", "read_file", "file_mode", "list_dir", "write_file")
_BACKEND_METHODS = ("plan_enslave", "plan_release")


def runner(value: object) -> object:
    """``None`` or a runner (`kvmnet.hostnet.runners.runner.Runner`: ``run``, ``read_file``...).

    Raises:
        InvalidType: anything else (a str, a class instead of an instance...).
    """
    if value is None:
        return None
    if isinstance(value, type) or not all(
        callable(getattr(value, m, None)) for m in _RUNNER_METHODS
    ):
        raise _type_error(
            "runner", value, "a Runner such as kvmnet.hostnet.runners.runner.LocalRunner() or None"
        )
    return value


def backend(value: object, *, optional: bool = True) -> object:
    """A backend object (``plan_enslave``, ``plan_release``, ``runner``), or None if allowed.

    Raises:
        InvalidType: a backend name (use ``create_backend(name)``), a class, or anything else.
    """
    if value is None and optional:
        return None
    if (
        isinstance(value, type)
        or not all(callable(getattr(value, m, None)) for m in _BACKEND_METHODS)
        or not hasattr(value, "runner")
    ):
        hint = (
            f"; for a name use kvmnet.backends.create_backend({value!r})"
            if isinstance(value, str)
            else ""
        )
        raise _type_error(
            "backend", value, f"a backend such as kvmnet.backends.Iproute2Backend(){hint}"
        )
    return value

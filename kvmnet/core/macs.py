"""MAC addresses as values: parsing, normalising, validation, prefixes and MAC spaces.

Pure: no libvirt, no subprocess. A MAC is handled as a 48-bit ``int`` inside kvmnet (cheap to
hash, compare and count) and as lower-case colon text at every edge::

    >>> normalize_mac("5254.00AB.CDEF")
    '52:54:00:ab:cd:ef'
    >>> MacPrefix.parse("52:54:00").size
    16777216

The accepted spellings are those of Linux, Windows, Cisco and bare hex; netaddr accepts the
same set, and the test suite checks the two agree, so importing netaddr (55 ms) at command
start-up is not needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidMac, InvalidType
from .messages import shown as _shown

__all__ = [
    "BROADCAST",
    "DEFAULT_PREFIX",
    "LIBVIRT_TAP_OCTET",
    "LocalSpace",
    "MacPrefix",
    "MacSpace",
    "PrefixSpace",
    "int_to_mac",
    "is_assignable",
    "is_libvirt_tap",
    "is_locally_administered",
    "is_multicast",
    "mac_to_int",
    "normalize_mac",
    "parse_mac",
    "try_parse_mac",
]

MAC_BITS = 48
MAC_MAX = (1 << MAC_BITS) - 1
BROADCAST = MAC_MAX
DEFAULT_PREFIX = "52:54:00"
# libvirt gives a guest's host-side tap the guest MAC with its first octet set to 0xFE, so the
# bridge never adopts a tap's MAC; a guest MAC starting with FE would look like such a tap.
LIBVIRT_TAP_OCTET = 0xFE
_MULTICAST_BIT = 1 << 40
_LOCAL_BIT = 1 << 41

ACCEPTED = (
    "use six hex octets such as 52:54:00:ab:cd:ef "
    "(also accepted: 52-54-00-AB-CD-EF, 5254.00ab.cdef, 525400abcdef)"
)

# Colon or dash form, one separator throughout, 1-2 digits per octet (unix tools drop zeros).
_SEPARATED = re.compile(
    r"([0-9a-f]{1,2})([:-])([0-9a-f]{1,2})\2([0-9a-f]{1,2})\2"
    r"([0-9a-f]{1,2})\2([0-9a-f]{1,2})\2([0-9a-f]{1,2})"
)
_DOTTED = re.compile(r"([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4})")
_BARE = re.compile(r"[0-9a-f]{12}")
_PREFIX_SEPARATED = re.compile(r"[0-9a-f]{1,2}(?:([:-])[0-9a-f]{1,2}(?:\1[0-9a-f]{1,2}){0,3})?")
_PREFIX_BARE = re.compile(r"(?:[0-9a-f]{2}){1,5}")


def _parse_int(text: str) -> int | None:
    """The 48-bit value of ``text`` in any accepted spelling, or None if it is none of them."""
    low = text.strip().lower()
    m = _SEPARATED.fullmatch(low)
    if m:
        value = 0
        for group in m.group(1, 3, 4, 5, 6, 7):
            value = (value << 8) | int(group, 16)
        return value
    if _DOTTED.fullmatch(low) or _BARE.fullmatch(low):
        return int(low.replace(".", ""), 16)
    return None


def _problem(value: int) -> str | None:
    """Why ``value`` cannot be a NIC's address, or None if it can."""
    if value == 0:
        return "the all-zero MAC is not an address any NIC may use"
    if value == BROADCAST:
        return "ff:ff:ff:ff:ff:ff is the broadcast address"
    if value & _MULTICAST_BIT:
        return (
            f"{int_to_mac(value)} is a multicast address (the first octet is odd); "
            "a NIC needs a unicast MAC"
        )
    return None


def parse_mac(text: str) -> int:
    """The 48-bit value of a NIC MAC; `InvalidMac` for malformed/multicast/broadcast/zero."""
    if not isinstance(text, str):
        raise InvalidMac(f"invalid MAC {_shown(text)}: not a string; {ACCEPTED}")
    value = _parse_int(text)
    if value is None:
        raise InvalidMac(f"invalid MAC {_shown(text)}: not a MAC address; {ACCEPTED}")
    problem = _problem(value)
    if problem is not None:
        raise InvalidMac(f"invalid MAC {_shown(text)}: {problem}; {ACCEPTED}")
    return value


def normalize_mac(text: str) -> str:
    """``text`` as lower-case colon form, validated for use on a NIC.

    Usage: ``normalize_mac("52-54-00-AB-CD-EF") == "52:54:00:ab:cd:ef"``
    """
    return int_to_mac(parse_mac(text))


def try_parse_mac(text: str) -> int | None:
    """Lenient: the value of any well-formed MAC (multicast and zero included), else None.

    For reading what hosts report (neighbour tables, loopback's 00:00:00:00:00:00): those
    are facts to record, not inputs to refuse.
    """
    return _parse_int(text) if isinstance(text, str) else None


def mac_to_int(text: str) -> int:
    """Alias of `parse_mac`, for symmetry with `int_to_mac`."""
    return parse_mac(text)


def int_to_mac(value: int) -> str:
    """The colon form of a 48-bit value: ``int_to_mac(0x525400abcdef) == "52:54:00:ab:cd:ef"``."""
    h = f"{value:012x}"
    return f"{h[0:2]}:{h[2:4]}:{h[4:6]}:{h[6:8]}:{h[8:10]}:{h[10:12]}"


def is_multicast(value: int) -> bool:
    return bool(value & _MULTICAST_BIT)


def is_locally_administered(value: int) -> bool:
    """True for MACs with the U/L bit set (x2, x6, xA, xE first octets): no vendor owns them."""
    return bool(value & _LOCAL_BIT)


def is_libvirt_tap(value: int) -> bool:
    return value >> 40 == LIBVIRT_TAP_OCTET


def is_assignable(value: int) -> bool:
    """True if kvmnet may hand ``value`` to a guest: unicast, not zero, not an FE tap MAC."""
    return 0 < value <= MAC_MAX and not value & _MULTICAST_BIT and value >> 40 != LIBVIRT_TAP_OCTET


@dataclass(frozen=True)
class MacPrefix:
    """The first 1 to 5 octets of a MAC; the rest are what an allocator chooses.

    Usage: ``MacPrefix.parse("52:54:00")`` or ``MacPrefix((0x52, 0x54, 0x00))``.
    A multicast prefix, and one whose first octet is FE (libvirt's tap MACs), are refused.
    """

    octets: tuple[int, ...]

    def __post_init__(self) -> None:
        if isinstance(self.octets, list):
            object.__setattr__(self, "octets", tuple(self.octets))  # frozen: keep it hashable
        if not isinstance(self.octets, tuple):
            raise InvalidType(
                f"MAC prefix octets must be a tuple of ints such as (0x52, 0x54, 0x00), got "
                f"{_shown(self.octets)} ({type(self.octets).__name__}); "
                "MacPrefix.parse('52:54:00') takes text"
            )
        shown = ":".join(
            f"{o:02x}" if isinstance(o, int) and 0 <= o <= 0xFF else _shown(o)
            for o in self.octets[:6]
        )
        if not 1 <= len(self.octets) <= 5:
            raise InvalidMac(
                f"invalid MAC prefix {shown!r}: it has {len(self.octets)} octets; give 1 to 5 "
                "octets such as 52:54:00 (the rest is chosen by the allocator)"
            )
        if not all(isinstance(o, int) and 0 <= o <= 0xFF for o in self.octets):
            raise InvalidMac(f"invalid MAC prefix {shown!r}: each octet must be 0 to 255")
        first = self.octets[0]
        if first & 1:
            raise InvalidMac(
                f"invalid MAC prefix {shown!r}: it is multicast (the first octet is odd), so "
                "every MAC under it would be; use a unicast prefix such as 52:54:00"
            )
        if first == LIBVIRT_TAP_OCTET:
            raise InvalidMac(
                f"invalid MAC prefix {shown!r}: libvirt reserves first octet fe for host tap "
                "devices; use a prefix such as 52:54:00"
            )

    @classmethod
    def parse(cls, text: str | MacPrefix) -> MacPrefix:
        """From ``52:54:00``, ``52-54-00`` or ``525400`` (1 to 5 octets)."""
        if isinstance(text, MacPrefix):
            return text
        if not isinstance(text, str):
            raise InvalidMac(
                f"invalid MAC prefix {_shown(text)}: not a string; give e.g. 52:54:00"
            )
        low = text.strip().lower()
        if _PREFIX_SEPARATED.fullmatch(low) and (":" in low or "-" in low or len(low) <= 2):
            octets = tuple(int(o, 16) for o in re.split(r"[:-]", low))
        elif _PREFIX_BARE.fullmatch(low):
            octets = tuple(int(low[i : i + 2], 16) for i in range(0, len(low), 2))
        else:
            raise InvalidMac(
                f"invalid MAC prefix {_shown(text)}: give 1 to 5 hex octets such as 52:54:00, "
                "52-54-00 or 525400"
            )
        return cls(octets)

    @property
    def free_bits(self) -> int:
        return MAC_BITS - 8 * len(self.octets)

    @property
    def size(self) -> int:
        """How many MACs the prefix holds."""
        return 1 << self.free_bits

    @property
    def base(self) -> int:
        value = 0
        for octet in self.octets:
            value = (value << 8) | octet
        return value << self.free_bits

    def __contains__(self, mac: object) -> bool:
        if isinstance(mac, str):
            parsed = try_parse_mac(mac)
            if parsed is None:
                return False
            mac = parsed
        return isinstance(mac, int) and mac >> self.free_bits == self.base >> self.free_bits

    def __str__(self) -> str:
        return ":".join(f"{o:02x}" for o in self.octets)

    def __repr__(self) -> str:
        return f"<MacPrefix {self}: {self.size} MACs>"


class MacSpace:
    """A set of candidate MACs numbered 0..size-1 (a bijection index <-> MAC).

    Allocators draw an index and map it; they still filter with `is_assignable`.
    """

    size: int

    def mac_at(self, index: int) -> int:
        raise NotImplementedError

    def index_of(self, mac: int) -> int | None:
        """The index of ``mac`` in this space, or None if it is outside."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def after_unassignable(self, index: int) -> int:
        """The next index to try after ``index``, whose MAC `is_assignable` refused.

        A walk through the space (keyed allocation probes one) calls it to step over a whole
        run of refused MACs at once instead of one by one. The default is the next index.
        """
        return (index + 1) % self.size


class PrefixSpace(MacSpace):
    """Every MAC under a prefix: ``PrefixSpace(MacPrefix.parse("52:54:00")).size == 2**24``."""

    def __init__(self, prefix: MacPrefix) -> None:
        self.prefix = prefix
        self.size = prefix.size
        self._base = prefix.base
        self._bits = prefix.free_bits

    def mac_at(self, index: int) -> int:
        return self._base | index

    def index_of(self, mac: int) -> int | None:
        if mac >> self._bits == self._base >> self._bits:
            return mac & (self.size - 1)
        return None

    def describe(self) -> str:
        return f"prefix {self.prefix} ({self.size} MACs)"


class LocalSpace(MacSpace):
    """Every unicast, locally administered MAC: 46 free bits (first octet x2, x6, xA or xE)."""

    size = 1 << 46

    def mac_at(self, index: int) -> int:
        # The top 6 index bits become the first octet's top 6; then U/L=1, multicast=0.
        return ((index >> 40) << 42) | _LOCAL_BIT | (index & ((1 << 40) - 1))

    def index_of(self, mac: int) -> int | None:
        if (mac >> 40) & 0b11 != 0b10:
            return None
        return ((mac >> 42) << 40) | (mac & ((1 << 40) - 1))

    def describe(self) -> str:
        return "random locally administered MACs (46 bits)"

    def after_unassignable(self, index: int) -> int:
        # The only refused MACs here are libvirt's FE tap octet: the last 2**40 indices (top
        # index bits 111111). Stepping over them one by one takes days; wrap to 02:... at once.
        if index >> 40 == 0b111111:
            return 0
        return (index + 1) % self.size

"""MacAllocator: MACs unique among everything kvmnet can see on a LAN.

Usage::

    with kvmnet.connect("qemu:///system") as h1, kvmnet.connect("qemu+ssh://h2/system") as h2:
        alloc = kvmnet.MacAllocator([h1, h2])
        mac = alloc.allocate()            # "52:54:00:xx:xx:xx", free on both hosts
        alloc.reserve("52:54:00:12:34:56")  # MacInUse names the domain and host using it

The inventory is read once, at construction and on `MacAllocator.refresh`; allocation
is then constant time per MAC. What was read from where is in `MacAllocator.sources`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol, cast
from urllib.parse import urlsplit

from .. import _log
from ..core import validate
from ..core.macs import (
    DEFAULT_PREFIX,
    LocalSpace,
    MacPrefix,
    MacSpace,
    PrefixSpace,
    int_to_mac,
    is_assignable,
    try_parse_mac,
)
from ..errors import (
    CommandFailed,
    InvalidInput,
    InvalidType,
    KvmnetError,
    MacInUse,
    MacSpaceExhausted,
)
from .macledger import MacLedger

if TYPE_CHECKING:
    from ..hostnet.runners.runner import Runner
    from ._libvirt import Connection

__all__ = ["MAX_COUNT", "MacAllocator", "MacMode", "SourceReport", "ledger_for"]

log = _log.get(__name__)

# Random draws before concluding the space is dense and walking a permutation of it instead:
# at 90 % occupancy 32 misses in a row happen with probability 0.9**32 = 3 %.
_RANDOM_TRIES = 32
#: The most MACs `MacAllocator.allocate_many` hands out in one call: more is a typo
#: (``--count 1000000000``) that would otherwise run for minutes and fill memory.
MAX_COUNT = 1_000_000
# kvmnet's own generator: seeded from os.urandom, re-seeded in every forked child (so workers
# forked from one parent never draw the same sequence), and untouched by random.seed().
_RNG = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_RNG.seed)
# Interfaces are the only place a domain schema puts <mac address=...>, and libvirt's
# formatter always writes it as <mac address='...' (then maybe type=/check=). A regex with
# that literal prefix is several times faster than building a tree (bench/mac_alloc.py); an
# extra match (say in <metadata>) can only make one more MAC taken, never one free. Any other
# spelling fails the canonical check, and the host is read again with _DOMAIN_MAC_ANY.
_DOMAIN_MAC = re.compile(r"<mac address='(.{17})")
_DOMAIN_MAC_ANY = re.compile(r"<mac\s+address\s*=\s*['\"]([^'\"]*)['\"]")
_CANONICAL = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
# How many handed-out MACs the HTML view lists by name (the rest as a count).
_HTML_HANDED = 32
#: The source name of a remote host's links, read with ``ip -j link`` over SSH.
REMOTE_LINKS = "host links (ip link over ssh)"


# Who uses some MACs: (prefix, name, suffix, MACs); the message "domain 'web2' on URI" is
# only formatted when someone asks (thousands of entries, few questions).
_Entry = tuple[str, str, str, Collection[str]]


class HostLike(Protocol):
    """What the allocator needs of a `kvmnet.Host`: its URI and libvirt connection."""

    @property
    def uri(self) -> str:
        """The host's libvirt URI."""
        ...

    @property
    def connection(self) -> Connection:
        """The host's open libvirt connection."""
        ...


class MacMode(str, Enum):
    """How `MacAllocator.allocate` draws: under a prefix, or any local unicast MAC."""

    PREFIX = "prefix"
    RANDOM = "random"


@dataclass(frozen=True)
class SourceReport:
    """One inventory source: where it was read, whether that worked, how many MACs it gave.

    Attributes:
        host: the libvirt URI (or namespace) the source was read on.
        source: what was read: ``"domains"``, ``"networks"``, ``"links"``, ``"neighbours"``...
        ok: whether reading it worked.
        count: how many MACs it gave.
        error: why it could not be read, when ``ok`` is False.
    """

    host: str
    source: str
    ok: bool
    count: int
    error: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"{self.source} on {self.host}: {self.count} MACs"
        return f"{self.source} on {self.host}: NOT READ ({self.error})"


def _check_args(
    hosts: object,
    kernel_links: object,
    neighbours: object,
    netns: object,
    runner: object,
    ledger: object,
) -> tuple[HostLike, ...]:
    """MacAllocator's arguments, checked before any source is read; the hosts as a tuple."""
    validate.optional_flag(kernel_links, "kernel_links")
    validate.flag(neighbours, "neighbours")
    validate.netns(netns)
    validate.runner(runner)
    if ledger is not None and not callable(getattr(ledger, "claim", None)):
        raise InvalidType(f"ledger must be a MacLedger or None, got {validate.shown(ledger)}")
    if hasattr(hosts, "connection"):
        return (cast(HostLike, hosts),)
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, Iterable):
        raise InvalidType(
            f"hosts must be a kvmnet.Host or a list of them (from kvmnet.connect), got "
            f"{validate.shown(hosts)}"
        )
    found = tuple(hosts)
    for host in found:
        if not hasattr(host, "connection") or not hasattr(host, "uri"):
            raise InvalidType(
                f"hosts must hold kvmnet.Host objects (from kvmnet.connect), got "
                f"{validate.shown(host)}"
            )
    return cast("tuple[HostLike, ...]", found)


def _check_rng(rng: object) -> None:
    """``None`` or a random source with ``getrandbits`` (a `random.Random`), checked before
    any source is read: a seed given in its place would fail at the first draw."""
    if rng is None:
        return
    if isinstance(rng, type) or not callable(getattr(rng, "getrandbits", None)):
        raise InvalidType(
            f"rng must be a random.Random (e.g. random.Random(42) for repeatable draws) or None, "
            f"got {validate.shown(rng)} ({type(rng).__name__})"
        )


def _check_key(key: object) -> str | None:
    """``allocate``'s and ``allocate_many``'s ``key``: None or text (the same check for both).

    Any str that is text is a key (empty or with control characters too: it is only hashed
    and stored); a lone surrogate is refused, since the key is hashed and stored as UTF-8.

    Raises:
        InvalidType: not a str (bytes, a number, a list).
        InvalidInput: a str holding a lone surrogate.
    """
    if key is None:
        return None
    if not isinstance(key, str):
        raise InvalidType(
            f"key must be a str such as 'web1/nic0', or None, got {validate.shown(key)} "
            f"({type(key).__name__})"
        )
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"key {validate.shown(key)} is not valid text (a lone surrogate: undecodable "
            "bytes): give printable text"
        ) from None
    return key


def is_local_uri(uri: str) -> bool:
    """True for a libvirt URI of this machine (no host name), false for the test driver."""
    parts = urlsplit(uri)
    return not parts.hostname and parts.scheme.split("+")[0] not in {"test", ""}


class MacAllocator:
    """Hands out MACs that no domain, network, host NIC (or neighbour) on ``hosts`` uses.

    Args:
        hosts: one `kvmnet.Host` or several (the LAN's hypervisors): their domains'
            live and persistent XML and their networks are the inventory.
        prefix: bounds the MACs drawn in ``mode="prefix"`` (default 52:54:00).
        mode: ``"prefix"`` draws under ``prefix``; ``"random"`` draws any unicast locally
            administered MAC (46 random bits).
        kernel_links: also read ``ip -j link`` of this machine (or ``netns``): how a local
            host's own links are read (default: when a host's URI is local). A
            ``qemu+ssh://`` host's links are read with ``ip -j link`` over its SSH
            connection; libvirt's interface API is asked only of the test driver (two
            clients listing at once can abort a real libvirtd, see docs/macs.md).
        neighbours: also read ``ip -j neigh`` (MACs seen on the LAN).
        netns: read links and neighbours inside that network namespace.
        ledger: a `MacLedger` shared by the processes of this machine, so two of them
            allocating at once never get the same MAC (see docs/macs.md).
        runner: runs the ``ip`` commands (default: a local or netns runner; inject a
            `RecordingRunner` to test without root).
        rng: the random source (give a seeded ``random.Random`` for repeatable draws).

    Raises:
        InvalidInput: an unknown mode, a prefix together with ``mode="random"``, or
            another bad argument (InvalidType for a wrong type, e.g. a seed as ``rng``).
    """

    def __init__(
        self,
        hosts: HostLike | Iterable[HostLike],
        *,
        prefix: str | MacPrefix | None = None,
        mode: MacMode | str = MacMode.PREFIX,
        kernel_links: bool | None = None,
        neighbours: bool = False,
        netns: str | None = None,
        ledger: MacLedger | None = None,
        runner: Runner | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.hosts = _check_args(hosts, kernel_links, neighbours, netns, runner, ledger)
        _check_rng(rng)
        try:
            self.mode = MacMode(mode)
        except ValueError:
            raise InvalidInput(
                f"unknown MAC allocation mode {validate.shown(mode)}; use 'prefix' or 'random'"
            ) from None
        if self.mode is MacMode.RANDOM and prefix is not None:
            raise InvalidInput(
                f"prefix {validate.shown(str(prefix))} and mode='random' exclude each other: "
                "random mode draws "
                "from every locally administered MAC; drop one of them"
            )
        self.prefix: MacPrefix | None = (
            MacPrefix.parse(prefix if prefix is not None else DEFAULT_PREFIX)
            if self.mode is MacMode.PREFIX
            else None
        )
        self.space: MacSpace = PrefixSpace(self.prefix) if self.prefix is not None else LocalSpace()
        if kernel_links is None:
            kernel_links = netns is not None or any(is_local_uri(h.uri) for h in self.hosts)
        self.kernel_links = kernel_links
        self.neighbours = neighbours
        self.netns = netns
        self.ledger = ledger
        self._runner = runner
        self._rng = rng if rng is not None else _RNG
        self._getrandbits = self._rng.getrandbits
        self._bits = self.space.size.bit_length() - 1
        self._base = self.space.mac_at(0)
        # Under a prefix with a non-zero first octet (validated unicast, not FE) every MAC is
        # assignable, so the fast path in allocate() needs no per-MAC check.
        self._fast = self.prefix is not None and self.prefix.octets[0] != 0
        self._handed: set[str] = set()  # handed out or reserved by this allocator
        self._claimed: set[str] = set()  # claimed in the ledger by this allocator
        self.sources: tuple[SourceReport, ...] = ()
        self._found: list[_Entry] = []
        self._index: dict[str, list[str]] | None = None
        self._taken: set[str] = set()
        self.refresh()

    def __repr__(self) -> str:
        return (
            f"<MacAllocator {self.space.describe()}, {len(self.hosts)} hosts, "
            f"{self._inventory_size} MACs in use, "
            f"{len(self._handed)} handed out>"
        )

    def _repr_html_(self) -> str:
        from ..core import _html

        handed = sorted(self._handed)
        shown = ", ".join(handed[:_HTML_HANDED])
        if len(handed) > _HTML_HANDED:
            shown += f" ... and {len(handed) - _HTML_HANDED} more"
        facts: list[tuple[str, object]] = [
            ("draws from", self.space.describe()),
            ("mode", self.mode.value),
            ("prefix", _html.code(self.prefix) if self.prefix is not None else None),
            ("hosts", _html.code(", ".join(h.uri for h in self.hosts) or "(none)")),
            ("MACs in use", self._inventory_size),
            ("handed out or reserved", len(handed)),
            ("... these", _html.code(shown) if shown else "(none yet)"),
            ("ledger", _html.code(repr(self.ledger)) if self.ledger is not None else "(none)"),
        ]
        parts = [_html.keyvalues(facts, caption="MacAllocator")]
        parts += [_html.callout(str(r), kind="warning") for r in self.failed_sources]
        parts.append(
            _html.table(
                ["host", "source", "read", "MACs"],
                [
                    (
                        _html.code(r.host),
                        r.source,
                        _html.badge("ok")
                        if r.ok
                        else _html.Raw(f"{_html.badge('failed').markup} {_html.escape(r.error)}"),
                        r.count,
                    )
                    for r in self.sources
                ],
                caption="sources read",
            )
        )
        return _html.section("", *parts)

    # -- inventory ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read every source again (what this allocator handed out stays taken)."""
        found: list[_Entry] = []
        reports: list[SourceReport] = []
        # Thousands of small objects are made here and none is garbage: a collector pass
        # in the middle would only cost time (up to a fifth of the inventory, measured).
        collecting = gc.isenabled()
        gc.disable()
        try:
            for host_found, host_reports in _read_hosts(self.hosts):
                found.extend(host_found)
                reports.extend(host_reports)
            if self.kernel_links or self.neighbours:
                reports.extend(self._read_kernel(found))
        finally:
            if collecting:
                gc.enable()
        for report in reports:
            if not report.ok:
                log.warning("MAC inventory: %s", report)
        inventory: set[str] = set()
        for _prefix, _name, _suffix, macs in found:
            inventory.update(macs)
        self._found = found
        self._index = None
        self._inventory_size = len(inventory)
        self._taken = inventory | self._handed
        self.sources = tuple(reports)
        self._cursor = 0
        self._dense = False
        # The permutation walked once random draws keep missing: j -> (a*j + b) mod size is a
        # bijection for odd a and a power-of-two size.
        self._perm_a = self._rng.getrandbits(46) | 1
        self._perm_b = self._rng.getrandbits(46)

    def _users(self) -> dict[str, list[str]]:
        # Built on first question: the inventory itself only needs the set of MACs.
        if self._index is None:
            index: dict[str, list[str]] = {}
            for prefix, name, suffix, macs in self._found:
                who = f"{prefix}{name!r}{suffix}"
                for mac in macs:
                    entry = index.setdefault(mac, [])
                    if who not in entry:
                        entry.append(who)
            self._index = index
        return self._index

    @property
    def in_use(self) -> Mapping[str, tuple[str, ...]]:
        """MAC -> who uses it ("domain 'web2' on qemu:///system", ...), from the inventory."""
        return {mac: tuple(who) for mac, who in self._users().items()}

    @property
    def failed_sources(self) -> tuple[SourceReport, ...]:
        """The sources that could not be read (each was logged as a warning too)."""
        return tuple(r for r in self.sources if not r.ok)

    def used_by(self, mac: str) -> tuple[str, ...]:
        """Who uses ``mac``: the inventory, this allocator, other processes' ledger claims.

        Args:
            mac: the MAC, in any common spelling.

        Returns:
            One description per user; empty when the MAC is free.

        Raises:
            InvalidMac: not a MAC.
        """
        text = validate.mac(mac)
        who = list(self._users().get(text, ()))
        if text in self._handed:
            who.append("this allocator, which handed it out or reserved it already")
        if not who and self.ledger is not None and text not in self._claimed:
            holder = self.ledger.holder(text)
            if holder is not None:
                who.append(holder)
        return tuple(who)

    def is_free(self, mac: str) -> bool:
        """True if nothing seen uses ``mac``.

        A MAC this allocator handed out is not free: it is the caller's now.

        Args:
            mac: the MAC, in any common spelling.

        Returns:
            Whether ``mac`` is free.

        Raises:
            InvalidMac: not a NIC MAC.
        """
        return not self.used_by(mac)

    # -- allocation -----------------------------------------------------------------------

    def allocate(self, *, key: str | None = None) -> str:
        """A MAC free on every host and never handed out before by this allocator.

        Args:
            key: makes it deterministic: the same key and the same LAN state give the same MAC
                (the next free one in the space if the key's own MAC is taken).

        Returns:
            The MAC, lower case with colons.

        Raises:
            MacSpaceExhausted: no free MAC is left in the space.
            InvalidInput: a ``key`` holding a lone surrogate (InvalidType: not a str).
            UntrustedPath: the ledger could have been written by another user (see
                `kvmnet.virt.macledger`).
        """
        if key is not None:
            _check_key(key)
        if key is None and self._fast and not self._dense and self.ledger is None:
            # The common case, inlined: a prefix whose every MAC is assignable, no ledger.
            taken, base, getrandbits, bits = self._taken, self._base, self._getrandbits, self._bits
            for _ in range(_RANDOM_TRIES):
                h = f"{base | getrandbits(bits):012x}"
                mac = f"{h[0:2]}:{h[2:4]}:{h[4:6]}:{h[6:8]}:{h[8:10]}:{h[10:12]}"
                if mac not in taken:
                    taken.add(mac)
                    self._handed.add(mac)
                    return mac
        while True:
            mac = self._probe(key) if key is not None else self._draw()
            self._taken.add(mac)
            if self.ledger is not None:
                if not self.ledger.claim(mac, key=key):
                    continue  # another process on this machine claimed it a moment ago
                self._claimed.add(mac)
            self._handed.add(mac)
            return mac

    def allocate_many(self, count: int, *, key: str | None = None) -> list[str]:
        """``count`` distinct MACs, all or none (with ``key``: ``key/0``, ``key/1``, ...).

        With a ledger the MACs are claimed in one transaction per batch, so the cost per MAC
        does not grow with the count or the ledger's size.

        Args:
            count: How many, 0 to `MAX_COUNT`.
            key: Deterministic keys ``key/i``, as for `allocate`.

        Returns:
            The MACs, in the order drawn.

        Raises:
            InvalidInput: ``count`` is not a whole number from 0 to `MAX_COUNT`, or ``key``
                is refused as `allocate` refuses it (checked before anything is drawn or
                claimed).
            UntrustedPath: The ledger could have been written by another user.
            MacSpaceExhausted: The space has fewer than ``count`` free MACs (checked at once
                where the inventory shows it; a later shortfall releases every claim made).
        """
        _check_count(count)
        key = _check_key(key)
        if count == 0:
            return []
        self._check_room(count)
        keys = [None] * count if key is None else [f"{key}/{i}" for i in range(count)]
        result: list[str] = [""] * count
        pending = list(range(count))
        drawn: list[str] = []  # added to _taken by this call: undone if it fails
        claimed: list[str] = []
        walk = (self._dense, self._cursor)  # so is the walk over a dense space
        try:
            while pending:
                batch: list[tuple[int, str]] = []
                for i in pending:
                    wanted = keys[i]
                    mac = self._probe(wanted) if wanted is not None else self._draw()
                    self._taken.add(mac)
                    drawn.append(mac)
                    batch.append((i, mac))
                refused: set[str] = set()
                if self.ledger is not None:
                    refused = set(self.ledger.claim_many([(mac, keys[i]) for i, mac in batch]))
                pending = []
                for i, mac in batch:
                    if mac in refused:
                        pending.append(i)  # another process holds it: it stays taken here
                    else:
                        result[i] = mac
                        claimed.append(mac)
        except BaseException:
            self._taken.difference_update(drawn)
            self._dense, self._cursor = walk
            if self.ledger is not None and claimed:
                self.ledger.release_many(claimed)
            raise
        if self.ledger is not None:
            self._claimed.update(result)
        self._handed.update(result)
        return result

    def _check_room(self, count: int) -> None:
        """Refuse at once a count larger than the free MACs of the space."""
        size = self.space.size
        if count <= size - len(self._taken):
            return  # room even if every taken MAC were in the space: no need to count them
        index_of = self.space.index_of
        used = sum(1 for mac in self._taken if index_of(_value(mac)) is not None)
        if count > size - used:
            raise MacSpaceExhausted(
                f"cannot hand out {count} MACs: {self.space.describe()} has {size - used} free "
                f"({used} in use or handed out); ask for fewer, use a shorter prefix (more free "
                "octets) or mode='random'"
            )

    def release_claims(self) -> None:
        """Drop every ledger claim this allocator holds (the MACs are in libvirt's XML now,
        or the edit they were for failed), and close the ledger's database connection until
        its next use. What it handed out stays taken here."""
        if self.ledger is not None:
            if self._claimed:
                self.ledger.release_many(self._claimed)
            self.ledger.close()
        self._claimed.clear()

    def reserve(self, mac: str) -> str:
        """Take a user-chosen MAC: normalised, checked, and never handed out afterwards.

        A MAC starting with ``fe`` (libvirt's tap MACs; libvirt refuses it for a guest) is
        InvalidMac too. Usage: ``alloc.reserve("52-54-00-AB-CD-EF") == "52:54:00:ab:cd:ef"``

        Args:
            mac: the MAC, in any common spelling.

        Returns:
            The normalised MAC.

        Raises:
            InvalidMac: malformed, multicast, broadcast, zero or ``fe:``.
            MacInUse: naming who uses it (or the process whose ledger claim holds it).
            UntrustedPath: a ledger another user could have written.
        """
        text = validate.guest_mac(mac)
        who = self.used_by(text)
        if not who and self.ledger is not None:
            if self.ledger.claim(text):
                self._claimed.add(text)
            else:
                who = (self.ledger.holder(text) or "another kvmnet process on this machine",)
        if who:
            raise MacInUse(
                f"MAC {text} is already used by {'; '.join(who)}; choose another MAC or let "
                "kvmnet allocate one (omit the MAC)",
                mac=text,
                used_by=who,
            )
        self._taken.add(text)
        self._handed.add(text)
        return text

    def release(self, mac: str) -> None:
        """Forget that this allocator handed ``mac`` out (e.g. the define that used it failed).

        Args:
            mac: the MAC handed out or reserved earlier.

        Raises:
            InvalidMac: not a MAC.
        """
        text = validate.mac(mac)
        self._handed.discard(text)
        if text not in self._users():
            self._taken.discard(text)
        if self.ledger is not None and text in self._claimed:
            self._claimed.discard(text)
            self.ledger.release(text)

    def _draw(self) -> str:
        if not self._dense and self._fast:
            taken, base, getrandbits, bits = self._taken, self._base, self._getrandbits, self._bits
            for _ in range(_RANDOM_TRIES):
                h = f"{base | getrandbits(bits):012x}"
                mac = f"{h[0:2]}:{h[2:4]}:{h[4:6]}:{h[6:8]}:{h[8:10]}:{h[10:12]}"
                if mac not in taken:
                    return mac
            log.debug("MAC space %s is dense; walking it", self.space.describe())
            self._dense = True
        if not self._dense:
            mac_at, taken, bits = self.space.mac_at, self._taken, self.space.size.bit_length() - 1
            getrandbits = self._rng.getrandbits
            for _ in range(_RANDOM_TRIES):
                value = mac_at(getrandbits(bits))
                if is_assignable(value):
                    mac = int_to_mac(value)
                    if mac not in taken:
                        return mac
            log.debug("MAC space %s is dense; walking it", self.space.describe())
            self._dense = True
        return self._walk()

    def _walk(self) -> str:
        size, mask = self.space.size, self.space.size - 1
        a, b, taken = self._perm_a, self._perm_b, self._taken
        while self._cursor < size:
            value = self.space.mac_at((a * self._cursor + b) & mask)
            self._cursor += 1
            if is_assignable(value):
                mac = int_to_mac(value)
                if mac not in taken:
                    return mac
        raise self._exhausted()

    def _probe(self, key: str) -> str:
        space = self.space
        size = space.size
        # The key's own index: its hash, or, where that MAC is one no guest may have (the FE
        # tap octet is 1/64 of the random space), the hash of "key\0n" for the first n that
        # gives one, so such keys spread as evenly as the others instead of piling up on the
        # first MAC after the refused run. (A linear walk through that run took 2**40 steps:
        # the fleet test found it hanging a module for good.)
        for attempt in range(_KEY_REHASHES):
            salted = key if attempt == 0 else f"{key}\0{attempt}"
            digest = hashlib.sha256(salted.encode()).digest()
            index = int.from_bytes(digest[:8], "big") & (size - 1)
            if is_assignable(space.mac_at(index)):
                break
        taken = self._taken
        # Linear probing from there past MACs taken already; a refused run is stepped over
        # whole (space.after_unassignable).
        for _ in range(size):
            value = space.mac_at(index)
            if not is_assignable(value):
                index = space.after_unassignable(index)
                continue
            mac = int_to_mac(value)
            if mac not in taken:
                return mac
            index = (index + 1) & (size - 1)
        raise self._exhausted()

    def _exhausted(self) -> MacSpaceExhausted:
        index_of = self.space.index_of
        used = sum(1 for mac in self._taken if index_of(_value(mac)) is not None)
        return MacSpaceExhausted(
            f"no free MAC left in {self.space.describe()}: {used} are in use or handed out; "
            "use a shorter prefix (more free octets) or mode='random'"
        )

    def _read_kernel(self, found: list[_Entry]) -> list[SourceReport]:
        """The kernel's links and neighbours (``ip -j``) of this machine or of ``netns``."""
        where = f"network namespace {self.netns!r}" if self.netns else "this machine"
        wanted = [("link", self.kernel_links), ("neigh", self.neighbours)]
        reports: list[SourceReport] = []
        for what, on in wanted:
            if not on:
                continue
            source = "kernel links (ip link)" if what == "link" else "neighbour table (ip neigh)"
            try:
                rows = self._ip_json([what, "show"], netns=self.netns)
            except KvmnetError as exc:
                reports.append(SourceReport(where, source, False, 0, str(exc)))
                continue
            count = _ip_entries(what, rows, f" ({where})", found)
            reports.append(SourceReport(where, source, True, count))
        return reports

    def _ip_json(self, args: list[str], *, netns: str | None) -> list[dict[str, object]]:
        """``ip -j ARGS`` through the allocator's runner (this machine or ``netns``)."""
        from ..hostnet.runners.runner import default_runner

        return _ip_json(self._runner if self._runner is not None else default_runner(netns), args)


def _ip_entries(what: str, rows: list[dict[str, object]], suffix: str, found: list[_Entry]) -> int:
    """An entry per row of ``ip -j link`` (``what="link"``) or ``ip -j neigh``, named with
    ``suffix`` (where it was read); returns how many distinct MACs they hold."""
    seen: set[str] = set()
    for row in rows:
        if what == "link":
            entry = ("host link ", str(row.get("ifname")), suffix)
            fields: tuple[str, ...] = ("address", "permaddr")
        else:
            entry = (f"neighbour {row.get('dst')} on ", str(row.get("dev")), suffix)
            fields = ("lladdr",)
        macs = _canonical(str(row[f]) for f in fields if isinstance(row.get(f), str))
        found.append((*entry, macs))
        seen |= macs
    return len(seen)


def _ip_json(runner: Runner, args: list[str]) -> list[dict[str, object]]:
    """``ip -j ARGS`` through ``runner``: the one place the allocator runs a command."""
    result = runner.run(["ip", "-j", *args], check=True)
    try:
        rows = json.loads(result.stdout or "[]")
    except ValueError as exc:
        raise CommandFailed(
            f"`ip -j {' '.join(args)}` printed no JSON ({exc}); is iproute2 too old?",
            argv=result.argv,
            returncode=result.returncode,
        ) from exc
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


# Rehashes of a key whose MAC is refused before the probe walks on: with at most 1/64 of a
# space refused, 16 leave a chance of 2**-96 that a key is not placed evenly.
_KEY_REHASHES = 16


def ledger_for(uri: str) -> MacLedger | None:
    """The ledger an edit of a domain on ``uri`` claims its MAC in: the machine's default one.

    None for libvirt's test driver, whose state lives inside each process: two processes
    never share a test-driver domain, so a shared ledger could only report false conflicts.

    Args:
        uri: The host's libvirt URI.

    Returns:
        `MacLedger.default`, or None for ``test:`` URIs.
    """
    if urlsplit(uri).scheme.split("+")[0] == "test":
        return None
    return MacLedger.default()


def _check_count(count: object) -> None:
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidInput(
            f"count {validate.shown(count)} is not a whole number; give an int from 0 to "
            f"{MAX_COUNT:,}"
        )
    if not 0 <= count <= MAX_COUNT:
        raise InvalidInput(
            f"count {validate.shown(count)} is out of range: kvmnet hands out 0 to "
            f"{MAX_COUNT:,} MACs at once; "
            "ask in several calls for more"
        )


def _all_canonical(macs: set[str]) -> bool:
    """True if every string is a lower-case colon MAC: a few C-speed passes over them all."""
    if not macs:
        return True
    joined = " ".join(macs)
    if len(joined) != 18 * len(macs) - 1 or joined.lower() != joined:
        return False
    if not joined.isprintable():  # no tab or newline hiding inside a value
        return False
    try:
        return len(bytes.fromhex(joined.replace(":", " "))) == 6 * len(macs)
    except ValueError:
        return False


def _value(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def _canonical(texts: Iterable[str]) -> set[str]:
    """The canonical colon form of every well-formed MAC in ``texts``."""
    macs: set[str] = set()
    for text in texts:
        if _CANONICAL.fullmatch(text):
            macs.add(text)
        else:
            value = try_parse_mac(text)
            if value is not None:
                macs.add(int_to_mac(value))
    return macs


def _read_hosts(hosts: Sequence[HostLike]) -> list[tuple[list[_Entry], list[SourceReport]]]:
    """Each host's entries and reports, in the order of ``hosts``; several hosts are read at
    once, a thread each: libvirt-python releases the GIL while it waits for a daemon, so
    hosts with daemons of their own answer together (wall time near the slowest one's)."""

    def read(host: HostLike) -> tuple[list[_Entry], list[SourceReport]]:
        found: list[_Entry] = []
        return found, _read_host(host, found)

    if len(hosts) <= 1:
        return [read(host) for host in hosts]
    from concurrent.futures import ThreadPoolExecutor  # only several hosts need threads

    with ThreadPoolExecutor(len(hosts), thread_name_prefix="kvmnet-mac-inventory") as pool:
        return list(pool.map(read, hosts))


def _read_host(host: HostLike, found: list[_Entry]) -> list[SourceReport]:
    uri, conn = host.uri, host.connection
    reports = [_read_domains(conn, uri, found), _read_networks(conn, uri, found)]
    # The host's own links. libvirt's interface API (virConnectListAllInterfaces) is not
    # asked on a real daemon: its udev backend shares one libudev handle between the
    # daemon's worker threads without a lock, and libudev is not thread-safe, so two
    # clients listing at once can abort libvirtd (seen in CI: "Assertion '*q > 0' failed
    # ... udev_ref()"). The kernel's view is read with `ip -j link` instead: this
    # machine's by the allocator itself (kernel_links), another machine's over SSH.
    if urlsplit(uri).scheme.split("+")[0] == "test":
        reports.append(_read_host_interfaces(conn, uri, found))  # runs in this process
    elif not is_local_uri(uri):
        reports.append(_read_remote_links(host, found))
    return reports


def _read_domains(conn: Connection, uri: str, found: list[_Entry]) -> SourceReport:
    try:
        ours, failed = _domain_macs(conn, uri, careful=False)
        seen: set[str] = set().union(*[entry[3] for entry in ours])
        # libvirt writes canonical MACs; a few C-speed passes over them all check that. Only
        # if something else shows up is the host read again, the careful way.
        if not _all_canonical(seen):
            log.debug("non-canonical MACs in the domain XML of %s; reading it again", uri)
            ours, failed = _domain_macs(conn, uri, careful=True)
            seen = set().union(*[entry[3] for entry in ours])
    except KvmnetError as exc:
        return SourceReport(uri, "domains", False, 0, str(exc))
    found.extend(ours)
    if failed:
        return SourceReport(uri, "domains", False, len(seen), "; ".join(failed))
    return SourceReport(uri, "domains", True, len(seen))


def _domain_macs(conn: Connection, uri: str, *, careful: bool) -> tuple[list[_Entry], list[str]]:
    """An entry per domain, from its live and (if running) persistent XML; and failures."""
    failed: list[str] = []
    suffix = f" on {uri}"
    findall = (_DOMAIN_MAC_ANY if careful else _DOMAIN_MAC).findall

    def scan(name: str, live: str, persistent: str | None, error: str | None) -> _Entry:
        if error is not None:
            failed.append(f"domain {name!r}: {error}")
        macs = findall(live if persistent is None else live + persistent)
        return "domain ", name, suffix, _canonical(macs) if careful else macs

    return conn.map_domain_xmls(scan), failed


def _read_networks(conn: Connection, uri: str, found: list[_Entry]) -> SourceReport:
    from lxml import etree

    try:
        nets = conn.network_xmls()
    except KvmnetError as exc:
        return SourceReport(uri, "networks", False, 0, str(exc))
    seen: set[str] = set()
    for name, _active, xml in nets:
        root = etree.fromstring(xml.encode())
        for el in root.iterfind("mac"):
            macs = _canonical([el.get("address") or ""])
            found.append(("network ", name, f" on {uri} (its bridge's MAC)", macs))
            seen |= macs
        for el in root.iterfind("ip/dhcp/host"):
            macs = _canonical([el.get("mac") or ""])
            suffix = f" on {uri} (a DHCP reservation for {el.get('ip')})"
            found.append(("network ", name, suffix, macs))
            seen |= macs
    return SourceReport(uri, "networks", True, len(seen))


def _read_remote_links(host: HostLike, found: list[_Entry]) -> SourceReport:
    """The links of the machine a remote URI names, by ``ip -j link`` over the Host's SSH
    runner (a tcp/tls URI names no machine kvmnet can reach: reported as not read)."""
    uri, source = host.uri, REMOTE_LINKS
    made: Runner | None = None
    try:
        # A kvmnet.Host's own runner: its one SSH connection, closed with the Host.
        own = getattr(host, "runner", None)
        if callable(own):
            runner = cast("Runner", own())
        else:  # another HostLike: a runner for this read only
            from ..hostnet.onmachine import runner_for
            from ..hostnet.runners.machine import machine_of

            runner = made = runner_for(machine_of(uri))
        rows = _ip_json(runner, ["link", "show"])
    except KvmnetError as exc:
        return SourceReport(uri, source, False, 0, str(exc))
    finally:
        close = getattr(made, "close", None)
        if callable(close):
            close()
    return SourceReport(uri, source, True, _ip_entries("link", rows, f" on {uri}", found))


def _read_host_interfaces(conn: Connection, uri: str, found: list[_Entry]) -> SourceReport:
    source = "host interfaces (libvirt)"
    try:
        ifaces = conn.host_interface_macs()
    except KvmnetError as exc:
        return SourceReport(uri, source, False, 0, str(exc))
    if ifaces is None:
        return SourceReport(
            uri,
            source,
            False,
            0,
            "this libvirt driver has no interface API; for a local host kernel_links=True "
            "reads the kernel's view instead",
        )
    seen: set[str] = set()
    for name, mac in ifaces:
        macs = _canonical([mac])
        found.append(("host interface ", name, f" on {uri}", macs))
        seen |= macs
    return SourceReport(uri, source, True, len(seen))

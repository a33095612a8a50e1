"""MacAllocator: MACs unique among everything kvmnet can see on a LAN.

Usage::

    with kvmnet.connect("qemu:///system") as h1, kvmnet.connect("qemu+ssh://h2/system") as h2:
        alloc = kvmnet.MacAllocator([h1, h2])
        mac = alloc.allocate()            # "52:54:00:xx:xx:xx", free on both hosts
        alloc.reserve("52:54:00:12:34:56")  # MacInUse names the domain and host using it

The inventory is read once, at construction and on :meth:`MacAllocator.refresh`; allocation
is then constant time per MAC. What was read from where is in :attr:`MacAllocator.sources`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol, cast
from urllib.parse import urlsplit

from .errors import CommandFailed, InvalidInput, KvmnetError, MacInUse, MacSpaceExhausted
from .macledger import MacLedger
from .macs import (
    DEFAULT_PREFIX,
    LocalSpace,
    MacPrefix,
    MacSpace,
    PrefixSpace,
    int_to_mac,
    is_assignable,
    parse_mac,
    try_parse_mac,
)

if TYPE_CHECKING:
    from ._libvirt import Connection
    from .hostnet.runner import Runner

__all__ = ["MacAllocator", "MacMode", "SourceReport"]

log = logging.getLogger(__name__)

# Random draws before concluding the space is dense and walking a permutation of it instead:
# at 90 % occupancy 32 misses in a row happen with probability 0.9**32 = 3 %.
_RANDOM_TRIES = 32
# Interfaces are the only place a domain schema puts <mac address=...>; a regex over the text
# is several times faster than building a tree, and any extra match only makes a MAC taken.
_DOMAIN_MAC = re.compile(r"<mac\s+address\s*=\s*['\"]([^'\"]*)['\"]")
_LIVE_ID = re.compile(r"<domain\b[^>]*\sid\s*=\s*['\"](\d+)['\"]")
_NAME = re.compile(r"<name>([^<]*)</name>")


class HostLike(Protocol):
    """What the allocator needs of a :class:`kvmnet.Host`: its URI and libvirt connection."""

    @property
    def uri(self) -> str: ...

    @property
    def connection(self) -> Connection: ...


class MacMode(str, Enum):
    """How :meth:`MacAllocator.allocate` draws: under a prefix, or any local unicast MAC."""

    PREFIX = "prefix"
    RANDOM = "random"


@dataclass(frozen=True)
class SourceReport:
    """One inventory source: where it was read, whether that worked, how many MACs it gave."""

    host: str
    source: str
    ok: bool
    count: int
    error: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"{self.source} on {self.host}: {self.count} MACs"
        return f"{self.source} on {self.host}: NOT READ ({self.error})"


def is_local_uri(uri: str) -> bool:
    """True for a libvirt URI of this machine (no host name), false for the test driver."""
    parts = urlsplit(uri)
    return not parts.hostname and parts.scheme.split("+")[0] not in {"test", ""}


class MacAllocator:
    """Hands out MACs that no domain, network, host NIC (or neighbour) on ``hosts`` uses.

    ``prefix`` (default 52:54:00) bounds the MACs drawn in ``mode="prefix"``;
    ``mode="random"`` draws any unicast locally administered MAC (46 random bits).
    ``kernel_links``: also read ``ip -j link`` (default: when a host's URI is local);
    ``neighbours``: also read ``ip -j neigh``; ``netns``: read both inside that namespace.
    ``runner`` runs those ``ip`` commands (default: a local or netns runner; inject a
    :class:`~kvmnet.hostnet.runner.RecordingRunner` to test without root).
    ``ledger``: a :class:`MacLedger` shared by the processes of this machine, so two of them
    allocating at once never get the same MAC (see docs/macs.md).
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
        self.hosts: tuple[HostLike, ...] = (
            (cast(HostLike, hosts),) if hasattr(hosts, "connection") else tuple(hosts)
        )
        try:
            self.mode = MacMode(mode)
        except ValueError:
            raise InvalidInput(
                f"unknown MAC allocation mode {mode!r}; use 'prefix' or 'random'"
            ) from None
        if self.mode is MacMode.RANDOM and prefix is not None:
            raise InvalidInput(
                f"prefix {str(prefix)!r} and mode='random' exclude each other: random mode draws "
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
        self._rng = rng if rng is not None else random.SystemRandom()
        self._handed: set[int] = set()  # handed out or reserved by this allocator
        self._claimed: set[int] = set()  # claimed in the ledger by this allocator
        self.sources: tuple[SourceReport, ...] = ()
        self._users: dict[int, list[str]] = {}
        self._taken: set[int] = set()
        self.refresh()

    def __repr__(self) -> str:
        return (
            f"<MacAllocator {self.space.describe()}, {len(self.hosts)} hosts, "
            f"{len(self._users)} MACs in use, {len(self._handed)} handed out>"
        )

    # -- inventory ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read every source again (what this allocator handed out stays taken)."""
        users: dict[int, list[str]] = {}
        reports: list[SourceReport] = []
        for host in self.hosts:
            reports.extend(_read_host(host, users))
        if self.kernel_links or self.neighbours:
            reports.extend(self._read_kernel(users))
        for report in reports:
            if not report.ok:
                log.warning("MAC inventory: %s", report)
        self._users = users
        self.sources = tuple(reports)
        self._taken = set(users) | self._handed
        self._cursor = 0
        self._dense = False
        # The permutation walked once random draws keep missing: j -> (a*j + b) mod size is a
        # bijection for odd a and a power-of-two size.
        self._perm_a = self._rng.getrandbits(46) | 1
        self._perm_b = self._rng.getrandbits(46)

    @property
    def in_use(self) -> Mapping[str, tuple[str, ...]]:
        """MAC -> who uses it ("domain 'web2' on qemu:///system", ...), from the inventory."""
        return {int_to_mac(v): tuple(who) for v, who in self._users.items()}

    @property
    def failed_sources(self) -> tuple[SourceReport, ...]:
        return tuple(r for r in self.sources if not r.ok)

    def used_by(self, mac: str) -> tuple[str, ...]:
        """Who uses ``mac`` according to the inventory and this allocator (empty if free)."""
        value = parse_mac(mac)
        who = list(self._users.get(value, ()))
        if value in self._handed:
            who.append("this allocator (handed out or reserved already)")
        return tuple(who)

    def is_free(self, mac: str) -> bool:
        """True if nothing seen uses ``mac``; :class:`InvalidMac` if it is not a NIC MAC."""
        value = parse_mac(mac)
        if value in self._taken:
            return False
        return self.ledger is None or value in self._claimed or self.ledger.holder(value) is None

    # -- allocation -----------------------------------------------------------------------

    def allocate(self, *, key: str | None = None) -> str:
        """A MAC free on every host and never handed out before by this allocator.

        ``key`` makes it deterministic: the same key and the same LAN state give the same MAC
        (the next free one in the space if the key's own MAC is taken).
        Raises :class:`MacSpaceExhausted` when no free MAC is left in the space.
        """
        while True:
            value = self._probe(key) if key is not None else self._draw()
            if self.ledger is not None and not self.ledger.claim(value):
                # Another process on this machine claimed it a moment ago.
                self._taken.add(value)
                continue
            if self.ledger is not None:
                self._claimed.add(value)
            self._taken.add(value)
            self._handed.add(value)
            return int_to_mac(value)

    def allocate_many(self, count: int, *, key: str | None = None) -> list[str]:
        """``count`` distinct MACs (with ``key``: ``key/0``, ``key/1``, ...)."""
        if key is None:
            return [self.allocate() for _ in range(count)]
        return [self.allocate(key=f"{key}/{i}") for i in range(count)]

    def reserve(self, mac: str) -> str:
        """Take a user-chosen MAC: normalised, checked, and never handed out afterwards.

        Raises :class:`InvalidMac` if malformed, multicast, broadcast or zero, and
        :class:`MacInUse` naming who uses it. Returns the normalised MAC.
        """
        value = parse_mac(mac)
        text = int_to_mac(value)
        who = list(self._users.get(value, ()))
        if value in self._handed:
            who.append("this allocator, which handed it out or reserved it already")
        if not who and self.ledger is not None and value not in self._claimed:
            holder = self.ledger.holder(value)
            if holder is not None:
                who.append(holder)
        if who:
            raise MacInUse(
                f"MAC {text} is already used by {'; '.join(who)}; choose another MAC or let "
                "kvmnet allocate one (omit the MAC)",
                mac=text,
                used_by=who,
            )
        if self.ledger is not None:
            if not self.ledger.claim(value):
                holder = self.ledger.holder(value) or "another process on this machine"
                raise MacInUse(
                    f"MAC {text} was just claimed by {holder}; choose another MAC",
                    mac=text,
                    used_by=[holder],
                )
            self._claimed.add(value)
        self._taken.add(value)
        self._handed.add(value)
        return text

    def _draw(self) -> int:
        if not self._dense:
            space, taken, bits = self.space, self._taken, self.space.size.bit_length() - 1
            getrandbits = self._rng.getrandbits
            for _ in range(_RANDOM_TRIES):
                value = space.mac_at(getrandbits(bits))
                if value not in taken and is_assignable(value):
                    return value
            log.debug("MAC space %s is dense; walking it", space.describe())
            self._dense = True
        return self._walk()

    def _walk(self) -> int:
        size, mask = self.space.size, self.space.size - 1
        a, b, taken = self._perm_a, self._perm_b, self._taken
        while self._cursor < size:
            value = self.space.mac_at((a * self._cursor + b) & mask)
            self._cursor += 1
            if value not in taken and is_assignable(value):
                return value
        raise self._exhausted()

    def _probe(self, key: str) -> int:
        size = self.space.size
        digest = hashlib.sha256(key.encode()).digest()
        start = int.from_bytes(digest[:8], "big") & (size - 1)
        taken = self._taken
        for step in range(size):
            value = self.space.mac_at((start + step) & (size - 1))
            if value not in taken and is_assignable(value):
                return value
        raise self._exhausted()

    def _read_kernel(self, users: dict[int, list[str]]) -> list[SourceReport]:
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
            seen: set[int] = set()
            for row in rows:
                if what == "link":
                    who = f"host link {row.get('ifname')!r} ({where})"
                    fields: tuple[str, ...] = ("address", "permaddr")
                else:
                    who = f"neighbour {row.get('dst')} on {row.get('dev')!r} ({where})"
                    fields = ("lladdr",)
                for name in fields:
                    value = row.get(name)
                    if isinstance(value, str):
                        _add(users, value, who, seen)
            reports.append(SourceReport(where, source, True, len(seen)))
        return reports

    def _ip_json(self, args: list[str], *, netns: str | None) -> list[dict[str, object]]:
        """``ip -j ARGS`` through the runner: the one place the allocator runs a command."""
        from .hostnet.runner import default_runner

        runner = self._runner if self._runner is not None else default_runner(netns)
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

    def _exhausted(self) -> MacSpaceExhausted:
        used = sum(1 for v in self._taken if self.space.index_of(v) is not None)
        return MacSpaceExhausted(
            f"no free MAC left in {self.space.describe()}: {used} are in use or handed out; "
            "use a shorter prefix (more free octets) or mode='random'"
        )


def _add(users: dict[int, list[str]], mac: str, who: str, seen: set[int]) -> None:
    """Record that ``who`` uses ``mac``; ``seen`` collects the source's distinct MACs."""
    value = try_parse_mac(mac)
    if value is None:
        return
    seen.add(value)
    entry = users.setdefault(value, [])
    if who not in entry:
        entry.append(who)


def _read_host(host: HostLike, users: dict[int, list[str]]) -> list[SourceReport]:
    uri = host.uri
    conn = host.connection
    reports = [_read_domains(conn, uri, users), _read_networks(conn, uri, users)]
    reports.append(_read_host_interfaces(conn, uri, users))
    return reports


def _read_domains(conn: Connection, uri: str, users: dict[int, list[str]]) -> SourceReport:
    try:
        handles = conn.list_domains()
    except KvmnetError as exc:
        return SourceReport(uri, "domains", False, 0, str(exc))
    seen: set[int] = set()
    failed: list[str] = []
    for handle in handles:
        who = f"domain {handle.name!r} on {uri}"
        try:
            live = handle.xml()
            # A running domain's live XML carries id='N'; only then can the persistent
            # definition differ (a next-boot-only NIC), so only then is it read too.
            texts = [live, handle.xml(inactive=True)] if _LIVE_ID.search(live) else [live]
        except KvmnetError as exc:
            failed.append(f"{handle.name!r}: {exc}")
            continue
        for text in texts:
            for mac in _DOMAIN_MAC.findall(text):
                _add(users, mac, who, seen)
    if failed:
        return SourceReport(uri, "domains", False, len(seen), "; ".join(failed))
    return SourceReport(uri, "domains", True, len(seen))


def _read_networks(conn: Connection, uri: str, users: dict[int, list[str]]) -> SourceReport:
    from lxml import etree

    try:
        nets = conn.network_xmls()
    except KvmnetError as exc:
        return SourceReport(uri, "networks", False, 0, str(exc))
    seen: set[int] = set()
    for name, _active, xml in nets:
        root = etree.fromstring(xml.encode())
        for el in root.iterfind("mac"):
            who = f"network {name!r} on {uri} (its bridge's MAC)"
            _add(users, el.get("address") or "", who, seen)
        for el in root.iterfind("ip/dhcp/host"):
            who = f"network {name!r} on {uri} (a DHCP reservation for {el.get('ip')})"
            _add(users, el.get("mac") or "", who, seen)
    return SourceReport(uri, "networks", True, len(seen))


def _read_host_interfaces(conn: Connection, uri: str, users: dict[int, list[str]]) -> SourceReport:
    try:
        ifaces = conn.host_interface_macs()
    except KvmnetError as exc:
        return SourceReport(uri, "host interfaces (libvirt)", False, 0, str(exc))
    if ifaces is None:
        return SourceReport(
            uri,
            "host interfaces (libvirt)",
            False,
            0,
            "this libvirt driver has no interface API; for a local host kernel_links=True "
            "reads the kernel's view instead",
        )
    seen: set[int] = set()
    for name, mac in ifaces:
        _add(users, mac, f"host interface {name!r} on {uri}", seen)
    return SourceReport(uri, "host interfaces (libvirt)", True, len(seen))


def describe_sources(reports: Sequence[SourceReport]) -> str:
    """One line per source, for logs and the CLI's ``-v``."""
    return "\n".join(str(r) for r in reports)

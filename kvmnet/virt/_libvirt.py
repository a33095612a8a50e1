"""The one module that imports libvirt.

It opens connections, owns the ``VIR_*`` flags, silences libvirt's default error printer when
a connection opens (never at import), and turns ``libvirt.libvirtError`` into kvmnet errors at
this single boundary. Everything above it sees `Connection` and plain strings.
Without libvirt-python, importing it raises `LibvirtMissing` saying how
to install it: only what connects imports this module, so the rest of kvmnet works.
"""

from __future__ import annotations

import _thread
import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from .. import _log
from ..core.validate import one_line, shown
from ..errors import (
    ConnectionFailed,
    DomainNotFound,
    LibvirtError,
    LibvirtMissing,
    LiveChangeUnsupported,
    NetworkNotFound,
)


def _libvirt_missing(exc: ImportError) -> LibvirtMissing:
    """One line saying how to get libvirt-python into this Python (it has no wheels)."""
    import sys

    if exc.name != "libvirt":  # installed, but its C part does not load
        return LibvirtMissing(
            f"libvirt-python is installed but does not load ({exc}): install the system's "
            "libvirt library it was built against (Debian: libvirt0, Fedora: libvirt-libs), "
            "or rebuild it: pip install --force-reinstall --no-cache-dir libvirt-python"
        )
    return LibvirtMissing(
        f"libvirt-python is not installed in {sys.prefix}: pip install libvirt-python "
        "(it compiles against libvirt: apt install libvirt-dev pkg-config gcc python3-dev; "
        "Fedora: dnf install libvirt-devel pkgconf-pkg-config gcc python3-devel), or use a "
        "venv made with --system-site-packages and the distro's python3-libvirt"
    )


try:
    import libvirt
except ImportError as exc:  # only connecting needs libvirt: say how to get it, no traceback
    raise _libvirt_missing(exc) from exc

if TYPE_CHECKING:
    from ._records import DomainXmls, Lease, NetworkLease, ReadBack

log = _log.get(__name__)
T = TypeVar("T")

__all__ = [
    "DEFAULT_KEEPALIVE",
    "Connection",
    "DomainHandle",
    "DomainXmls",
    "Lease",
    "NetworkLease",
    "ReadBack",
    "open_connection",
    "read_back",
]

#: libvirt keepalive: a ping every 5 s, the connection given up after 3 unanswered ones, so a
#: call on a frozen daemon fails after about 20 s instead of hanging forever.
DEFAULT_KEEPALIVE = (5, 3)
#: Seconds to wait for a fresh connection when reading back what a failed change left.
DEFAULT_READBACK_TIMEOUT = 10.0

# Flags, named for what kvmnet means by them.
XML_INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE
AFFECT_LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
AFFECT_CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG

ERR_NO_DOMAIN = libvirt.VIR_ERR_NO_DOMAIN
ERR_NO_NETWORK = libvirt.VIR_ERR_NO_NETWORK
ERR_NO_SUPPORT = libvirt.VIR_ERR_NO_SUPPORT
ERR_OPERATION_UNSUPPORTED = libvirt.VIR_ERR_OPERATION_UNSUPPORTED
ERR_CONFIG_UNSUPPORTED = libvirt.VIR_ERR_CONFIG_UNSUPPORTED
ERR_OPERATION_INVALID = libvirt.VIR_ERR_OPERATION_INVALID
ERR_INVALID_CONN = libvirt.VIR_ERR_INVALID_CONN

ADDR_SRC_LEASE = libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE
ADDR_SRC_AGENT = libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT
ADDR_SRC_ARP = libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP

UNSUPPORTED_CODES = frozenset({ERR_NO_SUPPORT, ERR_OPERATION_UNSUPPORTED, ERR_CONFIG_UNSUPPORTED})
_handler_installed = False
# threading.Lock is this: the threading module itself loads only when a thread starts (it
# costs every command-line start a few ms, and the test driver needs no thread).
_event_loop_lock = _thread.allocate_lock()
_event_loop_pid: int | None = None  # the process whose thread runs the loop


def _ignore_libvirt_error(_ctx: object, _err: object) -> None:
    """libvirt's default handler prints every error to stderr; kvmnet raises instead."""


def _install_error_handler() -> None:
    global _handler_installed
    if not _handler_installed:
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        _handler_installed = True


def _run_event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


def _ensure_event_loop() -> None:
    """libvirt's default event loop, in a daemon thread: keepalive pings need one.

    Registered once per process, before the first connection that wants keepalive (libvirt
    only gives keepalive to connections opened after an event implementation exists). A
    forked child inherits the registration but not the thread: it gets a thread of its own.
    """
    global _event_loop_pid
    with _event_loop_lock:
        if _event_loop_pid == os.getpid():
            return
        if _event_loop_pid is None:
            libvirt.virEventRegisterDefaultImpl()
        import threading

        threading.Thread(target=_run_event_loop, name="kvmnet-libvirt-events", daemon=True).start()
        _event_loop_pid = os.getpid()


def error_code(exc: BaseException) -> int | None:
    if isinstance(exc, libvirt.libvirtError):
        code = exc.get_error_code()
        return int(code) if code is not None else None
    return None


def is_unsupported(exc: BaseException) -> bool:
    """True when libvirt says the driver cannot do this at all (not that it failed)."""
    return error_code(exc) in UNSUPPORTED_CODES


class translated:  # lower case: read as a verb, `with translated("..."):`
    """Run a libvirt call; a ``libvirtError`` becomes a `LibvirtError` naming ``what``.

    A class rather than a ``@contextmanager`` generator: it wraps every libvirt call of a bulk
    switch, and a generator's set-up costs several times the call's Python overhead.
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, libvirt.libvirtError):
            raise _translated(self.what, exc) from exc


def _translated(what: str, exc: libvirt.libvirtError) -> LibvirtError:
    """The `LibvirtError` for ``exc``, naming ``what`` failed."""
    code = error_code(exc)
    message = exc.get_error_message() or str(exc)
    if code == ERR_INVALID_CONN:
        # libvirt's "invalid connection pointer" is what a closed connection gives.
        message += " (the connection is closed: use the Host inside its `with` block)"
    return LibvirtError(f"{what}: {message}", code=code)


# virDomainState -> the words `virsh list` prints.
_STATE_NAMES = {
    0: "no state",
    1: "running",
    2: "idle",
    3: "paused",
    4: "in shutdown",
    5: "shut off",
    6: "crashed",
    7: "pmsuspended",
}


class DomainHandle:
    """A libvirt domain, with only the calls kvmnet makes."""

    __slots__ = ("_dom", "name", "uri")

    def __init__(self, dom: libvirt.virDomain, uri: str) -> None:
        self._dom = dom
        self.name: str = dom.name()
        self.uri = uri

    def is_active(self) -> bool:
        with translated(f"cannot read the state of domain {self.name!r} on {self.uri}"):
            return bool(self._dom.isActive())

    def listed_active(self) -> bool:
        """Whether it ran when listed or looked up: no libvirt call (``ID()`` is cached).

        Fresh right after a listing; for anything later use `is_active`.
        """
        return int(self._dom.ID()) != -1

    def is_persistent(self) -> bool:
        with translated(f"cannot read domain {self.name!r} on {self.uri}"):
            return bool(self._dom.isPersistent())

    def state(self) -> str:
        """libvirt's state, named as virsh names it: "running", "paused", "shut off", ..."""
        with translated(f"cannot read the state of domain {self.name!r} on {self.uri}"):
            code = int(self._dom.state()[0])
        return _STATE_NAMES.get(code, "unknown")

    def xml(self, *, inactive: bool = False) -> str:
        """The live XML (``inactive=False``) or the persistent definition."""
        # try/except rather than `translated`: read twice per guest in a bulk switch, and the
        # message is worth formatting only when the read fails.
        try:
            return str(self._dom.XMLDesc(XML_INACTIVE if inactive else 0))
        except libvirt.libvirtError as exc:
            what = f"cannot read the XML of domain {self.name!r} on {self.uri}"
            raise _translated(what, exc) from exc

    def _device_call(self, verb: str, xml: str, *, live: bool, config: bool) -> None:
        flags = (AFFECT_LIVE if live else 0) | (AFFECT_CONFIG if config else 0)
        call = {
            "update": self._dom.updateDeviceFlags,
            "attach": self._dom.attachDeviceFlags,
            "detach": self._dom.detachDeviceFlags,
        }[verb]
        try:
            call(xml, flags)
        except libvirt.libvirtError as exc:
            message = exc.get_error_message() or str(exc)
            where = "the running guest" if live else "the persistent definition"
            if live and is_unsupported(exc):
                raise LiveChangeUnsupported(
                    f"domain {self.name!r} on {self.uri}: libvirt cannot {verb} this interface on "
                    f"{where} ({message}); pass live=False (CLI: --config) to change the "
                    "next boot only"
                ) from exc
            raise LibvirtError(
                f"domain {self.name!r} on {self.uri}: {verb} of an interface on {where} "
                f"failed: {message}",
                code=error_code(exc),
            ) from exc

    def update_device(self, xml: str, *, live: bool, config: bool) -> None:
        self._device_call("update", xml, live=live, config=config)

    def attach_device(self, xml: str, *, live: bool, config: bool) -> None:
        self._device_call("attach", xml, live=live, config=config)

    def detach_device(self, xml: str, *, live: bool, config: bool) -> None:
        self._device_call("detach", xml, live=live, config=config)

    def interface_addresses(self, source: int) -> list[Lease]:
        """Addresses per MAC from one source (``ADDR_SRC_*``); raises LibvirtError if it can't."""
        with translated(f"cannot read the addresses of domain {self.name!r} on {self.uri}"):
            raw = self._dom.interfaceAddresses(source, 0) or {}
        from . import _records

        leases: list[Lease] = []
        for info in raw.values():
            mac = str(info.get("hwaddr") or "").lower()
            for addr in info.get("addrs") or []:
                leases.append(_records.Lease(mac, str(addr["addr"]), int(addr["prefix"])))
        return leases


class Connection:
    """An open libvirt connection; close it, or use it as a context manager.

    ``keepalive`` and ``readback_timeout`` are the options it was opened with (a fresh
    connection for reading back after a fault gets the same). ``device_calls`` is None until
    a device-level call (update/attach/detach) told whether the driver has them.
    """

    def __init__(
        self,
        conn: libvirt.virConnect,
        uri: str,
        *,
        keepalive: tuple[int, int] | None = None,
        readback_timeout: float = DEFAULT_READBACK_TIMEOUT,
    ) -> None:
        self._conn = conn
        self.uri = uri
        self.keepalive = keepalive
        self.readback_timeout = readback_timeout
        self.device_calls: bool | None = None
        self._closed = False

    def is_lost(self) -> bool:
        """True once the daemon went away (EOF, keepalive timeout); not after `close`."""
        if self._closed:
            return False
        try:
            return not self._conn.isAlive()
        except libvirt.libvirtError:
            return True

    def close(self) -> None:
        self._closed = True
        try:
            self._conn.close()
        except libvirt.libvirtError as exc:
            # Closing a connection whose daemon died is not worth an exception.
            log.debug("closing %s: %s", self.uri, exc)

    def hostname(self) -> str:
        with translated(f"cannot read the host name of {self.uri}"):
            return str(self._conn.getHostname())

    def list_domains(self) -> list[DomainHandle]:
        """Every domain, running or defined, in one ``listAllDomains`` call."""
        with translated(f"cannot list the domains on {self.uri}"):
            return [DomainHandle(d, self.uri) for d in self._conn.listAllDomains(0)]

    def transient_names(self) -> set[str]:
        """Names of the transient domains (no persistent definition), in one listing."""
        with translated(f"cannot list the domains on {self.uri}"):
            flag = libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT
            return {d.name() for d in self._conn.listAllDomains(flag)}

    def domain_xmls(self) -> list[DomainXmls]:
        """Every domain's live XML, and the persistent one too for running domains.

        One listing plus one ``XMLDesc`` per domain and state, nothing more (the MAC
        inventory's floor). A domain whose XML cannot be read comes back with ``error`` set.
        """
        from ._records import DomainXmls

        return self.map_domain_xmls(DomainXmls)

    def map_domain_xmls(self, fn: Callable[[str, str, str | None, str | None], T]) -> list[T]:
        """``fn(name, live, persistent, error)`` for every domain, as `domain_xmls`.

        Each text goes to ``fn`` as soon as it is read and can be dropped right after, so a
        scan over thousands of domains stays as fast and small as the libvirt calls allow.
        """
        with translated(f"cannot list the domains on {self.uri}"):
            doms = self._conn.listAllDomains(0)
        result: list[T] = []
        append = result.append
        for dom in doms:
            live, persistent = "", None
            try:
                live = dom.XMLDesc(0)
                # ID() is cached by the listing (no call): -1 means not running, and then
                # the live XML is the persistent definition.
                if dom.ID() != -1:
                    persistent = dom.XMLDesc(XML_INACTIVE)
            except libvirt.libvirtError as exc:
                if error_code(exc) == ERR_NO_DOMAIN:
                    continue  # undefined since the listing: it uses no MAC any more
                append(fn(dom.name(), live, persistent, exc.get_error_message() or str(exc)))
                continue
            append(fn(dom.name(), live, persistent, None))
        return result

    def lookup_domain(self, name: str) -> DomainHandle:
        try:
            return DomainHandle(self._conn.lookupByName(name), self.uri)
        except libvirt.libvirtError as exc:
            if error_code(exc) == ERR_NO_DOMAIN:
                raise DomainNotFound(
                    f"no domain named {shown(name)} on {self.uri}; `kvmnet -c {self.uri} domains` "
                    "lists them"
                ) from exc
            raise LibvirtError(
                f"cannot look up domain {shown(name)} on {self.uri}: "
                f"{one_line(exc.get_error_message() or str(exc))}",
                code=error_code(exc),
            ) from exc

    def define_domain(self, xml: str) -> DomainHandle:
        return DomainHandle(self._define(xml), self.uri)

    def define(self, xml: str) -> None:
        """`define_domain` without the handle (no ``name()`` call): a bulk switch's defines."""
        self._define(xml)

    def _define(self, xml: str) -> libvirt.virDomain:
        try:
            return self._conn.defineXML(xml)
        except libvirt.libvirtError as exc:
            raise _translated(f"libvirt on {self.uri} refused the domain definition", exc) from exc

    def network_xmls(self) -> list[tuple[str, bool, str]]:
        """(name, active, XML) of every libvirt network, in one listing."""
        with translated(f"cannot list the networks on {self.uri}"):
            nets = self._conn.listAllNetworks(0)
            return [(n.name(), bool(n.isActive()), str(n.XMLDesc(0))) for n in nets]

    def network_xml(self, name: str) -> str:
        try:
            return str(self._conn.networkLookupByName(name).XMLDesc(0))
        except libvirt.libvirtError as exc:
            if error_code(exc) == ERR_NO_NETWORK:
                raise NetworkNotFound(
                    f"no libvirt network named {shown(name)} on {self.uri}; `virsh -c {self.uri} "
                    "net-list --all` lists them"
                ) from exc
            raise LibvirtError(
                f"cannot read network {shown(name)} on {self.uri}: "
                f"{one_line(exc.get_error_message() or str(exc))}",
                code=error_code(exc),
            ) from exc

    def network_leases(self, name: str) -> list[NetworkLease]:
        """The network's current DHCP leases, with when each expires (seconds since epoch)."""
        from ._records import NetworkLease

        with translated(f"cannot read the DHCP leases of network {name!r} on {self.uri}"):
            net = self._conn.networkLookupByName(name)
            raw = net.DHCPLeases() or []
        return [
            NetworkLease(
                str(r["mac"]).lower(), str(r["ipaddr"]), int(r["prefix"]), int(r["expirytime"])
            )
            for r in raw
        ]

    def host_interface_macs(self) -> list[tuple[str, str]] | None:
        """(name, MAC) of the host's interfaces via libvirt, or None if the driver can't say."""
        try:
            ifaces = self._conn.listAllInterfaces(0)
            return [(i.name(), str(i.MACString()).lower()) for i in ifaces]
        except libvirt.libvirtError as exc:
            if is_unsupported(exc):
                return None
            raise LibvirtError(
                f"cannot list the host interfaces of {self.uri}: {exc.get_error_message()}",
                code=error_code(exc),
            ) from exc


def open_connection(
    uri: str,
    *,
    keepalive: tuple[int, int] | None = DEFAULT_KEEPALIVE,
    readback_timeout: float = DEFAULT_READBACK_TIMEOUT,
) -> Connection:
    """Open ``uri`` read-write; failure raises `ConnectionFailed` naming the URI.

    ``keepalive=(interval, count)``: libvirt pings the daemon every ``interval`` seconds and
    drops the connection after ``count`` unanswered pings, so a call on a frozen daemon fails
    (about ``interval * (count + 1)`` s) instead of hanging; None turns it off. Drivers that
    run inside this process (``test:///``) have no daemon and no keepalive.
    """
    _install_error_handler()
    wants_keepalive = keepalive is not None and not uri.startswith("test:")
    if wants_keepalive:
        _ensure_event_loop()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        # One line: libvirt's XML errors (a test:/// file) add the line and a '^' below.
        message = one_line(exc.get_error_message() or str(exc))
        raise ConnectionFailed(
            f"cannot connect to libvirt at {shown(uri)}: {message}; check the URI, that libvirtd "
            "runs there and that you may use it",
            uri=uri,
        ) from exc
    if conn is None:  # Older bindings returned None instead of raising.
        raise ConnectionFailed(f"cannot connect to libvirt at {shown(uri)}", uri=uri)
    if wants_keepalive:
        assert keepalive is not None
        interval, count = keepalive
        try:
            conn.setKeepAlive(interval, count)
        except libvirt.libvirtError as exc:
            # A driver without a daemon (or an old one) cannot: the calls just cannot hang on it.
            log.debug("no keepalive on %s: %s", uri, exc)
        except BaseException:
            # Anything else (the binding's OverflowError for a value validate.keepalive would
            # have refused): the caller gets no Connection, so close this one here.
            conn.close()
            raise
    return Connection(conn, uri, keepalive=keepalive, readback_timeout=readback_timeout)


def read_back(
    uri: str, name: str, *, keepalive: tuple[int, int] | None, timeout: float
) -> ReadBack:
    """Open a fresh connection to ``uri`` and read domain ``name``'s live and persistent XML.

    For saying what stands after a call failed because the daemon died or froze: the old
    connection is gone, and guessing from the error is how messages came to say "failed"
    for a change that was applied. Tries again until ``timeout`` seconds have passed (a
    restarted daemon takes a moment); each attempt runs in a daemon thread, so a frozen
    daemon costs ``timeout`` seconds, not forever. Raises `ConnectionFailed` if no
    attempt succeeded, `DomainNotFound` if the domain is gone.
    """
    import threading

    from ._records import ReadBack

    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        box: list[ReadBack | BaseException] = []
        worker = threading.Thread(
            target=_read_back_once, args=(uri, name, keepalive, box), daemon=True
        )
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if box:
            result = box[0]
            if isinstance(result, ReadBack):
                return result
            if isinstance(result, DomainNotFound):
                raise result
            last = result
        else:
            last = TimeoutError(f"no answer within {timeout:g} s")
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    raise ConnectionFailed(
        f"cannot reconnect to {uri} to read back domain {name!r}: {last}", uri=uri
    ) from last


def _read_back_once(
    uri: str, name: str, keepalive: tuple[int, int] | None, box: list[ReadBack | BaseException]
) -> None:
    from ._records import ReadBack

    try:
        conn = open_connection(uri, keepalive=keepalive)
        try:
            handle = conn.lookup_domain(name)
            running = handle.is_active()
            live = handle.xml() if running else None
            persistent = handle.xml(inactive=True) if handle.is_persistent() else None
            box.append(ReadBack(live, persistent))
        finally:
            conn.close()
    except Exception as exc:  # the caller reports it; a thread must not die silently
        box.append(exc)


# The records live in kvmnet.virt._records (see there); their old names here still work.
_RECORDS = frozenset({"DomainXmls", "Lease", "NetworkLease", "ReadBack"})


def _record(name: str) -> object:
    if name not in _RECORDS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _records

    return getattr(_records, name)


# Only at run time: type checkers read the TYPE_CHECKING import above (as kvmnet/__init__.py).
if not TYPE_CHECKING:
    __getattr__ = _record

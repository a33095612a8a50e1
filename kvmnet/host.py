"""connect() and Host: one libvirt connection and what lives on it.

Usage::

    with kvmnet.connect("test:///default") as host:
        for dom in host.domains():
            print(dom)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from . import validate
from ._defaults import DEFAULT_ADDRESS_TIMEOUT
from ._libvirt import (
    DEFAULT_KEEPALIVE,
    DEFAULT_READBACK_TIMEOUT,
    Connection,
    open_connection,
)
from .errors import ConnectionFailed, NetworkNotFound
from .network import Network, NetworkIndex, Networks
from .progress import Progress

if TYPE_CHECKING:
    from .backends.base import Backend
    from .change import Change
    from .domain import Domain
    from .domainxml import IfaceSelector
    from .hostnet.runner import Runner
    from .onboard import LanResult
    from .topology import Topology

__all__ = ["DEFAULT_URI", "Host", "connect", "default_uri"]

log = logging.getLogger(__name__)

DEFAULT_URI = "qemu:///system"


def default_uri(uri: str | None = None) -> str:
    """``uri`` if given, else ``$LIBVIRT_DEFAULT_URI``, else ``qemu:///system``."""
    return uri or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI


def _is_local(uri: str) -> bool:
    """True for a URI whose hypervisor is this machine (no host name, not a test world)."""
    scheme, _, rest = uri.partition("://")
    return scheme.split("+")[0] in ("qemu", "lxc", "xen") and scheme.partition("+")[2] in (
        "", "unix"
    ) and rest.startswith("/")


def connect(
    uri: str | None = None,
    *,
    keepalive: tuple[int, int] | None = DEFAULT_KEEPALIVE,
    readback_timeout: float = DEFAULT_READBACK_TIMEOUT,
) -> Host:
    """Open a libvirt connection; use it as a context manager to close it.

    Args:
        uri: the argument, else ``$LIBVIRT_DEFAULT_URI``, else ``qemu:///system``.
        keepalive: ``(interval, count)``: libvirt pings the daemon every ``interval`` seconds
            and gives the connection up after ``count`` unanswered pings, so a call on a
            frozen libvirtd raises after about ``interval * (count + 1)`` seconds instead of
            hanging. Default ``(5, 3)``; None turns it off. In-process drivers (``test:///``)
            have no daemon to ping.
        readback_timeout: seconds a change interrupted by a dead or frozen daemon keeps
            trying a fresh connection to read back what stands (default 10).

    Returns:
        The :class:`Host`.

    Raises:
        ConnectionFailed: naming the URI and the reason.
        InvalidInput: a URI, keepalive or timeout that is not one (before connecting).
    """
    uri = default_uri(validate.uri(uri))
    keepalive = validate.keepalive(keepalive)
    readback_timeout = validate.duration(readback_timeout, "readback_timeout")
    _check_test_file(uri)
    return Host(open_connection(uri, keepalive=keepalive, readback_timeout=readback_timeout))


def _check_test_file(uri: str) -> None:
    # libvirt's test driver has libxml2 print "I/O warning" to stderr for a missing file
    # before it fails; say it ourselves, quietly.
    if uri.startswith("test:///") and uri != "test:///default":
        path = uri[len("test://") :].split("?", 1)[0]
        if not os.path.isfile(path):
            raise ConnectionFailed(
                f"cannot connect to libvirt at {uri!r}: the test driver file {path} does not "
                "exist; kvmnet.testing.World(...).write(dir) makes one",
                uri=uri,
            )


class Host:
    """A libvirt host (one open connection): its domains and networks.

    Networks are read once and cached for resolving interface modes; :meth:`refresh`
    (or :meth:`networks`) reads them again.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.uri: str = connection.uri
        self._closed = False
        self._index: NetworkIndex | None = None

    @property
    def connection(self) -> Connection:
        """The underlying :class:`kvmnet._libvirt.Connection`.

        Internal but stable for kvmnet's own modules (the MAC allocator, the CLI); not part of
        the public API for other code.
        """
        return self._connection

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._connection.close()

    def __enter__(self) -> Host:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- domains ------------------------------------------------------------------------

    def domains(self) -> list[Domain]:
        """Every domain, running or defined: one libvirt listing, XML read lazily."""
        from .domain import Domain

        return [Domain(self, handle) for handle in self._connection.list_domains()]

    def domain(self, name: str) -> Domain:
        """The domain called ``name``; :class:`~kvmnet.errors.DomainNotFound` if none.

        :class:`~kvmnet.errors.InvalidName` for a name no domain can have (empty, NUL...).
        """
        from .domain import Domain

        name = validate.domain_name(name)
        return Domain(self, self._connection.lookup_domain(name))

    # -- networks -----------------------------------------------------------------------

    def networks(self) -> list[Network]:
        """Every libvirt network, active or not (one listing); refreshes the mode cache."""
        nets = Networks(
            Network.from_xml(xml, active=active)
            for _name, active, xml in self._connection.network_xmls()
        )
        self._index = NetworkIndex(nets)
        return nets

    def network(self, name: str) -> Network:
        """The network called ``name``; :class:`~kvmnet.errors.NetworkNotFound` if none.

        :class:`~kvmnet.errors.InvalidName` for a name no libvirt network can have.
        """
        name = validate.network_name(name)
        index = self.network_index()
        net = index.by_name.get(name)
        if net is None:
            index = NetworkIndex(self.networks())  # it may be new since the cache was filled
            net = index.by_name.get(name)
        if net is None:
            known = ", ".join(sorted(index.by_name)) or "none"
            raise NetworkNotFound(
                f"no libvirt network named {name!r} on {self.uri} (networks: {known}); "
                f"define it first, or use a bridge (use_bridge) instead"
            )
        return net

    def network_index(self) -> NetworkIndex:
        """Networks by name and bridge, read once per Host (see :meth:`refresh`)."""
        if self._index is None:
            self.networks()
        assert self._index is not None
        return self._index

    def refresh(self) -> None:
        """Forget cached network definitions; the next mode resolution reads them again."""
        self._index = None

    # -- bulk ---------------------------------------------------------------------------

    def use_bridge_all(
        self,
        names: Iterable[str] | None,
        bridge: str,
        *,
        live: bool | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> list[Change]:
        """``use_bridge(bridge)`` on the first interface of each domain in ``names`` (None: all).

        Usage: ``host.use_bridge_all(["web1", "web2"], "br0", progress=show)``.

        One listing for all domains; stops at the first error, as :func:`kvmnet.bulk.bridge_many`
        does: the guests switched before it stay switched. Every argument is checked first
        (``names`` must be a list, not one str): :class:`~kvmnet.errors.InvalidInput` before
        any guest changes.

        Raises:
            PartiallyApplied: a guest failed; the message names the guests switched, the one
                that failed (with what stands for it) and the ones not tried.
        """
        from .bulk import Target, switch_each

        names = validate.domain_names(names)
        bridge = validate.ifname(bridge, what="bridge")
        live = validate.optional_flag(live, "live")
        dry_run = validate.flag(dry_run, "dry_run")
        validate.progress(progress)
        targets = [Target(d, None) for d in self._select(names)]
        return switch_each(targets, "bridge", bridge, live=live, dry_run=dry_run, progress=progress)

    def use_nat_all(
        self,
        names: Iterable[str] | None,
        network: str = "default",
        *,
        live: bool | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> list[Change]:
        """``use_nat(network)`` on the first interface of every named domain (all if None).

        Arguments are checked as :meth:`use_bridge_all` checks them.

        Raises:
            NetworkNotFound: before any guest changes.
            PartiallyApplied: as :meth:`use_bridge_all`.
        """
        from .bulk import Target, switch_each

        names = validate.domain_names(names)
        network = validate.network_name(network)
        live = validate.optional_flag(live, "live")
        dry_run = validate.flag(dry_run, "dry_run")
        validate.progress(progress)
        self.network(network)
        targets = [Target(d, None) for d in self._select(names)]
        return switch_each(targets, "nat", network, live=live, dry_run=dry_run, progress=progress)

    def _select(self, names: Iterable[str] | None) -> Sequence[Domain]:
        from .bulk import hint_states

        doms = self.domains()
        if names is None:
            hint_states(self, doms)
            return doms
        by_name = {d.name: d for d in doms}
        wanted = list(names)
        missing = [n for n in wanted if n not in by_name]
        if missing:
            from .errors import DomainNotFound

            raise DomainNotFound(
                f"no domain named {', '.join(repr(m) for m in missing)} on {self.uri}; "
                f"`kvmnet -c {self.uri} domains` lists them"
            )
        chosen = [by_name[n] for n in wanted]
        hint_states(self, chosen)
        return chosen

    # -- guest and host in one plan (kvmnet.onboard) -----------------------------------------

    def bridge_guest(
        self,
        domain: str,
        *,
        bridge: str,
        nic: str | None = None,
        backend: Backend | None = None,
        iface: IfaceSelector = None,
        live: bool | None = None,
        bounce_link: bool = True,
        confirm_within: float | None = None,
        address_timeout: float = DEFAULT_ADDRESS_TIMEOUT,
        force: Collection[str] = (),
        dhcp_client: tuple[str, ...] = (),
        dry_run: bool = False,
        progress: Progress | None = None,
        state_dir: str | None = None,
    ) -> LanResult:
        """Put ``domain`` on the LAN: bridge ``nic`` into ``bridge`` if it is missing, switch the
        guest (live + persistent, link bounced), wait for its new address.

        ``host.bridge_guest("web1", bridge="br0", nic="eno1", backend=NmcliBackend())``;
        the options are :func:`kvmnet.onboard.bridge_guest`'s.
        """
        from .onboard import bridge_guest

        return bridge_guest(
            self,
            domain,
            bridge=bridge,
            nic=nic,
            backend=backend,
            iface=iface,
            live=live,
            bounce_link=bounce_link,
            confirm_within=confirm_within,
            address_timeout=address_timeout,
            force=force,
            dhcp_client=dhcp_client,
            dry_run=dry_run,
            progress=progress,
            state_dir=state_dir,
        )

    def nat_guest(
        self,
        domain: str,
        network: str = "default",
        *,
        iface: IfaceSelector = None,
        live: bool | None = None,
        bounce_link: bool = True,
        release: str | None = None,
        backend: Backend | None = None,
        force: Collection[str] = (),
        dhcp_client: tuple[str, ...] = (),
        confirm_within: float | None = None,
        address_timeout: float = DEFAULT_ADDRESS_TIMEOUT,
        dry_run: bool = False,
        progress: Progress | None = None,
        state_dir: str | None = None,
    ) -> LanResult:
        """The way back: ``domain`` onto NAT ``network``, then (``release=NIC``) the NIC out of
        the bridge; the options are :func:`kvmnet.onboard.nat_guest`'s."""
        from .onboard import nat_guest

        return nat_guest(
            self,
            domain,
            network,
            iface=iface,
            live=live,
            bounce_link=bounce_link,
            release=release,
            backend=backend,
            force=force,
            dhcp_client=dhcp_client,
            confirm_within=confirm_within,
            address_timeout=address_timeout,
            dry_run=dry_run,
            progress=progress,
            state_dir=state_dir,
        )

    # -- the picture --------------------------------------------------------------------

    def topology(self, *, runner: Runner | None = None) -> Topology:
        """The host's network as a value: guests, libvirt networks, bridges, NICs, the LAN.

        Reads every domain's XML (one listing), the libvirt networks and, through
        ``runner``, the host's links and routes (``ip -j``). Jupyter draws the result;
        ``.svg()`` and ``.dot()`` give the picture as text; ``.after(plan)`` shows what a
        plan will move.

        Args:
            runner: where the host's links are read. None: this machine for a local URI
                (``qemu:///system``), nothing for others (libvirt's test driver has no host
                links; the picture then shows the bridges the networks and guests name).

        Returns:
            A :class:`~kvmnet.topology.Topology`.

        Raises:
            LibvirtError: libvirt could not list the domains or networks.
            CommandFailed: ``ip`` failed on the host.
        """
        from .hostnet.inspect import read_links, read_routes
        from .topology import build_topology

        domains = self._connection.map_domain_xmls(
            lambda name, live, persistent, _error: (name, persistent is not None, live)
        )
        if runner is None and _is_local(self.uri):
            from .hostnet.runner import LocalRunner

            runner = LocalRunner()
        links = read_links(runner) if runner is not None else None
        routes = read_routes(runner) if runner is not None else ()
        return build_topology(self.uri, domains, self.networks(), links, routes)

    # -- display ------------------------------------------------------------------------

    def __repr__(self) -> str:
        if self._closed:
            return f"<Host {self.uri!r} closed>"
        count = len(self._connection.list_domains())
        return f"<Host {self.uri!r} {count} domain{'' if count == 1 else 's'}>"

    def _repr_html_(self) -> str:
        from . import _html  # only notebooks render HTML: not on every CLI start

        if self._closed:
            return _html.escape(repr(self))
        rows: list[tuple[object, ...]] = []
        for dom in self.domains():
            ifaces = dom.interfaces
            if not ifaces:
                rows.append((dom.name, dom.state, None, None, None, None))
            for i in ifaces:
                rows.append((dom.name, dom.state, i.mac, i.type, i.source, _html.badge(i.mode)))
        return _html.table(
            ["domain", "state", "MAC", "type", "source", "mode"], rows, caption=f"Host {self.uri}"
        )

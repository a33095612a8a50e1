"""connect() and Host: one libvirt connection and what lives on it.

Usage::

    with kvmnet.connect("test:///default") as host:
        for dom in host.domains():
            print(dom)
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from . import _log
from ._defaults import DEFAULT_URI, default_uri
from .core import validate
from .core.network import Network, NetworkIndex, Networks
from .errors import ConnectionFailed, NetworkNotFound
from .virt._libvirt import (
    DEFAULT_KEEPALIVE,
    DEFAULT_READBACK_TIMEOUT,
    Connection,
    open_connection,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .core.change import Change
    from .core.progress import Progress
    from .hostnet.backends.base import Backend
    from .hostnet.nic import Bridge, HostNic
    from .hostnet.runners.machine import Machine
    from .hostnet.runners.runner import Runner
    from .lan.lanplan import LanResult
    from .lan.onboard import BridgeGuestOptions, NatGuestOptions
    from .topology import Topology
    from .virt.domain import Domain

__all__ = ["DEFAULT_URI", "Host", "connect", "default_uri"]

log = _log.get(__name__)


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
        The `Host`.

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
                f"cannot connect to libvirt at {validate.shown(uri)}: the test driver file "
                f"{validate.shown(path)} does not "
                "exist; kvmnet.testing.World(...).write(dir) makes one",
                uri=uri,
            )


class Host:
    """A libvirt host (one open connection): its domains and networks.

    Networks are read once and cached for resolving interface modes; `refresh`
    (or `networks`) reads them again. Get one from `kvmnet.connect`.

    Args:
        connection: the open libvirt connection (internal: use `kvmnet.connect`).
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.uri: str = connection.uri
        self._closed = False
        self._index: NetworkIndex | None = None
        # Host-side runners by namespace (None: the machine's own), made on first use.
        self._runners: dict[str | None, Runner] = {}

    @property
    def connection(self) -> Connection:
        """The underlying `kvmnet.virt._libvirt.Connection`.

        Internal but stable for kvmnet's own modules (the MAC allocator, the CLI); not part of
        the public API for other code.
        """
        return self._connection

    def close(self) -> None:
        """Close the libvirt connection; closing twice is harmless."""
        if not self._closed:
            self._closed = True
            self._connection.close()
            for runner in self._runners.values():
                close = getattr(runner, "close", None)
                if callable(close):
                    close()  # an SshRunner's shared connection
            self._runners.clear()

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
        """Every domain, running or defined: one libvirt listing, XML read lazily.

        Returns:
            One `Domain` per guest.
        """
        from .virt.domain import Domain

        return [Domain(self, handle) for handle in self._connection.list_domains()]

    def domain(self, name: str) -> Domain:
        """The domain called ``name``.

        Args:
            name: the domain's name, as ``virsh list --all`` shows it.

        Returns:
            The `Domain`.

        Raises:
            DomainNotFound: no domain has that name.
            InvalidName: a name no domain can have (empty, NUL...).
        """
        from .virt.domain import Domain

        name = validate.domain_name(name)
        return Domain(self, self._connection.lookup_domain(name))

    # -- networks -----------------------------------------------------------------------

    def networks(self) -> list[Network]:
        """Every libvirt network, active or not (one listing); refreshes the mode cache.

        Returns:
            The networks, as a list that also finds one by name.
        """
        nets = Networks(
            Network.from_xml(xml, active=active)
            for _name, active, xml in self._connection.network_xmls()
        )
        self._index = NetworkIndex(nets)
        return nets

    def network(self, name: str) -> Network:
        """The network called ``name``.

        Args:
            name: the libvirt network's name, e.g. ``"default"``.

        Returns:
            The `Network`.

        Raises:
            NetworkNotFound: no libvirt network has that name.
            InvalidName: a name no libvirt network can have.
        """
        name = validate.network_name(name)
        index = self.network_index()
        net = index.by_name.get(name)
        if net is None:
            index = NetworkIndex(self.networks())  # it may be new since the cache was filled
            net = index.by_name.get(name)
        if net is None:
            known = validate.listed(sorted(index.by_name)) or "none"
            raise NetworkNotFound(
                f"no libvirt network named {validate.shown(name)} on {self.uri} "
                f"(networks: {known}); "
                f"define it first, or use a bridge (use_bridge) instead"
            )
        return net

    def network_index(self) -> NetworkIndex:
        """Networks by name and bridge, read once per Host (see `refresh`).

        Returns:
            The cached `NetworkIndex`.
        """
        if self._index is None:
            self.networks()
        assert self._index is not None
        return self._index

    def refresh(self) -> None:
        """Forget cached network definitions; the next mode resolution reads them again."""
        self._index = None

    # -- the machine behind the URI (host side) --------------------------------------------

    @property
    def machine(self) -> Machine:
        """The machine this Host's URI names: this one for ``qemu:///system``, the SSH host
        for ``qemu+ssh://[user@]host[:port]/...``.

        Raises:
            PreflightRefused: check ``host-side``: the URI names no machine kvmnet can act on
                (the test driver, a tcp/tls transport).
        """
        from .hostnet.runners.machine import machine_of

        return machine_of(self.uri)

    def runner(self, netns: str | None = None) -> Runner:
        """The runner that acts on this Host's machine (inside ``netns`` there, if given):
        local for a local URI, one shared SSH connection for a ``qemu+ssh://`` URI, closed
        with the Host.

        Args:
            netns: a network namespace on that machine.

        Returns:
            The runner, made once per namespace and reused.

        Raises:
            PreflightRefused: check ``host-side``, see `machine`.
        """
        if netns not in self._runners:
            from .hostnet.onmachine import runner_for

            base = self._runners.get(None)
            sibling = getattr(base, "sibling", None)
            if netns is not None and callable(sibling):
                self._runners[netns] = sibling(netns=netns)  # the same SSH connection
            else:
                self._runners[netns] = runner_for(self.machine, netns=netns)
        return self._runners[netns]

    def backend(
        self, kind: str = "auto", *, root: str | None = None, netns: str | None = None
    ) -> Backend:
        """A host-network backend acting on this Host's machine.

        Usage: ``host.backend("nmcli")``; on ``qemu+ssh://root@hv2/system`` it reads and
        changes hv2's network over SSH.

        Args:
            kind: ``"auto"`` or a name `kvmnet.backends.create_backend` takes.
            root: where a file backend reads and writes on that machine (default /).
            netns: act inside this network namespace of that machine.

        Returns:
            The backend, bound to `runner`.

        Raises:
            PreflightRefused: check ``host-side``, see `machine`.
            InvalidInput: an unknown kind, or an option that backend does not take.
        """
        from .hostnet.onmachine import backend_on

        return backend_on(self.runner(netns), kind, root=root, netns=netns)

    def _bound(self, backend: Backend | None, force: Collection[str]) -> Backend:
        if backend is None:
            return self.backend()
        from .hostnet.onmachine import check_same_machine

        check_same_machine(self.machine, backend.runner, force=force)
        return backend

    def nic(
        self, name: str, *, backend: Backend | None = None, force: Collection[str] = ()
    ) -> HostNic:
        """The NIC ``name`` of this Host's machine.

        Args:
            name: the kernel's name for it, e.g. ``eno1``.
            backend: the backend to plan with (default: ``host.backend("auto")``).
            force: ``("other-machine",)`` accepts a backend acting on another machine.

        Returns:
            A `HostNic` bound to that machine.

        Raises:
            PreflightRefused: check ``other-machine`` (the backend acts elsewhere) or
                ``host-side`` (the URI names no machine).
        """
        from .hostnet.nic import HostNic

        return HostNic(name, backend=self._bound(backend, force))

    def bridge(
        self, name: str, *, backend: Backend | None = None, force: Collection[str] = ()
    ) -> Bridge:
        """The bridge ``name`` (present or to be made) of this Host's machine.

        Args:
            name: the bridge's name, e.g. ``br0``.
            backend: the backend to plan with (default: ``host.backend("auto")``).
            force: ``("other-machine",)`` accepts a backend acting on another machine.

        Returns:
            A `Bridge` bound to that machine.

        Raises:
            PreflightRefused: check ``other-machine``, ``host-side``, or ``bridge-name``.
        """
        from .hostnet.nic import Bridge

        return Bridge(name, backend=self._bound(backend, force))

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

        An alias of `kvmnet.bulk.bridge_many` (``names=None`` is its ``every=True``),
        with its checks and its failure: the guests switched before a failure stay switched.

        Args:
            names: the domains' names, as a list (None: every domain).
            bridge: the host bridge.
            live: None: the running guests too; False: next boot only; True: fail unless the
                running guest changes too.
            dry_run: True: compute the changes, apply nothing.
            progress: called as ``progress(done, total, label)`` after each guest.

        Returns:
            One `Change` per guest, in order.

        Raises:
            InvalidInput: a bad argument (``names`` must be a list, not one str), before any
                guest changes.
            PartiallyApplied: a guest failed; the message names the guests switched, the one
                that failed (with what stands for it) and the ones not tried.
        """
        from .bulk import bridge_many

        return bridge_many(self, bridge, names, every=names is None, live=live,
                           dry_run=dry_run, progress=progress)  # fmt: skip

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

        An alias of `kvmnet.bulk.nat_many`, as `use_bridge_all` is of
        ``bridge_many``.

        Args:
            names: the domains' names, as a list (None: every domain).
            network: the libvirt network.
            live: None: the running guests too; False: next boot only; True: fail unless the
                running guest changes too.
            dry_run: True: compute the changes, apply nothing.
            progress: called as ``progress(done, total, label)`` after each guest.

        Returns:
            One `Change` per guest, in order.

        Raises:
            InvalidInput: a bad argument, before any guest changes.
            NetworkNotFound: before any guest changes.
            PartiallyApplied: as `use_bridge_all`.
        """
        from .bulk import nat_many

        return nat_many(self, network, names, every=names is None, live=live,
                        dry_run=dry_run, progress=progress)  # fmt: skip

    # -- guest and host in one plan (kvmnet.lan.onboard) -----------------------------------------

    def bridge_guest(
        self, domain: str, *, bridge: str, **options: Unpack[BridgeGuestOptions]
    ) -> LanResult:
        """Put ``domain`` on the LAN: bridge ``nic`` into ``bridge`` if it is missing, switch the
        guest (live + persistent, link bounced), wait for its new address.

        ``host.bridge_guest("web1", bridge="br0", nic="eno1", backend=NmcliBackend())``;
        `kvmnet.lan.onboard.bridge_guest` on this host.

        Args:
            domain: The guest's name.
            bridge: The host bridge to put it on.
            **options: Parameters: see `kvmnet.lan.onboard.bridge_guest` and
                `kvmnet.lan.onboard.plan_bridge_guest`.

        Returns:
            What was done (or, for a dry run, the plan).

        Raises:
            InvalidInput: a bad argument, before anything is read or changed.
            DomainNotFound: no such guest.
            PreflightRefused: the host change is refused (the message names the override).
            RolledBack: the host change failed and was rolled back.
            PartiallyApplied: a later part failed; the message says what stands.
        """
        from .lan.onboard import bridge_guest

        return bridge_guest(self, domain, bridge=bridge, **options)

    def nat_guest(
        self, domain: str, network: str = "default", **options: Unpack[NatGuestOptions]
    ) -> LanResult:
        """The way back: ``domain`` onto NAT ``network``, then (``release=NIC``) the NIC out of
        the bridge: `kvmnet.lan.onboard.nat_guest` on this host.

        Args:
            domain: The guest's name.
            network: The libvirt NAT network to put it back on.
            **options: Parameters: see `kvmnet.lan.onboard.nat_guest` and
                `kvmnet.lan.onboard.plan_nat_guest`.

        Returns:
            What was done (or, for a dry run, the plan).

        Raises:
            InvalidInput: a bad argument, before anything is read or changed.
            DomainNotFound: no such guest.
            NetworkNotFound: no such libvirt network.
            PreflightRefused: the release is refused (the message names the override).
            PartiallyApplied: a later part failed; the message says what stands.
        """
        from .lan.onboard import nat_guest

        return nat_guest(self, domain, network, **options)

    # -- the picture --------------------------------------------------------------------

    def topology(self, *, runner: Runner | None = None) -> Topology:
        """The host's network as a value: guests, libvirt networks, bridges, NICs, the LAN.

        Reads every domain's XML (one listing), the libvirt networks and, through
        ``runner``, the host's links and routes (``ip -j``). Jupyter draws the result;
        ``.svg()`` and ``.dot()`` give the picture as text; ``.after(plan)`` shows what a
        plan will move.

        Args:
            runner: where the host's links are read. None: the Host's machine (this one for
                ``qemu:///system``, the SSH host for ``qemu+ssh://``); libvirt's test driver
                has no host links, and the picture then shows the bridges the networks and
                guests name.

        Returns:
            A `Topology`.

        Raises:
            LibvirtError: libvirt could not list the domains or networks.
            CommandFailed: ``ip`` failed on the host.
        """
        from .hostnet.inspect import read_links, read_routes
        from .topology import build_topology

        domains = self._connection.map_domain_xmls(
            lambda name, live, persistent, _error: (name, persistent is not None, live)
        )
        if runner is None and not self.uri.startswith("test:"):
            runner = self.runner()  # this machine, or the qemu+ssh:// host over SSH
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
        from .core import _html  # only notebooks render HTML: not on every CLI start

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

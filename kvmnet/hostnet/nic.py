"""HostNic and Bridge: the host side of bridged guests.

Usage::

    backend = Iproute2Backend(netns="lab-host")
    nic = HostNic("eth0", backend=backend)
    br = Bridge("br0", backend=backend)
    plan = br.enslave(nic, dry_run=True)     # a Plan; nothing changed
    print(plan)
    plan.apply()                             # or br.enslave(nic): plans, applies, returns it
    br.release(nic)                          # the way back

Both objects read the host through their backend's runner when asked (``refresh()`` re-reads).
Without ``dry_run``, ``enslave``/``release`` apply at once and return the applied Plan
(failures raise RolledBack/RollbackFailed); with ``dry_run=True`` they return the plan to
read and ``plan.apply()`` later.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import replace
from typing import TYPE_CHECKING

from ..core import _html, validate
from ..core.names import validate_ifname
from ..errors import PreflightRefused
from .apply import apply_plan
from .inspect import inspect_host, read_links, read_routes, ssh_uses
from .model.plan import Plan
from .model.request import BridgeRequest, HostState
from .model.state import IpAddress, IpRoute, LinkState
from .preflight import BRIDGE_IN_USE, check_bridge_name, libvirt_owner, preflight

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ["Bridge", "HostNic"]


def _default_backend(backend: Backend | None) -> Backend:
    if backend is not None:
        return backend
    from .backends.iproute2 import Iproute2Backend

    return Iproute2Backend()


def _own_session(backend: Backend) -> str | None:
    """This process's ``$SSH_CONNECTION`` (the far side's, for a runner on another machine),
    when it can matter: a backend acting inside another
    network namespace does not touch the links this session's sshd talks over (and a route
    lookup in there would point at that namespace's own default route)."""
    if backend.runner.netns is not None:
        return None
    # A runner on another machine (SshRunner) knows kvmnet's own session there: the far
    # side's $SSH_CONNECTION says which of that machine's addresses it comes in on.
    remote = getattr(backend.runner, "ssh_connection", None)
    if callable(remote):
        session: str | None = remote()
        return session
    return os.environ.get("SSH_CONNECTION")


def _nic_name(nic: object) -> str:
    if isinstance(nic, HostNic):
        return nic.name
    return validate.ifname(nic, what="NIC")


def _plan_args(
    dry_run: object,
    dhcp_client: object,
    force: object,
    confirm_within: object,
    verify: object,
    ssh_connection: object,
) -> tuple[bool, tuple[str, ...], tuple[str, ...], float | None, bool]:
    """enslave/release's shared options, checked (see `kvmnet.core.validate`)."""
    if ssh_connection is not None and not isinstance(ssh_connection, str):
        validate.text(ssh_connection, "ssh_connection")  # raises InvalidType
    return (
        validate.flag(dry_run, "dry_run"),
        validate.dhcp_client(dhcp_client),
        validate.force(force),
        validate.confirm_within(confirm_within),
        validate.flag(verify, "verify"),
    )


class _Link:
    def __init__(self, name: str, *, backend: Backend | None, what: str) -> None:
        self.name = validate_ifname(name, what=what)
        self.backend = _default_backend(validate.backend(backend))  # type: ignore[arg-type]
        self._state: LinkState | None = None
        self._loaded = False

    def refresh(self) -> None:
        """Forget what was read; the next attribute access reads the host again."""
        self._loaded = False

    def _read(self) -> LinkState | None:
        if not self._loaded:
            links = read_links(self.backend.runner, wireless=[self.name])
            self._state, self._loaded = links.get(self.name), True
        return self._state

    @property
    def exists(self) -> bool:
        """True if the kernel has this link now."""
        return self._read() is not None

    @property
    def state(self) -> LinkState | None:
        """The link as the kernel reports it, None if absent."""
        return self._read()

    @property
    def mac(self) -> str | None:
        """The link's MAC, None if absent."""
        state = self._read()
        return state.mac if state else None

    @property
    def addresses(self) -> tuple[IpAddress, ...]:
        """The link's IP addresses (empty if absent)."""
        state = self._read()
        return state.addresses if state else ()

    @property
    def routes(self) -> tuple[IpRoute, ...]:
        """Routes of the main table that go through this link."""
        return tuple(r for r in read_routes(self.backend.runner) if r.dev == self.name)

    @property
    def operstate(self) -> str | None:
        """The kernel's operational state (``UP``, ``DOWN``...), None if absent."""
        state = self._read()
        return state.operstate if state else None

    def _summary(self) -> str:
        state = self._read()
        if state is None:
            return "absent"
        addrs = ", ".join(a.cidr for a in state.global_addresses) or "no address"
        return f"{state.mac} {state.operstate} {addrs}"


class HostNic(_Link):
    """A host network interface, e.g. ``HostNic("enp0s20f0u1", backend=backend)``.

    Args:
        name: the interface's name.
        backend: the backend that reads it and plans changes (default: ``auto``, local).

    Raises:
        InvalidName: a name no Linux interface can have.
    """

    def __init__(self, name: str, *, backend: Backend | None = None) -> None:
        super().__init__(name, backend=backend, what="NIC")

    @property
    def master(self) -> str | None:
        """The bridge (or bond) this NIC is a port of."""
        state = self._read()
        return state.master if state else None

    @property
    def wireless(self) -> bool:
        """True for a Wi-Fi NIC (which cannot be a bridge port as is)."""
        state = self._read()
        return bool(state and state.wireless)

    def ssh_session_uses(self, ssh_connection: str | None = None) -> bool:
        """True if the SSH session runs over this NIC or the bridge it is a port of.

        Args:
            ssh_connection: the session as ``$SSH_CONNECTION`` words it (default: this
                process's own; ignored for a backend in another network namespace).

        Returns:
            Whether cutting this NIC would cut the session.
        """
        state = self._read()
        if state is None:
            return False
        conn = ssh_connection if ssh_connection is not None else _own_session(self.backend)
        links = read_links(self.backend.runner)
        return ssh_uses(self.backend.runner, conn, state, links.get(state.master or ""))

    def __repr__(self) -> str:
        port = f", port of {self.master}" if self.exists and self.master else ""
        wifi = ", Wi-Fi" if self.exists and self.wireless else ""
        return f"<HostNic {self.name!r} {self._summary()}{port}{wifi}>"

    def _repr_html_(self) -> str:
        state = self._read()
        extra: list[tuple[str, object]] = []
        if state is not None:
            extra.append(("port of", _html.code(state.master) if state.master else "(no bridge)"))
            extra.append(
                ("wireless", "yes (cannot be a bridge port as is)" if state.wireless else "no")
            )
        return _link_html("HostNic", self.name, state, extra, self.routes if state else ())


class Bridge(_Link):
    """A host bridge (present or to be created), e.g. ``Bridge("br0", backend=backend)``.

    Args:
        name: the bridge's name.
        backend: the backend that reads it and plans changes (default: ``auto``, local).

    Raises:
        InvalidBridgeName: a name no Linux bridge can have.
    """

    def __init__(self, name: str, *, backend: Backend | None = None) -> None:
        check_bridge_name(name)
        super().__init__(name, backend=backend, what="bridge")

    @property
    def ports(self) -> tuple[str, ...]:
        """The names of the bridge's ports (empty if absent)."""
        state = self._read()
        return state.ports if state else ()

    @property
    def stp(self) -> bool | None:
        """Whether STP is on, None if the bridge is absent."""
        state = self._read()
        return state.stp if state else None

    @property
    def forward_delay(self) -> float | None:
        """Seconds (the kernel counts centiseconds)."""
        state = self._read()
        return None if state is None or state.forward_delay is None else state.forward_delay / 100

    @property
    def libvirt_network(self) -> str | None:
        """The libvirt network that owns this bridge (virbr0 -> 'default'), from libvirtd's
        status files; None when no running libvirt network uses it."""
        return libvirt_owner(self.backend.runner, self.name)

    def _current(self, nic: str, ssh_connection: str | None) -> HostState:
        self.refresh()
        conn = ssh_connection if ssh_connection is not None else _own_session(self.backend)
        return inspect_host(self.backend.runner, nic, self.name, ssh_connection=conn)

    def enslave(
        self,
        nic: HostNic | str,
        *,
        dry_run: bool = False,
        stp: bool = False,
        forward_delay: int = 0,
        dhcp_client: tuple[str, ...] = (),
        force: Collection[str] = (),
        confirm_within: float | None = None,
        verify: bool = True,
        ssh_connection: str | None = None,
    ) -> Plan:
        """Plan (and unless ``dry_run``, apply) moving ``nic`` and its addresses into this bridge.

        Every argument is checked before the host is read.

        Args:
            nic: the NIC to move, as a `HostNic` or its name.
            dry_run: True: only plan; ``plan.apply()`` runs it later.
            stp: turn STP on (the plan warns: a port forwards nothing for 2 x forward delay).
            forward_delay: the bridge's forward delay, in seconds.
            dhcp_client: an argv starting a DHCP client afterwards, e.g.
                ``("dhclient", "br0")``. A client found on the NIC is always stopped first.
            force: preflight refusals to override, by name (see `kvmnet.hostnet.preflight`),
                e.g. ``{"wireless"}``.
            confirm_within: seconds: arms the dead-man timer, which rolls back unless
                `kvmnet.hostnet.confirm` is called in time (None: no timer).
            verify: check the result (bridge up with the NIC's MAC and addresses, default
                route, gateway reachable), retried, rolling back on failure.
            ssh_connection: the SSH session to protect, as ``$SSH_CONNECTION`` words it
                (default: this process's own; a change that would cut it needs confirmation).

        Returns:
            The `Plan`: applied unless ``dry_run``.

        Raises:
            InvalidInput: a bad argument (or a subclass: InvalidType, InvalidName...).
            HostNicNotFound: no such NIC on the host.
            PreflightRefused: a refusal not overridden by ``force`` (Wi-Fi, SSH session...).
            RolledBack: applying failed and the host is as before.
            RollbackFailed: applying failed and the rollback left something different.
        """
        name = _nic_name(nic)
        stp = validate.flag(stp, "stp")
        forward_delay = validate.count(forward_delay, "forward_delay", minimum=0, maximum=30)
        dry_run, dhcp_client, force, confirm_within, verify = _plan_args(
            dry_run, dhcp_client, force, confirm_within, verify, ssh_connection
        )
        request = BridgeRequest(
            name,
            self.name,
            stp=stp,
            forward_delay=forward_delay,
            dhcp_client=dhcp_client,
            force=frozenset(force),
        )
        current = self._current(name, ssh_connection)
        needs_timer = preflight(
            request,
            current,
            force=force,
            confirm_within=confirm_within,
            libvirt_network=self.libvirt_network,
            dry_run=dry_run,
            backend=self.backend.name,
        )
        if current.nic.master == self.name:
            # Planning again would take the bridge's own (moved) addresses for stale ones.
            plan = Plan(
                backend=self.backend.name,
                action="enslave",
                nic=name,
                bridge=self.name,
                steps=(),
                warnings=(f"{name} is already a port of {self.name}: nothing to do",),
                runner=self.backend.runner,
                applier=apply_plan,
            )
        else:
            plan = self.backend.plan_enslave(request, current)
        plan = replace(plan, dry_run=dry_run, requires_confirmation=needs_timer)
        return self._finish(plan, nic, dry_run, confirm_within, verify)

    def release(
        self,
        nic: HostNic | str,
        *,
        dry_run: bool = False,
        dhcp_client: tuple[str, ...] = (),
        force: Collection[str] = (),
        confirm_within: float | None = None,
        verify: bool = True,
        ssh_connection: str | None = None,
    ) -> Plan:
        """The way back: the bridge's addresses and routes onto ``nic``, ``nic`` out of the
        bridge, the bridge removed when no port is left.

        Arguments are checked as `enslave` checks them.

        Args:
            nic: the port to release, as a `HostNic` or its name.
            dry_run: True: only plan; ``plan.apply()`` runs it later.
            dhcp_client: an argv starting a DHCP client afterwards, e.g.
                ``("dhclient", "br0")``. A client found on the NIC is always stopped first.
            force: preflight refusals to override, by name (see `kvmnet.hostnet.preflight`),
                e.g. ``{"wireless"}``.
            confirm_within: seconds: arms the dead-man timer, which rolls back unless
                `kvmnet.hostnet.confirm` is called in time (None: no timer).
            verify: check the result (bridge up with the NIC's MAC and addresses, default
                route, gateway reachable), retried, rolling back on failure.
            ssh_connection: the SSH session to protect, as ``$SSH_CONNECTION`` words it
                (default: this process's own; a change that would cut it needs confirmation).

        Returns:
            The `Plan`: applied unless ``dry_run``.

        Raises:
            InvalidInput: a bad argument.
            HostNicNotFound: no such NIC on the host.
            PreflightRefused: a refusal not overridden by ``force``.
            RolledBack: applying failed and the host is as before.
            RollbackFailed: applying failed and the rollback left something different.
        """
        name = _nic_name(nic)
        dry_run, dhcp_client, force, confirm_within, verify = _plan_args(
            dry_run, dhcp_client, force, confirm_within, verify, ssh_connection
        )
        request = BridgeRequest(name, self.name, dhcp_client=dhcp_client)
        current = self._current(name, ssh_connection)
        if current.nic.master != self.name:
            raise PreflightRefused(
                f"{name} is not a port of {self.name} (its master is {current.nic.master}): "
                "nothing to release",
                check="not-a-port",
            )
        self._refuse_other_ports(current, name, force)
        needs_timer = current.ssh_over_nic and "ssh" not in force
        if needs_timer and confirm_within is None and not dry_run:
            raise PreflightRefused(
                f"this SSH session runs over {self.name}: release with confirm_within=SECONDS "
                "(override: force=('ssh',))",
                check="ssh",
            )
        plan = self.backend.plan_release(request, current)
        plan = replace(plan, dry_run=dry_run, requires_confirmation=needs_timer)
        return self._finish(plan, nic, dry_run, confirm_within, verify)

    def _refuse_other_ports(self, current: HostState, nic: str, force: Collection[str]) -> None:
        """Refuse to release ``nic`` while other links (guests' taps, another NIC) are ports:
        without its uplink they are off the LAN, and a file backend removes the bridge's
        configuration too (the bridge goes with it). Files written for another root change
        nothing here, so they are not refused."""
        bridge = current.bridge
        others = [p for p in (bridge.ports if bridge is not None else ()) if p != nic]
        if not others or BRIDGE_IN_USE in force or getattr(self.backend, "files_only", False):
            return
        raise PreflightRefused(
            f"{self.name} still has other ports ({', '.join(others)}): releasing {nic} takes "
            f"them off the LAN (and a backend that writes configuration removes {self.name} "
            "with it). Move the guests first (`kvmnet nat DOMAIN`, host.use_nat_all(...)) or "
            f"remove those ports, or override with force=('{BRIDGE_IN_USE}',)",
            check=BRIDGE_IN_USE,
        )

    def _finish(
        self,
        plan: Plan,
        nic: HostNic | str,
        dry_run: bool,
        confirm_within: float | None,
        verify: bool,
    ) -> Plan:
        if not dry_run:
            try:
                plan.apply(confirm_within=confirm_within, verify=verify)
            finally:
                self.refresh()
                if isinstance(nic, HostNic):
                    nic.refresh()
        return plan

    def __repr__(self) -> str:
        if not self.exists:
            return f"<Bridge {self.name!r} absent>"
        stp = "STP on" if self.stp else "STP off"
        ports = ", ".join(self.ports) or "no ports"
        return f"<Bridge {self.name!r} {self._summary()}, {stp}, ports: {ports}>"

    def _repr_html_(self) -> str:
        state = self._read()
        extra: list[tuple[str, object]] = []
        if state is not None:
            ports = ", ".join(state.ports)
            extra.append(("ports", _html.code(ports) if ports else "(no ports)"))
            extra.append(("STP", {True: "on", False: "off", None: None}[state.stp]))
            delay = self.forward_delay
            extra.append(("forward delay", None if delay is None else f"{delay:g} s"))
        return _link_html("Bridge", self.name, state, extra, self.routes if state else ())


def _link_html(
    kind: str,
    name: str,
    state: LinkState | None,
    extra: list[tuple[str, object]],
    routes: tuple[IpRoute, ...],
) -> str:
    """A link's facts, its addresses and its routes as HTML (HostNic and Bridge views)."""
    caption = f"{kind} {name}"
    if state is None:
        return _html.keyvalues([("state", "absent: no such link on this host")], caption=caption)
    facts: list[tuple[str, object]] = [
        ("state", _html.badge(state.operstate)),
        ("MAC", _html.code(state.mac)),
        ("kind", state.kind or "(plain NIC)"),
        ("MTU", state.mtu),
        *extra,
        ("flags", _html.code(",".join(state.flags)) if state.flags else None),
    ]
    addresses = _html.table(
        ["address", "scope", "valid for", "from"],
        [
            (
                _html.code(a.cidr),
                a.scope,
                "forever" if a.valid_lft is None else f"{a.valid_lft} s",
                "DHCP" if a.dynamic else "static",
            )
            for a in state.addresses
        ],
        caption=f"addresses on {name}",
        empty="(no address)",
    )
    route_rows = [
        (
            _html.code(r.dst),
            _html.code(r.gateway) if r.gateway else "(on link)",
            r.metric,
            r.protocol,
        )
        for r in routes
    ]
    route_table = _html.table(
        ["destination", "gateway", "metric", "protocol"],
        route_rows,
        caption=f"routes through {name}",
        empty="(no route)",
    )
    return _html.section("", _html.keyvalues(facts, caption=caption), addresses, route_table)

"""Put a guest on the LAN in one call: host bridge (if missing) + guest switch + its address.

What an operator means by "bridge web1" is three steps that other tools leave apart:

1. **host**: if the bridge does not exist, bridge the NIC into it (a host-bridge
   `Plan`: preflight, verification, rollback, optional dead-man timer);
2. **guest**: switch the guest's interface to the bridge, persistent and live, and bounce its
   link so the guest asks for a new DHCP lease;
3. **address**: look up the guest's new address (bounded wait).

`plan_bridge_guest` computes all of it without changing anything; ``str(plan)`` and
``plan._repr_html_()`` show the host files and commands, the XML diff and the checks; and
``plan.apply()`` runs it. `bridge_guest` is both in one call::

    with kvmnet.connect() as host:
        result = bridge_guest(host, "web1", bridge="br0", nic="eno1",
                              backend=NmcliBackend(), confirm_within=60)
        print(result)                 # what was done, and the guest's new address

A failure in the guest step after the host step leaves the host bridged (verified, or
pending confirmation) and the guest as it was, and raises `PartiallyApplied`
that says so. The reverse, `plan_nat_guest` / `nat_guest`, moves the guest back
to a NAT network first and then, if asked, releases the NIC from the bridge, refusing while
other guests still use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, TypedDict

from .. import _log
from ..core import validate
from ..errors import KvmnetError, PartiallyApplied, PreflightRefused
from ..hostnet.preflight import BRIDGE_IN_USE
from .lanplan import DEFAULT_ADDRESS_TIMEOUT, LanPlan, LanResult

if TYPE_CHECKING:
    # typing.Unpack from Python 3.11 on; only read by type checkers here.
    from typing_extensions import Unpack

    from ..core.change import Change
    from ..core.domainxml import IfaceSelector
    from ..core.progress import Progress
    from ..host import Host
    from ..hostnet.apply import ApplyResult
    from ..hostnet.backends.base import Backend
    from ..hostnet.model.plan import Plan
    from ..hostnet.runners.runner import Runner
    from ..virt.addresses import GuestAddress
    from ..virt.domain import Domain

__all__ = [
    "DEFAULT_ADDRESS_TIMEOUT",
    "BridgeGuestOptions",
    "BridgeOptions",
    "LanPlan",
    "LanResult",
    "MoveOptions",
    "NatGuestOptions",
    "NatOptions",
    "RunOptions",
    "apply_lan_plan",
    "bridge_guest",
    "nat_guest",
    "plan_bridge_guest",
    "plan_nat_guest",
    "wait_for_address",
]

log = _log.get(__name__)

_POLL_INTERVAL = 1.0
_MAX_PROBE_GAP = 8.0


# --- the options, named once ------------------------------------------------------------------
# plan_bridge_guest and plan_nat_guest hold the full lists (defaults, checks, documentation);
# bridge_guest, nat_guest, Host.bridge_guest and Host.nat_guest take these keywords through
# ``**options`` and hand them on, so an option is added in one signature and one dict here.


class MoveOptions(TypedDict, total=False):
    """The keywords both guest moves take; meaning and defaults: :func:`plan_bridge_guest`."""

    iface: IfaceSelector
    live: bool | None
    bounce_link: bool
    confirm_within: float | None
    address_timeout: float
    force: Collection[str]
    dhcp_client: tuple[str, ...]
    backend: Backend | None


class BridgeOptions(MoveOptions, total=False):
    """:func:`plan_bridge_guest`'s keywords besides ``bridge``."""

    nic: str | None


class NatOptions(MoveOptions, total=False):
    """:func:`plan_nat_guest`'s keywords besides ``network``."""

    release: str | None


class RunOptions(TypedDict, total=False):
    """What :func:`bridge_guest` and :func:`nat_guest` add to the plan's keywords."""

    dry_run: bool
    progress: Progress | None
    state_dir: str | None


class BridgeGuestOptions(BridgeOptions, RunOptions, total=False):
    """Every keyword of :func:`bridge_guest` and ``Host.bridge_guest`` besides ``bridge``."""


class NatGuestOptions(NatOptions, RunOptions, total=False):
    """Every keyword of :func:`nat_guest` and ``Host.nat_guest``."""


# --- planning ---------------------------------------------------------------------------------


def _machine_backend(
    host: Host, backend: Backend | None, force: Collection[str]
) -> tuple[Backend, tuple[str, ...]]:
    """The backend for the host step, on the Host's machine: ``host.backend("auto")`` when
    none is given, else the one given once it is known to act on that machine (or
    ``force`` says ``other-machine``). Returns it and ``force`` without that key, which is
    not one of the bridge's preflight checks."""
    from ..hostnet.onmachine import OTHER_MACHINE, check_same_machine

    if backend is None:
        backend = host.backend("auto")
    elif not host.uri.startswith("test:"):
        # The test driver simulates guests of no machine: any backend may go with it.
        check_same_machine(host.machine, backend.runner, force=force)
    return backend, tuple(f for f in force if f != OTHER_MACHINE)


def _host_runner(host: Host) -> Runner | None:
    """The Host's own runner for reading and probing its machine; None for a URI that names
    no machine kvmnet reaches (the test driver, tcp/tls)."""
    try:
        return host.runner()
    except PreflightRefused:
        return None


def _guests_on_bridge(host: Host, bridge: str, *, besides: str) -> list[str]:
    """Guests with an interface on ``bridge``: directly (type='bridge'), or through a libvirt
    network over it (forward mode bridge), now or at next boot."""
    networks = {n.name for n in host.networks() if n.bridge == bridge}
    users = set()
    for dom in host.domains():
        if dom.name == besides:
            continue
        for i in (*dom.interfaces, *dom.persistent_interfaces):
            if (i.type == "bridge" and i.source == bridge) or (
                i.type == "network" and i.source in networks
            ):
                users.add(dom.name)
    return sorted(users)


def _moved_mac(change: Change, iface: IfaceSelector) -> str | None:
    if change.interface is not None and change.interface.mac:
        return change.interface.mac
    return iface if isinstance(iface, str) else None


def _lan_args(
    domain: object,
    iface: object,
    live: object,
    bounce_link: object,
    confirm_within: object,
    address_timeout: object,
    force: object,
    dhcp_client: object,
) -> tuple[bool | None, bool, float | None, float, tuple[str, ...], tuple[str, ...]]:
    """The options both plans take, checked (see `kvmnet.core.validate`)."""
    from ..core.domainxml import iface_selector  # lxml only once a plan is asked for

    validate.domain_name(domain)
    iface_selector(iface)
    return (
        validate.optional_flag(live, "live"),
        validate.flag(bounce_link, "bounce_link"),
        validate.confirm_within(confirm_within),
        validate.duration(address_timeout, "address_timeout", zero=True),
        validate.force(force),
        validate.dhcp_client(dhcp_client),
    )


def _apply_args(dry_run: object, progress: object, state_dir: object) -> bool:
    validate.progress(progress)
    validate.optional_path(state_dir, "state_dir")
    return validate.flag(dry_run, "dry_run")


def plan_bridge_guest(
    host: Host,
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
) -> LanPlan:
    """Plan putting ``domain`` on ``bridge``, bridging ``nic`` first if the bridge is missing.

    Without ``nic``/``backend`` the host is left alone (the bridge must exist already).
    ``force`` and ``dhcp_client`` go to `kvmnet.Bridge.enslave` (preflight overrides by
    name; a DHCP client to start on the bridge). Nothing changes; the host is only read
    (through ``backend.runner``). Every argument is checked first: InvalidInput for a bad one.
    """
    from ..hostnet.nic import Bridge, HostNic

    bridge = validate.ifname(bridge, what="bridge")
    if nic is not None:
        nic = validate.ifname(nic, what="NIC")
    live, bounce_link, confirm_within, address_timeout, force, dhcp_client = _lan_args(
        domain, iface, live, bounce_link, confirm_within, address_timeout, force, dhcp_client
    )
    validate.backend(backend)
    dom = host.domain(domain)
    notes: list[str] = []
    host_plan = None
    if nic is not None or backend is not None:
        if nic is None:
            raise PreflightRefused(
                f"bridging {domain!r} onto {bridge!r}: give nic= to create the bridge from a "
                f"NIC (backend= alone says nothing to bridge), or neither to use an existing "
                f"bridge",
                check="nic-and-backend",
            )
        backend, force = _machine_backend(host, backend, force)
        if Bridge(bridge, backend=backend).exists:
            notes.append(f"bridge {bridge} exists already: the host is left alone ({nic} unused)")
        else:
            host_plan = Bridge(bridge, backend=backend).enslave(
                HostNic(nic, backend=backend),
                dry_run=True,
                force=force,
                dhcp_client=dhcp_client,
                confirm_within=confirm_within,
            )
    else:
        notes.append(f"no NIC given: bridge {bridge} must exist on the host already")
    if host_plan is not None and confirm_within is not None:
        # The guest moves while the host change awaits confirmation; if the timer fires, the
        # bridge goes and the guest's interface points at nothing until it is moved back.
        notes.append(
            f"if the host rolls back (no `kvmnet confirm` within {confirm_within:g} s), "
            f"{bridge} goes away: move {dom.name} back with `kvmnet nat {dom.name}`"
        )
    change = dom.use_bridge(bridge, iface, live=live, dry_run=True)
    return LanPlan(
        action="bridge",
        domain=dom.name,
        bridge=bridge,
        change=change,
        host_plan=host_plan,
        iface=_moved_mac(change, iface),
        live=live,
        bounce_link=bounce_link,
        confirm_within=confirm_within,
        address_timeout=address_timeout,
        notes=tuple(notes),
        host=host,
        runner=backend.runner if backend is not None else _host_runner(host),
        applier=apply_lan_plan,
    )


def plan_nat_guest(
    host: Host,
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
) -> LanPlan:
    """Plan moving ``domain`` back to NAT ``network``; ``release=NIC`` also takes NIC out of the
    bridge the guest was on. That is refused while other guests use the bridge, unless
    ``force`` names ``"bridge-in-use"``; the other names in ``force``, and ``dhcp_client``,
    go to `kvmnet.Bridge.release`. Every argument is checked first: InvalidInput for a
    bad one."""
    from ..hostnet.nic import Bridge, HostNic

    network = validate.network_name(network)
    if release is not None:
        release = validate.ifname(release, what="NIC")
    live, bounce_link, confirm_within, address_timeout, force, dhcp_client = _lan_args(
        domain, iface, live, bounce_link, confirm_within, address_timeout, force, dhcp_client
    )
    validate.backend(backend)
    dom = host.domain(domain)
    change = dom.use_nat(network, iface, live=live, dry_run=True)
    iface_mac = _moved_mac(change, iface)
    from ..core.domainxml import DomainXML

    was = next((i for i in DomainXML(change.before).interfaces if i.mac == iface_mac), None)
    bridge = was.source if was is not None and was.type == "bridge" and was.source else ""
    host_plan = None
    replan_host: Callable[[], Plan] | None = None
    notes: list[str] = []
    if release is not None:
        if not bridge:
            raise PreflightRefused(
                f"releasing {release!r} after moving {domain!r} to NAT needs the guest on a "
                f"bridge (its interface {iface_mac} is on {was.source if was else '?'!s})",
                check="release",
            )
        backend, force = _machine_backend(host, backend, force)
        release_backend = backend
        others = _guests_on_bridge(host, bridge, besides=dom.name)
        forced = BRIDGE_IN_USE in force
        if others and not forced:
            raise PreflightRefused(
                f"bridge {bridge} still carries guest(s) {', '.join(others)}: move them first, "
                f"or override with force=('{BRIDGE_IN_USE}',) (they would lose the LAN)",
                check=BRIDGE_IN_USE,
            )
        tap = next((i.target for i in dom.live_interfaces if i.mac == iface_mac), None)
        if not forced:  # ports no guest names (another NIC, a container's veth): judged now
            ports = Bridge(bridge, backend=release_backend).ports
            strangers = [p for p in ports if p not in (release, tap)]
            if strangers:
                raise PreflightRefused(
                    f"bridge {bridge} has other ports ({', '.join(strangers)}): releasing "
                    f"{release} takes them off the LAN; remove them first, or override with "
                    f"force=('{BRIDGE_IN_USE}',)",
                    check=BRIDGE_IN_USE,
                )
        # Bridge.release refuses a bridge with other ports. Planned now, before the move, the
        # guest's own tap is one: everything else was judged above, so that plan looks past
        # it; planned again after the move, it judges for itself (unless forced).
        after_move = tuple(force)
        before_move = after_move if forced else (*after_move, BRIDGE_IN_USE)

        def plan_release(release_force: tuple[str, ...]) -> Plan:
            return Bridge(bridge, backend=release_backend).release(
                HostNic(release, backend=release_backend),
                dry_run=True,
                force=release_force,
                dhcp_client=dhcp_client,
                confirm_within=confirm_within,
            )

        def replan() -> Plan:
            return plan_release(after_move)

        host_plan, replan_host = plan_release(before_move), replan
        if dom.is_running and tap:
            notes.append(
                f"the release is planned again once {dom.name}'s tap {tap} has left {bridge}"
            )
        if others:
            notes.append(f"forced: {', '.join(others)} lose the LAN when {bridge} goes")
    return LanPlan(
        action="nat",
        domain=dom.name,
        bridge=bridge,
        change=change,
        host_plan=host_plan,
        network=network,
        iface=iface_mac,
        live=live,
        bounce_link=bounce_link,
        confirm_within=confirm_within,
        address_timeout=address_timeout,
        notes=tuple(notes),
        host=host,
        replan_host=replan_host,
        applier=apply_lan_plan,
    )


# --- applying ---------------------------------------------------------------------------------


def _apply_guest(plan: LanPlan, dom: Domain) -> Change:
    # The bounce happens only after a live switch: a guest that keeps its NAT lease never
    # asks the LAN's DHCP server, so its new address would never show up.
    if plan.action == "bridge":
        return dom.use_bridge(plan.bridge, plan.iface, live=plan.live, bounce_link=plan.bounce_link)
    return dom.use_nat(
        plan.network or "default", plan.iface, live=plan.live, bounce_link=plan.bounce_link
    )


def _addresses(
    dom: Domain, mac: str | None, *, probe: bool = False, runner: Runner | None = None
) -> tuple[GuestAddress, ...]:
    try:
        found = dom.addresses(probe=probe, runner=runner)
    except KvmnetError as exc:
        log.info("no address for %s yet: %s", dom.name, exc)
        return ()
    return tuple(a for a in found if mac is None or a.mac == mac)


def _lease_expiries(host: Host, network: str | None, mac: str | None) -> dict[str, int]:
    """address -> expiry of ``mac``'s leases on libvirt ``network`` (empty if unknown)."""
    if network is None or mac is None:
        return {}
    try:
        leases = host.connection.network_leases(network)
    except KvmnetError as exc:
        log.info("cannot read the leases of network %s: %s", network, exc)
        return {}
    return {lease.address: lease.expiry for lease in leases if lease.mac == mac}


def _renewed_lease(
    host: Host, network: str | None, mac: str | None, old: dict[str, int]
) -> Callable[[GuestAddress], bool]:
    """Accept a lease-sourced address only once its lease is newer than before the move.

    Back on NAT, a guest usually gets the same address it had before it left, and libvirt still
    holds that old lease: without this the wait would report it before the guest has asked.
    """

    def accept(address: GuestAddress) -> bool:
        if address.source != "lease" or address.address not in old:
            return True
        now = _lease_expiries(host, network, mac).get(address.address)
        return now is not None and now > old[address.address]

    return accept


def wait_for_address(
    dom: Domain,
    mac: str | None,
    *,
    timeout: float,
    exclude: frozenset[str] = frozenset(),
    sleep: Callable[[float], None] = time.sleep,
    probe: bool = False,
    runner: Runner | None = None,
    accept: Callable[[GuestAddress], bool] | None = None,
) -> tuple[GuestAddress, ...]:
    """Poll ``dom.addresses()`` until ``mac`` has an address not in ``exclude`` (and that
    ``accept`` takes, when given), or ``timeout``.

    ``probe``: some polls sweep the guest's bridge (``dom.addresses(probe=True)``, through
    ``runner``), 1, 2, 4 then every 8 s apart, so that a guest that takes long to lease does
    not get the LAN swept every second.
    """
    timeout = validate.duration(timeout, "timeout", zero=True)
    probe = validate.flag(probe, "probe")
    if mac is not None:
        mac = validate.mac(mac)
    deadline = time.monotonic() + timeout
    gap, next_probe = 1.0, time.monotonic()
    while True:
        sweep = probe and time.monotonic() >= next_probe
        if sweep:
            next_probe, gap = time.monotonic() + gap, min(gap * 2, _MAX_PROBE_GAP)
        found = tuple(
            a
            for a in _addresses(dom, mac, probe=sweep, runner=runner)
            if a.address not in exclude and (accept is None or accept(a))
        )
        if found or time.monotonic() >= deadline:
            return found
        sleep(_POLL_INTERVAL)


def _host_step(plan: LanPlan, state_dir: str | None) -> tuple[ApplyResult | None, str | None]:
    if plan.host_plan is None:
        return None, None
    host_plan = plan.replan_host() if plan.replan_host is not None else plan.host_plan
    result = host_plan.apply(confirm_within=plan.confirm_within, state_dir=state_dir)
    pending = None
    if result.pending_confirmation:
        pending = (
            f"pending confirmation ({result.pending_confirmation}): rolled back unless "
            f"`kvmnet confirm` within {plan.confirm_within:g} s"
        )
    return result, pending


def _what_stands(plan: LanPlan, pending: str | None) -> str:
    hp = plan.host_plan
    if hp is None:
        return "the host was not changed"
    if plan.action == "bridge":
        state = pending or "verified and kept"
        return f"host: {hp.nic} is bridged into {plan.bridge} ({hp.backend}; {state})"
    return f"host: {hp.nic} is still in {plan.bridge}"


def apply_lan_plan(
    plan: LanPlan,
    host: Host,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    state_dir: str | None = None,
) -> LanResult:
    """Run ``plan`` on ``host`` (what `LanPlan.apply` does): host then guest for a
    move to a bridge, guest then host for the way back, then the address lookup.
    ``progress`` and ``state_dir`` are checked before anything runs (InvalidInput)."""
    validate.progress(progress)
    validate.optional_path(state_dir, "state_dir")
    steps = 3 if plan.host_plan is not None else 2

    def tell(done: int, label: str) -> None:
        if progress is not None:
            progress(done, steps, label)

    dom = host.domain(plan.domain)
    before = frozenset(a.address for a in _addresses(dom, plan.iface))
    old_leases = _lease_expiries(host, plan.network, plan.iface) if plan.action == "nat" else {}
    host_result: ApplyResult | None = None
    pending: str | None = None
    tell(0, "")
    if plan.action == "bridge" and plan.host_plan is not None:
        host_result, pending = _host_step(plan, state_dir)  # its own error says it rolled back
        tell(1, f"host: {plan.bridge} bridged")
    try:
        change = _apply_guest(plan, dom)
    except KvmnetError as exc:
        if plan.action == "nat" or plan.host_plan is None:
            raise  # nothing was changed before this step: the guest's own error says it all
        stands = _what_stands(plan, pending)
        raise PartiallyApplied(
            f"moving {plan.domain} to {plan._target()} failed: {exc}. What stands: {stands}; "
            f"guest {plan.domain} is unchanged. Fix the cause and run the same call again "
            f"(the host step is skipped when {plan.bridge} exists)",
            done=(stands,),
        ) from exc
    tell(steps - 1 if plan.action == "bridge" else 1, f"guest: {plan.domain} switched")
    if plan.action == "nat" and plan.host_plan is not None:
        try:
            host_result, pending = _host_step(plan, state_dir)
        except KvmnetError as exc:
            raise PartiallyApplied(
                f"releasing {plan.host_plan.nic} from {plan.bridge} failed: {exc}. What stands: "
                f"guest {plan.domain} is on NAT network {plan.network}; the host bridge "
                f"{plan.bridge} is as it was",
                done=(f"guest {plan.domain} on {plan.network}",),
            ) from exc
        tell(2, f"host: {plan.host_plan.nic} released from {plan.bridge}")
    addresses: tuple[GuestAddress, ...] = ()
    notes: list[str] = []
    if plan.address_timeout > 0 and not dom.is_running:
        notes.append(f"address: {plan.domain} is not running; it gets one when it boots")
    elif plan.address_timeout > 0:
        # A bridged guest leases from the LAN's server, which libvirt does not see: its
        # address is found by probing the bridge (local hosts only; see kvmnet.virt.neighbours).
        # On another machine the sweep runs there too, through the Host's runner.
        host_runner = _host_runner(host)
        probe_runner = None if host_runner is None else plan.runner or host_runner
        probe = plan.action == "bridge" and change.applied_live and probe_runner is not None
        addresses = wait_for_address(
            dom,
            plan.iface,
            timeout=plan.address_timeout,
            exclude=before,
            probe=probe,
            runner=probe_runner,
            accept=_renewed_lease(host, plan.network, plan.iface, old_leases)
            if old_leases
            else None,
        )
        if not addresses:
            notes.append(
                f"address: none new within {plan.address_timeout:g} s (no DHCP client in the "
                "guest, no lease yet, or a running guest the driver could not change live)"
            )
        if not addresses and plan.action == "bridge" and probe_runner is None:
            notes.append(
                f"address: {host.uri} names no machine kvmnet reaches: its bridge "
                f"{plan.bridge} was not probed for {plan.domain}'s address (connect with "
                "qemu+ssh://, run kvmnet there, or give the guest an agent)"
            )
    tell(steps, "address" if addresses else "no address yet")
    return LanResult(plan, True, change, host_result, addresses, pending, tuple(notes))


def bridge_guest(
    host: Host,
    domain: str,
    *,
    bridge: str,
    dry_run: bool = False,
    progress: Progress | None = None,
    state_dir: str | None = None,
    **options: Unpack[BridgeOptions],
) -> LanResult:
    """`plan_bridge_guest`, then (unless ``dry_run``) `LanPlan.apply`.

    Args:
        host: The connected host.
        domain: The guest's name.
        bridge: The host bridge to put it on.
        dry_run: Plan only; the result holds the plan and nothing changes.
        progress: Told of each step (`kvmnet.core.progress`).
        state_dir: Where the dead-man timer keeps its state (see `kvmnet.Plan.apply`).
        **options: Parameters: see `plan_bridge_guest` (``nic``, ``backend``, ``iface``,
            ``live``, ``bounce_link``, ``confirm_within``, ``address_timeout``, ``force``,
            ``dhcp_client``).

    Returns:
        What was done (or, for a dry run, the plan).
    """
    dry_run = _apply_args(dry_run, progress, state_dir)
    plan = plan_bridge_guest(host, domain, bridge=bridge, **options)
    if dry_run:
        return LanResult(plan, False)
    return plan.apply(progress=progress, state_dir=state_dir)


def nat_guest(
    host: Host,
    domain: str,
    network: str = "default",
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    state_dir: str | None = None,
    **options: Unpack[NatOptions],
) -> LanResult:
    """`plan_nat_guest`, then (unless ``dry_run``) `LanPlan.apply`.

    Args:
        host: The connected host.
        domain: The guest's name.
        network: The libvirt NAT network to put it back on.
        dry_run: Plan only; the result holds the plan and nothing changes.
        progress: Told of each step (`kvmnet.core.progress`).
        state_dir: Where the dead-man timer keeps its state (see `kvmnet.Plan.apply`).
        **options: Parameters: see `plan_nat_guest` (``iface``, ``live``,
            ``bounce_link``, ``release``, ``backend``, ``force``, ``dhcp_client``,
            ``confirm_within``, ``address_timeout``).

    Returns:
        What was done (or, for a dry run, the plan).
    """
    dry_run = _apply_args(dry_run, progress, state_dir)
    plan = plan_nat_guest(host, domain, network, **options)
    if dry_run:
        return LanResult(plan, False)
    return plan.apply(progress=progress, state_dir=state_dir)

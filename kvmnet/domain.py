"""Domain: one guest, its interfaces, and the edits that move them between networks.

Usage::

    dom = host.domain("web1")
    dom.interfaces                          # what it runs with now (or will boot with)
    change = dom.use_bridge("br0")          # persistent definition + running guest
    print(change.diff())

Every edit changes the persistent definition (read with ``VIR_DOMAIN_XML_INACTIVE``,
written with ``defineXML``) and, when the guest runs and ``live`` allows, the running guest:
a switch through ``updateDeviceFlags(LIVE)`` on the live device's XML (so its MAC, alias and
PCI address stay), an addition or removal through attach/detach. The live step runs first;
if the persistent define then fails, the live step is undone, so nothing is half-applied.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _html, _libvirt
from .change import Change
from .domainxml import DomainXML, GuestInterface, GuestInterfaces, IfaceSelector
from .errors import (
    InterfaceNotFound,
    InvalidInput,
    KvmnetError,
    LibvirtError,
    LiveChangeUnsupported,
    MacInUse,
)
from .mode import Mode

if TYPE_CHECKING:
    from ._libvirt import DomainHandle
    from .addresses import GuestAddress
    from .host import Host
    from .hostnet.runner import Runner

__all__ = ["Domain"]

log = logging.getLogger(__name__)

#: Seconds a bounced link stays down: the guest's carrier poll must notice (about 0.2 s
#: for virtio-net under Linux), so a down/up pair faster than this is missed.
BOUNCE_SECONDS = 1.0
# How often add_interface(mac=None) draws a new MAC when another writer took it meanwhile.
_MAC_ATTEMPTS = 5


@dataclasses.dataclass
class _Plan:
    """What one edit will do; built first so that dry runs and real runs share it."""

    action: str
    before: str
    after: str
    interface: GuestInterface
    notes: list[str]
    live_new: str | None = None  # device XML for the running guest
    live_old: str | None = None  # device XML that undoes it
    live_verb: str = "update"  # update / attach / detach
    mac: str | None = None


class Domain:
    """A libvirt domain (guest). Get it from :meth:`kvmnet.Host.domain` or ``domains()``."""

    def __init__(self, host: Host, handle: DomainHandle) -> None:
        self.host = host
        self._handle = handle
        self.name: str = handle.name
        # Set by bulk calls right after their listing: spares one libvirt call per guest.
        self._running_hint: bool | None = None

    # -- state --------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """True while the guest runs (or is paused: it has a live configuration)."""
        return self._handle.is_active()

    @property
    def state(self) -> str:
        """libvirt's state as virsh words it: ``"running"``, ``"paused"``, ``"shut off"``..."""
        return self._handle.state()

    @property
    def is_persistent(self) -> bool:
        """False for a transient guest (started from XML, never defined)."""
        return self._handle.is_persistent()

    def xml(self, *, inactive: bool = False) -> str:
        """The live XML, or with ``inactive=True`` the persistent definition."""
        return self._handle.xml(inactive=inactive)

    # -- interfaces ---------------------------------------------------------------------

    def _resolve(self, ifaces: tuple[GuestInterface, ...]) -> GuestInterfaces:
        index = self.host.network_index()
        resolved = []
        for iface in ifaces:
            mode = index.mode_of(iface.type, iface.source)
            # replace() is slow enough to show in bulk runs; the guess is usually right.
            resolved.append(iface if mode is iface.mode else dataclasses.replace(iface, mode=mode))
        return GuestInterfaces(resolved)

    @property
    def interfaces(self) -> GuestInterfaces:
        """What the guest runs with now if running, else what it will boot with."""
        return self._resolve(DomainXML(self._handle.xml()).interfaces)

    @property
    def persistent_interfaces(self) -> GuestInterfaces:
        """The persistent definition's interfaces: what the next boot uses."""
        return self._resolve(DomainXML(self._handle.xml(inactive=True)).interfaces)

    @property
    def live_interfaces(self) -> GuestInterfaces:
        """The running guest's interfaces; empty when it is shut off."""
        if not self.is_running:
            return GuestInterfaces()
        return self.interfaces

    def pending_changes(self) -> tuple[tuple[GuestInterface | None, GuestInterface | None], ...]:
        """Interfaces whose next boot differs from now: ``(live, persistent)`` pairs by MAC.

        ``(iface, None)``: removed for next boot; ``(None, iface)``: added for next boot.
        Empty when the guest is shut off or both agree.
        """
        if not self.is_running:
            return ()
        live = {i.mac: i for i in self.live_interfaces}
        nxt = {i.mac: i for i in self.persistent_interfaces}
        pairs: list[tuple[GuestInterface | None, GuestInterface | None]] = []
        for mac in [*live, *(m for m in nxt if m not in live)]:
            a, b = live.get(mac), nxt.get(mac)
            if a is None or b is None or (a.type, a.source) != (b.type, b.source):
                pairs.append((a, b))
        return tuple(pairs)

    def _selected_mac(
        self, iface: IfaceSelector, view: DomainXML, persistent: DomainXML | None = None
    ) -> str | None:
        """The MAC of the interface ``iface`` selects in ``view`` (what ``interfaces`` shows).

        A MAC (or a GuestInterface with one) missing from the running guest is looked up in
        ``persistent`` too: a NIC added for the next boot only exists there alone.
        """
        try:
            return view.find(iface).mac
        except InterfaceNotFound as missing:
            by_mac = isinstance(iface, str) or (
                isinstance(iface, GuestInterface) and iface.mac is not None
            )
            if persistent is None or persistent is view or not by_mac:
                raise
            try:
                return persistent.find(iface).mac
            except InterfaceNotFound:
                raise missing from None

    # -- edits --------------------------------------------------------------------------

    def use_bridge(
        self,
        bridge: str,
        iface: IfaceSelector = None,
        *,
        live: bool | None = None,
        dry_run: bool = False,
        bounce_link: bool | float = False,
    ) -> Change:
        """Put an interface on host bridge ``bridge`` (the LAN). Returns the :class:`Change`.

        ``live``: None = the running guest too if it runs; False = next boot only; True = fail
        unless the running guest changes too. ``bounce_link``: after a live switch, take the
        guest's link down for a second (or this many seconds) so it asks DHCP again.
        """
        return self._switch("use_bridge", "bridge", bridge, iface, live, dry_run, bounce_link)

    def use_nat(
        self,
        network: str = "default",
        iface: IfaceSelector = None,
        *,
        live: bool | None = None,
        dry_run: bool = False,
        bounce_link: bool | float = False,
    ) -> Change:
        """Put an interface on libvirt network ``network`` (NAT ``default`` unless named).

        :class:`~kvmnet.errors.NetworkNotFound` if the host has no such network.
        """
        net = self.host.network(network)
        change = self._switch("use_nat", "network", network, iface, live, dry_run, bounce_link)
        if net.mode is not Mode.NAT:
            note = f"network {network!r} is {net.mode} (forward mode {net.forward!r}), not NAT"
            log.warning("domain %r: %s", self.name, note)
            change = dataclasses.replace(change, notes=(*change.notes, note))
        return change

    def _switch(
        self,
        action: str,
        new_type: str,
        name: str,
        iface: IfaceSelector,
        live: bool | None,
        dry_run: bool,
        bounce_link: bool | float,
    ) -> Change:
        running, persistent = self._running_and_persistent(live)
        live_text = self._handle.xml() if running else None
        before = self._handle.xml(inactive=True) if persistent else live_text
        assert before is not None
        doc = DomainXML(before)
        edit = doc.use_bridge if new_type == "bridge" else doc.use_nat
        if live_text is None:
            # Shut off: the persistent definition is the only view; select in it directly.
            view = doc
            old_type = ""
            new = edit(name, iface)
            mac = new.mac
            selector: IfaceSelector = mac if mac is not None else new.index
        else:
            view = DomainXML(live_text)
            mac = self._selected_mac(iface, view, doc)
            selector = mac if mac is not None else iface
            old_type = doc.find(selector).type
            new = edit(name, selector)
        plan = _Plan(action, before, doc.tostring(), new, list(doc.notes), mac=mac)
        in_live = mac is None or any(i.mac == mac for i in view.interfaces)
        if running and live is not False and live_text is not None and not in_live:
            if live is True:
                raise LiveChangeUnsupported(
                    f"domain {self.name!r} on {self.host.uri}: interface {mac} is in the "
                    "persistent definition only, not on the running guest; drop live=True "
                    "(CLI: --live) to change its next boot"
                )
            note = f"interface {mac} is not on the running guest: it changes for the next boot"
            log.info("domain %r: %s", self.name, note)
            plan.notes.append(note)
        elif running and live is not False and live_text is not None:
            # The live view is edited in place: read what the guest runs with first.
            running_iface = view.find(selector)
            plan.live_old = view.interface_xml(selector)
            (view.use_bridge if new_type == "bridge" else view.use_nat)(name, selector)
            plan.live_new = view.interface_xml(selector)
            if plan.live_new == plan.live_old:
                plan.live_new = plan.live_old = None  # the running guest is there already
            elif "direct" in (old_type, running_iface.type, new_type):
                raise LiveChangeUnsupported(
                    f"domain {self.name!r} on {self.host.uri}: libvirt cannot move a running "
                    f"guest's interface {running_iface.describe()} to or from macvtap "
                    "(type='direct'); pass live=False (CLI: --config) to change the next boot only"
                )
        if plan.before == plan.after and plan.live_new is None:
            note = f"interface {new.describe()} is on {new_type} {name!r} already"
            log.info("domain %r: %s", self.name, note)
            plan.notes.append(note)
            return self._change(plan, dry_run=dry_run, live=False, config=False)
        change = self._run(plan, live=live, dry_run=dry_run, persistent=persistent)
        if change.applied_live and bounce_link and not dry_run:
            seconds = BOUNCE_SECONDS if bounce_link is True else float(bounce_link)
            self.bounce_link(selector, seconds=seconds)
            change = dataclasses.replace(
                change, notes=(*change.notes, f"link bounced ({seconds:g} s down)")
            )
        return change

    def add_interface(
        self,
        *,
        bridge: str | None = None,
        network: str | None = None,
        mac: str | None = None,
        model: str | None = "virtio",
        live: bool | None = None,
        dry_run: bool = False,
    ) -> Change:
        """Add an interface on ``bridge`` or libvirt ``network`` (exactly one).

        ``mac=None`` picks a MAC unique on this host (every domain's live and persistent XML,
        network reservations; prefix 52:54:00); a given ``mac`` raises
        :class:`~kvmnet.errors.MacInUse` if something uses it already.
        """
        if (bridge is None) == (network is None):
            raise InvalidInput("add_interface takes exactly one of bridge= or network=")
        if network is not None:
            self.host.network(network)
        running, persistent = self._running_and_persistent(live)
        from .macalloc import MacAllocator

        alloc = MacAllocator(self.host)
        chosen = alloc.reserve(mac) if mac is not None else alloc.allocate()
        for attempt in range(_MAC_ATTEMPTS):
            plan = self._plan_add(chosen, bridge, network, model, running, live, persistent)
            if dry_run:
                return self._change(plan, dry_run=True, live=False, config=False)
            # Another writer (a second kvmnet, virt-manager) may have taken the MAC since the
            # inventory was read: read it again just before defining.
            alloc.refresh()
            users = alloc.in_use.get(chosen)
            if not users:
                return self._run(plan, live=live, dry_run=False, persistent=persistent)
            if mac is not None:
                raise MacInUse(
                    f"MAC {chosen} was taken by {'; '.join(users)} while adding it to domain "
                    f"{self.name!r}; choose another MAC",
                    mac=chosen,
                    used_by=users,
                )
            log.info("MAC %s was taken meanwhile (attempt %d); drawing another", chosen, attempt)
            chosen = alloc.allocate()
        raise MacInUse(
            f"every MAC drawn for domain {self.name!r} was taken before it could be defined "
            f"({_MAC_ATTEMPTS} attempts); another tool is adding interfaces: try again",
            mac=chosen,
        )

    def _plan_add(
        self,
        mac: str,
        bridge: str | None,
        network: str | None,
        model: str | None,
        running: bool,
        live: bool | None,
        persistent: bool,
    ) -> _Plan:
        before = self._handle.xml(inactive=True) if persistent else self._handle.xml()
        doc = DomainXML(before)
        new = doc.add_interface(bridge=bridge, network=network, mac=mac, model=model)
        plan = _Plan("add_interface", before, doc.tostring(), new, list(doc.notes), mac=mac)
        if running and live is not False:
            plan.live_new = doc.interface_xml(mac)
            plan.live_verb = "attach"
        return plan

    def remove_interface(
        self, iface: IfaceSelector, *, live: bool | None = None, dry_run: bool = False
    ) -> Change:
        """Remove an interface, selected as for :meth:`use_bridge` (``None``: the first).

        Usage: ``dom.remove_interface("52:54:00:ab:cd:ef")``. Naming the MAC is the safer
        habit; the command line insists on it.
        """
        running, persistent = self._running_and_persistent(live)
        live_text = self._handle.xml() if running else None
        before = self._handle.xml(inactive=True) if persistent else live_text
        assert before is not None
        doc = DomainXML(before)
        view = DomainXML(live_text) if live_text is not None else doc
        mac = self._selected_mac(iface, view, doc)
        selector: IfaceSelector = mac if mac is not None else iface
        plan_notes: list[str] = []
        if persistent and not any(i.mac == mac for i in doc.interfaces) and mac is not None:
            # Attached live only: nothing to remove from the next boot.
            removed = view.find(selector)
            after = before
            plan_notes.append(f"interface {mac} is not in the persistent definition")
            log.warning("domain %r: %s", self.name, plan_notes[-1])
        else:
            removed = doc.remove_interface(selector)
            after = doc.tostring()
        plan = _Plan("remove_interface", before, after, removed, plan_notes, mac=mac)
        if running and live is not False and live_text is not None and mac is not None:
            live_doc = DomainXML(live_text)
            if any(i.mac == mac for i in live_doc.interfaces):
                plan.live_new = live_doc.interface_xml(mac)
                plan.live_old = plan.live_new
                plan.live_verb = "detach"
        return self._run(plan, live=live, dry_run=dry_run, persistent=persistent)

    def bounce_link(self, iface: IfaceSelector = None, *, seconds: float = BOUNCE_SECONDS) -> None:
        """Take the running guest's link down for ``seconds``, then up: it renews DHCP.

        Without this a guest moved from NAT to the LAN keeps its NAT address.
        """
        doc = DomainXML(self._handle.xml())
        current = doc.find(iface)
        if current.link == "down":
            log.warning(
                "domain %r: link of %s is down already; not bouncing", self.name, current.mac
            )
            return
        doc.set_link("down", current.mac if current.mac is not None else iface)
        self._handle.update_device(doc.interface_xml(current.mac), live=True, config=False)
        time.sleep(seconds)
        doc.set_link("up", current.mac)
        self._handle.update_device(doc.interface_xml(current.mac), live=True, config=False)

    # -- the one apply mechanism -----------------------------------------------------------

    def _running_and_persistent(self, live: bool | None) -> tuple[bool, bool]:
        hint, self._running_hint = self._running_hint, None
        running = hint if hint is not None else self._handle.is_active()
        persistent = self._handle.is_persistent() if running else True
        if live is True and not running:
            raise LiveChangeUnsupported(
                f"domain {self.name!r} on {self.host.uri} is not running, so there is no live "
                "guest to change; drop live=True (CLI: --live) to change its definition"
            )
        if live is False and not persistent:
            raise LiveChangeUnsupported(
                f"domain {self.name!r} on {self.host.uri} is transient (no persistent "
                "definition); only the running guest can change: drop live=False (--config)"
            )
        return running, persistent

    def _run(self, plan: _Plan, *, live: bool | None, dry_run: bool, persistent: bool) -> Change:
        if dry_run:
            return self._change(plan, dry_run=True, live=False, config=False)
        applied_live = False
        if plan.live_new is not None:
            try:
                self._live_call(plan.live_verb, plan.live_new)
                applied_live = True
                if plan.live_verb == "attach" and plan.mac is not None:
                    self._adopt_live_address(plan)
            except LiveChangeUnsupported as exc:
                if live is True or not _driver_has_no_live_support(exc) or not persistent:
                    raise
                outcome = (
                    "the persistent definition only was changed; it takes effect at the next boot"
                    if plan.after != plan.before
                    else "the persistent definition has this already; the running guest keeps "
                    "its interface until the next boot"
                )
                note = (
                    f"libvirt at {self.host.uri} cannot change a running guest (the driver has "
                    f"no device update/attach/detach): {outcome}"
                )
                log.warning("domain %r: %s", self.name, note)
                plan.notes.append(note)
        if persistent and plan.after != plan.before:
            try:
                self.host.connection.define_domain(plan.after)
            except KvmnetError:
                if applied_live:
                    self._undo_live(plan)
                raise
        return self._change(plan, dry_run=False, live=applied_live, config=persistent)

    def _adopt_live_address(self, plan: _Plan) -> None:
        """Give the persistent definition the PCI address libvirt chose for the hot-plug."""
        try:
            live = DomainXML(self._handle.xml())
            doc = DomainXML(plan.after)
            doc.adopt_address(plan.mac, live, plan.mac)
            plan.after = doc.tostring()
        except KvmnetError as exc:
            # The definition still gets the NIC; libvirt then picks its slot at next boot.
            log.warning("domain %r: cannot copy the new NIC's address: %s", self.name, exc)

    def _live_call(self, verb: str, xml: str) -> None:
        call: Callable[..., None] = {
            "update": self._handle.update_device,
            "attach": self._handle.attach_device,
            "detach": self._handle.detach_device,
        }[verb]
        call(xml, live=True, config=False)

    def _undo_live(self, plan: _Plan) -> None:
        undo = {"update": "update", "attach": "detach", "detach": "attach"}[plan.live_verb]
        xml = plan.live_new if plan.live_verb == "attach" else plan.live_old
        assert xml is not None
        try:
            self._live_call(undo, xml)
        except KvmnetError as exc:
            raise LibvirtError(
                f"domain {self.name!r} on {self.host.uri}: the persistent definition was "
                f"refused and undoing the live {plan.live_verb} failed too ({exc}); the running "
                f"guest has the change, its definition does not: check `virsh dumpxml {self.name}`"
            ) from exc

    def _change(self, plan: _Plan, *, dry_run: bool, live: bool, config: bool) -> Change:
        iface = self._resolve((plan.interface,))[0]
        return Change(
            domain=self.name,
            action=plan.action,
            before=plan.before,
            after=plan.after,
            interface=iface,
            applied_live=live,
            applied_config=config and plan.after != plan.before,
            dry_run=dry_run,
            notes=tuple(plan.notes),
            uri=self.host.uri,
        )

    # -- addresses ----------------------------------------------------------------------

    def addresses(
        self, *, probe: bool = False, runner: Runner | None = None
    ) -> list[GuestAddress]:
        """The running guest's IP addresses per MAC, each saying which source answered.

        Sources in order: the DHCP lease (libvirt networks), the guest agent, the host's
        ARP/neighbour table. A shut-off guest has none. ``probe=True`` (opt-in: it sends one
        small datagram to every address of the bridge's subnet) also sweeps the Linux bridge
        of each NIC still unanswered, on a local host only, and reports what the bridge's
        neighbour table then holds (source "probe"; see :mod:`kvmnet.neighbours`).
        ``runner``: where the bridge is read and swept (default: the Host's machine: this
        one, or the ``qemu+ssh://`` host through the Host's SSH runner).
        """
        from .addresses import guest_addresses

        if not self.is_running:
            return []
        if probe and runner is None:
            from .errors import PreflightRefused

            try:
                runner = self.host.runner()  # on another machine the sweep runs there
            except PreflightRefused:
                runner = None
        live = self.live_interfaces
        bridges: dict[str, str] = {}
        if probe:
            networks = self.host.network_index().by_name
            for i in live:
                net = networks.get(i.source or "") if i.type == "network" else None
                if i.type == "bridge" and i.source:
                    bridge: str | None = i.source
                else:
                    bridge = net.bridge if net is not None and net.forward == "bridge" else None
                if i.mac is not None and bridge:
                    bridges[i.mac] = bridge
        return guest_addresses(
            self._handle, live, self.host.uri, probe=probe, bridges=bridges, runner=runner
        )

    # -- display ------------------------------------------------------------------------

    def __repr__(self) -> str:
        try:
            ifaces = self.interfaces
            state = self.state
        except KvmnetError as exc:
            return f"<Domain {self.name!r} ({exc})>"
        modes = ", ".join(str(i.mode) for i in ifaces)
        nics = f"{len(ifaces)} NIC{'' if len(ifaces) == 1 else 's'}"
        return f"<Domain {self.name!r} {state}, {nics}{': ' + modes if modes else ''}>"

    def _repr_html_(self) -> str:
        rows = [
            (i.index, i.mac, i.type, i.source, i.model, _html.badge(i.mode))
            for i in self.interfaces
        ]
        table = _html.table(
            ["#", "MAC", "type", "source", "model", "mode"],
            rows,
            caption=f"Domain {self.name} ({self.state})",
        )
        pending = self.pending_changes()
        if not pending:
            return table
        lines = [
            f"{a.describe() if a else '(none)'} -> {b.describe() if b else '(removed)'}"
            for a, b in pending
        ]
        return table + _html.section(
            "Next boot differs", *(f"<div>{_html.escape(x)}</div>" for x in lines)
        )


def _driver_has_no_live_support(exc: LiveChangeUnsupported) -> bool:
    """True when libvirt said the driver lacks the call (not that this change is refused)."""
    return (
        exc.__cause__ is not None and _libvirt.error_code(exc.__cause__) == _libvirt.ERR_NO_SUPPORT
    )

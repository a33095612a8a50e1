"""Domain: one guest, its interfaces, and the edits that move them between networks.

Usage::

    dom = host.domain("web1")
    dom.interfaces                          # what it runs with now (or will boot with)
    change = dom.use_bridge("br0")          # persistent definition + running guest
    print(change.diff())

Every edit changes the persistent definition and, when the guest runs and ``live`` allows,
the running guest, through libvirt's device-level calls, which libvirtd applies under its
own domain lock (so concurrent writers on one domain compose instead of overwriting each
other):

* a switch whose running and persistent interface agree is ONE call,
  ``updateDeviceFlags(LIVE|CONFIG)``: libvirt changes both or neither;
* otherwise the running guest first (update, attach or detach on the live device's XML, so
  its MAC, alias and PCI address stay), then the persistent definition by the same verb with
  ``CONFIG``; if that fails the live step is undone, so nothing is half-applied;
* a driver without device calls (libvirt's test driver) gets ``defineXML``, guarded: the
  definition is read again right before the define and compared with the text the edit was
  based on; if another writer changed it, the edit is made again on the fresh text (a few
  times), else `ConcurrentChange`. Nothing is ever overwritten.

If libvirtd dies or freezes mid-change (keepalive, see `kvmnet.connect`), a fresh
connection reads back what stands and `ConnectionLost` says it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from lxml import etree

from .. import _log
from ..core import validate
from ..core.domainxml import (
    DomainXML,
    GuestInterface,
    GuestInterfaces,
    IfaceSelector,
    InterfaceKey,
    iface_selector,
)
from ..errors import (
    ConcurrentChange,
    ConnectionLost,
    InterfaceNotFound,
    InvalidInput,
    KvmnetError,
    LibvirtError,
    LiveChangeUnsupported,
    MacInUse,
)
from ..mode import Mode
from . import _libvirt

if TYPE_CHECKING:
    from ..core.change import Change
    from ..core.network import Network
    from ..host import Host
    from ..hostnet.runners.runner import Runner
    from ._libvirt import DomainHandle
    from .addresses import GuestAddress
    from .macalloc import MacAllocator

__all__ = ["Domain"]

log = _log.get(__name__)

#: Seconds a bounced link stays down: the guest's carrier poll must notice (about 0.2 s
#: for virtio-net under Linux), so a down/up pair faster than this is missed.
BOUNCE_SECONDS = 1.0
# How often add_interface(mac=None) draws a new MAC when another writer took it meanwhile.
_MAC_ATTEMPTS = 5
# How often a guarded defineXML makes its edit again on a definition another writer changed.
_DEFINE_ATTEMPTS = 5
#: Called with the Domain right before a guarded define re-reads the definition: the window
#: in which another writer's change is detected. A seam for tests, which put a real second
#: writer there; None in normal use.
_before_define_check: Callable[[Domain], None] | None = None


class _Plan:
    """What one edit will do; built first so that dry runs and real runs share it.

    A plain class: internal and mutable, and a dataclass would compile its methods when this
    module is imported (every command-line start, even a listing that plans nothing). The
    optional parts are class attributes until set: one plan per guest of a bulk switch.
    """

    live_new: str | None = None  # device XML for the running guest
    live_old: str | None = None  # device XML that undoes it
    live_verb = "update"  # update / attach / detach
    # The persistent change as a device-level call: the device XML and the verb.
    config_xml: str | None = None
    config_verb = "update"
    # The live and persistent device agree: LIVE|CONFIG in one call.
    one_call = False
    # config_xml (and one_call) to be derived from ``after`` right before the write, if the
    # driver has device calls then: a bulk switch plans every guest before its first write,
    # when whether it has them is not known yet (see `Domain._finish_switch_now`).
    device_xml_later = False
    # The same edit on a fresh definition text -> (after, notes), for the guarded define.
    redo: Callable[[str], tuple[str, list[str]]] | None = None
    # The edit's warnings (elements dropped), logged once the change is made or shown as a
    # dry run: a change refused before its write must not claim to have dropped anything.
    pending: tuple[str, ...] = ()

    def __init__(
        self,
        action: str,
        before: str,
        after: str,
        interface: GuestInterface,
        notes: list[str],
        *,
        mac: str | None = None,
        ref: IfaceSelector = None,
    ) -> None:
        self.action = action
        self.before = before
        self.after = after
        self.interface = interface
        self.notes = notes
        self.mac = mac
        # What finds the interface in another text of the domain (a fresh read, the read-back
        # after a fault): its InterfaceKey (the MAC, told apart from a twin's by its address),
        # else the MAC.
        self.ref: IfaceSelector = ref if ref is not None else mac


class _QuietXML(DomainXML):
    """DomainXML whose edits note what they drop without logging it: a switch logs the notes
    itself (`_Plan.pending`) once the change goes ahead, not while it may still be refused."""

    def _warn(self, message: str) -> None:
        self._notes.append(message)


class _Switch:
    """A switch planned by `Domain._prepare_switch`: read and edited, nothing written yet."""

    __slots__ = ("action", "name", "new_type", "persistent", "plan", "selector", "unchanged")

    def __init__(
        self,
        action: str,
        new_type: str,
        name: str,
        plan: _Plan,
        *,
        persistent: bool,
        selector: IfaceSelector,
        unchanged: bool,
    ) -> None:
        self.action, self.new_type, self.name, self.plan = action, new_type, name, plan
        self.persistent, self.selector, self.unchanged = persistent, selector, unchanged


class Domain:
    """A libvirt domain (guest). Get it from `kvmnet.Host.domain` or ``domains()``.

    Args:
        host: the connected host the guest lives on.
        handle: libvirt's handle on the domain (internal: use `Host.domain`).
    """

    def __init__(self, host: Host, handle: DomainHandle) -> None:
        self.host = host
        self._handle = handle
        self.name: str = handle.name
        # Set by bulk calls right after their listing: spares libvirt calls per guest.
        self._running_hint: bool | None = None
        self._persistent_hint: bool | None = None

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
        """The live XML, or with ``inactive=True`` the persistent definition.

        Args:
            inactive: True: the persistent definition (what the next boot uses).

        Returns:
            The domain XML as libvirt reports it.
        """
        return self._handle.xml(inactive=validate.flag(inactive, "inactive"))

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
        """Interfaces whose next boot differs from now: ``(live, persistent)`` pairs by MAC
        (interfaces sharing a MAC, a failover pair or clones, pair in XML order).

        ``(iface, None)``: removed for next boot; ``(None, iface)``: added for next boot.
        Empty when the guest is shut off or both agree.

        Returns:
            ``(live, persistent)`` interface pairs, either side None when absent.
        """
        if not self.is_running:
            return ()
        live = _by_mac_and_place(self.live_interfaces)
        nxt = _by_mac_and_place(self.persistent_interfaces)
        pairs: list[tuple[GuestInterface | None, GuestInterface | None]] = []
        for mac in [*live, *(m for m in nxt if m not in live)]:
            a, b = live.get(mac), nxt.get(mac)
            if a is None or b is None or (a.type, a.source) != (b.type, b.source):
                pairs.append((a, b))
        return tuple(pairs)

    def _selected(
        self,
        iface: IfaceSelector,
        view: DomainXML,
        persistent: DomainXML | None = None,
        *,
        movable: bool = False,
    ) -> InterfaceKey | None:
        """The key of the interface ``iface`` selects in ``view`` (what ``interfaces`` shows):
        what finds that very interface in the other text (None: it has no MAC).

        An index selects the interface at that index, whatever MACs others share with it:
        the key tells it from a twin (a failover pair, a clone) by its ``<address>``, as
        libvirt does. A MAC (or a GuestInterface with one) missing from the running guest is
        looked up in ``persistent`` too: a NIC added for the next boot only exists there
        alone. ``movable``: see `DomainXML.key`.
        """
        try:
            return view.key(iface, movable=movable)
        except InterfaceNotFound as missing:
            by_mac = isinstance(iface, (str, InterfaceKey)) or (
                isinstance(iface, GuestInterface) and iface.mac is not None
            )
            if persistent is None or persistent is view or not by_mac:
                raise
            try:
                return persistent.key(iface, movable=movable)
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
        """Put an interface on host bridge ``bridge`` (the LAN).

        Arguments are checked (`kvmnet.core.validate`) before anything is read or written.

        Args:
            bridge: the host bridge's name, e.g. ``"br0"``.
            iface: which interface: None (the first), its MAC, its index, or a
                `GuestInterface`.
            live: None: the running guest too if it runs; False: next boot only; True:
                fail unless the running guest changes too.
            dry_run: True: compute and return the change without applying anything.
            bounce_link: after a live switch, take the guest's link down for a second (or
                this many seconds) so it asks DHCP again.

        Returns:
            The `Change`: old and new XML, what was applied, notes.

        Raises:
            InvalidInput: a bad argument (or a subclass: InvalidName, InvalidType...).
            InterfaceNotFound: no interface matches ``iface``.
            LiveChangeUnsupported: ``live=True`` and the running guest cannot take the change.
            ConcurrentChange: the definition changed under us and the retry failed too.
            ConnectionLost: libvirt went away mid-change (the error says what was applied).
        """
        bridge = validate.ifname(bridge, what="bridge")
        iface, live, dry_run, bounce_link = _edit_args(iface, live, dry_run, bounce_link)
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

        Args:
            network: the libvirt network's name.
            iface: which interface: None (the first), its MAC, its index, or a
                `GuestInterface`.
            live: None: the running guest too if it runs; False: next boot only; True:
                fail unless the running guest changes too.
            dry_run: True: compute and return the change without applying anything.
            bounce_link: after a live switch, take the guest's link down for a second (or
                this many seconds) so it asks DHCP again.

        Returns:
            The `Change`; a note says so when ``network`` does not NAT.

        Raises:
            NetworkNotFound: the host has no such network.
            InvalidInput: a bad argument, before anything is read.
            InterfaceNotFound: no interface matches ``iface``.
            LiveChangeUnsupported: ``live=True`` and the running guest cannot take the change.
            ConnectionLost: libvirt went away mid-change (the error says what was applied).
        """
        network = validate.network_name(network)
        iface, live, dry_run, bounce_link = _edit_args(iface, live, dry_run, bounce_link)
        return self._use_nat(network, iface, live, dry_run, bounce_link)

    def _use_nat(
        self,
        network: str,
        iface: IfaceSelector,
        live: bool | None,
        dry_run: bool,
        bounce_link: bool | float,
    ) -> Change:
        """`use_nat` with its arguments checked already (a bulk call checks them once)."""
        net = self.host.network(network)
        change = self._switch(
            "use_nat", "network", network, iface, live, dry_run, bounce_link, forward_of(net)
        )
        return self._nat_noted(change, net)

    def _nat_noted(self, change: Change, net: Network) -> Change:
        """``change`` with a note (and a warning) when the network it went to does not NAT."""
        if net.mode is not Mode.NAT:
            note = f"network {net.name!r} is {net.mode} (forward mode {net.forward!r}), not NAT"
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
        forward: str | None = None,
    ) -> Change:
        ready = self._prepare_switch(action, new_type, name, iface, live, forward=forward)
        return self._finish_switch(ready, live, dry_run, bounce_link)

    def _prepare_switch(
        self,
        action: str,
        new_type: str,
        name: str,
        iface: IfaceSelector,
        live: bool | None,
        *,
        device_xml_later: bool = False,
        forward: str | None = None,
    ) -> _Switch:
        """Read the guest and make the edit, writing nothing: every refusal known before a
        write (no such interface, macvtap on a running guest, ...) is raised here. A bulk
        switch prepares every guest before it writes the first (`kvmnet.bulk`), with
        ``device_xml_later``: the device XML is made at the write, only if the driver takes it.
        ``forward``: the target network's forward mode (`forward_of`), for `DomainXML.use_nat`.
        """
        try:
            return self._prepare_switch_now(
                action, new_type, name, iface, live, device_xml_later, forward
            )
        except ConnectionLost:
            raise
        except KvmnetError as exc:
            if not self.host.connection.is_lost():
                raise
            raise self._not_sent(action, exc) from exc

    def _finish_switch(
        self, ready: _Switch, live: bool | None, dry_run: bool, bounce_link: bool | float
    ) -> Change:
        """Write what `_prepare_switch` planned (or return it as a dry run)."""
        try:
            return self._finish_switch_now(ready, live, dry_run, bounce_link)
        except ConnectionLost:
            raise
        except KvmnetError as exc:
            if not self.host.connection.is_lost():
                raise
            raise self._not_sent(ready.action, exc) from exc

    def _prepare_switch_now(
        self,
        action: str,
        new_type: str,
        name: str,
        iface: IfaceSelector,
        live: bool | None,
        device_xml_later: bool,
        forward: str | None,
    ) -> _Switch:
        running, persistent, live_text = self._read_state(live)
        before = self._handle.xml(inactive=True) if persistent else live_text
        assert before is not None
        doc = _QuietXML(before)
        edit = _editor(new_type, forward)
        running_iface: GuestInterface | None = None
        if live_text is None:
            # Shut off: the persistent definition is the only view; select in it directly.
            view: DomainXML = doc
            new = edit(doc, name, iface)
            mac = new.mac
            key = doc.key(new.index) if mac is not None else None
            selector: IfaceSelector = key if key is not None else new.index
            in_live = True  # the question does not arise (and reading every interface costs)
        else:
            view = _QuietXML(live_text)
            key = self._selected(iface, view, doc, movable=True)
            mac = key.mac if key is not None else None
            selector = key if key is not None else iface
            old_type = doc.find(selector).type
            in_live = key is None or _has(view, key)
            # The refusals first, then the edit: a refused change has dropped nothing.
            if live is True and not in_live:
                raise LiveChangeUnsupported(
                    f"domain {self.name!r} on {self.host.uri}: interface {mac} is in the "
                    "persistent definition only, not on the running guest; drop live=True "
                    "(CLI: --live) to change its next boot"
                )
            if live is not False and in_live:
                running_iface = view.find(selector)
                there = (running_iface.type, running_iface.source) == (new_type, name)
                if not there and "direct" in (old_type, running_iface.type, new_type):
                    raise LiveChangeUnsupported(
                        f"domain {self.name!r} on {self.host.uri}: libvirt cannot move a "
                        f"running guest's interface {running_iface.describe()} to or from "
                        "macvtap (type='direct'); pass live=False (CLI: --config) to change "
                        "the next boot only"
                    )
            new = edit(doc, name, selector)
        plan = _Plan(action, before, doc.tostring(), new, list(doc.notes), mac=mac, ref=key)
        plan.pending = tuple(doc.notes)
        if persistent and key is not None:
            plan.redo = _redo_switch(new_type, name, key, forward)
            if device_xml_later:
                plan.device_xml_later = True
            elif self.host.connection.device_calls is not False:
                # The interface's own XML, its <address> too: libvirt tells a device from
                # another with its MAC by that.
                plan.config_xml = doc.interface_xml(key)
        if running and live is not False and live_text is not None and not in_live:
            note = f"interface {mac} is not on the running guest: it changes for the next boot"
            log.info("domain %r: %s", self.name, note)
            plan.notes.append(note)
        elif running_iface is not None:
            # The live view is edited in place: read what the guest runs with first.
            plan.live_old = view.interface_xml(selector)
            edit(view, name, selector)
            plan.live_new = view.interface_xml(selector)
            # What the running guest alone drops (its view's notes repeat the definition's).
            plan.pending += tuple(n for n in view.notes if n not in plan.pending)
            there = (running_iface.type, running_iface.source) == (new_type, name)
            if plan.live_new == plan.live_old or there:
                # The running guest is there already (the edit would only drop the live-only
                # source attributes libvirt adds, portid and bridge: no call for that).
                plan.live_new = plan.live_old = None
            elif plan.config_xml is not None and plan.after != plan.before:
                plan.one_call = _same_device(plan.live_new, plan.config_xml)
        unchanged = plan.before == plan.after and plan.live_new is None
        if unchanged:
            note = f"interface {new.describe()} is on {new_type} {name!r} already"
            log.info("domain %r: %s", self.name, note)
            plan.notes.append(note)
        return _Switch(action, new_type, name, plan, persistent=persistent, selector=selector,
                       unchanged=unchanged)  # fmt: skip

    def _finish_switch_now(
        self, ready: _Switch, live: bool | None, dry_run: bool, bounce_link: bool | float
    ) -> Change:
        plan = ready.plan
        if ready.unchanged:
            return self._change(plan, dry_run=dry_run, live=False, config=False)
        if plan.device_xml_later and self.host.connection.device_calls is not False:
            # As _prepare_switch_now makes them, from the edited text (a driver without device
            # calls, e.g. libvirt's test driver, never needs them: no parse per guest there).
            assert plan.ref is not None
            plan.config_xml = _QuietXML(plan.after).interface_xml(plan.ref)
            if plan.live_new is not None and plan.after != plan.before:
                plan.one_call = _same_device(plan.live_new, plan.config_xml)
        plan.device_xml_later = False
        change = self._run(plan, live=live, dry_run=dry_run, persistent=ready.persistent)
        if change.applied_live and bounce_link and not dry_run:
            seconds = BOUNCE_SECONDS if bounce_link is True else float(bounce_link)
            self.bounce_link(ready.selector, seconds=seconds)
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

        Given or generated, the MAC is claimed in this machine's MAC ledger until it is defined
        (docs/macs.md).

        Args:
            bridge: the host bridge to attach to (or give ``network``).
            network: the libvirt network to attach to (or give ``bridge``).
            mac: the MAC; None picks one unique on this host (every domain's live and
                persistent XML, network reservations; prefix 52:54:00).
            model: the NIC model (``virtio`` unless given; None leaves it to libvirt).
            live: None: the running guest too if it runs; False: next boot only; True:
                fail unless the running guest changes too.
            dry_run: True: compute and return the change without applying anything.

        Returns:
            The `Change` adding the interface.

        Raises:
            MacInUse: the given ``mac`` is used already.
            InvalidMac: a multicast, zero or ``fe:`` MAC.
            InvalidInput: another bad argument, before anything is read or written.
            UntrustedPath: the MAC ledger is writable by another user.
            NetworkNotFound: no libvirt network called ``network``.
        """
        try:
            return self._add(bridge, network, mac, model, live, dry_run)
        except ConnectionLost:
            raise
        except KvmnetError as exc:
            if not self.host.connection.is_lost():
                raise
            raise self._not_sent("add_interface", exc) from exc

    def _add(
        self,
        bridge: str | None,
        network: str | None,
        mac: str | None,
        model: str | None,
        live: bool | None,
        dry_run: bool,
    ) -> Change:
        if (bridge is None) == (network is None):
            raise InvalidInput(
                "add_interface takes exactly one of bridge= or network=, got bridge="
                f"{validate.shown(bridge)} and network={validate.shown(network)}"
            )
        if bridge is not None:
            bridge = validate.ifname(bridge, what="bridge")
        if network is not None:
            network = validate.network_name(network)
        mac = validate.guest_mac(mac) if mac is not None else None
        model = validate.model(model)
        live = validate.optional_flag(live, "live")
        dry_run = validate.flag(dry_run, "dry_run")
        if network is not None:
            self.host.network(network)
        running, persistent = self._running_and_persistent(live)
        # -- MAC claim (macalloc/macledger own this part) ----------------------------------
        # Given or generated, the MAC is claimed in this machine's ledger before the inventory
        # is read again and the domain defined: of two processes adding one MAC at once, one
        # claims it and the other gets MacInUse (or, once the claim is released, finds it in
        # the winner's XML). The claim is dropped when the define is done or failed.
        from .macalloc import MacAllocator, ledger_for

        alloc = MacAllocator(self.host, ledger=ledger_for(self.host.uri))
        try:
            chosen = alloc.reserve(mac) if mac is not None else alloc.allocate()
            return self._add_claimed(
                alloc,
                chosen,
                mac=mac,
                target=(bridge, network, model),
                running=running,
                persistent=persistent,
                live=live,
                dry_run=dry_run,
            )
        finally:
            alloc.release_claims()

    def _add_claimed(
        self,
        alloc: MacAllocator,
        chosen: str,
        *,
        mac: str | None,
        target: tuple[str | None, str | None, str | None],
        running: bool,
        persistent: bool,
        live: bool | None,
        dry_run: bool,
    ) -> Change:
        """add_interface once ``chosen`` is claimed: define it unless someone took it meanwhile.

        ``target`` is (bridge, network, model) as add_interface got them.
        """
        bridge, network, model = target
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
        if persistent:
            if self.host.connection.device_calls is not False:
                plan.config_xml = doc.interface_xml(mac)
            plan.config_verb = "attach"
            plan.redo = _redo_add(bridge, network, mac, model)
        if running and live is not False:
            plan.live_new = doc.interface_xml(mac)
            plan.live_verb = "attach"
        return plan

    def remove_interface(
        self, iface: IfaceSelector, *, live: bool | None = None, dry_run: bool = False
    ) -> Change:
        """Remove an interface, selected as for `use_bridge`.

        Usage: ``dom.remove_interface("52:54:00:ab:cd:ef")``. Naming the MAC is the safer
        habit; the command line insists on it.

        Args:
            iface: which interface: its MAC (safest), its index, a `GuestInterface`, or
                None for the first.
            live: None: the running guest too if it runs; False: next boot only; True:
                fail unless the running guest changes too.
            dry_run: True: compute and return the change without applying anything.

        Returns:
            The `Change` removing the interface.

        Raises:
            InvalidInput: a bad argument, before anything is read or written.
            InterfaceNotFound: no interface matches ``iface``.
            LiveChangeUnsupported: ``live=True`` and the running guest cannot take the change.
        """
        iface = iface_selector(iface)
        live = validate.optional_flag(live, "live")
        dry_run = validate.flag(dry_run, "dry_run")
        try:
            return self._remove(iface, live, dry_run)
        except ConnectionLost:
            raise
        except KvmnetError as exc:
            if not self.host.connection.is_lost():
                raise
            raise self._not_sent("remove_interface", exc) from exc

    def _remove(self, iface: IfaceSelector, live: bool | None, dry_run: bool) -> Change:
        running, persistent, live_text = self._read_state(live)
        before = self._handle.xml(inactive=True) if persistent else live_text
        assert before is not None
        doc = DomainXML(before)
        view = DomainXML(live_text) if live_text is not None else doc
        key = self._selected(iface, view, doc)
        mac = key.mac if key is not None else None
        selector: IfaceSelector = key if key is not None else iface
        plan_notes: list[str] = []
        config_xml: str | None = None
        if persistent and key is not None and not _has(doc, key):
            # Attached live only: nothing to remove from the next boot.
            removed = view.find(selector)
            after = before
            plan_notes.append(f"interface {mac} is not in the persistent definition")
            log.warning("domain %r: %s", self.name, plan_notes[-1])
        else:
            # Its own XML, <address> too: how libvirt tells it from a twin with its MAC.
            config_xml = doc.interface_xml(selector) if persistent and key is not None else None
            removed = doc.remove_interface(selector)
            after = doc.tostring()
        plan = _Plan("remove_interface", before, after, removed, plan_notes, mac=mac, ref=key)
        if after != before and config_xml is not None and key is not None:
            plan.config_xml, plan.config_verb = config_xml, "detach"
            plan.redo = _redo_remove(key)
        if running and live is not False and live_text is not None and key is not None:
            live_doc = DomainXML(live_text)
            if _has(live_doc, key):
                plan.live_new = live_doc.interface_xml(key)
                plan.live_old = plan.live_new
                plan.live_verb = "detach"
        return self._run(plan, live=live, dry_run=dry_run, persistent=persistent)

    def bounce_link(self, iface: IfaceSelector = None, *, seconds: float = BOUNCE_SECONDS) -> None:
        """Take the running guest's link down for ``seconds``, then up: it renews DHCP.

        Without this a guest moved from NAT to the LAN keeps its NAT address.

        Args:
            iface: which interface, selected as for `use_bridge`.
            seconds: how long the link stays down: a finite number above 0, at most 600.

        Raises:
            InvalidInput: a bad ``iface`` or ``seconds``.
            InterfaceNotFound: no interface matches ``iface``.
        """
        iface = iface_selector(iface)
        seconds = validate.duration(seconds, "seconds", maximum=600.0)
        doc = DomainXML(self._handle.xml())
        current = doc.find(iface)
        if current.link == "down":
            log.warning(
                "domain %r: link of %s is down already; not bouncing", self.name, current.mac
            )
            return
        # Its key (or its index, without a MAC): an interface that shares its MAC is still
        # the one selected, and its XML carries the <address> that tells libvirt which.
        key = doc.key(current.index)
        which: IfaceSelector = key if key is not None else current.index
        doc.set_link("down", which)
        self._handle.update_device(doc.interface_xml(which), live=True, config=False)
        time.sleep(seconds)
        doc.set_link("up", which)
        self._handle.update_device(doc.interface_xml(which), live=True, config=False)

    # -- the one apply mechanism -----------------------------------------------------------

    def _running_and_persistent(self, live: bool | None) -> tuple[bool, bool]:
        running, persistent, _live_text = self._read_state(live)
        return running, persistent

    def _read_state(self, live: bool | None) -> tuple[bool, bool, str | None]:
        """(running, persistent, live XML if running), in as few libvirt calls as it takes.

        Without a hint from a listing, the live XML says whether the guest runs (a running
        domain's root element has an ``id``): the XML a running guest's edit needs anyway,
        so no separate ``isActive`` call.
        """
        hint, self._running_hint = self._running_hint, None
        persistent_hint, self._persistent_hint = self._persistent_hint, None
        if hint is None:
            live_text: str | None = self._handle.xml()
            running = live_text is not None and _has_running_id(live_text)
        else:
            running = hint
            live_text = self._handle.xml() if running else None
        if not running:
            live_text = None
        if not running:
            persistent = True
        elif persistent_hint is not None:
            persistent = persistent_hint
        else:
            persistent = self._handle.is_persistent()
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
        return running, persistent, live_text

    def _not_sent(self, action: str, exc: KvmnetError) -> ConnectionLost:
        """A daemon lost before any write: say that nothing changed (no write was sent).

        Each edit raises it for an error on a lost connection that is not a ConnectionLost
        already (losses during the writes are read back by `_lost`), catching it itself: a
        context manager's generator cost every guest of a bulk switch its set-up.
        """
        return ConnectionLost(
            f"domain {self.name!r} on {self.host.uri}: libvirtd stopped answering before "
            f"{action} sent any change ({exc}). Outcome: not applied; nothing was changed: "
            "run the same call again when libvirtd answers",
            uri=self.host.uri,
            outcome="not applied",
        )

    def _run(self, plan: _Plan, *, live: bool | None, dry_run: bool, persistent: bool) -> Change:
        if dry_run:
            return self._change(plan, dry_run=True, live=False, config=False)
        try:
            return self._apply(plan, live=live, persistent=persistent)
        except KvmnetError as exc:
            if not self.host.connection.is_lost():
                raise  # libvirt answered: its refusal says what happened
            raise self._lost(plan, exc, persistent=persistent) from exc

    def _apply(self, plan: _Plan, *, live: bool | None, persistent: bool) -> Change:
        conn = self.host.connection
        config_pending = persistent and plan.after != plan.before
        applied_live = False
        if plan.live_new is not None:
            both = plan.one_call and config_pending
            # One call for both takes the persistent definition's device XML: libvirt fills
            # the live-only parts (alias, tap name) in from the running device, and the
            # definition does not get them (the live XML's alias would stick there).
            xml = plan.config_xml if both and plan.config_xml is not None else plan.live_new
            try:
                self._live_call(plan.live_verb, xml, config=both)
                conn.device_calls = True
                applied_live = True
                config_pending = config_pending and not both
                if plan.live_verb == "attach" and plan.mac is not None:
                    self._adopt_live_address(plan)
            except LiveChangeUnsupported as exc:
                if live is True or not _driver_has_no_live_support(exc) or not persistent:
                    raise
                conn.device_calls = False
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
        if config_pending:
            try:
                self._write_persistent(plan)
            except KvmnetError:
                if applied_live and not conn.is_lost():
                    self._undo_live(plan)
                raise
        return self._change(plan, dry_run=False, live=applied_live, config=persistent)

    def _write_persistent(self, plan: _Plan) -> None:
        """The persistent half: a device-level CONFIG call, or the guarded define."""
        conn = self.host.connection
        if plan.config_xml is not None and conn.device_calls is not False:
            call = {
                "update": self._handle.update_device,
                "attach": self._handle.attach_device,
                "detach": self._handle.detach_device,
            }[plan.config_verb]
            try:
                call(plan.config_xml, live=False, config=True)
                conn.device_calls = True
                return
            except LibvirtError as exc:
                if exc.code not in _libvirt.UNSUPPORTED_CODES:
                    raise
                # The driver lacks the call (test driver: remembered for the connection), or
                # this device kind cannot be changed so (then just this once): define it.
                if exc.code == _libvirt.ERR_NO_SUPPORT:
                    conn.device_calls = False
        self._define_guarded(plan)

    def _define_guarded(self, plan: _Plan) -> None:
        """defineXML, but only over the text the edit was based on (see the module docs)."""
        for attempt in range(_DEFINE_ATTEMPTS):
            if _before_define_check is not None:
                _before_define_check(self)
            current = self._handle.xml(inactive=True)
            if current == plan.before:
                self.host.connection.define(plan.after)
                return
            if plan.redo is None:
                break
            log.info(
                "domain %r: definition changed by another writer since it was read "
                "(attempt %d); making the %s again on the fresh one",
                self.name,
                attempt + 1,
                plan.action,
            )
            after, notes = plan.redo(current)
            plan.before, plan.after = current, after
            fresh = [n for n in notes if n not in plan.notes]
            plan.notes = [*plan.notes, *fresh]
            plan.pending = (*plan.pending, *fresh)
            if after == current:
                return  # the other writer made this very change already
        raise ConcurrentChange(
            f"domain {self.name!r} on {self.host.uri}: its definition kept changing while "
            f"kvmnet tried to {plan.action} ({_DEFINE_ATTEMPTS} attempts); nothing was "
            "overwritten. Another tool is editing it: wait for it and run this again"
        )

    def _lost(self, plan: _Plan, exc: KvmnetError, *, persistent: bool) -> ConnectionLost:
        """What stands after the daemon went away mid-change, read back on a new connection."""
        conn = self.host.connection
        what = (
            f"domain {self.name!r} on {self.host.uri}: libvirtd stopped answering during "
            f"{plan.action} ({exc})"
        )
        try:
            back = _libvirt.read_back(
                self.host.uri, self.name, keepalive=conn.keepalive, timeout=conn.readback_timeout
            )
        except KvmnetError as again:
            return ConnectionLost(
                f"{what}. What stands is unknown: {again}. When libvirtd answers, "
                f"`virsh dumpxml {self.name}` (running) and `virsh dumpxml --inactive "
                f"{self.name}` (next boot) show it; running the same call again completes it",
                uri=self.host.uri,
                outcome="unknown",
            )
        wanted = _iface_key(plan.after, plan.ref)
        parts: list[tuple[str, bool]] = []
        if plan.live_new is not None and back.live is not None:
            key = _iface_key(back.live, plan.ref)
            parts.append((f"the running guest {_describe_key(key)}", key == wanted))
        if persistent and plan.after != plan.before and back.persistent is not None:
            key = _iface_key(back.persistent, plan.ref)
            parts.append((f"the persistent definition {_describe_key(key)}", key == wanted))
        done = [ok for _, ok in parts]
        if done and all(done):
            outcome, advice = "applied", "the change is complete"
        elif not any(done):
            outcome, advice = "not applied", "nothing changed: run the same call again"
        else:
            outcome = "half-applied"
            advice = (
                "the running guest and its next boot differ (dom.pending_changes() lists it): "
                "run the same call again to complete it"
            )
        facts = "; ".join(f"{text} ({'changed' if ok else 'unchanged'})" for text, ok in parts)
        return ConnectionLost(
            f"{what}. Read back on a new connection: {facts or 'nothing to compare'}. "
            f"Outcome: {outcome}; {advice}",
            uri=self.host.uri,
            outcome=outcome,
        )

    def _adopt_live_address(self, plan: _Plan) -> None:
        """Give the persistent definition the PCI address libvirt chose for the hot-plug."""
        try:
            live = DomainXML(self._handle.xml())
            doc = DomainXML(plan.after)
            doc.adopt_address(plan.mac, live, plan.mac)
            plan.after = doc.tostring()
            if plan.config_xml is not None:
                plan.config_xml = doc.interface_xml(plan.mac)
        except KvmnetError as exc:
            # The definition still gets the NIC; libvirt then picks its slot at next boot.
            log.warning("domain %r: cannot copy the new NIC's address: %s", self.name, exc)

    def _live_call(self, verb: str, xml: str, *, config: bool = False) -> None:
        call: Callable[..., None] = {
            "update": self._handle.update_device,
            "attach": self._handle.attach_device,
            "detach": self._handle.detach_device,
        }[verb]
        call(xml, live=True, config=config)

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
        # Imported here (a listing makes no Change: not on every CLI start), and by its full
        # name: a relative import in a function resolves its package in Python on every call.
        from kvmnet.core.change import Change

        if plan.pending:  # the edit's warnings, now that the change stands (or is shown)
            for note in plan.pending:
                log.warning("%s", note)
            plan.pending = ()
        iface = plan.interface
        mode = self.host.network_index().mode_of(iface.type, iface.source)
        if mode is not iface.mode:  # as _resolve does, for one interface
            iface = dataclasses.replace(iface, mode=mode)
        # The frozen dataclass's __init__ sets each field through object.__setattr__; filling
        # __dict__ at once is several times faster, and a bulk switch makes one per guest
        # (a test holds the fields to Change's).
        change: Change = object.__new__(Change)
        change.__dict__.update(
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
        return change

    # -- addresses ----------------------------------------------------------------------

    def addresses(self, *, probe: bool = False, runner: Runner | None = None) -> list[GuestAddress]:
        """The running guest's IP addresses per MAC, each saying which source answered.

        Sources in order: the DHCP lease (libvirt networks), the guest agent, the host's
        ARP/neighbour table. A shut-off guest has none.

        Args:
            probe: opt-in (it sends one small datagram to every address of the bridge's
                subnet): also sweep the Linux bridge of each NIC still unanswered, and report
                what the bridge's neighbour table then holds (source "probe"; see
                `kvmnet.virt.neighbours`).
            runner: where the bridge is read and swept (default: the Host's machine: this
                one, or the ``qemu+ssh://`` host through the Host's SSH runner).

        Returns:
            One `GuestAddress` per address found.
        """
        from .addresses import guest_addresses

        probe = validate.flag(probe, "probe")
        validate.runner(runner)

        if not self.is_running:
            return []
        if probe and runner is None:
            from ..errors import PreflightRefused

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
        from ..core import _html  # only notebooks render HTML: not on every CLI start

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


def _has_running_id(xml: str) -> bool:
    """Whether domain XML is a running domain's: ``<domain type='kvm' id='7'>`` (a shut-off
    one has no ``id``). The regex ``\\s*<domain\\b[^>]*\\sid=`` as a match, written out:
    compiling it cost every command-line start more than the test."""
    head = xml.lstrip()
    if not head.startswith("<domain"):
        return False
    tag = head[len("<domain") :]
    if tag[:1].isalnum() or tag[:1] == "_":
        return False  # <domains ...>: another element (a regex's \b)
    end = tag.find(">")
    if end >= 0:
        tag = tag[:end]
    at = tag.find("id=", 1)
    while at >= 0:
        if tag[at - 1].isspace():
            return True
        at = tag.find("id=", at + 1)
    return False


def _edit_args(
    iface: object, live: object, dry_run: object, bounce_link: object
) -> tuple[IfaceSelector, bool | None, bool, bool | float]:
    """The options every switch takes, checked (see `kvmnet.core.validate`)."""
    return (
        iface_selector(iface),
        validate.optional_flag(live, "live"),
        validate.flag(dry_run, "dry_run"),
        validate.bounce(bounce_link),
    )


def _driver_has_no_live_support(exc: LiveChangeUnsupported) -> bool:
    """True when libvirt said the driver lacks the call (not that this change is refused)."""
    return (
        exc.__cause__ is not None and _libvirt.error_code(exc.__cause__) == _libvirt.ERR_NO_SUPPORT
    )


def forward_of(net: Network) -> str:
    """``net``'s forward mode as `DomainXML.use_nat` takes it (``"none"``: isolated)."""
    return net.forward or "none"


def _editor(
    new_type: str, forward: str | None
) -> Callable[[DomainXML, str, IfaceSelector], GuestInterface]:
    """The switch to make on a document: ``edit(doc, name, selector)``."""
    if new_type == "bridge":
        return lambda doc, name, which: doc.use_bridge(name, which)
    return lambda doc, name, which: doc.use_nat(name, which, forward=forward)


def _by_mac_and_place(
    ifaces: Iterable[GuestInterface],
) -> dict[tuple[str | None, int], GuestInterface]:
    """Each interface under (its MAC, its place among those with that MAC): two interfaces
    sharing a MAC (or both without one) stay two."""
    seen: dict[str | None, int] = {}
    out: dict[tuple[str | None, int], GuestInterface] = {}
    for iface in ifaces:
        place = seen.get(iface.mac, 0)
        seen[iface.mac] = place + 1
        out[(iface.mac, place)] = iface
    return out


def _has(doc: DomainXML, key: InterfaceKey) -> bool:
    """Whether ``doc`` has the interface ``key`` names."""
    try:
        doc.find(key)
    except InterfaceNotFound:
        return False
    return True


def _redo_switch(
    new_type: str, name: str, key: InterfaceKey, forward: str | None
) -> Callable[[str], tuple[str, list[str]]]:
    edit = _editor(new_type, forward)

    def redo(text: str) -> tuple[str, list[str]]:
        doc = _QuietXML(text)  # its notes are logged with the plan's (`_Plan.pending`)
        edit(doc, name, key)
        return doc.tostring(), list(doc.notes)

    return redo


def _redo_add(
    bridge: str | None, network: str | None, mac: str, model: str | None
) -> Callable[[str], tuple[str, list[str]]]:
    def redo(text: str) -> tuple[str, list[str]]:
        doc = DomainXML(text)
        doc.add_interface(bridge=bridge, network=network, mac=mac, model=model)
        return doc.tostring(), list(doc.notes)

    return redo


def _redo_remove(key: InterfaceKey) -> Callable[[str], tuple[str, list[str]]]:
    def redo(text: str) -> tuple[str, list[str]]:
        doc = DomainXML(text)
        doc.remove_interface(key)
        return doc.tostring(), list(doc.notes)

    return redo


# Parts of a live <interface> that libvirt makes up and drops again from a persistent
# definition (an auto-generated tap name, the device alias), plus whitespace.
_GENERATED_TAPS = ("vnet", "macvtap", "macvlan")


def _device_shape(xml: str) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    root = etree.fromstring(xml)
    shape = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag == "alias" and not (el.get("name") or "").startswith("ua-"):
            continue
        if el.tag == "target" and (el.get("dev") or "").startswith(_GENERATED_TAPS):
            continue
        attrs = tuple(sorted((str(k), str(v)) for k, v in el.attrib.items()))
        shape.append((el.tag, attrs, (el.text or "").strip()))
    return shape


def _same_device(live_xml: str, config_xml: str) -> bool:
    """Whether the edited live device, given to CONFIG too, makes the edited persistent one.

    Then one ``updateDeviceFlags(LIVE|CONFIG)`` does both; any other difference (a pending
    next-boot edit, another model) keeps the persistent definition's own device XML.
    """
    return _device_shape(live_xml) == _device_shape(config_xml)


def _iface_key(text: str, ref: IfaceSelector) -> tuple[str, str | None] | None:
    """(type, source) of the interface ``ref`` (its MAC or key) names in a domain XML; None if
    it has none (or cannot tell which)."""
    if ref is None:
        return None
    try:
        iface = DomainXML(text).find(ref)
    except (InterfaceNotFound, InvalidInput):
        return None
    return (iface.type, iface.source)


def _describe_key(key: tuple[str, str | None] | None) -> str:
    if key is None:
        return "has no such interface"
    kind, source = key
    return f"is on {kind} {source!r}"

"""DomainXML: a guest's interfaces edited in libvirt domain XML text, nothing else touched.

Pure: lxml and the standard library, no libvirt. Usage::

    doc = DomainXML(xml_text)
    doc.use_bridge("br0")                  # the first interface, now <interface type='bridge'>
    doc.add_interface(network="default", mac="52:54:00:00:00:01")
    new_text = doc.tostring()

**What survives.** Edits are made on an lxml tree, but `DomainXML.tostring` does not
re-serialise the document: it splices the edited ``<interface>`` elements into the original
text. Everything outside them (the XML declaration, comments, processing instructions,
namespaces such as ``qemu:commandline``, entity references, quoting, whitespace and line
breaks) is byte-identical; inside an edited interface only the edited attributes and
elements change (the element is re-written in the quote style it was written in). With no
edit, the text comes back as given. The exception: a new interface in a ``<devices>`` with
no element in it (or none at all) has nothing to follow in the text, so the root element
is written again (same XML, same quote style; the prolog and what follows the root kept).

**Elements that cannot stay under the new type** (see docs/guests.md for the reasoning):

- ``<source>``: rewritten to the new network or bridge. ``portgroup`` (a network's own
  setting), ``mode`` (macvtap's) and any other attribute of the old type (passt's ``dev``)
  are dropped with a warning; libvirt's run-time attributes of a live network interface
  (``portid``, ``bridge``) go silently. Its ``<ip>``/``<route>`` children (the host side
  of a ``type='ethernet'`` tap, which libvirt refuses on any other type) are dropped with
  a warning.
- ``<bandwidth><inbound floor=...>``: libvirt accepts ``floor`` only on type='network'
  (it is reserved from the network's QoS). Switching to a bridge drops that one attribute
  with a warning and keeps every other limit.
- ``<virtualport>`` without a type, or of type 802.1Qbg/802.1Qbh/midonet, on a new
  type='bridge': refused with `UnsupportedEdit`. It carries an
  identity (interfaceid, profileid, instanceid) that a switch or controller matches on;
  dropping it would silently cut the guest off. ``type='openvswitch'`` is kept (OVS
  bridges take it).
- ``<virtualport>`` of any type on a new type='network' whose network libvirt routes itself
  (`use_nat`'s ``forward`` is nat, route, open or none): dropped with a warning. libvirt
  refuses every virtualport on such a network ("not supported for network ... which uses
  IP forwarding"), and refusing instead would block the way back to NAT.
- ``<target managed='no'>`` (a pre-made tap of type='ethernet'): ``managed`` is dropped
  with a warning.

Warnings are logged and collected in `DomainXML.notes`.
"""

from __future__ import annotations

import _thread
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from lxml import etree

from .. import _log
from ..errors import InterfaceNotFound, InvalidInput, InvalidType, MacInUse, UnsupportedEdit
from ..mode import Mode
from . import validate

# kvmnet.core._xmltext (byte spans, splicing, serialising) is imported by the methods that
# edit or write: a listing reads interfaces only and never loads it.
if TYPE_CHECKING:
    from ._xmltext import Layout

__all__ = ["DomainXML", "GuestInterface", "GuestInterfaces", "IfaceSelector", "iface_selector"]

log = _log.get(__name__)

IfaceSelector = Union[None, str, int, "GuestInterface", "InterfaceKey"]
"""What selects an interface: None (the first), a MAC in any spelling, an index, an
interface taken from ``.interfaces``, or an `InterfaceKey` (`DomainXML.key`)."""

# Interface types a switch may start from: their <source> is a plain name, nothing that
# only makes sense for the old type (sockets, host devices, vhost-user paths).
_SWITCHABLE = frozenset({"network", "bridge", "direct", "user", "ethernet"})
_SOURCE_KEY = {"network": "network", "bridge": "bridge", "direct": "dev", "vdpa": "dev"}
_BRIDGE_VIRTUALPORTS = frozenset({"openvswitch"})
# libvirt's <forward mode>s ("none": no <forward>, an isolated network). On the first four the
# guest's port is on the network's own bridge and libvirt routes (networkAllocatePort refuses
# any <virtualport> there); the others hand the port to a host bridge, macvtap or a VF.
_IP_FORWARDING = frozenset({"nat", "route", "open", "none"})
_FORWARD_MODES = _IP_FORWARDING | {"bridge", "private", "vepa", "passthrough", "hostdev"}
# <source> attributes a switch drops without a note: libvirt's run-time bookkeeping of a live
# type='network' interface (the port it got, the bridge it is on). A running guest's network
# interface whose network hands it a host bridge or macvtap is shown with that type, and its
# <source> names the network as well.
_RUNTIME_SOURCE = {"network": ("portid", "bridge")}
_LIVE_NETWORK_SOURCE = ("network", "portid")
# Children of <source> that only type='ethernet' takes (the host side of its tap).
_ETHERNET_SOURCE_CHILDREN = ("ip", "route")


# threading.local is _thread._local; the threading module costs every command-line start a few
# ms of imports for this one object.
_local = _thread._local()


def _parser() -> etree.XMLParser:
    # One parser per thread (lxml parsers are reusable but not thread-safe).
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _new_parser()
    return parser


def _new_parser() -> etree.XMLParser:
    # Comments and PIs are kept; no entity expansion, no network, no DTD loading: domain
    # XML comes from users and from other hosts.
    return etree.XMLParser(
        encoding="utf-8",
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )


# repr=False: the class writes its own (the generated one would be compiled for nothing).
@dataclass(frozen=True, repr=False)
class GuestInterface:
    """One ``<interface>`` of a domain, as read from its XML.

    Attributes:
        index: its position among the domain's interfaces, from 0.
        type: libvirt's interface type: ``"network"``, ``"bridge"``, ``"direct"``...
        mac: its MAC, None if the XML names none.
        source: the network or bridge (or device) it is attached to.
        model: the NIC model (``"virtio"``, ``"e1000"``...).
        target: the host-side tap device of a running guest (``vnet0``).
        alias: libvirt's device alias (``net0``).
        mode: NAT, BRIDGED, ISOLATED... When read through a `Host` it comes from the host's
            libvirt networks; read from bare XML (`DomainXML`) it is a guess from libvirt's
            own conventions (network ``default`` and bridges ``virbr*`` are NAT).
        link: ``"up"``/``"down"`` when the XML sets ``<link state>``.
        portgroup: the network portgroup, if any.
    """

    index: int
    type: str
    mac: str | None
    source: str | None
    model: str | None = None
    target: str | None = None
    alias: str | None = None
    mode: Mode = Mode.OTHER
    link: str | None = None
    portgroup: str | None = None

    def __repr__(self) -> str:
        where = f" {self.source!r}" if self.source is not None else ""
        return (
            f"<GuestInterface #{self.index} {self.mac or 'no MAC'} {self.type}{where} {self.mode}>"
        )

    def _repr_html_(self) -> str:
        return GuestInterfaces((self,))._repr_html_()

    def describe(self) -> str:
        """A short description for messages.

        Returns:
            e.g. ``"52:54:00:..:..:.. bridge 'br0' (bridged)"``.
        """
        where = f" {self.source!r}" if self.source is not None else ""
        return f"{self.mac or f'#{self.index}'} {self.type}{where} ({self.mode})"


@dataclass(frozen=True)
class InterfaceKey:
    """One interface, in a form that finds it again in another text of the same domain: the
    persistent definition for an interface selected among the running guest's, or a fresh
    read of the definition. From `DomainXML.key`.

    Usually the MAC says it. Interfaces may share a MAC (libvirt's virtio failover pairs a
    virtio NIC with a hostdev of the same MAC; virt-clone copies), so the key also holds the
    interface's ``<address>`` and its place among those with its MAC, which is how libvirt
    itself tells such devices apart.

    Attributes:
        mac: its MAC.
        nth: its position among the interfaces with this MAC, from 0, in XML order.
        count: how many interfaces had this MAC where the key was made.
        address: its ``<address>`` attributes, sorted; None without one.
    """

    mac: str
    nth: int = 0
    count: int = 1
    address: tuple[tuple[str, str], ...] | None = None


def iface_selector(value: object) -> IfaceSelector:
    """``value`` checked as an interface selector: None, a MAC string (normalised), an ``int``
    index, a GuestInterface or an InterfaceKey. Here rather than in
    :mod:`kvmnet.core.validate`, which would have to import this module to know a
    GuestInterface.

    Args:
        value: The argument.

    Returns:
        The selector, a MAC normalised to lower case with colons.

    Raises:
        InvalidType: a bool, float, bytes or any other type.
        InvalidMac: a string that is not a unicast MAC (an index as text such as ``"1"`` is
            refused: pass the int).
    """
    if value is None or isinstance(value, (GuestInterface, InterfaceKey)):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidType(
            "interface selector must be None, a MAC str, an int index or a GuestInterface, "
            f"got {validate.shown(value)} ({type(value).__name__})"
        )
    if isinstance(value, int):
        return value
    return validate.mac(value, "interface selector")


def guess_mode(iface_type: str, source: str | None) -> Mode:
    """The mode libvirt's stock conventions suggest, with no network definitions at hand."""
    if iface_type == "direct":
        return Mode.DIRECT
    if iface_type == "network":
        return Mode.NAT if source == "default" else Mode.OTHER
    if iface_type == "bridge":
        return Mode.NAT if (source or "").startswith("virbr") else Mode.BRIDGED
    return Mode.OTHER


_CANONICAL_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


def _lower_mac(text: str | None) -> str | None:
    if text is None:
        return None
    if _CANONICAL_MAC.fullmatch(text):
        return text  # libvirt's own spelling: the common case, no parsing needed
    from .macs import int_to_mac, try_parse_mac

    value = try_parse_mac(text)
    # A malformed MAC in a definition is reported as written; libvirt would refuse it anyway.
    return int_to_mac(value) if value is not None else text.strip().lower()


def read_interface(el: etree._Element, index: int) -> GuestInterface:
    """A `GuestInterface` from one ``<interface>`` element (mode guessed)."""
    return _from_children(el, index, _children(el))


def _children(el: etree._Element) -> dict[str, etree._Element]:
    """The first child of each tag, in one pass (lxml's find() costs microseconds each).

    Last to first, so that the first of a tag is the one kept. A comment or processing
    instruction comes in under its ``tag`` (lxml's factory function), which no lookup by
    name finds.
    """
    return {child.tag: child for child in reversed(el)}


def _from_children(
    el: etree._Element, index: int, kids: dict[str, etree._Element]
) -> GuestInterface:
    iface_type = el.get("type") or ""
    source = portgroup = None
    src = kids.get("source")
    if src is not None:
        key = _SOURCE_KEY.get(iface_type)
        source = src.get(key) if key else (src.get("path") or src.get("address"))
        portgroup = src.get("portgroup")
    mac, model, target = kids.get("mac"), kids.get("model"), kids.get("target")
    alias, link = kids.get("alias"), kids.get("link")
    # The frozen dataclass's __init__ sets each field through object.__setattr__; filling
    # __dict__ at once is several times faster, and this runs for every listed interface.
    iface = object.__new__(GuestInterface)
    iface.__dict__.update(
        index=index,
        type=iface_type,
        mac=_lower_mac(mac.get("address")) if mac is not None else None,
        source=source,
        model=model.get("type") if model is not None else None,
        target=target.get("dev") if target is not None else None,
        alias=alias.get("name") if alias is not None else None,
        mode=guess_mode(iface_type, source),
        link=link.get("state") if link is not None else None,
        portgroup=portgroup,
    )
    return iface


class GuestInterfaces(tuple[GuestInterface, ...]):
    """A tuple of `GuestInterface` (``dom.interfaces``) that Jupyter shows as a table."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        from . import _html

        return _html.table(
            ["#", "MAC", "type", "source", "model", "target", "mode"],
            [
                (i.index, i.mac, i.type, i.source, i.model, i.target, _html.badge(i.mode))
                for i in self
            ],
        )


class DomainXML:
    """A libvirt domain definition whose interfaces can be edited in place.

    ``DomainXML(text)``; `interfaces`; `use_bridge`, `use_nat`, `add_interface`,
    `remove_interface`, `set_link`; `tostring`. Unknown XML survives the edits byte for byte.

    Args:
        text: the domain XML, as ``virsh dumpxml`` prints it.

    Raises:
        InvalidInput: ``text`` is not domain XML (InvalidType if not a str).
    """

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise InvalidType(
                f"DomainXML takes XML text (str), got {type(text).__name__}: {validate.shown(text)}"
            )
        self._text = text
        try:
            self._data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                f"domain XML holds a lone surrogate at {exc.start}: {validate.shown(text)[:80]}; "
                "read the file as UTF-8 text"
            ) from None
        try:
            root = etree.fromstring(self._data, _parser())
        except etree.XMLSyntaxError as exc:
            raise InvalidInput(
                f"not well-formed domain XML {validate.shown(text)}: {validate.one_line(str(exc))}"
            ) from exc
        if root.tag != "domain":
            raise InvalidInput(
                f"expected a libvirt <domain> document, got <{root.tag}> in "
                f"{validate.shown(text)}; pass the output of `virsh dumpxml` or a domain "
                "definition file"
            )
        self._root = root
        self._elements: list[etree._Element] | None = None
        # Never mutated: structural edits build a new list (see _interface_elements).
        self._original = self._interface_elements()
        self._dirty: set[etree._Element] = set()
        self._layout: Layout | None = None
        self._scanned = False  # whether _layout holds a scan's answer (None: not mappable)
        self._notes: list[str] = []
        # What tostring needs to place added and removed interfaces in the text: each new
        # one's indentation and the element it was put after (None: first in <devices>);
        # the whitespace each removed one took with it.
        self._added: dict[etree._Element, tuple[str, etree._Element | None]] = {}
        self._dropped: dict[etree._Element, str] = {}
        self._name: str | None = None

    # -- reading --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The domain's ``<name>``."""
        if self._name is None:
            self._name = self._root.findtext("name") or ""
        return self._name

    @property
    def notes(self) -> tuple[str, ...]:
        """Warnings from the edits made so far (elements dropped, and why)."""
        return tuple(self._notes)

    def _interface_elements(self) -> list[etree._Element]:
        # Cached: add/remove reset it; nothing else changes which elements exist.
        if self._elements is None:
            elements: list[etree._Element] = []
            for devices in self._root.iterchildren("devices"):
                elements += devices.iterchildren("interface")
            self._elements = elements
        return self._elements

    @property
    def interfaces(self) -> GuestInterfaces:
        """Every ``<interface>`` under ``<devices>``, in XML order."""
        return GuestInterfaces(
            read_interface(el, i) for i, el in enumerate(self._interface_elements())
        )

    def find(self, iface: IfaceSelector = None) -> GuestInterface:
        """The interface ``iface`` selects.

        Args:
            iface: which interface: None (the first), a MAC in any spelling, an index, or
                an interface taken from `interfaces`.

        Returns:
            The `GuestInterface`.

        Raises:
            InterfaceNotFound: no interface matches.
        """
        return read_interface(*self._select(iface))

    def key(self, iface: IfaceSelector = None, *, movable: bool = False) -> InterfaceKey | None:
        """An `InterfaceKey` for the interface ``iface`` selects: the same interface in
        another text of this domain (the persistent definition, a fresh read).

        Args:
            iface: which interface, selected as for `find`.
            movable: a MAC shared by several interfaces selects the one of them a switch can
                move (network, bridge, direct, user, ethernet), when only one can: the
                virtio half of a failover pair, whose hostdev partner kvmnet never moves.

        Returns:
            The key; None when the interface has no ``<mac>`` (then only its index says it).

        Raises:
            InterfaceNotFound: no interface matches ``iface``.
            InvalidInput: a MAC that several interfaces share (select one by index).
        """
        el, _ = self._select(iface, movable=movable)
        mac = _lower_mac(_mac_of(el))
        if mac is None:
            return None
        elements = self._interface_elements()
        if len(elements) == 1:  # most guests: no twin to tell it from (bulk runs, per guest)
            return InterfaceKey(mac)
        twins = [e for e in elements if _lower_mac(_mac_of(e)) == mac]
        if len(twins) == 1:
            return InterfaceKey(mac)
        return InterfaceKey(mac, twins.index(el), len(twins), _address_of(el))

    def _select(self, iface: IfaceSelector, *, movable: bool = False) -> tuple[etree._Element, int]:
        elements = self._interface_elements()
        where = _Where(self)
        if not elements:
            raise InterfaceNotFound(
                f"{where} has no network interface; add one with add_interface()"
            )
        if iface is None:
            return elements[0], 0
        if isinstance(iface, bool):
            raise InvalidType(f"interface selector {iface!r}: use a MAC, an index or None")
        if isinstance(iface, int):
            count = len(elements)
            if not -count <= iface < count:
                raise InterfaceNotFound(
                    f"{where} has no interface #{validate.shown(iface)}: it has {count} "
                    f"(indexes 0..{count - 1})"
                )
            return elements[iface], iface % count
        if isinstance(iface, InterfaceKey):
            return self._select_key(iface)
        if isinstance(iface, GuestInterface):
            if iface.mac is None:
                return self._select(iface.index)
            if 0 <= iface.index < len(elements):
                # Its own index, when that interface has its MAC: two interfaces sharing the
                # MAC are told apart so.
                el = elements[iface.index]
                if _lower_mac(_mac_of(el)) == iface.mac:
                    return el, iface.index
            return self._select(iface.mac, movable=movable)
        if isinstance(iface, str):
            mac = validate.mac(iface)
            found = self._with_mac(mac)
            if len(found) > 1 and movable:
                # A switch cannot mean the ones it refuses to move (a failover pair's hostdev).
                can = [(el, i) for el, i in found if el.get("type") in _SWITCHABLE]
                found = can if len(can) == 1 else found
            if len(found) > 1:
                raise InvalidInput(
                    f"{where} has {len(found)} interfaces with MAC {mac}; select one by "
                    f"index instead ({validate.listed(i for _, i in found)})"
                )
            return found[0]
        raise InvalidType(
            f"interface selector {validate.shown(iface)}: use None, a MAC string, an int index "
            "or a GuestInterface"
        )

    def _with_mac(self, mac: str) -> list[tuple[etree._Element, int]]:
        """The interfaces with ``mac``; InterfaceNotFound, listing the MACs there are, if none."""
        elements = self._interface_elements()
        found = [(el, i) for i, el in enumerate(elements) if _lower_mac(_mac_of(el)) == mac]
        if not found:
            macs = validate.listed(
                str(_lower_mac(_mac_of(el)) or f"#{i} (no MAC)") for i, el in enumerate(elements)
            )
            raise InterfaceNotFound(
                f"{_Where(self)} has no interface with MAC {mac}; its interfaces: {macs}"
            )
        return found

    def _select_key(self, key: InterfaceKey) -> tuple[etree._Element, int]:
        """The interface ``key`` names here: as libvirt matches a device (its MAC, then its
        ``<address>``), then by its place among the interfaces sharing its MAC."""
        if key.count == 1:
            elements = self._interface_elements()
            if len(elements) == 1 and _lower_mac(_mac_of(elements[0])) == key.mac:
                return elements[0], 0  # one interface, the key's: most guests
        found = self._with_mac(key.mac)
        if len(found) == 1 and key.count == 1:
            return found[0]  # a MAC of its own on both sides: the usual case
        if key.address is not None:
            same = [(el, i) for el, i in found if _address_of(el) == key.address]
            if len(same) == 1:
                return same[0]
            if not same and all(_address_of(el) is not None for el, _ in found):
                raise InterfaceNotFound(
                    f"{_Where(self)} has no interface with MAC {key.mac} at that <address> "
                    f"({validate.listed(f'{k}={v}' for k, v in key.address)})"
                )
        if len(found) == key.count:
            return found[key.nth]
        if len(found) == 1:
            return found[0]
        raise InvalidInput(
            f"{_Where(self)} has {len(found)} interfaces with MAC {key.mac}, where the "
            f"interface was selected among {key.count}: kvmnet cannot tell which one it is; "
            "give them MACs of their own (virsh edit) or change this definition alone "
            "(live=False, CLI: --config)"
        )

    # -- edits ----------------------------------------------------------------------------

    def use_bridge(self, bridge: str, iface: IfaceSelector = None) -> GuestInterface:
        """Put the interface on host bridge ``bridge`` (``type='bridge'``).

        Args:
            bridge: the host bridge's name.
            iface: which interface: None (the first), a MAC in any spelling, an index, or
                an interface taken from `interfaces`.

        Returns:
            The interface as it is now.

        Raises:
            InterfaceNotFound: no interface matches ``iface``.
            UnsupportedEdit: an interface type kvmnet does not switch (hostdev, vhost-user...).
        """
        _check_name(bridge, "bridge")
        iface_selector(iface)
        return self._switch(iface, "bridge", bridge)

    def use_nat(
        self, network: str = "default", iface: IfaceSelector = None, *, forward: str | None = None
    ) -> GuestInterface:
        """Put the interface on libvirt network ``network`` (``type='network'``).

        Args:
            network: the libvirt network's name.
            iface: which interface: None (the first), a MAC in any spelling, an index, or
                an interface taken from `interfaces`.
            forward: the network's ``<forward mode>`` as libvirt names it (``"nat"``,
                ``"route"``, ``"open"``, ``"none"`` for an isolated network, ``"bridge"``,
                ``"private"``, ``"vepa"``, ``"passthrough"``, ``"hostdev"``), or None when
                not known (`kvmnet.Domain.use_nat` passes the host's). On nat, route, open
                and none a ``<virtualport>`` is dropped with a note: libvirt refuses any there.

        Returns:
            The interface as it is now.

        Raises:
            InterfaceNotFound: no interface matches ``iface``.
            InvalidInput: a ``forward`` libvirt does not have.
            UnsupportedEdit: an interface type kvmnet does not switch (hostdev, vhost-user...).
        """
        _check_name(network, "network")
        iface_selector(iface)
        if forward is not None and forward not in _FORWARD_MODES:
            if not isinstance(forward, str):
                raise InvalidType(
                    f"forward must be a libvirt forward mode (str) or None, got "
                    f"{validate.shown(forward)} ({type(forward).__name__})"
                )
            raise InvalidInput(
                f"forward mode {validate.shown(forward)} is not libvirt's: use one of "
                f"{validate.listed(sorted(_FORWARD_MODES))}, or None when not known"
            )
        return self._switch(iface, "network", network, forward)

    def _switch(
        self, iface: IfaceSelector, new_type: str, name: str, forward: str | None = None
    ) -> GuestInterface:
        el, index = self._select(iface, movable=True)
        old_type = el.get("type") or ""
        who = _Who(self, el, index)
        if old_type not in _SWITCHABLE:
            raise UnsupportedEdit(
                f"{who} is type={old_type!r}; kvmnet switches network, bridge, direct, user "
                "and ethernet interfaces only; remove it and add a new one instead"
            )
        kids = _children(el)
        if new_type == "bridge" and "virtualport" in kids:
            self._check_virtualport(kids["virtualport"], who, name)
        if new_type == "network" and forward in _IP_FORWARDING and "virtualport" in kids:
            self._drop_virtualport(kids.pop("virtualport"), who, name, forward)
        if old_type == "user" and new_type != "user":
            self._drop_user_children(el, who, new_type, name)
            kids = _children(el)
        el.set("type", new_type)
        kids["source"] = self._set_source(el, kids.get("source"), who, (old_type, new_type), name)
        if new_type != "network" and "bandwidth" in kids:
            self._drop_floor(kids["bandwidth"], who, name)
        target = kids.get("target")
        if old_type == "ethernet" and target is not None and target.get("managed") is not None:
            del target.attrib["managed"]
            self._warn(f"{who}: dropped <target managed=...>, which only type='ethernet' takes")
        self._dirty.add(el)
        return _from_children(el, index, kids)

    def _check_virtualport(self, vport: etree._Element, who: _Who, bridge: str) -> None:
        vtype = vport.get("type")
        if vtype in _BRIDGE_VIRTUALPORTS:
            return
        kind = f"<virtualport type={vtype!r}>" if vtype else "<virtualport> without a type"
        raise UnsupportedEdit(
            f"{who} has {kind}, which libvirt cannot put on a plain Linux bridge "
            f"({bridge!r}); it names the port to a switch or controller, so kvmnet will not drop "
            "it silently: remove the <virtualport> element first (virsh edit), or use a "
            "libvirt network that defines it"
        )

    def _drop_virtualport(
        self, vport: etree._Element, who: _Who, network: str, forward: str
    ) -> None:
        from ._xmltext import remove_element

        vtype = vport.get("type")
        kind = f"<virtualport type={vtype!r}>" if vtype else "<virtualport> without a type"
        remove_element(vport)
        mode = "isolated" if forward == "none" else f"forward mode {forward!r}"
        self._warn(
            f"{who}: dropped {kind}: network {network!r} ({mode}) puts the guest on a bridge "
            "of libvirt's own, where libvirt refuses any <virtualport>"
        )

    def _set_source(
        self,
        el: etree._Element,
        src: etree._Element | None,
        who: _Who,
        types: tuple[str, str],
        name: str,
    ) -> etree._Element:
        old_type, new_type = types
        if src is None:
            from ._xmltext import insert_child

            src = etree.Element("source")
            insert_child(el, src, after=("mac",))
        get = src.get
        keep_portgroup = new_type == "network" and get("network") == name
        portgroup = get("portgroup")
        if portgroup is not None and not keep_portgroup:
            self._drop_note(who, "portgroup", portgroup, new_type, name)
        # Every other attribute belongs to the old type; only its own key (what the switch
        # replaces) and libvirt's run-time bookkeeping go without a word.
        silent = (
            "portgroup",
            _SOURCE_KEY.get(old_type),
            *_LIVE_NETWORK_SOURCE,
            *_RUNTIME_SOURCE.get(old_type, ()),
        )
        for attr, value in src.attrib.items():
            if attr not in silent:
                self._drop_note(who, str(attr), str(value), new_type, name)
        if len(src):
            self._drop_ethernet_children(src, who, new_type, name)
        if not keep_portgroup:
            portgroup = None
        src.attrib.clear()
        src.set(_SOURCE_KEY[new_type], name)
        if portgroup is not None:
            src.set("portgroup", portgroup)
        return src

    def _drop_ethernet_children(
        self, src: etree._Element, who: _Who, new_type: str, name: str
    ) -> None:
        from ._xmltext import remove_element

        for child in [c for c in src if c.tag in _ETHERNET_SOURCE_CHILDREN]:
            shown = " ".join(f"{k!s}={str(v)!r}" for k, v in child.attrib.items())
            remove_element(child)
            self._warn(
                f"{who}: dropped <source><{child.tag}{' ' if shown else ''}{shown}/>: the host "
                f"side of a type='ethernet' tap, which libvirt refuses on type={new_type!r} "
                f"{name!r}"
            )
        if len(src) == 0 and src.text is not None and not src.text.strip():
            src.text = None  # <source ...></source> with only whitespace left: <source .../>

    def _drop_user_children(self, el: etree._Element, who: _Who, new_type: str, name: str) -> None:
        """What only a type='user' interface takes: passt's ``<backend type='passt'>`` and
        ``<portForward>``, and the guest-side ``<ip>``/``<route>`` (libvirt refuses the first
        two on any other type, and QEMU the guest-side addresses: a dry run that kept them
        would promise a switch the real call cannot make)."""
        from ._xmltext import remove_element

        for child in list(el):
            tag = child.tag
            if tag == "backend" and child.get("type") == "passt":
                what = "<backend type='passt'>"
            elif tag in ("portForward", "ip", "route"):
                shown = " ".join(f"{k!s}={str(v)!r}" for k, v in child.attrib.items())
                what = f"<{tag}{' ' if shown else ''}{shown}>"
            else:
                continue
            remove_element(child)
            self._warn(
                f"{who}: dropped {what}, which only type='user' takes (libvirt refuses it on "
                f"type={new_type!r} {name!r})"
            )

    def _drop_note(self, who: _Who, attr: str, value: str, new_type: str, name: str) -> None:
        self._warn(
            f"{who}: dropped <source {attr}={value!r}>, which does not apply to "
            f"type={new_type!r} {name!r}"
        )

    def _drop_floor(self, bandwidth: etree._Element, who: _Who, where: str) -> None:
        from ._xmltext import remove_element

        inbound = bandwidth.find("inbound")
        if inbound is None or inbound.get("floor") is None:
            return
        floor = inbound.attrib.pop("floor")
        self._warn(
            f"{who}: dropped <bandwidth><inbound floor={floor!r}>: libvirt guarantees a floor "
            f"only on a libvirt network, not on bridge {where!r}; the other limits stay"
        )
        if not inbound.attrib and len(inbound) == 0:
            remove_element(inbound)
        if not bandwidth.attrib and len(bandwidth) == 0:
            remove_element(bandwidth)

    def add_interface(
        self,
        *,
        bridge: str | None = None,
        network: str | None = None,
        mac: str | None = None,
        model: str | None = None,
    ) -> GuestInterface:
        """Append an interface after the last one (exactly one of ``bridge``/``network``).

        Args:
            bridge: the host bridge to attach to.
            network: the libvirt network to attach to.
            mac: the MAC; None writes no ``<mac>``: libvirt picks one when the XML is defined
                (`kvmnet.Domain.add_interface` always picks one itself).
            model: the NIC model, e.g. ``"virtio"`` (None: no ``<model>``).

        Returns:
            The new interface.

        Raises:
            InvalidInput: neither or both of ``bridge``/``network``, or a bad MAC or name.
        """
        if (bridge is None) == (network is None):
            raise InvalidInput(
                f"add_interface takes exactly one of bridge= or network=, got bridge="
                f"{validate.shown(bridge)} and network={validate.shown(network)}"
            )
        new_type = "bridge" if bridge is not None else "network"
        name = bridge if bridge is not None else network
        assert name is not None
        _check_name(name, new_type)
        model = validate.model(model)
        if mac is not None:
            mac = validate.guest_mac(mac)
            # Two NICs with one MAC in one guest is never right, and selecting by MAC breaks.
            twin = next((i for i in self.interfaces if i.mac == mac), None)
            if twin is not None:
                raise MacInUse(
                    f"MAC {mac} is already used by interface #{twin.index} ({twin.type}) of "
                    f"{_Where(self)}; choose another MAC or omit it",
                    mac=mac,
                    used_by=(f"{_Where(self)}",),
                )
        devices = self._root.find("devices")
        if devices is None:
            devices = etree.SubElement(self._root, "devices")
        existing = self._interface_elements()
        siblings = existing or [c for c in devices if isinstance(c.tag, str)]
        indent, inner = self._indents(devices, siblings, existing)
        el = etree.Element("interface", type=new_type)
        children: list[etree._Element] = []
        if mac is not None:
            children.append(etree.Element("mac", address=mac))
        children.append(etree.Element("source", {_SOURCE_KEY[new_type]: name}))
        if model is not None:
            children.append(etree.Element("model", type=model))
        el.text = "\n" + inner
        for i, child in enumerate(children):
            child.tail = "\n" + (inner if i < len(children) - 1 else indent)
            el.append(child)
        if siblings:
            anchor = siblings[-1]
            old_tail = anchor.tail
            anchor.addnext(el)
            el.tail = old_tail
            anchor.tail = "\n" + indent
        else:
            anchor = None
            el.tail = devices.text if devices.text is not None else "\n"
            devices.text = "\n" + indent
            devices.insert(0, el)
        self._elements = None
        self._dirty.add(el)
        self._added[el] = (indent, anchor)
        return read_interface(el, len(self._interface_elements()) - 1)

    def _indents(
        self,
        devices: etree._Element,
        siblings: list[etree._Element],
        interfaces: list[etree._Element],
    ) -> tuple[str, str]:
        """(indent of a device line, indent of an interface's child line), as the text has."""
        from ._xmltext import tail_indent

        dev_indent = tail_indent(devices.getprevious(), self._root.text)
        indent = tail_indent(siblings[-1].getprevious(), devices.text) if siblings else ""
        if not indent:
            indent = dev_indent * 2 if dev_indent else "    "
        unit = indent[len(dev_indent) :] if indent.startswith(dev_indent) else ""
        if not unit:
            unit = "\t" if indent.startswith("\t") else "  "
        inner = ""
        for iface in interfaces:
            if len(iface):
                inner = tail_indent(None, iface.text)
                break
        return indent, inner or indent + unit

    def remove_interface(self, iface: IfaceSelector) -> GuestInterface:
        """Remove the selected interface.

        Args:
            iface: which interface: None (the first), a MAC in any spelling, an index, or
                an interface taken from `interfaces`.

        Returns:
            The interface as it was.

        Raises:
            InterfaceNotFound: no interface matches ``iface``.
        """
        from ._xmltext import remove_element

        iface_selector(iface)
        el, index = self._select(iface)
        removed = read_interface(el, index)
        self._dropped[el] = remove_element(el)
        self._elements = None
        self._dirty.discard(el)
        return removed

    def set_link(self, state: str, iface: IfaceSelector = None) -> GuestInterface:
        """Set ``<link state='up'|'down'/>`` on the interface (the guest sees carrier change).

        Args:
            state: ``"up"`` or ``"down"``.
            iface: which interface: None (the first), a MAC in any spelling, an index, or
                an interface taken from `interfaces`.

        Returns:
            The interface as it is now.

        Raises:
            InvalidInput: a state other than up or down.
            InterfaceNotFound: no interface matches ``iface``.
        """
        from ._xmltext import insert_child

        if state not in ("up", "down"):
            raise InvalidInput(f"link state {validate.shown(state)}: use 'up' or 'down'")
        el, index = self._select(iface)
        link = el.find("link")
        if link is None:
            link = etree.Element("link")
            insert_child(el, link, after=("model", "source", "mac"))
        link.set("state", state)
        self._dirty.add(el)
        return read_interface(el, index)

    def adopt_address(
        self, iface: IfaceSelector, other: DomainXML, other_iface: IfaceSelector
    ) -> None:
        """Copy ``<address>`` from ``other``'s interface (where libvirt placed a hot-plugged NIC).

        Keeps the persistent definition's PCI slot equal to the running guest's.

        Args:
            iface: the interface here that takes the address, selected as for `find`.
            other: the document to copy from (the running guest's XML).
            other_iface: the interface there, selected as for `find`.
        """
        from ._xmltext import insert_child

        src_el, _ = other._select(other_iface)
        address = src_el.find("address")
        if address is None:
            return
        el, _ = self._select(iface)
        old = el.find("address")
        copy = etree.fromstring(etree.tostring(address, with_tail=False))
        if old is not None:
            copy.tail = old.tail
            el.replace(old, copy)
        else:
            insert_child(el, copy, after=("link", "model", "source", "mac"))
        self._dirty.add(el)

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self._notes.append(message)

    # -- writing --------------------------------------------------------------------------

    def interface_xml(self, iface: IfaceSelector = None) -> str:
        """The selected ``<interface>`` element alone, as libvirt's device calls take it.

        Args:
            iface: which interface: None (the first), a MAC in any spelling, an index, or
                an interface taken from `interfaces`.

        Returns:
            The element's XML text.
        """
        from ._xmltext import serialise

        el, _ = self._select(iface)
        return serialise(el, "'")

    def tostring(self) -> str:
        """The document, with the edits and nothing else changed.

        With no edit (or only edits undone), the very text given. Otherwise the edited, added
        and removed ``<interface>`` elements are spliced into it. Where the splice cannot
        place an edit (a new interface in a ``<devices>`` with no element to follow, or in
        none at all), the root element is written again instead: the same XML, in the
        document's quote style, with the prolog (XML declaration, comments, DOCTYPE) and what
        follows the root unchanged. Text that expat cannot read (lxml can) is written by lxml
        whole, its XML declaration kept.

        Returns:
            The XML text.
        """
        # By full name: a relative import in a function resolves its package in Python on
        # every call, and a bulk switch writes one document per guest.
        from kvmnet.core._xmltext import quick_scan, rewrite, scan, splice

        current = self._interface_elements()
        if not self._dirty and current == self._original:
            return self._text  # nothing edited, or an added interface removed again
        if not self._scanned:
            layout = quick_scan(self._data, self._original)
            self._layout = layout if layout is not None else scan(self._data, self._root.tag)
            self._scanned = True
        layout = self._layout
        if layout is None or len(layout.spans) != len(self._original):
            return self._full_serialisation("the interfaces could not be located in the text")
        if current is self._original:
            # No interface added or removed (every switch): splice the edited ones alone.
            edits = [
                (start, end, rewrite(el, self._data[start:end]))
                for el, (start, end) in zip(current, layout.spans, strict=True)
                if el in self._dirty
            ]
            return splice(self._text, self._data, edits)
        return self._splice_structure(layout, current)

    def _full_scan(self) -> Layout | None:
        """The layout with what only expat's scan finds (the other devices' ends, the root)."""
        from kvmnet.core._xmltext import scan

        layout = self._layout
        if not self._scanned or (layout is not None and layout.device_ends is None):
            layout = self._layout = scan(self._data, self._root.tag)
            self._scanned = True
        return layout

    def _splice_structure(self, layout: Layout, current: list[etree._Element]) -> str:
        """Interfaces added or removed: each edit placed where the tree has it."""
        from kvmnet.core._xmltext import (
            quote_of,
            removal_cut,
            rewrite,
            serialise,
            splice,
            with_breaks,
        )

        original = set(self._original)
        new = [el for el in current if el not in original]
        anchors = [self._anchor_of(el) for el in new]
        if any(a is not None and a not in original for a in anchors):
            # After a device other than an interface: its end is in expat's scan only.
            full = self._full_scan()
            if full is None or len(full.spans) != len(layout.spans):
                return self._full_serialisation("the devices could not be located in the text")
            layout = full
        data = self._data
        where = dict(zip(self._original, layout.spans, strict=True))
        alive = set(current)
        edits: list[tuple[int, int, str]] = []
        for el, (start, end) in where.items():
            if el not in alive:
                cut = removal_cut(data, start, end, self._dropped.get(el, ""))
                if cut is None:
                    return self._full_serialisation("a removed interface's layout is unusual")
                edits.append((cut, end, ""))
            elif el in self._dirty:
                edits.append((start, end, rewrite(el, data[start:end])))
        if new:
            if layout.spans:
                quote = quote_of(data[slice(*layout.spans[-1])])
            else:
                quote = quote_of(data[layout.root[0] :] if layout.root else data)
            for el, anchor in zip(new, anchors, strict=True):
                at = self._end_of(anchor, where, layout)
                if at is None:
                    return self._full_serialisation("a new interface has no device to follow")
                piece = "\n" + self._added[el][0] + serialise(el, quote)
                edits.append((at, at, with_breaks(piece, data)))
        # By position; an insertion before a removal starting at the same byte, and
        # insertions at one place in the tree's order (the sort is stable).
        edits.sort(key=lambda edit: (edit[0], edit[1]))
        return splice(self._text, data, edits)

    def _anchor_of(self, el: etree._Element) -> etree._Element | None:
        """The element of the original document a new interface follows (None: the first)."""
        anchor = self._added[el][1]
        while anchor is not None and anchor in self._added:
            anchor = self._added[anchor][1]  # added after another new one: at the same place
        return anchor

    def _end_of(
        self,
        anchor: etree._Element | None,
        where: dict[etree._Element, tuple[int, int]],
        layout: Layout,
    ) -> int | None:
        """Where in the text the element ``anchor`` ends (None: unknown)."""
        if anchor is None:
            return None
        span = where.get(anchor)
        if span is not None:
            return span[1]
        # Another device of the first <devices> (add_interface puts a new interface there
        # when there is none to follow): counted among its element siblings but interfaces.
        if layout.device_ends is None or anchor.getparent() is not self._root.find("devices"):
            return None
        index = sum(
            1
            for sibling in anchor.itersiblings(preceding=True)
            if isinstance(sibling.tag, str) and sibling.tag != "interface"
        )
        return layout.device_ends[index] if index < len(layout.device_ends) else None

    def _full_serialisation(self, why: str) -> str:
        """The root element written again from the tree; the text around it kept."""
        from kvmnet.core._xmltext import rewrite, splice

        layout = self._full_scan()
        if layout is not None and layout.root is not None:
            log.debug("writing the root element again (%s)", why)
            start, end = layout.root
            new = rewrite(self._root, self._data[start:end])
            return splice(self._text, self._data, [(start, end, new)])
        # The text defeats expat too: lxml writes the document (re-quoted, DOCTYPE laid out
        # its way), with the XML declaration kept.
        log.debug("writing the document again with lxml (%s)", why)
        body = etree.tostring(self._root.getroottree(), encoding="unicode")
        head = self._text.lstrip("\ufeff \t\r\n")
        if head.startswith("<?xml"):
            decl_end = self._text.index("?>") + 2
            body = self._text[:decl_end] + "\n" + body
        return body + ("\n" if self._text.endswith("\n") and not body.endswith("\n") else "")

    def __repr__(self) -> str:
        kinds = ", ".join(f"{i.type}" for i in self.interfaces) or "no interfaces"
        return f"<DomainXML {self.name!r}: {kinds}>"

    def __str__(self) -> str:
        return self.tostring()


class _Where:
    """``domain 'NAME'``, formatted only when a message needs it."""

    __slots__ = ("doc",)

    def __init__(self, doc: DomainXML) -> None:
        self.doc = doc

    def __str__(self) -> str:
        return f"domain {self.doc.name!r}"


class _Who:
    """Names an interface in messages; built only when a message is (edits stay cheap)."""

    __slots__ = ("doc", "el", "index")

    def __init__(self, doc: DomainXML, el: etree._Element, index: int) -> None:
        self.doc, self.el, self.index = doc, el, index

    def __str__(self) -> str:
        mac = _lower_mac(_mac_of(self.el)) or f"#{self.index}"
        return f"interface {mac} of domain {self.doc.name!r}"


def _mac_of(el: etree._Element) -> str | None:
    mac = el.find("mac")
    return mac.get("address") if mac is not None else None


def _address_of(el: etree._Element) -> tuple[tuple[str, str], ...] | None:
    """The interface's ``<address>`` attributes, sorted (None without one)."""
    address = el.find("address")
    if address is None:
        return None
    return tuple(sorted((str(k), str(v)) for k, v in address.attrib.items()))


def _check_name(name: str, kind: str) -> None:
    # Remembered: bulk runs check the same few names thousands of times.
    if isinstance(name, str) and (kind, name) in _GOOD_NAMES:
        return
    if kind == "bridge":
        validate.ifname(name, what="bridge")
    else:
        validate.network_name(name)
    if len(_GOOD_NAMES) < 1024:
        _GOOD_NAMES.add((kind, name))


_GOOD_NAMES: set[tuple[str, str]] = set()

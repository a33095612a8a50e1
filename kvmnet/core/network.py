"""Network: a libvirt network as a value, and how a guest interface's mode follows from it.

Pure: parses network XML with lxml, no libvirt. Usage::

    nets = NetworkIndex(host.networks())
    nets.mode_of("bridge", "virbr0")     # Mode.NAT: virbr0 is the NAT network's bridge
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lxml import etree

from ..errors import InvalidInput
from ..mode import Mode

if TYPE_CHECKING:
    import ipaddress

__all__ = ["Network", "NetworkIndex", "Networks", "mode_of_forward"]

# libvirt forward modes -> what a guest on that network is, as an operator sees it.
_FORWARD_MODES: Mapping[str | None, Mode] = {
    "nat": Mode.NAT,
    "bridge": Mode.BRIDGED,
    None: Mode.ISOLATED,
    "route": Mode.ROUTED,
    "open": Mode.ROUTED,
    "private": Mode.DIRECT,
    "vepa": Mode.DIRECT,
    "passthrough": Mode.DIRECT,
}


def mode_of_forward(forward: str | None) -> Mode:
    """The `Mode` of a guest on a network with this ``<forward mode>`` (None: none)."""
    return _FORWARD_MODES.get(forward, Mode.OTHER)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@dataclass(frozen=True)
class Network:
    """One libvirt network: ``name``, ``bridge``, ``forward`` mode and ``subnets``.

    Attributes:
        name: the network's name, e.g. ``"default"``.
        bridge: the Linux bridge libvirt made for it (``virbr0``), or the host bridge a
            forward-mode-bridge network points at; None if neither.
        forward: libvirt's ``<forward mode>`` ("nat", "bridge", "route", "open", ...), or
            None for an isolated network.
        subnets: CIDR strings ("192.168.122.0/24").
        addresses: the host's own addresses on it ("192.168.122.1/24").
        active: True while the network is started.
        reservations: a reserved MAC -> its DHCP address.
        bridge_mac: the MAC of the network's bridge, if its XML names one.
    """

    name: str
    bridge: str | None
    forward: str | None
    subnets: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    active: bool = True
    reservations: Mapping[str, str] = field(default_factory=dict, compare=False)
    bridge_mac: str | None = None

    @property
    def mode(self) -> Mode:
        """What a guest on this network is: NAT, BRIDGED, ISOLATED, ROUTED, DIRECT, OTHER."""
        return mode_of_forward(self.forward)

    @property
    def subnet(self) -> str | None:
        """The first subnet, or None (a forward-mode-bridge network has none)."""
        return self.subnets[0] if self.subnets else None

    @classmethod
    def from_xml(cls, xml: str, *, active: bool = True) -> Network:
        """Parse ``virsh net-dumpxml`` output.

        Args:
            xml: the network's XML.
            active: whether the network is started (the XML does not say).

        Returns:
            The `Network`.

        Raises:
            InvalidInput: text that is not a libvirt network's XML.
        """
        try:
            root = etree.fromstring(xml.encode(), _parser())
        except etree.XMLSyntaxError as exc:
            raise InvalidInput(f"not well-formed network XML: {exc}") from exc
        if root.tag != "network":
            raise InvalidInput(f"expected a libvirt <network> document, got <{root.tag}>")
        forward_el = root.find("forward")
        forward = None
        if forward_el is not None:
            forward = forward_el.get("mode") or "nat"  # libvirt's default forward mode
        bridge_el = root.find("bridge")
        mac_el = root.find("mac")
        subnets: list[str] = []
        addresses: list[str] = []
        reservations: dict[str, str] = {}
        for ip in root.iterfind("ip"):
            iface = _ip_interface(ip)
            if iface is not None:
                subnets.append(str(iface.network))
                addresses.append(str(iface))
            for host in ip.iterfind("dhcp/host"):
                mac, addr = host.get("mac"), host.get("ip")
                if mac and addr:
                    reservations[mac.lower()] = addr
        return cls(
            name=root.findtext("name") or "",
            bridge=bridge_el.get("name") if bridge_el is not None else None,
            forward=forward,
            subnets=tuple(subnets),
            addresses=tuple(addresses),
            active=active,
            reservations=reservations,
            bridge_mac=(mac_el.get("address") or "").lower() or None
            if mac_el is not None
            else None,
        )

    def __repr__(self) -> str:
        bits = [self.forward or "isolated"]
        if self.bridge:
            bits.append(f"on {self.bridge}")
        if self.subnets:
            bits.append(", ".join(self.subnets))
        if not self.active:
            bits.append("inactive")
        return f"<Network {self.name!r} {' '.join(bits)}>"

    def _repr_html_(self) -> str:
        from . import _html

        facts = {
            "mode": _html.badge(self.mode),
            "forward": self.forward or "(none: isolated)",
            "bridge": self.bridge,
            "subnets": ", ".join(self.subnets) or None,
            "host addresses": ", ".join(self.addresses) or None,
            "DHCP reservations": len(self.reservations),
            "active": "yes" if self.active else "no",
        }
        return _html.keyvalues(facts, caption=f"Network {self.name}")


class Networks(list[Network]):
    """The list `kvmnet.Host.networks` returns: a ``list[Network]`` that Jupyter shows
    as one table (name, mode, bridge, subnets, host addresses, reservations, active)."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        from . import _html

        return _html.table(
            [
                "name",
                "mode",
                "forward",
                "bridge",
                "subnets",
                "host addresses",
                "DHCP res.",
                "active",
            ],
            [
                (
                    n.name,
                    _html.badge(n.mode),
                    n.forward or "(none)",
                    _html.code(n.bridge) if n.bridge else None,
                    ", ".join(n.subnets) or None,
                    ", ".join(n.addresses) or None,
                    len(n.reservations),
                    "yes" if n.active else _html.badge("inactive"),
                )
                for n in self
            ],
            caption=f"{len(self)} libvirt networks",
            empty="(no libvirt network)",
        )


def _ip_interface(
    ip: etree._Element,
) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    import ipaddress  # only network details need it: not on every CLI start

    address = ip.get("address")
    if not address:
        return None
    prefix = ip.get("prefix") or ip.get("netmask")
    try:
        return ipaddress.ip_interface(f"{address}/{prefix}" if prefix else address)
    except ValueError:
        return None


class NetworkIndex:
    """Networks by name and by bridge: resolves interface modes without re-reading them.

    Args:
        networks: the host's networks, as `Host.networks` lists them.
    """

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)
        self.by_name = {n.name: n for n in self.networks}
        # A bridge-mode network merely names an existing bridge; a libvirt-made bridge
        # (virbr0) belongs to its NAT/isolated/routed network, which wins.
        self.by_bridge: dict[str, Network] = {}
        for net in sorted(self.networks, key=lambda n: n.forward == "bridge", reverse=True):
            if net.bridge:
                self.by_bridge[net.bridge] = net

    def mode_of(self, iface_type: str, source: str | None) -> Mode:
        """The mode of an interface of ``iface_type`` on ``source`` (a network or bridge).

        Args:
            iface_type: the interface's ``type`` attribute ("network", "bridge", "direct"...).
            source: the network or bridge it names, if any.

        Returns:
            The interface's `Mode`.
        """
        if iface_type == "direct":
            return Mode.DIRECT
        if iface_type == "network":
            net = self.by_name.get(source or "")
            return net.mode if net is not None else Mode.OTHER
        if iface_type == "bridge":
            net = self.by_bridge.get(source or "")
            if net is None or net.forward == "bridge":
                return Mode.BRIDGED
            return net.mode
        return Mode.OTHER

    def __repr__(self) -> str:
        return f"<NetworkIndex {', '.join(self.by_name) or 'empty'}>"

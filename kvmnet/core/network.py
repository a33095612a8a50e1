"""Network: a libvirt network as a value, and how a guest interface's mode follows from it.

Pure: parses network XML with lxml, no libvirt. Usage::

    nets = NetworkIndex(host.networks())
    nets.mode_of("bridge", "virbr0")     # Mode.NAT: virbr0 is the NAT network's bridge
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lxml import etree

from ..errors import InvalidInput
from ..mode import Mode

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


# repr=False: the class writes its own (the generated one would be compiled for nothing).
@dataclass(frozen=True, repr=False)
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
            found = _subnet_and_address(ip.get("address"), ip.get("prefix") or ip.get("netmask"))
            if found is not None:
                subnets.append(found[0])
                addresses.append(found[1])
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


def _subnet_and_address(address: str | None, prefix: str | None) -> tuple[str, str] | None:
    """(subnet, host address) of an ``<ip address prefix|netmask>``, both as CIDR text the way
    :mod:`ipaddress` writes them; None when the address is missing or not one.

    Args:
        address: the ``address`` attribute.
        prefix: the ``prefix`` attribute, else the ``netmask`` one.

    Returns:
        ``("192.168.122.0/24", "192.168.122.1/24")``, or None.
    """
    if not address:
        return None
    quick = _ipv4_quick(address, prefix)
    if quick is not None:
        return quick
    import ipaddress  # IPv6, host masks, anything odd: the standard library decides

    try:
        iface = ipaddress.ip_interface(f"{address}/{prefix}" if prefix else address)
    except ValueError:
        return None
    return str(iface.network), str(iface)


def _ipv4_quick(address: str, prefix: str | None) -> tuple[str, str] | None:
    """`_subnet_and_address` for the usual case, an IPv4 address with a prefix length or a
    netmask, without importing :mod:`ipaddress` (a few ms of every command-line start);
    None for anything else, which ipaddress then decides. A test holds both to one answer.
    """
    addr = _ipv4_int(address)
    if addr is None:
        return None
    if not prefix:
        length = 32
    elif prefix.isascii() and prefix.isdigit():
        length = int(prefix)
        if length > 32:
            return None
    else:
        mask = _ipv4_int(prefix)
        if mask is None:
            return None
        host = ~mask & 0xFFFFFFFF
        if host & (host + 1):
            return None  # not a netmask (a host mask?): ipaddress's rules
        length = 32 - host.bit_length()
    network = addr & (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
    return f"{_dotted(network)}/{length}", f"{_dotted(addr)}/{length}"


def _ipv4_int(text: str) -> int | None:
    """A dotted-quad IPv4 address as :mod:`ipaddress` reads one (ASCII digits, no leading
    zeros, each octet at most 255), else None."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3:
            return None
        if part[0] == "0" and part != "0":
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = value << 8 | octet
    return value


def _dotted(value: int) -> str:
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


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

"""What a host link looks like now: frozen values read from ``ip -j`` (or faked in tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["IpAddress", "IpRoute", "LinkState"]


@dataclass(frozen=True)
class IpAddress:
    """An address on a link, e.g. ``IpAddress("10.231.0.185/24", valid_lft=3600, ...)``.

    Attributes:
        cidr: the address with its prefix length, ``"10.231.0.185/24"``.
        valid_lft: seconds the address stays valid; None for "forever" (a static address).
        preferred_lft: seconds it stays preferred; None for "forever".
        dynamic: a DHCP client put it there.
        scope: ``"global"``, ``"link"`` or ``"host"``.
        broadcast: the IPv4 broadcast address, None when the address has none.
    """

    cidr: str
    valid_lft: int | None = None
    preferred_lft: int | None = None
    dynamic: bool = False
    scope: str = "global"
    # Added for host bridging: the IPv4 broadcast address, None when the address has none.
    broadcast: str | None = None

    @property
    def family(self) -> int:
        """4 or 6."""
        return 6 if ":" in self.cidr else 4

    @property
    def ip(self) -> str:
        """The address without its prefix length."""
        return self.cidr.split("/", 1)[0]

    @property
    def prefixlen(self) -> int:
        """The prefix length."""
        return int(self.cidr.split("/", 1)[1])


@dataclass(frozen=True)
class IpRoute:
    """A route through a link, as ``ip -j route`` reports it.

    Attributes:
        dst: ``"default"`` or a CIDR.
        dev: the link it goes through.
        gateway: the next hop, None for a directly connected route.
        metric: the route's metric, if set.
        protocol: who added it: ``"dhcp"``, ``"static"``, ``"kernel"``...
        scope: ``"link"`` for a directly connected route, None for the default.
        prefsrc: the preferred source address.
        family: 4 or 6.
        onlink: the gateway is on-link whatever the addresses say (ifupdown adds default
            routes so).
    """

    dst: str
    dev: str
    gateway: str | None = None
    metric: int | None = None
    protocol: str | None = None
    scope: str | None = None
    prefsrc: str | None = None
    family: int = 4
    # The gateway is on-link whatever the addresses say (ifupdown adds default routes so).
    onlink: bool = False


@dataclass(frozen=True)
class LinkState:
    """One network interface of the host as the kernel reports it.

    Attributes:
        name: the link's name.
        mac: its MAC.
        kind: ``"bridge"``, ``"veth"``, ``"bond"``..., None for a plain NIC.
        master: the bridge or bond it is a port of.
        operstate: the kernel's operational state (``UP``, ``DOWN``, ``UNKNOWN``...).
        mtu: its MTU.
        wireless: a Wi-Fi NIC.
        addresses: its IP addresses.
        routes: routes of the main table through it.
        stp: a bridge's STP setting; None on other links.
        forward_delay: a bridge's forward delay in centiseconds, as the kernel counts;
            None on other links.
        ports: a bridge's ports.
        flags: the kernel's link flags (``"UP"``, ``"LOWER_UP"``...).
        parent: the lower device of a VLAN or macvlan (``"eth0"`` for eth0.100).
    """

    name: str
    mac: str
    kind: str | None = None  # "bridge", "veth", "bond", None for a plain NIC
    master: str | None = None  # the bridge/bond it is a port of
    operstate: str = "UNKNOWN"
    mtu: int = 1500
    wireless: bool = False
    addresses: tuple[IpAddress, ...] = ()
    routes: tuple[IpRoute, ...] = ()
    # Bridge-only facts; None on other links.
    stp: bool | None = None
    forward_delay: int | None = None  # centiseconds, as the kernel counts
    ports: tuple[str, ...] = field(default=())
    # Added for host bridging: the kernel's link flags ("UP", "LOWER_UP", ...).
    flags: tuple[str, ...] = ()
    # The lower device of a VLAN or macvlan ("eth0" for eth0.100), None for others.
    parent: str | None = None

    @property
    def admin_up(self) -> bool:
        """Administratively up (``ip link set X up``), whatever the carrier says."""
        return "UP" in self.flags or self.operstate == "UP"

    @property
    def is_bridge(self) -> bool:
        """True for a bridge."""
        return self.kind == "bridge"

    @property
    def global_addresses(self) -> tuple[IpAddress, ...]:
        """The addresses of global scope (no link-local ones)."""
        return tuple(a for a in self.addresses if a.scope == "global")

"""What a host link looks like now: frozen values read from ``ip -j`` (or faked in tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["IpAddress", "IpRoute", "LinkState"]


@dataclass(frozen=True)
class IpAddress:
    """An address on a link, e.g. ``IpAddress("10.231.0.185/24", valid_lft=3600, ...)``.

    ``valid_lft``/``preferred_lft`` are seconds, None for "forever" (a static address);
    ``dynamic`` marks an address a DHCP client put there.
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
        return 6 if ":" in self.cidr else 4

    @property
    def ip(self) -> str:
        return self.cidr.split("/", 1)[0]

    @property
    def prefixlen(self) -> int:
        return int(self.cidr.split("/", 1)[1])


@dataclass(frozen=True)
class IpRoute:
    """A route through a link: ``dst`` is "default" or a CIDR."""

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
    """One network interface of the host as the kernel reports it."""

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
        return self.kind == "bridge"

    @property
    def global_addresses(self) -> tuple[IpAddress, ...]:
        return tuple(a for a in self.addresses if a.scope == "global")

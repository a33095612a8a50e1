"""A planner's two inputs: what is wanted (`BridgeRequest`) and what is there
(`HostState`, read by `kvmnet.hostnet.inspect` through the runner).

Backends turn ``(request, current)`` into a Plan and nothing else; see
`kvmnet.hostnet.backends.base`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ...core.names import validate_ifname
from ...errors import InvalidInput, InvalidName
from .state import IpRoute, LinkState

__all__ = ["BridgeRequest", "DhcpClient", "FileReader", "HostState"]


class FileReader(Protocol):
    """Read access to the host's files (a Runner is one)."""

    def read_file(self, path: str) -> bytes | None: ...

    def list_dir(self, path: str) -> tuple[str, ...] | None: ...


@dataclass(frozen=True)
class BridgeRequest:
    """Bridge ``nic`` into ``bridge`` (or release it). Names are validated on construction.

    ``stp``/``forward_delay`` (seconds) configure the bridge: off/0 avoids the ~30 s outage
    of STP's listening and learning states. ``dhcp_client`` is an argv to start a DHCP
    client on the bridge after the move (``()``: copy the leased addresses with their
    lifetimes and start nothing; a DHCP client found on the NIC is stopped either way).
    ``force`` names the preflight refusals the caller overrides (see
    `kvmnet.hostnet.preflight`), so a backend refusing what only its files show
    (`refuse`) honours the same overrides.
    """

    nic: str
    bridge: str
    stp: bool = False
    forward_delay: int = 0
    dhcp_client: tuple[str, ...] = ()
    force: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        from ...core import validate  # validate imports .names from this package

        object.__setattr__(self, "force", frozenset(self.force))
        validate_ifname(self.nic, what="NIC")
        validate_ifname(self.bridge, what="bridge")
        validate.flag(self.stp, "stp")
        if isinstance(self.forward_delay, bool) or not isinstance(self.forward_delay, int):
            validate.count(self.forward_delay, "forward_delay")  # raises InvalidType
        object.__setattr__(self, "dhcp_client", validate.dhcp_client(self.dhcp_client))
        if self.nic == self.bridge:
            raise InvalidName(
                f"NIC and bridge are both named {self.nic!r}: give the bridge its own name"
            )
        if not 0 <= self.forward_delay <= 30:
            raise InvalidInput(
                f"forward_delay {self.forward_delay} s for bridge {self.bridge!r} is out of "
                "range: use 0-30 seconds (0 unless STP is on)"
            )


@dataclass(frozen=True)
class DhcpClient:
    """A DHCP client process that holds a link (found by its command line)."""

    pid: int
    argv: tuple[str, ...]
    link: str

    @property
    def program(self) -> str:
        names = [os.path.basename(a) for a in self.argv[:2]]
        if names and names[0] == "busybox" and len(names) > 1:
            return names[1]
        return names[0] if names else "?"


@dataclass(frozen=True)
class HostState:
    """What a planner may look at: the NIC, the bridge (None if absent), the main routing
    table, DHCP clients holding either, whether the SSH session runs over the NIC, and read
    access to files (under a backend's ``root``) through ``files``.
    """

    nic: LinkState
    bridge: LinkState | None
    routes: tuple[IpRoute, ...] = ()
    dhcp_clients: tuple[DhcpClient, ...] = ()
    ssh_over_nic: bool = False
    br_netfilter: bool = False
    forward_policy: str | None = None  # iptables FORWARD policy when br_netfilter is on
    managed_by: str | None = None  # "NetworkManager" / "systemd-networkd" when one manages the NIC
    files: FileReader | None = field(default=None, repr=False, compare=False)
    # Every other link, by name: what the NIC is a slave of, which VLANs ride on it.
    others: Mapping[str, LinkState] = field(default_factory=dict, repr=False, compare=False)

    def read_file(self, path: str) -> bytes | None:
        return self.files.read_file(path) if self.files is not None else None

    def list_dir(self, path: str) -> tuple[str, ...] | None:
        return self.files.list_dir(path) if self.files is not None else None

    def routes_via(self, dev: str) -> tuple[IpRoute, ...]:
        return tuple(r for r in self.routes if r.dev == dev)

    @property
    def master(self) -> LinkState | None:
        """The link the NIC is a port or slave of (a bridge, a bond), None if none."""
        return self.others.get(self.nic.master) if self.nic.master else None

    @property
    def vlans(self) -> tuple[str, ...]:
        """The VLANs whose lower device is the NIC (macvlans are not: a backend that can
        moves them onto the bridge)."""
        return tuple(sorted(n for n, link in self.others.items() if link.parent == self.nic.name
                            and link.kind == "vlan"))

    @property
    def default_routes(self) -> tuple[IpRoute, ...]:
        return tuple(r for r in self.routes if r.dst == "default")

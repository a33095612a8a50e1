"""How a guest interface reaches the world."""

from __future__ import annotations

import enum

__all__ = ["Mode"]


class Mode(str, enum.Enum):
    """A guest interface's networking mode, as an operator thinks of it.

    ``Mode.NAT`` is behind the host (libvirt's ``default`` network, or its bridge virbr0);
    ``Mode.BRIDGED`` is on the LAN; the rest follow libvirt's network forward modes.
    """

    NAT = "nat"
    BRIDGED = "bridged"
    ISOLATED = "isolated"
    ROUTED = "routed"
    DIRECT = "direct"
    OTHER = "other"

    def __str__(self) -> str:
        return self.value

"""Element ids of a topology picture (``iface:GUEST:MAC``), shared by the model and renderers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import GuestPort

__all__ = ["port_id"]


def port_id(guest: str, port: GuestPort) -> str:
    """The element id of a guest interface: ``iface:GUEST:MAC`` (the source without a MAC)."""
    return f"iface:{guest}:{port.mac or port.source or '?'}"

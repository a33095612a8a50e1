"""Read a machine's side of the picture through a runner (the host's links and routes).

The one place the topology package reads anything: the model stays pure. ``host.topology()``
adds the guests and libvirt networks; this reads a machine alone, for a host plan's picture
(``kvmnet host-bridge ... --dry-run --svg FILE``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import Topology, build_topology

if TYPE_CHECKING:
    from ..hostnet.runners.runner import Runner

__all__ = ["read_machine"]


def read_machine(runner: Runner, label: str) -> Topology:
    """The bridges, NICs and LAN of the machine ``runner`` acts on (no guests).

    Args:
        runner: where the links and routes are read (``ip -j``).
        label: what the picture calls the machine (a URI, or "this machine").

    Returns:
        The `Topology`, without guests or libvirt networks.

    Raises:
        CommandFailed: ``ip`` failed there.
    """
    from ..hostnet.inspect import read_links, read_routes

    return build_topology(label, (), (), read_links(runner), read_routes(runner))

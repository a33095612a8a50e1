"""A picture of a hypervisor's network: guests, libvirt networks, bridges, host NICs, the LAN.

``host.topology()`` reads it; `Topology` is the value, drawn as SVG (``.svg()``,
Jupyter shows it inline), as Graphviz DOT (``.dot()``), and before/after a plan
(``topo.after(plan)`` marks what the plan moves). The model is pure; the renderers need
nothing beyond the standard library.
"""

from .model import BridgeNode, GuestNode, GuestPort, NicNode, Topology, build_topology

__all__ = ["BridgeNode", "GuestNode", "GuestPort", "NicNode", "Topology", "build_topology"]

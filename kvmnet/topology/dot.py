"""A `Topology` as Graphviz DOT, for people who have Graphviz.

``kvmnet show --dot | dot -Tsvg > host.svg``. Left to right like the built-in SVG; what a
plan moves is orange and bold, what it removes red and dashed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ids import port_id
from .svg import CHANGED, MODE_COLOURS, REMOVED

if TYPE_CHECKING:
    from .model import Topology

__all__ = ["render_dot"]


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(topo: Topology) -> str:
    """Graphviz DOT text for ``topo`` (see `Topology.dot`)."""

    def style(element: str, colour: str | None = None) -> str:
        if element in topo.changed:
            return f', color={_q(CHANGED)}, penwidth=3'
        return f", color={_q(colour)}" if colour else ""

    lines = [
        f"digraph {_q(topo.uri)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style=rounded, fontname="monospace", fontsize=10];',
    ]
    for g in topo.guests:
        label = g.name + ("" if g.running else " (off)")
        lines.append(f"  subgraph {_q('cluster_' + g.name)} {{ label={_q(label)};")
        for p in g.ports:
            pid = port_id(g.name, p)
            lines.append(f"    {_q(pid)} [label={_q(p.label)}{style(pid, MODE_COLOURS[p.mode])}];")
        lines.append("  }")
    for br in topo.bridges:
        sub = f"network {br.network}, {br.mode.value}" if br.network else "host bridge"
        label = "\n".join([br.name, sub, *br.addresses])
        dashed = ", style=\"rounded,dashed\"" if not br.seen else ""
        lines.append(f"  {_q('bridge:' + br.name)} [label={_q(label)}"
                     f"{style('bridge:' + br.name, MODE_COLOURS[br.mode])}{dashed}];")
    for net in topo.networks:
        if not net.bridge:
            lines.append(f"  {_q('network:' + net.name)} "
                         f"[label={_q('network ' + net.name + chr(10) + net.mode.value)}];")
    for n in topo.nics:
        label = "\n".join([n.name, n.mac, *n.addresses])
        lines.append(f"  {_q('nic:' + n.name)} [label={_q(label)}{style('nic:' + n.name)}];")
    if topo.nics:
        lan = "LAN" + (f"\ngateway {topo.gateway}" if topo.gateway else "")
        lines.append(f"  lan [label={_q(lan)}, shape=ellipse];")
    for a, b in topo.edges():
        lines.append(f"  {_q(a)} -> {_q(b)} [arrowhead=none{style(f'edge:{a}->{b}')}];")
    for a, b in sorted(topo.removed):
        lines.append(f"  {_q(a)} -> {_q(b)} [arrowhead=none, style=dashed, "
                     f"color={_q(REMOVED)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"

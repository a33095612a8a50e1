"""Draw a `Topology` as SVG: four columns, left to right.

guests -> bridges (and bridgeless libvirt networks) -> host NICs -> the LAN. Boxes are laid
out in columns ordered so that most edges run straight across; a bridge with many guests
draws them as one group box with counts. Pure string building, standard library only, so a
thousand guests render in milliseconds and nothing heavy is imported.

Colours: "light" and "dark" carry their own background (readable wherever the SVG lands, an
``<img>`` included); "auto" takes text and box colours from the page (JupyterLab's CSS
variables, with light fallbacks), for inline HTML.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING

from ..mode import Mode
from .ids import port_id

if TYPE_CHECKING:
    from .model import BridgeNode, GuestNode, NicNode, Topology

__all__ = ["render_html", "render_svg"]

SVG_NS = "http://www.w3.org/2000/svg"

# Mode colours: the same hues as the HTML tables (kvmnet.core._html), readable on light and dark.
MODE_COLOURS = {
    Mode.NAT: "#1f77b4",
    Mode.BRIDGED: "#2ca02c",
    Mode.ISOLATED: "#7f7f7f",
    Mode.ROUTED: "#9467bd",
    Mode.DIRECT: "#ff7f0e",
    Mode.OTHER: "#8c564b",
}
CHANGED = "#e6550d"
REMOVED = "#d62728"

_THEMES = {
    "light": {"bg": "#ffffff", "fg": "#1a1a1a", "muted": "#666666", "box": "#f3f4f6",
              "edge": "#8a8a8a"},
    "dark": {"bg": "#1e1e1e", "fg": "#e8e8e8", "muted": "#a0a0a0", "box": "#2c2f33",
             "edge": "#9a9a9a"},
    "auto": {"bg": "", "fg": "var(--jp-ui-font-color1, #1a1a1a)",
             "muted": "var(--jp-ui-font-color2, #666666)",
             "box": "var(--jp-layout-color2, #f3f4f6)", "edge": "#8a8a8a"},
}

FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
CHAR_W = 7.3  # px per character at 12 px monospace
LINE_H = 16
PAD = 8
GAP_X = 90
GAP_Y = 14
MARGIN = 20


@dataclass
class Box:
    """A laid-out box: id, title, lines, and where its edges attach (line -> y)."""

    id: str
    title: str
    lines: list[str]
    x: float = 0
    y: float = 0
    w: float = 0
    colour: str | None = None
    dashed: bool = False
    tooltip: str = ""
    anchors: dict[str, float] = field(default_factory=dict)  # element id -> y offset

    @property
    def h(self) -> float:
        return PAD * 2 + LINE_H * (1 + len(self.lines))

    def anchor_y(self, element: str) -> float:
        return self.y + self.anchors.get(element, self.h / 2)


@dataclass
class Group:
    """Guests drawn as one box: members, and how many interfaces go to each bridge."""

    id: str
    bridge: str
    members: list[GuestNode]


def _guest_order(topo: Topology, bridges: Sequence[str]) -> list[GuestNode]:
    rank = {name: i for i, name in enumerate(bridges)}
    def key(g: GuestNode) -> tuple[int, str]:
        first = next((p.attach for p in g.ports if p.attach), None)
        return (rank.get(first, len(rank)) if first else len(rank) + 1, g.name)
    return sorted(topo.guests, key=key)


def _bridge_order(topo: Topology) -> list[str]:
    # Bridges with uplink ports first, then the NAT/isolated ones, then guest-only ones.
    def key(b: BridgeNode) -> tuple[int, str]:
        return (0 if b.ports else 1 if b.network else 2, b.name)
    return [b.name for b in sorted(topo.bridges, key=key)]


def _layout(topo: Topology, collapse: int) -> tuple[list[list[Box]], list[Group]]:
    bridge_names = _bridge_order(topo)
    by_bridge: dict[str | None, list[GuestNode]] = {}
    for g in _guest_order(topo, bridge_names):
        first = next((p.attach for p in g.ports if p.attach), None)
        by_bridge.setdefault(first, []).append(g)

    guests: list[Box] = []
    groups: list[Group] = []
    for bridge, members in by_bridge.items():
        if bridge is not None and collapse and len(members) > collapse:
            gid = f"group:{bridge}"
            groups.append(Group(gid, bridge, members))
            guests.append(_group_box(gid, bridge, members, topo))
        else:
            guests.extend(_guest_box(g, topo) for g in members)

    bridges = [_bridge_box(b, topo) for name in bridge_names
               if (b := topo.bridge(name)) is not None]
    bridges += [
        Box(f"network:{n.name}", f"network {n.name}",
            [f"{n.mode.value} ({n.forward or 'none'})"], colour=MODE_COLOURS[n.mode],
            tooltip=f"libvirt network {n.name!r}, forward mode {n.forward or 'none'}")
        for n in topo.networks if not n.bridge
    ]
    order = {name: i for i, name in enumerate(bridge_names)}
    nic_nodes = sorted(topo.nics, key=lambda n: (order.get(n.master or "", len(order)), n.name))
    nics = [_nic_box(n) for n in nic_nodes]
    lan = [Box("lan", "LAN", [f"gateway {topo.gateway}" if topo.gateway else "uplink"],
               tooltip="the network the host's NICs reach")] if nics else []
    columns = [guests, bridges, nics, lan]
    _place(columns)
    return columns, groups


def _guest_box(g: GuestNode, topo: Topology) -> Box:
    lines = [f"{p.mac or '(no MAC)'} {p.mode.value}" for p in g.ports] or ["(no interfaces)"]
    box = Box(f"guest:{g.name}", g.name + ("" if g.running else "  (off)"), lines,
              tooltip=f"guest {g.name!r}, {'running' if g.running else 'shut off'}")
    for n, p in enumerate(g.ports):
        box.anchors[port_id(g.name, p)] = PAD + LINE_H * (n + 1.5)
    return box


def _group_box(gid: str, bridge: str, members: list[GuestNode], topo: Topology) -> Box:
    running = sum(g.running for g in members)
    counts: dict[str, int] = {}
    for g in members:
        for p in g.ports:
            target = p.attach or p.source or "?"
            counts[target] = counts.get(target, 0) + 1
    lines = [f"{n} interfaces -> {t}" for t, n in counts.items()]
    names = ", ".join(g.name for g in members[:40]) + (" ..." if len(members) > 40 else "")
    box = Box(gid, f"{len(members)} guests ({running} running)", lines,
              tooltip=f"guests on {bridge}: {names}")
    for n, t in enumerate(counts):
        box.anchors[f"{gid}->{t}"] = PAD + LINE_H * (n + 1.5)
    return box


def _bridge_box(b: BridgeNode, topo: Topology) -> Box:
    if b.network is not None:
        sub = f"network {b.network}, {b.mode.value}" + (f" {b.subnet}" if b.subnet else "")
    else:
        sub = "host bridge"
    lines = [sub, *b.addresses]
    if not b.seen:
        lines.append("(not read from the host)" if not topo.host_read else "(missing on host)")
    return Box(f"bridge:{b.name}", b.name, lines, colour=MODE_COLOURS.get(b.mode),
               dashed=not b.seen, tooltip=f"bridge {b.name}: ports {', '.join(b.ports) or 'none'}")


def _nic_box(n: NicNode) -> Box:
    kind = n.kind or "nic"
    lines = [f"{n.mac} {kind}", *n.addresses]
    if not n.up:
        lines.append("(down)")
    return Box(f"nic:{n.name}", n.name, lines,
               tooltip=f"host {kind} {n.name}" + (f", port of {n.master}" if n.master else ""))


def _place(columns: list[list[Box]]) -> None:
    x: float = MARGIN
    for col in columns:
        width = max((len(t) for b in col for t in (b.title, *b.lines)), default=0) * CHAR_W
        width = max(width + 2 * PAD, 120)
        y: float = MARGIN + 18
        for box in col:
            box.x, box.y, box.w = x, y, width
            y += box.h + GAP_Y
        x += width + GAP_X


Edge = tuple[Box, str, Box, str, Mode | None, bool]


def _edges(topo: Topology, boxes: dict[str, Box], groups: list[Group]) -> list[Edge]:
    """(from box, from anchor, to box, to anchor, mode, changed) for every edge drawn."""
    member = {g.name: grp for grp in groups for g in grp.members}
    out: list[Edge] = []
    seen_group: set[str] = set()
    for g in topo.guests:
        grp = member.get(g.name)
        for p in g.ports:
            target = (f"bridge:{p.attach}" if p.attach else
                      f"nic:{p.source}" if p.type == "direct" else f"network:{p.source}")
            if target not in boxes:
                continue
            edge_id = f"edge:{port_id(g.name, p)}->{target}"
            changed = edge_id in topo.changed
            if grp is not None:
                anchor = f"{grp.id}->{p.attach or p.source or '?'}"
                key = f"{anchor}|{changed}"
                if key in seen_group:
                    continue
                seen_group.add(key)
                out.append((boxes[grp.id], anchor, boxes[target], target, p.mode, changed))
            else:
                out.append((boxes[f"guest:{g.name}"], port_id(g.name, p), boxes[target], target,
                            p.mode, changed))
    for n in topo.nics:
        if n.master is not None and f"bridge:{n.master}" in boxes:
            changed = f"edge:bridge:{n.master}->nic:{n.name}" in topo.changed
            out.append((boxes[f"bridge:{n.master}"], "", boxes[f"nic:{n.name}"], "", None,
                        changed))
    for a, b in topo.edges():
        if b == "lan" and a in boxes and "lan" in boxes:
            out.append((boxes[a], "", boxes["lan"], "", None, f"edge:{a}->lan" in topo.changed))
    return out


def _nat_edges(topo: Topology, boxes: dict[str, Box]) -> list[tuple[Box, Box]]:
    """NAT networks' bridges to the NIC that carries the host's traffic out."""
    uplinks = [f"nic:{a.split(':', 1)[1]}" for a, b in topo.edges() if b == "lan"]
    if not uplinks or uplinks[0] not in boxes:
        return []
    return [(boxes[f"bridge:{b.name}"], boxes[uplinks[0]]) for b in topo.bridges
            if b.mode is Mode.NAT and b.network is not None and f"bridge:{b.name}" in boxes]


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    dx = (x2 - x1) / 2
    return f"M{x1:.1f},{y1:.1f} C{x1 + dx:.1f},{y1:.1f} {x2 - dx:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"


def _text(x: float, y: float, text: str, style: str, *, bold: bool = False) -> str:
    weight = "font-weight:bold;" if bold else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" style="{weight}{style}">{escape(text)}</text>'


def render_svg(topo: Topology, *, theme: str = "light", collapse: int = 12) -> str:
    """Draw ``topo`` (see `Topology.svg` for the arguments)."""
    if theme not in _THEMES:
        from ..core.validate import shown
        from ..errors import InvalidInput

        raise InvalidInput(f"theme {shown(theme)} is not one of: light, dark, auto")
    t = _THEMES[theme]
    columns, groups = _layout(topo, collapse)
    boxes = {b.id: b for col in columns for b in col}
    width = max((b.x + b.w for b in boxes.values()), default=200) + MARGIN
    height = max((b.y + b.h for b in boxes.values()), default=60) + MARGIN + 40
    fg = f"fill:{t['fg']};font-family:{FONT};font-size:12px"
    muted = f"fill:{t['muted']};font-family:{FONT};font-size:11px"
    parts = [
        f'<svg xmlns="{SVG_NS}" version="1.1" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img">',
        f"<title>{escape(repr(topo))}</title>",
    ]
    if t["bg"]:
        parts.append(f'<rect width="100%" height="100%" style="fill:{t["bg"]}"/>')
    heads = ["guests", "bridges / networks", "host NICs", "LAN"]
    for col, head in zip(columns, heads, strict=True):
        if col:
            parts.append(_text(col[0].x, MARGIN + 4, head, muted))
    for src, nat in _nat_edges(topo, boxes):
        x1, y1 = src.x + src.w, src.y + src.h / 2
        x2, y2 = nat.x, nat.y + nat.h - PAD
        parts.append(f'<path d="{_curve(x1, y1, x2, y2)}" style="fill:none;stroke:'
                     f'{MODE_COLOURS[Mode.NAT]};stroke-width:1.2;stroke-dasharray:5,4">'
                     f"<title>NAT: {escape(src.title)} reaches the LAN through {escape(nat.title)}"
                     "</title></path>")
    for a, b in sorted(topo.removed):
        if a in boxes or a.startswith("iface:"):
            owner = boxes.get(a) or _owner(a, boxes)
            dst = boxes.get(b)
            if owner is None or dst is None:
                continue
            y1 = owner.anchor_y(a) if a.startswith("iface:") else owner.y + owner.h / 2
            parts.append(f'<path d="{_curve(owner.x + owner.w, y1, dst.x, dst.y + dst.h / 2)}" '
                         f'style="fill:none;stroke:{REMOVED};stroke-width:1.5;'
                         f'stroke-dasharray:3,3;opacity:0.8"><title>removed by the plan: '
                         f"{escape(a)} -> {escape(b)}</title></path>")
    for src, sa, dst, da, mode, changed in _edges(topo, boxes, groups):
        colour = CHANGED if changed else MODE_COLOURS[mode] if mode else t["edge"]
        width_px = 3 if changed else 1.6
        x1, y1 = src.x + src.w, src.anchor_y(sa) if sa else src.y + src.h / 2
        x2, y2 = dst.x, dst.anchor_y(da) if da else dst.y + dst.h / 2
        parts.append(f'<path d="{_curve(x1, y1, x2, y2)}" style="fill:none;stroke:{colour};'
                     f'stroke-width:{width_px}"/>')
    for box in boxes.values():
        parts.append(_box_svg(box, topo, t, fg, muted))
    parts.append(_legend(topo, height - MARGIN - 8, muted))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _owner(element: str, boxes: dict[str, Box]) -> Box | None:
    return next((b for b in boxes.values() if element in b.anchors), None)


def _box_svg(box: Box, topo: Topology, t: dict[str, str], fg: str, muted: str) -> str:
    changed = box.id in topo.changed or any(a in topo.changed for a in box.anchors)
    stroke = CHANGED if changed else box.colour or t["edge"]
    dash = ";stroke-dasharray:4,3" if box.dashed else ""
    sw = 3 if changed else 1.4
    out = [f'<g id="{escape(box.id)}"><title>{escape(box.tooltip or box.title)}</title>',
           f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" '
           f'rx="6" style="fill:{t["box"]};stroke:{stroke};stroke-width:{sw}{dash}"/>']
    title = box.title + ("  * changed" if box.id in topo.changed else "")
    out.append(_text(box.x + PAD, box.y + PAD + 12, title, fg, bold=True))
    for n, line in enumerate(box.lines):
        element = next((a for a, y in box.anchors.items()
                        if abs(y - (PAD + LINE_H * (n + 1.5))) < 1), None)
        style = muted
        if element is not None and element in topo.changed:
            style = f"fill:{CHANGED};font-family:{FONT};font-size:11px;font-weight:bold"
        out.append(_text(box.x + PAD, box.y + PAD + 12 + LINE_H * (n + 1), line, style))
    out.append("</g>")
    return "".join(out)


def _legend(topo: Topology, y: float, muted: str) -> str:
    items: list[tuple[str, str]] = [(MODE_COLOURS[m], m.value) for m in
                                    (Mode.NAT, Mode.BRIDGED, Mode.ISOLATED, Mode.ROUTED,
                                     Mode.DIRECT)]
    if topo.changed:
        items.append((CHANGED, "changed by the plan"))
    if topo.removed:
        items.append((REMOVED, "removed by the plan"))
    x: float = MARGIN
    out = []
    for colour, label in items:
        out.append(f'<rect x="{x}" y="{y - 9:.1f}" width="14" height="4" style="fill:{colour}"/>')
        out.append(_text(x + 18, y, label, muted))
        x += 18 + CHAR_W * len(label) + 16
    return "".join(out)


def render_html(topo: Topology, *, collapse: int = 12) -> str:
    """The picture inline (page colours) with the collapsed groups listed in ``<details>``."""
    svg = render_svg(topo, theme="auto", collapse=collapse)
    _, groups = _layout(topo, collapse)
    details = "".join(
        f"<details><summary>{len(g.members)} guests on {escape(g.bridge)}</summary>"
        f"<div style='font-family:monospace;font-size:85%'>"
        + _html_rows(g.members) + "</div></details>"
        for g in groups
    )
    return f'<div style="overflow-x:auto">{svg}{details}</div>'


def _html_rows(members: Iterable[GuestNode]) -> str:
    return "<br>".join(
        escape(f"{g.name}{'' if g.running else ' (off)'}: "
               + ", ".join(f"{p.mac} {p.mode.value} -> {p.attach or p.source}" for p in g.ports))
        for g in members
    )

"""The host's network as a value: guests, libvirt networks, bridges, host NICs, the LAN.

Pure: built from what kvmnet already reads (domain XML, network definitions, ``ip -j`` link
states), no libvirt and no commands here. `Topology.after` applies a plan's promised
outcome to a topology, so a dry run can be drawn before and after::

    topo = host.topology()
    print(topo.summary())
    topo.after(plan).changed          # the element ids the plan moves
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.domainxml import DomainXML, GuestInterface
from ..core.network import Network, NetworkIndex
from ..hostnet.model.state import IpAddress, IpRoute, LinkState
from ..mode import Mode
from .ids import port_id

if TYPE_CHECKING:
    from ..hostnet.model.plan import Plan
    from ..lan.lanplan import LanPlan, LanResult

__all__ = ["BridgeNode", "GuestNode", "GuestPort", "NicNode", "Topology", "build_topology"]

#: Link kinds that are guests' or libvirt's plumbing, not the host's own NICs.
_PLUMBING_KINDS = frozenset({"tun", "tap", "macvtap", "dummy", "ifb", "vxlan", "wireguard"})


@dataclass(frozen=True)
class GuestPort:
    """One guest interface and where it plugs in.

    Attributes:
        mac: its MAC, None if the XML names none.
        type: libvirt's interface type (``"network"``, ``"bridge"``, ``"direct"``...).
        source: the network, bridge or device its XML names.
        mode: NAT, BRIDGED, ISOLATED...
        attach: the bridge it plugs into, or None (a direct or hostdev interface).
        tap: the host-side tap device of a running guest (``vnet0``).
    """

    mac: str | None
    type: str
    source: str | None
    mode: Mode
    attach: str | None
    tap: str | None = None

    @property
    def label(self) -> str:
        """The MAC and mode, as the picture labels the port."""
        return f"{self.mac or '(no MAC)'} {self.mode.value}"


@dataclass(frozen=True)
class GuestNode:
    """A guest and its interfaces, in XML order.

    Attributes:
        name: the domain's name.
        running: whether it runs.
        ports: its interfaces.
    """

    name: str
    running: bool
    ports: tuple[GuestPort, ...] = ()


@dataclass(frozen=True)
class BridgeNode:
    """A bridge the guests plug into: a host bridge, a libvirt network's, or both.

    Attributes:
        name: the bridge's name.
        network: the libvirt network that owns it (None: a host bridge of its own).
        mode: what a guest on it is: NAT, BRIDGED, ISOLATED, ROUTED...
        subnet: the libvirt network's subnet, if any.
        ports: its ports (host NICs and taps).
        addresses: the host's addresses on it.
        seen: False when only the guests' XML names it (the host's links were not read,
            or it does not exist there).
        default_route: the host's default route goes through it.
    """

    name: str
    network: str | None = None
    mode: Mode = Mode.BRIDGED
    subnet: str | None = None
    ports: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    seen: bool = True
    default_route: bool = False


@dataclass(frozen=True)
class NicNode:
    """A host NIC (physical, bond, VLAN, veth): its addresses and the bridge it is a port of.

    Attributes:
        name: the NIC's name.
        mac: its MAC.
        kind: ``"bond"``, ``"vlan"``, ``"veth"``..., None for a plain NIC.
        master: the bridge (or bond) it is a port of.
        addresses: its addresses, as CIDR strings.
        up: whether its link is up.
        default_route: the host's default route goes through it.
    """

    name: str
    mac: str
    kind: str | None = None
    master: str | None = None
    addresses: tuple[str, ...] = ()
    up: bool = True
    default_route: bool = False


@dataclass(frozen=True)
class Topology:
    """A hypervisor's network at one moment, as a value.

    Get it from `kvmnet.Host.topology`. Jupyter draws it; `svg` and `dot` give the picture as
    text; `after` shows what a plan will move.

    Attributes:
        uri: the libvirt URI of the host.
        guests: the guests; they plug into ``bridges`` (by `GuestPort.attach`).
        bridges: the bridges; they hold host ``nics`` as ports.
        nics: the host NICs; they reach the LAN (through ``gateway``).
        networks: the libvirt networks: one with a bridge is drawn as that bridge, the
            others (direct, hostdev) as boxes of their own.
        gateway: the default route's gateway, when the host has one.
        host_read: False when the host's links were not read (libvirt's test driver, or
            no runner).
        changed: the element ids (``bridge:br0``, ``nic:eth0``, ``iface:web1:MAC``,
            ``edge:A->B``) of what a plan moves, set by `after`.
        removed: the edges a plan takes away, set by `after`.
    """

    uri: str
    guests: tuple[GuestNode, ...] = ()
    bridges: tuple[BridgeNode, ...] = ()
    nics: tuple[NicNode, ...] = ()
    networks: tuple[Network, ...] = ()
    gateway: str | None = None
    host_read: bool = True
    changed: frozenset[str] = field(default_factory=frozenset)
    removed: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    # -- reading --------------------------------------------------------------------------

    def bridge(self, name: str) -> BridgeNode | None:
        """The bridge called ``name``, or None.

        Args:
            name: the bridge's name.

        Returns:
            The `BridgeNode`, None if there is none.
        """
        return next((b for b in self.bridges if b.name == name), None)

    def nic(self, name: str) -> NicNode | None:
        """The host NIC called ``name``, or None.

        Args:
            name: the NIC's name.

        Returns:
            The `NicNode`, None if there is none.
        """
        return next((n for n in self.nics if n.name == name), None)

    def guest(self, name: str) -> GuestNode | None:
        """The guest called ``name``, or None.

        Args:
            name: the domain's name.

        Returns:
            The `GuestNode`, None if there is none.
        """
        return next((g for g in self.guests if g.name == name), None)

    def edges(self) -> tuple[tuple[str, str], ...]:
        """Every connection as a pair of element ids, guest side first.

        Returns:
            ``(from, to)`` id pairs, e.g. ``("iface:web1:52:54:00:..", "bridge:br0")``.
        """
        out: list[tuple[str, str]] = []
        for g in self.guests:
            for p in g.ports:
                if p.attach is not None:
                    out.append((port_id(g.name, p), f"bridge:{p.attach}"))
                elif p.type == "direct" and p.source is not None:
                    out.append((port_id(g.name, p), f"nic:{p.source}"))  # macvtap on a NIC
                elif p.source is not None:
                    out.append((port_id(g.name, p), f"network:{p.source}"))
        for n in self.nics:
            if n.master is not None:
                out.append((f"bridge:{n.master}", f"nic:{n.name}"))
        for n in self.nics:
            if self._uplinks(n):
                out.append((f"nic:{n.name}", "lan"))
        return tuple(out)

    def _uplinks(self, nic: NicNode) -> bool:
        # A NIC reaches the LAN when it carries the default route, or is a port of the bridge
        # that does; with no default route anywhere, every NIC that is up is drawn as one.
        if nic.default_route:
            return True
        if nic.master is not None:
            br = self.bridge(nic.master)
            return br is not None and (br.default_route or self.gateway is None)
        return self.gateway is None and nic.up and bool(nic.addresses)

    def summary(self) -> str:
        """A few lines of text: each bridge with its guests and ports.

        Returns:
            The text.
        """
        lines = [f"{self.uri}: {len(self.guests)} guests, {len(self.bridges)} bridges, "
                 f"{len(self.nics)} host NICs"]
        for br in self.bridges:
            guests = sorted({g.name for g in self.guests for p in g.ports if p.attach == br.name})
            what = f"network {br.network!r}, {br.mode.value}" if br.network else "host bridge"
            ports = ", ".join(br.ports) or "no ports"
            names = ", ".join(guests[:6]) + (", ..." if len(guests) > 6 else "")
            lines.append(f"  {br.name} ({what}; ports: {ports}): {len(guests)} guests"
                         + (f": {names}" if guests else ""))
        for net in self.networks:
            if net.bridge:
                continue
            lines.append(f"  network {net.name!r} ({net.mode.value}, no bridge)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON (``kvmnet show --json``).

        Returns:
            Dicts, lists and strings only.
        """
        return {
            "uri": self.uri,
            "host_read": self.host_read,
            "gateway": self.gateway,
            "guests": [
                {"name": g.name, "running": g.running,
                 "interfaces": [{"mac": p.mac, "type": p.type, "source": p.source,
                                 "mode": p.mode.value, "bridge": p.attach, "tap": p.tap}
                                for p in g.ports]}
                for g in self.guests
            ],
            "bridges": [dataclasses.asdict(b) | {"mode": b.mode.value} for b in self.bridges],
            "nics": [dataclasses.asdict(n) for n in self.nics],
            "networks": [{"name": n.name, "forward": n.forward, "mode": n.mode.value,
                          "bridge": n.bridge, "subnet": n.subnet}
                         for n in self.networks],
            "changed": sorted(self.changed),
            "removed": sorted(list(e) for e in self.removed),
        }

    # -- a plan's outcome -----------------------------------------------------------------

    def after(self, plan: Plan | LanPlan | LanResult) -> Topology:
        """This topology as ``plan`` promises to leave it, with what moves in ``changed``.

        A host plan (`Plan`) is read through its checks, which are exactly
        what it verifies after its steps (the bridge exists, the NIC is its port, the
        addresses moved); a `LanPlan` adds the guest's XML change. Nothing
        is changed on any machine.

        Args:
            plan: a host plan, or a combined guest + host plan or its dry-run result
                (``host.bridge_guest(..., dry_run=True)``).

        Returns:
            A new Topology; ``changed`` and ``removed`` mark the differences from this one.
        """
        from ..hostnet.model.plan import Plan
        from ..lan.lanplan import LanResult

        if isinstance(plan, LanResult):
            plan = plan.plan
        after = self
        if isinstance(plan, Plan):
            after = _apply_host_plan(after, plan)
        else:
            if plan.host_plan is not None:
                after = _apply_host_plan(after, plan.host_plan)
            after = _apply_guest_change(after, plan.domain, plan.change.after)
        return _marked(self, after)

    # -- rendering (lazy: the renderers are only imported when a picture is asked for) ---

    def svg(self, *, theme: str = "light", collapse: int = 12) -> str:
        """The picture as a standalone SVG document.

        Args:
            theme: "light" or "dark" colours (both with their own background), or "auto"
                (colours from the page, for embedding in HTML).
            collapse: a bridge with more guests than this draws them as one group box.

        Returns:
            SVG text (UTF-8, ``<svg xmlns="http://www.w3.org/2000/svg" ...>``).
        """
        from .svg import render_svg

        return render_svg(self, theme=theme, collapse=collapse)

    def dot(self) -> str:
        """The picture as Graphviz DOT text (``dot -Tsvg`` draws it).

        Returns:
            The DOT source.
        """
        from .dot import render_dot

        return render_dot(self)

    def _repr_svg_(self) -> str:
        return self.svg()

    def _repr_html_(self) -> str:
        from .svg import render_html

        return render_html(self)

    def __repr__(self) -> str:
        moved = f", {len(self.changed)} changed" if self.changed else ""
        return (
            f"<Topology {self.uri}: {len(self.guests)} guests, {len(self.bridges)} bridges, "
            f"{len(self.nics)} NICs{moved}>"
        )


def element_ids(topo: Topology) -> dict[str, object]:
    """Every node of ``topo`` by its id, with the value that describes it (for comparing)."""
    nodes: dict[str, object] = {}
    for g in topo.guests:
        nodes[f"guest:{g.name}"] = (g.name, g.running)
        for p in g.ports:
            nodes[port_id(g.name, p)] = p
    for b in topo.bridges:
        nodes[f"bridge:{b.name}"] = dataclasses.replace(b, ports=tuple(sorted(b.ports)))
    for n in topo.nics:
        nodes[f"nic:{n.name}"] = n
    for net in topo.networks:
        nodes[f"network:{net.name}"] = net
    nodes["lan"] = topo.gateway
    return nodes


def _marked(before: Topology, after: Topology) -> Topology:
    old, new = element_ids(before), element_ids(after)
    changed = {k for k, v in new.items() if old.get(k, _MISSING) != v}
    old_edges, new_edges = set(before.edges()), set(after.edges())
    added = new_edges - old_edges
    changed |= {f"edge:{a}->{b}" for a, b in added}
    return dataclasses.replace(
        after,
        changed=frozenset(changed) | before.changed,
        removed=frozenset(old_edges - new_edges) | before.removed,
    )


_MISSING = object()


def _apply_host_plan(topo: Topology, plan: Plan) -> Topology:
    """What ``plan``'s checks promise, applied to ``topo``'s bridges and NICs."""
    bridges = {b.name: b for b in topo.bridges}
    nics = {n.name: n for n in topo.nics}
    for check in plan.checks:
        subject, value = check.subject, check.value
        if check.kind == "link-exists" and subject in bridges:
            bridges[subject] = dataclasses.replace(bridges[subject], seen=True)
        elif check.kind == "link-exists" and subject not in nics:
            bridges[subject] = BridgeNode(subject)
        elif check.kind == "link-absent":
            bridges.pop(subject, None)
            nics.pop(subject, None)
        elif check.kind == "port-of" and subject in nics and value is not None:
            nics[subject] = dataclasses.replace(nics[subject], master=value)
            old = bridges.get(value)
            bridges[value] = BridgeNode(value) if old is None else dataclasses.replace(
                old, seen=True
            )
        elif check.kind == "not-port" and subject in nics:
            nics[subject] = dataclasses.replace(nics[subject], master=None)
        elif check.kind in ("has-address", "lacks-address") and value is not None:
            add = check.kind == "has-address"
            if subject in bridges:
                b = bridges[subject]
                bridges[subject] = dataclasses.replace(b, addresses=_edit(b.addresses, value, add))
            elif subject in nics:
                n = nics[subject]
                nics[subject] = dataclasses.replace(n, addresses=_edit(n.addresses, value, add))
        elif check.kind == "default-route-via":
            for name, b in bridges.items():
                bridges[name] = dataclasses.replace(b, default_route=name == subject)
            for name, n in nics.items():
                nics[name] = dataclasses.replace(n, default_route=name == subject)
    # Ports follow from the NICs' masters, so a bridge's port list cannot disagree with them.
    bridges = {
        name: dataclasses.replace(
            b,
            ports=tuple(sorted({*(p for p in b.ports if p not in nics),
                                *(n.name for n in nics.values() if n.master == name)})),
        )
        for name, b in bridges.items()
    }
    # A NIC that has gone (released VLAN, etc.) is not drawn; order stays as it was.
    return dataclasses.replace(
        topo, bridges=tuple(bridges.values()), nics=tuple(nics.values())
    )


def _edit(addresses: tuple[str, ...], cidr: str, add: bool) -> tuple[str, ...]:
    if add:
        return addresses if cidr in addresses else (*addresses, cidr)
    return tuple(a for a in addresses if a != cidr)


def _apply_guest_change(topo: Topology, domain: str, xml: str) -> Topology:
    index = NetworkIndex(topo.networks)
    guests = []
    found = False
    for g in topo.guests:
        if g.name == domain:
            found = True
            taps = {p.mac: p.tap for p in g.ports}
            ports = tuple(
                dataclasses.replace(p, tap=taps.get(p.mac))
                for p in _ports(DomainXML(xml).interfaces, index)
            )
            g = dataclasses.replace(g, ports=ports)
        guests.append(g)
    if not found:
        guests.append(GuestNode(domain, False, _ports(DomainXML(xml).interfaces, index)))
    after = dataclasses.replace(topo, guests=tuple(guests))
    return _with_guest_bridges(after)


def _ports(ifaces: Iterable[GuestInterface], index: NetworkIndex) -> tuple[GuestPort, ...]:
    out = []
    for i in ifaces:
        attach: str | None = None
        if i.type == "bridge":
            attach = i.source
        elif i.type == "network" and i.source is not None:
            net = index.by_name.get(i.source)
            attach = net.bridge if net is not None else None
        out.append(GuestPort(i.mac, i.type, i.source, index.mode_of(i.type, i.source),
                             attach, i.target))
    return tuple(out)


def _with_guest_bridges(topo: Topology) -> Topology:
    """Add a node for every bridge a guest names that the host did not show."""
    known = {b.name for b in topo.bridges}
    extra = []
    for g in topo.guests:
        for p in g.ports:
            if p.attach is not None and p.attach not in known:
                known.add(p.attach)
                extra.append(BridgeNode(p.attach, mode=p.mode, seen=False))
    return dataclasses.replace(topo, bridges=topo.bridges + tuple(extra)) if extra else topo


def build_topology(
    uri: str,
    domains: Iterable[tuple[str, bool, str]],
    networks: Iterable[Network],
    links: Mapping[str, LinkState] | None = None,
    routes: Iterable[IpRoute] = (),
) -> Topology:
    """Assemble a `Topology` from what kvmnet reads.

    Args:
        uri: the libvirt URI, for labels.
        domains: ``(name, running, xml)`` per guest; ``xml`` is what it runs with now (its
            live XML when running, else its definition).
        networks: the host's libvirt networks.
        links: the host's links by name (``read_links``); None when they were not read.
        routes: the host's routes (``read_routes``), for the default route and gateway.

    Returns:
        The topology; bridges named only by guests are marked ``seen=False``.
    """
    nets = tuple(networks)
    index = NetworkIndex(nets)
    by_bridge = {n.bridge: n for n in nets if n.bridge}
    routes = tuple(routes)
    default = next((r for r in routes if r.dst == "default" and r.family == 4), None)
    default = default or next((r for r in routes if r.dst == "default"), None)
    gateway = default.gateway if default is not None else None
    uplink = default.dev if default is not None else None
    link_map = dict(links or {})
    taps = {name for name, link in link_map.items() if link.kind in _PLUMBING_KINDS}

    bridges: dict[str, BridgeNode] = {}
    for name, link in link_map.items():
        if link.is_bridge:
            net = by_bridge.get(name)
            bridges[name] = BridgeNode(
                name,
                network=net.name if net else None,
                mode=net.mode if net else Mode.BRIDGED,
                subnet=net.subnet if net else None,
                ports=tuple(p for p in link.ports if p not in taps),
                addresses=_cidrs(link.addresses),
                default_route=name == uplink,
            )
    for net in nets:
        if net.bridge and net.bridge not in bridges:
            bridges[net.bridge] = BridgeNode(
                net.bridge, network=net.name, mode=net.mode, subnet=net.subnet,
                addresses=net.addresses, seen=links is None and net.active,
            )
    nics = tuple(
        NicNode(
            name, link.mac, link.kind, link.master, _cidrs(link.addresses),
            up=link.admin_up, default_route=name == uplink,
        )
        for name, link in link_map.items()
        if not link.is_bridge and name != "lo" and name not in taps
        and not name.startswith(("virbr", "vnet"))
    )
    guests = tuple(
        GuestNode(name, running, _ports(DomainXML(xml).interfaces, index))
        for name, running, xml in domains
    )
    topo = Topology(
        uri=uri,
        guests=guests,
        bridges=tuple(bridges.values()),
        nics=nics,
        networks=nets,
        gateway=gateway,
        host_read=links is not None,
    )
    return _with_guest_bridges(topo)


def _cidrs(addresses: Iterable[IpAddress]) -> tuple[str, ...]:
    return tuple(a.cidr for a in addresses if a.scope == "global")

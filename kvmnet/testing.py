"""Test worlds for code that embeds kvmnet: libvirt's test driver, no daemon, no root.

libvirt's ``test:///ABS/PATH.xml`` driver reads a ``<node>`` file holding domains and networks
and gives every new connection a fresh copy of that world; nothing persists past the process.
This module builds such files from small frozen specs::

    from kvmnet.testing import Guest, Nic, World

    world = World(guests=(Guest("web1", nics=(Nic.network("default"),)),))
    uri = world.write(tmp_path)              # "test:///.../world.xml"
    with kvmnet.connect(uri) as host:
        host.domain("web1").use_bridge("br0")

``World()`` alone has the networks most tests want (`DEFAULT_NETWORKS`): a NAT
``default`` on virbr0, a forward-mode-bridge network ``lan`` on br0, an isolated ``isolated``
and a routed ``routed`` network. Guests are running unless ``running=False``.

Note the test driver's own habits: it lower-cases MACs, adds ``<target dev='testnetN'/>``,
drops comments, and cannot change a running guest (no updateDevice/attach/detach).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

# The host side's fakes, here too so that one import gives an embedder everything:
# RecordingRunner executes nothing and records; fake_host describes links and routes.
from .hostnet.fake import fake_host
from .hostnet.runners.runner import RecordingRunner

__all__ = [
    "DEFAULT_NETWORKS",
    "Guest",
    "NetSpec",
    "Nic",
    "RecordingRunner",
    "World",
    "bridge_network",
    "domain_xml",
    "fake_host",
    "isolated_network",
    "nat_network",
    "network_xml",
    "routed_network",
    "world_uri",
]

#: Pass as ``Nic(mac=...)`` to let the world pick a deterministic MAC (the default).
AUTO = "auto"

_TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
_UUID_NS = uuid.UUID("6b766d6e-6574-4b76-9d6e-657474657374")
# libvirt's test driver: virDomainState 5 is VIR_DOMAIN_SHUTOFF.
_SHUTOFF = 5


@dataclass(frozen=True)
class Nic:
    """One guest interface, as a test-driver domain gets it.

    Attributes:
        type: libvirt's interface type: ``"network"``, ``"bridge"``, ``"direct"``...
        source: the network, bridge or host NIC it is attached to.
        mac: the MAC; ``AUTO`` picks ``52:54:00:fe:GG:NN`` (guest, NIC index), None writes no
            ``<mac>`` (the driver then invents a random one).
        model: the NIC model (None: no ``<model>``).
        mode: ``<source mode=...>`` for ``type='direct'``.
        extra: raw XML placed inside ``<interface>`` after ``<model>`` (e.g.
            ``"<link state='up'/>"``).
    """

    type: str = "network"
    source: str | None = "default"
    mac: str | None = AUTO
    model: str | None = "virtio"
    mode: str | None = None  # <source mode=...> for type='direct'
    extra: str = ""

    @classmethod
    def network(
        cls,
        name: str = "default",
        *,
        mac: str | None = AUTO,
        model: str | None = "virtio",
        extra: str = "",
    ) -> Nic:
        """``<interface type='network'>`` on libvirt network ``name``.

        Args:
            name: the libvirt network.
            mac: the MAC; `AUTO` picks ``52:54:00:fe:GG:NN`` (guest, NIC index), None writes no
                ``<mac>``.
            model: the NIC model (None: no ``<model>``).
            extra: raw XML placed inside ``<interface>`` after ``<model>``.

        Returns:
            The `Nic`.
        """
        return cls("network", name, mac, model, None, extra)

    @classmethod
    def bridge(
        cls,
        name: str = "br0",
        *,
        mac: str | None = AUTO,
        model: str | None = "virtio",
        extra: str = "",
    ) -> Nic:
        """``<interface type='bridge'>`` on host bridge ``name``.

        Args:
            name: the host bridge.
            mac: the MAC; `AUTO` picks ``52:54:00:fe:GG:NN`` (guest, NIC index), None writes no
                ``<mac>``.
            model: the NIC model (None: no ``<model>``).
            extra: raw XML placed inside ``<interface>`` after ``<model>``.

        Returns:
            The `Nic`.
        """
        return cls("bridge", name, mac, model, None, extra)

    @classmethod
    def direct(
        cls,
        dev: str = "eth0",
        *,
        mode: str = "bridge",
        mac: str | None = AUTO,
        model: str | None = "virtio",
        extra: str = "",
    ) -> Nic:
        """``<interface type='direct'>`` (macvtap) on host NIC ``dev``.

        Args:
            dev: the host NIC.
            mode: the macvtap mode (``"bridge"``, ``"vepa"``, ``"private"``, ``"passthrough"``).
            mac: the MAC; `AUTO` picks ``52:54:00:fe:GG:NN`` (guest, NIC index), None writes no
                ``<mac>``.
            model: the NIC model (None: no ``<model>``).
            extra: raw XML placed inside ``<interface>`` after ``<model>``.

        Returns:
            The `Nic`.
        """
        return cls("direct", dev, mac, model, mode, extra)


@dataclass(frozen=True)
class Guest:
    """One test-driver domain.

    Attributes:
        name: the domain's name.
        nics: its interfaces, in order.
        running: False: the guest is shut off.
        extra_devices: raw XML added inside ``<devices>``.
        memory_kib: its memory, in KiB.
        uuid: its UUID; None derives one from the name, the same in every world.
    """

    name: str
    nics: tuple[Nic, ...] = (Nic(),)
    running: bool = True
    extra_devices: str = ""
    memory_kib: int = 65536
    uuid: str | None = None  # None: derived from the name, the same in every world


@dataclass(frozen=True)
class NetSpec:
    """One libvirt network.

    Attributes:
        name: the network's name.
        bridge: the bridge it runs on.
        forward: libvirt's forward mode (``"nat"``, ``"bridge"``, ``"route"``...), None for
            isolated.
        subnet: the host's address and prefix on it, ``"192.168.122.1/24"``.
        dhcp: serve DHCP on the subnet.
        reservations: ``(mac, ip)`` DHCP host entries; they need ``subnet`` and DHCP.
        bridge_mac: the MAC of the network's bridge.
    """

    name: str
    bridge: str | None
    forward: str | None = "nat"
    subnet: str | None = None  # "192.168.122.1/24": the host's address and prefix
    dhcp: bool = True
    reservations: tuple[tuple[str, str], ...] = ()
    bridge_mac: str | None = None


def nat_network(
    name: str = "default",
    bridge: str = "virbr0",
    subnet: str = "192.168.122.1/24",
    *,
    reservations: Sequence[tuple[str, str]] = (),
) -> NetSpec:
    """libvirt's classic NAT network (the ``default`` of every install).

    Args:
        name: the network's name.
        bridge: its bridge.
        subnet: the host's address and prefix on it.
        reservations: ``(mac, ip)`` DHCP host entries.

    Returns:
        The `NetSpec`.
    """
    return NetSpec(name, bridge, "nat", subnet, True, tuple(reservations), "52:54:00:0a:0b:0c")


def bridge_network(name: str = "lan", bridge: str = "br0") -> NetSpec:
    """``<forward mode='bridge'/>`` over an existing host bridge: guests are on the LAN.

    Args:
        name: the network's name.
        bridge: the host bridge it points at.

    Returns:
        The `NetSpec`.
    """
    return NetSpec(name, bridge, "bridge", None, False)


def isolated_network(
    name: str = "isolated", bridge: str = "virbr2", subnet: str = "10.20.0.1/24"
) -> NetSpec:
    """No ``<forward>``: guests see each other and the host only.

    Args:
        name: the network's name.
        bridge: its bridge.
        subnet: the host's address and prefix on it.

    Returns:
        The `NetSpec`.
    """
    return NetSpec(name, bridge, None, subnet, True)


def routed_network(
    name: str = "routed", bridge: str = "virbr3", subnet: str = "10.30.0.1/24"
) -> NetSpec:
    """``<forward mode='route'/>``: routed, not masqueraded.

    Args:
        name: the network's name.
        bridge: its bridge.
        subnet: the host's address and prefix on it.

    Returns:
        The `NetSpec`.
    """
    return NetSpec(name, bridge, "route", subnet, True)


DEFAULT_NETWORKS: tuple[NetSpec, ...] = (
    nat_network(),
    bridge_network(),
    isolated_network(),
    routed_network(),
)


def _attr(value: str) -> str:
    return quoteattr(value)


def _nic_xml(nic: Nic, mac: str | None, indent: str) -> str:
    inner = f"{indent}  "
    lines = [f"{indent}<interface type={_attr(nic.type)}>"]
    if mac is not None:
        lines.append(f"{inner}<mac address={_attr(mac)}/>")
    if nic.source is not None:
        key = {"network": "network", "bridge": "bridge", "direct": "dev"}.get(nic.type)
        if key is not None:
            mode = f" mode={_attr(nic.mode)}" if nic.mode else ""
            lines.append(f"{inner}<source {key}={_attr(nic.source)}{mode}/>")
    if nic.model is not None:
        lines.append(f"{inner}<model type={_attr(nic.model)}/>")
    if nic.extra:
        lines.append(f"{inner}{nic.extra}")
    lines.append(f"{indent}</interface>")
    return "\n".join(lines)


def _auto_mac(guest_index: int, nic_index: int) -> str:
    return f"52:54:00:fe:{guest_index % 256:02x}:{nic_index % 256:02x}"


def domain_xml(guest: Guest, *, index: int = 0, in_node: bool = False) -> str:
    """One domain's XML (type 'test').

    Args:
        guest: the guest to describe.
        index: the guest's position in its world: seeds the AUTO MACs.
        in_node: for a ``<node>`` file: a shut-off guest then carries
            ``<test:runstate>5</test:runstate>``, which only a node file understands;
            without it that element is left out (``defineXML`` makes a shut-off domain
            anyway).

    Returns:
        The domain XML.
    """
    devices = [
        _nic_xml(nic, _auto_mac(index, i) if nic.mac == AUTO else nic.mac, "    ")
        for i, nic in enumerate(guest.nics)
    ]
    if guest.extra_devices:
        devices.append(f"    {guest.extra_devices}")
    shutoff = in_node and not guest.running
    ns = f" xmlns:test={_attr(_TEST_NS)}" if shutoff else ""
    parts = [
        f"<domain type='test'{ns}>",
        f"  <name>{_escape(guest.name)}</name>",
        f"  <uuid>{guest.uuid or uuid.uuid5(_UUID_NS, guest.name)}</uuid>",
        f"  <memory unit='KiB'>{guest.memory_kib}</memory>",
        "  <os>",
        "    <type>hvm</type>",
        "  </os>",
        "  <devices>",
        *devices,
        "  </devices>",
    ]
    if shutoff:
        parts.append(f"  <test:runstate>{_SHUTOFF}</test:runstate>")
    parts.append("</domain>")
    return "\n".join(parts) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def network_xml(net: NetSpec) -> str:
    """One network's XML, as libvirt's ``net-define`` takes it.

    Args:
        net: the network to describe.

    Returns:
        The network XML.
    """
    lines = ["<network>", f"  <name>{_escape(net.name)}</name>"]
    if net.forward is not None:
        lines.append(f"  <forward mode={_attr(net.forward)}/>")
    if net.bridge is not None:
        lines.append(f"  <bridge name={_attr(net.bridge)}/>")
    if net.bridge_mac is not None and net.forward != "bridge":
        lines.append(f"  <mac address={_attr(net.bridge_mac)}/>")
    if net.subnet is not None:
        address, _, prefix = net.subnet.partition("/")
        lines.append(f"  <ip address={_attr(address)} prefix={_attr(prefix or '24')}>")
        if net.dhcp:
            lines.append("    <dhcp>")
            start, end = _dhcp_range(address)
            lines.append(f"      <range start={_attr(start)} end={_attr(end)}/>")
            for mac, ip in net.reservations:
                lines.append(f"      <host mac={_attr(mac)} ip={_attr(ip)}/>")
            lines.append("    </dhcp>")
        lines.append("  </ip>")
    lines.append("</network>")
    return "\n".join(lines) + "\n"


def _dhcp_range(address: str) -> tuple[str, str]:
    # Worlds use /24 subnets; the range is .2-.254 like libvirt's default network.
    base = address.rsplit(".", 1)[0]
    return f"{base}.2", f"{base}.254"


@dataclass(frozen=True)
class World:
    """Guests and networks for one test-driver file; `write` returns its URI.

    Attributes:
        guests: the domains.
        networks: the libvirt networks (default: `DEFAULT_NETWORKS`).
    """

    guests: tuple[Guest, ...] = ()
    networks: tuple[NetSpec, ...] = field(default=DEFAULT_NETWORKS)

    def to_xml(self) -> str:
        """The ``<node>`` document.

        Returns:
            The XML text libvirt's test driver reads.
        """
        body = [_indent(domain_xml(g, index=i, in_node=True)) for i, g in enumerate(self.guests)]
        body += [_indent(network_xml(n)) for n in self.networks]
        return "<node>\n" + "".join(body) + "</node>\n"

    def write(
        self, directory: str | os.PathLike[str] | None = None, *, name: str = "world.xml"
    ) -> str:
        """Write the node file (atomically) into ``directory``.

        Args:
            directory: where (default: a new temporary directory).
            name: the file's name.

        Returns:
            The ``test:///ABS/PATH.xml`` URI; every connection to it starts from this world
            afresh.
        """
        folder = Path(directory) if directory is not None else Path(tempfile.mkdtemp("-kvmnet"))
        folder.mkdir(parents=True, exist_ok=True)
        path = (folder / name).resolve()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_xml())
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return f"test://{path}"


def _indent(xml: str) -> str:
    return "".join(f"  {line}\n" if line else "\n" for line in xml.splitlines())


def world_uri(
    directory: str | os.PathLike[str] | None,
    *guests: Guest,
    networks: Sequence[NetSpec] = DEFAULT_NETWORKS,
) -> str:
    """Shorthand: ``world_uri(tmp_path, Guest("a"), Guest("b", running=False))``.

    Args:
        directory: where the node file goes (None: a new temporary directory).
        *guests: the domains.
        networks: the libvirt networks.

    Returns:
        The ``test:///ABS/PATH.xml`` URI.
    """
    return World(tuple(guests), tuple(networks)).write(directory)

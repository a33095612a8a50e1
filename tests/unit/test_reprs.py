"""Jupyter and prompt representations of the guest-side values."""

from __future__ import annotations

from pathlib import Path

import kvmnet
from kvmnet.testing import Guest, NetSpec, Nic, nat_network, world_uri


def test_network_html_shows_its_facts_escaped(tmp_path: Path) -> None:
    odd = NetSpec("lab<1>", bridge="virbr9", forward="route", subnet="10.9.0.1/24")
    uri = world_uri(tmp_path, networks=(nat_network(), odd))
    with kvmnet.connect(uri) as host:
        nets = {n.name: n for n in host.networks()}
    html = nets["lab<1>"]._repr_html_()
    assert "lab&lt;1&gt;" in html and "lab<1>" not in html
    assert "virbr9" in html and "10.9.0.0/24" in html
    assert ">routed<" in html
    assert ">nat<" in nets["default"]._repr_html_()


def test_guest_interface_html_and_repr(tmp_path: Path) -> None:
    mac = "52:54:00:12:34:56"
    uri = world_uri(tmp_path, Guest("web1", nics=(Nic.bridge("br0", mac=mac),)))
    with kvmnet.connect(uri) as host:
        (iface,) = host.domain("web1").interfaces
    assert mac in iface._repr_html_()
    assert ">bridged<" in iface._repr_html_()
    assert repr(iface).startswith("<GuestInterface #0 52:54:00:12:34:56 bridge 'br0' bridged")


def test_interfaces_are_a_tuple_that_jupyter_shows_as_a_table(tmp_path: Path) -> None:
    nics = (Nic.network("default"), Nic.bridge("br0", mac="52:54:00:12:34:57"))
    uri = world_uri(tmp_path, Guest("web1", nics=nics))
    with kvmnet.connect(uri) as host:
        ifaces = host.domain("web1").interfaces
    assert isinstance(ifaces, tuple) and len(ifaces) == 2
    assert ifaces == tuple(ifaces)
    html = ifaces._repr_html_()
    assert html.count("<tr>") == 3  # header + one row per interface
    assert "52:54:00:12:34:57" in html and ">nat<" in html and ">bridged<" in html

"""The test bed proves itself: a real libvirtd, isolated from the machine, torn down cleanly.

These use only virsh and iproute2, so a failure here is the harness, not kvmnet.
"""

from __future__ import annotations

import pytest

from .lab_host import netns_pids, run
from .libvirt_lab import LabFactory, LibvirtLab

pytestmark = [pytest.mark.integration, pytest.mark.root("starts libvirtd in a namespace")]


def test_lab_has_nat_network_and_bridge_inside_its_namespace(lab: LibvirtLab) -> None:
    addrs = lab.run(["ip", "-br", "addr"]).stdout
    assert "192.168.122.1/24" in addrs
    assert "br0" in addrs
    # libvirt's NAT rules live in the namespace's own netfilter tables...
    assert "MASQUERADE" in lab.run(["iptables", "-t", "nat", "-S"]).stdout
    # ...and none of the lab's links exist on the machine itself.
    host_links = run(["ip", "-br", "link"]).stdout.split()
    assert "virbr0" not in host_links


def test_guest_tap_is_a_port_of_the_network_bridge(lab: LibvirtLab) -> None:
    lab.define_guest("kvl-selftest", network="default", mac="52:54:00:7e:00:01")
    tap = lab.tap_of("kvl-selftest", "52:54:00:7e:00:01")
    assert lab.bridge_ports()[tap] == "virbr0"
    assert lab.nics("kvl-selftest", inactive=True)[0].source == "default"


def test_factory_starts_an_independent_second_daemon_and_removes_it(
    lab_factory: LabFactory, lab: LibvirtLab
) -> None:
    second = lab_factory.start(default_network=False, bridge=None)
    second.define_guest("kvl-other", bridge=None, network=None, start=False)
    assert second.uri != lab.uri
    assert "kvl-other" in second.virsh("list", "--all", "--name").split()
    assert "kvl-other" not in lab.virsh("list", "--all", "--name").split()
    pid = second.process.pid
    second.stop()
    assert second.netns not in run(["ip", "netns", "list"]).stdout
    assert not second.state_dir.exists()
    assert pid not in netns_pids(lab.netns)
    assert second.process.poll() is not None

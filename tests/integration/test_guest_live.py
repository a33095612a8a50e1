"""kvmnet against a real libvirtd and running QEMU guests (issue 2).

Each check reads the truth without kvmnet: the bridge a guest's tap is a port of comes from
``bridge -j link`` inside the lab's namespace, and the live and persistent XML from virsh.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

import kvmnet

from .lab_host import wait_for
from .libvirt_lab import LabFactory, LibvirtLab, Nic
from .tiny_guest import leases

pytestmark = [pytest.mark.integration, pytest.mark.root("starts libvirtd in a namespace")]

MAC = "52:54:00:7e:01:01"


@pytest.fixture
def host(lab: LibvirtLab) -> Iterator[kvmnet.Host]:
    with kvmnet.connect(lab.uri) as host:
        yield host


def the_nic(nics: list[Nic], mac: str) -> Nic:
    return next(n for n in nics if n.mac == mac)


def assert_live_matches_persistent(lab: LibvirtLab, name: str) -> None:
    live = [(n.mac, n.type, n.source) for n in lab.nics(name)]
    persistent = [(n.mac, n.type, n.source) for n in lab.nics(name, inactive=True)]
    assert live == persistent


def test_running_guest_moves_nat_to_bridge_and_back_with_the_same_tap(
    lab: LibvirtLab, host: kvmnet.Host
) -> None:
    lab.define_guest("kvl-switch", network="default", mac=MAC)
    tap = lab.tap_of("kvl-switch", MAC)
    assert lab.bridge_ports()[tap] == "virbr0"
    dom = host.domain("kvl-switch")
    device = the_nic(lab.nics("kvl-switch"), MAC)

    change = dom.use_bridge("br0")

    assert change.applied_live and change.applied_config
    assert lab.bridge_ports()[tap] == "br0"  # the same tap, now a port of br0
    moved = the_nic(lab.nics("kvl-switch"), MAC)
    assert moved == Nic(MAC, "bridge", "br0", tap)
    # Updated in place, not unplugged and plugged again: same device alias, same PCI slot.
    assert (moved.alias, moved.pci_slot) == (device.alias, device.pci_slot)
    assert device.alias is not None and device.pci_slot is not None
    assert_live_matches_persistent(lab, "kvl-switch")
    assert "br0" in change.diff()
    iface = host.domain("kvl-switch").interfaces[0]
    assert (iface.mac, iface.source, iface.mode) == (MAC, "br0", kvmnet.Mode.BRIDGED)

    dom.use_nat("default")

    assert lab.bridge_ports()[tap] == "virbr0"
    assert the_nic(lab.nics("kvl-switch"), MAC) == Nic(MAC, "network", "default", tap)
    assert_live_matches_persistent(lab, "kvl-switch")
    iface = host.domain("kvl-switch").interfaces[0]
    assert (iface.mac, iface.source, iface.mode) == (MAC, "default", kvmnet.Mode.NAT)


def test_interfaces_of_the_same_domain_object_follow_its_own_edits(
    lab: LibvirtLab, host: kvmnet.Host
) -> None:
    lab.define_guest("kvl-follow", network="default", mac=MAC)
    dom = host.domain("kvl-follow")
    dom.use_bridge("br0")
    assert [i.source for i in dom.interfaces] == ["br0"]


def test_dry_run_changes_neither_the_running_guest_nor_its_definition(
    lab: LibvirtLab, host: kvmnet.Host
) -> None:
    lab.define_guest("kvl-dry", network="default", mac=MAC)
    tap = lab.tap_of("kvl-dry", MAC)
    before = (lab.domain_xml("kvl-dry"), lab.domain_xml("kvl-dry", inactive=True))

    change = host.domain("kvl-dry").use_bridge("br0", dry_run=True)

    assert "br0" in change.diff()
    assert lab.bridge_ports()[tap] == "virbr0"
    assert (lab.domain_xml("kvl-dry"), lab.domain_xml("kvl-dry", inactive=True)) == before


def test_next_boot_only_switch_leaves_the_running_guest_on_nat(
    lab: LibvirtLab, host: kvmnet.Host
) -> None:
    lab.define_guest("kvl-config", network="default", mac=MAC)
    tap = lab.tap_of("kvl-config", MAC)

    host.domain("kvl-config").use_bridge("br0", live=False)

    assert lab.bridge_ports()[tap] == "virbr0"
    assert lab.nics("kvl-config")[0].source == "default"
    assert lab.nics("kvl-config", inactive=True)[0] == Nic(MAC, "bridge", "br0", None)


def test_add_and_remove_a_nic_on_a_running_guest(lab: LibvirtLab, host: kvmnet.Host) -> None:
    # A real kernel, because unplugging a PCI NIC needs the guest to acknowledge it (ACPI).
    lab.define_guest("kvl-hotplug", network="default", mac=MAC, kernel_boot=True)
    wait_for(lambda: "TINYGUEST eth0" in lab.serial_log("kvl-hotplug"), timeout=120,
             what="the tiny guest's kernel to come up")
    dom = host.domain("kvl-hotplug")

    dom.add_interface(bridge="br0")

    live = lab.nics("kvl-hotplug")
    assert len(live) == 2
    added = live[1]
    assert added.mac != MAC and added.mac.startswith("52:54:00:")
    assert (added.type, added.source) == ("bridge", "br0")
    assert added.target is not None and lab.bridge_ports()[added.target] == "br0"
    assert_live_matches_persistent(lab, "kvl-hotplug")

    dom.remove_interface(added.mac)

    # The unplug completes when the guest has released the device.
    wait_for(lambda: len(lab.nics("kvl-hotplug")) == 1, timeout=30, what="the NIC to unplug")
    assert [n.mac for n in lab.nics("kvl-hotplug", inactive=True)] == [MAC]
    assert added.target not in lab.bridge_ports()
    assert_live_matches_persistent(lab, "kvl-hotplug")
    # The guest itself kept its first NIC and its lease all along.
    wait_for(lambda: leases(lab.serial_log("kvl-hotplug")) or None, timeout=60,
             what="the guest's lease on its first NIC")


def test_a_next_boot_only_nic_of_a_running_guest_is_edited_by_its_mac(
    lab: LibvirtLab, host: kvmnet.Host
) -> None:
    lab.define_guest("kvl-nextboot", network="default", mac=MAC)
    dom = host.domain("kvl-nextboot")
    extra = "52:54:00:7e:01:02"
    dom.add_interface(bridge="br0", mac=extra, live=False)
    assert [n.mac for n in lab.nics("kvl-nextboot")] == [MAC]

    with pytest.raises(kvmnet.LiveChangeUnsupported, match="persistent definition only"):
        dom.use_nat("default", extra, live=True)
    change = dom.use_nat("default", extra)

    assert change.applied_config and not change.applied_live
    assert lab.nics("kvl-nextboot", inactive=True)[1] == Nic(extra, "network", "default", None)
    dom.remove_interface(extra)
    assert [n.mac for n in lab.nics("kvl-nextboot", inactive=True)] == [MAC]
    assert [n.mac for n in lab.nics("kvl-nextboot")] == [MAC]


def test_a_nic_plugged_into_the_running_guest_only_is_a_taken_mac(
    lab: LibvirtLab, host: kvmnet.Host
) -> None:
    lab.define_guest("kvl-liveonly", network="default", mac=MAC)
    hot = "52:54:00:7e:01:99"
    lab.virsh("attach-interface", "kvl-liveonly", "bridge", "br0", "--mac", hot, "--live")
    assert hot in [n.mac for n in lab.nics("kvl-liveonly")]
    assert hot not in [n.mac for n in lab.nics("kvl-liveonly", inactive=True)]

    alloc = kvmnet.MacAllocator([host])

    with pytest.raises(kvmnet.MacInUse, match="kvl-liveonly"):
        alloc.reserve(hot)
    assert alloc.allocate() not in {hot, MAC}


def test_macs_of_two_real_hosts_are_all_taken_for_the_allocator(
    lab_factory: LabFactory, lab: LibvirtLab, host: kvmnet.Host
) -> None:
    other_lab = lab_factory.start(default_network=False, bridge="br0")
    try:
        lab.define_guest("kvl-mac-a", network="default", mac=MAC)
        other_lab.define_guest("kvl-mac-b", bridge="br0", mac="52:54:00:7e:01:02", start=False)
        with kvmnet.connect(other_lab.uri) as other:
            alloc = kvmnet.MacAllocator([host, other])
            with pytest.raises(kvmnet.MacInUse, match="kvl-mac-a"):
                alloc.reserve(MAC)
            with pytest.raises(kvmnet.MacInUse, match="kvl-mac-b"):
                alloc.reserve("52:54:00:7e:01:02")
            fresh = alloc.allocate()
            assert fresh not in {MAC, "52:54:00:7e:01:02"}
            assert alloc.reserve("52:54:00:7e:01:03") == "52:54:00:7e:01:03"
    finally:
        other_lab.stop()


def test_macvtap_nic_of_a_running_guest_is_refused_live_and_left_alone(
    lab: LibvirtLab, host: kvmnet.Host
) -> None:
    # macvtap needs a lower link; a veth pair inside the lab's namespace is one.
    lab.run(["ip", "link", "add", "kvldir0", "type", "veth", "peer", "name", "kvldir1"])
    try:
        lab.run(["ip", "link", "set", "kvldir0", "up"])
        lab.define_guest("kvl-direct", direct="kvldir0", mac=MAC)
        before = (lab.domain_xml("kvl-direct"), lab.domain_xml("kvl-direct", inactive=True))

        with pytest.raises(kvmnet.LiveChangeUnsupported, match="live=False"):
            host.domain("kvl-direct").use_bridge("br0")

        assert (lab.domain_xml("kvl-direct"), lab.domain_xml("kvl-direct", inactive=True)) == before
        # For the next boot only, it is allowed.
        host.domain("kvl-direct").use_bridge("br0", live=False)
        assert lab.nics("kvl-direct", inactive=True)[0] == Nic(MAC, "bridge", "br0", None)
        assert lab.nics("kvl-direct")[0].type == "direct"
    finally:
        lab.destroy_guests()
        lab.run(["ip", "link", "del", "kvldir0"], check=False)


def kvmnet_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvmnet", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_command_line_moves_a_running_guest_and_back(lab: LibvirtLab) -> None:
    lab.define_guest("kvl-cli", network="default", mac=MAC)
    tap = lab.tap_of("kvl-cli", MAC)

    done = kvmnet_cli("-c", lab.uri, "bridge", "kvl-cli", "br0")

    assert done.returncode == 0, done.stderr
    assert lab.bridge_ports()[tap] == "br0"
    assert_live_matches_persistent(lab, "kvl-cli")
    # virsh's "--live --config" is kvmnet's --live: the running guest and its definition.
    done = kvmnet_cli("-c", lab.uri, "nat", "kvl-cli", "--live", "--config", "--json")
    assert done.returncode == 0, done.stderr
    change = json.loads(done.stdout)
    assert change["applied_live"] and change["applied_config"]
    assert lab.bridge_ports()[tap] == "virbr0"
    assert_live_matches_persistent(lab, "kvl-cli")


def test_the_command_line_refuses_live_on_a_guest_that_is_off(lab: LibvirtLab) -> None:
    lab.define_guest("kvl-cli-off", network="default", mac=MAC, start=False)
    before = lab.domain_xml("kvl-cli-off", inactive=True)

    refused = kvmnet_cli("-c", lab.uri, "bridge", "kvl-cli-off", "br0", "--live")

    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1 and "kvl-cli-off" in refused.stderr
    assert lab.domain_xml("kvl-cli-off", inactive=True) == before

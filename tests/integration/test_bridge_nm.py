"""nmcli backend for real: NetworkManager confined to a lab host namespace on a private D-Bus
(tests/lab/nm.py); the NIC gets its address by DHCP through an NM profile from the LAN's
dnsmasq, then kvmnet bridges it through the shared apply mechanism."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace

import pytest

from kvmnet.backends import NmcliBackend
from kvmnet.errors import RolledBack
from kvmnet.hostnet.backends.nmcli import profile_uuid
from kvmnet.hostnet.model.plan import Check
from kvmnet.hostnet.nic import Bridge, HostNic
from tests.lab import Lan, default_devs, wait_for
from tests.lab.nm import NetworkManagerLab

pytestmark = [
    pytest.mark.root("network namespaces, a private D-Bus and NetworkManager"),
    pytest.mark.integration,
]


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan("kvf") as lan:
        yield lan


@pytest.fixture
def nm(lan: Lan) -> Iterator[NetworkManagerLab]:
    host = lan.add_host(mac=f"52:54:00:cc:00:{len(lan.hosts) + 1:02x}")
    with NetworkManagerLab(host) as nm:
        nm.nmcli("connection", "add", "type", "ethernet", "con-name", "uplink",
                 "ifname", host.nic, "ipv4.method", "auto", "ipv6.method", "disabled")  # fmt: skip
        nm.nmcli("connection", "up", "uplink")
        yield nm


def objects(nm: NetworkManagerLab) -> tuple[HostNic, Bridge]:
    backend = NmcliBackend(netns=nm.host.ns, bus_address=nm.bus_address)
    return HostNic(nm.host.nic, backend=backend), Bridge("br0", backend=backend)


def profiles(nm: NetworkManagerLab) -> dict[str, str]:
    out = nm.nmcli("-t", "-f", "NAME,DEVICE", "connection", "show")
    return dict(line.rsplit(":", 1) for line in out.splitlines())


def test_classic_scenario_bridged_by_networkmanager(lan: Lan, nm: NetworkManagerLab) -> None:
    host = nm.host
    address = host.address
    assert host.addresses(host.nic) == [f"{address}/24"]
    # The classic trap: a br0 left over from an earlier attempt, with a stale address.
    host.ip("link", "add", "br0", "type", "bridge")
    host.ip("addr", "add", "192.168.0.1/24", "dev", "br0")
    host.ip("link", "set", "br0", "up")
    nic, br = objects(nm)

    plan = br.enslave(nic)

    assert ("ip", "addr", "del", "192.168.0.1/24", "dev", "br0") in plan.commands
    assert host.addresses("br0") == [f"{address}/24"], "same lease, stale address gone"
    assert br.mac == host.mac and nic.master == "br0"
    assert host.addresses(host.nic) == []
    assert default_devs(host) == ["br0"]
    # STP off. (The forward delay of a bridge NM did not create stays at the kernel's 15 s in
    # this lab: NM sets it through /sys, read-only here. With STP off it is never used.)
    assert br.stp is False
    assert lan.ping(address), "the LAN reaches the host through br0"
    names = profiles(nm)
    assert names["br0"] == "br0" and names[f"br0-port-{host.nic}"] == host.nic
    assert "uplink" in names, "the old profile is kept for rollback"
    kf = nm.nmcli("-t", "-f", "bridge.stp,bridge.forward-delay,bridge.mac-address",
                  "connection", "show", "uuid", profile_uuid("bridge", "br0"))  # fmt: skip
    assert kf.split() == ["bridge.stp:no", "bridge.forward-delay:0",
                          f"bridge.mac-address:{host.mac.upper()}"]  # fmt: skip


def test_failed_verification_rolls_back_to_the_old_profile(lan: Lan, nm: NetworkManagerLab) -> None:
    host = nm.host
    address = host.address
    nic, br = objects(nm)
    plan = br.enslave(nic, dry_run=True)
    # A gateway that never answers: verification fails after the switch.
    broken = replace(
        plan, checks=(*plan.checks, Check("gateway-answers", "br0", f"{lan.subnet}.250"))
    )
    with pytest.raises(RolledBack):
        broken.apply(retries=2, retry_interval=0.2)
    names = profiles(nm)
    assert "br0" not in names and f"br0-port-{host.nic}" not in names
    assert names["uplink"] == host.nic
    assert host.addresses(host.nic) == [f"{address}/24"]
    assert "br0" not in json.dumps(json.loads(host.ip("-j", "link", "show")))
    assert default_devs(host) == [host.nic]
    assert lan.ping(address)


def test_fresh_bridge_gets_the_same_lease(lan: Lan, nm: NetworkManagerLab) -> None:
    host = nm.host
    address = host.address
    nic, br = objects(nm)
    br.enslave(nic)
    assert host.addresses("br0") == [f"{address}/24"] and br.mac == host.mac
    assert default_devs(host) == ["br0"]
    # STP off. NM writes the forward delay through /sys, which this lab must keep read-only
    # (else NM waits for udev): the kernel's 15 s stays, and with STP off it is never used.
    assert br.stp is False
    assert lan.ping(address)


def test_keyfiles_written_then_activated(lan: Lan, nm: NetworkManagerLab) -> None:
    """The keyfile way: files in NM's keyfile folder, ``nmcli connection reload`` + ``up``."""
    host = nm.host
    address = host.address
    uplink = nm.nmcli("-t", "-f", "connection.uuid", "connection", "show", "uplink").split(":")[1]
    backend = NmcliBackend(netns=host.ns, bus_address=nm.bus_address, keyfiles=True,
                           keyfile_dir=str(nm.keyfiles))  # fmt: skip
    plan = Bridge("br0", backend=backend).enslave(HostNic(host.nic, backend=backend))
    written = sorted(os.path.basename(p) for p in plan.files)
    assert written == [f"kvmnet-br0-port-{host.nic}.nmconnection", "kvmnet-br0.nmconnection"]
    for name in written:
        assert (nm.keyfiles / name).stat().st_mode & 0o777 == 0o600
    assert host.addresses("br0") == [f"{address}/24"] and lan.ping(address)
    # `nmcli connection add` saved uplink as a keyfile there: its IP settings were moved.
    assert "method=auto" in (nm.keyfiles / "kvmnet-br0.nmconnection").read_text()
    assert uplink.strip() in nm.nmcli("-t", "-f", "UUID", "connection", "show")


def test_release_brings_the_old_profile_back(lan: Lan, nm: NetworkManagerLab) -> None:
    host = nm.host
    address = host.address
    nic, br = objects(nm)
    br.enslave(nic)
    br.release(nic)
    names = profiles(nm)
    assert "br0" not in names and f"br0-port-{host.nic}" not in names
    assert names["uplink"] == host.nic
    assert host.addresses(host.nic) == [f"{address}/24"]
    assert "br0" not in host.ip("-br", "link")
    assert default_devs(host) == [host.nic]
    assert lan.ping(address)


def handmade(nm: NetworkManagerLab) -> str:
    """Replace the fixture's profile by one written by hand (as netplan does): no uuid=, bound
    by a ``[match] interface-name`` glob, with link settings of its own. Returns its text."""
    host = nm.host
    nm.nmcli("connection", "delete", "uplink")
    text = (
        "[connection]\nid=handmade\ntype=ethernet\nautoconnect-priority=5\n\n"
        f"[match]\ninterface-name={host.nic[:-1]}*;\n\n"
        "[ethernet]\nmtu=1496\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=disabled\n"
    )
    path = nm.keyfiles / "handmade.nmconnection"
    path.write_text(text)
    path.chmod(0o600)
    nm.nmcli("connection", "reload")
    nm.nmcli("connection", "up", "id", "handmade")
    wait_for(lambda: bool(host.addresses(host.nic)), timeout=20, what="handmade's lease")
    return text


def keyfile_tree(nm: NetworkManagerLab) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in nm.keyfiles.iterdir()}


def test_a_handmade_profile_is_carried_rolled_back_and_released(
    lan: Lan, nm: NetworkManagerLab
) -> None:
    """Keyfiles for real: a profile without uuid=, matched by glob, with an MTU: the port keeps
    the MTU, the bridge gets the lease; a failed verification brings the profile back by its
    id; bridge + release leave the keyfile folder byte for byte as it was."""
    host = nm.host
    handmade(nm)
    address = host.address
    before = keyfile_tree(nm)
    backend = NmcliBackend(netns=host.ns, bus_address=nm.bus_address, keyfiles=True,
                           keyfile_dir=str(nm.keyfiles))  # fmt: skip
    nic, br = HostNic(host.nic, backend=backend), Bridge("br0", backend=backend)

    plan = br.enslave(nic, dry_run=True)
    assert ("nmcli", "connection", "up", "id", "handmade") in [
        getattr(s, "argv", ())[-5:] for s in plan.rollback_hints
    ]
    never = Check("gateway-answers", "br0", f"{lan.subnet}.250", "a gateway that never answers")
    with pytest.raises(RolledBack):
        replace(plan, checks=(*plan.checks, never)).apply(retries=3, retry_interval=0.3)
    wait_for(lambda: host.addresses(host.nic) == [f"{address}/24"], timeout=30,
             what="the handmade profile back on the NIC")  # fmt: skip
    assert keyfile_tree(nm) == before

    br.enslave(nic)
    assert host.addresses("br0") == [f"{address}/24"] and lan.ping(address)
    link = json.loads(host.ip("-j", "link", "show", host.nic))[0]
    assert link["master"] == "br0" and link["mtu"] == 1496
    br.release(nic)
    assert keyfile_tree(nm) == before
    wait_for(lambda: host.addresses(host.nic) == [f"{address}/24"], timeout=30,
             what="the NIC's lease back")  # fmt: skip
    assert lan.ping(address)


def test_runtime_carries_link_settings_to_the_port_and_ip_settings_to_the_bridge(
    lan: Lan, nm: NetworkManagerLab
) -> None:
    """At runtime too, the old profile's link settings (MTU, an ethtool offload) go to the
    port's profile and its IP-level ones (mDNS, a search domain) to the bridge's."""
    host = nm.host
    nm.nmcli("connection", "modify", "uplink", "802-3-ethernet.mtu", "1496",
             "ethtool.feature-tso", "off", "connection.mdns", "yes",
             "ipv4.dns-search", "example.org")  # fmt: skip
    nm.nmcli("connection", "up", "uplink")
    wait_for(lambda: bool(host.addresses(host.nic)), timeout=20, what="uplink's lease")
    address = host.address
    nic, br = objects(nm)
    br.enslave(nic)

    def prop(profile: str, name: str) -> str:
        return nm.nmcli("-t", "-f", name, "connection", "show", profile).strip().split(":", 1)[1]

    port = f"br0-port-{host.nic}"
    assert prop(port, "802-3-ethernet.mtu") == "1496"
    assert prop(port, "ethtool.feature-tso") == "off"
    assert prop("br0", "connection.mdns") == "2"  # yes
    assert prop("br0", "ipv4.dns-search") == "example.org"
    assert json.loads(host.ip("-j", "link", "show", host.nic))[0]["mtu"] == 1496
    assert host.addresses("br0") == [f"{address}/24"] and lan.ping(address)

"""Server topologies bridged for real with the iproute2 backend, in namespaces of the test's
own: a bond (two veths, active-backup) as the port; a VLAN subinterface into its own bridge
with the parent and its other VLAN untouched; IPv6 (SLAAC from the LAN's router
advertisements, a static address and an IPv6 route) moved to the bridge, re-formed there by
the RA, and restored by a rollback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmnet.backends import Iproute2Backend
from kvmnet.errors import PreflightRefused, RolledBack
from kvmnet.hostnet.model.plan import Check
from kvmnet.hostnet.nic import Bridge, HostNic
from tests.lab import Lan, run, snapshot_diff, stop_process, wait_for
from tests.lab.netns import LAN_BRIDGE

pytestmark = [pytest.mark.root("network namespaces, bonds, VLANs, dnsmasq"),
              pytest.mark.integration]


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan("kvt") as lan:
        yield lan


def _require_kind(ns: str, kind: str, config: str) -> None:
    """Skip unless this kernel can make a ``kind`` link: the machines kvmnet is built on run a
    kernel without bonding and 802.1Q (``CONFIG_BONDING``/``CONFIG_VLAN_8021Q`` not set, no
    modules), so those topologies run wherever the kernel has them and are said skipped here."""
    probe = f"probe{os.urandom(2).hex()}"
    args = ["ip", "-n", ns, "link", "add", probe, "type", kind]
    if kind == "vlan":
        _ip(ns, "link", "add", "dummyparent", "type", "veth", "peer", "name", "dummypeer")
        args = ["ip", "-n", ns, "link", "add", "link", "dummyparent", "name", probe, "type",
                "vlan", "id", "7"]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if kind == "vlan":
        _ip(ns, "link", "del", "dummyparent")
    if proc.returncode != 0:
        pytest.skip(f"this kernel cannot make a {kind} link ({config} is not set): "
                    f"{proc.stderr.strip()}")
    _ip(ns, "link", "del", probe)


def _ns(lan: Lan, name: str) -> str:
    ns = f"{lan.prefix}-{name}"
    lan._netns(ns)
    return ns


def _veth(lan: Lan, ns: str, name: str, mac: str) -> None:
    port = f"p{os.urandom(3).hex()}"
    run(["ip", "-n", ns, "link", "add", name, "address", mac, "type", "veth", "peer", "name",
         port, "netns", lan.ns])  # fmt: skip
    run(["ip", "-n", lan.ns, "link", "set", port, "master", LAN_BRIDGE])
    run(["ip", "-n", lan.ns, "link", "set", port, "up"])


def _ip(ns: str, *args: str) -> str:
    return run(["ip", "-n", ns, *args])


def _addrs(ns: str, dev: str, family: str = "-4") -> list[str]:
    data = json.loads(_ip(ns, "-j", family, "addr", "show", "dev", dev) or "[]")
    return [f"{i['local']}/{i['prefixlen']}" for e in data for i in e.get("addr_info", [])
            if i.get("scope") == "global"]


def _udhcpc(lan: Lan, ns: str, dev: str) -> None:
    argv = ["ip", "netns", "exec", ns, "busybox", "udhcpc", "-q", "-f", "-i", dev,
            "-s", str(lan.hook), "-t", "10", "-T", "1"]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def _sys(ns: str, path: str) -> str:
    return run(["ip", "netns", "exec", ns, "cat", path]).strip()


def test_bond_is_bridged_with_its_options_untouched(lan: Lan) -> None:
    ns = _ns(lan, "bond")
    _require_kind(ns, "bond", "CONFIG_BONDING")
    mac = "52:54:00:dd:00:01"
    _veth(lan, ns, "slave0", mac)
    _veth(lan, ns, "slave1", "52:54:00:dd:00:02")
    _ip(ns, "link", "add", "bond0", "address", mac, "type", "bond", "mode", "active-backup",
        "miimon", "100")
    for slave in ("slave0", "slave1"):
        _ip(ns, "link", "set", slave, "master", "bond0")
    _ip(ns, "link", "set", "bond0", "up")
    _udhcpc(lan, ns, "bond0")
    (address,) = _addrs(ns, "bond0")
    bonding = {k: _sys(ns, f"/sys/class/net/bond0/bonding/{k}") for k in
               ("mode", "miimon", "slaves", "active_slave")}
    backend = Iproute2Backend(netns=ns)

    with pytest.raises(PreflightRefused, match="slave of bond bond0"):
        Bridge("br0", backend=backend).enslave(HostNic("slave1", backend=backend))
    Bridge("br0", backend=backend).enslave(HostNic("bond0", backend=backend))

    assert _addrs(ns, "br0") == [address] and _addrs(ns, "bond0") == []
    assert json.loads(_ip(ns, "-j", "link", "show", "bond0"))[0]["master"] == "br0"
    assert {k: _sys(ns, f"/sys/class/net/bond0/bonding/{k}") for k in bonding} == bonding
    assert lan.ping(address.split("/")[0])

    Bridge("br0", backend=backend).release(HostNic("bond0", backend=backend))
    assert _addrs(ns, "bond0") == [address]
    assert lan.ping(address.split("/")[0])


def test_vlan_is_bridged_and_the_parent_and_other_vlans_stay(lan: Lan) -> None:
    ns = _ns(lan, "vlan")
    _require_kind(ns, "vlan", "CONFIG_VLAN_8021Q")
    _veth(lan, ns, "eth0", "52:54:00:dd:01:01")
    _ip(ns, "link", "set", "eth0", "up")
    _udhcpc(lan, ns, "eth0")
    (parent_addr,) = _addrs(ns, "eth0")
    for vid, host in (("100", "10.232.100.5/24"), ("200", "10.232.200.5/24")):
        _ip(ns, "link", "add", "link", "eth0", "name", f"eth0.{vid}", "type", "vlan", "id", vid)
        _ip(ns, "addr", "add", host, "dev", f"eth0.{vid}")
        _ip(ns, "link", "set", f"eth0.{vid}", "up")
    # The LAN side of VLAN 100: a VLAN device on the LAN bridge.
    lan_vlan = f"lv{os.urandom(2).hex()}"
    _ip(lan.ns, "link", "add", "link", LAN_BRIDGE, "name", lan_vlan, "type", "vlan", "id", "100")
    _ip(lan.ns, "addr", "add", "10.232.100.1/24", "dev", lan_vlan)
    _ip(lan.ns, "link", "set", lan_vlan, "up")
    try:
        backend = Iproute2Backend(netns=ns)
        with pytest.raises(PreflightRefused, match=r"eth0.100, eth0.200"):
            Bridge("br100", backend=backend).enslave(HostNic("eth0", backend=backend))
        before_200 = json.loads(_ip(ns, "-j", "-d", "link", "show", "eth0.200"))

        Bridge("br100", backend=backend).enslave(HostNic("eth0.100", backend=backend))

        assert _addrs(ns, "br100") == ["10.232.100.5/24"] and _addrs(ns, "eth0.100") == []
        assert _addrs(ns, "eth0") == [parent_addr], "the parent keeps its own address"
        assert _addrs(ns, "eth0.200") == ["10.232.200.5/24"]
        after_200 = json.loads(_ip(ns, "-j", "-d", "link", "show", "eth0.200"))
        assert snapshot_diff(before_200, after_200) == []
        ping = ["ip", "netns", "exec", lan.ns, "ping", "-c", "1", "-W", "2", "10.232.100.5"]
        assert subprocess.run(ping, capture_output=True, check=False).returncode == 0
        assert lan.ping(parent_addr.split("/")[0])
    finally:
        _ip(lan.ns, "link", "del", lan_vlan)


@pytest.fixture
def v6lan(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A LAN namespace with IPv6 on, router advertisements for fd00:231::/64 (dnsmasq), and a
    host namespace whose NIC forms its SLAAC address from them: (lan ns, host ns)."""
    tag = f"kv6-{os.getpid()}-{os.urandom(2).hex()}"
    lan_ns, host_ns = f"{tag}-lan", f"{tag}-h"
    made: list[str] = []
    dnsmasq = None
    try:
        for ns in (lan_ns, host_ns):
            run(["ip", "netns", "add", ns])
            made.append(ns)
            _ip(ns, "link", "set", "lo", "up")
        _ip(lan_ns, "link", "add", "lanbr6", "type", "bridge", "stp_state", "0",
            "forward_delay", "0")
        _ip(lan_ns, "addr", "add", "fd00:231::1/64", "dev", "lanbr6")
        _ip(lan_ns, "link", "set", "lanbr6", "up")
        _ip(host_ns, "link", "add", "eth0", "address", "52:54:00:ee:00:01", "type", "veth",
            "peer", "name", "lan-h", "netns", lan_ns)
        _ip(lan_ns, "link", "set", "lan-h", "master", "lanbr6")
        _ip(lan_ns, "link", "set", "lan-h", "up")
        _ip(host_ns, "link", "set", "eth0", "up")
        dnsmasq = subprocess.Popen(
            ["ip", "netns", "exec", lan_ns, "dnsmasq", "--keep-in-foreground",
             "--conf-file=/dev/null", "--user=root", "--group=root", "--port=0",
             "--bind-interfaces", "--interface=lanbr6", "--enable-ra", "--ra-param=lanbr6,5",
             "--dhcp-range=fd00:231::,ra-only,64,1h",
             f"--dhcp-leasefile={tmp_path}/v6.leases", f"--pid-file={tmp_path}/v6.pid"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: bool(_addrs(host_ns, "eth0", "-6")), timeout=30,
                 what="a SLAAC address from the LAN's RA")
        yield lan_ns, host_ns
    finally:
        stop_process(dnsmasq, timeout=5)
        for ns in reversed(made):
            run(["ip", "netns", "del", ns], check=False)


def _v6_ping(lan_ns: str, address: str) -> bool:
    argv = ["ip", "netns", "exec", lan_ns, "ping", "-6", "-c", "1", "-W", "2", address]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_ipv6_slaac_static_and_routes_move_and_rollback_restores(
    v6lan: tuple[str, str],
) -> None:
    lan_ns, ns = v6lan
    (slaac,) = _addrs(ns, "eth0", "-6")
    assert slaac.startswith("fd00:231::5054:ff:feee:1/"), "EUI-64 from the NIC's MAC"
    _ip(ns, "-6", "addr", "add", "fd00:231::50/64", "dev", "eth0")
    wait_for(lambda: "tentative" not in _ip(ns, "-6", "addr", "show", "dev", "eth0"),
             timeout=10, what="DAD")
    _ip(ns, "-6", "route", "add", "fd00:99::/64", "via", "fd00:231::1", "dev", "eth0")
    backend = Iproute2Backend(netns=ns)
    nic, br = HostNic("eth0", backend=backend), Bridge("br0", backend=backend)

    # A rollback first: verification fails on purpose (an address nobody adds).
    plan = br.enslave(nic, dry_run=True)
    before = {f: _ip(ns, "-j", "-6", f, "show") for f in ("addr", "route")}
    broken = dataclasses.replace(plan, checks=(*plan.checks, Check("has-address", "br0",
                                                                    "fd00:dead::1/64")))
    with pytest.raises(RolledBack):
        broken.apply(retries=2, retry_interval=0.2)
    assert set(_addrs(ns, "eth0", "-6")) == {slaac, "fd00:231::50/64"}
    routes = json.loads(_ip(ns, "-j", "-6", "route", "show", "fd00:99::/64"))
    assert [r["dev"] for r in routes] == ["eth0"]
    assert "br0" not in _ip(ns, "-br", "link")
    assert {f: len(json.loads(v)) for f, v in before.items()}["addr"] >= 1

    br.enslave(nic)

    assert {slaac, "fd00:231::50/64"} <= set(_addrs(ns, "br0", "-6"))
    assert _addrs(ns, "eth0", "-6") == []
    routes = json.loads(_ip(ns, "-j", "-6", "route", "show", "fd00:99::/64"))
    assert [r["dev"] for r in routes] == ["br0"]
    assert _v6_ping(lan_ns, "fd00:231::50") and _v6_ping(lan_ns, slaac.split("/")[0])
    # The RA re-forms the SLAAC address on br0 (same MAC, same EUI-64): it is refreshed by
    # the kernel, not a frozen copy: its lifetime is renewed by the next advertisement.
    wait_for(lambda: any(i.get("dynamic") for e in json.loads(
        _ip(ns, "-j", "-6", "addr", "show", "dev", "br0")) for i in e["addr_info"]
        if i["local"] == slaac.split("/")[0]), timeout=20, what="the RA on br0")
    time.sleep(0.1)

    br.release(nic)
    assert {slaac, "fd00:231::50/64"} <= set(_addrs(ns, "eth0", "-6"))
    assert _v6_ping(lan_ns, "fd00:231::50")

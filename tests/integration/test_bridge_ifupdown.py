"""ifupdown for real: ifup/ifdown with bridge-utils' hooks inside a lab host namespace.

The host's NIC is configured by ifupdown itself first (DHCP through ISC dhclient from the LAN
namespace's dnsmasq, or static), as on a Debian server; kvmnet then bridges it, the LAN still
reaches the host through the bridge, and the release puts the file back byte for byte and the
NIC back under its own stanza. ifupdown runs hermetically (tests/lab/ifupdown.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmnet.errors import RolledBack
from kvmnet.hostnet.nic import Bridge, HostNic
from tests.lab import LabHost, Lan, default_devs, snapshot_diff
from tests.lab.golden import require_tool
from tests.lab.ifupdown import IfupdownLab

pytestmark = [pytest.mark.root("network namespaces, dnsmasq, ifupdown"), pytest.mark.integration]


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    require_tool("ifup")
    require_tool("brctl")  # bridge-utils' hooks use it
    with Lan("kvu") as lan:
        yield lan


@pytest.fixture
def lab(lan: Lan, tmp_path: Path) -> Iterator[IfupdownLab]:
    host = lan.add_host(mac=f"52:54:00:cc:00:{len(lan.hosts) + 1:02x}")
    lab = IfupdownLab(host, tmp_path)
    try:
        yield lab
    finally:
        lab.ifdown("-a", "--force")
        lab.close()


def _objects(lab: IfupdownLab) -> tuple[HostNic, Bridge]:
    backend = lab.backend()
    return HostNic(lab.host.nic, backend=backend), Bridge("br0", backend=backend)


def _routes(host: LabHost, table: str = "main") -> list[dict[str, object]]:
    return list(json.loads(host.ip("-j", "route", "show", "table", table)))


def test_dhcp_nic_is_bridged_and_released(lan: Lan, lab: IfupdownLab) -> None:
    host = lab.host
    text = f"# a Debian server\nallow-hotplug {host.nic}\niface {host.nic} inet dhcp\n"
    lab.write(text)
    lab.ifup(host.nic)
    address = host.address
    nic, br = _objects(lab)

    plan = br.enslave(nic)

    assert not plan.dry_run and plan.backend == "ifupdown"
    assert br.ports == (host.nic,) and br.mac == host.mac
    assert f"{address}/24" in host.addresses("br0"), "same MAC (bridge_hw): the same lease"
    assert host.addresses(host.nic) == []
    assert default_devs(host) == ["br0"]
    assert lan.ping(address)
    assert "br0" in lab.state_of()
    clients = lab.dhclients()
    assert [c[-1] for c in clients] == ["br0"], "ifdown stopped the NIC's client"
    assert lab.query(host.nic) == {}  # manual: no option of its own
    assert lab.query("br0")["bridge_ports"] == host.nic

    br.release(nic)

    assert lab.file.read_text() == text, "released byte for byte"
    assert not br.exists
    assert f"{address}/24" in host.addresses(host.nic)
    assert [c[-1] for c in lab.dhclients()] == [host.nic]
    assert default_devs(host) == [host.nic]
    assert lan.ping(address)


def test_static_addresses_routes_and_a_routing_table_move(lan: Lan, lab: IfupdownLab) -> None:
    host = lab.host
    n = len(lan.hosts)
    a1, a2 = f"10.231.0.{60 + n}", f"10.231.0.{80 + n}"
    text = (
        f"auto {host.nic}\n"
        f"iface {host.nic} inet static\n"
        f"    address {a1}/24\n"
        f"    gateway {lan.gateway}\n"
        f"    up ip addr add {a2}/24 dev $IFACE\n"
        f"    up ip route add 10.77.0.0/16 via {lan.gateway} dev $IFACE table 100\n"
        f"    up ip route add 10.78.0.0/16 via {lan.gateway} dev $IFACE\n"
    )
    lab.write(text)
    lab.ifup(host.nic)
    assert set(host.addresses(host.nic)) == {f"{a1}/24", f"{a2}/24"}
    nic, br = _objects(lab)

    br.enslave(nic)

    assert set(host.addresses("br0")) == {f"{a1}/24", f"{a2}/24"}
    assert host.addresses(host.nic) == []
    assert [r["dev"] for r in _routes(host, "100")] == ["br0"]
    assert any(r["dst"] == "10.78.0.0/16" and r["dev"] == "br0" for r in _routes(host))
    assert lan.ping(a1) and lan.ping(a2)

    br.release(nic)

    assert lab.file.read_text() == text
    assert set(host.addresses(host.nic)) == {f"{a1}/24", f"{a2}/24"}
    assert [r["dev"] for r in _routes(host, "100")] == [host.nic]
    assert lan.ping(a1)


def test_failed_verification_rolls_back_to_the_old_stanza(lan: Lan, lab: IfupdownLab) -> None:
    host = lab.host
    addr = f"10.231.0.{40 + len(lan.hosts)}"
    # A gateway nobody answers for: the plan's gateway check fails after ifup br0.
    text = (f"auto {host.nic}\niface {host.nic} inet static\n    address {addr}/24\n"
            "    gateway 10.231.0.254\n")
    lab.write(text)
    lab.ifup(host.nic)
    before = host.snapshot()
    nic, br = _objects(lab)

    plan = br.enslave(nic, dry_run=True)
    with pytest.raises(RolledBack, match="rolled back"):
        plan.apply(retries=4, retry_interval=0.5)

    assert lab.file.read_text() == text
    assert snapshot_diff(before, host.snapshot()) == []
    assert "br0" not in lab.state_of() and host.nic in lab.state_of()
    assert lan.ping(addr)


def test_auto_finds_ifupdown_on_the_lab_host(lan: Lan, lab: IfupdownLab) -> None:
    from kvmnet.backends import create_backend

    host = lab.host
    lab.write(f"auto {host.nic}\niface {host.nic} inet dhcp\n")
    lab.ifup(host.nic)
    # The real nmcli/networkctl inside the namespace find no daemon; the stanza decides.
    backend = create_backend("auto", root=str(lab.root), runner=lab.runner)
    plan = Bridge("br0", backend=backend).enslave(HostNic(host.nic, backend=backend),
                                                   dry_run=True)
    assert plan.backend == "ifupdown"
    assert any(f"iface {host.nic} inet dhcp" in n for n in plan.notes)

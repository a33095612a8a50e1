"""The Ansible collection kvmnet.fleet for real: ``ansible-playbook`` over SSH with forks=3
against three hypervisors, each a namespace with its own libvirtd and sshd (ansible_fleet.py).

What is asserted is read back from each libvirtd with virsh (never through kvmnet), so the
collection cannot agree with itself by mistake.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .ansible_fleet import Fleet
from .lab_host import run, wait_for
from .libvirt_lab import LabFactory
from .ssh_lab import SshLab

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root("namespaces, libvirtds and sshds of the test's own"),
]

GUESTS = ["web", "db"]  # the same names on every hypervisor: MAC seeds must still differ
RUNNING = "app"  # one running guest, on hv0
SWITCH = "Switch the guests"


@pytest.fixture(scope="module")
def fleet(lab_factory: LabFactory) -> Iterator[Fleet]:
    with SshLab(lab_factory) as lab:
        fleet = Fleet(lab)
        try:
            fleet.add("hv0", [*GUESTS, RUNNING], running=(RUNNING,))
            fleet.add("hv1", GUESTS)
            fleet.add("hv2", GUESTS)
            yield fleet
        finally:
            for hv in fleet.hypervisors.values():
                hv.lab.destroy_guests()
            fleet.close()


def xml_of(fleet: Fleet) -> dict[tuple[str, str, str], str]:
    """Every guest's persistent XML (and the running one's live XML), byte for byte."""
    out = {}
    for name, hv in fleet.hypervisors.items():
        for guest in fleet.guests[name]:
            out[(name, guest, "config")] = hv.lab.domain_xml(guest, inactive=True)
            if guest == RUNNING:
                out[(name, guest, "live")] = hv.lab.domain_xml(guest)
    return out


def sources(fleet: Fleet, *, inactive: bool = True) -> dict[tuple[str, str], list[str | None]]:
    return {
        (name, guest): [n.source for n in hv.lab.nics(guest, inactive=inactive)]
        for name, hv in fleet.hypervisors.items()
        for guest in fleet.guests[name]
    }


def set_all(fleet: Fleet, want: str) -> None:
    play = fleet.play("switch.yml", extra={"want": want})
    assert play.rc == 0, play.stdout


def test_check_diff_reports_the_changes_and_changes_nothing(fleet: Fleet) -> None:
    set_all(fleet, "nat")
    before = xml_of(fleet)
    play = fleet.play("switch.yml", "--check", "--diff", extra={"want": "bridged"})
    assert play.rc == 0, play.stdout
    for name in fleet.hypervisors:
        results = play.results(name, SWITCH)
        assert len(results) == len(fleet.guests[name])
        for r in results:
            assert r["result"]["changed"] is True, r
            diff = r["result"]["diff"][0] if isinstance(r["result"]["diff"], list) else (
                r["result"]["diff"])  # fmt: skip
            assert "network='default'" in diff["before"] and "bridge='br0'" in diff["after"]
    # The screen shows the domain XML diff, as --diff promises.
    assert "+++ after: web.xml (after)" in play.stdout
    assert any(line.startswith("+") and "bridge='br0'" in line for line in play.stdout.split("\n"))
    assert xml_of(fleet) == before  # byte-compared, live XML included


def test_the_fleet_moves_to_br0_then_a_second_run_changes_nothing(fleet: Fleet) -> None:
    set_all(fleet, "nat")
    play = fleet.play("switch.yml", extra={"want": "bridged"})
    assert play.rc == 0, play.stdout
    for name in fleet.hypervisors:
        assert play.changed(name) == len(fleet.guests[name]), play.stdout
    assert set(map(tuple, sources(fleet).values())) == {("br0",)}
    # The running guest moved live too: its tap is a port of br0 now.
    hv0 = fleet.hypervisors["hv0"]
    assert [n.source for n in hv0.lab.nics(RUNNING)] == ["br0"]
    assert hv0.lab.tap_of(RUNNING, hv0.lab.nics(RUNNING)[0].mac) in hv0.lab.bridge_ports("br0")
    again = fleet.play("switch.yml", extra={"want": "bridged"})
    assert again.rc == 0, again.stdout
    assert {name: again.changed(name) for name in fleet.hypervisors} == dict.fromkeys(
        fleet.hypervisors, 0
    )
    assert "changed=0" in again.stdout and "changed=1" not in again.stdout


def test_nics_added_on_all_hosts_in_parallel_have_no_duplicate_mac(fleet: Fleet) -> None:
    set_all(fleet, "bridged")
    before = {key: macs for key, macs in all_macs(fleet).items()}
    play = fleet.play("add_nic.yml", extra={"running": [RUNNING]})
    assert play.rc == 0, play.stdout
    after = all_macs(fleet)
    added = [mac for key in after for mac in after[key] if mac not in before[key]]
    # One new NIC per shut-off guest on every hypervisor, guests of the same name included.
    assert len(added) == sum(len(g) for g in fleet.guests.values()) - 1 == 6
    everything = [mac for macs in after.values() for mac in macs]
    assert len(everything) == len(set(everything)), after
    # Locally administered unicast (the 46-bit space the README's odds are about).
    assert all(int(mac[:2], 16) & 0b11 == 0b10 for mac in added), added
    # Deterministic: the same play again finds each NIC by its MAC and changes nothing.
    again = fleet.play("add_nic.yml", extra={"running": [RUNNING]})
    assert again.rc == 0 and all(again.changed(n) == 0 for n in fleet.hypervisors), again.stdout
    assert all_macs(fleet) == after


def test_domains_moves_every_guest_in_one_task_per_hypervisor(fleet: Fleet) -> None:
    set_all(fleet, "nat")
    before = xml_of(fleet)
    check = fleet.play("switch_many.yml", "--check", "--diff", extra={"want": "bridged"})
    assert check.rc == 0, check.stdout
    assert xml_of(fleet) == before  # check mode changed nothing
    for name in fleet.hypervisors:
        (task,) = check.results(name, SWITCH)
        diffs = task["result"]["diff"]
        assert len(diffs) == len(fleet.guests[name]), diffs
        assert all("bridge='br0'" in d["after"] for d in diffs)
    play = fleet.play("switch_many.yml", extra={"want": "bridged"})
    assert play.rc == 0, play.stdout
    for name in fleet.hypervisors:
        (task,) = play.results(name, SWITCH)  # one module run for all of its guests
        guests = task["result"]["guests"]
        assert [g["domain"] for g in guests] == fleet.guests[name]
        assert all(g["changed"] and g["interface"]["source"] == "br0" for g in guests), guests
    assert {s[0] for s in sources(fleet).values()} == {"br0"}  # first NICs
    hv0 = fleet.hypervisors["hv0"]
    assert hv0.lab.tap_of(RUNNING, hv0.lab.nics(RUNNING)[0].mac) in hv0.lab.bridge_ports("br0")
    again = fleet.play("switch_many.yml", extra={"want": "bridged"})
    assert again.rc == 0 and all(again.changed(n) == 0 for n in fleet.hypervisors), again.stdout
    back = fleet.play("switch_many.yml", extra={"want": "nat"})
    assert back.rc == 0, back.stdout
    assert {s[0] for s in sources(fleet).values()} == {"default"}


def test_domains_with_a_missing_guest_fails_that_host_before_any_change(
    fleet: Fleet,
) -> None:
    set_all(fleet, "nat")
    before = xml_of(fleet)
    hosts = {"hv1": {"guests": [*fleet.guests["hv1"], "nosuchguest"]}}
    play = fleet.play("switch_many.yml", extra={"want": "bridged"}, hostvars=hosts)
    assert play.rc == 2, play.stdout
    (failure,) = play.failed("hv1")
    assert failure["result"]["error"] == "DomainNotFound", failure
    assert "nosuchguest" in failure["result"]["msg"]
    # Every name is looked up before any guest changes: hv1 is untouched; the others moved.
    assert {k: v for k, v in xml_of(fleet).items() if k[0] == "hv1"} == {
        k: v for k, v in before.items() if k[0] == "hv1"
    }
    assert all(sources(fleet)[("hv0", g)][0] == "br0" for g in fleet.guests["hv0"])


def all_macs(fleet: Fleet) -> dict[tuple[str, str], list[str]]:
    return {
        (name, guest): [n.mac for n in hv.lab.nics(guest, inactive=True)]
        for name, hv in fleet.hypervisors.items()
        for guest in fleet.guests[name]
    }


def test_info_returns_guests_modes_and_bridges_as_facts(fleet: Fleet) -> None:
    set_all(fleet, "bridged")
    play = fleet.play("info.yml")
    assert play.rc == 0, play.stdout
    for name, hv in fleet.hypervisors.items():
        (result,) = play.results(name, "Read the topology")
        facts = result["result"]["ansible_facts"]["kvmnet"]
        guests = {g["name"]: g for g in facts["guests"]}
        assert set(guests) == set(fleet.guests[name])
        for guest in fleet.guests[name]:
            first = guests[guest]["interfaces"][0]
            assert (first["source"], first["mode"]) == ("br0", "bridged")
            assert first["mac"] == hv.lab.nics(guest, inactive=True)[0].mac
        assert "br0" in {b["name"] for b in facts["bridges"]}
        assert {"name": "default", "mode": "nat"}.items() <= facts["networks"][0].items()


def test_a_failure_on_one_host_fails_that_host_only(fleet: Fleet) -> None:
    set_all(fleet, "bridged")
    before = xml_of(fleet)
    play = fleet.play(
        "switch.yml", extra={"want": "nat"}, hostvars={"hv1": {"nat_network": "nowhere"}}
    )
    assert play.rc == 2, play.stdout  # 2: some host failed
    failures = play.failed("hv1")
    assert failures, play.stdout
    result = failures[0]["result"]
    assert result["error"] == "NetworkNotFound"
    assert "nowhere" in result["msg"] and "\n" not in result["msg"]
    assert not play.failed("hv0") and not play.failed("hv2")
    now = sources(fleet)
    for name in ("hv0", "hv2"):
        assert all(now[(name, g)][0] == "default" for g in fleet.guests[name])
    hv1 = {k: v for k, v in xml_of(fleet).items() if k[0] == "hv1"}
    assert hv1 == {k: v for k, v in before.items() if k[0] == "hv1"}  # nothing half-applied


def _python_without_libvirt(where: Path) -> str:
    """A real venv whose Python has kvmnet's other dependencies but no libvirt-python."""
    run([sys.executable, "-m", "venv", "--without-pip", str(where)])
    site = next(where.glob("lib/python*/site-packages"))
    here = Path(next(p for p in sys.path if p.endswith("site-packages")))
    for dep in ("lxml", "yaml"):
        (site / dep).symlink_to(here / dep)
    return str(where / "bin" / "python")


def test_a_target_without_kvmnet_or_libvirt_fails_with_a_one_line_hint(fleet: Fleet) -> None:
    bare = tempfile.mkdtemp(prefix="kvf-py-")
    try:
        no_libvirt = _python_without_libvirt(Path(bare))
        play = fleet.play(
            "info.yml",
            hostvars={
                # The system Python: no kvmnet (nor lxml), and no PYTHONPATH to find one.
                "hv1": {"ansible_python_interpreter": "/usr/bin/python3", "kvmnet_env": {}},
                "hv2": {"ansible_python_interpreter": no_libvirt},
            },
        )
    finally:
        run(["rm", "-rf", bare])
    assert play.rc == 2, play.stdout
    assert not play.failed("hv0")
    (missing_kvmnet,) = play.failed("hv1")
    msg = missing_kvmnet["result"]["msg"]
    assert msg.startswith("kvmnet is not importable by /usr/bin/python3 on the target"), msg
    assert "\n" not in msg
    (missing_libvirt,) = play.failed("hv2")
    msg = missing_libvirt["result"]["msg"]
    assert msg.startswith("libvirt-python is not importable by "), msg
    assert missing_libvirt["result"]["error"] == "LibvirtMissing" and "\n" not in msg


NIC = "enp0s20f0u1"


def test_host_bridge_check_diff_shows_the_plan_and_changes_nothing(fleet: Fleet) -> None:
    hv = fleet.hypervisors["hv2"]
    before = hv.snapshot()
    play = fleet.play(
        "host_bridge.yml",
        "--check",
        "--diff",
        extra={"target": "hv2", "lan_nic": NIC, "lan_bridge": "brlan", "show_plan": True},
    )
    assert play.rc == 0, play.stdout
    (result,) = play.results("hv2", "The plan")
    assert result["result"]["changed"] is True and result["result"]["backend"] == "iproute2"
    (add,) = [c for c in result["result"]["commands"] if c[:4] == ["ip", "link", "add", "brlan"]]
    assert "type" in add and add[add.index("type") + 1] == "bridge", add
    assert "brlan" in play.stdout and NIC in play.stdout  # the plan on screen (--diff)
    assert hv.snapshot() == before


def _release(fleet: Fleet) -> None:
    """Put hv2's NIC back (from this process, inside the namespace) if a test left it."""
    from kvmnet import Bridge
    from kvmnet.backends import Iproute2Backend

    hv = fleet.hypervisors["hv2"]
    if hv.lab.run(["ip", "link", "show", "brlan"], check=False).returncode == 0:
        backend = Iproute2Backend(netns=hv.lab.netns)
        Bridge("brlan", backend=backend).release(NIC)


def test_the_safe_pattern_bridges_the_nic_it_rides_and_confirms(fleet: Fleet) -> None:
    hv = fleet.hypervisors["hv2"]
    try:
        play = fleet.play(
            "host_bridge.yml",
            extra={"target": "hv2", "lan_nic": NIC, "lan_bridge": "brlan", "confirm_within": 30},
        )
        assert play.rc == 0, play.stdout
        assert play.results("hv2", "Keep the change (the hypervisor answered)")
        master = hv.lab.run(["ip", "-o", "link", "show", NIC]).stdout
        assert "master brlan" in master
        assert hv.address in hv.lab.run(["ip", "-4", "-o", "addr", "show", "brlan"]).stdout
        state = fleet.workdir / "hv2" / "state"
        assert list(state.glob("*.confirmed.json")), sorted(os.listdir(state))
        assert hv.reachable()
    finally:
        _release(fleet)


def test_a_change_that_cuts_ssh_is_rolled_back_and_the_play_fails(fleet: Fleet) -> None:
    hv = fleet.hypervisors["hv2"]
    before = hv.snapshot()
    # The hypervisor's firewall drops whatever reaches it over brlan: once the NIC is a
    # port of it, nobody gets in any more (the mistake the dead-man timer exists for).
    hv.lab.run(["iptables", "-I", "INPUT", "-i", "brlan", "-j", "DROP"])
    try:
        play = fleet.play(
            "host_bridge.yml",
            extra={"target": "hv2", "lan_nic": NIC, "lan_bridge": "brlan",
                   "confirm_within": 15, "reconnect_timeout": 8},
        )  # fmt: skip
        assert play.rc != 0, play.stdout
        (failure,) = play.failed("hv2")
        # Whichever role task found out first fails the host: the apply's poll or the new
        # connection (SSH cut), or the confirmation (the timer had rolled the change back).
        assert failure["task"].startswith("kvmnet.fleet.safe_host_bridge : "), failure
        assert (
            failure["status"] == "unreachable"
            or "rolled back" in failure["result"].get("msg", "")
            or "imed out" in failure["result"].get("msg", "")
        ), failure
        assert not [r for r in play.results("hv2", "Keep the change (the hypervisor answered)")
                    if r["status"] == "ok"]  # fmt: skip
        # The hypervisor rolls back by itself when nobody confirmed in time.
        wait_for(hv.reachable, timeout=60, what="the hypervisor back after the rollback")
        state = fleet.workdir / "hv2" / "state"
        wait_for(lambda: list(state.glob("*.rolled-back.json")), timeout=30, what="rollback")
        assert "master" not in hv.lab.run(["ip", "-o", "link", "show", NIC]).stdout
    finally:
        hv.lab.run(["iptables", "-D", "INPUT", "-i", "brlan", "-j", "DROP"], check=False)
        _release(fleet)
    from tests.lab import snapshot_diff

    assert not snapshot_diff(before, hv.snapshot())

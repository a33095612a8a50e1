"""The opt-in bridge probe (kvmnet.virt.neighbours) and its use by Domain.addresses(probe=True),
driven through a RecordingRunner: nothing is sent, the neighbour table is canned."""

from __future__ import annotations

import ipaddress
import json
import logging
import sys
from pathlib import Path

import pytest

import kvmnet
from kvmnet.errors import KvmnetError
from kvmnet.hostnet.runners.runner import CommandResult, RecordingRunner
from kvmnet.virt import addresses
from kvmnet.virt.neighbours import (
    Neighbour,
    bridge_subnets,
    main,
    parse_neighbours,
    probe,
    sweep_targets,
)

GUEST = "52:54:00:7e:02:01"
ADDR_ARGV = ("ip", "-j", "addr", "show", "dev", "br0")
NEIGH_ARGV = ("ip", "-j", "neigh", "show", "dev", "br0")

NEIGH = [
    {"dst": "10.231.0.1", "lladdr": "02:00:00:00:00:01", "state": ["REACHABLE"]},
    {"dst": "10.231.0.158", "lladdr": "52:54:00:7E:02:01", "state": ["STALE"]},
    {"dst": "10.231.0.9", "state": ["FAILED"]},
    {"dst": "10.231.0.10", "lladdr": "52:54:00:7e:02:01", "state": ["INCOMPLETE"]},
    {"dst": "fe80::5054:ff:fe7e:201", "lladdr": "52:54:00:7e:02:01", "state": ["REACHABLE"]},
]


def addr_json(*cidrs: str) -> str:
    infos = []
    for cidr in cidrs:
        local, plen = cidr.split("/")
        family = "inet6" if ":" in local else "inet"
        infos.append({"family": family, "local": local, "prefixlen": int(plen)})
    return json.dumps([{"ifname": "br0", "addr_info": infos}])


def iface(cidr: str) -> ipaddress.IPv4Interface:
    return ipaddress.IPv4Interface(cidr)


def test_neighbour_output_keeps_resolved_entries_with_lower_case_macs() -> None:
    assert parse_neighbours(json.dumps(NEIGH)) == [
        Neighbour("10.231.0.1", "02:00:00:00:00:01", ("REACHABLE",)),
        Neighbour("10.231.0.158", GUEST, ("STALE",)),
        Neighbour("fe80::5054:ff:fe7e:201", GUEST, ("REACHABLE",)),
    ]
    assert parse_neighbours("") == []
    with pytest.raises(KvmnetError, match="no JSON"):
        parse_neighbours("10.0.0.1 dev br0 lladdr 02:00:00:00:00:01 REACHABLE")


def test_a_slash_24_sweeps_every_address_but_the_hosts_own() -> None:
    targets, swept, refused = sweep_targets([iface("10.231.0.57/24")])
    assert swept == ["10.231.0.0/24"] and refused == []
    assert len(targets) == 253
    assert "10.231.0.57" not in targets
    assert {"10.231.0.0", "10.231.0.255"}.isdisjoint(targets)  # network and broadcast
    assert targets[0] == "10.231.0.1" and targets[-1] == "10.231.0.254"


def test_subnets_larger_than_the_limit_are_refused_not_swept() -> None:
    targets, swept, refused = sweep_targets([iface("10.8.0.1/21"), iface("192.168.5.1/30")])
    assert swept == ["192.168.5.0/30"]
    assert targets == ["192.168.5.2"]
    assert len(refused) == 1 and refused[0].startswith("10.8.0.0/21: 2046 addresses")
    # A /22 is the largest the default sweeps; a lower limit refuses it too.
    assert len(sweep_targets([iface("10.8.0.1/22")])[0]) == 1021
    assert sweep_targets([iface("10.8.0.1/22")], max_addresses=254)[0] == []


def test_link_local_and_duplicate_subnets() -> None:
    targets, swept, refused = sweep_targets(
        [iface("169.254.3.4/16"), iface("10.0.0.1/29"), iface("10.0.0.2/29")]
    )
    assert refused == ["169.254.0.0/16: link-local, not swept"]
    assert swept == ["10.0.0.0/29"]  # swept once, without either of the host's addresses
    assert targets == ["10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    assert sweep_targets([iface("10.0.0.1/31")])[0] == ["10.0.0.0"]
    assert sweep_targets([iface("10.0.0.1/32")]) == ([], ["10.0.0.1/32"], [])


def test_bridge_subnets_are_its_ipv4_addresses() -> None:
    runner = RecordingRunner(replies={ADDR_ARGV: addr_json("10.231.0.57/24", "fd00::5/64")})
    assert bridge_subnets(runner, "br0") == (iface("10.231.0.57/24"),)
    gone = RecordingRunner(fail=[ADDR_ARGV])
    with pytest.raises(KvmnetError, match="bridge 'br0' not found"):
        bridge_subnets(gone, "br0")


def sender_argv(targets: list[str]) -> tuple[str, ...]:
    return (sys.executable, "-m", "kvmnet.virt.neighbours", "send", "br0", *targets)


def test_probe_sweeps_then_reads_the_guest_from_the_table() -> None:
    sent: list[tuple[str, ...]] = []

    def table(argv: tuple[str, ...]) -> CommandResult:
        # The guest is in the table only after the sweep (as when the host never talked to it).
        return CommandResult(argv, 0, json.dumps(NEIGH if sent else NEIGH[:1]))

    def sender(argv: tuple[str, ...]) -> CommandResult:
        sent.append(argv)
        return CommandResult(argv, 0)

    targets = [f"10.231.0.{i}" for i in range(1, 255) if i != 57]
    runner = RecordingRunner(
        replies={ADDR_ARGV: addr_json("10.231.0.57/24"), NEIGH_ARGV: table,
                 sender_argv(targets): sender},
        netns="lab",
    )
    result = probe("br0", {GUEST.upper()}, runner=runner, sleep=lambda s: None)
    assert sent == [sender_argv(targets)]  # one run of the sender, inside the namespace
    assert result.found == (Neighbour("10.231.0.158", GUEST, ("STALE",)),)  # IPv4 only
    assert result.swept == ("10.231.0.0/24",) and result.sent == 253


def test_probe_sends_nothing_when_the_table_knows_the_guest() -> None:
    runner = RecordingRunner(replies={NEIGH_ARGV: json.dumps(NEIGH)})
    result = probe("br0", {GUEST}, runner=runner)
    assert result.found == (Neighbour("10.231.0.158", GUEST, ("STALE",)),)
    assert result.sent == 0
    assert runner.commands == [NEIGH_ARGV]


def test_probe_refuses_a_large_subnet_and_sends_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = RecordingRunner(replies={ADDR_ARGV: addr_json("10.8.0.1/16"), NEIGH_ARGV: "[]"})
    with caplog.at_level(logging.WARNING, logger="kvmnet.virt.neighbours"):
        result = probe("br0", {GUEST}, runner=runner)
    assert result.found == () and result.sent == 0
    assert result.refused[0].startswith("10.8.0.0/16: 65534 addresses")
    assert runner.commands == [NEIGH_ARGV, ADDR_ARGV]
    assert "refused 10.8.0.0/16" in caplog.text


def test_the_sender_takes_only_addresses() -> None:
    with pytest.raises(ValueError):
        main(["send", "br0", "example.org"])
    assert main(["sweep"]) == 2


def test_no_local_probe_for_a_remote_host(caplog: pytest.LogCaptureFixture) -> None:
    # Without a runner on that machine, this host's bridge of that name is not the remote
    # one: nothing is probed here (Domain.addresses passes the Host's runner: see remote.md).
    with caplog.at_level(logging.WARNING, logger="kvmnet.virt.addresses"):
        found = addresses._probed(
            "web1", {GUEST}, "qemu+ssh://far.example/system", {GUEST: "br0"}, None
        )
    assert found == []
    assert "far.example" in caplog.text and "not this host" in caplog.text
    # With the remote machine's runner, the sweep runs there.
    runner = RecordingRunner(replies={NEIGH_ARGV: json.dumps(NEIGH)})
    found = addresses._probed(
        "web1", {GUEST}, "qemu+ssh://far.example/system", {GUEST: "br0"}, runner
    )
    assert found == [addresses.GuestAddress(GUEST, "10.231.0.158", None, "probe")]
    assert NEIGH_ARGV in runner.commands


def test_probe_answers_are_reported_with_source_probe() -> None:
    runner = RecordingRunner(replies={NEIGH_ARGV: json.dumps(NEIGH)})
    found = addresses._probed(
        "web1", {GUEST, "52:54:00:00:00:09"}, "qemu:///system",
        {GUEST: "br0"}, runner,  # the second MAC is on no bridge: not probed
    )
    assert found == [addresses.GuestAddress(GUEST, "10.231.0.158", None, "probe")]
    assert runner.commands == [NEIGH_ARGV]


def test_domain_addresses_keeps_its_no_argument_call(tmp_path: Path) -> None:
    xml = tmp_path / "node.xml"
    xml.write_text(
        "<node><domain type='test'><name>web1</name><memory>1024</memory>"
        "<os><type>hvm</type></os><devices><interface type='bridge'>"
        f"<mac address='{GUEST}'/><source bridge='br0'/></interface></devices></domain></node>"
    )
    with kvmnet.connect(f"test://{xml}") as host:
        dom = host.domain("web1")
        plain = dom.addresses()
        # The test driver answers from its fake leases, so the probe is never reached.
        assert dom.addresses(probe=True) == plain
    assert plain and all(a.mac == GUEST for a in plain)
    assert kvmnet.GuestAddress is addresses.GuestAddress
    assert "GuestAddress" in kvmnet.__all__

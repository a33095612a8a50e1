"""Every preflight refusal, fed by a RecordingRunner (no root). Wi-Fi can only be faked
through the runner: no Wi-Fi hardware exists in a namespace, so ``fake_host`` reports a
``DEVTYPE=wlan`` uevent for the NIC."""

from __future__ import annotations

import json

import pytest

from kvmnet.backends import Iproute2Backend
from kvmnet.errors import HostNicNotFound, PreflightRefused
from kvmnet.hostnet.fake import fake_host
from kvmnet.hostnet.nic import Bridge, HostNic
from kvmnet.hostnet.runners.runner import CommandResult, RecordingRunner
from tests.lab.fakes import NIC, bridge, dhcp_host, nic, routes

SSH = "10.231.0.50 51000 10.231.0.185 22"


def br(runner: RecordingRunner, name: str = "br0") -> Bridge:
    return Bridge(name, backend=Iproute2Backend(runner=runner))


def refused(runner: RecordingRunner, check: str, **kw: object) -> PreflightRefused:
    with pytest.raises(PreflightRefused) as info:
        br(runner).enslave(NIC, **kw)  # type: ignore[arg-type]
    assert info.value.check == check
    assert not any(c.kind != "run" for c in runner.calls), "a refusal changed something"
    assert not any(c.argv[:3] == ("ip", "link", "add") for c in runner.calls)
    return info.value


def test_missing_nic() -> None:
    with pytest.raises(HostNicNotFound, match=r"'eth9' does not exist.*enp0s20f0u1"):
        br(dhcp_host()).enslave("eth9", dry_run=True)


def test_wifi_is_refused_with_alternatives_and_can_be_forced() -> None:
    runner = fake_host([nic(wireless=True)], routes())
    err = refused(runner, "wireless", dry_run=True)
    assert "NAT" in str(err) and "macvtap" in str(err) and "force=('wireless',)" in str(err)
    assert HostNic(NIC, backend=Iproute2Backend(runner=runner)).wireless
    plan = br(runner).enslave(NIC, dry_run=True, force=["wireless"])
    assert plan.commands


def test_already_enslaved_elsewhere() -> None:
    runner = fake_host([nic(master="br9"), bridge("br9")], routes())
    err = refused(runner, "enslaved", dry_run=True)
    assert "br9" in str(err) and "release it" in str(err)


@pytest.mark.parametrize("name", ["", "a" * 16, "br 0", "br/0", "br:0", ".", "..", "-br"])
def test_invalid_bridge_names(name: str) -> None:
    with pytest.raises(PreflightRefused) as info:
        br(dhcp_host(), name)
    assert info.value.check == "bridge-name"
    assert repr(name) in str(info.value)


def test_fifteen_characters_is_fine() -> None:
    assert br(dhcp_host(), "b" * 15).name == "b" * 15


def test_a_link_that_is_not_a_bridge() -> None:
    runner = fake_host([nic(), nic(name="br0", mac="52:54:00:aa:00:09", kind="veth")], routes())
    err = refused(runner, "not-a-bridge", dry_run=True, force=["wireless"])
    assert "veth" in str(err)


def test_br_netfilter_with_forward_drop() -> None:
    files = {"/proc/sys/net/bridge/bridge-nf-call-iptables": b"1\n"}
    runner = dhcp_host(files=files, iptables_forward="DROP")
    err = refused(runner, "br-netfilter", dry_run=True)
    assert "physdev-is-bridged" in str(err)
    assert ("iptables", "-S", "FORWARD") in runner.commands
    assert br(dhcp_host(files=files, iptables_forward="DROP")).enslave(
        NIC, dry_run=True, force=["br-netfilter"]
    )
    # With policy ACCEPT there is nothing to refuse.
    assert br(dhcp_host(files=files)).enslave(NIC, dry_run=True)


def test_libvirt_network_bridge() -> None:
    status = b"<networkstatus><network><name>default</name><bridge name='br0' stp='on'/>"
    runner = dhcp_host(files={"/run/libvirt/network/default.xml": status})
    err = refused(runner, "libvirt", dry_run=True)
    assert "'default'" in str(err)
    assert br(runner).libvirt_network == "default"


def test_ssh_over_the_nic_requires_the_dead_man_timer() -> None:
    err = refused(dhcp_host(), "ssh", ssh_connection=SSH)
    assert "confirm_within" in str(err)
    # A dry run is allowed, but the plan remembers and apply() refuses without a timer.
    plan = br(dhcp_host()).enslave(NIC, dry_run=True, ssh_connection=SSH)
    assert plan.requires_confirmation
    with pytest.raises(PreflightRefused, match="confirm_within"):
        plan.apply()
    forced = br(dhcp_host()).enslave(NIC, dry_run=True, ssh_connection=SSH, force=["ssh"])
    assert not forced.requires_confirmation


def test_ssh_detected_by_the_route_back_to_the_client() -> None:
    route = CommandResult((), 0, json.dumps([{"dst": "192.0.2.7", "dev": NIC}]))
    runner = fake_host(
        [nic()], routes(), replies={("ip", "-j", "route", "get", "192.0.2.7"): route}
    )
    # The session's local address is elsewhere, but the way back leaves through the NIC.
    assert HostNic(NIC, backend=Iproute2Backend(runner=runner)).ssh_session_uses(
        "192.0.2.7 5000 172.16.0.1 22"
    )
    assert not HostNic(NIC, backend=Iproute2Backend(runner=dhcp_host())).ssh_session_uses(
        "192.0.2.7 5000 172.16.0.1 22"
    )


def test_ssh_env_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", SSH)
    refused(dhcp_host(), "ssh")


def test_unknown_force_key() -> None:
    with pytest.raises(PreflightRefused, match="unknown force"):
        br(dhcp_host()).enslave(NIC, dry_run=True, force=["everything"])


def test_release_of_a_nic_that_is_no_port() -> None:
    with pytest.raises(PreflightRefused, match="not a port of br0") as info:
        br(dhcp_host()).release(NIC, dry_run=True)
    assert info.value.check == "not-a-port"


@pytest.mark.parametrize(
    ("argv", "reply", "daemon"),
    [
        (
            ("nmcli", "-t", "-f", "DEVICE,STATE", "device", "status"),
            f"lo:unmanaged\n{NIC}:connected\n",
            "NetworkManager",
        ),
        (
            ("networkctl", "list", "--no-legend", "--no-pager"),
            f"  1 lo loopback carrier unmanaged\n  2 {NIC} ether routable configured\n",
            "systemd-networkd",
        ),
    ],
)
def test_iproute2_refuses_a_nic_a_daemon_manages(
    argv: tuple[str, ...], reply: str, daemon: str
) -> None:
    err = refused(dhcp_host(replies={argv: reply}), "managed", dry_run=True)
    assert daemon in str(err)
    assert br(dhcp_host(replies={argv: reply})).enslave(NIC, dry_run=True, force=["managed"])


def test_a_daemon_that_does_not_run_manages_nothing() -> None:
    failing = CommandResult((), 1, "", "Could not create NMClient object")
    runner = dhcp_host(replies={("nmcli", "-t", "-f", "DEVICE,STATE", "device", "status"): failing})
    assert br(runner).enslave(NIC, dry_run=True).commands


def test_this_sessions_ssh_does_not_matter_inside_another_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSH_CONNECTION", SSH)
    runner = dhcp_host(netns="lab-host")
    assert br(runner).enslave(NIC, dry_run=True).commands
    # Given explicitly, the connection is checked there all the same.
    refused(dhcp_host(netns="lab-host"), "ssh", ssh_connection=SSH)

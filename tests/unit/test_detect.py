"""backend="auto": the stack that owns the NIC, found from prepared machines (a root directory
with each stack's files, the fake host answering for the running daemons), with its evidence
in the plan; two stacks claiming one NIC are refused, naming both."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmnet.backends import create_backend
from kvmnet.errors import PreflightRefused
from kvmnet.hostnet.backends.auto import AutoBackend
from kvmnet.hostnet.inspect import NETWORKD_LINKS_ARGV, NM_DEVICES_ARGV
from kvmnet.hostnet.model.plan import Plan
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.nic import Bridge, HostNic
from kvmnet.hostnet.runners.runner import CommandResult
from kvmnet.testing import fake_host

MAC = "52:54:00:aa:00:01"
NIC = "enp1s0"

FILES = {
    "ifupdown": {"etc/network/interfaces": f"auto {NIC}\niface {NIC} inet dhcp\n"},
    "netplan": {"etc/netplan/50-cloud-init.yaml":
                f"network:\n  version: 2\n  renderer: networkd\n  ethernets:\n    {NIC}:\n"
                "      dhcp4: true\n"},
    "networkd": {"etc/systemd/network/20-wired.network": f"[Match]\nName={NIC}\n\n[Network]\n"
                 "DHCP=yes\n"},
    "ifcfg": {f"etc/sysconfig/network-scripts/ifcfg-{NIC}":
              f"TYPE=Ethernet\nDEVICE={NIC}\nBOOTPROTO=dhcp\nONBOOT=yes\n"},
}


def _root(tmp_path: Path, *stacks: str) -> Path:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    for stack in stacks:
        for rel, text in FILES[stack].items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return root


def _auto(root: Path, *, daemon: str | None = None) -> AutoBackend:
    replies: dict[tuple[str, ...], str | CommandResult] = {}
    if daemon == "NetworkManager":
        replies[NM_DEVICES_ARGV] = f"lo:connected (externally)\n{NIC}:connected\n"
    elif daemon == "systemd-networkd":
        replies[NETWORKD_LINKS_ARGV] = f"  1 lo loopback carrier unmanaged\n  2 {NIC} ether " \
                                       "routable configured\n"
    files = {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    runner = fake_host(
        [LinkState(NIC, MAC, operstate="UP", flags=("UP",),
                   addresses=(IpAddress("10.0.0.5/24", 3600, 3600, True),))],
        [IpRoute("default", NIC, "10.0.0.1")],
        files=files,
        replies=replies,
    )
    backend = create_backend("auto", root=str(root), runner=runner)
    assert isinstance(backend, AutoBackend)
    return backend


def _plan(backend: AutoBackend) -> Plan:
    return Bridge("br0", backend=backend).enslave(HostNic(NIC, backend=backend), dry_run=True)


@pytest.mark.parametrize(
    ("stacks", "daemon", "kind", "evidence"),
    [
        (("ifupdown",), None, "ifupdown", f"iface {NIC} inet dhcp"),
        (("netplan",), None, "netplan", "50-cloud-init.yaml defines"),
        (("netplan",), "systemd-networkd", "netplan", "renderer networkd"),
        (("networkd",), None, "networkd", "20-wired.network matches"),
        (("networkd",), "systemd-networkd", "networkd", "systemd-networkd manages"),
        ((), "NetworkManager", "nmcli", "NetworkManager manages"),
        (("ifcfg",), "NetworkManager", "ifcfg", f"ifcfg-{NIC} configures"),
        (("ifcfg",), None, "ifcfg", f"ifcfg-{NIC} configures"),
        ((), None, "iproute2", "runtime only"),
    ],
    ids=["ifupdown", "netplan", "netplan-networkd", "networkd-files", "networkd-running",
         "networkmanager", "nm-ifcfg", "initscripts-ifcfg", "nothing"],
)
def test_auto_picks_the_owner_and_says_why(
    tmp_path: Path, stacks: tuple[str, ...], daemon: str | None, kind: str, evidence: str
) -> None:
    backend = _auto(_root(tmp_path, *stacks), daemon=daemon)
    plan = _plan(backend)
    assert plan.backend == kind
    assert backend.chosen[NIC].name == kind
    (note,) = plan.notes
    assert note.startswith(f"backend auto -> {kind}:") and evidence in note
    assert note in str(plan)


@pytest.mark.parametrize(
    ("stacks", "daemon", "both"),
    [
        (("ifupdown",), "NetworkManager", ("nmcli", "ifupdown")),
        (("ifupdown", "networkd"), None, ("networkd", "ifupdown")),
        (("netplan", "ifupdown"), None, ("netplan", "ifupdown")),
        (("netplan", "networkd"), None, ("netplan", "networkd")),
    ],
    ids=["nm-and-ifupdown", "networkd-and-ifupdown", "netplan-and-ifupdown",
         "netplan-and-own-networkd"],
)
def test_two_stacks_claiming_the_nic_are_refused(
    tmp_path: Path, stacks: tuple[str, ...], daemon: str | None, both: tuple[str, str]
) -> None:
    backend = _auto(_root(tmp_path, *stacks), daemon=daemon)
    with pytest.raises(PreflightRefused) as info:
        _plan(backend)
    assert info.value.check == "detect"
    message = str(info.value)
    assert all(f"{kind}:" in message for kind in both)
    assert NIC in message and "--backend" in message


def test_netplan_matching_other_nic_is_no_evidence(tmp_path: Path) -> None:
    root = _root(tmp_path, "ifupdown")
    (root / "etc/netplan").mkdir(parents=True)
    (root / "etc/netplan/01.yaml").write_text(
        "network:\n  ethernets:\n    enp9s0:\n      dhcp4: true\n")
    assert _plan(_auto(root)).backend == "ifupdown"

"""Releasing a NIC from a bridge that has other ports (a guest's tap, a second NIC) is refused
by every backend before anything is planned: without the uplink those ports are off the LAN,
and a backend that writes configuration removes the bridge itself (ifcfg deletes ifcfg-BR,
nmcli the bridge profile, networkd the .netdev, netplan its bridge, ifupdown its stanza)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kvmnet.backends import (
    IfcfgBackend,
    IfupdownBackend,
    Iproute2Backend,
    NetplanBackend,
    NetworkdBackend,
    NmcliBackend,
)
from kvmnet.errors import PreflightRefused
from kvmnet.hostnet.backends.base import Backend
from kvmnet.hostnet.fake import FakeHostRunner, fake_host
from kvmnet.hostnet.nic import Bridge
from tests.lab.fakes import NIC, bridge, nic, routes

KINDS: dict[str, Callable[[str, FakeHostRunner], Backend]] = {
    "iproute2": lambda root, runner: Iproute2Backend(runner=runner),
    "ifcfg": lambda root, runner: IfcfgBackend(root=root, runner=runner, files_only=False),
    "nmcli": lambda root, runner: NmcliBackend(root=root, runner=runner, files_only=False),
    "networkd": lambda root, runner: NetworkdBackend(root=root, runner=runner, files_only=False),
    "netplan": lambda root, runner: NetplanBackend(root=root, runner=runner, files_only=False),
    "ifupdown": lambda root, runner: IfupdownBackend(root=root, runner=runner, files_only=False),
}


def _host(*extra: str) -> FakeHostRunner:
    links = [nic(master="br0", addresses=()), bridge()]
    links += [nic(name=name, master="br0", addresses=()) for name in extra]
    return fake_host(links, routes("br0"))


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_bridge_with_a_guests_tap_is_not_released(kind: str, tmp_path: Path) -> None:
    runner = _host("vnet3", "eno2")
    backend: Backend = KINDS[kind](str(tmp_path), runner)
    with pytest.raises(PreflightRefused) as caught:
        Bridge("br0", backend=backend).release(NIC, dry_run=True)
    assert caught.value.check == "bridge-in-use"
    message = str(caught.value)
    assert "vnet3, eno2" in message and NIC in message and "force=('bridge-in-use',)" in message
    # Refused before anything ran: only reads (ip -j ..., file reads) were made.
    assert all(c.kind != "run" or "-j" in c.argv or c.argv[:1] != ("ip",) for c in runner.calls)
    assert not [c for c in runner.calls if c.kind in ("write", "remove", "spawn")]


def test_forced_the_release_goes_ahead_and_the_bridge_keeps_its_ports() -> None:
    runner = _host("vnet3")
    br = Bridge("br0", backend=Iproute2Backend(runner=runner))
    plan = br.release(NIC, dry_run=True, force=("bridge-in-use",))
    assert ("ip", "link", "set", NIC, "nomaster") in plan.commands
    assert ("ip", "link", "del", "br0") not in plan.commands


def test_the_nic_alone_on_its_bridge_is_released() -> None:
    plan = Bridge("br0", backend=Iproute2Backend(runner=_host())).release(NIC, dry_run=True)
    assert ("ip", "link", "del", "br0") in plan.commands


def test_files_written_for_another_root_are_not_refused(tmp_path: Path) -> None:
    """A files-only backend changes nothing on this machine: its live ports are not at stake."""
    scripts = tmp_path / "etc/sysconfig/network-scripts"
    scripts.mkdir(parents=True)
    (scripts / f"ifcfg-{NIC}").write_text(f"DEVICE={NIC}\nONBOOT=yes\nBRIDGE=br0\n")
    (scripts / "ifcfg-br0").write_text("DEVICE=br0\nTYPE=Bridge\nONBOOT=yes\nBOOTPROTO=dhcp\n")
    backend = IfcfgBackend(root=str(tmp_path), runner=_host("vnet3"))
    assert backend.files_only
    plan = Bridge("br0", backend=backend).release(NIC, dry_run=True)
    assert plan.commands == ()
    assert any(f.endswith("ifcfg-br0") for f in plan.files)

"""ifcfg rollback for real, in a lab namespace (root): a step fails midway (``ifdown`` does not
exist on Debian) after the files were written and the stale address deleted; the shared
mechanism must put the files back byte for byte (content and mode) and the namespace's links,
addresses and routes exactly as before."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kvmnet.backends import IfcfgBackend
from kvmnet.errors import RollbackFailed
from kvmnet.hostnet.backends.ifcfg import SCRIPTS_DIR
from kvmnet.hostnet.nic import Bridge, HostNic
from kvmnet.hostnet.runners.runner import NetnsRunner
from tests.lab import Lan

pytestmark = [pytest.mark.root("network namespaces, dnsmasq, udhcpc"), pytest.mark.integration]


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in root.rglob("*")
        if p.is_file()
    }


def test_failing_step_restores_files_and_runtime(tmp_path: Path) -> None:
    with Lan("kvf") as lan:
        host = lan.add_host(mac="52:54:00:ee:00:01")
        host.dhcp(stay=False)
        host.ip("link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        host.ip("addr", "add", "192.168.0.1/24", "dev", "br0")
        host.ip("link", "set", "br0", "up")
        scripts = tmp_path / SCRIPTS_DIR.lstrip("/")
        scripts.mkdir(parents=True)
        nic_file = scripts / f"ifcfg-{host.nic}"
        nic_file.write_text(f'DEVICE={host.nic}\nBOOTPROTO=dhcp\nONBOOT=yes\nX="kept $(no)"\n')
        nic_file.chmod(0o600)
        files_before, runtime_before = tree(tmp_path), host.snapshot()

        # files_only=False: the commands run in the lab namespace (and ifdown fails there).
        backend = IfcfgBackend(root=str(tmp_path), runner=NetnsRunner(host.ns),
                               network_manager=False, files_only=False)  # fmt: skip
        plan = Bridge("br0", backend=backend).enslave(
            HostNic(host.nic, backend=backend), dry_run=True, ssh_connection=""
        )
        assert ("ip", "addr", "del", "192.168.0.1/24", "dev", "br0") in plan.commands
        # The lab has no ifcfg scripts: the rollback's `ifup` fails too, and says so.
        with pytest.raises(RollbackFailed, match=r"`ifdown .*rollback (command|step) `ifup "):
            plan.apply()

        assert tree(tmp_path) == files_before, "files (and modes) exactly as before"
        assert host.snapshot() == runtime_before, "links, addresses, routes as before"
        assert "192.168.0.1/24" in host.addresses("br0")
        assert lan.ping(host.address)

"""Dead-man timer for real: the caller is killed right after apply and a detached watcher
restores the namespace by itself; a confirmation in time keeps the change."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmnet.backends import Iproute2Backend
from kvmnet.hostnet import confirm
from kvmnet.hostnet.nic import Bridge
from tests.lab import LabHost, Lan, snapshot_diff, wait_for

pytestmark = [pytest.mark.root("network namespaces, dnsmasq, udhcpc"), pytest.mark.integration]

CALLER = """
import sys, time
from kvmnet.backends import Iproute2Backend
from kvmnet.hostnet.nic import Bridge
ns, nic, state = sys.argv[1:]
plan = Bridge("br0", backend=Iproute2Backend(netns=ns)).enslave(nic, dry_run=True)
result = plan.apply(confirm_within=3, state_dir=state)
print("applied", result.pending_confirmation, flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan("kvb") as lan:
        yield lan


@pytest.fixture
def host(lan: Lan) -> LabHost:
    host = lan.add_host(mac=f"52:54:00:dd:00:{len(lan.hosts) + 1:02x}")
    host.dhcp(stay=False)
    return host


def test_killed_caller_is_rolled_back_by_the_watcher(
    lan: Lan, host: LabHost, tmp_path: Path
) -> None:
    before = host.snapshot()
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, host.ns, host.nic, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert caller.stdout is not None
        line = caller.stdout.readline()
        assert line.startswith("applied "), line
        assert host.addresses("br0"), "applied: br0 carries the address"
        caller.send_signal(signal.SIGKILL)
        caller.wait()
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
    ident = line.split()[1]
    wait_for(
        lambda: (tmp_path / f"{ident}.rolled-back.json").exists(),
        timeout=20,
        what="the watcher to roll back",
    )
    assert not snapshot_diff(before, host.snapshot())
    assert lan.ping(host.address)
    assert (tmp_path / f"{ident}.log").read_text().count("rolling back") == 1


def test_confirmed_in_time_stays(lan: Lan, host: LabHost, tmp_path: Path) -> None:
    br = Bridge("br0", backend=Iproute2Backend(netns=host.ns))
    result = br.enslave(host.nic, dry_run=True).apply(confirm_within=2, state_dir=str(tmp_path))
    assert result.pending_confirmation
    assert confirm(state_dir=str(tmp_path)) == [result.pending_confirmation]
    time.sleep(3)  # past the deadline: nothing may roll back now
    assert br.exists and host.addresses("br0") and host.addresses(host.nic) == []
    assert not list(tmp_path.glob("*.rolled-back.json"))
    assert lan.ping(host.address)


def test_a_failed_apply_disarms_the_watcher(lan: Lan, host: LabHost, tmp_path: Path) -> None:
    from kvmnet.errors import RolledBack

    host.ip("route", "replace", "default", "via", f"{lan.subnet}.254", "dev", host.nic)
    plan = Bridge("br0", backend=Iproute2Backend(netns=host.ns)).enslave(host.nic, dry_run=True)
    with pytest.raises(RolledBack):
        plan.apply(confirm_within=1, retries=1, state_dir=str(tmp_path))
    assert [p.name.split(".")[1] for p in tmp_path.glob("*.json")] == ["disarmed"]

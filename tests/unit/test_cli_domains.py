"""The real ``kvmnet`` entry point against test-driver worlds: output, exit codes, stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kvmnet.testing import Guest, Nic, world_uri


def kvmnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvmnet", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return world_uri(
        tmp_path,
        Guest("web1", nics=(Nic.network(mac="52:54:00:00:00:01"), Nic.bridge("br0"))),
        Guest("test", running=False, nics=(Nic.network(mac="52:54:00:00:00:03"),)),
        Guest("bare", running=False, nics=()),
    )


def test_domains_table(uri: str) -> None:
    res = kvmnet("-c", uri, "domains")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["DOMAIN", "STATE", "MAC", "TYPE", "SOURCE", "MODE"]
    assert any(line.split()[:2] == ["bare", "shut"] for line in lines)
    row = next(line for line in lines if "52:54:00:00:00:01" in line)
    assert row.split() == ["web1", "running", "52:54:00:00:00:01", "network", "default", "nat"]
    assert res.stderr == ""


def test_domains_json_shape(uri: str) -> None:
    res = kvmnet("-c", uri, "domains", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    by_name = {d["name"]: d for d in data}
    assert set(by_name) == {"web1", "test", "bare"}
    web1 = by_name["web1"]
    assert set(web1) == {"name", "state", "interfaces", "next_boot_differs"}
    assert web1["state"] == "running" and web1["next_boot_differs"] is False
    assert web1["interfaces"][1] == {
        "index": 1,
        "mac": web1["interfaces"][1]["mac"],
        "type": "bridge",
        "source": "br0",
        "model": "virtio",
        "target": "testnet1",
        "mode": "bridged",
    }
    assert by_name["bare"]["interfaces"] == []


def test_bridge_dry_run_prints_the_diff(uri: str) -> None:
    res = kvmnet("-c", uri, "bridge", "test", "br0", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "-    <interface type='network'>" in res.stdout
    assert "+      <source bridge='br0'/>" in res.stdout


def test_bridge_and_nat_for_real(uri: str) -> None:
    # Each command is its own process and connection: the world starts afresh every time,
    # so this checks the output of one real change.
    res = kvmnet("-c", uri, "bridge", "test", "br0", "--iface", "52:54:00:00:00:03")
    assert res.returncode == 0, res.stderr
    assert "persistent definition only" in res.stdout
    res = kvmnet("-c", uri, "nat", "web1", "--iface", "1", "--config")
    assert res.returncode == 0, res.stderr
    assert "network 'default' (nat)" in res.stdout


def test_running_guest_without_live_support_warns(uri: str) -> None:
    res = kvmnet("-c", uri, "bridge", "web1", "br0")
    assert res.returncode == 0
    assert "cannot change a running guest" in res.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("bridge", "web1", "br0", "--live"), "pass --config"),
        (("bridge", "nope", "br0"), "no domain named 'nope'"),
        (("nat", "test", "nonet"), "no libvirt network named 'nonet'"),
        (("bridge", "test", "br0", "--iface", "7"), "no interface #7"),
        (("bridge", "test", "br0", "--iface", "52:54:00:99:99:99"), "no interface with MAC"),
        (("add-nic", "test", "--bridge", "br0", "--mac", "52:54:00:00:00:01"), "web1"),
        (("add-nic", "test", "--bridge", "br0", "--mac", "nonsense"), "invalid MAC"),
        (("remove-nic", "bare", "0"), "no network interface"),
    ],
)
def test_refusals_exit_1_with_one_line(uri: str, args: tuple[str, ...], needle: str) -> None:
    res = kvmnet("-c", uri, *args)
    assert res.returncode == 1
    assert needle in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert res.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ("bridge", "web1"),
        ("add-nic", "test"),
        ("add-nic", "test", "--bridge", "br0", "--network", "default"),
        ("domains", "--bogus"),
    ],
)
def test_usage_errors_exit_2(uri: str, args: tuple[str, ...]) -> None:
    res = kvmnet("-c", uri, *args)
    assert res.returncode == 2
    assert "usage:" in res.stderr


def test_add_and_remove_nic(uri: str) -> None:
    res = kvmnet("-c", uri, "add-nic", "test", "--network", "default", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "+    <interface type='network'>" in res.stdout
    assert "+      <mac address='52:54:00:" in res.stdout
    res = kvmnet("-c", uri, "add-nic", "test", "--bridge", "br0", "--model", "e1000")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("add_interface on domain 'test': 52:54:00:")
    res = kvmnet("-c", uri, "remove-nic", "test", "52:54:00:00:00:03", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "-      <mac address='52:54:00:00:00:03'/>" in res.stdout


def test_bounce_and_connection_failure(uri: str, tmp_path: Path) -> None:
    res = kvmnet("-c", uri, "nat", "web1", "default", "--iface", "1", "--bounce")
    assert res.returncode == 0, res.stderr
    res = kvmnet("-c", f"test://{tmp_path}/missing.xml", "domains")
    assert res.returncode == 1
    assert "missing.xml" in res.stderr and len(res.stderr.strip().splitlines()) == 1

"""``kvmnet bridge ... --create-from NIC --backend B`` and ``kvmnet nat ... --release NIC``,
through the real entry point.

The guest is on libvirt's test driver. The host side runs for real with the iproute2
backend inside a network namespace this test creates (prefix ``kvmob-``) holding a veth NIC,
so nothing outside that namespace is touched; it is removed even when the test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmnet.testing import Guest, Nic, World

NIC = "kvmob0"


def kvmnet_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvmnet", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "LIBVIRT_DEFAULT_URI": "test:///default"},
    )


def ip(*argv: str) -> str:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace with a veth NIC carrying 10.99.0.2/24 (no default route: no gateway)."""
    name = f"kvmob-{uuid.uuid4().hex[:8]}"
    ip("netns", "add", name)
    try:
        # A veth pair inside the namespace (the dummy module may be missing on CI kernels).
        ip("-n", name, "link", "add", NIC, "type", "veth", "peer", "name", "kvmob1")
        ip("-n", name, "link", "set", "kvmob1", "up")
        ip("-n", name, "addr", "add", "10.99.0.2/24", "dev", NIC)
        ip("-n", name, "link", "set", NIC, "up")
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return World(guests=(Guest("web1", running=False),)).write(tmp_path)


@pytest.mark.root("creates a network namespace with a veth NIC")
def test_create_from_defaults_to_auto_and_says_what_it_chose(uri: str, netns: str) -> None:
    result = kvmnet_cli(
        "-c", uri, "bridge", "web1", "br0", "--create-from", NIC, "--netns", netns, "--dry-run"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Nothing in the namespace configures the veth: runtime only, and the plan says so.
    assert "# backend auto -> iproute2: no network stack configures" in result.stdout
    assert f"# iproute2: bridge {NIC} into br0" in result.stdout
    assert f"ip link set {NIC} master br0" in result.stdout


def test_backend_names_are_the_library_s() -> None:
    from kvmnet.backends import BACKENDS
    from kvmnet.cli._common import BACKEND_NAMES

    assert set(BACKEND_NAMES) == {"auto", *BACKENDS}


def test_release_of_a_guest_on_nat_is_refused(uri: str) -> None:
    result = kvmnet_cli("-c", uri, "nat", "web1", "--release", NIC, "--dry-run")
    assert result.returncode == 1
    assert "needs the guest on a bridge" in result.stderr


@pytest.mark.root("creates a network namespace with a veth NIC")
def test_dry_run_prints_host_plan_diff_and_checks(uri: str, netns: str) -> None:
    result = kvmnet_cli(
        "-c", uri, "bridge", "web1", "br0", "--create-from", NIC,
        "--backend", "iproute2", "--netns", netns, "--dry-run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"ip link set {NIC} master br0" in out
    assert "+      <source bridge='br0'/>" in out
    assert f"{NIC} is a port of br0" in out
    assert "br0" not in ip("-n", netns, "-br", "link")  # nothing changed
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


@pytest.mark.root("creates a network namespace with a veth NIC")
def test_dry_run_draws_the_plan_before_and_after(uri: str, netns: str, tmp_path: Path) -> None:
    from lxml import etree

    svg = tmp_path / "plan.svg"
    result = kvmnet_cli(
        "-c", uri, "bridge", "web1", "br0", "--create-from", NIC,
        "--backend", "iproute2", "--netns", netns, "--dry-run", "--svg", str(svg),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"ip link set {NIC} master br0" in result.stdout  # the plan is printed as before
    root = etree.fromstring(svg.read_bytes())
    ids = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert {f"nic:{NIC}", "bridge:br0", "guest:web1"} <= ids
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "10.99.0.2/24" in texts and "changed by the plan" in texts
    assert "br0" not in ip("-n", netns, "-br", "link")  # nothing changed


@pytest.mark.root("creates a network namespace with a veth NIC")
def test_bridges_the_nic_for_real_then_moves_the_guest(uri: str, netns: str) -> None:
    result = kvmnet_cli(
        "-c", uri, "bridge", "web1", "br0", "--create-from", NIC,
        "--backend", "iproute2", "--netns", netns, "--wait", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "web1: interface 52:54:00:fe:00:00 is on br0" in result.stdout
    assert f"{NIC} bridged into br0 (iproute2)" in result.stdout
    links = {link["ifname"]: link for link in json.loads(ip("-n", netns, "-j", "addr", "show"))}
    assert links[NIC].get("master") == "br0"
    assert [a["local"] for a in links["br0"]["addr_info"] if a["family"] == "inet"] == ["10.99.0.2"]
    # Again: the bridge exists now, so the host is left alone.
    again = kvmnet_cli(
        "-c", uri, "bridge", "web1", "br0", "--create-from", NIC,
        "--backend", "iproute2", "--netns", netns, "--dry-run",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "br0 exists already: the host is left alone" in again.stdout


@pytest.mark.root("creates a network namespace with a veth NIC")
def test_missing_nic_is_one_line_and_exit_1(uri: str, netns: str) -> None:
    result = kvmnet_cli(
        "-c", uri, "bridge", "web1", "br0", "--create-from", "kvmob9",
        "--backend", "iproute2", "--netns", netns, "--dry-run",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "kvmob9" in result.stderr
    assert result.stdout == ""


def test_nat_release_refused_while_another_guest_uses_the_bridge(tmp_path: Path) -> None:
    uri = World(
        guests=(
            Guest("web1", nics=(Nic.bridge("br0"),), running=False),
            Guest("db1", nics=(Nic.bridge("br0"),), running=False),
        )
    ).write(tmp_path)
    result = kvmnet_cli(
        "-c", uri, "nat", "web1", "--release", NIC, "--backend", "iproute2", "--dry-run",
    )  # fmt: skip
    assert result.returncode == 1
    assert "db1" in result.stderr and "bridge-in-use" in result.stderr


@pytest.mark.root("creates a network namespace with a veth NIC")
def test_progress_bar_on_a_terminal_and_clean_stdout(uri: str, netns: str) -> None:
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [
                sys.executable, "-m", "kvmnet", "-c", uri, "bridge", "web1", "br0",
                "--create-from", NIC, "--backend", "iproute2", "--netns", netns, "--wait", "0",
            ],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            check=False,
            timeout=120,
        )  # fmt: skip
        os.close(slave)
        slave = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 0
    assert b"\r" in drawn and b"3/3" in drawn  # the bar, drawn to the end, on the terminal
    assert "\r" not in proc.stdout and "[#" not in proc.stdout  # the result alone on stdout
    assert "web1: interface 52:54:00:fe:00:00 is on br0" in proc.stdout

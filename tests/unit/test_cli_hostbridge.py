"""``kvmnet host-bridge`` / ``host-release`` / ``confirm`` through the real entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import LabHost, Lan, snapshot_diff


def kvmnet(*args: str, default_uri: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run kvmnet with $LIBVIRT_DEFAULT_URI set to ``default_uri`` (unset when None)."""
    env = {k: v for k, v in os.environ.items() if k != "LIBVIRT_DEFAULT_URI"}
    if default_uri is not None:
        env["LIBVIRT_DEFAULT_URI"] = default_uri
    return subprocess.run(
        [sys.executable, "-m", "kvmnet", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_usage_errors_exit_2() -> None:
    assert kvmnet("host-bridge", "eth0").returncode == 2  # no BRIDGE
    bogus = kvmnet("host-bridge", "eth0", "br0", "--backend", "bogus")
    assert bogus.returncode == 2 and "invalid choice" in bogus.stderr
    stp = kvmnet("host-bridge", "eth0", "br0", "--backend", "iproute2", "--forward-delay", "2")
    assert stp.returncode == 2 and "--stp" in stp.stderr


@pytest.mark.parametrize("within", ["0", "-5", "nan", "inf", "soon"])
def test_confirm_within_wants_seconds_above_zero(within: str) -> None:
    # 0 s would arm a timer that rolls back before anyone can confirm.
    for command in (
        ("host-bridge", "eth0", "br0", "--backend", "iproute2"),
        ("-c", "test:///default", "bridge", "test", "br0", "--create-from", "eth0"),
    ):
        result = kvmnet(*command, "--confirm-within", within, "--dry-run")
        assert result.returncode == 2 and "seconds" in result.stderr, result.stderr


def test_invalid_bridge_name_is_refused_with_one_line() -> None:
    result = kvmnet("host-bridge", "eth0", "br 0", "--backend", "iproute2", "--dry-run")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "'br 0'" in result.stderr


def test_a_runtime_backend_takes_no_root() -> None:
    result = kvmnet(
        "host-bridge", "eth0", "br0", "--backend", "iproute2", "--root", "/tmp", "--dry-run"
    )
    assert result.returncode == 1 and "takes no root" in result.stderr


def test_confirm_with_nothing_pending(tmp_path: Path) -> None:
    result = kvmnet("confirm", "--state-dir", str(tmp_path))
    assert result.returncode == 1 and "nothing waits for confirmation" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ("host-bridge", "eth0", "br0", "--backend", "iproute2", "--dry-run"),
        ("host-release", "eth0", "br0", "--backend", "iproute2", "--dry-run"),
        ("confirm",),
    ],
)
def test_without_c_the_host_side_acts_where_libvirt_default_uri_points(
    argv: tuple[str, ...], tmp_path: Path
) -> None:
    # Like every other command (and virsh): -c, else $LIBVIRT_DEFAULT_URI. A URI that libvirt
    # refuses shows it was read, without reaching for any machine.
    bad = "qemu+ssh://root@hv2/system?no_verify=yes"
    state = ("--state-dir", str(tmp_path)) if argv == ("confirm",) else ()
    result = kvmnet(*argv, *state, default_uri=bad)
    assert result.returncode == 1 and "no_verify='yes'" in result.stderr, result.stderr
    assert "internal error" not in result.stderr


def test_host_bridge_asks_for_the_default_uris_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import kvmnet.hostnet.onmachine as onmachine
    from kvmnet.cli import main
    from kvmnet.hostnet.runners.machine import Machine

    asked: list[Machine] = []

    class Stop(Exception):
        pass

    def runner_for(machine: Machine, *, netns: str | None = None) -> None:
        asked.append(machine)
        raise Stop

    monkeypatch.setattr(onmachine, "runner_for", runner_for)
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "qemu+ssh://root@hv2/system")
    for argv in (
        ["host-bridge", "eth0", "br0", "--dry-run"],
        ["confirm"],
        ["-c", "qemu:///system", "confirm"],
    ):
        assert main(argv) != 0  # stopped at the runner: nothing read or changed anywhere
    assert [str(m) for m in asked] == ["root@hv2", "root@hv2", "this machine"]


def test_the_confirm_hint_names_the_machine_the_change_went_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kvmnet.cli._common import confirm_command

    monkeypatch.delenv("LIBVIRT_DEFAULT_URI", raising=False)
    assert confirm_command("qemu:///system") == "kvmnet confirm"
    for uri in ("qemu+ssh://root@hv2/system", "qemu+SSH://root@hv2/system", "QEMU+SSH://hv2"):
        assert confirm_command(uri) == f"kvmnet -c {uri} confirm"
    # A bare `kvmnet confirm` would follow $LIBVIRT_DEFAULT_URI to hv2: spell this machine out.
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "qemu+ssh://root@hv2/system")
    assert confirm_command("qemu:///system") == "kvmnet -c qemu:///system confirm"


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan("kvb") as lan:
        yield lan


@pytest.fixture
def host(lan: Lan) -> LabHost:
    host = lan.add_host(mac=f"52:54:00:ee:00:{len(lan.hosts) + 1:02x}")
    host.dhcp(stay=False)
    return host


@pytest.mark.root("network namespaces")
@pytest.mark.integration
def test_dry_run_prints_the_plan_and_changes_nothing(host: LabHost) -> None:
    before = host.snapshot()
    result = kvmnet(
        "host-bridge", host.nic, "br0", "--backend", "iproute2", "--netns", host.ns, "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert f"$ ip link set {host.nic} master br0" in result.stdout
    assert "# dry run" in result.stdout
    assert not snapshot_diff(before, host.snapshot())


@pytest.mark.root("network namespaces")
@pytest.mark.integration
def test_dry_run_draws_the_plan_before_and_after(host: LabHost, tmp_path: Path) -> None:
    from lxml import etree

    before = host.snapshot()
    svg = tmp_path / "plan.svg"
    result = kvmnet(
        "host-bridge", host.nic, "br0", "--backend", "iproute2", "--netns", host.ns,
        "--dry-run", "--svg", str(svg),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"$ ip link set {host.nic} master br0" in result.stdout
    root = etree.fromstring(svg.read_bytes())
    ids = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert {f"nic:{host.nic}", "bridge:br0", "lan"} <= ids
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert f"{host.address}/24" in texts and "changed by the plan" in texts
    assert not snapshot_diff(before, host.snapshot())


@pytest.mark.root("network namespaces")
@pytest.mark.integration
def test_bridge_then_release(lan: Lan, host: LabHost) -> None:
    before = host.snapshot()
    args = (host.nic, "br0", "--backend", "iproute2", "--netns", host.ns)
    done = kvmnet("host-bridge", *args)
    assert done.returncode == 0, done.stderr
    assert "applied and verified" in done.stdout
    assert "dry run" not in done.stdout  # the plan shown before it runs is not a dry run
    assert host.addresses("br0") and lan.ping(host.address)
    back = kvmnet("host-release", *args)
    assert back.returncode == 0, back.stderr
    assert not snapshot_diff(before, host.snapshot())


@pytest.mark.root("network namespaces")
@pytest.mark.integration
def test_confirm_within_and_confirm(host: LabHost, tmp_path: Path) -> None:
    state = ("--state-dir", str(tmp_path))
    done = kvmnet(
        "host-bridge", host.nic, "br0", "--backend", "iproute2", "--netns", host.ns,
        "--confirm-within", "30", *state,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "kvmnet confirm" in done.stdout
    confirmed = kvmnet("confirm", *state)
    assert confirmed.returncode == 0 and confirmed.stdout.startswith("confirmed ")
    assert kvmnet("confirm", *state).returncode == 1


@pytest.mark.root("network namespaces")
@pytest.mark.integration
def test_missing_nic_exits_1(host: LabHost) -> None:
    result = kvmnet("host-bridge", "eth9", "br0", "--backend", "iproute2", "--netns", host.ns)
    assert result.returncode == 1 and "'eth9' does not exist" in result.stderr

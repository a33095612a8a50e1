"""``kvmnet [-c URI ...] mac``: the real entry point against test-driver hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvmnet.testing import Guest, Nic, World


def kvmnet(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The ledger goes to a folder of the test's own, never to the machine's /run/kvmnet.
    env = {**os.environ, "KVMNET_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "kvmnet", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.fixture
def two_hosts(tmp_path: Path) -> tuple[str, str]:
    """Host a uses 52:54:00:00:00:00-7f, host b 80-fe: only ...:ff is free on both."""
    a = World(
        (Guest("a", nics=tuple(Nic.bridge(mac=f"52:54:00:00:00:{i:02x}") for i in range(128))),)
    ).write(tmp_path, name="a.xml")
    b = World(
        (
            Guest(
                "b",
                nics=tuple(Nic.bridge(mac=f"52:54:00:00:00:{i:02x}") for i in range(128, 255)),
                running=False,
            ),
        )
    ).write(tmp_path, name="b.xml")
    return a, b


def test_prints_macs_free_on_every_host(tmp_path: Path, two_hosts: tuple[str, str]) -> None:
    a, b = two_hosts
    res = kvmnet(tmp_path, "-c", a, "-c", b, "mac", "--prefix", "52:54:00:00:00")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "52:54:00:00:00:ff\n"
    again = kvmnet(tmp_path, "-c", a, "-c", b, "mac", "--prefix", "52:54:00:00:00")
    # The first run's claim (10 minutes in the ledger) keeps a second process off it.
    assert again.returncode == 1
    assert again.stderr.startswith("kvmnet: no free MAC left in prefix 52:54:00:00:00")
    assert again.stderr.count("\n") == 1


def test_count_and_json(tmp_path: Path, two_hosts: tuple[str, str]) -> None:
    a, b = two_hosts
    res = kvmnet(tmp_path, "-c", a, "-c", b, "mac", "--count", "5", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"macs", "mode", "prefix", "hosts", "in_use", "sources"}
    assert len(set(out["macs"])) == 5
    used = {f"52:54:00:00:00:{i:02x}" for i in range(255)}
    assert all(m.startswith("52:54:00:") and m not in used for m in out["macs"])
    assert out["mode"] == "prefix" and out["prefix"] == "52:54:00"
    assert out["hosts"] == [a, b]
    assert out["in_use"] == 256  # 255 guest NICs + the worlds' NAT bridge MAC
    assert {(s["host"], s["source"], s["ok"]) for s in out["sources"]} >= {
        (a, "domains", True),
        (b, "domains", True),
    }
    assert (
        next(s for s in out["sources"] if s["host"] == b and s["source"] == "domains")["count"]
        == 127
    )


def test_random_and_key(tmp_path: Path, two_hosts: tuple[str, str]) -> None:
    a, _ = two_hosts
    res = kvmnet(tmp_path, "-c", a, "mac", "--random", "--count", "3")
    assert res.returncode == 0, res.stderr
    for mac in res.stdout.split():
        assert int(mac[:2], 16) & 0b11 == 0b10  # unicast, locally administered
    first = kvmnet(tmp_path, "-c", a, "mac", "--key", "web1/nic0")
    second = kvmnet(tmp_path, "-c", a, "mac", "--key", "web1/nic0")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout  # the ledger claim is for the same key
    other = kvmnet(tmp_path, "-c", a, "mac", "--key", "web1/nic1")
    assert other.stdout != first.stdout
    many = kvmnet(tmp_path, "-c", a, "mac", "--key", "web1", "--count", "2", "--no-ledger")
    assert len(set(many.stdout.split())) == 2


@pytest.mark.parametrize(
    ("args", "status", "needle"),
    [
        (["mac", "--prefix", "01:00:5e"], 1, "multicast"),
        (["mac", "--prefix", "zz"], 1, "'zz'"),
        (["mac", "--count", "0"], 2, "--count wants a whole number from 1 to 1,000,000, got '0'"),
        (["mac", "--count", "lots"], 2, "whole number"),
        (["mac", "--random", "--prefix", "52:54:00"], 2, "not allowed with"),
    ],
)
def test_refusals(
    tmp_path: Path, two_hosts: tuple[str, str], args: list[str], status: int, needle: str
) -> None:
    res = kvmnet(tmp_path, "-c", two_hosts[0], *args)
    assert res.returncode == status
    assert needle in res.stderr
    assert res.stdout == ""


def test_unreadable_host_is_a_warning(tmp_path: Path, two_hosts: tuple[str, str]) -> None:
    res = kvmnet(tmp_path, "-c", two_hosts[0], "mac", "--netns", "kvx-no-such-ns", "--json")
    assert res.returncode == 0, res.stderr
    assert "kvx-no-such-ns" in res.stderr and "WARNING" in res.stderr
    sources = json.loads(res.stdout)["sources"]
    assert [s["ok"] for s in sources if "kvx-no-such-ns" in s["host"]] == [False]


@pytest.mark.parametrize(
    "count",
    [
        "0",
        "-1",
        "-5",
        "1000001",
        "1000000000",
        "99999999999999999999",
        "9" * 5000,
        "1e9",
        "lots",
        "",
        " 5",
        "5 ",
        "+5",
        "1_000",
        "\uff11\uff10",
        "0x10",
        "3.0",
        "\u0663",
        "NaN",
    ],
)
def test_bad_counts_are_usage_errors_in_one_line(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from kvmnet.cli import main

    with pytest.raises(SystemExit) as info:
        main(["-c", "test:///default", "mac", "--count", count])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"--count wants a whole number from 1 to 1,000,000, got {count[:30]!r}" in err, err
    assert err.rstrip("\n").splitlines()[-1].startswith("kvmnet mac: error:")


def test_count_beyond_the_free_space_is_refused_at_once(
    tmp_path: Path, two_hosts: tuple[str, str]
) -> None:
    res = kvmnet(
        tmp_path, "-c", two_hosts[0], "mac", "--prefix", "52:54:00:00:00", "--count", "300"
    )
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("kvmnet: cannot hand out 300 MACs: prefix 52:54:00:00:00")
    assert res.stderr.count("\n") == 1
    # Nothing was claimed: all 128 free MACs of host a (it uses ...:00-7f) are still there.
    assert (
        kvmnet(
            tmp_path, "-c", two_hosts[0], "mac", "--prefix", "52:54:00:00:00", "--count", "128"
        ).returncode
        == 0
    )


def test_ten_thousand_claims_through_the_cli(tmp_path: Path) -> None:
    from kvmnet.virt.macledger import MacLedger

    uri = World(()).write(tmp_path)
    res = kvmnet(tmp_path / "state", "-c", uri, "mac", "--count", "10000")
    assert res.returncode == 0, res.stderr
    macs = res.stdout.split()
    assert len(macs) == len(set(macs)) == 10_000
    assert set(MacLedger(tmp_path / "state").claims()) == set(macs)

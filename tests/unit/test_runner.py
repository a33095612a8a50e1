"""The runner seam: local commands, atomic files, namespace wrapping, the recording fake."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from kvmnet.backends import IfcfgBackend, Iproute2Backend, NetplanBackend
from kvmnet.errors import CommandFailed, InvalidName
from kvmnet.hostnet.runners.runner import (
    CommandResult,
    LocalRunner,
    NetnsRunner,
    RecordingRunner,
    Runner,
    default_runner,
)


def test_local_run_captures_output_and_checks() -> None:
    runner = LocalRunner()
    result = runner.run([sys.executable, "-c", "import sys; print('hi'); sys.exit(0)"])
    assert result.ok and result.stdout == "hi\n"
    with pytest.raises(CommandFailed, match="exited 3: boom") as info:
        runner.run([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])
    assert info.value.returncode == 3 and info.value.stderr == "boom"
    assert not runner.run([sys.executable, "-c", "raise SystemExit(1)"], check=False).ok


def test_local_run_passes_input_and_reports_missing_programs() -> None:
    runner = LocalRunner()
    echo = [sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"]
    assert runner.run(echo, input="abc").stdout == "ABC\n"
    missing = runner.run(["/nonexistent/kvmnet-tool"], check=False)
    assert missing.returncode == 127 and "not found" in missing.stderr


def test_timeout_is_a_failure() -> None:
    result = LocalRunner().run(
        [sys.executable, "-c", "import time; time.sleep(5)"], check=False, timeout=0.2
    )
    assert result.returncode == 124 and "timed out" in result.stderr


def test_write_file_is_atomic_with_mode(tmp_path: Path) -> None:
    runner = LocalRunner()
    target = tmp_path / "sub" / "ifcfg-br0"
    runner.write_file(str(target), b"DEVICE=br0\n", mode=0o600)
    assert target.read_bytes() == b"DEVICE=br0\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert runner.file_mode(str(target)) == 0o600
    runner.write_file(str(target), b"DEVICE=br1\n", mode=0o640)
    assert target.read_bytes() == b"DEVICE=br1\n" and runner.file_mode(str(target)) == 0o640
    assert os.listdir(target.parent) == ["ifcfg-br0"], "no temp file may stay behind"
    assert runner.list_dir(str(target.parent)) == ("ifcfg-br0",)
    runner.remove_file(str(target))
    runner.remove_file(str(target))  # absent already: fine
    assert runner.read_file(str(target)) is None and runner.file_mode(str(target)) is None
    assert runner.list_dir(str(tmp_path / "nope")) is None


def test_netns_runner_wraps_commands_and_validates_the_name() -> None:
    runner = NetnsRunner("lab-host")
    assert runner._wrap(["ip", "link"]) == ["ip", "netns", "exec", "lab-host", "ip", "link"]
    assert runner.netns == "lab-host" and repr(runner) == "<NetnsRunner 'lab-host'>"
    for bad in ("", "a/b", "a b", "..", "-x"):
        with pytest.raises(InvalidName):
            NetnsRunner(bad)
    assert isinstance(default_runner(None), LocalRunner)
    assert default_runner("x").netns == "x"


def test_every_runner_satisfies_the_protocol() -> None:
    assert isinstance(LocalRunner(), Runner)
    assert isinstance(NetnsRunner("x"), Runner)
    assert isinstance(RecordingRunner(), Runner)


def test_recording_runner_records_and_replies() -> None:
    runner = RecordingRunner(
        replies={
            ("ip", "-j", "link"): "[]",
            ("nmcli", "-v"): CommandResult(("nmcli", "-v"), 0, "nmcli 1.42"),
            ("echo",): lambda argv: CommandResult(argv, 0, "called"),
        },
        fail=[("ip", "link", "del")],
    )
    assert runner.run(["ip", "-j", "link"]).stdout == "[]"
    assert runner.run(["nmcli", "-v"]).stdout == "nmcli 1.42"
    assert runner.run(["echo"]).stdout == "called"
    assert runner.run(["ip", "link", "set", "br0", "up"]).stdout == ""
    with pytest.raises(CommandFailed):
        runner.run(["ip", "link", "del", "br0"])
    pid = runner.spawn(["udhcpc", "-i", "br0"])
    runner.write_file("/etc/x", b"1", mode=0o600)
    runner.remove_file("/etc/y")
    assert pid > 0
    assert runner.commands[-2:] == [("ip", "link", "del", "br0"), ("udhcpc", "-i", "br0")]
    assert [c.kind for c in runner.changes] == ["run", "run", "spawn", "write", "remove"]
    assert runner.read_file("/etc/x") == b"1" and runner.file_mode("/etc/x") == 0o600
    assert runner.list_dir("/etc") == ("x",)


def test_kvmnets_own_queries_are_not_changes() -> None:
    runner = RecordingRunner()
    runner.run(["ip", "-j", "-d", "addr", "show"])
    runner.run(["nmcli", "-t", "-f", "DEVICE,STATE", "device", "status"])
    runner.run(["ip", "link", "set", "br0", "up"])
    assert [c.argv for c in runner.changes] == [("ip", "link", "set", "br0", "up")]


def test_an_empty_namespace_name_is_refused_not_taken_for_the_host() -> None:
    for backend in (Iproute2Backend, IfcfgBackend, NetplanBackend):
        with pytest.raises(InvalidName):
            backend(netns="")

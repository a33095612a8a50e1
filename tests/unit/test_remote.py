"""The machine a URI names, the SSH runner's command line, and the other-machine check.

No sshd here (tests/integration/test_remote_ssh.py has the real one): the remote command
string SshRunner builds is handed to a real ``sh`` to prove that every argument arrives
as it was given.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import kvmnet
from kvmnet.backends import Iproute2Backend
from kvmnet.hostnet.onmachine import (
    backend_on,
    check_same_machine,
    runner_for,
    runner_machine,
)
from kvmnet.hostnet.remotedeadman import LocalDeadMan, RemoteDeadMan, deadman_for
from kvmnet.hostnet.runners.machine import LOCAL, Machine, machine_of
from kvmnet.hostnet.runners.runner import LocalRunner, NetnsRunner, RecordingRunner
from kvmnet.hostnet.runners.sshrunner import SshRunner, kvmnet_zip

HV2 = "qemu+ssh://root@hv2:2222/system?keyfile=/k/id&no_verify=1&socket=/s"


@pytest.mark.parametrize(
    "uri", ["qemu:///system", "qemu+unix:///system?socket=/tmp/s", "qemu:///session", "lxc:///"]
)
def test_local_uris_name_this_machine(uri: str) -> None:
    machine = machine_of(uri)
    assert machine.is_local and machine.same_as(LOCAL) and str(machine) == "this machine"


def test_an_ssh_uri_names_its_host_with_libvirts_options() -> None:
    m = machine_of(HV2 + "&known_hosts=/kh&command=/usr/local/bin/ssh")
    assert (m.kind, m.host, m.user, m.port) == ("ssh", "hv2", "root", 2222)
    # known_hosts= is libssh/libssh2's: libvirt's ssh transport ignores it, and so does kvmnet
    assert (m.keyfile, m.no_verify, m.command) == ("/k/id", True, "/usr/local/bin/ssh")
    assert str(m) == "root@hv2:2222"
    assert not machine_of("qemu+ssh://hv2/system?no_verify=0").no_verify
    # One machine whoever logs in; another port is another sshd, so another machine here.
    assert m.same_as(machine_of("qemu+ssh://admin@HV2:2222/system"))
    assert not m.same_as(machine_of("qemu+ssh://root@hv2/system"))


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("test:///default", "test driver"),
        ("qemu+tcp://hv2/system", "transport 'tcp'"),
        ("qemu://hv2/system", "TLS"),
        ("qemu+libssh2://hv2/system", "transport 'libssh2'"),
        ("qemu+ssh://-oProxyCommand=x/system", "not a host name"),
        ("qemu+ssh://hv2:port/system", "not a number"),
        ("qemu+ssh://a%20b@hv2/system", "not a user name"),
    ],
)
def test_uris_without_a_reachable_machine_are_refused(uri: str, why: str) -> None:
    with pytest.raises(kvmnet.PreflightRefused, match=why) as caught:
        machine_of(uri)
    assert caught.value.check == "host-side"
    assert uri in str(caught.value) and "qemu+ssh://" in str(caught.value)


def _runner(**kw: object) -> SshRunner:
    return SshRunner(machine_of(HV2), **kw)  # type: ignore[arg-type]


def test_ssh_options_follow_the_uri_like_libvirts_transport() -> None:
    runner = _runner()
    try:
        argv = runner.ssh_argv(["ip", "-j", "link"])
        assert argv[0] == "ssh" and argv[-3:] == ["--", "hv2", "ip -j link"]
        text = " ".join(argv)
        for option in ("-p 2222", "-l root", "-i /k/id", "StrictHostKeyChecking=no"):
            assert option in text
        assert "ControlMaster=auto" in text and f"ControlPath={runner.control_path}" in text
        assert "BatchMode=yes" in text
        control = Path(str(runner.control_path)).parent
        assert control.stat().st_mode & 0o777 == 0o700
    finally:
        runner.close()
    assert not control.exists()
    strict = SshRunner(machine_of("qemu+ssh://hv2/system"), multiplex=False)
    text = " ".join(strict.ssh_argv(["true"]))
    assert "StrictHostKeyChecking" not in text and "ControlPath=none" in text
    assert " -l " not in text and " -p " not in text


@pytest.mark.parametrize(
    "words",
    [
        ["printf", "%s\\n", "a b", "$(id)", "`id`", "'q'", '"d"', "x;y", "*", "\\", "", "~"],
        ["sh", "-c", 'echo "$1"', "kvmnet", "two  spaces\nnewline"],
    ],
)
def test_the_remote_command_hands_every_argument_over_unchanged(words: list[str]) -> None:
    runner = _runner(multiplex=False)
    remote = runner.ssh_argv(words)[-1]  # the one string sshd gives the user's shell
    # The far side runs `$SHELL -c STRING`: a real shell must see the argv we meant.
    seen = subprocess.run(["sh", "-c", remote], capture_output=True, check=True).stdout
    direct = subprocess.run(words, capture_output=True, check=True).stdout
    assert seen == direct


def test_a_namespace_on_the_far_side_wraps_the_command() -> None:
    runner = _runner()
    try:
        inner = runner.sibling(netns="lab-1")
        assert inner.netns == "lab-1" and inner.control_path == runner.control_path
        assert inner.ssh_argv(["ip", "link"])[-1] == "ip netns exec lab-1 ip link"
        assert repr(inner) == "<SshRunner root@hv2:2222 netns 'lab-1'>"
    finally:
        runner.close()


def test_kvmnets_own_helpers_run_from_the_shipped_zip(tmp_path: Path) -> None:
    name, data = kvmnet_zip()
    assert name.startswith("kvmnet-") and name.endswith(".pyz") and kvmnet_zip()[1] == data
    # The zip runs a kvmnet module with nothing installed: a python3 with an empty path.
    zip_path = tmp_path / name
    zip_path.write_bytes(data)
    out = subprocess.run(
        ["python3", "-I", "-S", str(zip_path), "kvmnet.hostnet.deadman"],
        capture_output=True,
        check=False,
    )
    assert out.returncode == 2  # deadman's usage error: it ran, without its file argument


def test_runner_machines() -> None:
    assert runner_machine(LocalRunner()) == LOCAL
    assert runner_machine(NetnsRunner("lab-x")) == LOCAL
    assert runner_machine(RecordingRunner()) is None
    ssh = _runner(multiplex=False)
    assert runner_machine(ssh) == machine_of(HV2)
    assert isinstance(runner_for(LOCAL), LocalRunner)
    assert isinstance(runner_for(LOCAL, netns="lab-x"), NetnsRunner)
    assert isinstance(runner_for(machine_of(HV2)), SshRunner)


def test_a_runner_of_another_machine_is_refused_with_the_override_named() -> None:
    hv2 = machine_of(HV2)
    with pytest.raises(kvmnet.PreflightRefused) as caught:
        check_same_machine(hv2, LocalRunner())
    assert caught.value.check == "other-machine"
    assert "root@hv2:2222" in str(caught.value) and "force=('other-machine',)" in str(caught.value)
    with pytest.raises(kvmnet.PreflightRefused, match="other-machine"):
        check_same_machine(LOCAL, _runner(multiplex=False))
    check_same_machine(hv2, LocalRunner(), force=("other-machine",))
    check_same_machine(hv2, RecordingRunner())  # cannot tell: an embedder's own runner
    check_same_machine(LOCAL, NetnsRunner("lab-x"))
    check_same_machine(hv2, _runner(multiplex=False))


def test_auto_on_a_runner_is_the_full_detection_bound_to_it() -> None:
    from kvmnet.hostnet.backends.auto import AutoBackend

    bare = RecordingRunner()
    backend = backend_on(bare, "auto", root="/")
    assert isinstance(backend, AutoBackend) and backend.runner is bare
    assert isinstance(backend_on(bare, "iproute2"), Iproute2Backend)
    with pytest.raises(kvmnet.KvmnetError, match="unknown backend 'nope'"):
        backend_on(bare, "nope")


def test_the_dead_man_runs_where_the_runner_acts() -> None:
    assert isinstance(deadman_for(LocalRunner()), LocalDeadMan)
    assert isinstance(deadman_for(RecordingRunner()), LocalDeadMan)
    remote = deadman_for(_runner(multiplex=False))
    assert isinstance(remote, RemoteDeadMan)


def test_a_test_driver_host_has_no_machine() -> None:
    with kvmnet.connect("test:///default") as host:
        with pytest.raises(kvmnet.PreflightRefused, match="test driver") as caught:
            host.backend()
        assert caught.value.check == "host-side"
        with pytest.raises(kvmnet.PreflightRefused, match="test driver"):
            host.nic("eth0")


def test_machine_is_a_value() -> None:
    m = Machine("ssh", host="hv2")
    assert m.destination == "hv2" and m.identity == ("ssh", "hv2", 22)
    with pytest.raises(kvmnet.InvalidInput):
        SshRunner(LOCAL)


def test_confirm_on_renames_each_pending_file_and_names_a_late_one() -> None:
    from kvmnet.hostnet.remotedeadman import confirm_on

    waiting = RecordingRunner(files={"/st/a-1-br0.pending.json": b"{}", "/st/x.log": b""})
    assert confirm_on(waiting, state_dir="/st") == ["a-1-br0"]
    assert waiting.commands == [
        ("mv", "-T", "--", "/st/a-1-br0.pending.json", "/st/a-1-br0.confirmed.json")
    ]
    late = RecordingRunner(files={"/st/b-2-br0.rolled-back.json": b"{}"})
    with pytest.raises(kvmnet.ConfirmationError, match="b-2-br0, was rolled back"):
        confirm_on(late, state_dir="/st")
    with pytest.raises(kvmnet.ConfirmationError, match="nothing waits"):
        confirm_on(RecordingRunner(), state_dir="/st")


class BatchingRunner(RecordingRunner):
    """A RecordingRunner that, like SshRunner, runs consecutive commands as one batch."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[tuple[str, ...]]] = []

    def run_batch(self, argvs: list[list[str]]) -> tuple[int, None]:
        self.batches.append([tuple(a) for a in argvs])
        for argv in argvs:
            self.run(argv)
        return len(argvs), None


def test_a_remote_runner_gets_consecutive_commands_in_one_batch() -> None:
    from kvmnet.hostnet.apply import _groups
    from kvmnet.hostnet.model.plan import RunCommand, WriteFile

    steps = (
        RunCommand(("ip", "link", "add", "br0")),
        RunCommand(("ip", "link", "set", "eth0", "master", "br0")),
        WriteFile("/etc/x", "x"),
        RunCommand(("ip", "link", "set", "br0", "up")),
    )
    assert [len(g) for g in _groups(BatchingRunner(), steps)] == [2, 1, 1]
    assert [len(g) for g in _groups(RecordingRunner(), steps)] == [1, 1, 1, 1]

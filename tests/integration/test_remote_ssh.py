"""A remote hypervisor for real: kvmnet on "the laptop" (this process) reaches a hermetic
libvirtd and the hypervisor's network only over SSH (ssh_lab.py), and the dead-man timer
rolls back ON the hypervisor when the SSH session is cut or the laptop dies.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kvmnet
from kvmnet.backends import Iproute2Backend
from kvmnet.hostnet.remotedeadman import confirm_on
from kvmnet.hostnet.runners.machine import machine_of
from kvmnet.hostnet.runners.sshrunner import SshRunner
from tests.lab import snapshot_diff

from .lab_host import kill_pid, run, wait_for
from .libvirt_lab import LabFactory
from .ssh_lab import Hypervisor, SshLab

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root("namespaces, a libvirtd and an sshd of the test's own"),
]

NIC = "enp0s20f0u1"
BR = "br0"


@pytest.fixture(scope="module")
def ssh_lab(lab_factory: LabFactory) -> Iterator[SshLab]:
    with SshLab(lab_factory) as lab:
        yield lab


@pytest.fixture(scope="module")
def hv(ssh_lab: SshLab) -> Hypervisor:
    return ssh_lab.add_hypervisor()


@pytest.fixture(autouse=True)
def _remote_lib(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # The "remote" shares this machine's file system: keep the helper zip out of /run.
    lib = tmp_path_factory.mktemp("remote-lib")
    monkeypatch.setenv("KVMNET_REMOTE_LIB", str(lib / "lib"))


@pytest.fixture
def clean(hv: Hypervisor) -> Iterator[dict[str, object]]:
    """The hypervisor's ``ip -j`` snapshot before the test; afterwards its NIC is put back
    (out of br0, addresses back) over a new SSH session if a test left it bridged."""
    before = hv.snapshot()
    yield before
    hv.lab.destroy_guests()
    if hv.lab.run(["ip", "link", "show", BR], check=False).returncode == 0:
        # The way back over the session's own NIC, through kvmnet: its commands run in one
        # round trip (a NIC leaving its bridge cannot answer before the routes follow it).
        with kvmnet.connect(hv.uri) as host:
            host.bridge(BR, backend=host.backend("iproute2")).release(NIC, force=("ssh",))
        assert not snapshot_diff(before, hv.snapshot())


def laptop_links() -> dict[str, list[str]]:
    """This machine's own links and their addresses (the laptop must not change)."""
    entries = json.loads(run(["ip", "-j", "addr"]).stdout)
    return {e["ifname"]: sorted(a["local"] for a in e.get("addr_info", [])) for e in entries}


def same_laptop(before: dict[str, list[str]], after: dict[str, list[str]]) -> bool:
    """Nothing of ours appeared and no link that was there changed (others' test labs may
    come and go on this machine meanwhile)."""
    common = before.keys() & after.keys()
    new = after.keys() - before.keys()
    return all(before[n] == after[n] for n in common) and not new & {BR, NIC}


def remote_files(hv: Hypervisor, state: Path) -> list[str]:
    out = hv.ssh(f"ls -1 {state}", check=False)
    return sorted(out.split())


# -- the runner ---------------------------------------------------------------------------


def test_ssh_runner_uses_one_connection_and_quotes_every_argument(
    hv: Hypervisor, tmp_path: Path
) -> None:
    runner = SshRunner(machine_of(hv.uri))
    try:
        accepted = hv.sshd.accepted()
        nasty = ["a b", "$(touch /tmp/kvmnet-pwned)", "'q'", '"d"', "x;y", "*", "\\", ""]
        out = runner.run(["printf", "%s|", *nasty]).stdout
        assert out == "".join(f"{w}|" for w in nasty)
        path = str(tmp_path / "dir with space" / "it's.conf")
        runner.write_file(path, b"line $HOME `id`\n", mode=0o640)
        assert Path(path).read_bytes() == b"line $HOME `id`\n"  # the same file system
        assert runner.read_file(path) == b"line $HOME `id`\n"
        assert runner.file_mode(path) == 0o640
        assert runner.list_dir(str(tmp_path / "dir with space")) == ("it's.conf",)
        assert runner.read_file(str(tmp_path / "missing")) is None
        assert runner.file_mode(str(tmp_path / "missing")) is None
        runner.remove_file(path)
        assert not Path(path).exists()
        # A batch stops at the first command that fails and says how far it got.
        done, failed = runner.run_batch([["true"], ["sh", "-c", "echo no >&2; exit 3"], ["id"]])
        assert done == 1 and failed is not None
        assert (failed.returncode, failed.stderr) == (3, "no\n")
        assert runner.run_batch([["true"], ["printf", "%s", "a b"]]) == (2, None)
        assert not Path("/tmp/kvmnet-pwned").exists()
        # The commands ran in the hypervisor's namespace, on the session's own address.
        session = runner.ssh_connection()
        assert session is not None and session.split()[2] == hv.address
        assert hv.sshd.accepted() == accepted + 1, hv.sshd.log  # one multiplexed master
        master = runner.master_pid()
        assert master is not None
    finally:
        runner.close()
    wait_for(lambda: not Path(f"/proc/{master}").exists(), timeout=10, what="the master to end")


# -- refusals and dry runs ----------------------------------------------------------------


def test_a_backend_for_another_machine_is_refused(hv: Hypervisor, clean: object) -> None:
    hv.lab.define_guest("g-wrong", network="default", start=False)
    links = laptop_links()
    with kvmnet.connect(hv.uri) as host:
        local = Iproute2Backend()  # this machine's network, not the hypervisor's
        with pytest.raises(kvmnet.PreflightRefused) as caught:
            host.bridge_guest("g-wrong", bridge=BR, nic=NIC, backend=local)
        assert caught.value.check == "other-machine"
        assert hv.address in str(caught.value) and "this machine" in str(caught.value)
        with pytest.raises(kvmnet.PreflightRefused, match="other-machine"):
            host.bridge(BR, backend=local)
        # The documented override only lets the object be made; nothing was changed.
        assert host.nic(NIC, backend=local, force=("other-machine",)).name == NIC
    assert hv.snapshot() == clean
    assert same_laptop(links, laptop_links())
    assert [n.source for n in hv.lab.nics("g-wrong", inactive=True)] == ["default"]


def test_a_dry_run_over_ssh_reads_the_hypervisor_and_changes_nothing(
    hv: Hypervisor, clean: object
) -> None:
    hv.lab.define_guest("g-dry", network="default", start=False)
    links = laptop_links()
    with kvmnet.connect(hv.uri) as host:
        nic = host.nic(NIC)
        assert nic.exists and [a.ip for a in nic.addresses] == [hv.address]
        result = host.bridge_guest(
            "g-dry", bridge=BR, nic=NIC, backend=host.backend("iproute2"), dry_run=True
        )
        plan = result.plan.host_plan
        assert plan is not None and plan.requires_confirmation  # the SSH session uses NIC
        assert any(hv.address in " ".join(c) for c in plan.commands)
        # Applying without a dead-man timer over the session's own NIC is refused.
        with pytest.raises(kvmnet.PreflightRefused) as caught:
            host.bridge(BR).enslave(NIC)
        assert caught.value.check == "ssh"
    assert hv.snapshot() == clean
    assert same_laptop(links, laptop_links())
    assert [n.source for n in hv.lab.nics("g-dry", inactive=True)] == ["default"]


# -- the change the dead-man timer exists for ---------------------------------------------


def test_bridging_the_session_nic_then_confirming_over_a_new_connection(
    hv: Hypervisor, clean: object, tmp_path: Path
) -> None:
    hv.lab.define_guest("g-lan", network="default")
    with kvmnet.connect(hv.uri) as host:
        accepted = hv.sshd.accepted()
        result = host.bridge_guest(
            "g-lan",
            bridge=BR,
            nic=NIC,
            backend=host.backend("iproute2"),
            confirm_within=30,
            address_timeout=0,
            state_dir=str(tmp_path),
        )
        assert result.pending_confirmation
        # kvmnet's own host-side work rode on one multiplexed master.
        assert hv.sshd.accepted() == accepted + 1
        assert [f.split(".")[-2] for f in remote_files(hv, tmp_path) if f.endswith("json")] == [
            "pending"
        ]
        before_confirm = hv.sshd.accepted()
        ids = confirm_on(host.runner(), state_dir=str(tmp_path))
        assert hv.sshd.accepted() == before_confirm + 1  # the confirmation: one new connection
    assert len(ids) == 1
    states = [f for f in remote_files(hv, tmp_path) if f.endswith(".json")]
    assert states == [f"{ids[0]}.confirmed.json"]
    addr = json.loads(hv.ssh(f"ip -j -4 addr show dev {BR}"))
    assert [a["local"] for a in addr[0]["addr_info"]] == [hv.address]
    link = json.loads(hv.ssh(f"ip -j link show dev {NIC}"))
    assert link[0]["master"] == BR
    live = hv.lab.nics("g-lan")
    assert [(n.type, n.source) for n in live] == [("bridge", BR)]
    assert hv.lab.bridge_ports(BR).get(str(live[0].target)) == BR
    # The watcher is gone: nothing rolls back later.
    time.sleep(1)
    assert not [f for f in remote_files(hv, tmp_path) if "rolled-back" in f]


LAPTOP = """
import json, sys, time
import kvmnet
from kvmnet.hostnet import deadman
from kvmnet.hostnet.model.plan import RunCommand
from dataclasses import replace
uri, state, mode = sys.argv[1:]
deadman.APPLY_BUDGET = 45.0   # the watcher's room for the steps (120 s), shortened
host = kvmnet.connect(uri)
plan = host.bridge("br0", backend=host.backend("iproute2")).enslave("enp0s20f0u1", dry_run=True)
if mode == "cut":
    # A change that cuts the session (as a wrong gateway or address would): br0 loses it.
    cut = RunCommand(("ip", "addr", "flush", "dev", "br0"), why="cuts the SSH session")
    plan = replace(plan, steps=(*plan.steps, cut), checks=())
print("master", host.runner().master_pid(), host.runner().control_path, flush=True)
result = plan.apply(confirm_within=3, state_dir=state)
print("applied", result.pending_confirmation, flush=True)
time.sleep(300)
"""


def _laptop(
    hv: Hypervisor, state: Path, mode: str
) -> tuple[subprocess.Popen[str], tuple[int, Path]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", LAPTOP, hv.uri, str(state), mode],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("master "), line
    return proc, (int(line.split()[1]), Path(line.split()[2]).parent)


def _rolled_back(hv: Hypervisor, state: Path) -> bool:
    try:
        return any(f.endswith(".rolled-back.json") for f in remote_files(hv, state))
    except Exception:  # the hypervisor is unreachable until the watcher has rolled back
        return False


def _stop(proc: subprocess.Popen[str], master: tuple[int, Path]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    kill_pid(master[0])  # the laptop's SSH master and its folder, left behind by SIGKILL
    shutil.rmtree(master[1], ignore_errors=True)


def test_the_laptop_killed_after_apply_the_hypervisor_rolls_back_by_itself(
    hv: Hypervisor, clean: dict[str, object], tmp_path: Path
) -> None:
    proc, master = _laptop(hv, tmp_path, "plain")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("applied ")
        assert json.loads(hv.ssh(f"ip -j link show dev {NIC}"))[0]["master"] == BR
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_for(lambda: _rolled_back(hv, tmp_path), timeout=40, what="the remote rollback")
    finally:
        _stop(proc, master)
    assert hv.reachable()
    assert not snapshot_diff(clean, hv.snapshot())


def test_a_change_that_cuts_ssh_is_rolled_back_on_the_hypervisor(
    hv: Hypervisor, clean: dict[str, object], tmp_path: Path
) -> None:
    proc, master = _laptop(hv, tmp_path, "cut")
    try:
        # The session dies with br0's address: the hypervisor is unreachable for a while.
        # (The steps before the cut may take a while on a loaded machine: the watcher waits
        # APPLY_BUDGET for them, since the cut stops the laptop from telling it they ended.)
        wait_for(lambda: not hv.reachable(), timeout=50, what="the SSH session to be cut")
        wait_for(lambda: _rolled_back(hv, tmp_path), timeout=90, what="the remote rollback")
    finally:
        _stop(proc, master)
    assert hv.reachable()
    assert not snapshot_diff(clean, hv.snapshot())
    log = next(tmp_path.glob("*.log")).read_text()
    assert "rolling back" in log and "still differs" not in log


def test_probe_after_a_remote_switch_runs_on_the_hypervisor(
    hv: Hypervisor, ssh_lab: SshLab, clean: object
) -> None:
    """dom.addresses(probe=True) sweeps the hypervisor's br0, from the hypervisor."""
    assert ssh_lab.lan is not None
    peer = ssh_lab.lan.add_host(mac="52:54:00:5e:77:77")  # silent until the sweep reaches it
    peer_ip = f"{ssh_lab.subnet}.77"
    peer.ip("addr", "add", f"{peer_ip}/24", "dev", peer.nic)
    assert peer_ip not in hv.ssh("ip neigh show")
    hv.lab.define_guest("g-probe", network="default")
    with kvmnet.connect(hv.uri) as host:
        host.bridge(BR, backend=host.backend("iproute2")).enslave(NIC, force=("ssh",))
        host.domain("g-probe").use_bridge(BR)
        # A diskless guest never answers; what matters is where the sweep ran.
        assert host.domain("g-probe").addresses(probe=True) == []
    neigh = json.loads(hv.ssh(f"ip -j neigh show dev {BR}"))
    assert [e["lladdr"] for e in neigh if e.get("dst") == peer_ip] == ["52:54:00:5e:77:77"]


def test_the_mac_inventory_reads_the_hypervisors_links_over_ssh(hv: Hypervisor) -> None:
    """A qemu+ssh host's own links come from `ip -j link` on that machine, over the Host's
    SSH connection (not libvirt's interface API: concurrent calls can abort libvirtd)."""
    theirs = {e["ifname"]: e["address"] for e in json.loads(hv.ssh("ip -j link show"))}
    with kvmnet.connect(hv.uri) as host:
        alloc = kvmnet.MacAllocator(host)
        nic_mac = theirs[NIC]
        assert alloc.in_use[nic_mac] == (f"host link {NIC!r} on {hv.uri}",)
        (links,) = [r for r in alloc.sources if r.source == "host links (ip link over ssh)"]
        assert links.ok and links.host == hv.uri, links
        assert not alloc.kernel_links  # the laptop's own links are not the hypervisor's
        with pytest.raises(kvmnet.MacInUse, match=NIC):
            alloc.reserve(nic_mac)


def kvmnet_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvmnet", *argv], capture_output=True, text=True, timeout=300
    )


def test_the_cli_bridges_and_confirms_on_the_machine_of_the_uri(
    hv: Hypervisor, clean: dict[str, object], tmp_path: Path
) -> None:
    links = laptop_links()
    state = ("--state-dir", str(tmp_path))
    dry = kvmnet_cli("-c", hv.uri, "host-bridge", NIC, BR, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"# iproute2: bridge {NIC} into {BR}" in dry.stdout and hv.address in dry.stdout
    assert not snapshot_diff(clean, hv.snapshot())
    refused = kvmnet_cli("-c", hv.uri, "host-bridge", NIC, BR)  # the session's own NIC
    assert refused.returncode == 1 and "confirm-within" in refused.stderr
    nothing = kvmnet_cli("-c", hv.uri, "confirm", *state)
    assert nothing.returncode == 1 and "nothing waits" in nothing.stderr
    done = kvmnet_cli("-c", hv.uri, "host-bridge", NIC, BR, "--confirm-within", "60", *state)
    assert done.returncode == 0, done.stderr
    assert f"kvmnet -c '{hv.uri}' confirm" in done.stdout
    confirmed = kvmnet_cli("-c", hv.uri, "confirm", *state)
    assert confirmed.returncode == 0, confirmed.stderr
    assert confirmed.stdout.startswith("confirmed ")
    assert json.loads(hv.ssh(f"ip -j link show dev {NIC}"))[0]["master"] == BR
    assert same_laptop(links, laptop_links())  # the laptop's own network was never touched

"""The dead-man watcher runs as root and executes the steps in its pending file: a state dir
or file that anyone but root could have written is refused and nothing runs. Each case writes
a pending file whose rollback step would create a marker, runs the real watcher on it, and
checks the marker does not exist (the trusted control shows the marker does appear)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvmnet.backends import Iproute2Backend
from kvmnet.errors import UntrustedPath
from kvmnet.hostnet import confirm
from kvmnet.hostnet.nic import Bridge
from kvmnet.hostnet.trust import read_trusted, trusted_dir
from tests.lab.fakes import NIC, dhcp_host

NOBODY = 65534


def pending(directory: Path, marker: Path, *, deadline: float | None = None) -> Path:
    """A pending file whose rollback runs `touch MARKER` (nothing else: no links, no routes)."""
    data = {
        "id": "t",
        "plan": "<test>",
        "netns": None,
        "confirm_within": 1,
        "deadline": time.time() - 1 if deadline is None else deadline,
        "snapshot": {"links": {}, "routes": [], "files": [], "taken_at": time.time()},
        "hints": [{"type": "run", "argv": ["touch", str(marker)], "why": ""}],
        "restore_runtime": False,
        "started": [],
        "stopped": [],
        "applied": True,
    }
    path = directory / "t.pending.json"
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return path


def watcher(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "kvmnet.hostnet.deadman", str(path)])


def run_watcher(path: Path) -> int:
    proc = watcher(path)
    return proc.wait(timeout=30)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    return directory


def test_a_trusted_state_dir_runs_the_rollback(state: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = pending(state, marker)
    assert run_watcher(path) == 0
    assert marker.exists(), "the control: in a trusted dir the step runs"
    assert list(state.glob("t.rolled-back.json"))


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o720, 0o702, 0o1777])
def test_a_group_or_world_writable_state_dir_is_refused(
    state: Path, tmp_path: Path, mode: int
) -> None:
    marker = tmp_path / "marker"
    path = pending(state, marker)
    state.chmod(mode)
    assert run_watcher(path) == 3
    assert not marker.exists()
    assert path.exists(), "left as it was"
    with pytest.raises(UntrustedPath, match=rf"{state} is writable by group or others.*chmod go-w"):
        read_trusted(path)


def test_a_world_writable_parent_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    parent = tmp_path / "open"
    parent.mkdir()
    parent.chmod(0o777)
    state = parent / "state"
    state.mkdir(mode=0o700)
    marker = tmp_path / "marker"
    path = pending(state, marker)
    assert run_watcher(path) == 3
    assert not marker.exists()
    with pytest.raises(UntrustedPath, match=f"{parent} is writable"):
        trusted_dir(state)


@pytest.mark.root("chown to nobody")
def test_a_state_dir_owned_by_another_user_is_refused(state: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = pending(state, marker)
    os.chown(state, NOBODY, NOBODY)
    assert run_watcher(path) == 3
    assert not marker.exists()
    with pytest.raises(UntrustedPath, match=rf"{state} is owned by uid {NOBODY}.*chown root"):
        trusted_dir(state)


@pytest.mark.root("chown to nobody")
def test_a_pending_file_owned_by_another_user_is_refused(state: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = pending(state, marker)
    os.chown(path, NOBODY, NOBODY)
    assert run_watcher(path) == 3
    assert not marker.exists()


def test_a_group_writable_pending_file_is_refused(state: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = pending(state, marker)
    path.chmod(0o620)
    assert run_watcher(path) == 3
    assert not marker.exists()


def test_a_symlinked_state_dir_is_refused(state: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    pending(state, marker)
    link = tmp_path / "link"
    link.symlink_to(state)
    assert run_watcher(link / "t.pending.json") == 3
    assert not marker.exists()
    with pytest.raises(UntrustedPath, match=f"{link} is a symbolic link"):
        trusted_dir(link)


def test_a_symlinked_pending_file_is_refused(state: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    elsewhere = tmp_path / "real"
    elsewhere.mkdir(mode=0o700)
    real = pending(elsewhere, marker)
    (state / "t.pending.json").symlink_to(real)
    assert run_watcher(state / "t.pending.json") == 3
    assert not marker.exists()


def test_a_dir_made_unsafe_after_arming_is_refused_before_executing(
    state: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    path = pending(state, marker, deadline=time.time() + 1.5)
    proc = watcher(path)
    time.sleep(0.5)  # the watcher has read and trusted it by now
    assert proc.poll() is None
    state.chmod(0o777)
    assert proc.wait(timeout=30) == 3
    assert not marker.exists()


def test_apply_refuses_an_unsafe_state_dir_before_anything(state: Path) -> None:
    state.chmod(0o777)
    runner = dhcp_host()
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    runner.calls.clear()
    with pytest.raises(UntrustedPath, match=str(state)):
        plan.apply(confirm_within=60, state_dir=str(state))
    assert runner.calls == []
    assert list(state.iterdir()) == [], "no pending file, no watcher"


def test_confirm_refuses_an_unsafe_state_dir(state: Path, tmp_path: Path) -> None:
    pending(state, tmp_path / "marker", deadline=time.time() + 60)
    state.chmod(0o777)
    with pytest.raises(UntrustedPath):
        confirm(state_dir=str(state))
    assert (state / "t.pending.json").exists()


def test_a_missing_state_dir_is_made_private(tmp_path: Path) -> None:
    made = trusted_dir(tmp_path / "a" / "state", create=True)
    assert made == tmp_path / "a" / "state"
    assert made.stat().st_mode & 0o777 == 0o700

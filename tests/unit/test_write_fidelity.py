"""What a write keeps: a symlink stays a symlink (its target gets the bytes), the file's
owner, group and extended attributes stay; a directory where a file belongs is refused; a
temporary file an interrupted write left behind goes; a rollback puts content back the same
way and removes the folders the plan made. Real files under tmp_path."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from kvmnet.errors import UntrustedPath
from kvmnet.hostnet.backends.netplan import NETPLAN_DIR, NetplanBackend
from kvmnet.hostnet.model.request import BridgeRequest, HostState
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.runners import files
from kvmnet.hostnet.runners.machine import machine_of
from kvmnet.hostnet.runners.runner import LocalRunner
from kvmnet.hostnet.runners.sshrunner import SshRunner
from kvmnet.hostnet.snapshot import FileSnapshot, Snapshot, restore_files

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
NIC = "eth0"
CURRENT_NIC = LinkState(NIC, "52:54:00:aa:00:01", addresses=(IpAddress("10.0.0.5/24"),))


def _xattrs_or_skip(path: Path, *names: str) -> None:
    for name in names:
        try:
            os.setxattr(path, name, b"v-" + name.encode())
        except OSError as exc:
            pytest.skip(f"{path.parent}'s file system refuses xattr {name}: {exc.strerror}")


def _snapshot(*snaps: FileSnapshot) -> Snapshot:
    return Snapshot(links={}, routes=(), files=snaps)


def test_a_write_through_a_symlink_changes_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "srv" / "netcfg.yaml"
    real.parent.mkdir()
    real.write_text("old\n")
    (tmp_path / "etc").mkdir()
    link = tmp_path / "etc" / "01-netcfg.yaml"
    link.symlink_to("../srv/netcfg.yaml")
    runner = LocalRunner()
    runner.write_file(str(link), b"new\n", mode=0o600)
    assert link.is_symlink() and os.readlink(link) == "../srv/netcfg.yaml"
    assert real.read_text() == "new\n" and stat.S_IMODE(real.stat().st_mode) == 0o600
    assert os.listdir(tmp_path / "etc") == ["01-netcfg.yaml"]
    assert os.listdir(real.parent) == ["netcfg.yaml"], "the temporary file went beside the target"
    # The rollback writes the old bytes back the same way: into the target.
    restore_files(runner, _snapshot(FileSnapshot(str(link), b"old\n", 0o644)))
    assert link.is_symlink() and real.read_text() == "old\n"


@ROOT_ONLY
def test_a_rewrite_and_its_rollback_keep_owner_group_and_xattrs(tmp_path: Path) -> None:
    path = tmp_path / "ifcfg-eth0"
    path.write_text("DEVICE=eth0\n")
    os.chown(path, 1234, 4321)
    _xattrs_or_skip(path, "user.origin", "trusted.ctx")
    runner = LocalRunner()
    snap = _snapshot(FileSnapshot(str(path), path.read_bytes(), 0o640))
    runner.write_file(str(path), b"DEVICE=eth0\nBRIDGE=br0\n", mode=0o640)
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 4321, 0o640)
    assert sorted(os.listxattr(path)) == ["trusted.ctx", "user.origin"]
    assert os.getxattr(path, "trusted.ctx") == b"v-trusted.ctx"
    assert restore_files(runner, snap) == []
    st = path.stat()
    assert path.read_text() == "DEVICE=eth0\n" and (st.st_uid, st.st_gid) == (1234, 4321)
    assert sorted(os.listxattr(path)) == ["trusted.ctx", "user.origin"]


def test_a_new_file_gets_the_writers_owner_and_the_mode_given(tmp_path: Path) -> None:
    path = tmp_path / "new" / "f"
    LocalRunner().write_file(str(path), b"x", mode=0o640)
    st = path.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.geteuid(), 0o640)


def test_a_directory_where_a_file_belongs_is_refused_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "interfaces"
    folder.mkdir()
    (folder / "keep").write_text("k")
    runner = LocalRunner()
    for call in (
        lambda: runner.read_file(str(folder)),
        lambda: runner.file_mode(str(folder)),
        lambda: runner.write_file(str(folder), b"x", mode=0o644),
    ):
        with pytest.raises(UntrustedPath, match=rf"{folder} is a directory .*Move it away") as e:
            call()
        assert e.value.path == str(folder)
    assert os.listdir(folder) == ["keep"] and os.listdir(tmp_path) == ["interfaces"]
    # Through a link too: the message names where it leads.
    (tmp_path / "link").symlink_to(folder)
    with pytest.raises(UntrustedPath, match=rf"\(a link to {folder}\) is a directory"):
        runner.write_file(str(tmp_path / "link"), b"x", mode=0o644)
    assert os.listdir(folder) == ["keep"]


def test_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(UntrustedPath, match="loop of symlinks"):
        LocalRunner().write_file(str(tmp_path / "a"), b"x", mode=0o644)


def test_the_next_write_removes_stale_temporaries_of_kvmnets_naming_only(tmp_path: Path) -> None:
    old = time.time() - files.STALE_TEMP_AGE - 60
    stale = [".kvmnet-ab_cd123.tmp", ".kvmnet-xyz123.tmp"]  # mkstemp's 8, mktemp(1)'s 6
    kept = [".kvmnet-fresh123.tmp", "kvmnet-abcdefgh.tmp", ".kvmnet-abcdefgh.tmp.bak", "x.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_text("partial")
        if name != ".kvmnet-fresh123.tmp":
            os.utime(tmp_path / name, (old, old))
    (tmp_path / ".kvmnet-linkabcd.tmp").symlink_to(tmp_path / "x.tmp")  # not a regular file
    os.utime(tmp_path / ".kvmnet-linkabcd.tmp", (old, old), follow_symlinks=False)
    LocalRunner().write_file(str(tmp_path / "conf"), b"c", mode=0o644)
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, ".kvmnet-linkabcd.tmp", "conf"])


def test_a_rollback_removes_the_empty_folders_the_plan_made(tmp_path: Path) -> None:
    runner = LocalRunner()
    (tmp_path / "var").mkdir()
    backup = tmp_path / "var" / "lib" / "kvmnet" / "backup" / "STAMP" / "ifcfg-eth0"
    other = tmp_path / "var" / "lib" / "kvmnet" / "backup" / "STAMP" / "ifcfg-br0"
    from kvmnet.hostnet.snapshot import _file

    snap = _snapshot(_file(runner, str(backup)), _file(runner, str(other)))
    assert snap.files[0].parent == str(tmp_path / "var")
    assert Snapshot.from_json(snap.to_json()).files == snap.files
    runner.write_file(str(backup), b"b", mode=0o600)
    runner.write_file(str(other), b"b", mode=0o600)
    assert restore_files(runner, snap) == []
    assert os.listdir(tmp_path) == ["var"] and os.listdir(tmp_path / "var") == []
    # A folder that holds something else stays.
    runner.write_file(str(backup), b"b", mode=0o600)
    (backup.parent.parent / "kept").write_text("k")
    assert restore_files(runner, snap) == []
    assert os.listdir(backup.parent.parent) == ["kept"]


def _netplan_current() -> HostState:
    return HostState(
        nic=CURRENT_NIC,
        bridge=None,
        routes=(IpRoute("default", NIC, "10.0.0.1"),),
        files=LocalRunner(),
    )


NETPLAN_YAML = "network:\n  version: 2\n  ethernets:\n    eth0:\n      addresses: [10.0.0.5/24]\n"


def test_under_another_root_a_link_that_leads_elsewhere_than_in_a_chroot_is_refused(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    (root / NETPLAN_DIR.lstrip("/")).mkdir(parents=True)
    (root / "srv").mkdir()
    real = root / "srv" / "01.yaml"
    real.write_text(NETPLAN_YAML)
    link = root / NETPLAN_DIR.lstrip("/") / "01-netcfg.yaml"
    # This machine's absolute path to the file: chrooted into root, it leads nowhere.
    link.symlink_to(real)
    backend = NetplanBackend(root=str(root), runner=LocalRunner())
    with pytest.raises(UntrustedPath, match=r"inside root .* leads to .*, on this machine to"):
        backend.plan_enslave(BridgeRequest(NIC, "br0"), _netplan_current())
    assert real.read_text() == NETPLAN_YAML
    # The image's own link (absolute inside the image, relative here) agrees: written through.
    link.unlink()
    link.symlink_to("/srv/01.yaml")
    with pytest.raises(UntrustedPath, match="outside root"):  # this machine's /srv
        backend.plan_enslave(BridgeRequest(NIC, "br0"), _netplan_current())
    link.unlink()
    link.symlink_to("../../srv/01.yaml")
    plan = backend.plan_enslave(BridgeRequest(NIC, "br0"), _netplan_current())
    assert str(link) in plan.files


def _fake_ssh(tmp_path: Path) -> str:
    """An "ssh" that runs the remote command here with sh (its last argument)."""
    ssh = tmp_path / "fake-ssh"
    ssh.write_text('#!/bin/sh\nfor last; do :; done\nexec sh -c "$last"\n')
    ssh.chmod(0o755)
    return str(ssh)


@pytest.mark.skipif(shutil.which("python3") is None, reason="the far side needs python3")
def test_the_ssh_runner_writes_the_same_way_on_the_far_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KVMNET_REMOTE_LIB", str(tmp_path / "lib"))
    runner = SshRunner(machine_of(f"qemu+ssh://hv2/system?command={_fake_ssh(tmp_path)}"),
                       multiplex=False)  # fmt: skip
    real = tmp_path / "real.yaml"
    real.write_text("old\n")
    link = tmp_path / "link.yaml"
    link.symlink_to("real.yaml")
    runner.write_file(str(link), b"new\n", mode=0o640)
    assert link.is_symlink() and real.read_text() == "new\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640 and runner.file_mode(str(link)) == 0o640
    folder = tmp_path / "dir"
    folder.mkdir()
    for call in (
        lambda: runner.write_file(str(folder), b"x", mode=0o644),
        lambda: runner.read_file(str(folder)),
        lambda: runner.file_mode(str(folder)),
    ):
        with pytest.raises(UntrustedPath, match=rf"on hv2: {folder} is a directory") as e:
            call()
        assert e.value.path == str(folder)
    assert os.listdir(folder) == []

"""A file backend's ``root=``: a missing root is refused, not created; a config dir under the
root that is a symlink out of it is refused rather than written through."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmnet.backends import IfcfgBackend, NetplanBackend, NetworkdBackend, NmcliBackend
from kvmnet.errors import InvalidInput, InvalidType, UntrustedPath
from kvmnet.hostnet.backends.filebackend import FileBackendBase
from kvmnet.hostnet.backends.netplan import NETPLAN_DIR
from kvmnet.hostnet.model.request import BridgeRequest, HostState
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.runners.runner import LocalRunner, RecordingRunner

NIC = "enp0s20f0u1"
DHCP_NIC = LinkState(
    NIC, "52:54:00:aa:00:01", addresses=(IpAddress("10.231.0.185/24", 3600, 3600, True),)
)
BACKENDS: list[type[FileBackendBase]] = [
    IfcfgBackend,
    NetplanBackend,
    NetworkdBackend,
    NmcliBackend,
]


@pytest.mark.parametrize("cls", BACKENDS, ids=lambda c: c.__name__)
def test_a_missing_root_is_refused_and_not_created(
    cls: type[FileBackendBase], tmp_path: Path
) -> None:
    missing = tmp_path / "no" / "such" / "root"
    with pytest.raises(InvalidInput, match=rf"root '{missing}' does not exist.*kvmnet does not"):
        cls(root=str(missing), runner=LocalRunner())
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("cls", BACKENDS, ids=lambda c: c.__name__)
def test_a_root_that_is_a_file_is_refused(cls: type[FileBackendBase], tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(InvalidInput, match="is not a directory"):
        cls(root=str(tmp_path / "f"), runner=LocalRunner())


@pytest.mark.parametrize(
    ("root", "error"),
    [
        (b"/tmp", InvalidType),
        (5, InvalidType),
        (["/"], InvalidType),
        ("relative", InvalidInput),
        ("", InvalidInput),
        ("/tmp/\0x", InvalidInput),
    ],
)
def test_a_root_of_the_wrong_kind_is_refused(root: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="root"):
        NetplanBackend(root=root, runner=LocalRunner())  # type: ignore[arg-type]


def test_a_path_root_is_taken(tmp_path: Path) -> None:
    assert NetplanBackend(root=tmp_path, runner=LocalRunner()).root == str(tmp_path)  # type: ignore[arg-type]


def test_a_fake_machine_root_is_not_looked_for_here() -> None:
    # A RecordingRunner is another (fake) machine: this machine's disk says nothing about it.
    assert (
        NetplanBackend(root="/nowhere/at/all", runner=RecordingRunner()).root == "/nowhere/at/all"
    )


def test_a_config_dir_symlinked_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    # Refused when the backend is made, before anything is read...
    (root / NETPLAN_DIR.lstrip("/")).symlink_to(outside)
    with pytest.raises(UntrustedPath, match=rf"resolves to {outside}, outside the root"):
        NetplanBackend(root=str(root), runner=LocalRunner())
    # ... and a symlink made after that is refused when a path through it is used.
    (root / NETPLAN_DIR.lstrip("/")).unlink()
    backend = NetplanBackend(root=str(root), runner=LocalRunner())
    (root / NETPLAN_DIR.lstrip("/")).symlink_to(outside)
    current = HostState(
        nic=DHCP_NIC,
        bridge=None,
        routes=(IpRoute("default", NIC, "10.231.0.1"),),
        files=LocalRunner(),
    )
    with pytest.raises(UntrustedPath, match=rf"resolves to {outside}, outside root") as info:
        backend.plan_enslave(BridgeRequest(NIC, "br0"), current)
    assert info.value.path == f"{root}{NETPLAN_DIR}"
    assert list(outside.iterdir()) == []


def test_a_symlink_that_stays_inside_the_root_is_fine(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc" / "real-netplan").mkdir(parents=True)
    (root / NETPLAN_DIR.lstrip("/")).symlink_to(root / "etc" / "real-netplan")
    backend = NetplanBackend(root=str(root), runner=LocalRunner())
    assert backend.paths(NETPLAN_DIR) == f"{root}{NETPLAN_DIR}"

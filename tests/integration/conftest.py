"""Fixtures for the integration suite: hermetic libvirtds (see libvirt_lab.py and docs/testing.md).

* ``lab_factory`` (session): starts any number of independent libvirtds and tears all of them
  down at the end of the session, also when a test or the start itself fails.
* ``libvirt_session_lab`` (session): the one libvirtd most tests share, with ``default`` (NAT,
  virbr0, 192.168.122.0/24) and the plain bridge ``br0`` inside its namespace.
* ``lab`` (function): that same lab, with the guests a test defined removed after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root

from .lab_host import PREFIX, host_snapshot, run
from .libvirt_lab import LabFactory, LibvirtLab

ROOT_REASON = "a real libvirtd in a private network and mount namespace"


def _ours(snapshot: tuple[str, str]) -> list[str]:
    """Lines of ``ip -br link`` / ``ip netns list`` that name something this process made."""
    tag = f"{PREFIX}-{os.getpid()}-"
    return [line for text in snapshot for line in text.splitlines() if tag in line]


def _libvirt_rules() -> list[str]:
    """The machine's own iptables rules that libvirt writes (chains named LIBVIRT_*)."""
    out = run(["iptables-save"], check=False).stdout
    return [line for line in out.splitlines() if "LIBVIRT_" in line]


@pytest.fixture(autouse=True)
def _private_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kvmnet's per-machine state (the MAC ledger add_interface claims in on a real libvirtd)
    goes to a folder of the test's own: never the machine's /run/kvmnet, where the test runs
    of other checkouts would see this one's claims on the same fixed MACs."""
    monkeypatch.setenv("KVMNET_STATE_DIR", str(tmp_path_factory.mktemp("kvmnet-state")))


@pytest.fixture(scope="session")
def lab_factory() -> Iterator[LabFactory]:
    require_root(ROOT_REASON)
    for binary in ("/usr/sbin/libvirtd", "/usr/sbin/virtlogd", "/usr/bin/qemu-system-x86_64"):
        if not Path(binary).exists():
            pytest.fail(f"{binary} is missing: run scripts/install-system-deps.sh test")
    had_run_libvirt = Path("/run/libvirt").exists()
    had_libvirt_rules = _libvirt_rules()
    with LabFactory() as labs:
        yield labs
    # The machine must look as it did: none of our namespaces or links, no /run/libvirt made,
    # none of libvirt's NAT rules in its firewall (they belong in the labs' namespaces).
    leftovers = _ours(host_snapshot())
    assert not leftovers, f"the test bed left these on the host: {leftovers}"
    assert Path("/run/libvirt").exists() == had_run_libvirt, "the host's /run/libvirt changed"
    assert _libvirt_rules() == had_libvirt_rules, "libvirt rules appeared in the host firewall"


@pytest.fixture(scope="session")
def libvirt_session_lab(lab_factory: LabFactory) -> LibvirtLab:
    return lab_factory.start()


@pytest.fixture
def lab(libvirt_session_lab: LibvirtLab) -> Iterator[LibvirtLab]:
    shared = libvirt_session_lab
    # The daemon is shared by most of the suite: if one test's run kills it, that test fails
    # below with libvirtd's last words, and the tests after it get a restarted daemon instead
    # of a cascade of "connection refused".
    if shared.process.poll() is not None:
        shared.restart_daemon()
    yield shared
    died = shared.process.poll()
    if died is not None:
        tail = shared.stderr_tail()
        shared.restart_daemon()
        shared.destroy_guests()  # the restarted daemon still holds this test's definitions
        pytest.fail(f"the shared libvirtd died during this test (exit {died}):\n{tail}")
    shared.destroy_guests()

"""Rollback for real: a step that fails midway and a verification that fails leave the host
namespace exactly as before (full ``ip -j`` link/addr/route, lifetimes' countdown aside)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import pytest

from kvmnet.backends import Iproute2Backend
from kvmnet.errors import CommandFailed, RolledBack
from kvmnet.hostnet.nic import Bridge
from kvmnet.hostnet.runners.runner import DEFAULT_TIMEOUT, CommandResult, NetnsRunner
from tests.lab import LabHost, Lan, snapshot_diff, wait_for

pytestmark = [pytest.mark.root("network namespaces, dnsmasq, udhcpc"), pytest.mark.integration]


class FailAt(NetnsRunner):
    """A real namespace runner whose command starting with ``prefix`` fails (once)."""

    def __init__(self, netns: str, prefix: Sequence[str]) -> None:
        super().__init__(netns)
        self.prefix = tuple(prefix)
        self.tripped = False

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> CommandResult:
        if not self.tripped and tuple(argv[: len(self.prefix)]) == self.prefix:
            self.tripped = True
            result = CommandResult(tuple(argv), 2, "", "injected failure")
            if check:
                raise CommandFailed("injected", argv=argv, returncode=2, stderr="injected")
            return result
        return super().run(argv, input=input, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan("kvb") as lan:
        yield lan


@pytest.fixture
def host(lan: Lan) -> LabHost:
    host = lan.add_host(mac=f"52:54:00:cc:00:{len(lan.hosts) + 1:02x}")
    host.dhcp(stay=False)
    return host


def test_a_step_failing_midway_restores_everything(lan: Lan, host: LabHost) -> None:
    before = host.snapshot()
    runner = FailAt(host.ns, ("ip", "route", "replace"))
    with pytest.raises(RolledBack, match=r"injected.*rolled back"):
        Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(host.nic)
    assert runner.tripped
    assert not snapshot_diff(before, host.snapshot())
    assert lan.ping(host.address)


def test_a_gateway_that_does_not_answer_rolls_back(lan: Lan, host: LabHost) -> None:
    # A default route through a gateway nobody answers for: the check fails after retries.
    host.ip("route", "replace", "default", "via", f"{lan.subnet}.254", "dev", host.nic)
    before = host.snapshot()
    backend = Iproute2Backend(netns=host.ns)
    plan = Bridge("br0", backend=backend).enslave(host.nic, dry_run=True)
    with pytest.raises(RolledBack, match=r"gateway 10\.231\.0\.254 answers.*rolled back"):
        plan.apply(retries=2, retry_interval=0.1)
    assert not snapshot_diff(before, host.snapshot())


def test_classic_bridge_is_restored_with_its_stale_address(lan: Lan, host: LabHost) -> None:
    host.ip("link", "add", "br0", "address", "02:00:00:00:00:99", "type", "bridge")
    host.ip("addr", "add", "192.168.0.1/24", "dev", "br0")
    host.ip("link", "set", "br0", "up")
    host.ip("route", "replace", "default", "via", f"{lan.subnet}.254", "dev", host.nic)
    before = host.snapshot()
    plan = Bridge("br0", backend=Iproute2Backend(netns=host.ns)).enslave(host.nic, dry_run=True)
    with pytest.raises(RolledBack):
        plan.apply(retries=2, retry_interval=0.1)
    assert not snapshot_diff(before, host.snapshot())
    assert host.addresses("br0") == ["192.168.0.1/24"]


def test_the_stopped_dhcp_client_is_started_again(lan: Lan) -> None:
    host = lan.add_host(mac="52:54:00:cc:00:ff")
    pid = host.dhcp()
    host.ip("route", "replace", "default", "via", f"{lan.subnet}.254", "dev", host.nic)
    plan = Bridge("br0", backend=Iproute2Backend(netns=host.ns)).enslave(host.nic, dry_run=True)
    with pytest.raises(RolledBack):
        plan.apply(retries=2, retry_interval=0.1)
    wait_for(lambda: not host.running(pid), what="the old client to be gone")
    # One look can catch the restarted client before `ip netns exec` entered the namespace
    # (0), or udhcpc forked for its hook script (2): look until it settles, at most 5 s.
    seen: list[list[list[str]]] = []

    def one_client() -> bool:
        seen.append([a for a in host.commands().values() if "udhcpc" in a and host.nic in a])
        return len(seen[-1]) == 1

    with contextlib.suppress(TimeoutError):
        wait_for(one_client, timeout=5, what="one udhcpc on the NIC")
    again = seen[-1]
    assert len(again) == 1, "the plan stopped the client; rollback restarts it"

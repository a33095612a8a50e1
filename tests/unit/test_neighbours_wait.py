"""The address wait after a move to a bridge probes the bridge, but not on every poll."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from kvmnet.hostnet.runners.runner import RecordingRunner
from kvmnet.lan.onboard import wait_for_address
from kvmnet.virt.addresses import GuestAddress

if TYPE_CHECKING:
    from kvmnet.hostnet.runners.runner import Runner
    from kvmnet.virt.domain import Domain

MAC = "52:54:00:7e:02:01"


@dataclass
class Guest:
    """Stands in for a Domain: records each addresses() call; answers on call ``answer_at``."""

    answer_at: int
    calls: list[tuple[bool, Runner | None]] = field(default_factory=list)
    name: str = "web1"

    def addresses(self, *, probe: bool = False, runner: Runner | None = None) -> list[GuestAddress]:
        self.calls.append((probe, runner))
        if len(self.calls) < self.answer_at:
            return []
        return [GuestAddress(MAC, "10.231.0.158", None, "probe" if probe else "arp")]


def test_the_first_poll_probes_and_the_next_ones_within_a_second_do_not() -> None:
    guest, runner = Guest(answer_at=4), RecordingRunner(netns="lab")
    found = wait_for_address(
        cast("Domain", guest), MAC, timeout=30, sleep=lambda s: None, probe=True, runner=runner
    )
    assert found == (GuestAddress(MAC, "10.231.0.158", None, "arp"),)
    # Polls without a sleep come far less than a second apart: only the first one sweeps.
    assert guest.calls == [(True, runner), (False, runner), (False, runner), (False, runner)]


def test_no_probe_unless_asked() -> None:
    guest = Guest(answer_at=1)
    found = wait_for_address(cast("Domain", guest), MAC, timeout=0)
    assert [a.source for a in found] == ["arp"]
    assert guest.calls == [(False, None)]

"""Plan.apply refuses a bad option before anything runs and before the dead-man is armed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kvmnet.backends import Iproute2Backend
from kvmnet.errors import InvalidInput, InvalidType, KvmnetError
from kvmnet.hostnet import confirm
from kvmnet.hostnet.fake import fake_host
from kvmnet.hostnet.nic import Bridge
from tests.lab.fakes import NIC, dhcp_host, nic, routes
from tests.unit.test_plan_apply import enslaved_after_master

BAD: list[tuple[str, object, type[Exception]]] = [
    ("retries", "3", TypeError),
    ("retries", 2.0, TypeError),
    ("retries", True, TypeError),
    ("retries", None, TypeError),
    ("retries", 0, ValueError),
    ("retries", -1, ValueError),
    ("retry_interval", -1, ValueError),
    ("retry_interval", math.nan, ValueError),
    ("retry_interval", math.inf, ValueError),
    ("retry_interval", "0.5", TypeError),
    ("retry_interval", False, TypeError),
    ("confirm_within", True, TypeError),
    ("confirm_within", False, TypeError),
    ("confirm_within", "60", TypeError),
    ("confirm_within", b"60", TypeError),
    ("confirm_within", [60], TypeError),
    ("confirm_within", 0, ValueError),
    ("confirm_within", -5, ValueError),
    ("confirm_within", math.nan, ValueError),
    ("confirm_within", math.inf, ValueError),
    ("confirm_within", -math.inf, ValueError),
    ("rollback_on_failure", 1, TypeError),
    ("rollback_on_failure", "false", TypeError),
    ("rollback_on_failure", None, TypeError),
    ("verify", "yes", TypeError),
    ("verify", 0, TypeError),
    ("state_dir", 5, TypeError),
    ("state_dir", b"/run/kvmnet", TypeError),
    ("state_dir", ["/run/kvmnet"], TypeError),
    ("state_dir", "", ValueError),
    ("state_dir", "/run/kv\0mnet", ValueError),
]


@pytest.mark.parametrize(("option", "value", "builtin"), BAD, ids=lambda v: repr(v)[:20])
def test_a_bad_option_runs_nothing(
    option: str, value: object, builtin: type[Exception], tmp_path: Path
) -> None:
    runner = dhcp_host()
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    runner.calls.clear()
    options: dict[str, object] = {"confirm_within": 60, "state_dir": str(tmp_path / "state")}
    options[option] = value
    with pytest.raises(KvmnetError) as info:
        plan.apply(**options)  # type: ignore[arg-type]
    assert isinstance(info.value, builtin)
    assert isinstance(info.value, InvalidInput)
    assert isinstance(info.value, InvalidType) == (builtin is TypeError)
    assert f"{option}={value!r}" in str(info.value)
    assert runner.calls == [], "nothing ran, not even a read"
    assert not (tmp_path / "state").exists(), "no dead-man armed"


def test_a_path_like_state_dir_is_taken(tmp_path: Path) -> None:
    runner = fake_host([nic()], routes("br0"))  # routes as they will be after the move
    enslaved_after_master(runner)
    plan = Bridge("br0", backend=Iproute2Backend(runner=runner)).enslave(NIC, dry_run=True)
    result = plan.apply(confirm_within=60, retries=1, state_dir=tmp_path)  # type: ignore[arg-type]
    assert result.pending_confirmation
    assert list(tmp_path.glob("*.pending.json"))
    assert confirm(state_dir=str(tmp_path)) == [result.pending_confirmation]

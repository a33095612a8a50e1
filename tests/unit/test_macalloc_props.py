"""Property tests: thousands of allocations from a 256-MAC prefix against random inventories."""

from __future__ import annotations

import random
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvmnet
from kvmnet.errors import MacInUse, MacSpaceExhausted
from kvmnet.testing import Guest, Nic, World
from kvmnet.virt.macalloc import MacAllocator

PREFIX = "52:54:00:00:00"  # 256 MACs: small enough to exhaust in every example


def _mac(i: int) -> str:
    return f"{PREFIX}:{i:02x}"


inventories = st.sets(st.integers(min_value=0, max_value=255), max_size=255)
outsiders = st.sets(st.integers(min_value=0, max_value=255), max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    used=inventories,
    elsewhere=outsiders,
    running=st.booleans(),
    keys=st.lists(st.text(min_size=1, max_size=8), max_size=10),
    rng=st.randoms(use_true_random=False),
)
def test_allocation_never_repeats_never_collides_and_exhausts(
    used: set[int],
    elsewhere: set[int],
    running: bool,
    keys: list[str],
    rng: random.Random,
) -> None:
    nics = [Nic.bridge(mac=_mac(i)) for i in sorted(used)]
    # MACs outside the prefix must neither count against it nor confuse it.
    nics += [Nic.bridge(mac=f"52:54:00:00:01:{i:02x}") for i in sorted(elsewhere)]
    guests = tuple(
        Guest(f"g{n}", nics=tuple(nics[n::4]), running=running) for n in range(4) if nics[n::4]
    )
    with tempfile.TemporaryDirectory() as tmp:
        uri = World(guests).write(tmp)
        with kvmnet.connect(uri) as host:
            alloc = MacAllocator(host, prefix=PREFIX, rng=random.Random(rng.getrandbits(64)))
            taken = {_mac(i) for i in used}
            got: list[str] = []
            for key in keys:  # some deterministic ones first, interleaved with random ones
                if len(got) + len(taken) == 256:
                    break
                got.append(alloc.allocate(key=key))
            while True:
                try:
                    got.append(alloc.allocate())
                except MacSpaceExhausted:
                    break
            assert len(got) == len(set(got)), "a MAC was handed out twice"
            assert not set(got) & taken, "a MAC in use was handed out"
            assert set(got) | taken == {_mac(i) for i in range(256)}, "a free MAC was never found"
            with pytest.raises(MacSpaceExhausted):
                alloc.allocate(key="one more")
            for mac in list(taken)[:3] + got[:3]:
                with pytest.raises(MacInUse):
                    alloc.reserve(mac)


@settings(max_examples=40, deadline=None)
@given(used=inventories, key=st.text(max_size=20))
def test_same_key_same_state_same_mac(used: set[int], key: str) -> None:
    if len(used) == 256:
        return
    nics = tuple(Nic.bridge(mac=_mac(i)) for i in sorted(used))
    with tempfile.TemporaryDirectory() as tmp:
        uri = World((Guest("g", nics=nics),) if nics else ()).write(tmp)
        with kvmnet.connect(uri) as one, kvmnet.connect(uri) as two:
            first = MacAllocator(one, prefix=PREFIX).allocate(key=key)
            assert MacAllocator(two, prefix=PREFIX).allocate(key=key) == first
            assert first not in {_mac(i) for i in used}

"""Findings of the API bad-input campaign (notes/fuzz-api/report.md, F2-F5, F10, F11): each
bad value is refused with a KvmnetError naming it, before anything is read or changed; a bulk
switch refuses what it knows before its first write; the CLI's error output under ``--json``
is one JSON object."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kvmnet.errors import (
    InvalidInput,
    InvalidType,
)
from kvmnet.virt.macalloc import MacAllocator

DIRECT_MAC = "52:54:00:ee:00:02"


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI and the allocator keep state (the MAC ledger): in this test's folder, not ~.
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("KVMNET_STATE_DIR", str(state))


# -- F2/F3: MacAllocator's rng and key ------------------------------------------------------


@pytest.mark.parametrize("rng", ["seed", 42, random.Random], ids=["str", "int", "the-class"])
def test_an_rng_that_is_no_random_source_is_refused_naming_it(rng: object) -> None:
    # Before: AttributeError ('str' object has no attribute 'getrandbits').
    with pytest.raises(InvalidType, match=r"rng must be a random\.Random") as caught:
        MacAllocator([], rng=rng)  # type: ignore[arg-type]
    assert repr(rng)[:20] in str(caught.value)


def test_a_seeded_rng_still_gives_repeatable_draws() -> None:
    first = MacAllocator([], rng=random.Random(7)).allocate_many(3)
    assert MacAllocator([], rng=random.Random(7)).allocate_many(3) == first


@pytest.mark.parametrize("key", ["k\udcff", "\udcff"], ids=["tail", "alone"])
def test_a_key_with_a_lone_surrogate_is_invalid_input_in_both_calls(key: str) -> None:
    # Before: UnicodeEncodeError from the hash.
    alloc = MacAllocator([])
    for call in (lambda: alloc.allocate(key=key), lambda: alloc.allocate_many(2, key=key)):
        with pytest.raises(InvalidInput, match="lone surrogate") as caught:
            call()
        assert not isinstance(caught.value, InvalidType)
    assert "0 handed out" in repr(alloc)


@pytest.mark.parametrize("key", [5, b"k", ["k"]], ids=["int", "bytes", "list"])
def test_allocate_many_checks_key_as_allocate_does(key: object) -> None:
    # Before: allocate_many(2, key=5) handed out "5/0" and "5/1"; allocate(key=5) refused.
    alloc = MacAllocator([])
    with pytest.raises(InvalidType) as one:
        alloc.allocate(key=key)  # type: ignore[arg-type]
    with pytest.raises(InvalidType) as many:
        alloc.allocate_many(2, key=key)  # type: ignore[arg-type]
    assert str(one.value) == str(many.value)
    assert "key must be a str" in str(many.value) and type(key).__name__ in str(many.value)
    assert "0 handed out" in repr(alloc)

"""Findings of the API bad-input campaign (notes/fuzz-api/report.md, F2-F5, F10, F11): each
bad value is refused with a KvmnetError naming it, before anything is read or changed; a bulk
switch refuses what it knows before its first write; the CLI's error output under ``--json``
is one JSON object."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from kvmnet.backends import create_backend
from kvmnet.cli import main
from kvmnet.errors import (
    InvalidInput,
    InvalidName,
    InvalidType,
)
from kvmnet.hostnet.runners.runner import RecordingRunner
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


# -- F4: create_backend("auto") checks root, netns and runner as the other backends do ------


def _bad_roots(tmp_path: Path) -> list[tuple[str, object]]:
    afile = tmp_path / "afile"
    afile.write_text("")
    return [
        ("empty", ""),
        ("zero", 0),
        ("false", False),
        ("empty-list", []),
        ("missing", str(tmp_path / "missing")),
        ("a-file", str(afile)),
        ("newline", f"{tmp_path}\n"),
        ("surrogate", f"{tmp_path}\udcff"),
        ("relative", "etc"),
    ]


def test_auto_refuses_every_root_a_file_backend_refuses(tmp_path: Path) -> None:
    # Before: "", 0, False and [] became "/" (this machine's own files); a missing directory,
    # a file, a newline or a surrogate were accepted.
    for label, root in _bad_roots(tmp_path):
        with pytest.raises(InvalidInput) as file_backend:
            create_backend("netplan", root=root)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput) as auto:
            create_backend("auto", root=root)  # type: ignore[arg-type]
        assert type(auto.value) is type(file_backend.value), label
        assert str(auto.value) == str(file_backend.value), label
    assert not (tmp_path / "missing").exists()


def test_auto_still_takes_no_root_as_this_machine_and_a_real_directory(tmp_path: Path) -> None:
    assert create_backend("auto").root == "/"  # type: ignore[attr-defined]
    assert create_backend("auto", root=str(tmp_path)).root == str(tmp_path)  # type: ignore[attr-defined]
    # Another machine's runner holds its own files: its root is not looked for here (as for
    # the file backends).
    remote = create_backend("auto", root="/srv/other", runner=RecordingRunner())
    assert remote.root == "/srv/other"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"runner": "local"}, InvalidType),
        ({"runner": 5}, InvalidType),
        ({"netns": "\udcff"}, InvalidName),
        ({"netns": ""}, InvalidName),
        ({"netns": 5}, InvalidType),
    ],
    ids=["runner-str", "runner-int", "netns-surrogate", "netns-empty", "netns-int"],
)
def test_auto_refuses_the_runner_and_netns_iproute2_refuses(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error) as iproute2:
        create_backend("iproute2", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(error) as auto:
        create_backend("auto", **kwargs)  # type: ignore[arg-type]
    assert str(auto.value) == str(iproute2.value)


@pytest.mark.parametrize("root", ["", "missing"])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_cli_host_bridge_auto_with_a_bad_root_fails_with_one_line(
    root: str, as_json: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: exit 0 and an iproute2 plan for "/" (the real system).
    given = str(tmp_path / root) if root else root
    argv = ["host-bridge", "eth0", "br9", "--backend", "auto", "--root", given, "--dry-run"]
    status = main([*argv, "--json"] if as_json else argv)
    out, err = capsys.readouterr()
    assert status == 1 and out == ""
    if as_json:
        error = json.loads(err)
        assert error["type"] == "InvalidInput" and "root" in error["error"]
    else:
        assert err.count("\n") == 1 and err.startswith("kvmnet: root ")
        assert ("is empty" if not root else "does not exist") in err

"""Findings of the API bad-input campaign (notes/fuzz-api/report.md, F2-F5, F10, F11): each
bad value is refused with a KvmnetError naming it, before anything is read or changed; a bulk
switch refuses what it knows before its first write; the CLI's error output under ``--json``
is one JSON object."""

from __future__ import annotations

import io
import json
import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import kvmnet
from kvmnet import bulk, fleet
from kvmnet.backends import create_backend
from kvmnet.cli import main
from kvmnet.cli.progress import LogHandler
from kvmnet.errors import (
    InterfaceNotFound,
    InvalidInput,
    InvalidName,
    InvalidType,
    LibvirtError,
    LiveChangeUnsupported,
    NetworkNotFound,
    PartiallyApplied,
)
from kvmnet.hostnet.runners.runner import RecordingRunner
from kvmnet.testing import Guest, Nic, World, bridge_network, nat_network
from kvmnet.virt import _libvirt
from kvmnet.virt import domain as domain_module
from kvmnet.virt.macalloc import MacAllocator

if TYPE_CHECKING:
    from kvmnet.core.change import Change
    from kvmnet.virt.domain import _Switch

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


# -- F5: bulk and fleet with something that is not a Host ----------------------------------


@pytest.mark.parametrize("host", [None, "test:///default", 5], ids=["none", "uri", "int"])
def test_bulk_calls_refuse_what_is_not_a_host(host: object) -> None:
    # Before: AttributeError ('NoneType' object has no attribute 'network').
    calls: list[Callable[[], object]] = [
        lambda: bulk.nat_many(host, "default", ["off1"], dry_run=True),  # type: ignore[arg-type]
        lambda: bulk.bridge_many(host, "br0", ["off1"], dry_run=True),  # type: ignore[arg-type]
        lambda: bulk.select(host, ["off1"]),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidType, match=r"host must be a kvmnet\.Host") as caught:
            call()
        assert repr(host) in str(caught.value)


@pytest.mark.parametrize("hosts", [None, [None], ["test:///default"], 5], ids=repr)
def test_fleet_calls_refuse_what_is_not_a_list_of_hosts(hosts: object) -> None:
    for call in (fleet.bridge_many, fleet.nat_many):
        with pytest.raises(InvalidType, match=r"kvmnet\.Host"):
            call(hosts, "br0", ["web1"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "names", [bytearray(b"ab"), range(3), (n for n in (1, 2))], ids=["bytearray", "range", "gen"]
)
def test_names_that_are_not_strings_are_named_as_the_whole_value(names: object) -> None:
    # Before: "domain name must be a str, got 98 (int)": the bytearray itself went unsaid.
    with pytest.raises(InvalidType, match="domain names must be a list of names") as caught:
        bulk.check_selection(names)  # type: ignore[arg-type]
    assert f"({type(names).__name__})" in str(caught.value)


# -- F10: a bulk switch refuses what it knows before its first write ------------------------

GUESTS = (
    Guest("off1", running=False, nics=(Nic.network(mac="52:54:00:bb:00:01"),)),
    Guest("bare", running=False, nics=()),
    Guest("off2", running=False, nics=(Nic.network(mac="52:54:00:bb:00:02"),)),
    Guest("direct1", running=True, nics=(Nic.direct("eth0", mac=DIRECT_MAC),)),
    Guest("two", running=False, nics=(Nic.network(), Nic.network())),
)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[kvmnet.Host]:
    with kvmnet.connect(World(GUESTS).write(tmp_path / "world")) as h:
        yield h


def _definitions(host: kvmnet.Host) -> dict[str, str]:
    return {d.name: d.xml(inactive=True) for d in host.domains()}


@pytest.mark.parametrize("dry_run", [False, True], ids=["apply", "dry-run"])
def test_a_guest_without_the_interface_is_refused_before_any_guest_changes(
    host: kvmnet.Host, dry_run: bool
) -> None:
    # Before: off1 was switched, then PartiallyApplied at "bare" (a dry run knew it already).
    before = _definitions(host)
    with pytest.raises(InterfaceNotFound, match="'bare'") as caught:
        bulk.bridge_many(host, "br9", ["off1", "bare", "off2"], dry_run=dry_run)
    assert not isinstance(caught.value, PartiallyApplied)
    assert _definitions(host) == before


def test_a_running_macvtap_guest_is_refused_before_any_guest_changes(host: kvmnet.Host) -> None:
    before = _definitions(host)
    with pytest.raises(LiveChangeUnsupported, match=r"'direct1'.*macvtap"):
        bulk.bridge_many(host, "br9", ["off1", "direct1"])
    assert _definitions(host) == before


def test_every_interface_of_a_guest_on_the_network_still_moves(host: kvmnet.Host) -> None:
    # Two interfaces of one guest: the second is edited on the XML the first one's change left.
    changes = bulk.bridge_many(host, "br9", on_network="default")
    assert sorted(c.domain for c in changes) == ["off1", "off2", "two", "two"]
    two = host.domain("two").persistent_interfaces
    assert [(i.type, i.source) for i in two] == [("bridge", "br9"), ("bridge", "br9")]


def test_the_first_pass_reads_no_more_than_the_writes_did(
    host: kvmnet.Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each shut-off guest: its definition read once to plan, once more by the guarded define
    # (libvirt's test driver has no device calls): the first pass keeps its plan for the
    # writes, so the up-front check costs no read (bench/bulk_switch.py). The first guest is
    # read again before its write (its live XML, whether it still runs, and its definition):
    # until a write tells, the driver might have device calls, which replace the device
    # without the guard's compare.
    reads: list[str] = []
    real = _libvirt.DomainHandle.xml

    def counted(self: _libvirt.DomainHandle, *, inactive: bool = False) -> str:
        reads.append(self.name)
        return real(self, inactive=inactive)

    monkeypatch.setattr(_libvirt.DomainHandle, "xml", counted)
    bulk.bridge_many(host, "br9", ["off1", "off2"])
    assert sorted(reads) == ["off1"] * 4 + ["off2"] * 2


def test_on_a_driver_with_device_calls_the_bulk_sends_what_one_guest_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first pass plans before any write tells whether the driver has device calls: the
    # device XML is then made at the write (none on libvirt's test driver). Where the driver
    # has them, each guest gets the very XML its own use_bridge would send.
    sent: list[tuple[str, str, bool, bool]] = []

    def update(self: _libvirt.DomainHandle, xml: str, *, live: bool, config: bool) -> None:
        sent.append((self.name, xml, live, config))

    monkeypatch.setattr(_libvirt.DomainHandle, "update_device", update)
    guests = tuple(Guest(f"g{n}", running=n == 1, nics=(Nic.network(),)) for n in range(3))
    uri = World(guests).write(tmp_path)
    with kvmnet.connect(uri) as h:
        h.connection.device_calls = True
        for name in ("g0", "g1", "g2"):
            h.domain(name).use_bridge("br9")
    one_by_one, sent[:] = list(sent), []
    with kvmnet.connect(uri) as h:
        h.connection.device_calls = True
        bulk.bridge_many(h, "br9", ["g0", "g1", "g2"])
    assert sent == one_by_one
    assert [(n, live, config) for n, _, live, config in sent] == [
        ("g0", False, True), ("g1", True, True), ("g2", False, True)
    ]


def test_a_failure_during_the_writes_is_still_partially_applied(
    host: kvmnet.Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(dom: kvmnet.Domain) -> None:
        if dom.name == "off2":
            raise LibvirtError("operation failed: no space left", code=1)

    monkeypatch.setattr(domain_module, "_before_define_check", refuse)
    with pytest.raises(PartiallyApplied, match="stopped at off2") as caught:
        bulk.bridge_many(host, "br9", ["off1", "off2"])
    assert caught.value.done == ("off1",)


def test_an_on_network_typo_is_network_not_found(host: kvmnet.Host) -> None:
    # Before: [] without a word, where nat_many("defualt") raises NetworkNotFound.
    with pytest.raises(NetworkNotFound, match=r"'defualt'.*networks: default") as caught:
        bulk.bridge_many(host, "br9", on_network="defualt")
    assert "on_network" in str(caught.value)
    # A network that exists but has no guest on it still selects nothing, quietly.
    assert bulk.bridge_many(host, "br9", on_network="isolated") == []


def test_guests_on_a_network_that_is_gone_are_still_selected(tmp_path: Path) -> None:
    # Moving guests off an undefined network is how they are repaired: not refused.
    guests = (Guest("orphan", running=False, nics=(Nic.network("gone"),)),)
    with kvmnet.connect(World(guests).write(tmp_path)) as h:
        changes = bulk.bridge_many(h, "br9", on_network="gone", dry_run=True)
        assert [c.domain for c in changes] == ["orphan"]


# -- F11: a refused edit logs no "dropped"; --json errors are one JSON object ---------------


def test_a_refused_live_switch_logs_no_dropped_warning(
    host: kvmnet.Host, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kvmnet"), pytest.raises(LiveChangeUnsupported):
        host.domain("direct1").use_bridge("br0", dry_run=True)
    assert not [r for r in caplog.records if "dropped" in r.getMessage()]


def test_a_switch_that_goes_ahead_warns_once_of_what_it_drops(
    host: kvmnet.Host, caplog: pytest.LogCaptureFixture
) -> None:
    # Next boot only: the change is allowed, and <source mode='bridge'> is dropped.
    with caplog.at_level(logging.WARNING, logger="kvmnet"):
        change = host.domain("direct1").use_bridge("br0", live=False, dry_run=True)
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1 and "<source mode='bridge'>" in dropped[0]
    assert dropped == [n for n in change.notes if "dropped" in n]


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_cli_refused_macvtap_switch_prints_the_error_alone(
    host: kvmnet.Host, as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: a WARNING "dropped <source mode=...>", the error, "(repeated 1 more time)".
    argv = ["-c", host.uri, "bridge", "direct1", "br0", "--dry-run"]
    status = main([*argv, "--json"] if as_json else argv)
    out, err = capsys.readouterr()
    assert status == 1 and out == ""
    assert "WARNING" not in err and "dropped" not in err
    if as_json:
        assert json.loads(err)["type"] == "LiveChangeUnsupported"
    else:
        assert err.count("\n") == 1 and "macvtap" in err


def test_cli_json_error_carries_the_warnings_logged_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # g1 moves to "lan" (a warning: lan is not NAT), then g2's write fails: stderr is still
    # one JSON object, the warning inside it.
    guests = tuple(Guest(f"g{n}", running=False, nics=(Nic.bridge("br0"),)) for n in (1, 2))
    uri = World(guests, (nat_network(), bridge_network("lan", "br0"))).write(tmp_path / "w")

    def refuse(dom: kvmnet.Domain) -> None:
        if dom.name == "g2":
            raise LibvirtError("operation failed: no space left", code=1)

    monkeypatch.setattr(domain_module, "_before_define_check", refuse)
    status = main(["-c", uri, "nat-all", "--network", "lan", "g1", "g2", "--json"])
    out, err = capsys.readouterr()
    assert status == 1 and out == ""
    error = json.loads(err)
    assert error["type"] == "PartiallyApplied" and "stopped at g2" in error["error"]
    assert len(error["log"]) == 1 and "'lan'" in error["log"][0] and "not NAT" in error["log"][0]
    # Without --json the same run shows the warning as a line, then the error line.
    status = main(["-c", uri, "nat-all", "--network", "lan", "g1", "g2"])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert status == 1 and len(lines) == 2
    assert lines[0].startswith("kvmnet: WARNING: ") and "not NAT" in lines[0]
    assert lines[1].startswith("kvmnet: moving guests to network lan stopped at g2")


def test_a_holding_log_handler_writes_nothing_until_the_end() -> None:
    stream = io.StringIO()
    handler = LogHandler(stream, hold=True)
    record = logging.LogRecord("kvmnet.x", logging.WARNING, __file__, 1, "careful", (), None)
    handler.handle(record)
    handler.handle(record)
    assert stream.getvalue() == ""
    assert handler.take() == ["kvmnet: WARNING: careful (repeated 1 more time)"]
    handler.close()
    assert stream.getvalue() == ""  # taken: nothing left to write
    kept = LogHandler(stream, hold=True)
    kept.handle(record)
    kept.close()  # the command succeeded: the held line is written at its end
    assert stream.getvalue() == "kvmnet: WARNING: careful\n"


def test_with_device_calls_each_guest_is_read_again_right_before_its_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A device update replaces the whole device with no compare-and-set: a change another
    # writer made to a guest's interface after the first pass planned it must not be sent
    # back over. Here the other writer renames g1's model between the two passes.
    sent: dict[str, str] = {}

    def update(self: _libvirt.DomainHandle, xml: str, *, live: bool, config: bool) -> None:
        sent[self.name] = xml

    monkeypatch.setattr(_libvirt.DomainHandle, "update_device", update)
    guests = tuple(Guest(f"g{n}", running=False, nics=(Nic.network(),)) for n in range(3))
    uri = World(guests).write(tmp_path)
    with kvmnet.connect(uri) as h:
        h.connection.device_calls = True
        real_finish = bulk._ChangeOne.finish
        other_writer_done: list[bool] = []

        def finish(self: bulk._ChangeOne, target: bulk.Target, prepared: _Switch) -> Change:
            if not other_writer_done:  # after the first pass, before any write
                other_writer_done.append(True)
                g1 = h.connection._conn.lookupByName("g1")
                xml = g1.XMLDesc(2).replace("<model type='virtio'/>", "<model type='e1000'/>")
                h.connection._conn.defineXML(xml)
            return real_finish(self, target, prepared)

        monkeypatch.setattr(bulk._ChangeOne, "finish", finish)
        bulk.bridge_many(h, "br9", ["g0", "g1", "g2"])
    assert "e1000" in sent["g1"] and "br9" in sent["g1"]
    assert "virtio" in sent["g0"] and "virtio" in sent["g2"]

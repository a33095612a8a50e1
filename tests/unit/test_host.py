"""connect() and Host on libvirt's test driver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import kvmnet
from kvmnet import ConnectionFailed, DomainNotFound
from kvmnet.testing import Guest, Nic, world_uri


class CountingProxy:
    """Stands in for the libvirt connection object and records every call made on it."""

    def __init__(self, real: object) -> None:
        self._real = real
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def call(*args: object, **kwargs: object) -> object:
            self.calls.append(name)
            fn: Callable[..., object] = attr
            return fn(*args, **kwargs)

        return call


def _world(tmp_path: Path, count: int = 3) -> str:
    return world_uri(
        tmp_path, *(Guest(f"g{i}", running=i % 2 == 0, nics=(Nic.network(),)) for i in range(count))
    )


def test_domains_costs_one_listing(tmp_path: Path) -> None:
    with kvmnet.connect(_world(tmp_path, 5)) as host:
        proxy = CountingProxy(host.connection._conn)
        host.connection._conn = proxy
        doms = host.domains()
        assert sorted(d.name for d in doms) == ["g0", "g1", "g2", "g3", "g4"]
        assert proxy.calls == ["listAllDomains"]


def test_domain_lookup_and_not_found(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with kvmnet.connect(_world(tmp_path)) as host:
        assert host.domain("g1").name == "g1"
        with pytest.raises(DomainNotFound, match=r"no domain named 'nope'.*kvmnet -c .* domains"):
            host.domain("nope")
        with pytest.raises(LookupError):
            host.domain("nope")
    # libvirt's default error handler would have printed the lookup failure.
    assert capfd.readouterr().err == ""


def test_uri_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = _world(tmp_path)
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", uri)
    with kvmnet.connect() as host:
        assert host.uri == uri
    with kvmnet.connect("test:///default") as host:
        assert host.uri == "test:///default"
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI")
    from kvmnet.host import default_uri

    assert default_uri() == "qemu:///system"


def test_connection_failure_names_the_uri(capfd: pytest.CaptureFixture[str]) -> None:
    bad = "test:///nonexistent/kvmnet/world.xml"
    with pytest.raises(ConnectionFailed, match=r"nonexistent/kvmnet/world\.xml") as info:
        kvmnet.connect(bad)
    assert info.value.uri == bad
    with pytest.raises(ConnectionFailed, match="kvmnet-bogus:///x") as info:
        kvmnet.connect("kvmnet-bogus:///x")
    assert info.value.__cause__ is not None  # libvirt's own error, chained
    assert capfd.readouterr().err == ""


def test_context_manager_closes(tmp_path: Path) -> None:
    with kvmnet.connect(_world(tmp_path)) as host:
        assert repr(host) == f"<Host {host.uri!r} 3 domains>"
    assert repr(host) == f"<Host {host.uri!r} closed>"
    with pytest.raises(kvmnet.KvmnetError, match="connection is closed"):
        host.domains()
    with pytest.raises(kvmnet.KvmnetError, match="connection is closed"):
        host.networks()


def test_html_lists_every_interface(tmp_path: Path) -> None:
    uri = world_uri(tmp_path, Guest("a<b", nics=(Nic.network(), Nic.bridge("br0"))))
    with kvmnet.connect(uri) as host:
        html = host._repr_html_()
    assert "a&lt;b" in html and "a<b" not in html
    assert html.count("<tr>") == 3  # header + two interfaces
    assert "bridged" in html and "nat" in html


def test_bulk_switch(tmp_path: Path) -> None:
    seen: list[tuple[int, int, str]] = []
    with kvmnet.connect(_world(tmp_path, 4)) as host:
        changes = host.use_bridge_all(
            None, "br0", live=False, progress=lambda d, t, n: seen.append((d, t, n))
        )
        assert len(changes) == 4 and all(c.applied_config for c in changes)
        assert {d.persistent_interfaces[0].source for d in host.domains()} == {"br0"}
        with pytest.raises(DomainNotFound, match="'zz'"):
            host.use_nat_all(["g0", "zz"])
    assert seen[0] == (0, 4, "") and seen[-1][:2] == (4, 4)


def test_bulk_switch_knows_which_guests_run(tmp_path: Path) -> None:
    with kvmnet.connect(_world(tmp_path, 2)) as host:
        running, stopped = host.use_bridge_all(["g0", "g1"], "br0")
    # g0 runs: the test driver cannot change it live, so its change says next boot only.
    assert any("running guest" in n for n in running.notes)
    assert stopped.notes == () and stopped.applied_config

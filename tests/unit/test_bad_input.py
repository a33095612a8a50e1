"""The bad-input campaign: every public entry point refuses bad arguments before anything changes.

Each case is one test id: a call with one bad argument, the error class it must raise (a
KvmnetError subclass; InvalidType is a TypeError too, InvalidInput a ValueError), the value
its message must quote, and then the proof that nothing changed: every domain's live and
persistent XML and every network on the libvirt test driver (same connection), the sandbox
tree holding the backend root, the MAC ledger and the dead-man state dir (hashed before and
after), and the recording runner's calls (no command run, no file written).
CLI cases check the exit status (1 or 2), one line on stderr naming the value, no traceback.
"""

from __future__ import annotations

import hashlib
import math
import os
import pathlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvmnet
from kvmnet import (
    DomainXML,
    InterfaceNotFound,
    InvalidInput,
    InvalidMac,
    InvalidName,
    InvalidType,
    KvmnetError,
    bulk,
)
from kvmnet.backends import (
    IfcfgBackend,
    Iproute2Backend,
    NetplanBackend,
    NetworkdBackend,
    NmcliBackend,
    create_backend,
)
from kvmnet.core.validate import shown
from kvmnet.hostnet import confirm
from kvmnet.hostnet.model.request import BridgeRequest
from kvmnet.hostnet.nic import Bridge, HostNic
from kvmnet.hostnet.runners.runner import LocalRunner, RecordingRunner
from kvmnet.lan import onboard
from kvmnet.testing import Guest, Nic, World
from kvmnet.virt.macalloc import MacAllocator
from kvmnet.virt.macledger import MacLedger
from kvmnet.virt.neighbours import probe

RUN_MAC = "52:54:00:aa:00:01"
OFF_MAC = "52:54:00:bb:00:01"
WORLD = World(
    (
        Guest("run1", nics=(Nic.network(mac=RUN_MAC), Nic.bridge("br0", mac="52:54:00:aa:00:02"))),
        Guest(
            "off1",
            running=False,
            nics=(Nic.network(mac=OFF_MAC), Nic.bridge("br0", mac="52:54:00:bb:00:02")),
        ),
    )
)


@dataclass
class Env:
    """What a case acts on: one connection, a sandbox for files, a recording runner."""

    host: kvmnet.Host
    sandbox: Path
    runner: RecordingRunner
    ledger: MacLedger

    @property
    def root(self) -> Path:
        return self.sandbox / "root"

    def bridge(self) -> Bridge:
        return Bridge("br9", backend=Iproute2Backend(runner=self.runner))


Call = Callable[..., object]  # (env, value) -> anything


def _tree_hash(top: Path) -> str:
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(top)):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath, name)
            st_ = path.lstat()
            digest.update(f"{path.relative_to(top)}|{st_.st_mode:o}|".encode())
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _libvirt_state(host: kvmnet.Host) -> list[tuple[str, str, str]]:
    state = [(d.name, d.xml(), d.xml(inactive=True)) for d in host.domains()]
    state += [(name, str(active), xml) for name, active, xml in host.connection.network_xmls()]
    return sorted(state)


@pytest.fixture(scope="module")
def world_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return WORLD.write(tmp_path_factory.mktemp("world"))


@pytest.fixture
def env(world_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    sandbox = tmp_path / "sandbox"
    root = sandbox / "root"
    for d in ("etc/netplan", "etc/sysconfig/network-scripts", "etc/systemd/network"):
        (root / d).mkdir(parents=True)
    (root / "etc/NetworkManager/system-connections").mkdir(parents=True)
    (root / "etc/netplan/01-lan.yaml").write_text("network: {version: 2}\n")
    (sandbox / "outside").mkdir()
    (sandbox / "afile").write_text("not a directory\n")
    state = sandbox / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("KVMNET_STATE_DIR", str(state))
    ledger = MacLedger(state)
    assert ledger.claim("52:54:00:cc:00:01")
    with kvmnet.connect(world_uri) as host:
        yield Env(host, sandbox, RecordingRunner(), ledger)


def _check(env: Env, call: Call, exc: type[KvmnetError], value: object) -> None:
    # The ledger is read first: an SQLite read may touch its shared-memory index (-shm),
    # which the tree's hash would take for a change.
    claims = env.ledger.claims()
    before_tree = _tree_hash(env.sandbox)
    before_virt = _libvirt_state(env.host)
    with pytest.raises(exc) as info:
        call(env, value)
    error = info.value
    assert isinstance(error, KvmnetError)
    if isinstance(error, InvalidType):
        assert isinstance(error, TypeError)
    if isinstance(error, InvalidInput):
        assert isinstance(error, ValueError)
    message = str(error)
    assert "\n" not in message.strip()
    # The value itself, or for a list the bad entry in it.
    parts = list(value) if isinstance(value, (list, tuple)) else []
    quoted = [shown(v) for v in (value, *parts)]
    assert any(q in message for q in quoted), f"{message!r} does not quote {quoted[0]}"
    # Nothing changed: libvirt (same connection, live and persistent), files, ledger, commands.
    assert _libvirt_state(env.host) == before_virt
    assert _tree_hash(env.sandbox) == before_tree
    assert env.ledger.claims() == claims
    assert env.runner.calls == []


# -- the bad values ------------------------------------------------------------------------

BAD_IFNAMES: list[tuple[object, type[KvmnetError]]] = [
    ("", InvalidName),
    ("a" * 16, InvalidName),
    ("verylongbridge0x", InvalidName),
    ("br:0", InvalidName),
    ("br/0", InvalidName),
    (".", InvalidName),
    ("..", InvalidName),
    ("br 0", InvalidName),
    ("br\t0", InvalidName),
    ("br0\n", InvalidName),
    ("-br0", InvalidName),
    ("bré", InvalidName),
    ("\uff42\uff520", InvalidName),
    ("br\x00", InvalidName),
    ("br\udcff", InvalidName),
    ("br\u200b", InvalidName),
    (0, InvalidType),
    (b"br0", InvalidType),
    (["br0"], InvalidType),
    (1.5, InvalidType),
    (True, InvalidType),
    (pathlib.PurePath("br0"), InvalidType),
]
BAD_NETWORKS: list[tuple[object, type[KvmnetError]]] = [
    ("", InvalidName),
    ("my net", InvalidName),
    ("net/1", InvalidName),
    ("n'et", InvalidName),
    ('n"et', InvalidName),
    ("<n>", InvalidName),
    ("a&b", InvalidName),
    ("n" * 256, InvalidName),
    ("n\x00", InvalidName),
    ("n\udcff", InvalidName),
    ("default\n", InvalidName),
    (0, InvalidType),
    (b"default", InvalidType),
    (["default"], InvalidType),
    (None, InvalidType),
]
BAD_SELECTORS: list[tuple[object, type[KvmnetError]]] = [
    (True, InvalidType),
    (False, InvalidType),
    (1.0, InvalidType),
    (b"52:54:00:aa:00:01", InvalidType),
    ([0], InvalidType),
    ({"mac": RUN_MAC}, InvalidType),
    ("\uff11", InvalidMac),
    ("0", InvalidMac),
    ("01:00:5e:00:00:01", InvalidMac),
    ("00:00:00:00:00:00", InvalidMac),
    ("ff:ff:ff:ff:ff:ff", InvalidMac),
    ("52:54:00:aa:00", InvalidMac),
    ("52:54:00:aa:00:0g", InvalidMac),
    ("52:54:00:aa:00:01:02", InvalidMac),
    ("", InvalidMac),
    (99, InterfaceNotFound),
    (-99, InterfaceNotFound),
]
BAD_MACS: list[tuple[object, type[KvmnetError]]] = [
    ("fe:54:00:00:00:01", InvalidMac),
    ("FE-54-00-00-00-01", InvalidMac),
    ("fe54.0000.0001", InvalidMac),
    ("01:00:00:00:00:01", InvalidMac),
    ("33:33:00:00:00:01", InvalidMac),
    ("ff:ff:ff:ff:ff:ff", InvalidMac),
    ("00:00:00:00:00:00", InvalidMac),
    ("", InvalidMac),
    ("xx", InvalidMac),
    ("52:54:00:00:00:0g", InvalidMac),
    ("52:54:00:00:00", InvalidMac),
    ("52:54:00:00:00:01\x00", InvalidMac),
    ("52:54:00:00:00:\uff10\uff11", InvalidMac),
    (0x525400000001, InvalidType),
    (b"52:54:00:00:00:01", InvalidType),
    (["52:54:00:00:00:01"], InvalidType),
]
BAD_LIVE: list[object] = ["false", "true", "", 0, 1, 0.0, [], "None"]
BAD_BOOLS: list[object] = ["false", "no", 0, 1, None, [], "True"]
BAD_BOUNCE: list[tuple[object, type[KvmnetError]]] = [
    ("1", InvalidType),
    ("true", InvalidType),
    (None, InvalidType),
    ([], InvalidType),
    (-1, InvalidInput),
    (0, InvalidInput),
    (math.nan, InvalidInput),
    (math.inf, InvalidInput),
    (-math.inf, InvalidInput),
    (601, InvalidInput),
]
BAD_SECONDS: list[tuple[object, type[KvmnetError]]] = [
    ("60", InvalidType),
    (True, InvalidType),
    ([60], InvalidType),
    (b"60", InvalidType),
    (0, InvalidInput),
    (-1, InvalidInput),
    (-0.5, InvalidInput),
    (math.nan, InvalidInput),
    (math.inf, InvalidInput),
    (10**9, InvalidInput),
]
BAD_MODELS: list[tuple[object, type[KvmnetError]]] = [
    ("", InvalidInput),
    ("vir tio", InvalidInput),
    ("<virtio/>", InvalidInput),
    ("virtio'", InvalidInput),
    ("m" * 100, InvalidInput),
    (5, InvalidType),
]
BAD_NAMES_LISTS: list[tuple[object, type[KvmnetError]]] = [
    ("run1", InvalidType),
    ("nat", InvalidType),
    (b"run1", InvalidType),
    (5, InvalidType),
    (["run1", 5], InvalidType),
    (["run1", b"off1"], InvalidType),
    (["\x00"], InvalidName),
    ([""], InvalidName),
]
BAD_DOMAIN_NAMES: list[tuple[object, type[KvmnetError]]] = [
    ("", InvalidName),
    ("\x00", InvalidName),
    ("run1\x00", InvalidName),
    ("run\udcff", InvalidName),
    ("run1\n", InvalidName),
    ("\x1b[31m", InvalidName),
    (0, InvalidType),
    (None, InvalidType),
    (b"run1", InvalidType),
    (["run1"], InvalidType),
]
BAD_URIS: list[tuple[object, type[KvmnetError]]] = [
    (5, InvalidType),
    (b"test:///default", InvalidType),
    (["test:///default"], InvalidType),
    ("", InvalidInput),
    ("test:///default\x00", InvalidInput),
    ("test:///def\udcffault", InvalidInput),
    ("no-scheme-here", InvalidInput),
    ("test:///def ault", InvalidInput),
]
BAD_DHCP: list[tuple[object, type[KvmnetError]]] = [
    ("dhclient br9", InvalidType),
    (b"dhclient", InvalidType),
    ([b"dhclient"], InvalidType),
    ((1,), InvalidType),
    (("dhclient\x00",), InvalidInput),
    (("dh\udcff",), InvalidInput),
    (("", "-v"), InvalidInput),
]
BAD_FORCE: list[tuple[object, type[KvmnetError]]] = [
    ("ssh", InvalidType),
    (b"ssh", InvalidType),
    ([1], InvalidType),
    (5, InvalidType),
]

PARAMS: list[object] = []


def case(name: str, value: object, exc: type[KvmnetError], call: Call) -> None:
    PARAMS.append(pytest.param(call, exc, value, id=f"{name}[{shown(value)[:40]}]"))


# -- Domain, on a running and a shut-off guest ------------------------------------------------

for dom_name in ("run1", "off1"):
    d = dom_name

    def on(d: str = d) -> Callable[[Env], kvmnet.Domain]:
        return lambda e: e.host.domain(d)

    dom = on()
    for v, x in BAD_IFNAMES:
        case(f"{d}.use_bridge(bridge)", v, x, lambda e, v, dom=dom: dom(e).use_bridge(v))
    for v, x in BAD_SELECTORS:
        case(f"{d}.use_bridge(iface)", v, x, lambda e, v, dom=dom: dom(e).use_bridge("br1", v))
        case(f"{d}.use_nat(iface)", v, x, lambda e, v, dom=dom: dom(e).use_nat("lan", v))
        case(f"{d}.remove_interface", v, x, lambda e, v, dom=dom: dom(e).remove_interface(v))
    for v in BAD_LIVE:
        case(
            f"{d}.use_bridge(live)",
            v,
            InvalidType,
            lambda e, v, dom=dom: dom(e).use_bridge("br1", live=v),
        )
        case(
            f"{d}.use_nat(live)",
            v,
            InvalidType,
            lambda e, v, dom=dom: dom(e).use_nat("lan", live=v),
        )
        case(
            f"{d}.add_interface(live)",
            v,
            InvalidType,
            lambda e, v, dom=dom: dom(e).add_interface(bridge="br1", live=v),
        )
        case(
            f"{d}.remove_interface(live)",
            v,
            InvalidType,
            lambda e, v, dom=dom: dom(e).remove_interface(1, live=v),
        )
    for v in BAD_BOOLS:
        case(
            f"{d}.use_bridge(dry_run)",
            v,
            InvalidType,
            lambda e, v, dom=dom: dom(e).use_bridge("br1", dry_run=v),
        )
        case(
            f"{d}.add_interface(dry_run)",
            v,
            InvalidType,
            lambda e, v, dom=dom: dom(e).add_interface(network="lan", dry_run=v),
        )
    for v, x in BAD_BOUNCE:
        case(
            f"{d}.use_bridge(bounce_link)",
            v,
            x,
            lambda e, v, dom=dom: dom(e).use_bridge("br1", bounce_link=v),
        )
    for v, x in BAD_NETWORKS:
        case(f"{d}.use_nat(network)", v, x, lambda e, v, dom=dom: dom(e).use_nat(v))
        if v is not None:
            case(
                f"{d}.add_interface(network)",
                v,
                x,
                lambda e, v, dom=dom: dom(e).add_interface(network=v),
            )
    for v, x in BAD_IFNAMES:
        case(
            f"{d}.add_interface(bridge)", v, x, lambda e, v, dom=dom: dom(e).add_interface(bridge=v)
        )
    for v, x in BAD_MACS:
        case(
            f"{d}.add_interface(mac)",
            v,
            x,
            lambda e, v, dom=dom: dom(e).add_interface(bridge="br1", mac=v),
        )
    for v, x in BAD_MODELS:
        case(
            f"{d}.add_interface(model)",
            v,
            x,
            lambda e, v, dom=dom: dom(e).add_interface(bridge="br1", model=v),
        )

for v, x in [("br1", InvalidInput), (None, InvalidInput)]:
    case(
        "add_interface(both or neither)",
        v,
        x,
        lambda e, v: e.host.domain("off1").add_interface(bridge=v, network=v),
    )
for v, x in BAD_SELECTORS[:15]:
    case("bounce_link(iface)", v, x, lambda e, v: e.host.domain("run1").bounce_link(v))
for v, x in BAD_SECONDS:
    case("bounce_link(seconds)", v, x, lambda e, v: e.host.domain("run1").bounce_link(seconds=v))
for v in BAD_BOOLS:
    case("addresses(probe)", v, InvalidType, lambda e, v: e.host.domain("run1").addresses(probe=v))
for v in ["local", LocalRunner, object()]:
    case(
        "addresses(runner)", v, InvalidType, lambda e, v: e.host.domain("run1").addresses(runner=v)
    )

# -- Host -----------------------------------------------------------------------------------

for v, x in BAD_DOMAIN_NAMES:
    case("Host.domain", v, x, lambda e, v: e.host.domain(v))
for v, x in BAD_NETWORKS:
    case("Host.network", v, x, lambda e, v: e.host.network(v))
for v, x in BAD_NAMES_LISTS:
    case("Host.use_bridge_all(names)", v, x, lambda e, v: e.host.use_bridge_all(v, "br1"))
    case("Host.use_nat_all(names)", v, x, lambda e, v: e.host.use_nat_all(v, "lan"))
for v, x in BAD_IFNAMES[:12]:
    case("Host.use_bridge_all(bridge)", v, x, lambda e, v: e.host.use_bridge_all(None, v))
for v, x in BAD_NETWORKS[:8]:
    case("Host.use_nat_all(network)", v, x, lambda e, v: e.host.use_nat_all(None, v))
for v in BAD_LIVE[:4]:
    case(
        "Host.use_bridge_all(live)",
        v,
        InvalidType,
        lambda e, v: e.host.use_bridge_all(["run1", "off1"], "br1", live=v),
    )
    case(
        "Host.use_nat_all(dry_run)",
        v,
        InvalidType,
        lambda e, v: e.host.use_nat_all(["off1"], "lan", dry_run=v),
    )
for v in [5, "bar"]:
    case(
        "Host.use_bridge_all(progress)",
        v,
        InvalidType,
        lambda e, v: e.host.use_bridge_all(["off1"], "br1", progress=v),
    )
for v, x in BAD_URIS:
    case("kvmnet.connect", v, x, lambda e, v: kvmnet.connect(v))

# -- onboard: Host.bridge_guest / nat_guest and kvmnet.lan.onboard --------------------------------


def _bridge_guest(e: Env, **kw: object) -> object:
    args: dict[str, object] = {"bridge": "br1", "dry_run": True}
    args.update(kw)
    return e.host.bridge_guest("off1", **args)  # type: ignore[arg-type]


def _nat_guest(e: Env, **kw: object) -> object:
    args: dict[str, object] = {"dry_run": True}
    args.update(kw)
    return e.host.nat_guest("off1", "lan", **args)  # type: ignore[arg-type]


for v, x in BAD_DOMAIN_NAMES[:7]:
    case(
        "Host.bridge_guest(domain)",
        v,
        x,
        lambda e, v: e.host.bridge_guest(v, bridge="br1", dry_run=True),
    )
    case("onboard.nat_guest(domain)", v, x, lambda e, v: onboard.nat_guest(e.host, v, dry_run=True))
for v, x in BAD_IFNAMES[:10]:
    case("Host.bridge_guest(bridge)", v, x, lambda e, v: _bridge_guest(e, bridge=v))
    case(
        "Host.bridge_guest(nic)",
        v,
        x,
        lambda e, v: _bridge_guest(e, nic=v, backend=Iproute2Backend(runner=e.runner)),
    )
    case(
        "Host.nat_guest(release)",
        v,
        x,
        lambda e, v: _nat_guest(e, release=v, backend=Iproute2Backend(runner=e.runner)),
    )
for v in ["iproute2", Iproute2Backend, 5]:
    case(
        "Host.bridge_guest(backend)",
        v,
        InvalidType,
        lambda e, v: _bridge_guest(e, nic="eth9", backend=v),
    )
for v in BAD_LIVE[:4]:
    case("Host.bridge_guest(live)", v, InvalidType, lambda e, v: _bridge_guest(e, live=v))
    case("Host.nat_guest(live)", v, InvalidType, lambda e, v: _nat_guest(e, live=v))
for v in ["yes", 1, None]:
    case(
        "Host.bridge_guest(bounce_link)",
        v,
        InvalidType,
        lambda e, v: _bridge_guest(e, bounce_link=v),
    )
    case("Host.nat_guest(dry_run)", v, InvalidType, lambda e, v: _nat_guest(e, dry_run=v))
for v, x in BAD_SECONDS:
    case("Host.bridge_guest(confirm_within)", v, x, lambda e, v: _bridge_guest(e, confirm_within=v))
for v, x in [
    ("60", InvalidType),
    (-1, InvalidInput),
    (math.nan, InvalidInput),
    (math.inf, InvalidInput),
    (None, InvalidType),
]:
    case("Host.nat_guest(address_timeout)", v, x, lambda e, v: _nat_guest(e, address_timeout=v))
for v, x in BAD_FORCE:
    case("Host.bridge_guest(force)", v, x, lambda e, v: _bridge_guest(e, force=v))
for v, x in BAD_DHCP:
    case("Host.nat_guest(dhcp_client)", v, x, lambda e, v: _nat_guest(e, dhcp_client=v))
for v, x in [(b"/run/x", InvalidType), ("/run/\x00x", InvalidInput), (5, InvalidType)]:
    case("Host.bridge_guest(state_dir)", v, x, lambda e, v: _bridge_guest(e, state_dir=v))
for v in [5, "bar"]:
    case("Host.nat_guest(progress)", v, InvalidType, lambda e, v: _nat_guest(e, progress=v))

# -- kvmnet.bulk ------------------------------------------------------------------------------

for v, x in BAD_NAMES_LISTS:
    case("bulk.bridge_many(names)", v, x, lambda e, v: bulk.bridge_many(e.host, "br1", v))
    case("bulk.nat_many(names)", v, x, lambda e, v: bulk.nat_many(e.host, "lan", v))
for v, x in BAD_IFNAMES[:8]:
    case(
        "bulk.bridge_many(bridge)",
        v,
        x,
        lambda e, v: bulk.bridge_many(e.host, v, on_network="default"),
    )
    case("bulk.nat_many(on_bridge)", v, x, lambda e, v: bulk.nat_many(e.host, "lan", on_bridge=v))
for v, x in BAD_NETWORKS[:6]:
    case(
        "bulk.bridge_many(on_network)",
        v,
        x,
        lambda e, v: bulk.bridge_many(e.host, "br1", on_network=v),
    )
for v in ["false", 1, 0.0]:
    case(
        "bulk.bridge_many(live)",
        v,
        InvalidType,
        lambda e, v: bulk.bridge_many(e.host, "br1", ["off1"], live=v),
    )
    case(
        "bulk.nat_many(bounce_link)",
        v,
        InvalidType,
        lambda e, v: bulk.nat_many(e.host, "lan", ["off1"], bounce_link=v),
    )
    case(
        "bulk.bridge_many(every)",
        v,
        InvalidType,
        lambda e, v: bulk.bridge_many(e.host, "br1", every=v),
    )
    case("bulk.nat_many(every)", v, InvalidType, lambda e, v: bulk.nat_many(e.host, "lan", every=v))

# -- DomainXML (pure) -------------------------------------------------------------------------


def _doc(e: Env) -> DomainXML:
    return DomainXML(e.host.domain("off1").xml(inactive=True))


def _doc_edit(edit: Callable[..., object]) -> Call:
    def call(e: Env, value: object) -> object:
        doc = _doc(e)
        before = doc.tostring()
        try:
            return edit(doc, value)
        finally:
            assert doc.tostring() == before
            assert doc.notes == ()

    return call


for v, x in [
    (5, InvalidType),
    (b"<domain/>", InvalidType),
    (None, InvalidType),
    ("<domain", InvalidInput),
    ("<network/>", InvalidInput),
    ("<domain>\udcff</domain>", InvalidInput),
]:
    case("DomainXML(text)", v, x, lambda e, v: DomainXML(v))
for v, x in BAD_IFNAMES:
    case("DomainXML.use_bridge", v, x, _doc_edit(lambda doc, v: doc.use_bridge(v)))
for v, x in BAD_NETWORKS:
    case("DomainXML.use_nat", v, x, _doc_edit(lambda doc, v: doc.use_nat(v)))
for v, x in BAD_SELECTORS:
    case("DomainXML.remove_interface", v, x, _doc_edit(lambda doc, v: doc.remove_interface(v)))
    case("DomainXML.use_bridge(iface)", v, x, _doc_edit(lambda doc, v: doc.use_bridge("br1", v)))
for v, x in BAD_MACS:
    case(
        "DomainXML.add_interface(mac)",
        v,
        x,
        _doc_edit(lambda doc, v: doc.add_interface(bridge="br1", mac=v)),
    )
for v, x in BAD_MODELS:
    case(
        "DomainXML.add_interface(model)",
        v,
        x,
        _doc_edit(lambda doc, v: doc.add_interface(network="lan", model=v)),
    )
for v in ["UP", "", 1, None]:
    case("DomainXML.set_link", v, InvalidInput, _doc_edit(lambda doc, v: doc.set_link(v)))

# -- host side: HostNic, Bridge, enslave/release, backends ------------------------------------

for v, x in BAD_IFNAMES:
    case("HostNic(name)", v, x, lambda e, v: HostNic(v, backend=Iproute2Backend(runner=e.runner)))
    case("Bridge(name)", v, x, lambda e, v: Bridge(v, backend=Iproute2Backend(runner=e.runner)))
    case("Bridge.enslave(nic)", v, x, lambda e, v: e.bridge().enslave(v, dry_run=True))
for v in ["iproute2", Iproute2Backend, 5, object()]:
    case("Bridge(backend)", v, InvalidType, lambda e, v: Bridge("br9", backend=v))
for v in BAD_BOOLS:
    case("Bridge.enslave(stp)", v, InvalidType, lambda e, v: e.bridge().enslave("eth9", stp=v))
    case(
        "Bridge.enslave(dry_run)",
        v,
        InvalidType,
        lambda e, v: e.bridge().enslave("eth9", dry_run=v),
    )
    case(
        "Bridge.release(verify)", v, InvalidType, lambda e, v: e.bridge().release("eth9", verify=v)
    )
for v, x in [
    (-1, InvalidInput),
    (31, InvalidInput),
    ("5", InvalidType),
    (True, InvalidType),
    (1.5, InvalidType),
    (None, InvalidType),
]:
    case(
        "Bridge.enslave(forward_delay)",
        v,
        x,
        lambda e, v: e.bridge().enslave("eth9", stp=True, forward_delay=v),
    )
for v, x in BAD_DHCP:
    case(
        "Bridge.enslave(dhcp_client)", v, x, lambda e, v: e.bridge().enslave("eth9", dhcp_client=v)
    )
    case(
        "Bridge.release(dhcp_client)", v, x, lambda e, v: e.bridge().release("eth9", dhcp_client=v)
    )
for v, x in BAD_FORCE:
    case("Bridge.enslave(force)", v, x, lambda e, v: e.bridge().enslave("eth9", force=v))
    case("Bridge.release(force)", v, x, lambda e, v: e.bridge().release("eth9", force=v))
for v, x in BAD_SECONDS:
    case(
        "Bridge.enslave(confirm_within)",
        v,
        x,
        lambda e, v: e.bridge().enslave("eth9", confirm_within=v),
    )
    case(
        "Bridge.release(confirm_within)",
        v,
        x,
        lambda e, v: e.bridge().release("eth9", confirm_within=v),
    )
for v in [5, b"x"]:
    case(
        "Bridge.enslave(ssh_connection)",
        v,
        InvalidType,
        lambda e, v: e.bridge().enslave("eth9", ssh_connection=v),
    )

FILE_BACKENDS = (IfcfgBackend, NetplanBackend, NetworkdBackend, NmcliBackend)


def _roots(e: Env) -> dict[str, object]:
    return {
        "missing": str(e.sandbox / "missing"),
        "missing-path": e.sandbox / "missing" / "deeper",
        "a-file": str(e.sandbox / "afile"),
        "relative": "sandbox/root",
        "empty": "",
        "nul": str(e.root) + "\x00",
        "surrogate": str(e.sandbox / "r\udcff"),
        "bytes": os.fsencode(e.root),
        "int": 5,
    }


ROOT_ERRORS = {
    "missing": InvalidInput,
    "missing-path": InvalidInput,
    "a-file": InvalidInput,
    "relative": InvalidInput,
    "empty": InvalidInput,
    "nul": InvalidInput,
    "surrogate": InvalidInput,
    "bytes": InvalidType,
    "int": InvalidType,
}


class _RootCase:
    """A backend built with a bad root; the value is only known once the sandbox exists."""

    def __init__(self, cls: type, kind: str) -> None:
        self.cls, self.kind = cls, kind

    def __call__(self, e: Env) -> object:
        value = _roots(e)[self.kind]
        self.value = value
        return self.cls(root=value)


backend_cls: type
for backend_cls in FILE_BACKENDS:
    for kind, x in ROOT_ERRORS.items():
        PARAMS.append(
            pytest.param(
                _RootCase(backend_cls, kind), x, None, id=f"{backend_cls.__name__}(root)[{kind}]"
            )
        )


class _SymlinkedConfigDir:
    """A root whose config dir is a symlink to a directory outside it: refused."""

    def __init__(self, cls: type, config_dir: str) -> None:
        self.cls, self.config_dir = cls, config_dir

    def setup(self, e: Env) -> None:
        link = e.sandbox / "linked" / self.config_dir
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(e.sandbox / "outside")

    def __call__(self, e: Env) -> object:
        self.value = str(e.sandbox / "linked")
        return self.cls(root=self.value)


for backend_cls, config_dir in [
    (IfcfgBackend, "etc/sysconfig/network-scripts"),
    (NetplanBackend, "etc/netplan"),
    (NetworkdBackend, "etc/systemd/network"),
    (NmcliBackend, "etc/NetworkManager/system-connections"),
    (NetplanBackend, "etc"),
    (IfcfgBackend, "var/lib/kvmnet"),
]:
    PARAMS.append(
        pytest.param(
            _SymlinkedConfigDir(backend_cls, config_dir),
            InvalidInput,
            None,
            id=f"{backend_cls.__name__}(root)[symlink {config_dir}]",
        )
    )
for v, x in [
    ("", InvalidName),
    ("a/b", InvalidName),
    ("-x", InvalidName),
    ("a b", InvalidName),
    ("ns\x00", InvalidName),
    (5, InvalidType),
    (b"ns", InvalidType),
]:
    case("Iproute2Backend(netns)", v, x, lambda e, v: Iproute2Backend(netns=v))
    case("NmcliBackend(netns)", v, x, lambda e, v: NmcliBackend(root=str(e.root), netns=v))
for v in ["local", LocalRunner, object(), 5]:
    case("Iproute2Backend(runner)", v, InvalidType, lambda e, v: Iproute2Backend(runner=v))
for v, x in [(5, InvalidType), ("nope", InvalidInput), (["iproute2"], InvalidType)]:
    case("create_backend(name)", v, x, lambda e, v: create_backend(v))
case("create_backend(root)", 5, InvalidType, lambda e, v: create_backend("netplan", root=v))

# -- MacAllocator -----------------------------------------------------------------------------


def _alloc(e: Env) -> MacAllocator:
    return MacAllocator(e.host, ledger=e.ledger, kernel_links=False)


for v, x in [
    ("qemu:///system", InvalidType),
    (5, InvalidType),
    ([5], InvalidType),
    (["qemu:///system"], InvalidType),
    (b"x", InvalidType),
]:
    case("MacAllocator(hosts)", v, x, lambda e, v: MacAllocator(v))
for v in ["yes", 1, None]:
    case(
        "MacAllocator(neighbours)", v, InvalidType, lambda e, v: MacAllocator(e.host, neighbours=v)
    )
for v in ["no", 0]:
    case(
        "MacAllocator(kernel_links)",
        v,
        InvalidType,
        lambda e, v: MacAllocator(e.host, kernel_links=v),
    )
for v, x in [("a/b", InvalidName), (5, InvalidType)]:
    case("MacAllocator(netns)", v, x, lambda e, v: MacAllocator(e.host, netns=v))
for v, x in BAD_MACS:
    case("MacAllocator.reserve", v, x, lambda e, v: _alloc(e).reserve(v))
for v, x in BAD_MACS[3:]:
    case("MacAllocator.release", v, x, lambda e, v: _alloc(e).release(v))
    case("MacAllocator.is_free", v, x, lambda e, v: _alloc(e).is_free(v))
for v in [5, b"k", ["k"]]:
    case("MacAllocator.allocate(key)", v, InvalidType, lambda e, v: _alloc(e).allocate(key=v))


# -- the rest: state dir, address waits, the bridge sweep, LanPlan.apply, Domain.xml ----------

for v, x in [(b"/run/kvmnet", InvalidType), ("/run/\x00", InvalidInput), (5, InvalidType),
             ("/run/\udcff", InvalidInput)]:  # fmt: skip
    case("hostnet.confirm(state_dir)", v, x, lambda e, v: confirm(state_dir=v))
for v, x in [
    ("60", InvalidType),
    (-1, InvalidInput),
    (math.nan, InvalidInput),
    (None, InvalidType),
]:
    case(
        "onboard.wait_for_address(timeout)",
        v,
        x,
        lambda e, v: onboard.wait_for_address(e.host.domain("run1"), RUN_MAC, timeout=v),
    )
for v, x in [("fe", InvalidMac), (5, InvalidType), ("01:00:5e:00:00:01", InvalidMac)]:
    case(
        "onboard.wait_for_address(mac)",
        v,
        x,
        lambda e, v: onboard.wait_for_address(e.host.domain("run1"), v, timeout=0),
    )
for v, x in [("br:0", InvalidName), ("", InvalidName), (5, InvalidType)]:
    case("neighbours.probe(bridge)", v, x, lambda e, v: probe(v, [RUN_MAC], runner=e.runner))
for v, x in [(RUN_MAC, InvalidType), (["zz"], InvalidMac), ([5], InvalidType)]:
    case("neighbours.probe(macs)", v, x, lambda e, v: probe("br0", v, runner=e.runner))
for v, x in [(0, InvalidInput), ("256", InvalidType), (-1, InvalidInput)]:
    case(
        "neighbours.probe(max_addresses)",
        v,
        x,
        lambda e, v: probe("br0", [RUN_MAC], runner=e.runner, max_addresses=v),
    )
for v, x in [(math.nan, InvalidInput), ("1", InvalidType)]:
    case(
        "neighbours.probe(wait)",
        v,
        x,
        lambda e, v: probe("br0", [RUN_MAC], runner=e.runner, wait=v),
    )
for v, x in [(5, InvalidType), ("bar", InvalidType)]:
    case(
        "LanPlan.apply(progress)",
        v,
        x,
        lambda e, v: onboard.plan_bridge_guest(e.host, "off1", bridge="br1").apply(progress=v),
    )
for v, x in [(b"/x", InvalidType), ("/x\x00", InvalidInput)]:
    case(
        "LanPlan.apply(state_dir)",
        v,
        x,
        lambda e, v: onboard.plan_nat_guest(e.host, "off1", "lan").apply(state_dir=v),
    )
for v in ["yes", 1, None]:
    case("Domain.xml(inactive)", v, InvalidType, lambda e, v: e.host.domain("off1").xml(inactive=v))
for v in ["ledger", 5, Path("/run/kvmnet")]:
    case("MacAllocator(ledger)", v, InvalidType, lambda e, v: MacAllocator(e.host, ledger=v))


for v, x in [("5", InvalidType), (True, InvalidType), (2.0, InvalidType), (-1, InvalidInput)]:
    case(
        "BridgeRequest(forward_delay)",
        v,
        x,
        lambda e, v: BridgeRequest("eth9", "br9", forward_delay=v),
    )
for v in ["no", 1, None]:
    case("BridgeRequest(stp)", v, InvalidType, lambda e, v: BridgeRequest("eth9", "br9", stp=v))
for v, x in BAD_DHCP:
    case("BridgeRequest(dhcp_client)", v, x,
         lambda e, v: BridgeRequest("eth9", "br9", dhcp_client=v))  # fmt: skip


@pytest.mark.parametrize(("call", "exc", "value"), PARAMS)
def test_bad_input_is_refused_before_anything_changes(
    env: Env, call: Call, exc: type[KvmnetError], value: object
) -> None:
    if isinstance(call, (_RootCase, _SymlinkedConfigDir)):
        _check_root(env, call, exc)
    else:
        _check(env, call, exc, value)


def _check_root(env: Env, call: _RootCase | _SymlinkedConfigDir, exc: type[KvmnetError]) -> None:
    if isinstance(call, _SymlinkedConfigDir):
        call.setup(env)
    before = _tree_hash(env.sandbox)
    with pytest.raises(exc) as info:
        call(env)
    value = call.value
    message = str(info.value)
    assert shown(os.fspath(value) if isinstance(value, os.PathLike) else value) in message
    if isinstance(call, _SymlinkedConfigDir):
        assert "outside the root" in message
    assert not (env.sandbox / "missing").exists(), "a missing root was created"
    assert _tree_hash(env.sandbox) == before
    assert os.listdir(env.sandbox / "outside") == []


# -- the two sides agree on bridge names -------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_guest_xml_and_host_bridge_accept_the_same_names(name: str) -> None:
    """A name the guest side accepts is one the host side can create, and the reverse."""
    doc = DomainXML(WORLD_XML)
    outcomes = []
    for attempt in (
        lambda: doc.use_bridge(name),
        lambda: Bridge(name, backend=Iproute2Backend(runner=RecordingRunner())),
        lambda: BridgeRequest("eth9", name),
    ):
        try:
            attempt()
            outcomes.append(True)
        except InvalidInput as exc:
            assert shown(name) in str(exc)
            outcomes.append(False)
    assert outcomes in ([True] * 3, [False] * 3), (name, outcomes)


WORLD_XML = (
    "<domain type='test'><name>x</name><devices>"
    "<interface type='network'><mac address='52:54:00:00:00:01'/>"
    "<source network='default'/></interface></devices></domain>"
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=24))
def test_a_guest_mac_is_refused_or_assignable(text: str) -> None:
    """Any text given as a guest MAC is refused (InvalidMac) or is one libvirt will start."""
    doc = DomainXML(WORLD_XML)
    try:
        iface = doc.add_interface(bridge="br0", mac=text)
    except InvalidMac as exc:
        assert shown(text) in str(exc)
        assert doc.tostring() == WORLD_XML
        return
    assert iface.mac is not None
    first = int(iface.mac[:2], 16)
    assert first & 1 == 0 and first != 0xFE and iface.mac != "00:00:00:00:00:00"


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=6),
        st.integers(),
        st.floats(),
        st.binary(max_size=4),
        st.lists(st.booleans(), max_size=2),
    )
)
def test_live_takes_only_true_false_or_none(value: object) -> None:
    """Whatever else is passed as ``live`` is refused before the guest is read."""
    with pytest.raises(InvalidType) as info:
        DomainEdits.use_bridge(value)
    assert shown(value) in str(info.value)


class DomainEdits:
    """A Domain whose host is never reached: a refusal must come before any libvirt call."""

    @staticmethod
    def use_bridge(live: object) -> None:
        dom = object.__new__(kvmnet.Domain)  # no host, no handle: any read would fail
        dom.use_bridge("br0", live=live)  # type: ignore[arg-type]


def test_campaign_size() -> None:
    """The issue asks for at least 300 distinct bad inputs; say how many there are."""
    ids = [p.id for p in PARAMS]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids)), "two cases share an id"
    assert len(ids) >= 300, len(ids)


# -- the command line -------------------------------------------------------------------------

HB = ["host-bridge", "eth9", "br9", "--backend", "iproute2", "--dry-run"]
ONB = ["bridge", "run1", "br0", "--create-from", "eth9", "--backend", "iproute2", "--dry-run"]
# (argv after -c URI, exit status, what stderr must quote); "{sandbox}" is filled in.
CLI_CASES: list[tuple[str, list[str], int, str]] = [
    ("argv not UTF-8 (bridge)", ["bridge", "run1", "br\udcff"], 2, "\\xff"),
    ("argv not UTF-8 (domain)", ["nat", "\udcferun1"], 2, "\\xfe"),
    ("argv not UTF-8 (option)", ["bridge", "run1", "br0", "--iface", "\udc80"], 2, "\\x80"),
    ("bridge name with colon", ["bridge", "run1", "br:0"], 1, "'br:0'"),
    ("bridge name 16 chars", ["bridge", "run1", "a" * 16], 1, "'" + "a" * 16 + "'"),
    ("bridge name dot", ["bridge", "run1", "."], 1, "'.'"),
    ("bridge name space", ["bridge", "run1", "br 0"], 1, "'br 0'"),
    ("bridge name non-ASCII", ["bridge", "run1", "bré"], 1, "'bré'"),
    ("iface fullwidth digit", ["bridge", "run1", "br0", "--iface", "\uff11"], 1, "'\uff11'"),
    ("iface float", ["bridge", "run1", "br0", "--iface", "1.5"], 1, "'1.5'"),
    ("iface garbage", ["bridge", "run1", "br0", "--iface", "zz"], 1, "'zz'"),
    ("iface multicast", ["nat", "run1", "--iface", "01:00:5e:00:00:01"], 1, "01:00:5e:00:00:01"),
    ("network with space", ["nat", "run1", "my net"], 1, "'my net'"),
    ("network with slash", ["nat", "run1", "net/1"], 1, "'net/1'"),
    ("add-nic fe MAC", ["add-nic", "off1", "--bridge", "br0", "--mac", "fe:54:00:00:00:01"], 1,
     "fe:54:00:00:00:01"),
    ("add-nic multicast MAC", ["add-nic", "off1", "--bridge", "br0", "--mac", "01:00:00:00:00:01"],
     1, "01:00:00:00:00:01"),
    ("add-nic zero MAC", ["add-nic", "off1", "--bridge", "br0", "--mac", "00:00:00:00:00:00"], 1,
     "00:00:00:00:00:00"),
    ("add-nic bad model", ["add-nic", "off1", "--bridge", "br0", "--model", "a b"], 1, "'a b'"),
    ("add-nic bad bridge", ["add-nic", "off1", "--bridge", "br 0"], 1, "'br 0'"),
    ("add-nic bad network", ["add-nic", "off1", "--network", "n'et"], 1, "\"n'et\""),
    ("remove-nic fullwidth", ["remove-nic", "off1", "\uff10"], 1, "'\uff10'"),
    ("remove-nic empty", ["remove-nic", "off1", ""], 1, "''"),
    ("dhcp-client unbalanced quote", [*HB, "--dhcp-client", 'dhclient "x'], 2, "dhclient \"x"),
    ("dhcp-client empty", [*HB, "--dhcp-client", ""], 2, "''"),
    ("confirm-within 0", [*HB, "--confirm-within", "0"], 2, "'0'"),
    ("confirm-within -1", [*HB, "--confirm-within", "-1"], 2, "'-1'"),
    ("confirm-within nan", [*HB, "--confirm-within", "nan"], 2, "'nan'"),
    ("confirm-within inf", [*HB, "--confirm-within", "inf"], 2, "'inf'"),
    ("confirm-within fullwidth", [*HB, "--confirm-within", "\uff16\uff10"], 2, "'\uff16\uff10'"),
    ("confirm-within words", [*HB, "--confirm-within", "soon"], 2, "'soon'"),
    ("forward-delay fullwidth", [*HB, "--stp", "--forward-delay", "\uff15"], 2, "'\uff15'"),
    ("forward-delay 31", [*HB, "--stp", "--forward-delay", "31"], 1, "31"),
    ("host-bridge bad bridge", ["host-bridge", "eth9", "br:9", "--backend", "iproute2"], 1,
     "'br:9'"),
    ("host-bridge bad nic", ["host-bridge", "eth 9", "br9", "--backend", "iproute2"], 1, "'eth 9'"),
    ("host-bridge bad netns", [*HB, "--netns", "a/b"], 1, "'a/b'"),
    ("root missing", ["host-bridge", "eth9", "br9", "--backend", "netplan", "--dry-run", "--root",
                      "{sandbox}/missing"], 1, "missing'"),
    ("root relative", ["host-bridge", "eth9", "br9", "--backend", "netplan", "--root", "rel"], 1,
     "'rel'"),
    ("root is a file", ["host-bridge", "eth9", "br9", "--backend", "ifcfg", "--root",
                        "{sandbox}/afile"], 1, "afile'"),
    ("onboard wait nan", [*ONB, "--wait", "nan"], 2, "'nan'"),
    ("onboard wait negative", [*ONB, "--wait", "-1"], 2, "'-1'"),
    ("onboard dhcp-client quote", [*ONB, "--dhcp-client", "'"], 2, "\"'\""),
    ("onboard bad nic", ["bridge", "run1", "br0", "--create-from", "eth:9", "--backend",
                         "iproute2"], 1, "'eth:9'"),
    ("nat release bad nic", ["nat", "run1", "--release", "eth 9", "--backend", "iproute2"], 1,
     "'eth 9'"),
    ("empty domain name", ["bridge", "", "br0"], 1, "''"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "status", "fragment"),
    [pytest.param(a, s, f, id=f"cli[{i}]") for i, a, s, f in CLI_CASES],
)
def test_cli_refuses_with_one_line_and_no_traceback(
    env: Env, world_uri: str, capsys: pytest.CaptureFixture[str], argv: list[str], status: int,
    fragment: str,
) -> None:  # fmt: skip
    from kvmnet.cli import main

    argv = [a.replace("{sandbox}", str(env.sandbox)) for a in argv]
    before_tree = _tree_hash(env.sandbox)
    try:
        # host-bridge/host-release act on a machine, which a test-driver URI does not name:
        # their bad values are checked without -c (on this machine; refused before acting).
        uri = [] if argv[:1] in (["host-bridge"], ["host-release"]) else ["-c", world_uri]
        code = main([*uri, *argv])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == status, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("kvmnet"), err
    assert fragment in last, f"{last!r} does not quote {fragment!r}"
    if status == 1:
        assert len(err.strip().splitlines()) == 1, err
    assert _tree_hash(env.sandbox) == before_tree
    assert not (env.sandbox / "missing").exists()


ARGV_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_characters="\x00"), st.sampled_from(["\udcff", "\udc80", "-", ":"])
    ),
    max_size=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bridge=ARGV_TEXT, iface=ARGV_TEXT, mac=ARGV_TEXT)
def test_cli_never_shows_a_traceback(
    world_uri: str, capsys: pytest.CaptureFixture[str], bridge: str, iface: str, mac: str
) -> None:
    """Whatever text reaches the command line: exit 0, 1 or 2, and never a traceback."""
    from kvmnet.cli import main

    for argv in (
        ["bridge", "off1", bridge, "--iface", iface, "--dry-run"],
        ["add-nic", "off1", "--bridge", bridge, "--mac", mac, "--dry-run"],
        ["remove-nic", "off1", iface, "--dry-run"],
    ):
        try:
            code = main(["-c", world_uri, *argv])
        except SystemExit as exc:
            code = exc.code  # type: ignore[assignment]
        err = capsys.readouterr().err
        assert code in (0, 1, 2), (argv, code, err)
        assert "Traceback" not in err and "internal error" not in err, err


def test_cli_turns_an_unexpected_error_into_one_line() -> None:
    """A bug in a handler still ends as one line and exit 1 (-vv logs the traceback)."""
    import argparse

    from kvmnet.cli._common import CommandError, run_command

    def handler(args: argparse.Namespace) -> int:
        raise RuntimeError("boom\nsecond line")

    with pytest.raises(CommandError) as info:
        run_command(argparse.Namespace(handler=handler))
    assert info.value.status == 1
    assert str(info.value) == (
        "internal error (RuntimeError: boom second line); please report it with the output of -vv"
    )

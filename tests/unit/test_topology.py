"""host.topology(): the network as a value, drawn as SVG and DOT, before and after a plan.

Real libvirt (test-driver worlds) for the guests and networks, the shipped fake host for the
host's links; the pictures are checked with the real tools that read them (lxml against the
SVG namespace, rsvg-convert to PNG, Graphviz's dot).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from lxml import etree

import kvmnet
from kvmnet.backends import Iproute2Backend
from kvmnet.errors import InvalidInput
from kvmnet.hostnet.model.plan import Plan, RunCommand
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.nic import Bridge, HostNic
from kvmnet.hostnet.runners.runner import RecordingRunner
from kvmnet.mode import Mode
from kvmnet.testing import Guest, Nic, World, fake_host, world_uri
from kvmnet.topology import Topology
from tests.lab.golden import require_tool

SVG = "{http://www.w3.org/2000/svg}"
MAC_NIC = "52:54:00:aa:00:01"
LEASE = "10.231.0.185/24"


def _host_runner(*, bridged: bool = False) -> RecordingRunner:
    """A host with eth0 on the LAN (DHCP), or with eth0 already a port of br0."""
    addr = IpAddress(LEASE, 3600, 3600, True)
    if bridged:
        links = [
            LinkState("eth0", MAC_NIC, master="br0", operstate="UP", flags=("UP",)),
            LinkState("br0", MAC_NIC, kind="bridge", operstate="UP", flags=("UP",),
                      addresses=(addr,), ports=("eth0",), stp=False, forward_delay=0),
        ]
        routes = [IpRoute("default", "br0", "10.231.0.1")]
    else:
        links = [LinkState("eth0", MAC_NIC, operstate="UP", flags=("UP",), addresses=(addr,))]
        routes = [IpRoute("default", "eth0", "10.231.0.1")]
    return fake_host(links, routes)


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return world_uri(
        tmp_path,
        Guest("web1", nics=(Nic.network(mac="52:54:00:00:00:01"),)),
        Guest("web2", nics=(Nic.bridge("br0", mac="52:54:00:00:00:02"),)),
        Guest("db1", running=False,
              nics=(Nic.network(mac="52:54:00:00:00:03"),
                    Nic.network("isolated", mac="52:54:00:00:00:04"))),
    )


def test_topology_reads_guests_networks_bridges_and_nics(uri: str) -> None:
    with kvmnet.connect(uri) as host:
        topo = host.topology(runner=_host_runner())
    assert {g.name for g in topo.guests} == {"web1", "web2", "db1"}
    web1 = topo.guest("web1")
    assert web1 is not None and web1.running
    assert [(p.mac, p.mode, p.attach) for p in web1.ports] == [
        ("52:54:00:00:00:01", Mode.NAT, "virbr0")
    ]
    db1 = topo.guest("db1")
    assert db1 is not None and not db1.running
    assert [p.attach for p in db1.ports] == ["virbr0", "virbr2"]
    virbr0 = topo.bridge("virbr0")
    assert virbr0 is not None and virbr0.network == "default" and virbr0.mode is Mode.NAT
    assert virbr0.subnet == "192.168.122.0/24"
    nic = topo.nic("eth0")
    assert nic is not None and nic.addresses == (LEASE,) and nic.default_route
    assert topo.gateway == "10.231.0.1"
    edges = set(topo.edges())
    assert ("iface:web1:52:54:00:00:00:01", "bridge:virbr0") in edges
    assert ("iface:web2:52:54:00:00:00:02", "bridge:br0") in edges
    assert ("nic:eth0", "lan") in edges
    # The fake host has no br0 yet: the guest names it, the host does not have it.
    br0 = topo.bridge("br0")
    assert br0 is not None and not br0.seen
    json.dumps(topo.to_dict())  # plain data


def test_test_driver_alone_draws_what_libvirt_knows(uri: str) -> None:
    with kvmnet.connect(uri) as host:
        topo = host.topology()
    assert not topo.host_read and topo.nics == ()
    assert {b.name for b in topo.bridges} >= {"virbr0", "virbr2", "br0"}
    assert "web1" in topo.summary()


def _svg_texts(svg: str) -> list[str]:
    root = etree.fromstring(svg.encode())
    assert root.tag == f"{SVG}svg"
    return [t.text or "" for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize("theme", ["light", "dark", "auto"])
def test_svg_is_valid_and_labelled(uri: str, theme: str) -> None:
    with kvmnet.connect(uri) as host:
        svg = host.topology(runner=_host_runner()).svg(theme=theme)
    texts = _svg_texts(svg)
    for label in ("web1", "web2", "virbr0", "br0", "eth0", "LAN", "52:54:00:00:00:01 nat",
                  "gateway 10.231.0.1", LEASE):
        assert any(label in t for t in texts), label
    if theme == "auto":
        assert "var(--jp-ui-font-color1" in svg and "<rect width=\"100%\"" not in svg
    else:
        assert "<rect width=\"100%\"" in svg  # its own background: readable anywhere


def test_bad_theme_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'sepia'"):
        Topology("test:///x").svg(theme="sepia")


def _png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct pixels of an 8-bit RGB(A) PNG (stdlib only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, size = 8, b"", 0, 0, 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            size = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * size + 1
    pixels: set[bytes] = set()
    # Filter bytes aside, the distinct byte quadruples of the first rows are enough to tell
    # a drawing from a blank page without undoing PNG's row filters.
    for row in range(0, height, max(1, height // 40)):
        line = raw[row * stride + 1:(row + 1) * stride]
        pixels.update(line[i:i + size] for i in range(0, len(line), size))
    return width, height, pixels


def test_svg_renders_with_rsvg(uri: str, tmp_path: Path) -> None:
    rsvg = require_tool("rsvg-convert")
    with kvmnet.connect(uri) as host:
        topo = host.topology(runner=_host_runner())
    for theme in ("light", "dark"):
        src = tmp_path / f"{theme}.svg"
        src.write_text(topo.svg(theme=theme))
        png = tmp_path / f"{theme}.png"
        subprocess.run([rsvg, str(src), "-o", str(png)], check=True, timeout=60)
        width, height, pixels = _png_pixels(png.read_bytes())
        assert width > 400 and height > 150
        assert len(pixels) > 20, "the picture is blank"


def _enslave_plan(runner: RecordingRunner) -> Plan:
    backend = Iproute2Backend(runner=runner)
    return Bridge("br0", backend=backend).enslave(HostNic("eth0", backend=backend),
                                                   dry_run=True)


def _moves_by_steps(plan: Plan) -> set[str]:
    """What the iproute2 plan's own commands change, read from its argv (not its checks)."""
    moved: set[str] = set()
    for step in plan.steps:
        if not isinstance(step, RunCommand) or step.argv[:1] != ("ip",):
            continue
        argv = step.argv
        if argv[1:3] == ("link", "add"):
            moved.add(f"bridge:{argv[3]}")
        elif argv[1:3] == ("link", "set") and "master" in argv:
            nic, bridge = argv[3], argv[argv.index("master") + 1]
            moved |= {f"nic:{nic}", f"edge:bridge:{bridge}->nic:{nic}", f"bridge:{bridge}"}
        elif argv[1:3] == ("addr", "add"):
            moved.add(f"bridge:{argv[argv.index('dev') + 1]}")
        elif argv[1:3] == ("addr", "del"):
            moved.add(f"nic:{argv[argv.index('dev') + 1]}")
    return moved


def test_after_a_host_plan_marks_exactly_what_its_steps_move(uri: str) -> None:
    runner = _host_runner()
    plan = _enslave_plan(runner)
    with kvmnet.connect(uri) as host:
        before = host.topology(runner=runner)
    after = before.after(plan)
    assert after.changed == _moves_by_steps(plan)
    nic, br0 = after.nic("eth0"), after.bridge("br0")
    assert nic is not None and nic.master == "br0" and nic.addresses == ()
    assert br0 is not None and br0.seen and LEASE in br0.addresses and br0.ports == ("eth0",)
    assert after.removed == frozenset()
    assert before.changed == frozenset()  # values: the original is untouched


def test_after_a_guest_plus_host_plan_marks_the_guest_move(uri: str) -> None:
    runner = _host_runner()
    backend = Iproute2Backend(runner=runner)
    with kvmnet.connect(uri) as host:
        before = host.topology(runner=runner)
        result = host.bridge_guest("web1", bridge="br0", nic="eth0", backend=backend,
                                   dry_run=True)
    after = before.after(result)
    assert result.plan.host_plan is not None
    iface = "iface:web1:52:54:00:00:00:01"
    guest_moves = {iface, f"edge:{iface}->bridge:br0"}
    assert after.changed == _moves_by_steps(result.plan.host_plan) | guest_moves
    assert after.removed == {(iface, "bridge:virbr0")}
    texts = _svg_texts(after.svg())
    assert any("changed by the plan" in t for t in texts)
    assert any("removed by the plan" in t for t in texts)
    assert "#e6550d" in after.svg()


def test_after_a_release_plan_takes_the_port_away(uri: str) -> None:
    runner = _host_runner(bridged=True)
    backend = Iproute2Backend(runner=runner)
    plan = Bridge("br0", backend=backend).release(HostNic("eth0", backend=backend),
                                                  dry_run=True)
    with kvmnet.connect(uri) as host:
        before = host.topology(runner=runner)
    after = before.after(plan)
    assert ("bridge:br0", "nic:eth0") in after.removed
    nic = after.nic("eth0")
    assert nic is not None and nic.master is None and LEASE in nic.addresses
    assert "nic:eth0" in after.changed


def test_large_hosts_collapse_into_groups(tmp_path: Path) -> None:
    guests = tuple(
        Guest(f"g{n:03}", running=n % 2 == 0, nics=(Nic.network(),)) for n in range(200)
    )
    uri = World(guests=guests).write(tmp_path)
    with kvmnet.connect(uri) as host:
        topo = host.topology(runner=_host_runner())
    texts = _svg_texts(topo.svg())
    assert any("200 guests (100 running)" in t for t in texts)
    assert any("200 interfaces -> virbr0" in t for t in texts)
    assert not any(t.startswith("g150") for t in texts)  # one box, not 200
    html = topo._repr_html_()
    assert "<details>" in html and "g150" in html  # expandable list of the members
    full = _svg_texts(topo.svg(collapse=0))
    assert any(t.startswith("g150") for t in full)


def test_dot_is_read_by_graphviz(uri: str, tmp_path: Path) -> None:
    dot = require_tool("dot")
    runner = _host_runner()
    with kvmnet.connect(uri) as host:
        topo = host.topology(runner=runner)
    text = topo.after(_enslave_plan(runner)).dot()
    out = subprocess.run([dot, "-Tsvg"], input=text, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    root = etree.fromstring(out.encode())
    titles = {t.text for t in root.iter(f"{SVG}title")}
    assert {"bridge:br0", "nic:eth0", "lan"} <= titles
    assert "penwidth=3" in text  # what the plan moves is drawn bold


def _kvmnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvmnet", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_cli_show_writes_svg_dot_and_json(uri: str, tmp_path: Path) -> None:
    out = tmp_path / "host.svg"
    res = _kvmnet("-c", uri, "show", "--svg", str(out))
    assert res.returncode == 0, res.stderr
    assert any("web1" in t for t in _svg_texts(out.read_text()))
    res = _kvmnet("-c", uri, "show", "--dot")
    assert res.returncode == 0 and res.stdout.startswith("digraph"), res.stderr
    res = _kvmnet("-c", uri, "show", "--json")
    data = json.loads(res.stdout)
    assert {g["name"] for g in data["guests"]} == {"web1", "web2", "db1"}
    res = _kvmnet("-c", uri, "show")
    assert res.returncode == 0 and "virbr0" in res.stdout


def test_cli_show_unwritable_file_is_one_line(uri: str, tmp_path: Path) -> None:
    res = _kvmnet("-c", uri, "show", "--svg", str(tmp_path / "missing" / "x.svg"))
    assert res.returncode == 1
    assert "cannot write" in res.stderr and "Traceback" not in res.stderr

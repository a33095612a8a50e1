"""The Jupyter views (``_repr_html_``) of plans, host links, the MAC allocator, the network
list and guest moves: well-formed, everything escaped, left-aligned, code in the code font, and
the facts that matter in them.

The screenshots (light and dark JupyterLab themes) are a manual check; these tests pin what
the rendered markup must hold.
"""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from lxml import html as lxml_html

import kvmnet
from kvmnet.backends import Iproute2Backend
from kvmnet.core import _html
from kvmnet.core.network import Networks
from kvmnet.hostnet.apply import ApplyResult
from kvmnet.hostnet.fake import fake_host
from kvmnet.hostnet.model.plan import (
    Check,
    Plan,
    RemoveFile,
    RunCommand,
    StartProcess,
    StopProcess,
    WriteFile,
)
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.runners.runner import CommandResult, RecordingRunner
from kvmnet.lan.lanplan import LanResult
from kvmnet.testing import Guest, NetSpec, Nic, nat_network, world_uri
from kvmnet.virt.addresses import GuestAddress

EVIL = "<script>alert('x')</script>&"


# -- what every view must be ---------------------------------------------------------------


class _Balance(HTMLParser):
    """Every element closed, in order; no void element (the helpers use none)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(tag)
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def well_formed(markup: str) -> list[str]:
    """The element names in ``markup``, after checking every element is closed in order."""
    parser = _Balance()
    parser.feed(markup)
    parser.close()
    assert parser.errors == [] and parser.stack == [], (parser.errors, parser.stack)
    assert "script" not in parser.tags  # nothing a value carried became markup
    return parser.tags


def tree(markup: str) -> lxml_html.HtmlElement:
    return lxml_html.fragment_fromstring(markup, create_parent="div")


def style_of(element: lxml_html.HtmlElement) -> str:
    return (element.get("style") or "").replace(" ", "")


def is_mono(element: lxml_html.HtmlElement) -> bool:
    """True if ``element`` or an ancestor sets the code font."""
    node: lxml_html.HtmlElement | None = element
    while node is not None:
        if "--jp-code-font-family" in style_of(node) and "monospace" in style_of(node):
            return True
        node = node.getparent()
    return False


def check_view(markup: str) -> lxml_html.HtmlElement:
    """Well-formed, left-aligned tables and blocks, no <caption> (it wraps), no <style>."""
    well_formed(markup)
    root = tree(markup)
    for el in root.iter("table", "th", "td", "pre"):
        assert "text-align:left" in style_of(el), (el.tag, el.get("style"))
    for el in root.iter("table"):
        assert "margin:0" in style_of(el)  # JupyterLab centres tables otherwise
    assert not list(root.iter("caption", "style"))
    for el in root.iter("pre", "code"):
        assert is_mono(el), lxml_html.tostring(el)
    return root


def mono_texts(root: lxml_html.HtmlElement) -> list[str]:
    """The text of every <code> and <pre>: what the view shows in the code font."""
    return [el.text_content() for el in root.iter("code", "pre")]


# -- the helpers ---------------------------------------------------------------------------


def _luminance(colour: str) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


@pytest.mark.parametrize(
    "label",
    ["nat", "bridged", "isolated", "routed", "direct", "other", "up", "down", "dormant", "dry run"],
)
def test_badges_are_readable_on_either_theme(label: str) -> None:
    # White text on the badge's own fill: the page behind it (light or dark) does not matter.
    fill = re.search(r"background:(#[0-9a-f]{6})", _html.badge(label).markup)
    assert fill is not None
    contrast = (1.05) / (_luminance(fill.group(1)) + 0.05)
    assert contrast >= 4.5, (label, fill.group(1), contrast)


def test_tables_are_left_aligned_with_the_title_above() -> None:
    root = check_view(_html.table(["a", "b"], [("1", "2")], caption="title & more"))
    assert root.xpath("string(./div[1])") == "title & more"
    assert [th.text for th in root.iter("th")] == ["a", "b"]


def test_keyvalues_have_no_empty_header_row() -> None:
    root = check_view(_html.keyvalues({"state": "UP"}))
    assert not list(root.iter("thead", "th"))
    assert [td.text_content() for td in root.iter("td")] == ["state", "UP"]


def test_text_colour_is_inherited_so_both_themes_read_it() -> None:
    # Colour only as translucent tints or on a badge's own fill; no fixed text colour that
    # would vanish on one of the two themes.
    markup = (
        _html.diff("--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n")
        + _html.callout("careful", kind="warning")
        + _html.table(["h"], [(_html.code("c"),)])
    )
    assert re.findall(r"(?<![-\w])color:(?!inherit)[^;\"]+", markup) == []


def test_diff_lines_are_blocks_tinted_by_kind() -> None:
    root = check_view(_html.diff("--- a\n+++ b\n@@ -1,2 +1,2 @@\n-old <x>\n+new & y\n\n same"))
    spans = {s.text_content(): style_of(s) for s in root.iter("span")}
    assert "#d62728" in spans["-old <x>"] and "#2ca02c" in spans["+new & y"]
    assert "#1f77b4" in spans["@@ -1,2 +1,2 @@"]
    assert " " in spans  # an empty line keeps its height
    assert all("display:block" in s for s in spans.values())


def test_callout_and_bullets_escape() -> None:
    markup = _html.callout(EVIL, kind="warning") + _html.bullets([EVIL])
    root = check_view(markup)
    assert root.text_content().count(EVIL) == 2
    assert "warning:" in root.text_content()


# -- Plan ----------------------------------------------------------------------------------


def sample_plan(text: str = "why") -> Plan:
    return Plan(
        backend="ifcfg",
        action="enslave",
        nic="eth0",
        bridge="br0",
        steps=(
            StopProcess(99, ("dhclient", "eth0"), why=text),
            WriteFile("/etc/ifcfg-br0", "DEVICE=br0\nTYPE=Bridge\n", why="new"),
            WriteFile(
                "/etc/ifcfg-eth0",
                "DEVICE=eth0\nBRIDGE=br0\n",
                previous="DEVICE=eth0\nBOOTPROTO=dhcp\n",
            ),
            WriteFile("/etc/same", "A=1\n", previous="A=1\n"),
            RemoveFile("/etc/old", previous="gone=1\n"),
            RunCommand(("nmcli", "connection", "up", "my nic"), why="activate"),
            StartProcess(("dhclient", "br0")),
        ),
        checks=(Check("port-of", "eth0", "br0"), Check("has-address", "br0", "10.0.0.5/24")),
        rollback_hints=(RunCommand(("nmcli", "connection", "reload")),),
        warnings=("eth0's lease expires",),
        notes=("backend auto -> ifcfg: /etc/sysconfig/network-scripts exists",),
        dry_run=True,
        requires_confirmation=True,
    )


def test_plan_view_shows_commands_and_paths_in_the_code_font() -> None:
    root = check_view(sample_plan()._repr_html_())
    code = mono_texts(root)
    for shown in (
        "$ kill -TERM 99",
        "dhclient eth0",
        "$ nmcli connection up 'my nic'",  # quoted as a shell would need it
        "$ dhclient br0 &",
        "/etc/ifcfg-br0",
        "/etc/ifcfg-eth0",
        "/etc/old",
        "$ nmcli connection reload",
        "eth0",
        "br0",
    ):
        assert shown in code, shown
    rows = root.xpath("//table[1]/tbody/tr")
    assert len(rows) == 7  # one per step, in order
    assert [r.xpath("string(td[2])") for r in rows] == [
        "stop",
        "write",
        "write",
        "write",
        "remove",
        "run",
        "start",
    ]


def test_plan_view_shows_file_changes_as_coloured_diffs() -> None:
    root = check_view(sample_plan()._repr_html_())
    lines = {s.text_content(): style_of(s) for s in root.iter("span") if s.text_content()}
    assert "#2ca02c" in lines["+TYPE=Bridge"]  # a new file: every line added
    assert "#d62728" in lines["-BOOTPROTO=dhcp"] and "#2ca02c" in lines["+BRIDGE=br0"]
    assert "#d62728" in lines["-gone=1"]  # a removed file: its content, removed
    assert "(unchanged)" in root.text_content()  # /etc/same
    assert "mode 0644" in root.text_content()


def test_plan_view_shows_notes_warnings_checks_and_state() -> None:
    root = check_view(sample_plan()._repr_html_())
    text = root.text_content()
    assert "backend auto -> ifcfg: /etc/sysconfig/network-scripts exists" in text
    assert "warning: eth0's lease expires" in text
    assert "dead-man timer" in text  # requires_confirmation
    assert "dry run" in text and "ifcfg" in text
    checks = root.xpath("//table[2]/tbody/tr")
    assert [c.xpath("string(td[2])") for c in checks] == [
        "port-of eth0 br0",
        "has-address br0 10.0.0.5/24",
    ]
    assert "on rollback" in text


def test_plan_view_escapes_everything() -> None:
    plan = replace(
        sample_plan(EVIL),
        nic="eth<0>",
        notes=(EVIL,),
        warnings=(EVIL,),
        steps=(
            *sample_plan(EVIL).steps,
            WriteFile(f"/etc/{EVIL}", f"{EVIL}\n", previous=f"{EVIL}x\n", why=EVIL),
        ),
        checks=(Check("port-of", "eth0", "br0", description=EVIL),),
    )
    markup = plan._repr_html_()
    root = check_view(markup)
    assert "<script>" not in markup and "eth&lt;0&gt;" in markup
    assert root.text_content().count(EVIL) >= 6


def test_empty_plan_says_there_is_nothing_to_do() -> None:
    plan = Plan(
        backend="iproute2",
        action="enslave",
        nic="eth0",
        bridge="br0",
        steps=(),
        warnings=("eth0 is already a port of br0: nothing to do",),
    )
    root = check_view(plan._repr_html_())
    assert "nothing to do" in root.text_content()


def lab_runner() -> RecordingRunner:
    return fake_host(
        [
            LinkState(
                "eth0",
                "52:54:00:aa:00:01",
                addresses=(
                    IpAddress("10.0.0.5/24", valid_lft=3600, preferred_lft=3600, dynamic=True),
                ),
            ),
            LinkState(
                "virbr0",
                "52:54:00:fe:ff:00",
                kind="bridge",
                stp=True,
                forward_delay=200,
                addresses=(IpAddress("192.168.122.1/24"),),
            ),
            LinkState("vnet0", "fe:54:00:fe:00:00", master="virbr0"),
            LinkState("vnet1", "fe:54:00:fe:00:01", master="virbr0", operstate="DOWN"),
        ],
        routes=[
            IpRoute("default", "eth0", gateway="10.0.0.1", metric=100, protocol="dhcp"),
            IpRoute("192.168.122.0/24", "virbr0", protocol="kernel", scope="link"),
        ],
    )


def test_a_real_backend_plan_renders() -> None:
    backend = Iproute2Backend(runner=lab_runner())
    plan = kvmnet.Bridge("br0", backend=backend).enslave("eth0", dry_run=True)
    root = check_view(plan._repr_html_())
    code = mono_texts(root)
    assert "$ ip link set eth0 master br0" in code
    assert "$ ip addr add 10.0.0.5/24 dev br0 valid_lft 3600 preferred_lft 3600" in code
    assert len(root.xpath("//table[1]/tbody/tr")) == len(plan.steps)


# -- HostNic and Bridge --------------------------------------------------------------------


def facts(root: lxml_html.HtmlElement) -> dict[str, str]:
    """The first key/value table of a view, as a dict."""
    table = root.xpath("//table[1]")[0]
    return {r.xpath("string(td[1])"): r.xpath("string(td[2])") for r in table.iter("tr")}


def test_host_nic_view() -> None:
    backend = Iproute2Backend(runner=lab_runner())
    root = check_view(kvmnet.HostNic("eth0", backend=backend)._repr_html_())
    shown = facts(root)
    assert shown["state"] == "UP" and shown["MAC"] == "52:54:00:aa:00:01"
    assert shown["port of"] == "(no bridge)" and shown["MTU"] == "1500"
    assert "52:54:00:aa:00:01" in mono_texts(root)
    text = root.text_content()
    assert "10.0.0.5/24" in mono_texts(root) and "3600 s" in text and "DHCP" in text
    route = root.xpath("//table[3]/tbody/tr[1]")[0]
    assert [td.text_content() for td in route.iter("td")] == ["default", "10.0.0.1", "100", "dhcp"]


def test_port_nic_names_its_bridge() -> None:
    backend = Iproute2Backend(runner=lab_runner())
    root = check_view(kvmnet.HostNic("vnet1", backend=backend)._repr_html_())
    assert facts(root)["port of"] == "virbr0" and facts(root)["state"] == "DOWN"
    assert "(no address)" in root.text_content() and "(no route)" in root.text_content()


def test_bridge_view() -> None:
    backend = Iproute2Backend(runner=lab_runner())
    root = check_view(kvmnet.Bridge("virbr0", backend=backend)._repr_html_())
    shown = facts(root)
    assert shown["ports"] == "vnet0, vnet1" and shown["STP"] == "on"
    assert shown["forward delay"] == "2 s" and shown["kind"] == "bridge"
    assert "192.168.122.1/24" in mono_texts(root) and "forever" in root.text_content()
    assert "192.168.122.0/24" in mono_texts(root)


def test_absent_links_say_so() -> None:
    backend = Iproute2Backend(runner=lab_runner())
    for link in (kvmnet.Bridge("br9", backend=backend), kvmnet.HostNic("eth9", backend=backend)):
        root = check_view(link._repr_html_())
        assert "absent" in root.text_content() and link.name in root.text_content()


# -- MacAllocator --------------------------------------------------------------------------


def test_mac_allocator_view(tmp_path: Path) -> None:
    uri = world_uri(
        tmp_path, Guest("web1", nics=(Nic.network("default", mac="52:54:00:12:34:56"),))
    )
    with kvmnet.connect(uri) as host:
        alloc = kvmnet.MacAllocator([host])
        macs = alloc.allocate_many(3)
        alloc.reserve("52:54:00:00:00:07")
        root = check_view(alloc._repr_html_())
    shown = facts(root)
    assert shown["prefix"] == "52:54:00" and shown["mode"] == "prefix"
    assert shown["hosts"] == uri and shown["handed out or reserved"] == "4"
    assert shown["MACs in use"] == str(len(alloc.in_use))
    for mac in (*macs, "52:54:00:00:00:07"):
        assert mac in shown["... these"]
    sources = root.xpath("//table[2]/tbody/tr")
    assert len(sources) == len(alloc.sources)
    assert {r.xpath("string(td[2])"): r.xpath("string(td[4])") for r in sources}["domains"] == "1"


def test_mac_allocator_view_warns_of_a_source_not_read(tmp_path: Path) -> None:
    argv = ("ip", "-j", "link", "show")
    runner = RecordingRunner(replies={argv: CommandResult(argv, 1, "", EVIL)})
    with kvmnet.connect(world_uri(tmp_path)) as host:
        alloc = kvmnet.MacAllocator([host], kernel_links=True, runner=runner)
        markup = alloc._repr_html_()
    root = check_view(markup)
    assert alloc.failed_sources
    assert "warning:" in root.text_content() and "NOT READ" in root.text_content()
    (kernel,) = [
        r for r in root.xpath("//table[2]/tbody/tr") if "ip link" in r.xpath("string(td[2])")
    ]
    assert (
        kernel.xpath("string(td[3])").startswith("failed ") and kernel.xpath("string(td[4])") == "0"
    )
    assert "<script>" not in markup


def test_mac_allocator_lists_a_bounded_number_of_macs(tmp_path: Path) -> None:
    with kvmnet.connect(world_uri(tmp_path)) as host:
        alloc = kvmnet.MacAllocator([host])
        alloc.allocate_many(100)
        shown = facts(check_view(alloc._repr_html_()))
    assert shown["handed out or reserved"] == "100"
    assert "and 68 more" in shown["... these"]


# -- host.networks() -----------------------------------------------------------------------


def test_networks_are_a_list_that_renders_as_one_table(tmp_path: Path) -> None:
    odd = NetSpec("lab<1>", bridge="virbr9", forward="route", subnet="10.9.0.1/24")
    with kvmnet.connect(world_uri(tmp_path, networks=(nat_network(), odd))) as host:
        nets = host.networks()
    assert isinstance(nets, list) and isinstance(nets, Networks)
    assert all(isinstance(n, kvmnet.Network) for n in nets) and len(nets) == 2
    markup = nets._repr_html_()
    root = check_view(markup)
    assert "lab<1>" not in markup
    rows = {r.xpath("string(td[1])"): r for r in root.xpath("//tbody/tr")}
    assert set(rows) == {"default", "lab<1>"}
    default = [td.text_content() for td in rows["default"].iter("td")]
    assert default == [
        "default",
        "nat",
        "nat",
        "virbr0",
        "192.168.122.0/24",
        "192.168.122.1/24",
        "0",
        "yes",
    ]
    assert rows["lab<1>"].xpath("string(td[2])") == "routed"
    assert "virbr9" in mono_texts(root)


def test_no_network_says_so() -> None:
    assert "(no libvirt network)" in check_view(Networks()._repr_html_()).text_content()


# -- LanPlan and LanResult -----------------------------------------------------------------


def test_lan_plan_view_numbers_host_then_guest(tmp_path: Path) -> None:
    uri = world_uri(tmp_path, Guest("db1", nics=(Nic.network("default"),), running=False))
    backend = Iproute2Backend(runner=lab_runner())
    with kvmnet.connect(uri) as host:
        result = host.bridge_guest(
            "db1", bridge="br0", nic="eth0", backend=backend, dry_run=True, confirm_within=30
        )
    root = check_view(result._repr_html_())
    text = root.text_content()
    host_at, guest_at = text.index("1. host: iproute2 enslave eth0"), text.index("2. guest: db1")
    assert host_at < guest_at < text.index("3. guest checks")
    assert "$ ip link set eth0 master br0" in mono_texts(root)
    assert "rolled back unless confirmed within 30 s" in text
    added = [s.text_content() for s in root.iter("span") if "#2ca02c" in style_of(s)]
    assert "+      <source bridge='br0'/>" in added


def test_applied_lan_result_view(tmp_path: Path) -> None:
    # A real guest-only move on the test driver: the host is left alone.
    uri = world_uri(tmp_path, Guest("web1", nics=(Nic.bridge("br0"),)))
    with kvmnet.connect(uri) as host:
        moved = host.nat_guest("web1", address_timeout=0)
    assert moved.applied
    root = check_view(moved._repr_html_())
    shown = facts(root)
    assert shown["guest"] == "web1" and shown["host"] == "untouched"
    assert shown["now on"].startswith("default") and shown["now on"].endswith("nat")
    assert shown["interface"] == moved.plan.iface
    assert "(no address yet)" in root.text_content()
    assert "domain XML diff" in root.text_content()


def test_lan_result_shows_addresses_and_pending_confirmation(tmp_path: Path) -> None:
    uri = world_uri(tmp_path, Guest("db1", nics=(Nic.network("default"),), running=False))
    backend = Iproute2Backend(runner=lab_runner())
    with kvmnet.connect(uri) as host:
        dry = host.bridge_guest("db1", bridge="br0", nic="eth0", backend=backend, dry_run=True)
    assert dry.plan.host_plan is not None
    # What apply_lan_plan returns after a move under a dead-man timer (values only).
    done = LanResult(
        dry.plan,
        applied=True,
        host_result=ApplyResult(dry.plan.host_plan, verified=True, pending_confirmation="ab12"),
        addresses=(GuestAddress(dry.plan.iface or "", "10.0.0.77", 24, "arp"),),
        pending_confirmation="pending confirmation (ab12): rolled back unless `kvmnet confirm`",
        notes=(EVIL,),
    )
    markup = done._repr_html_()
    root = check_view(markup)
    shown = facts(root)
    assert shown["host"] == "eth0 bridged into br0 (iproute2, verified)"
    assert "confirm: pending confirmation (ab12)" in root.text_content()
    assert "10.0.0.77/24" in mono_texts(root) and "arp" in root.text_content()
    assert "<script>" not in markup and EVIL in root.text_content()

"""kvmnet.core._xmltext: the plain-text searches answer as the regexes they replace; the
scans find what lxml finds; removal cuts the same whitespace from the tree and the text.

The searches are find() loops so that a command-line start compiles no regex for them; each
is checked here against its regex on hand-picked and generated text.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from kvmnet.core._xmltext import (
    _has_entity_ref,
    _has_special,
    _interface_starts,
    line_start_if_blank,
    quick_scan,
    quote_of,
    removal_cut,
    remove_element,
    rewrite,
    scan,
    with_breaks,
)

_IFACE_OPEN = re.compile(rb"<interface[\s/>]")
_SPECIAL = re.compile(rb"<!--|<!\[CDATA\[|<\?")
_ATTR_QUOTE = re.compile(rb"=\s*(['\"])")
_ENTITY_REF = re.compile(r"&(?!amp;|lt;|gt;|quot;|apos;|#)")

# Text made of the pieces the searches look for, so that matches (and near misses) are common.
_PIECES = [
    "<interface", "<interfaces", "</interface>", "<interface/>", "<interface>", " ", "\t", "\n",
    "\x0b", "\x0c", "\r", "/", ">", "<", "=", "'", '"', "a", "<!--", "<![CDATA[", "<?", "&",
    "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#10;", "&#x41;", "&nbsp;", "amp;", "é",
]  # fmt: skip
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)


@settings(max_examples=400)
@given(_TEXT)
def test_interface_starts_as_the_regex(text: str) -> None:
    data = text.encode()
    assert _interface_starts(data) == [m.start() for m in _IFACE_OPEN.finditer(data)]


@settings(max_examples=400)
@given(_TEXT)
def test_has_special_as_the_regex(text: str) -> None:
    data = text.encode()
    assert _has_special(data) == (_SPECIAL.search(data, 1) is not None)


@settings(max_examples=400)
@given(_TEXT)
def test_quote_of_as_the_regex(text: str) -> None:
    data = text.encode()
    m = _ATTR_QUOTE.search(data)
    assert quote_of(data) == (m.group(1).decode() if m else "'")


@settings(max_examples=400)
@given(_TEXT)
def test_has_entity_ref_as_the_regex(text: str) -> None:
    assert _has_entity_ref(text) == (_ENTITY_REF.search(text) is not None)


@pytest.mark.parametrize(
    ("data", "starts"),
    [
        (b"<domain><devices><interface type='network'/></devices></domain>", [17]),
        (b"<interface\n type='x'><interfaces/><interface/>", [0, 34]),
        (b"<interface", []),
        (b"<interface<interface>", [10]),
    ],
)
def test_interface_starts_examples(data: bytes, starts: list[int]) -> None:
    assert _interface_starts(data) == starts


# -- the scans: what quick_scan leaves to expat, and what expat finds --------------------------

_PI_END = (  # notes/fuzz-api/repro/r07_domainxml_pi_splice.py (finding F8)
    "<domain><name>x</name><devices><interface type='network'><?x </interface>?>"
    "<mac address='52:54:00:00:00:01'/><source network='default'/></interface></devices></domain>"
)


def _parsed(text: str) -> tuple[bytes, list[etree._Element]]:
    data = text.encode()
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False))
    return data, root.findall("devices/interface")


@pytest.mark.parametrize(
    "special", ["<?x </interface>?>", "<!-- </interface> -->", "<x><![CDATA[</interface>]]></x>"]
)
def test_quick_scan_leaves_an_end_tag_in_a_pi_comment_or_cdata_to_expat(special: str) -> None:
    text = _PI_END.replace("<?x </interface>?>", special)
    data, elements = _parsed(text)
    assert quick_scan(data, elements) is None
    layout = scan(data, "domain")
    assert layout is not None
    start, end = layout.spans[0]
    assert data[start:end].startswith(b"<interface") and data[end:] == b"</devices></domain>"


def test_scan_ends_an_empty_element_before_an_end_tag_where_it_ends() -> None:
    data = (
        b"<domain><devices><disk/><interface type='x'/></devices><devices><a/></devices></domain>"
    )
    layout = scan(data, "domain")
    assert layout is not None
    assert [data[s:e] for s, e in layout.spans] == [b"<interface type='x'/>"]
    assert layout.device_ends == (data.index(b"<interface"),)  # the first <devices> only
    assert layout.root == (0, len(data))


def test_scan_counts_the_interfaces_lxml_counts() -> None:
    # notes/fuzz-api/repro/r08_domainxml_noop_tostring.py (finding F9)
    for text in [
        "<domain type='kvm'><name>x</name><devices><interface xmlns='urn:x' type='network'/>"
        "<interface type='bridge'><source bridge='br0'/></interface></devices></domain>",
        "<!DOCTYPE domain [<!ENTITY e \"<x/>\"><!-- <interface> in a comment is fine -->"
        "<!ENTITY f '<interface/>'>]><domain type='kvm'><name>x</name><devices>"
        "<interface type='bridge'><source bridge='br0'/></interface>&f;</devices></domain>",
    ]:
        data, elements = _parsed(text)
        assert len(elements) == 1 and quick_scan(data, elements) is None
        layout = scan(data, "domain")
        assert layout is not None
        assert [data[s:e] for s, e in layout.spans] == [
            b"<interface type='bridge'><source bridge='br0'/></interface>"
        ]


_BEFORE = st.lists(st.sampled_from([" ", "\t", "\n", "\r\n", "\r", "x", "<!--c-->"]), max_size=8)


@settings(max_examples=300)
@given(_BEFORE.map("".join), _BEFORE.map("".join))
def test_remove_element_drops_what_line_start_if_blank_cuts(before: str, after: str) -> None:
    text = f"<d><a/>{before}<i/>{after}</d>"
    data = text.encode()
    root = etree.fromstring(data)
    dropped = remove_element(root.find("i"))  # type: ignore[arg-type]
    start = data.index(b"<i/>")
    cut = removal_cut(data, start, start + 4, dropped)
    if cut is None:  # a lone CR left before a LF: DomainXML writes the root again
        assert "\r" in before
        return
    assert cut == line_start_if_blank(data, start)
    # The text with that cut reads as the tree does.
    again = etree.fromstring(data[:cut] + data[start + 4 :])
    assert etree.tostring(again) == etree.tostring(root)


def test_written_elements_keep_the_line_breaks_and_carriage_returns() -> None:
    data = b"<i a='1'>\r\n  <b>x&#13;y</b>\r\n  <!-- c -->\r\n</i>"
    el = etree.fromstring(data)
    out = rewrite(el, data)
    assert out == "<i a='1'>\r\n  <b>x&#13;y</b>\r\n  <!-- c -->\r\n</i>"
    assert with_breaks("<i>\n</i>", b"<i>\r</i>") == "<i>\r</i>"
    assert with_breaks("<i>\n</i>", b"<i>\n</i>") == "<i>\n</i>"

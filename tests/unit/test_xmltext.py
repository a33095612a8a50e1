"""kvmnet.core._xmltext's plain-text searches answer as the regexes they replace.

They are find() loops so that a command-line start compiles no regex for them; each is
checked here against its regex on hand-picked and generated text.
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
    quick_scan,
    quote_of,
    scan,
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

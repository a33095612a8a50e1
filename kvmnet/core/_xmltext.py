"""Byte-exact splicing: where elements sit in XML text, and how to write one back alike.

DomainXML edits an lxml tree but never re-serialises the whole document: it finds the byte
spans of the ``<interface>`` elements in the original text and replaces only the edited ones,
written in the quote style they were written in. Everything here is pure text handling.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from lxml import etree

from .. import _log

log = _log.get(__name__)

__all__ = [
    "Layout",
    "insert_child",
    "line_start_if_blank",
    "quick_scan",
    "quote_of",
    "remove_element",
    "scan",
    "serialise",
    "splice",
    "tail_indent",
]


class Layout(NamedTuple):
    """Where things sit in the original bytes (from one expat pass).

    A named tuple: a frozen dataclass would compile its methods on every command-line start.
    """

    spans: tuple[tuple[int, int], ...]  # each devices/interface: [start, end)
    last_device_end: int | None  # end of the last element child of <devices>


class _Unsafe(Exception):
    pass


def scan(data: bytes, root_tag: str) -> Layout | None:
    """Byte spans of ``/domain/devices/interface``; None if the text defeats the scan."""
    import xml.parsers.expat  # only edits scan: listings never do, and pyexpat costs a start

    parser = xml.parsers.expat.ParserCreate(encoding="utf-8")
    stack: list[str] = []
    starts: list[int] = []
    spans: list[tuple[int, int]] = []
    last_device_end: list[int] = []

    def start(name: str, _attrs: object) -> None:
        stack.append(name)
        if name == "interface" and stack[:-1] == [root_tag, "devices"]:
            starts.append(parser.CurrentByteIndex)

    def end(name: str) -> None:
        here = parser.CurrentByteIndex
        # expat points at "</name>" for a closing tag, and just past "<name/>" for an empty one.
        stop = _tag_end(data, here) if data.startswith(b"</", here) else here
        if name == "interface" and stack[:-1] == [root_tag, "devices"]:
            spans.append((starts.pop(), stop))
        if stack[:-1] == [root_tag, "devices"]:
            last_device_end[:] = [stop]
        stack.pop()

    def no_entities(*_args: object) -> None:
        raise _Unsafe("entity declarations")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.EntityDeclHandler = no_entities
    try:
        parser.Parse(data, True)
    except (xml.parsers.expat.ExpatError, _Unsafe, ValueError) as exc:
        log.debug("falling back to lxml serialisation: %s", exc)
        return None
    return Layout(tuple(spans), last_device_end[0] if last_device_end else None)


# The searches below are plain find() loops rather than regexes: each regex compiled costs a
# command-line start more than the search itself (tests/unit/test_xmltext.py holds each to
# the regex it replaces).
_IFACE_OPEN = b"<interface"
_IFACE_CLOSE = b"</interface>"
_BLANKS = b" \t\n\r\f\v"  # a bytes regex's \s
_NAME_END = frozenset(_BLANKS + b"/>")  # what may follow a tag's name in a start tag


def _interface_starts(data: bytes) -> list[int]:
    """Where each ``<interface`` start tag begins (the regex ``<interface[\\s/>]``)."""
    starts = []
    at = data.find(_IFACE_OPEN)
    while at >= 0:
        after = at + len(_IFACE_OPEN)
        if after < len(data) and data[after] in _NAME_END:
            starts.append(at)
        at = data.find(_IFACE_OPEN, at + 1)
    return starts


def _has_special(data: bytes) -> bool:
    """A comment, CDATA section or processing instruction after the first byte."""
    return data.find(b"<!--", 1) >= 0 or data.find(b"<![CDATA[", 1) >= 0 or data.find(b"<?", 1) >= 0


def quick_scan(data: bytes, elements: list[etree._Element]) -> Layout | None:
    """The spans `scan` finds, by searching the text; None when in any doubt.

    Every ``<interface`` in the text must be one of ``elements`` (same count, same order),
    and no span may hold a comment, CDATA section, processing instruction or a nested
    interface; otherwise the full expat scan decides. (Interfaces are the only elements
    edited, so only their spans matter.)

    Why that suffices: each element has a real ``<interface`` start tag in the text, so as
    many matches as elements means no match is anything else (a comment, PI, CDATA or DTD
    holding ``<interface``, or an interface lxml does not count, such as a namespaced one).
    ``<`` cannot occur raw in attribute values or text, so the first ``</interface>`` after
    a start tag is its end tag unless a comment, PI or CDATA section between them holds
    one, and then that construct starts inside the span. With any of those in the document,
    each match is also checked against the line lxml read the element on.
    """
    # Written for speed (a bulk switch scans one document per guest): no slices, no
    # generators, and the checks for comments, CDATA and PIs inside a span only when the
    # document has any (none after its first byte means none in any span).
    starts = _interface_starts(data)
    if len(starts) != len(elements) or not starts:
        return None
    check_lines = _has_special(data)
    spans: list[tuple[int, int]] = []
    line, pos, end = 1, 0, 0
    for start, el in zip(starts, elements, strict=True):
        if start < end:
            return None  # inside the previous span: nested
        if check_lines:
            line += data.count(b"\n", pos, start)
            pos = start
            if int(el.sourceline) != line:  # type: ignore[call-overload]
                return None
        head_end = _tag_end(data, start)
        if data[head_end - 2 : head_end] == b"/>":
            end = head_end
        else:
            close = data.find(_IFACE_CLOSE, head_end)
            if close < 0:
                return None
            end = close + len(_IFACE_CLOSE)
        if check_lines and _special_in(data, start, end):
            return None
        if data.count(_IFACE_OPEN, start, end) != 1:
            return None
        spans.append((start, end))
    # A new interface goes after the last one; with none there, the slow scan finds the spot.
    return Layout(tuple(spans), end)


def _special_in(data: bytes, start: int, end: int) -> bool:
    """A comment, CDATA section or processing instruction starts in ``data[start:end]``."""
    return (
        data.find(b"<!--", start, end) >= 0
        or data.find(b"<![CDATA[", start, end) >= 0
        or data.find(b"<?", start, end) >= 0
    )


# Only for mixed quotes: compiled (in re's cache) when first needed, not on every start.
_TAG_BODY = rb"""<(?:[^>'"]|'[^']*'|"[^"]*")*>"""


def _tag_end(data: bytes, at: int) -> int:
    """Index just past the tag starting at ``at`` (``>`` may appear inside quoted values)."""
    end = data.find(b">", at)
    if end >= 0:
        singles, doubles = data.count(b"'", at, end), data.count(b'"', at, end)
        # With one kind of quote only (libvirt writes ' and escapes "), an even count means
        # no value is open at the first ">", so it closes the tag. Mixed quotes: the regex.
        if (doubles == 0 and singles % 2 == 0) or (singles == 0 and doubles % 2 == 0):
            return end + 1
    m = re.compile(_TAG_BODY).match(data, at)
    if m is not None:
        return m.end()
    quote = 0
    i = at
    while i < len(data):
        c = data[i]
        if quote:
            if c == quote:
                quote = 0
        elif c in (0x22, 0x27):
            quote = c
        elif c == 0x3E:
            return i + 1
        i += 1
    raise ValueError(f"unterminated tag at byte {at}")


def quote_of(text: bytes) -> str:
    """The quote of the first attribute value in ``text`` (the regex ``=\\s*(['"])``), else '."""
    at = text.find(b"=")
    while at >= 0:
        i = at + 1
        while i < len(text) and text[i] in _BLANKS:
            i += 1
        if i < len(text) and text[i] in b"'\"":
            return chr(text[i])
        at = text.find(b"=", at + 1)
    return "'"


def _escape_attr(value: str, quote: str) -> str:
    out = value.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "&#10;")
    out = out.replace("\t", "&#9;").replace("\r", "&#13;")
    return out.replace(quote, "&quot;" if quote == '"' else "&apos;")


def _escape_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _qname(el: etree._Element, name: str) -> str:
    if not name.startswith("{"):
        return name
    uri, local = name[1:].split("}", 1)
    for prefix, ns in el.nsmap.items():
        if ns == uri and prefix:
            return f"{prefix}:{local}"
    return local


_QUOTE_IN_TEXT = re.compile(r'>[^<]*"')
_PREDEFINED = ("amp;", "lt;", "gt;", "quot;", "apos;", "#")  # what lxml itself writes after &


def _has_entity_ref(text: str) -> bool:
    """An ``&`` that starts no predefined or character reference (an entity reference)."""
    at = text.find("&")
    while at >= 0:
        if not text.startswith(_PREDEFINED, at + 1):
            return True
        at = text.find("&", at + 1)
    return False
# Rarely needed (a "'" in a value, a namespace): compiled, in re's cache, on first use.
_TAG = r"<[^!?/][^>]*>"
_XMLNS = r'\s+xmlns(?::[\w.-]+)?="[^"]*"'


def _requote(match: re.Match[str]) -> str:
    # lxml writes attribute values in double quotes with '"' escaped and "'" raw.
    return match.group(0).replace("'", "&apos;").replace('"', "'")


def serialise(el: etree._Element, quote: str) -> str:
    """One element and its subtree (not its tail), attributes in ``quote`` marks."""
    # lxml's C serialiser, re-quoted: several times faster than walking the tree here.
    text = etree.tostring(el, encoding="unicode", with_tail=False)
    if "<!--" in text or "<?" in text or ("&" in text and _has_entity_ref(text)):
        return _serialise_tree(el, quote)  # comments, PIs, entity references: keep exactly
    head_end = text.index(">")
    if text.find("xmlns", 0, head_end) >= 0:
        parent = el.getparent()
        if parent is None or el.nsmap != parent.nsmap:
            return _serialise_tree(el, quote)  # it declares a namespace of its own
        # lxml re-declares inherited namespaces on the top element; the document has them.
        text = re.sub(_XMLNS, "", text[:head_end]) + text[head_end:]
    if quote == '"':
        return text
    if "'" not in text and not _QUOTE_IN_TEXT.search(text):
        return text.replace('"', "'")  # every '"' delimits an attribute value
    return re.sub(_TAG, _requote, text)


def _serialise_tree(el: etree._Element, quote: str) -> str:
    if not isinstance(el.tag, str):
        # Comment, PI or entity reference: lxml writes these faithfully.
        return etree.tostring(el, encoding="unicode", with_tail=False)
    tag = _qname(el, el.tag)
    parent = el.getparent()
    inherited = parent.nsmap if parent is not None else {}
    # Namespaces this element declares itself (lxml keeps them out of .attrib).
    declared = "".join(
        f" xmlns{':' + prefix if prefix else ''}={quote}{_escape_attr(uri, quote)}{quote}"
        for prefix, uri in el.nsmap.items()
        if inherited.get(prefix) != uri
    )
    attrs = declared + "".join(
        f" {_qname(el, str(k))}={quote}{_escape_attr(str(v), quote)}{quote}"
        for k, v in el.attrib.items()
    )
    children = list(el)
    if not children and not el.text:
        return f"<{tag}{attrs}/>"
    parts = [f"<{tag}{attrs}>", _escape_text(el.text or "")]
    for child in children:
        parts.append(_serialise_tree(child, quote))
        parts.append(_escape_text(child.tail or ""))
    parts.append(f"</{tag}>")
    return "".join(parts)


def tail_indent(prev: etree._Element | None, parent_text: str | None) -> str:
    """Indentation of the line after ``prev`` (or after the parent's start tag)."""
    ws = prev.tail if prev is not None else parent_text
    if not ws or "\n" not in ws:
        return ""
    last = ws.rsplit("\n", 1)[1]
    return last if last.strip() == "" else ""


def line_start_if_blank(data: bytes, pos: int) -> int:
    """Start of the line of ``pos`` (newline included) if only blanks precede it there."""
    nl = data.rfind(b"\n", 0, pos)
    if data[nl + 1 : pos].strip() == b"":
        return nl if nl >= 0 else 0
    return pos


def splice(text: str, data: bytes, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with each byte span ``[start, end)`` of ``data`` (its UTF-8) replaced.

    Args:
        text: the document.
        data: ``text`` in UTF-8 (the spans are offsets in it).
        edits: ``(start, end, new text)``, in order, not overlapping.

    Returns:
        The new document.
    """
    pos = 0
    if len(data) == len(text):
        # ASCII: byte offsets are character offsets, so the text is cut without encoding the
        # new pieces and decoding the whole document again.
        parts: list[str] = []
        for start, end, new in edits:
            parts += (text[pos:start], new)
            pos = end
        parts.append(text[pos:])
        return "".join(parts)
    chunks: list[bytes] = []
    for start, end, new in edits:
        chunks += (data[pos:start], new.encode())
        pos = end
    chunks.append(data[pos:])
    return b"".join(chunks).decode("utf-8")


def remove_element(el: etree._Element) -> None:
    """Remove ``el`` and the whitespace that introduced it, keeping the layout tidy."""
    parent = el.getparent()
    if parent is None:
        return
    prev = el.getprevious()
    # The whitespace before el is prev's tail (or parent's text); el's own tail is what
    # follows it. Keep the following whitespace, drop the introducing one.
    if prev is not None:
        prev.tail = el.tail
    else:
        parent.text = el.tail
    parent.remove(el)


def insert_child(parent: etree._Element, child: etree._Element, *, after: tuple[str, ...]) -> None:
    """Insert ``child`` after the first of ``after`` present (else first), indented alike."""
    if any(isinstance(c.tag, str) for c in parent):
        ref = None
        for name in after:
            ref = parent.find(name)
            if ref is not None:
                break
        inner = tail_indent(None, parent.text)
        if ref is not None:
            old_tail = ref.tail
            ref.addnext(child)
            child.tail = old_tail
            ref.tail = "\n" + inner if inner else old_tail
        else:
            child.tail = parent.text
            parent.insert(0, child)
        return
    grand = parent.getparent()
    outer = tail_indent(parent.getprevious(), grand.text if grand is not None else None)
    parent.text = "\n" + outer + "  "
    child.tail = "\n" + outer
    parent.append(child)

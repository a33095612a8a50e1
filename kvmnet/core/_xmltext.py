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
    "removal_cut",
    "remove_element",
    "rewrite",
    "scan",
    "serialise",
    "splice",
    "tail_indent",
    "with_breaks",
]


class Layout(NamedTuple):
    """Where things sit in the original bytes.

    A named tuple: a frozen dataclass would compile its methods on every command-line start.
    `quick_scan` finds the spans only; `scan` (one expat pass) finds the rest too.
    """

    spans: tuple[tuple[int, int], ...]  # each /domain/devices/interface: [start, end)
    # End of each element child of the first <devices> other than the interfaces (where a
    # new interface goes when there is none to follow); None: not scanned.
    device_ends: tuple[int, ...] | None = None
    root: tuple[int, int] | None = None  # the root element: [start, end); None: not scanned


def _ignore(_data: str) -> None:
    pass  # a default handler: set, expat leaves internal entity references unexpanded


def scan(data: bytes, root_tag: str) -> Layout | None:
    """Byte spans of ``/domain/devices/interface`` and more; None if the text defeats the scan.

    Namespace-aware, as lxml is: an ``<interface xmlns='urn:x'>`` is not an interface.
    References to internal entities are not expanded in content (so every element reported
    is one written in the document, at its own offset); in attribute values expat expands
    them, and its amplification limit stops a billion-laughs document (scan gives None).
    """
    import xml.parsers.expat  # only edits scan: listings never do, and pyexpat costs a start

    parser = xml.parsers.expat.ParserCreate(encoding="utf-8", namespace_separator=" ")
    if data.find(b"<!ENTITY") >= 0:  # every entity needs one declaration at least
        if xml.parsers.expat.version_info < (2, 4, 0):
            # No amplification limit before expat 2.4: leave such documents to lxml.
            log.debug("no byte scan: entity declarations and expat older than 2.4")
            return None
        parser.DefaultHandler = _ignore
    stack: list[str] = []
    opened: list[int] = []  # where each open element's start tag begins
    spans: list[tuple[int, int]] = []
    device_ends: list[int] = []
    root: list[int] = []
    devices_seen = [0]

    def start(name: str, _attrs: object) -> None:
        stack.append(name)
        opened.append(parser.CurrentByteIndex)
        if len(stack) == 1:
            root.append(parser.CurrentByteIndex)
        elif name == "devices" and len(stack) == 2:
            devices_seen[0] += 1

    def end(name: str) -> None:
        here = parser.CurrentByteIndex
        begin = opened.pop()
        # expat points at "</name>" for an end tag, and just past "<name/>" for an empty
        # element, which an end tag may follow at once: then "here" ends that start tag.
        if data.startswith(b"</", here) and not (
            data[here - 2 : here] == b"/>" and _tag_end(data, begin) == here
        ):
            stop = _tag_end(data, here)
        else:
            stop = here
        if stack[:-1] == [root_tag, "devices"]:
            if name == "interface":
                spans.append((begin, stop))
            elif devices_seen[0] == 1:
                device_ends.append(stop)
        if len(stack) == 1:
            root.append(stop)
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except (xml.parsers.expat.ExpatError, ValueError) as exc:
        log.debug("the byte scan cannot read the document: %s", exc)
        return None
    return Layout(tuple(spans), tuple(device_ends), (root[0], root[1]))


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
    return Layout(tuple(spans))


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
    out = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return out.replace("\r", "&#13;")  # a raw CR would be read back as LF


_XML_NS = "http://www.w3.org/XML/1998/namespace"


def _qname(el: etree._Element, name: str) -> str:
    if not name.startswith("{"):
        return name
    uri, local = name[1:].split("}", 1)
    if uri == _XML_NS:
        return f"xml:{local}"  # bound by XML itself: in no nsmap
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


def rewrite(el: etree._Element, span: bytes) -> str:
    """``el`` written to replace ``span``: in its quote style, with its line breaks."""
    text = serialise(el, quote_of(span))
    return with_breaks(text, span) if b"\r" in span else text


def with_breaks(text: str, sample: bytes) -> str:
    """``text`` (lxml's, line breaks LF) with the line breaks ``sample`` uses.

    XML reads CRLF and a lone CR as LF, so an element read from a CRLF document comes out
    of lxml with LF; written back as such it would mix the document's line ends. (lxml
    escapes a CR that was a character reference, and a LF in an attribute value.)
    """
    if b"\r" not in sample:
        return text
    return text.replace("\n", "\r\n" if b"\r\n" in sample else "\r")


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
    """Where the line break before ``pos`` starts, if only spaces and tabs lie between.

    The text twin of `remove_element`: the same line break and indentation go. A CRLF goes
    whole; ``pos`` itself when anything else precedes it on its line.
    """
    nl = max(data.rfind(b"\n", 0, pos), data.rfind(b"\r", 0, pos))
    if nl < 0 or data[nl + 1 : pos].strip(b" \t"):
        return pos
    if nl > 0 and data[nl - 1 : nl + 1] == b"\r\n":
        return nl - 1
    return nl


def removal_cut(data: bytes, start: int, end: int, dropped: str) -> int | None:
    """Where the text of an element at ``[start, end)`` that `remove_element` removed starts.

    Args:
        data: the document.
        start: where the element starts.
        end: where it ends.
        dropped: what `remove_element` took from the tree before it.

    Returns:
        The start of what to cut, up to ``end``; None when the text would not read as the
        tree does (whitespace written as character references, or a lone CR that the cut
        would join to a LF after the element).
    """
    cut = line_start_if_blank(data, start)
    text = data[cut:start].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if text != dropped.encode():
        return None
    if data[cut - 1 : cut] == b"\r" and data[end : end + 1] == b"\n":
        return None
    return cut


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


def remove_element(el: etree._Element) -> str:
    """Remove ``el`` and the line break and indentation that introduced it.

    Only a last line break followed by nothing but spaces and tabs goes (what
    `line_start_if_blank` cuts from the text); other text before ``el`` stays.

    Returns:
        The whitespace dropped ("" if none).
    """
    parent = el.getparent()
    if parent is None:
        return ""
    prev = el.getprevious()
    before = (prev.tail if prev is not None else parent.text) or ""
    nl = before.rfind("\n")
    dropped = ""
    if nl >= 0 and not before[nl + 1 :].strip(" \t"):
        before, dropped = before[:nl], before[nl:]
    # The whitespace before el is prev's tail (or parent's text); el's own tail is what
    # follows it. Keep the following whitespace, drop the introducing one.
    joined = before + (el.tail or "") or None
    if prev is not None:
        prev.tail = joined
    else:
        parent.text = joined
    parent.remove(el)
    return dropped


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

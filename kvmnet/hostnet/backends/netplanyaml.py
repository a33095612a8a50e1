"""netplan YAML edited as text: cut keys out of one device's stanza and copy ``key: value``
pairs as the admin wrote them, so everything else in the file stays byte for byte.

A YAML round trip (load, edit, dump) loses comments, reorders and re-quotes, and turns an
unquoted ``525400123456`` or ``52:54:00:12:34:56`` (YAML 1.1 sexagesimal) into an integer;
netplan reads scalars as text, so kvmnet never re-dumps a value it did not write. PyYAML's
composer gives each node's position, which is all the editing needs. Every edit is checked
afterwards: the edited text must load to the same document less the cut keys, or
`ValidationFailed` says so (nothing is written).

Usage::

    doc = parse("01-static.yaml", text)
    stanza = find(doc, "network", "ethernets", "eth0")
    pairs = pair_texts(text, stanza, ["addresses", "routes"])   # {"addresses": "addresses: [...]"}
    edited = cut(text, doc, [(stanza, ["addresses", "routes"])], name="01-static.yaml")
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ...errors import ValidationFailed

__all__ = ["Plain", "cut", "entries", "find", "items", "pair_texts", "parse", "plain", "structure"]

#: A node as plain data with every scalar kept as its text (``"true"``, ``"0525"``).
Plain = Any


def parse(name: str, text: str) -> MappingNode | None:
    """The document's root mapping (None for an empty or non-mapping document)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"{name} is not valid YAML ({exc}): fix it before bridging") from exc
    return node if isinstance(node, MappingNode) else None


def items(node: Node | None) -> Iterator[tuple[str, Node, Node]]:
    """(key text, key node, value node) of a mapping node; nothing for anything else."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode):
                yield str(key.value), key, value


def find(node: Node | None, *path: str) -> Node | None:
    """The value node at ``path`` of nested mappings, or None."""
    for step in path:
        node = next((v for k, _, v in items(node) if k == step), None)
        if node is None:
            return None
    return node


def plain(node: Node | None) -> Plain:
    """``node`` as dicts, lists and strings (scalars as written, never an int or bool)."""
    if isinstance(node, MappingNode):
        return {k: plain(v) for k, _, v in items(node)}
    if isinstance(node, SequenceNode):
        return [plain(v) for v in node.value]
    if isinstance(node, ScalarNode):
        return None if node.tag.endswith(":null") else str(node.value)
    return None


def entries(node: Node | None, key: str) -> list[Node]:
    """Every value of ``key`` in a mapping: netplan reads a repeated key (two
    ``ethernets:`` sections in one file) as more definitions, where a YAML loader keeps
    only the last."""
    return [v for k, _, v in items(node) if k == key]


def structure(node: Node | None, drop: Mapping[int, Collection[str]] | None = None) -> Plain:
    """``node`` as nested tuples keeping repeated keys, order and each scalar's resolved tag
    and text; ``drop``: id(mapping node) -> keys left out of it. Two texts with equal
    structures mean the same to netplan."""
    if isinstance(node, MappingNode):
        skip = (drop or {}).get(id(node), ())
        return (
            "map",
            tuple(
                (structure(k), structure(v, drop))
                for k, v in node.value
                if not (isinstance(k, ScalarNode) and k.value in skip)
            ),
        )
    if isinstance(node, SequenceNode):
        return ("seq", tuple(structure(v, drop) for v in node.value))
    if isinstance(node, ScalarNode):
        return (node.tag, node.value)
    return None


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end + 1


def _pair_span(text: str, key: Node, value: Node) -> tuple[int, int]:
    """[start, end) of a block mapping pair: whole lines, from the key's line through the
    value's last line (trailing comments up to the next key included)."""
    start = _line_start(text, key.start_mark.index)
    end = value.end_mark.index
    if not text[_line_start(text, end) : end].strip():
        end = _line_start(text, end)  # a block value ends where the next key's line begins
    elif text[end - 1 : end] != "\n":
        end = _line_end(text, end)
    return start, max(end, _line_end(text, key.start_mark.index))


def _flow_pair(text: str, key: Node, value: Node) -> str:
    source = text[value.start_mark.index : value.end_mark.index]
    if isinstance(value, (MappingNode, SequenceNode)):
        source = " ".join(line.strip() for line in source.splitlines())
    return f"{text[key.start_mark.index : key.end_mark.index]}: {source}"


def pair_texts(text: str, stanza: Node, keys: Collection[str]) -> dict[str, str]:
    """``key -> "key: value"`` source of each of ``keys`` in ``stanza``, dedented to column 0,
    as it stands in ``text`` (comments inside a block value kept)."""
    out: dict[str, str] = {}
    block = isinstance(stanza, MappingNode) and not stanza.flow_style
    for name, key, value in items(stanza):
        if name not in keys:
            continue
        if not block or (value.start_mark.line == key.start_mark.line and _is_flow(value)):
            out[name] = _flow_pair(text, key, value) + "\n"
            continue
        start, end = _pair_span(text, key, value)
        column = key.start_mark.column
        lines = text[start:end].splitlines(keepends=True)
        out[name] = "".join(
            line[column:] if line[:column].isspace() else line.lstrip() for line in lines
        )
    for name, pair in out.items():
        if not pair.endswith("\n"):
            out[name] = pair + "\n"  # the file's last line had none
    return out


def _is_flow(value: Node) -> bool:
    return isinstance(value, ScalarNode) or bool(getattr(value, "flow_style", False))


def cut(
    text: str, root: Node, drops: Collection[tuple[Node, Collection[str]]], *, name: str
) -> str:
    """``text`` without the keys of each (stanza, keys) in ``drops`` (stanzas: mappings of the
    tree ``root`` composed from ``text``), every other byte kept. An emptied stanza becomes
    ``{}`` (the device stays defined)."""
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement)
    for stanza, keys in drops:
        if not isinstance(stanza, MappingNode):
            raise ValidationFailed(
                f"{name}: a device there is not a mapping: kvmnet cannot edit it"
            )
        edits += _stanza_edits(text, stanza, keys, name=name)
    edited = text
    for start, end, replacement in sorted(edits, reverse=True):
        edited = edited[:start] + replacement + edited[end:]
    _check(root, edited, drops, name=name)
    return edited


def _stanza_edits(
    text: str, stanza: MappingNode, keys: Collection[str], *, name: str
) -> list[tuple[int, int, str]]:
    kept = [(k, kn, vn) for k, kn, vn in items(stanza) if k not in keys]
    if len(kept) == len(stanza.value):
        return []
    if stanza.flow_style:
        body = "{" + ", ".join(_flow_pair(text, kn, vn) for _, kn, vn in kept) + "}"
        return [(stanza.start_mark.index, stanza.end_mark.index, body)]
    spans = [_pair_span(text, kn, vn) for k, kn, vn in items(stanza) if k in keys]
    for start, _ in spans:
        if text[start : text.find("\n", start)].strip()[:1] in ("-", "?"):
            raise ValidationFailed(f"{name}: cannot edit a device stanza of this shape in place")
    edits = [(start, end, "") for start, end in spans]
    if not kept:
        first = min(start for start, _ in spans)
        edits.append((first, first, " " * stanza.start_mark.column + "{}\n"))
    return edits


def _check(
    root: Node, after: str, drops: Collection[tuple[Node, Collection[str]]], *, name: str
) -> None:
    """The edit removed exactly the dropped keys and nothing else, or ValidationFailed."""
    want = structure(root, {id(node): keys for node, keys in drops})
    try:
        got = structure(yaml.compose(after, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        got = str(exc)
    if got != want:
        raise ValidationFailed(
            f"{name}: removing the NIC's IP settings in place would change more than those "
            "keys: move them to the bridge by hand (nothing was written)"
        )

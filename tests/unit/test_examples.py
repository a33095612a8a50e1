"""Every real-world domain XML in tests/data/domains survives kvmnet's edits untouched.

For each file and each network/bridge interface: switch it (network -> bridge br0, bridge ->
network default) and back. Checked: the text outside the edited interface is byte-identical,
the rest of the document is canonical-XML identical, the edited interface differs only in its
type and source, the round trip gives the original bytes back, and libvirt's test driver
accepts the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lxml import etree

import kvmnet
from kvmnet.core._xmltext import scan
from kvmnet.core.domainxml import DomainXML, GuestInterface
from kvmnet.testing import World
from tests.conftest import EXAMPLES

FILES = sorted(EXAMPLES.glob("*.xml"))
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def _cases() -> Iterator[tuple[str, int, str]]:
    for path in FILES:
        doc = DomainXML(path.read_text())
        for iface in doc.interfaces:
            if iface.type in ("network", "bridge"):
                yield path.name, iface.index, iface.type


CASES = list(_cases())


def test_the_examples_are_all_there() -> None:
    assert len(FILES) >= 36
    # Files whose interfaces are all user/ethernet/direct are excluded from the switch cases.
    assert len({name for name, _, _ in CASES}) >= 34


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_parse_and_write_back_is_byte_identical(path: Path) -> None:
    text = path.read_text()
    doc = DomainXML(text)
    assert doc.tostring() == text
    root = etree.fromstring(text.encode(), PARSER)
    assert len(doc.interfaces) == len(root.findall("devices/interface"))


def _c14n_without_interfaces(text: str) -> bytes:
    root = etree.fromstring(text.encode(), PARSER)
    for el in root.findall("devices/interface"):
        el.getparent().remove(el)  # type: ignore[union-attr]
    return etree.tostring(root, method="c14n")


def _c14n_interface(text: str, index: int) -> bytes:
    root = etree.fromstring(text.encode(), PARSER)
    return etree.tostring(root.findall("devices/interface")[index], method="c14n")


def _expected_switch(text: str, index: int, new_type: str, name: str) -> bytes:
    root = etree.fromstring(text.encode(), PARSER)
    el = root.findall("devices/interface")[index]
    el.set("type", new_type)
    src = el.find("source")
    assert src is not None
    src.attrib.clear()
    src.set(new_type, name)
    return etree.tostring(el, method="c14n")


@pytest.fixture
def host(tmp_path: Path) -> Iterator[kvmnet.Host]:
    # A fresh test-driver world per test: several examples share a name with other UUIDs.
    with kvmnet.connect(World().write(tmp_path)) as h:
        yield h


@pytest.mark.parametrize(("name", "index", "kind"), CASES, ids=[f"{n}#{i}" for n, i, _ in CASES])
def test_switch_and_back(name: str, index: int, kind: str, host: kvmnet.Host) -> None:
    text = (EXAMPLES / name).read_text()
    doc = DomainXML(text)
    original = doc.interfaces[index]
    assert original.source is not None
    switch: Callable[[str, int], GuestInterface]
    restore: Callable[[str, int], GuestInterface]
    if kind == "network":
        switch, restore, new_type, target = doc.use_bridge, doc.use_nat, "bridge", "br0"
    else:
        switch, restore, new_type, target = doc.use_nat, doc.use_bridge, "network", "default"
    switch(target, index)
    switched = doc.tostring()
    assert doc.notes == ()

    # Outside the edited interface: the very same bytes.
    start, end = scan(text.encode(), "domain").spans[index]  # type: ignore[union-attr]
    data, out = text.encode(), switched.encode()
    assert out.startswith(data[:start])
    assert out.endswith(data[end:])
    # The rest of the document: canonically identical; the interface: only type and source.
    assert _c14n_without_interfaces(switched) == _c14n_without_interfaces(text)
    assert _c14n_interface(switched, index) == _expected_switch(text, index, new_type, target)
    after = DomainXML(switched).interfaces[index]
    assert (after.type, after.source, after.mac) == (new_type, target, original.mac)

    # libvirt takes it (the test driver accepts every domain type these files use).
    defined = host.connection.define_domain(switched)
    live = DomainXML(defined.xml(inactive=True)).find(index)
    assert (live.type, live.source) == (new_type, target)

    restore(original.source, index)
    assert doc.tostring() == text

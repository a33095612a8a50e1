"""Bad input against a real libvirtd and a running QEMU guest: refused, nothing changed.

The unit campaign (tests/unit/test_bad_input.py) runs on libvirt's test driver, which has no
live device calls; here the running guest has a real live side. Each case reads the guest's
live and persistent XML with virsh, not through kvmnet, before and after the refused call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest

import kvmnet
from kvmnet import InvalidInput, InvalidMac, InvalidName, InvalidType, KvmnetError
from kvmnet.core.validate import shown

from .libvirt_lab import LibvirtLab

pytestmark = [pytest.mark.integration, pytest.mark.root("starts libvirtd in a namespace")]

GUEST = "kvl-badin"
MAC = "52:54:00:7e:0b:01"

Edit = Callable[[kvmnet.Domain], object]

CASES: list[tuple[str, Edit, type[KvmnetError], object]] = [
    ("bridge 16 chars", lambda d: d.use_bridge("a" * 16), InvalidName, "a" * 16),
    ("bridge colon", lambda d: d.use_bridge("br:0"), InvalidName, "br:0"),
    ("bridge dot", lambda d: d.use_bridge("."), InvalidName, "."),
    ("bridge bytes", lambda d: d.use_bridge(b"br0"), InvalidType, b"br0"),  # type: ignore[arg-type]
    ("live 'false'", lambda d: d.use_bridge("br0", live="false"), InvalidType, "false"),  # type: ignore[arg-type]
    ("live 0", lambda d: d.use_bridge("br0", live=0), InvalidType, 0),  # type: ignore[arg-type]
    ("iface True", lambda d: d.use_bridge("br0", True), InvalidType, True),
    ("iface fullwidth", lambda d: d.use_bridge("br0", "\uff10"), InvalidMac, "\uff10"),
    ("bounce nan", lambda d: d.use_bridge("br0", bounce_link=math.nan), InvalidInput, math.nan),
    ("bounce '1'", lambda d: d.use_bridge("br0", bounce_link="1"), InvalidType, "1"),  # type: ignore[arg-type]
    ("network quote", lambda d: d.use_nat("def'ault"), InvalidName, "def'ault"),
    ("add fe MAC", lambda d: d.add_interface(bridge="br0", mac="fe:54:00:00:00:09"), InvalidMac,
     "fe:54:00:00:00:09"),
    ("add multicast MAC", lambda d: d.add_interface(bridge="br0", mac="03:00:00:00:00:09"),
     InvalidMac, "03:00:00:00:00:09"),
    ("add bridge colon", lambda d: d.add_interface(bridge="br:1"), InvalidName, "br:1"),
    ("remove iface '0'", lambda d: d.remove_interface("0"), InvalidMac, "0"),
    ("remove live 'no'", lambda d: d.remove_interface(MAC, live="no"), InvalidType, "no"),  # type: ignore[arg-type]
    ("bounce_link seconds -1", lambda d: d.bounce_link(MAC, seconds=-1), InvalidInput, -1),
    ("bounce_link seconds inf", lambda d: d.bounce_link(MAC, seconds=math.inf), InvalidInput,
     math.inf),
]  # fmt: skip


@pytest.fixture(scope="module")
def guest(libvirt_session_lab: LibvirtLab) -> Iterator[LibvirtLab]:
    lab = libvirt_session_lab
    lab.define_guest(GUEST, network="default", mac=MAC)
    yield lab
    lab.destroy_guests()


@pytest.mark.parametrize(
    ("edit", "exc", "value"), [pytest.param(e, x, v, id=name) for name, e, x, v in CASES]
)
def test_running_guest_refuses_bad_input_and_keeps_live_and_persistent_xml(
    guest: LibvirtLab, edit: Edit, exc: type[KvmnetError], value: object
) -> None:
    live = guest.domain_xml(GUEST)
    persistent = guest.domain_xml(GUEST, inactive=True)
    with kvmnet.connect(guest.uri) as host:
        dom = host.domain(GUEST)
        assert dom.is_running
        with pytest.raises(exc) as info:
            edit(dom)
    assert shown(value) in str(info.value)
    assert guest.domain_xml(GUEST) == live
    assert guest.domain_xml(GUEST, inactive=True) == persistent

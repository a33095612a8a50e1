"""kvmnet.core.macs: parsing, normalising, validation, prefixes and MAC spaces (pure)."""

from __future__ import annotations

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmnet.core.macs import (
    LocalSpace,
    MacPrefix,
    PrefixSpace,
    int_to_mac,
    is_assignable,
    is_libvirt_tap,
    is_locally_administered,
    is_multicast,
    mac_to_int,
    normalize_mac,
    try_parse_mac,
)
from kvmnet.errors import InvalidInput, InvalidMac


@pytest.mark.parametrize(
    "text",
    [
        "52:54:00:ab:cd:ef",
        "52:54:00:AB:CD:EF",
        "52-54-00-ab-cd-ef",
        "52-54-00-AB-cd-EF",
        "5254.00ab.cdef",
        "5254.00AB.CDEF",
        "525400abcdef",
        "525400ABCDEF",
        "  52:54:00:ab:cd:ef\n",
        "52:54:0:ab:cd:ef".replace(":0:", ":00:"),
    ],
)
def test_normalize_accepts_the_usual_spellings(text: str) -> None:
    assert normalize_mac(text) == "52:54:00:ab:cd:ef"


def test_unix_short_octets_are_padded() -> None:
    # macOS arp and netaddr's mac_unix drop leading zeros.
    assert normalize_mac("2:0:0:a:b:c") == "02:00:00:0a:0b:0c"


BAD_MACS = [
    "",
    " ",
    "52:54:00:ab:cd",  # five octets
    "52:54:00:ab:cd:ef:01",  # seven
    "52:54:00:ab:cd:eg",  # not hex
    "52:54:00:ab:cd:ef:",  # trailing separator
    ":52:54:00:ab:cd:ef",
    "52:54-00:ab:cd:ef",  # mixed separators
    "52.54.00.ab.cd.ef",  # dots between octets
    "5254.00ab.cde",  # dotted, short
    "5254.00ab.cdef.0001",
    "525400abcde",  # eleven hex digits
    "525400abcdef0",  # thirteen
    "525:400:abc:def",
    "52:54:00:abc:cd:ef",  # three digits in an octet
    "52 54 00 ab cd ef",
    "0x525400abcdef",
    "52:54:00:ab:cd:ef/24",
    "mac 52:54:00:ab:cd:ef",
    "ff:ff:ff:ff:ff:ff",  # broadcast
    "FF-FF-FF-FF-FF-FF",
    "00:00:00:00:00:00",  # all zero
    "0000.0000.0000",
    "01:00:5e:00:00:01",  # IPv4 multicast
    "33:33:00:00:00:01",  # IPv6 multicast
    "53:54:00:ab:cd:ef",  # odd first octet
    "01:80:c2:00:00:0e",  # LLDP
    "52:54:00:ab:cd:éf",
    "\uff15\uff12:54:00:ab:cd:ef",  # full-width digits
    "52_54_00_ab_cd_ef",
]


def test_there_are_at_least_25_distinct_bad_inputs() -> None:
    assert len(set(BAD_MACS)) >= 25


@pytest.mark.parametrize("text", BAD_MACS)
def test_bad_macs_raise_invalid_mac_quoting_the_input(text: str) -> None:
    with pytest.raises(InvalidMac) as info:
        normalize_mac(text)
    message = str(info.value)
    assert repr(text) in message
    assert "52:54:00:ab:cd:ef" in message  # says what is accepted
    assert isinstance(info.value, ValueError)  # InvalidInput is a ValueError too


@pytest.mark.parametrize("value", [None, 0x525400ABCDEF, b"52:54:00:ab:cd:ef"])
def test_non_strings_are_invalid(value: object) -> None:
    with pytest.raises(InvalidMac, match="not a string"):
        normalize_mac(value)  # type: ignore[arg-type]


def test_reasons_are_specific() -> None:
    with pytest.raises(InvalidMac, match="multicast"):
        normalize_mac("01:00:5e:00:00:01")
    with pytest.raises(InvalidMac, match="broadcast"):
        normalize_mac("ff:ff:ff:ff:ff:ff")
    with pytest.raises(InvalidMac, match="all-zero"):
        normalize_mac("00:00:00:00:00:00")


def test_lenient_parse_records_what_hosts_report() -> None:
    assert try_parse_mac("00:00:00:00:00:00") == 0
    assert try_parse_mac("33:33:00:00:00:01") == 0x333300000001
    assert try_parse_mac("10.0.0.1") is None


def test_int_round_trip_and_bit_helpers() -> None:
    value = mac_to_int("52:54:00:ab:cd:ef")
    assert value == 0x525400ABCDEF
    assert int_to_mac(value) == "52:54:00:ab:cd:ef"
    assert not is_multicast(value)
    assert is_locally_administered(value)  # QEMU's 52:54:00 has the U/L bit set
    assert not is_locally_administered(mac_to_int("00:16:3e:00:00:01"))
    assert is_multicast(0x010000000000)
    assert is_libvirt_tap(mac_to_int("fe:54:00:ab:cd:ef"))
    assert not is_assignable(mac_to_int("fe:54:00:ab:cd:ef"))
    assert not is_assignable(0) and not is_assignable(0xFFFFFFFFFFFF)
    assert is_assignable(value)


macs = st.integers(min_value=0, max_value=(1 << 48) - 1)


@given(macs)
def test_int_to_mac_round_trips(value: int) -> None:
    assert try_parse_mac(int_to_mac(value)) == value


@given(macs, st.sampled_from(["colon", "dash", "dotted", "bare"]), st.booleans())
def test_agrees_with_netaddr(value: int, form: str, upper: bool) -> None:
    h = f"{value:012x}"
    text = {
        "colon": ":".join(h[i : i + 2] for i in range(0, 12, 2)),
        "dash": "-".join(h[i : i + 2] for i in range(0, 12, 2)),
        "dotted": ".".join(h[i : i + 4] for i in range(0, 12, 4)),
        "bare": h,
    }[form]
    text = text.upper() if upper else text
    assert try_parse_mac(text) == int(netaddr.EUI(text))
    if is_multicast(value) or value == 0:
        with pytest.raises(InvalidMac):
            normalize_mac(text)
    else:
        assert normalize_mac(text) == str(netaddr.EUI(text, dialect=netaddr.mac_unix_expanded))


@pytest.mark.parametrize(
    ("text", "octets"),
    [
        ("52:54:00", (0x52, 0x54, 0x00)),
        ("52-54-00", (0x52, 0x54, 0x00)),
        ("525400", (0x52, 0x54, 0x00)),
        ("02", (0x02,)),
        ("00:16:3e", (0x00, 0x16, 0x3E)),  # Xen's OUI: globally administered, still fine
        ("52:54:00:ab:cd", (0x52, 0x54, 0x00, 0xAB, 0xCD)),
    ],
)
def test_prefix_parses(text: str, octets: tuple[int, ...]) -> None:
    prefix = MacPrefix.parse(text)
    assert prefix.octets == octets
    assert prefix.size == 1 << (48 - 8 * len(octets))
    assert MacPrefix.parse(prefix) is prefix


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("01:00:5e", "multicast"),
        ("53", "multicast"),
        ("fe:54:00", "tap"),
        ("52:54:00:ab:cd:ef", "1 to 5"),
        ("", "1 to 5"),
        ("52:54:0g", "1 to 5"),
        ("52545", "1 to 5"),
    ],
)
def test_prefix_refuses(text: str, why: str) -> None:
    with pytest.raises(InvalidMac, match=why):
        MacPrefix.parse(text)


def test_prefix_refuses_bad_octets_and_non_strings() -> None:
    with pytest.raises(InvalidMac, match="0 to 255"):
        MacPrefix((0x52, 300))
    with pytest.raises(InvalidMac, match="6 octets"):
        MacPrefix((0x52, 0x54, 0, 1, 2, 3))
    with pytest.raises(InvalidMac, match="not a string"):
        MacPrefix.parse(525400)  # type: ignore[arg-type]
    assert isinstance(InvalidMac("x"), InvalidInput)


def test_prefix_contains_and_prints() -> None:
    prefix = MacPrefix.parse("52:54:00")
    assert "52:54:00:ab:cd:ef" in prefix
    assert 0x525400000001 in prefix
    assert "52:54:01:00:00:00" not in prefix
    assert "junk" not in prefix
    assert str(prefix) == "52:54:00"
    assert repr(prefix) == "<MacPrefix 52:54:00: 16777216 MACs>"


@given(st.integers(min_value=0, max_value=(1 << 24) - 1))
def test_prefix_space_is_a_bijection(index: int) -> None:
    space = PrefixSpace(MacPrefix.parse("52:54:00"))
    mac = space.mac_at(index)
    assert mac >> 24 == 0x525400
    assert space.index_of(mac) == index
    assert space.index_of(0x525401000000) is None


@given(st.integers(min_value=0, max_value=(1 << 46) - 1))
def test_local_space_is_every_unicast_local_mac(index: int) -> None:
    space = LocalSpace()
    mac = space.mac_at(index)
    assert is_locally_administered(mac)
    assert not is_multicast(mac)
    assert space.index_of(mac) == index
    assert space.index_of(0x00163E000000) is None  # globally administered


@pytest.mark.parametrize(
    "text",
    [
        "52:54:00:ab:cd:ef", "02:00:00:00:00:01", "fe:54:00:00:00:01", "00:00:00:00:00:01",
        "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "33:33:00:00:00:01",
        "0f:00:00:00:00:00", "52:54:00:AB:CD:EF", "52-54-00-ab-cd-ef", "5254.00ab.cdef",
        " 52:54:00:ab:cd:ef", "52:54:00:ab:cd", "52:54:00:ab:cd:ef:00", "g2:54:00:ab:cd:ef",
    ],
)  # fmt: skip
def test_validate_mac_answers_as_normalize_mac(text: str) -> None:
    # validate.mac takes a short cut for MACs already in normal form: same answers, same errors.
    from kvmnet.core import validate
    from kvmnet.core.macs import normalize_mac
    from kvmnet.errors import InvalidMac

    try:
        expected: str | None = normalize_mac(text)
    except InvalidMac as exc:
        with pytest.raises(InvalidMac) as got:
            validate.mac(text)
        assert str(got.value) == str(exc)
    else:
        assert validate.mac(text) == expected


@given(st.integers(min_value=0, max_value=(1 << 48) - 1))
def test_validate_mac_of_any_normal_form_mac_is_normalize_macs(value: int) -> None:
    from kvmnet.core import validate
    from kvmnet.core.macs import normalize_mac

    text = int_to_mac(value)
    try:
        expected = normalize_mac(text)
    except InvalidMac:
        with pytest.raises(InvalidMac):
            validate.mac(text)
    else:
        assert validate.mac(text) == expected

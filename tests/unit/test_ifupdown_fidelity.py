"""The ifupdown backend keeps what every stanza of the NIC says (held-out campaign of
2026-12-02, findings E, F, G): options of later stanzas, alias stanzas, hooks that name the
NIC. Inputs in tests/data/ifupdown (sources in SOURCES.md); outputs read back with ifupdown's
own reader (``ifquery``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmnet.errors import InvalidInput
from kvmnet.hostnet.backends.ifupdown import released_text
from kvmnet.hostnet.backends.interfaces import hook_place, read_config, split_lines
from tests.unit.test_ifupdown import _assert_carried, _ifquery, _plan, _root, _written

DATA = Path(__file__).resolve().parents[1] / "data" / "ifupdown"


def _bridge(tmp_path: Path, text: str, nic: str) -> tuple[str, Path]:
    """Bridge ``nic`` of ``text`` into br0: the new text (checked to carry every option and
    to release to the same bytes) and a copy ifquery can read."""
    root = _root(tmp_path, text)
    main = root / "etc/network/interfaces"
    before = read_config(str(main), lambda p: Path(p).read_text(), lambda p: None)
    written = _written(_plan(root, nic))
    bridged = written[str(main)]
    out = tmp_path / "bridged"
    out.write_text(bridged)
    _assert_carried(before.stanzas_of(nic),
                    read_config(str(out), lambda p: Path(p).read_text(), lambda p: None), nic)
    assert released_text(split_lines(bridged), "br0") == text
    return bridged, out


def _live(text: str) -> list[str]:
    """The lines ifupdown reads (kvmnet's copies of the originals are comments)."""
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


# -- E: every stanza's link-level options ----------------------------------------------


def test_second_stanza_mtu_is_on_the_port_and_the_bridge(tmp_path: Path) -> None:
    # cloud-init's v1_ipv4_and_ipv6_static: inet mtu 9000, inet6 mtu 1500. ifupdown sets the
    # link to 9000 and IPv6's MTU to 1500 (sysctl; it raises the link only when smaller):
    # mtu 1500 was on neither side before.
    text = (DATA / "ci-v1_ipv4_and_ipv6_static-iface0.interfaces").read_text()
    _, out = _bridge(tmp_path, text, "iface0")
    config = read_config(str(out), lambda p: Path(p).read_text(), lambda p: None)
    port = [(s.family, s.method, s.options) for s in config.stanzas_of("iface0")]
    assert port == [("inet", "manual", (("mtu", "9000"),)),
                    ("inet6", "manual", (("mtu", "1500"),))]
    br0 = config.stanzas_of("br0")
    assert br0[1].family == "inet6" and ("mtu", "1500") in br0[1].options
    assert all(k != "mtu" for k, _ in br0[0].options)  # the bridge follows its port's MTU
    # ifupdown reads both: every stanza's options, the IPv6 address on br0 only.
    assert _ifquery(out, "iface0", tmp_path)["mtu"] == "1500"
    bridge = _ifquery(out, "br0", tmp_path)
    assert bridge["address"] == "2001:1::1" and bridge["mtu"] == "1500"
    assert "address" not in _ifquery(out, "iface0", tmp_path)


def test_later_stanza_without_link_options_adds_no_port_stanza(tmp_path: Path) -> None:
    text = ("auto eth0\niface eth0 inet static\n    address 192.0.2.2/24\n"
            "iface eth0 inet6 static\n    address 2001:db8::2/64\n    hwaddress 52:54:00:aa:00:09\n"
            "iface eth0 inet static\n    address 198.51.100.2/24\n")
    bridged, _ = _bridge(tmp_path, text, "eth0")
    assert [line for line in _live(bridged) if line.startswith("iface eth0")] == [
        "iface eth0 inet manual", "iface eth0 inet6 manual"]
    assert "hwaddress 52:54:00:aa:00:09" in _live(bridged)


# -- F: alias stanzas --------------------------------------------------------------------


def test_alias_stanza_is_refused_naming_it(tmp_path: Path) -> None:
    # Debian wiki's legacy alias: its address would stay on br0's port, where it is lost.
    root = _root(tmp_path, (DATA / "hp-debian-alias-eth0-0.interfaces").read_text())
    with pytest.raises(InvalidInput, match=r"`iface eth0:0 inet static` \(.*interfaces:12\)"
                       r" adds an alias address to eth0.*second `iface eth0 inet \.\.\.` stanza"):
        _plan(root)


def test_other_names_are_no_alias(tmp_path: Path) -> None:
    text = ("auto eth0\niface eth0 inet dhcp\niface eth01:0 inet static\n    address 10.0.0.9/24\n"
            "iface eth0.100 inet static\n    address 10.1.0.9/24\n")
    _bridge(tmp_path, text, "eth0")


# -- G: hooks that name the NIC --------------------------------------------------------


def test_route_hooks_naming_the_nic_move_to_the_bridge_renamed(tmp_path: Path) -> None:
    text = (DATA / "hp-up-route-add-dev.interfaces").read_text()
    bridged, out = _bridge(tmp_path, text, "eth1")
    live = _live(bridged)
    assert "up route add -net 10.0.0.0/24 gw 192.168.9.254 dev br0" in live
    assert "up route add -net 10.2.2.0/24 gw 192.168.9.2 dev br0" in live
    assert not [line for line in live if "dev eth1" in line]
    assert _ifquery(out, "br0", tmp_path)["up"].endswith("dev br0")
    assert "up" not in _ifquery(out, "eth1", tmp_path)


def test_link_hooks_stay_on_the_port(tmp_path: Path) -> None:
    # ethtool on br0 fails and aborts `ifup br0`; the NIC's speed setting belongs to the NIC.
    text = (DATA / "hp-pre-up-ethtool-xeth.interfaces").read_text()
    _, out = _bridge(tmp_path, text, "xeth1-1")
    config = read_config(str(out), lambda p: Path(p).read_text(), lambda p: None)
    (port,) = config.stanzas_of("xeth1-1")
    assert port.method == "manual" and port.options == (
        ("pre-up", "ip link set $IFACE up"),
        ("pre-up", "ethtool -s $IFACE speed 50000 autoneg off"),
        ("pre-up", "ethtool --set-priv-flags $IFACE copper on"),
    )
    assert not [k for k, _ in config.stanzas_of("br0")[0].options if k == "pre-up"]
    assert _ifquery(out, "xeth1-1", tmp_path)["pre-up"].startswith("ethtool")


@pytest.mark.parametrize(
    ("key", "line", "side", "result"),
    [
        # routes and addresses go where the addresses go, the NIC's name rewritten
        ("up", "route add -net 10.0.0.0/24 gw 192.168.9.254 dev eth1", "bridge",
         "route add -net 10.0.0.0/24 gw 192.168.9.254 dev br0"),
        ("post-up", "ip -family inet6 route add 2001:db8::/48 via fe80::1 dev eth1 || true",
         "bridge", "ip -family inet6 route add 2001:db8::/48 via fe80::1 dev br0 || true"),
        ("up", "ip a add 10.9.9.9/32 dev eth1 label eth1:9", "bridge",
         "ip a add 10.9.9.9/32 dev br0 label br0:9"),
        ("up", "ifconfig eth1:0 10.9.9.10 netmask 255.255.255.0 up", "bridge",
         "ifconfig br0:0 10.9.9.10 netmask 255.255.255.0 up"),
        ("up", "ip rule add iif eth1 table 100", "bridge", "ip rule add iif br0 table 100"),
        ("post-up", "sysctl -w net.ipv6.conf.eth1.accept_ra=2", "bridge",
         "sysctl -w net.ipv6.conf.br0.accept_ra=2"),
        ("up", "/sbin/ifconfig eth1 inet6 add 2001:db8::9/64", "bridge",
         "/sbin/ifconfig br0 inet6 add 2001:db8::9/64"),
        ("up", "ip route add 10.0.0.0/8 via 192.168.9.1 dev $IFACE", "bridge",
         "ip route add 10.0.0.0/8 via 192.168.9.1 dev $IFACE"),
        # link-level commands on the NIC stay with it, as they are
        ("pre-up", "ethtool -s $IFACE speed 1000 duplex full autoneg off", "port",
         "ethtool -s $IFACE speed 1000 duplex full autoneg off"),
        ("post-up", "/usr/sbin/ethtool -K eth1 tso off gso off || true", "port",
         "/usr/sbin/ethtool -K eth1 tso off gso off || true"),
        ("post-up", "ifconfig eth1 mtu 8950", "port", "ifconfig eth1 mtu 8950"),
        ("up", "ip link set dev ${IFACE} txqueuelen 10000", "port",
         "ip link set dev ${IFACE} txqueuelen 10000"),
        ("up", "ip l set $IFACE promisc on", "port", "ip l set $IFACE promisc on"),
        ("pre-up", "iw dev $IFACE set power_save off", "port", "iw dev $IFACE set power_save off"),
        ("up", "echo 4096 > /sys/class/net/eth1/queues/rx-0/rps_flow_cnt", "port",
         "echo 4096 > /sys/class/net/eth1/queues/rx-0/rps_flow_cnt"),
        ("up", "tc qdisc add dev eth1 root fq", "port", "tc qdisc add dev eth1 root fq"),
        # lines that do not name the NIC, or name it only as $IFACE in a program kvmnet does
        # not know, go to the bridge unchanged ($IFACE is then the bridge)
        ("pre-up", "[ -f /etc/network/local-network-ok ]", "bridge",
         "[ -f /etc/network/local-network-ok ]"),
        ("pre-up", "/usr/local/sbin/firewall $IFACE", "bridge", "/usr/local/sbin/firewall $IFACE"),
        ("up", "ethtool -K eth2 tso off", "bridge", "ethtool -K eth2 tso off"),
        ("up", "ip route add 10.0.0.0/8 dev eth10", "bridge", "ip route add 10.0.0.0/8 dev eth10"),
        ("up", "ip link set eth1.100 up", "bridge", "ip link set eth1.100 up"),
    ],
)
def test_hook_placement(key: str, line: str, side: str, result: str) -> None:
    assert hook_place(key, line, nic="eth1", bridge="br0", where="f:1") == (side, result)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        # Debian's shipped example: a script kvmnet does not know, given the NIC by name.
        ("pre-up /path/to/check-mac-address.sh eth1 11:22:33:44:55:66",
         r"f:1: kvmnet cannot tell where `pre-up /path/to/check-mac-address.sh eth1 "
         r"11:22:33:44:55:66` belongs.*Write \$IFACE for eth1"),
        ("pre-up ethtool -s eth1 speed 1000; ip route add 10.0.0.0/8 dev eth1",
         r"f:1: `pre-up ethtool .*` sets up both eth1's link .* and its addresses or routes"),
        ("up ifconfig $IFACE 10.0.0.1 netmask 255.0.0.0 mtu 9000",
         r"sets up both eth1's link"),
    ],
    ids=["unknown-program", "link-and-route", "ifconfig-address-and-mtu"],
)
def test_hook_kvmnet_cannot_place_is_refused_naming_the_line(line: str, match: str) -> None:
    key, value = line.split(" ", 1)
    with pytest.raises(InvalidInput, match=match):
        hook_place(key, value, nic="eth1", bridge="br0", where="f:1")


def test_unplaceable_hook_refuses_the_plan(tmp_path: Path) -> None:
    # From ifupdown's shipped examples (/usr/share/doc/ifupdown/examples/network-interfaces).
    text = ("auto eth0 eth1\niface eth0 inet static\n    address 192.168.42.1\n"
            "    netmask 255.255.255.0\n"
            "    pre-up /path/to/check-mac-address.sh eth0 11:22:33:44:55:66\n"
            "    pre-up /usr/local/sbin/enable-masq\n")
    root = _root(tmp_path, text)
    with pytest.raises(InvalidInput, match=r"interfaces:2: kvmnet cannot tell where `pre-up "
                       r"/path/to/check-mac-address.sh eth0 11:22:33:44:55:66`"):
        _plan(root)

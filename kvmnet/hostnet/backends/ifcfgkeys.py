"""Which ifcfg keys belong to the port and which to the bridge.

The split follows NetworkManager's ifcfg-rh plugin: its table of well-known keys
(``nms-ifcfg-rh-utils.c``, NetworkManager 1.42) is read per setting by
``nms-ifcfg-rh-reader.c``; a port profile (``BRIDGE=``) gets no ``ipv4``/``ipv6``/``proxy``
setting there, and initscripts' ``ifup-eth`` stops before any IP work on a bridge port. So:

- **IP-level** keys (`IP_KEYS`, `IP_NUMBERED`): addressing, DHCP, DNS, routes,
  routing rules, link-local, proxy, hostname-from-DHCP, IPv6, firewall zone, metered: they
  only work on the device that carries the address, so they move to ``ifcfg-BR``.
- **Port-membership** keys (`MEMBERSHIP_KEYS`): the NIC already belongs to a bond,
  bridge, team, OVS bridge or VRF; bridging it is refused (``force=("enslaved",)``).
- **Network boot** (``NETBOOT=yes``, ``BOOTPROTO=ibft``): refused (``force=("netboot",)``).
- **802.1X** (``IEEE_8021X_*``): link-level, refused unless ``force=("802.1x",)``.
- Every other well-known key (`LINK_KEYS`) is link-level and stays on the port, as do
  ``NM_USER_*`` keys (user data of the profile).
- ``MATCH_INTERFACE_NAME`` binds a profile to interface names (`name_matches`).
- A key neither list knows stays where it was (the port's file) and the plan warns about it:
  NetworkManager ignores it, and a local ``ifup-local`` script reading it still finds it.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Literal

__all__ = [
    "IP_KEYS",
    "IP_NUMBERED",
    "LINK_KEYS",
    "MEMBERSHIP_KEYS",
    "KeyClass",
    "classify",
    "is_8021x",
    "name_matches",
]

KeyClass = Literal["ip", "link", "membership", "unknown"]

# IP-level keys NetworkManager's ifcfg-rh reads (plain keys), plus those only initscripts
# reads (ARPCHECK, SRCADDR, IPV6_MTU, PEERNTP...): all belong to the device with the address.
IP_KEYS = frozenset(
    {
        # addressing and DHCP, IPv4
        "BOOTPROTO",
        "ACD_TIMEOUT",
        "ARPING_WAIT",
        "ARPCHECK",
        "ARP",
        "SRCADDR",
        "SCOPE",
        "DEFROUTE",
        "GATEWAYDEV",
        "PEERDNS",
        "PEERROUTES",
        "PEERNTP",
        "PEERYP",
        "DHCP_CLIENT_ID",
        "DHCP_FQDN",
        "DHCP_HOSTNAME",
        "DHCP_HOSTNAME_FLAGS",
        "DHCP_IAID",
        "DHCP_REJECT_SERVERS",
        "DHCP_SEND_HOSTNAME",
        "DHCP_VENDOR_CLASS_IDENTIFIER",
        "DHCP_TIMEOUT",
        "DHCLIENTARGS",
        "DHCLIENTCONF",
        "PERSISTENT_DHCLIENT",
        "NOZEROCONF",
        "IPV4_AUTO_ROUTE_EXT_GW",
        "IPV4_DHCP_TIMEOUT",
        "IPV4_DNS_PRIORITY",
        "IPV4_FAILURE_FATAL",
        "IPV4_LINK_LOCAL",
        "IPV4_REPLACE_LOCAL_RULE",
        "IPV4_REQUIRED_TIMEOUT",
        "IPV4_ROUTE_METRIC",
        "IPV4_ROUTE_TABLE",
        # DNS, resolver, hostname
        "DOMAIN",
        "SEARCH",
        "RES_OPTIONS",
        "DNS_OVER_TLS",
        "LLMNR",
        "MDNS",
        "HOSTNAME_FROM_DHCP",
        "HOSTNAME_FROM_DNS_LOOKUP",
        "HOSTNAME_ONLY_FROM_DEFAULT",
        "HOSTNAME_PRIORITY",
        # IPv6
        "IPV6INIT",
        "IPV6FORWARDING",
        "IPV6TUNNELIPV4",
        "IPV6TUNNELIPV4LOCAL",
        "IPV6ADDR",
        "IPV6ADDR_SECONDARIES",
        "IPV6_ADDR_GEN_MODE",
        "IPV6_AUTOCONF",
        "IPV6_AUTO_ROUTE_EXT_GW",
        "IPV6_DEFAULTDEV",
        "IPV6_DEFAULTGW",
        "IPV6_DEFROUTE",
        "IPV6_DHCP_TIMEOUT",
        "IPV6_DISABLED",
        "IPV6_DNS_PRIORITY",
        "IPV6_DOMAIN",
        "IPV6_FAILURE_FATAL",
        "IPV6_MTU",
        "IPV6_PEERDNS",
        "IPV6_PEERROUTES",
        "IPV6_PRIVACY",
        "IPV6_PRIVACY_PREFER_PUBLIC_IP",
        "IPV6_RA_TIMEOUT",
        "IPV6_REPLACE_LOCAL_RULE",
        "IPV6_REQUIRED_TIMEOUT",
        "IPV6_RES_OPTIONS",
        "IPV6_ROUTE_METRIC",
        "IPV6_ROUTE_TABLE",
        "IPV6_ROUTER",
        "IPV6_SET_SYSCTLS",
        "IPV6_TOKEN",
        "IPV6_CONTROL_RADVD",
        "IPV6_RADVD_PIDFILE",
        "IPV6_RADVD_TRIGGER_ACTION",
        "DHCPV6C",
        "DHCPV6C_OPTIONS",
        "DHCPV6_DUID",
        "DHCPV6_HOSTNAME",
        "DHCPV6_HOSTNAME_FLAGS",
        "DHCPV6_IAID",
        "DHCPV6_SEND_HOSTNAME",
        # proxy
        "PROXY_METHOD",
        "PAC_URL",
        "PAC_SCRIPT",
        "BROWSER_ONLY",
        # connection-wide settings that act on the IP connection
        "ZONE",
        "CONNECTION_METERED",
        "GATEWAY_PING_TIMEOUT",
        "MPTCP_FLAGS",
        "MUD_URL",
        "SECONDARY_UUIDS",
    }
)

# Numbered families (IPADDR, IPADDR0, IPADDR1...; ROUTING_RULE_1...). ADDRESS/OPTIONS/METRIC
# with a number are the legacy route-file syntax some files carry inline.
IP_NUMBERED = re.compile(
    r"^(?:(?:IPADDR|PREFIX|NETMASK|GATEWAY|BROADCAST|NETWORK|DNS|METRIC)\d*"
    r"|(?:ADDRESS|OPTIONS)\d+|ROUTING_RULE6?_\d+)$"
)

# Keys that make the profile a port of something else: refused (the NIC cannot be two ports).
MEMBERSHIP_KEYS = frozenset(
    {
        "MASTER",
        "MASTER_UUID",
        "SLAVE",
        "BRIDGE",
        "BRIDGE_UUID",
        "TEAM_MASTER",
        "TEAM_MASTER_UUID",
        "OVS_BRIDGE",
        "OVS_PORT",
        "OVS_PORT_UUID",
        "VRF",
        "VRF_UUID",
    }
)

# Every other key ifcfg-rh knows (its well-known table), plus initscripts' link keys: they
# describe the port itself and stay in its file.
LINK_KEYS = frozenset(
    {
        # identity of the profile and its device
        "DEVICE",
        "DEVICETYPE",
        "TYPE",
        "NAME",
        "UUID",
        "STABLE_ID",
        "ONBOOT",
        "NM_CONTROLLED",
        "USERCTL",
        "HOTPLUG",
        "USERS",
        "AUTOCONNECT_PRIORITY",
        "AUTOCONNECT_RETRIES",
        "AUTOCONNECT_SLAVES",
        "MULTI_CONNECT",
        "DEVTIMEOUT",
        "WAIT_ACTIVATION_DELAY",
        "LINKDELAY",
        "NETBOOT",
        "AUTH_RETRIES",
        # Ethernet: MAC, match rules, MTU, offloads, wake-on-LAN, LLDP
        "HWADDR",
        "HWADDR_BLACKLIST",
        "MACADDR",
        "MAC_ADDRESS_RANDOMIZATION",
        "GENERATE_MAC_ADDRESS_MASK",
        "ACCEPT_ALL_MAC_ADDRESSES",
        "MATCH_DRIVER",
        "MATCH_INTERFACE_NAME",
        "MATCH_KERNEL_COMMAND_LINE",
        "MATCH_PATH",
        "MTU",
        "ETHTOOL_OPTS",
        "ETHTOOL_WAKE_ON_LAN",
        "LLDP",
        "PROMISC",
        "SRIOV_AUTOPROBE_DRIVERS",
        "SRIOV_TOTAL_VFS",
        "TC_COMMIT",
        "DCB",
        "DCB_APP_FCOE_PRIORITY",
        "DCB_APP_FIP_PRIORITY",
        "DCB_APP_ISCSI_PRIORITY",
        # s390
        "SUBCHANNELS",
        "NETTYPE",
        "PORTNAME",
        "CTCPROT",
        "OPTIONS",
        # the NIC's own role when it is a bond/bridge/team/VLAN/InfiniBand device
        "BONDING_MASTER",
        "BONDING_OPTS",
        "BOND_PORT_QUEUE_ID",
        "BRIDGE_MACADDR",
        "BRIDGE_PORT_VLANS",
        "BRIDGE_VLANS",
        "BRIDGING_OPTS",
        "STP",
        "DELAY",
        "TEAM_CONFIG",
        "TEAM_PORT_CONFIG",
        "VLAN",
        "VLAN_ID",
        "VLAN_FLAGS",
        "VLAN_PROTOCOL",
        "VLAN_EGRESS_PRIORITY_MAP",
        "VLAN_INGRESS_PRIORITY_MAP",
        "PHYSDEV",
        "REORDER_HDR",
        "GVRP",
        "MVRP",
        "CONNECTED_MODE",
        "PKEY",
        "PKEY_ID",
        # Wi-Fi (refused earlier by the "wireless" check; listed so nothing is "unknown")
        "ESSID",
        "MODE",
        "BAND",
        "CHANNEL",
        "BSSID",
        "AP_ISOLATION",
        "SSID_HIDDEN",
        "POWERSAVE",
        "SECURITYMODE",
        "KEY_MGMT",
        "KEY_TYPE",
        "DEFAULTKEY",
        "WEP_KEY_FLAGS",
        "WPA_ALLOW_WPA",
        "WPA_ALLOW_WPA2",
        "WPA_PSK",
        "WPA_PSK_FLAGS",
        "WPS_METHOD",
        "CIPHER_GROUP",
        "CIPHER_PAIRWISE",
        "FILS",
        "PMF",
    }
)
# Numbered link keys (SR-IOV VFs, traffic control, Wi-Fi keys) and the DCB family, whose
# names ifcfg-rh builds at run time (DCB_APP_FCOE_ENABLE, DCB_PG_PCT...).
_LINK_NUMBERED = re.compile(r"^(?:(?:SRIOV_VF|QDISC|FILTER|KEY|KEY_PASSPHRASE)\d+|DCB_[A-Z0-9_]+)$")


def is_8021x(key: str) -> bool:
    """True for the 802.1X (``IEEE_8021X_*``) keys: port authentication, link-level."""
    return key.startswith("IEEE_8021X")


def classify(key: str) -> KeyClass:
    """Where ``key`` belongs when its NIC becomes a bridge port.

    Args:
        key: an ifcfg variable name, e.g. ``"IPADDR1"``.

    Returns:
        ``"ip"`` (moves to the bridge's file), ``"link"`` (stays on the port),
        ``"membership"`` (the NIC is already some other device's port) or ``"unknown"``
        (no reader of ifcfg files uses it: it stays on the port, with a warning).
    """
    if key in IP_KEYS or IP_NUMBERED.match(key):
        return "ip"
    if key in MEMBERSHIP_KEYS:
        return "membership"
    if key in LINK_KEYS or is_8021x(key) or key.startswith("NM_USER_") or _LINK_NUMBERED.match(key):
        return "link"
    return "unknown"


def name_matches(patterns: str, name: str) -> bool:
    """Whether interface ``name`` matches a ``MATCH_INTERFACE_NAME`` value, as ifcfg-rh reads
    it: patterns split at unescaped blanks (``\\ `` is a blank inside one), shell globs;
    ``!pat`` excludes, ``&pat`` is required, and at least one plain pattern must match
    (when there is one).

    Args:
        patterns: the variable's value, e.g. ``"ens* eth\\ 1? !veth*"``.
        name: the interface name.

    Returns:
        True when the profile applies to ``name``.
    """
    words = [w.replace("\\ ", " ") for w in re.split(r"(?<!\\)\s+", patterns.strip()) if w]
    plain = []
    for word in words:
        if word.startswith("!"):
            if fnmatch.fnmatchcase(name, word[1:]):
                return False
        elif word.startswith("&"):
            if not fnmatch.fnmatchcase(name, word[1:]):
                return False
        else:
            plain.append(word)
    return not plain or any(fnmatch.fnmatchcase(name, w) for w in plain)

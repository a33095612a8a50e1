"""A small LAN next to a lab's libvirtd: the "host's own network" a bridged guest should join.

::

    kvl-<pid>-lan : kvllan0 10.231.50.1/24 (bridge, STP off) + dnsmasq DHCP .100-.199, router .1
                    └ kvlup ──veth── (lab namespace) enp0s20f0u1, MAC 52:54:00:aa:00:01

The lab's NIC gets its address from that dnsmasq with busybox udhcpc and a hook of our own that
runs only ``ip addr`` / ``ip route`` (a stock hook would rewrite the machine's resolv.conf: a
network namespace shares the file system). udhcpc exits once it holds the lease (``-q``), so no
client is left renewing on the NIC after it is bridged.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .lab_host import delete_netns, run, wait_for
from .libvirt_lab import LabFactory, LibvirtLab

SUBNET = "10.231.50"
LAN_BRIDGE = "kvllan0"
LAN_PORT = "kvlup"
NIC = "enp0s20f0u1"
NIC_MAC = "52:54:00:aa:00:01"

HOOK = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface" valid_lft "${lease:-3600}" \\
      preferred_lft "${lease:-3600}"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface" ;;
esac
exit 0
"""


@dataclass
class Lan:
    """The LAN namespace, its DHCP server, and the lab NIC's own lease."""

    netns: str
    state_dir: Path
    dnsmasq: subprocess.Popen[bytes]
    nic_address: str = ""

    @property
    def gateway(self) -> str:
        return f"{SUBNET}.1"

    def in_subnet(self, address: str) -> bool:
        return address.startswith(f"{SUBNET}.")

    def ping(self, address: str) -> bool:
        """One echo from the LAN namespace (only ever to an address inside our namespaces)."""
        argv = ["ip", "netns", "exec", self.netns, "ping", "-c", "1", "-W", "1", address]
        return run(argv, check=False).returncode == 0

    def stop(self) -> None:
        """Stop dnsmasq and delete the LAN namespace (the veth pair goes with it)."""
        if self.dnsmasq.poll() is None:
            self.dnsmasq.terminate()
            self.dnsmasq.wait(timeout=10)
        delete_netns(self.netns)


def start_lan(labs: LabFactory, lab: LibvirtLab) -> Lan:
    """Build the LAN beside ``lab`` and give ``lab``'s NIC a DHCP address from it."""
    netns = labs.add_netns("lan")
    state = lab.state_dir / "lan"
    state.mkdir()
    ns = ["ip", "-n", netns]
    run([*ns, "link", "add", LAN_BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
    run([*ns, "addr", "add", f"{SUBNET}.1/24", "dev", LAN_BRIDGE])
    run([*ns, "link", "set", LAN_BRIDGE, "up"])
    # Both ends are born inside namespaces: the machine never sees either of them.
    run([*ns, "link", "add", LAN_PORT, "type", "veth", "peer", "name", NIC, "address", NIC_MAC,
         "netns", lab.netns])
    run([*ns, "link", "set", LAN_PORT, "master", LAN_BRIDGE, "up"])
    lab.run(["ip", "link", "set", NIC, "up"])
    log = (state / "dnsmasq.log").open("wb")
    dnsmasq = subprocess.Popen(
        ["ip", "netns", "exec", netns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
         "--user=root", "--group=root", "--port=0", "--no-ping", "--bind-interfaces",
         f"--interface={LAN_BRIDGE}", "--except-interface=lo",
         f"--dhcp-range={SUBNET}.100,{SUBNET}.199,255.255.255.0,1h",
         f"--dhcp-option=option:router,{SUBNET}.1", "--dhcp-authoritative",
         f"--dhcp-leasefile={state / 'leases'}", f"--pid-file={state / 'dnsmasq.pid'}",
         "--log-dhcp", f"--log-facility={state / 'dnsmasq.log'}"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    lan = Lan(netns=netns, state_dir=state, dnsmasq=dnsmasq)
    hook = state / "udhcpc-hook"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    wait_for(lambda: (state / "dnsmasq.pid").exists() or None, timeout=10, what="LAN dnsmasq")
    lab.run(["busybox", "udhcpc", "-i", NIC, "-s", str(hook), "-n", "-q", "-f", "-t", "5"])
    lan.nic_address = ipv4_of(lab, NIC)
    return lan


def ipv4_of(lab: LibvirtLab, dev: str) -> str:
    """The first IPv4 address on ``dev`` in the lab's namespace ('' if none)."""
    out = lab.run(["ip", "-4", "-o", "addr", "show", "dev", dev], check=False).stdout
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    return match.group(1) if match else ""

"""Namespace lab for host-bridging tests (root only). Reusable by every backend's tests.

::

    <prefix>-<id>-lan : lanbr0 10.231.0.1/24 (bridge, STP off) + dnsmasq DHCP .100-.199 --no-ping
                        └ lan-h0 ──veth── <prefix>-<id>-h0 : NIC (52:54:00:aa:00:01)
                        └ lan-h1 ──veth── <prefix>-<id>-h1 : NIC (52:54:00:aa:00:02)   (more hosts)

Usage::

    with Lan("kvb") as lan:
        host = lan.add_host()                 # a namespace with a veth NIC on the LAN
        host.dhcp()                           # busybox udhcpc with our own ip-only hook
        before = host.snapshot()              # normalised ip -j link/addr/route
        ...
        assert lan.ping(host.address)

Everything the lab makes is named ``<prefix>-<pid>-...`` and removed on exit, also on failure.
IPv6 is off inside the namespaces so link-local addresses do not make snapshots noisy.
"""

from .netns import LabHost, Lan, default_devs, run, snapshot_diff, stop_process, wait_for

__all__ = ["LabHost", "Lan", "default_devs", "run", "snapshot_diff", "stop_process", "wait_for"]

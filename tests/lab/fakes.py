"""Canned hosts for the host-bridging unit tests (RecordingRunner, no root)."""

from __future__ import annotations

from kvmnet.hostnet.fake import FakeHostRunner, fake_host
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState

NIC = "enp0s20f0u1"
MAC = "52:54:00:aa:00:01"
LEASE = IpAddress(
    "10.231.0.185/24", valid_lft=3600, preferred_lft=3000, dynamic=True, broadcast="10.231.0.255"
)
STALE = IpAddress("192.168.0.1/24")


def nic(**kw: object) -> LinkState:
    fields: dict[str, object] = {"name": NIC, "mac": MAC, "addresses": (LEASE,)}
    fields.update(kw)
    return LinkState(**fields)  # type: ignore[arg-type]


def bridge(name: str = "br0", **kw: object) -> LinkState:
    fields: dict[str, object] = {
        "name": name,
        "mac": "aa:bb:cc:dd:ee:01",
        "kind": "bridge",
        "stp": False,
        "forward_delay": 0,
    }
    fields.update(kw)
    return LinkState(**fields)  # type: ignore[arg-type]


def routes(dev: str = NIC) -> list[IpRoute]:
    return [
        IpRoute("default", dev, gateway="10.231.0.1", metric=100, protocol="dhcp"),
        IpRoute("10.231.0.0/24", dev, protocol="kernel", scope="link", prefsrc="10.231.0.185"),
        IpRoute("10.99.0.0/16", dev, gateway="10.231.0.254"),
    ]


#: The iproute2 plan's first route step on these hosts: failing only it (``runner.fail``)
#: fails the apply while the rollback's own ``ip route replace ... dev NIC`` still succeed.
ROUTE_STEP = ("ip", "route", "replace", "10.99.0.0/16", "via", "10.231.0.254", "dev", "br0")


def dhcp_host(**kw: object) -> FakeHostRunner:
    """A NIC with a DHCP lease, a default route through it and udhcpc holding it."""
    return fake_host(
        [nic()],
        routes(),
        processes={4242: ["busybox", "udhcpc", "-f", "-i", NIC, "-s", "/hook"], 7: ["sshd"]},
        **kw,  # type: ignore[arg-type]
    )


def classic_host() -> FakeHostRunner:
    """br0 already there with the stale 192.168.0.1/24 of an earlier attempt."""
    return fake_host(
        [nic(), bridge(addresses=(STALE,))],
        [*routes(), IpRoute("192.168.0.0/24", "br0", protocol="kernel", scope="link")],
        processes={4242: ["dhclient", "-v", "-pf", "/run/d.pid", NIC]},
    )

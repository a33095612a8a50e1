"""A fake host for tests and docs: a `RecordingRunner` whose read commands describe
the links, routes and processes you give it. No root, nothing executed.

Usage::

    runner = fake_host(
        [LinkState("eth0", "52:54:00:aa:00:01", addresses=(IpAddress("10.0.0.5/24"),))],
        routes=[IpRoute("default", "eth0", gateway="10.0.0.1")],
    )
    backend = Iproute2Backend(runner=runner)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .inspect import (
    FOREVER,
    LINKS_ARGV,
    NETWORKD_LINKS_ARGV,
    NM_DEVICES_ARGV,
    ROUTES6_ARGV,
    ROUTES_ARGV,
)
from .model.state import IpAddress, IpRoute, LinkState
from .runners.runner import DEFAULT_TIMEOUT, CommandResult, RecordingRunner, Reply

__all__ = ["FakeHostRunner", "fake_host", "link_json", "route_json"]

NETNS_ID = "net:[4026531840]\n"


@dataclass
class FakeHostRunner(RecordingRunner):
    """A `RecordingRunner` whose process table follows what runs.

    The process table is ``/proc/PID/cmdline`` in ``files``: ``spawn`` adds the process,
    ``kill -SIG PID`` removes it.

    Attributes:
        replies: as for `RecordingRunner`.
        files: as for `RecordingRunner`; holds the process table too.
        modes: as for `RecordingRunner`.
        fail: as for `RecordingRunner`.
        netns: as for `RecordingRunner`.
        calls: as for `RecordingRunner`.
        survive_kill: argv prefixes of processes that ignore signals (a kill leaves them).
        die_at_start: argv prefixes of processes that exit at once when spawned (they
            never show up).
    """

    survive_kill: Sequence[tuple[str, ...]] = ()
    die_at_start: Sequence[tuple[str, ...]] = ()

    def _argv_of(self, pid: str) -> tuple[str, ...]:
        raw = self.files.get(f"/proc/{pid}/cmdline", b"")
        return tuple(a for a in raw.decode().split("\0") if a)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> CommandResult:
        """As `RecordingRunner.run`; a successful ``kill -SIG PID`` also ends the process.

        Args:
            argv: the command and its arguments.
            input: ignored: nothing runs.
            check: raise unless the (canned) exit status is 0.
            timeout: ignored: nothing runs.

        Returns:
            The canned result.

        Raises:
            CommandFailed: ``check`` and a canned non-zero exit.
        """
        result = super().run(argv, input=input, check=check, timeout=timeout)
        key = tuple(argv)
        if len(key) == 3 and key[0] == "kill" and key[2].isdigit() and result.ok:
            victim = self._argv_of(key[2])
            if not any(victim[: len(p)] == p for p in self.survive_kill):
                self.files.pop(f"/proc/{key[2]}/cmdline", None)
        return result

    def spawn(self, argv: Sequence[str]) -> int:
        """As `RecordingRunner.spawn`; the process then shows up in ``/proc``.

        Args:
            argv: the command and its arguments.

        Returns:
            A made-up PID.
        """
        pid = super().spawn(argv)
        key = tuple(argv)
        if not any(key[: len(p)] == p for p in self.die_at_start):
            self.files[f"/proc/{pid}/cmdline"] = "\0".join(key).encode() + b"\0"
            self.replies = {**self.replies, ("readlink", f"/proc/{pid}/ns/net"): NETNS_ID}
        return pid


def _addr_json(addr: IpAddress) -> dict[str, object]:
    out: dict[str, object] = {
        "family": "inet6" if addr.family == 6 else "inet",
        "local": addr.ip,
        "prefixlen": addr.prefixlen,
        "scope": addr.scope,
        "valid_life_time": FOREVER if addr.valid_lft is None else addr.valid_lft,
        "preferred_life_time": FOREVER if addr.preferred_lft is None else addr.preferred_lft,
    }
    if addr.dynamic:
        out["dynamic"] = True
    if addr.broadcast:
        out["broadcast"] = addr.broadcast
    return out


def link_json(link: LinkState, index: int) -> dict[str, object]:
    """``ip -j -d addr show`` output for one link."""
    flags = list(link.flags) or (["BROADCAST", "MULTICAST", "UP", "LOWER_UP"])
    entry: dict[str, object] = {
        "ifindex": index,
        "ifname": link.name,
        "flags": flags,
        "mtu": link.mtu,
        "operstate": link.operstate if link.operstate != "UNKNOWN" else "UP",
        "link_type": "ether",
        "address": link.mac,
        "addr_info": [_addr_json(a) for a in link.addresses],
    }
    if link.master:
        entry["master"] = link.master
    if link.parent:
        entry["link"] = link.parent
    if link.kind:
        info: dict[str, object] = {"info_kind": link.kind}
        if link.is_bridge:
            info["info_data"] = {
                "stp_state": 1 if link.stp else 0,
                "forward_delay": link.forward_delay or 0,
            }
        entry["linkinfo"] = info
    return entry


def route_json(route: IpRoute) -> dict[str, object]:
    """``ip -j route show`` output for one route."""
    flags = ["onlink"] if route.onlink else []
    entry: dict[str, object] = {"dst": route.dst, "dev": route.dev, "flags": flags}
    for key, value in (
        ("gateway", route.gateway),
        ("metric", route.metric),
        ("protocol", route.protocol),
        ("scope", route.scope),
        ("prefsrc", route.prefsrc),
    ):
        if value is not None:
            entry[key] = value
    return entry


def fake_host(
    links: Iterable[LinkState],
    routes: Iterable[IpRoute] = (),
    *,
    processes: Mapping[int, Sequence[str]] | None = None,
    files: Mapping[str, bytes] | None = None,
    iptables_forward: str = "ACCEPT",
    replies: Mapping[tuple[str, ...], Reply] | None = None,
    netns: str | None = None,
) -> FakeHostRunner:
    """A fake host: its read commands report ``links``, ``routes`` and ``processes``.

    Processes it spawns show up, processes it kills go (`FakeHostRunner`). Wi-Fi can only
    be faked here: give a link ``wireless=True`` and its ``/sys/class/net/NAME/uevent`` says
    ``DEVTYPE=wlan``.

    Args:
        links: the host's links, as ``ip -j link``/``ip -j addr`` report them.
        routes: the main routing table.
        processes: running processes, PID -> argv (e.g. a DHCP client on the NIC).
        files: canned files, path -> bytes (configuration the backends read).
        iptables_forward: the policy of iptables' FORWARD chain (``"DROP"``, with
            br_netfilter loaded, makes the `br-netfilter` preflight refuse).
        replies: more canned command replies, as for `RecordingRunner`.
        netns: the network namespace it pretends to be.

    Returns:
        The `FakeHostRunner`: a `RecordingRunner` to inject as a backend's ``runner``.
    """
    links = list(links)
    routes = list(routes)
    canned: dict[tuple[str, ...], Reply] = {
        LINKS_ARGV: json.dumps([link_json(link, n) for n, link in enumerate(links, 1)]),
        ROUTES_ARGV: json.dumps([route_json(r) for r in routes if r.family == 4]),
        ROUTES6_ARGV: json.dumps([route_json(r) for r in routes if r.family == 6]),
        ("iptables", "-S", "FORWARD"): f"-P FORWARD {iptables_forward}\n",
    }
    # No NetworkManager or networkd runs on the fake host (as when their bus is absent).
    for query in (NM_DEVICES_ARGV, NETWORKD_LINKS_ARGV):
        canned[query] = CommandResult(query, 1, "", "not running on the fake host")
    # Every process lives in the runner's own network namespace.
    for proc in ("self", *(str(p) for p in (processes or {}))):
        canned[("readlink", f"/proc/{proc}/ns/net")] = NETNS_ID
    canned.update(replies or {})
    all_files: dict[str, bytes] = {}
    for link in links:
        devtype = b"DEVTYPE=wlan\n" if link.wireless else b""
        all_files[f"/sys/class/net/{link.name}/uevent"] = (
            b"INTERFACE=" + link.name.encode() + b"\n" + devtype
        )
    for pid, argv in (processes or {}).items():
        all_files[f"/proc/{pid}/cmdline"] = "\0".join(argv).encode() + b"\0"
    all_files.update(files or {})
    return FakeHostRunner(replies=canned, files=all_files, netns=netns)

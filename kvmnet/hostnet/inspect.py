"""Reading the host through a runner: links (``ip -j -d addr``), routes, DHCP clients, Wi-Fi,
br_netfilter, the SSH session. Read-only: nothing here changes the host.

Usage::

    links = read_links(runner)               # {"eth0": LinkState(...), ...}
    state = inspect_host(runner, "eth0", "br0", ssh_connection=os.environ.get("SSH_CONNECTION"))
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from ..errors import HostNicNotFound, KvmnetError
from .model.request import DhcpClient, HostState
from .model.state import IpAddress, IpRoute, LinkState
from .runners.runner import Runner

__all__ = [
    "find_dhcp_clients",
    "in_runner_netns",
    "inspect_host",
    "network_daemon",
    "process_argv",
    "read_links",
    "read_routes",
    "ssh_uses",
]

FOREVER = 4294967295
LINKS_ARGV = ("ip", "-j", "-d", "addr", "show")
ROUTES_ARGV = ("ip", "-j", "route", "show", "table", "main")
ROUTES6_ARGV = ("ip", "-j", "-6", "route", "show", "table", "main")
NM_DEVICES_ARGV = ("nmcli", "-t", "-f", "DEVICE,STATE", "device", "status")
NETWORKD_LINKS_ARGV = ("networkctl", "list", "--no-legend", "--no-pager")
DHCP_PROGRAMS = frozenset({"dhclient", "udhcpc", "dhcpcd", "dhcpcd5", "dhcpcd-bin"})


def _json_list(text: str, argv: Iterable[str]) -> list[Mapping[str, object]]:
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise KvmnetError(
            f"`{' '.join(argv)}` printed no JSON ({exc}): is iproute2 too old?"
        ) from exc
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _lft(value: object) -> int | None:
    return None if not isinstance(value, int) or value >= FOREVER else value


def _address(info: Mapping[str, object]) -> IpAddress | None:
    local, plen = info.get("local"), info.get("prefixlen")
    if not isinstance(local, str) or not isinstance(plen, int):
        return None
    return IpAddress(
        cidr=f"{local}/{plen}",
        valid_lft=_lft(info.get("valid_life_time")),
        preferred_lft=_lft(info.get("preferred_life_time")),
        dynamic=bool(info.get("dynamic")),
        scope=str(info.get("scope", "global")),
        broadcast=str(info["broadcast"]) if "broadcast" in info else None,
    )


def _link(entry: Mapping[str, object], ports: Mapping[str, list[str]]) -> LinkState:
    name = str(entry["ifname"])
    info = entry.get("linkinfo")
    info = info if isinstance(info, dict) else {}
    kind = info.get("info_kind")
    raw_data = info.get("info_data")
    data = raw_data if isinstance(raw_data, dict) else {}
    addrs = entry.get("addr_info")
    addresses = tuple(
        a for a in (_address(i) for i in (addrs if isinstance(addrs, list) else ())) if a
    )
    is_bridge = kind == "bridge"
    mtu, flags, master = entry.get("mtu"), entry.get("flags"), entry.get("master")
    return LinkState(
        name=name,
        mac=str(entry.get("address", "")).lower(),
        kind=str(kind) if isinstance(kind, str) else None,
        master=master if isinstance(master, str) else None,
        operstate=str(entry.get("operstate", "UNKNOWN")),
        mtu=mtu if isinstance(mtu, int) else 1500,
        addresses=addresses,
        stp=bool(data.get("stp_state")) if is_bridge else None,
        forward_delay=int(data.get("forward_delay", 0)) if is_bridge else None,
        ports=tuple(ports.get(name, ())) if is_bridge else (),
        flags=tuple(str(f) for f in flags) if isinstance(flags, list) else (),
        parent=parent if isinstance(parent := entry.get("link"), str) else None,
    )


def read_links(runner: Runner, *, wireless: Iterable[str] = ()) -> dict[str, LinkState]:
    """Every link the runner sees, by name (one ``ip -j -d addr show``).

    ``wireless``: names to check for Wi-Fi (through /sys, which costs a read each).
    """
    entries = _json_list(runner.run(LINKS_ARGV).stdout, LINKS_ARGV)
    ports: dict[str, list[str]] = {}
    for entry in entries:
        master = entry.get("master")
        if isinstance(master, str):
            ports.setdefault(master, []).append(str(entry["ifname"]))
    links = {str(e["ifname"]): _link(e, ports) for e in entries if "ifname" in e}
    for name in wireless:
        if name in links and is_wireless(runner, name):
            links[name] = replace(links[name], wireless=True)
    return links


def is_wireless(runner: Runner, name: str) -> bool:
    """True for a Wi-Fi station: its uevent says DEVTYPE=wlan (or it has a wireless/ dir)."""
    uevent = runner.read_file(f"/sys/class/net/{name}/uevent") or b""
    if b"DEVTYPE=wlan" in uevent:
        return True
    return runner.list_dir(f"/sys/class/net/{name}/wireless") is not None


def _route(entry: Mapping[str, object], family: int) -> IpRoute | None:
    dst, dev = entry.get("dst"), entry.get("dev")
    if not isinstance(dst, str) or not isinstance(dev, str):
        return None
    metric = entry.get("metric")
    return IpRoute(
        dst=dst,
        dev=dev,
        gateway=str(entry["gateway"]) if "gateway" in entry else None,
        metric=metric if isinstance(metric, int) else None,
        protocol=str(entry["protocol"]) if "protocol" in entry else None,
        scope=str(entry["scope"]) if "scope" in entry else None,
        prefsrc=str(entry["prefsrc"]) if "prefsrc" in entry else None,
        family=family,
        onlink="onlink" in flags if isinstance(flags := entry.get("flags"), list) else False,
    )


def read_routes(runner: Runner) -> tuple[IpRoute, ...]:
    """The main routing table, IPv4 then IPv6 (IPv6 only if the command works)."""
    routes: list[IpRoute] = []
    for argv, family in ((ROUTES_ARGV, 4), (ROUTES6_ARGV, 6)):
        result = runner.run(argv, check=family == 4)
        for entry in _json_list(result.stdout, argv) if result.ok else ():
            route = _route(entry, family)
            if route is not None:
                routes.append(route)
    return tuple(routes)


def _netns_id(runner: Runner, pid: str) -> str:
    return runner.run(["readlink", f"/proc/{pid}/ns/net"], check=False).stdout.strip()


def process_argv(runner: Runner, pid: int) -> tuple[str, ...]:
    """The command line of process ``pid`` from ``/proc/PID/cmdline`` (empty: no such
    process, or a zombie that has exited and waits to be reaped).

    Args:
        runner: whose ``/proc`` to read.
        pid: the process.

    Returns:
        Its argv.
    """
    try:
        raw = runner.read_file(f"/proc/{pid}/cmdline") or b""
    except OSError:
        # ESRCH: it exited between the open and the read (a process being stopped does).
        return ()
    return tuple(a for a in raw.decode(errors="replace").split("\0") if a)


def _read_many(runner: Runner, paths: Sequence[str]) -> dict[str, bytes | None]:
    # A runner on another machine reads them all in one round trip instead of one each.
    bulk = getattr(runner, "read_files", None)
    if callable(bulk):
        found: dict[str, bytes | None] = bulk(paths)
        return found
    found = {}
    for path in paths:
        try:
            found[path] = runner.read_file(path)
        except OSError:
            # ESRCH: the process exited between the open and the read (one being stopped).
            found[path] = None
    return found


def find_dhcp_clients(runner: Runner, links: Iterable[str]) -> tuple[DhcpClient, ...]:
    """DHCP client processes (dhclient, udhcpc, dhcpcd) whose command line names one of
    ``links``, in the runner's network namespace."""
    wanted = set(links)
    found: list[DhcpClient] = []
    pids = [p for p in runner.list_dir("/proc") or () if p.isdigit()]
    cmdlines = _read_many(runner, [f"/proc/{pid}/cmdline" for pid in pids])
    for pid in pids:
        raw = cmdlines.get(f"/proc/{pid}/cmdline")
        # Empty: gone meanwhile, or a zombie that has exited and waits to be reaped.
        argv = tuple(a for a in (raw or b"").decode(errors="replace").split("\0") if a)
        if not argv:
            continue
        words = list(argv[:2])
        if not any(os.path.basename(w) in DHCP_PROGRAMS for w in words):
            continue
        named = [w for w in argv[1:] if w in wanted]
        named += [w[2:] for w in argv[1:] if w.startswith("-i") and w[2:] in wanted]
        named += [w.split("=", 1)[1] for w in argv if w.startswith("--interface=")]
        named = [n for n in named if n in wanted]
        if named:
            found.append(DhcpClient(int(pid), argv, named[0]))
    if not found:
        return ()
    mine = set(in_runner_netns(runner, [c.pid for c in found]))
    return tuple(c for c in found if c.pid in mine)


def in_runner_netns(runner: Runner, pids: Iterable[int]) -> list[int]:
    """The ``pids`` whose network namespace is the runner's: a namespace shares the PID
    space with the host, and a process of the same command line in another namespace (an
    ``udhcpc -i br0`` elsewhere) is none of ours.

    Args:
        runner: whose namespace counts.
        pids: the processes to keep or drop.

    Returns:
        Those in the runner's namespace, in the order given.
    """
    pids = list(pids)
    if not pids:
        return []
    ours = runner.run(["readlink", "/proc/self/ns/net"], check=False).stdout.strip()
    return [p for p in pids if _netns_id(runner, str(p)) == ours]


def ssh_uses(
    runner: Runner, ssh_connection: str | None, link: LinkState, bridge: LinkState | None
) -> bool:
    """True if ``$SSH_CONNECTION`` (``client cport server sport``) runs over ``link``: its
    local address sits on the link (or on the bridge it is a port of), or the route back to
    the client leaves through it."""
    parts = (ssh_connection or "").split()
    if len(parts) < 3:
        return False
    client, server = parts[0], parts[2]
    names = {link.name} | ({bridge.name} if bridge is not None else set())
    if link.master:
        names.add(link.master)
    for candidate in (link, bridge):
        if candidate is not None and any(a.ip == server for a in candidate.addresses):
            return True
    try:
        ipaddress.ip_address(client)
    except ValueError:
        return False
    result = runner.run(["ip", "-j", "route", "get", client], check=False)
    routes = _json_list(result.stdout, ["ip", "route", "get"]) if result.ok else []
    return any(r.get("dev") in names for r in routes)


def _forward_policy(runner: Runner) -> str | None:
    result = runner.run(["iptables", "-S", "FORWARD"], check=False)
    for line in result.stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["-P", "FORWARD"] and len(parts) > 2:
            return parts[2]
    return None


def network_daemon(runner: Runner, link: str) -> str | None:
    """NetworkManager or systemd-networkd when one of them manages ``link`` now (asked over
    their bus with nmcli/networkctl; a daemon that is not running manages nothing)."""
    nm = runner.run(NM_DEVICES_ARGV, check=False)
    for line in nm.stdout.splitlines() if nm.ok else ():
        device, _, state = line.rpartition(":")
        if device == link and state.split(" ")[0] in ("connected", "connecting"):
            return "NetworkManager"
    nd = runner.run(NETWORKD_LINKS_ARGV, check=False)
    for line in nd.stdout.splitlines() if nd.ok else ():
        fields = line.split()
        if len(fields) >= 5 and fields[1] == link and fields[4] in ("configured", "configuring"):
            return "systemd-networkd"
    return None


def inspect_host(
    runner: Runner, nic: str, bridge: str, *, ssh_connection: str | None = None
) -> HostState:
    """Everything a planner and the preflight need about ``nic`` and ``bridge``."""
    links = read_links(runner, wireless=[nic])
    if nic not in links:
        where = f" in network namespace {runner.netns!r}" if runner.netns else ""
        known = ", ".join(sorted(n for n in links if n != "lo")) or "none"
        raise HostNicNotFound(f"NIC {nic!r} does not exist{where} (links: {known}): check the name")
    nic_state, br_state = links[nic], links.get(bridge)
    neighbours = {name: links[name] for name in links if name not in (nic, bridge)}
    nf = (runner.read_file("/proc/sys/net/bridge/bridge-nf-call-iptables") or b"").strip()
    br_netfilter = nf == b"1"
    return HostState(
        nic=nic_state,
        bridge=br_state,
        routes=read_routes(runner),
        dhcp_clients=find_dhcp_clients(runner, [nic, bridge]),
        ssh_over_nic=ssh_uses(runner, ssh_connection, nic_state, br_state),
        br_netfilter=br_netfilter,
        forward_policy=_forward_policy(runner) if br_netfilter else None,
        managed_by=network_daemon(runner, nic),
        files=runner,
        others=neighbours,
    )

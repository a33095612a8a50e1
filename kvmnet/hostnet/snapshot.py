"""What rollback restores: the runtime state of the NIC and bridge, the main routing table,
the DHCP clients that held them, and the bytes and mode of every file a plan touches (or
their absence). JSON-serialisable, so the dead-man watcher process can restore it without the
caller.

DHCP clients are restored by state, not by what the caller managed to write down (it may
have died mid-steps): a client found on the NIC or bridge at snapshot time that no longer
runs there is started again with the same command line, in the runner's network namespace;
a client there now that was not there then (one the plan started) is stopped by its daemon's
PID, found in ``/proc`` (a forking launcher such as dhclient's is long gone).

Usage::

    snap = take_snapshot(runner, links=("eth0", "br0"), files=plan.files)
    ...
    failed = restore_snapshot(runner, snap)     # the restore commands that failed
    problems = compare(snap, runner)            # [] when the host matches the snapshot again
"""

from __future__ import annotations

import base64
import json
import posixpath
import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace

from .. import _log
from ..errors import KvmnetError
from .inspect import (
    find_dhcp_clients,
    in_runner_netns,
    process_argv,
    read_links,
    read_routes,
)
from .model.ipcmd import SELF_MANAGED, address_args, bridge_args, route_args
from .model.request import DhcpClient
from .model.state import IpAddress, IpRoute, LinkState
from .runners.runner import Runner

__all__ = [
    "FileSnapshot",
    "Snapshot",
    "compare",
    "failed_command",
    "restart_clients",
    "restore_snapshot",
    "stop_new_clients",
    "take_snapshot",
]

#: How long a stopped client may take to exit (then SIGKILL), and a restarted one to show up.
PROCESS_WAIT = 3.0
_POLL = 0.05

log = _log.get(__name__)


@dataclass(frozen=True)
class FileSnapshot:
    """One file as it was: its bytes (None: it did not exist) and mode.

    Owner, group and extended attributes are not recorded: the runner's write keeps those of
    the file it replaces, and a restore writes over the file the plan wrote.

    Attributes:
        path: the file.
        content: its bytes; None when it did not exist.
        mode: its permission bits.
        parent: for a file that did not exist, its nearest folder that did (the folders
            below it were made by the plan: a rollback removes them again when empty).
    """

    path: str
    content: bytes | None  # None: the file did not exist
    mode: int | None = None
    parent: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """Links (None: absent), routes, files and the DHCP clients holding the links, as they
    were at ``taken_at`` (epoch seconds)."""

    links: dict[str, LinkState | None]
    routes: tuple[IpRoute, ...]
    files: tuple[FileSnapshot, ...] = ()
    taken_at: float = field(default_factory=time.time)
    dhcp_clients: tuple[DhcpClient, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "links": {k: (asdict(v) if v else None) for k, v in self.links.items()},
                "routes": [asdict(r) for r in self.routes],
                "files": [
                    {
                        "path": f.path,
                        "content": None
                        if f.content is None
                        else base64.b64encode(f.content).decode(),
                        "mode": f.mode,
                        "parent": f.parent,
                    }
                    for f in self.files
                ],
                "taken_at": self.taken_at,
                "dhcp_clients": [
                    {"pid": c.pid, "argv": list(c.argv), "link": c.link} for c in self.dhcp_clients
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        raw = json.loads(text)
        links: dict[str, LinkState | None] = {}
        for name, value in raw["links"].items():
            if value is None:
                links[name] = None
                continue
            value["addresses"] = tuple(IpAddress(**a) for a in value["addresses"])
            value["routes"] = tuple(IpRoute(**r) for r in value["routes"])
            value["ports"] = tuple(value["ports"])
            value["flags"] = tuple(value["flags"])
            links[name] = LinkState(**value)
        files = tuple(
            FileSnapshot(
                f["path"],
                None if f["content"] is None else base64.b64decode(f["content"]),
                f["mode"],
                f.get("parent"),
            )
            for f in raw["files"]
        )
        routes = tuple(IpRoute(**r) for r in raw["routes"])
        clients = tuple(
            DhcpClient(int(c["pid"]), tuple(str(a) for a in c["argv"]), str(c["link"]))
            for c in raw.get("dhcp_clients", ())
        )
        return cls(
            links=links,
            routes=routes,
            files=files,
            taken_at=float(raw["taken_at"]),
            dhcp_clients=clients,
        )


def take_snapshot(runner: Runner, *, links: tuple[str, ...], files: tuple[str, ...]) -> Snapshot:
    """Read ``links`` (absent ones recorded as None), the routes, ``files`` and the DHCP
    clients holding ``links`` (in the runner's network namespace) now."""
    now = read_links(runner)
    return Snapshot(
        links={name: now.get(name) for name in links},
        routes=read_routes(runner),
        files=tuple(_file(runner, p) for p in files),
        dhcp_clients=find_dhcp_clients(runner, links),
    )


def _file(runner: Runner, path: str) -> FileSnapshot:
    content = runner.read_file(path)
    if content is not None:
        return FileSnapshot(path, content, runner.file_mode(path))
    parent = posixpath.dirname(path)
    while parent != "/" and runner.list_dir(parent) is None:
        parent = posixpath.dirname(parent)
    return FileSnapshot(path, None, None, parent)


def _remove_new_folders(runner: Runner, f: FileSnapshot) -> None:
    """Remove the empty folders between ``f.path`` and ``f.parent`` (the plan made them:
    a backup folder ``/var/lib/kvmnet/backup/STAMP``). ``rmdir`` removes only empty ones."""
    if f.parent is None:
        return
    folder = posixpath.dirname(f.path)
    while folder.startswith(f.parent.rstrip("/") + "/") and runner.list_dir(folder) == ():
        if not runner.run(["rmdir", "--", folder], check=False).ok:
            break
        log.info("removed %s: the plan made it, the rollback left it empty", folder)
        folder = posixpath.dirname(folder)


def failed_command(command: str, stderr: str, returncode: int) -> str:
    """The sentence a rollback reports for a command that failed (its stderr on one line)."""
    why = " ".join(stderr.split()) or f"exit status {returncode}"
    return f"rollback command `{command}` failed ({why}): run it by hand"


def _global(link: LinkState) -> dict[str, IpAddress]:
    return {a.cidr: a for a in link.addresses if a.scope == "global"}


def _managed(routes: tuple[IpRoute, ...], devs: set[str]) -> dict[tuple[object, ...], IpRoute]:
    return {
        (r.family, r.dst, r.gateway, r.dev, r.metric): r
        for r in routes
        if r.dev in devs and r.protocol not in SELF_MANAGED
    }


def compare(before: Snapshot, runner: Runner) -> list[str]:
    """Differences between ``before`` and the host now (lifetimes' countdown ignored)."""
    now = read_links(runner)
    problems: list[str] = []
    for name, old in before.links.items():
        cur = now.get(name)
        if old is None or cur is None:
            if (old is None) != (cur is None):
                problems.append(f"{name} {'exists' if cur else 'is missing'}")
            continue
        if set(_global(old)) != set(_global(cur)):
            problems.append(f"{name} has {sorted(_global(cur))}, had {sorted(_global(old))}")
        if old.master != cur.master:
            problems.append(f"{name}'s master is {cur.master}, was {old.master}")
        if old.mac != cur.mac:
            problems.append(f"{name}'s MAC is {cur.mac}, was {old.mac}")
        if old.admin_up != cur.admin_up:
            problems.append(f"{name} is {'up' if cur.admin_up else 'down'}, was not")
    devs = set(before.links)
    old_routes, cur_routes = _managed(before.routes, devs), _managed(read_routes(runner), devs)
    for key in old_routes.keys() - cur_routes.keys():
        problems.append(f"route {old_routes[key].dst} via {old_routes[key].dev} is missing")
    for key in cur_routes.keys() - old_routes.keys():
        problems.append(f"route {cur_routes[key].dst} via {cur_routes[key].dev} is extra")
    for f in before.files:
        if runner.read_file(f.path) != f.content:
            problems.append(f"{f.path} differs")
        elif f.content is not None and runner.file_mode(f.path) != f.mode:
            problems.append(f"{f.path} mode differs")
    return problems


def restore_files(runner: Runner, snap: Snapshot) -> list[str]:
    errors: list[str] = []
    for f in snap.files:
        try:
            if f.content is None:
                runner.remove_file(f.path)
                _remove_new_folders(runner, f)
            else:
                runner.write_file(f.path, f.content, mode=f.mode if f.mode is not None else 0o644)
        except (OSError, KvmnetError) as exc:
            errors.append(f"{f.path} could not be restored ({exc})")
    return errors


def _lft(addr: IpAddress, elapsed: int) -> IpAddress:
    if addr.valid_lft is None:
        return addr
    valid = max(addr.valid_lft - elapsed, 1)
    preferred = None if addr.preferred_lft is None else max(addr.preferred_lft - elapsed, 0)
    return replace(addr, valid_lft=valid, preferred_lft=preferred)


def restore_runtime(runner: Runner, snap: Snapshot) -> list[str]:
    """Make links, addresses and routes match ``snap`` again, in the gapless order: addresses
    back first, then ports released, routes re-pointed, extra addresses and links removed.
    Returns the commands that failed (empty: all ran)."""
    errors: list[str] = []

    def run(argv: tuple[str, ...]) -> None:
        result = runner.run(argv, check=False)
        if not result.ok:
            errors.append(failed_command(shlex.join(argv), result.stderr, result.returncode))

    elapsed = int(time.time() - snap.taken_at)
    existed = {n: s for n, s in snap.links.items() if s is not None}
    _recreate_bridges(run, existed, read_links(runner))
    now = read_links(runner)
    _restore_addresses(run, existed, now, elapsed)
    _restore_masters(run, existed, now)
    _restore_link_settings(run, existed, now)
    _restore_routes(run, runner, snap, set(existed))
    _remove_extras(run, snap, existed, read_links(runner))
    return errors


_Run = Callable[[tuple[str, ...]], None]


def _bridge_settings(link: LinkState) -> tuple[str, ...]:
    return bridge_args(stp=bool(link.stp), forward_delay=link.forward_delay or 0)


def _recreate_bridges(run: _Run, existed: dict[str, LinkState], now: dict[str, LinkState]) -> None:
    for name, old in existed.items():
        if name not in now and old.is_bridge:
            run(("ip", "link", "add", name, "address", old.mac, *_bridge_settings(old)))


def _restore_addresses(
    run: _Run, existed: dict[str, LinkState], now: dict[str, LinkState], elapsed: int
) -> None:
    for name, old in existed.items():
        cur = now.get(name)
        have = _global(cur) if cur else {}
        for cidr, addr in _global(old).items():
            if cidr not in have:
                run(address_args(_lft(addr, elapsed), name))


def _restore_masters(run: _Run, existed: dict[str, LinkState], now: dict[str, LinkState]) -> None:
    for name, old in existed.items():
        cur = now.get(name)
        if cur is None or cur.master == old.master:
            continue
        run(("ip", "link", "set", name, *(("master", old.master) if old.master else ("nomaster",))))


def _restore_link_settings(
    run: _Run, existed: dict[str, LinkState], now: dict[str, LinkState]
) -> None:
    """A bridge's MAC and STP settings, and bringing up what was up."""
    for name, old in existed.items():
        cur = now.get(name)
        if cur is None:
            continue
        if old.is_bridge and cur.mac != old.mac:
            run(("ip", "link", "set", name, "address", old.mac))
        if old.is_bridge and (cur.stp, cur.forward_delay) != (old.stp, old.forward_delay):
            run(("ip", "link", "set", name, *_bridge_settings(old)))
        if old.admin_up and not cur.admin_up:
            run(("ip", "link", "set", name, "up"))


def _restore_routes(run: _Run, runner: Runner, snap: Snapshot, devs: set[str]) -> None:
    wanted = _managed(snap.routes, devs)
    # On-link routes first: a gateway must be reachable before a route can use it.
    for route in sorted(wanted.values(), key=lambda r: r.gateway is not None):
        run(route_args(route, route.dev))
    extra = _managed(read_routes(runner), set(snap.links))
    for key, route in extra.items():
        if key not in wanted:
            run(route_args(route, route.dev, verb="del"))


def _remove_extras(
    run: _Run, snap: Snapshot, existed: dict[str, LinkState], now: dict[str, LinkState]
) -> None:
    """Addresses that were not there, links brought up since, and links that did not exist."""
    for name, old in existed.items():
        cur = now.get(name)
        for cidr in set(_global(cur) if cur else {}) - set(_global(old)):
            run(("ip", "addr", "del", cidr, "dev", name))
        if cur is not None and not old.admin_up and cur.admin_up:
            run(("ip", "link", "set", name, "down"))
    for name, old_state in snap.links.items():
        if old_state is None and name in now:
            run(("ip", "link", "del", name))


def restore_snapshot(runner: Runner, snap: Snapshot, *, runtime: bool = True) -> list[str]:
    """Files first, then runtime state; returns what could not be restored (empty: all)."""
    errors = restore_files(runner, snap)
    if runtime:
        errors += restore_runtime(runner, snap)
    return errors


def _alive(runner: Runner, pid: int) -> bool:
    # A zombie's cmdline is empty: it has exited, only its parent has not reaped it yet.
    return bool(process_argv(runner, pid))


def _wait(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True


def _stop(runner: Runner, client: DhcpClient) -> str | None:
    """SIGTERM the daemon, SIGKILL it if it is still there after PROCESS_WAIT; a problem
    sentence when it survives both."""
    for sig in ("TERM", "KILL"):
        runner.run(["kill", f"-{sig}", str(client.pid)], check=False)
        if _wait(lambda: not _alive(runner, client.pid), PROCESS_WAIT):
            return None
    return f"{client.program} (PID {client.pid}) on {client.link}, started by the plan, still runs"


def stop_new_clients(
    runner: Runner, snap: Snapshot, *, started: Iterable[tuple[int, tuple[str, ...]]] = ()
) -> list[str]:
    """Stop the DHCP clients the plan started: those on the snapshot's links now that were
    not there at snapshot time (by PID and command line), and the daemons in ``started``
    still running their command line. Scanned again until none is left (a forking
    launcher's daemon can appear after a scan).

    Args:
        runner: acts in the plan's network namespace (its ``/proc`` view and ``kill``).
        snap: the snapshot whose links and clients say what ran before.
        started: (PID, argv) of the daemons the plan's steps started, as journaled.

    Returns:
        The clients that could not be stopped, one sentence each (empty: none left).
    """
    before = {c.pid for c in snap.dhcp_clients}
    # A client with the command line of one that ran before is that one (restarted).
    known = {(c.argv, c.link) for c in snap.dhcp_clients}
    problems: dict[int, str] = {}
    for _round in range(3):
        found = [
            c
            for c in find_dhcp_clients(runner, snap.links)
            if c.pid not in before and (c.argv, c.link) not in known
        ]
        found += [
            DhcpClient(pid, argv, "?")
            for pid, argv in started
            if pid not in before
            and argv
            and process_argv(runner, pid) == argv
            and in_runner_netns(runner, [pid])
        ]
        targets = {c.pid: c for c in found if c.pid not in problems}
        if not targets:
            break
        for client in targets.values():
            log.info("stopping %s (PID %d): the plan started it", client.program, client.pid)
            problem = _stop(runner, client)
            if problem:
                problems[client.pid] = problem
        time.sleep(_POLL * 4)  # room for a launcher that was forking during the scan
    return list(problems.values())


def _running(runner: Runner, snap: Snapshot, client: DhcpClient) -> bool:
    return any(
        c.argv == client.argv and c.link == client.link
        for c in find_dhcp_clients(runner, snap.links)
    )


def restart_clients(runner: Runner, snap: Snapshot) -> tuple[list[str], list[str]]:
    """Start again, with the same command line and in the runner's network namespace, every
    DHCP client of the snapshot that no longer runs on its link.

    Args:
        runner: starts them (a NetnsRunner starts them inside its namespace).
        snap: the snapshot holding the clients that ran before.

    Returns:
        ``(restarted, problems)``: the clients started (``"udhcpc on eth0"``) and the ones
        that could not be (failed to start, or gone again at once), one sentence each.
    """
    restarted: list[str] = []
    problems: list[str] = []
    for client in snap.dhcp_clients:
        if _running(runner, snap, client):
            continue
        what = f"{client.program} on {client.link} (`{shlex.join(client.argv)}`)"
        try:
            runner.spawn(client.argv)
        except OSError as exc:
            problems.append(f"DHCP client {what} could not be restarted: {exc}")
            continue

        # Seen twice, a moment apart: a client that dies on its arguments shows up briefly.
        def runs(client: DhcpClient = client) -> bool:
            return _running(runner, snap, client)

        up = _wait(runs, PROCESS_WAIT)
        if up:
            time.sleep(_POLL * 4)
            up = _wait(runs, PROCESS_WAIT)
        if up:
            log.info("restarted DHCP client %s", what)
            restarted.append(f"{client.program} on {client.link}")
        else:
            problems.append(f"DHCP client {what} was restarted but does not run")
    return restarted, problems

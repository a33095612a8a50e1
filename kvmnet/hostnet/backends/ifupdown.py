"""ifupdown: Debian's ``/etc/network/interfaces``, with bridge-utils' ``bridge_ports``.

The NIC's stanzas become ``manual`` port stanzas and bridge stanzas (one per NIC stanza, same
family and method) take over every other option they had (addresses, gateway, ``dns-*``...),
while link-level options (``hwaddress``, ``mtu``, ``bond-*``, ``vlan-raw-device``, ethtool's)
stay on the port; an inet6 stanza's ``mtu`` (IPv6's MTU for ifupdown) goes to both. Hooks go
by what they configure (`.interfaces.hook_place`): link-level commands (``ethtool``, ``ip
link``...) stay on the port, address and route commands move to the bridge with the NIC's name
rewritten; a line naming the NIC in a command kvmnet does not know is refused, and so is
an alias stanza (``iface NIC:0``: its address would stay on the port). The edit happens in
the file that holds the NIC's stanza (``source``/``source-directory`` includes
are followed); comments and other stanzas stay byte for byte, and the NIC's original lines
stay in the file behind ``#kvmnet:BR|`` so that ``release`` restores them exactly (see
`.interfaces`). The bridge gets the NIC's ``auto``/``allow-*`` (as ``auto``: a bridge is not
hot-plugged) and its MAC (``bridge_hw``).

Activation (unless ``files_only``, the default for a ``root`` other than ``/`` without a
``netns``: then only the files are written, nothing runs or is verified)::

    ifdown NIC        # with the old stanza: its DHCP client or static address goes
    (write the files)
    ifup BR           # bridge-utils' hook creates BR and adds NIC; BR leases or configures

so the host is unreachable between the two (about the time a DHCP lease takes). ``interfaces``
and ``state_dir`` point ifup/ifdown at other files (``-i FILE --state-dir DIR``), which is how
the tests run it inside a network namespace.

Usage::

    backend = IfupdownBackend()                       # /etc/network/interfaces on this host
    plan = kvmnet.Bridge("br0", backend=backend).enslave(kvmnet.HostNic("eno1", backend=backend))
"""

from __future__ import annotations

import posixpath

from ...errors import InvalidInput
from ..model.plan import Plan, RemoveFile, RunCommand, Step, WriteFile
from ..model.request import BridgeRequest, HostState
from ..runners.runner import Runner
from .filebackend import FileBackendBase, read_text, stale_address_steps, stp_warnings, write_step
from .interfaces import BEGIN, END, Config, Stanza, bridge_lines, place, read_config

__all__ = ["IfupdownBackend", "bridged_text", "released_text"]

MAIN = "/etc/network/interfaces"
STATE_DIR = "/run/network"
# /proc/sys/net/ipv6/conf/NIC/addr_gen_mode -> `ip link set NIC addrgenmode` word.
_ADDRGEN = {"0": "eui64", "1": "none", "2": "stable_secret", "3": "random"}


def _original_prefix(bridge: str, *, eol: bool = True) -> str:
    # A last line without a newline gets its own prefix, so that release restores it
    # without the newline the marked copy needs.
    return f"#kvmnet:{bridge}|" if eol else f"#kvmnet:{bridge}~|"


def _indent(lines: list[str], stanza: Stanza) -> str:
    for line in lines[stanza.start + 1:stanza.end]:
        stripped = line.lstrip()
        if stripped and not stripped.startswith("#"):
            return line[: len(line) - len(stripped)] or "    "
    return "    "


def bridged_text(
    config: Config,
    path: str,
    *,
    nic: str,
    bridge: str,
    mac: str,
    stanzas: list[Stanza],
    stp: bool,
    forward_delay: int,
) -> str:
    """The text of ``path`` with ``nic``'s stanzas in it turned into a port of ``bridge``.

    The port gets a ``manual`` stanza for the first of ``nic``'s stanzas, and one for each
    later stanza that leaves something on the port (its link-level options and hooks, in a
    stanza of the same family: ifupdown reads ``mtu`` differently in inet and inet6).

    Raises:
        InvalidInput: a hook line kvmnet cannot place (see `.interfaces.hook_place`).
    """
    lines = config.files[path]
    first = stanzas[0]
    placed = place(stanzas, nic=nic, bridge=bridge)
    mine = [s for s in stanzas if s.path == path]
    indent = _indent(lines, first)
    out: list[str] = []
    i = 0
    for stanza in sorted(mine, key=lambda s: s.start):
        out += lines[i:stanza.start]
        original = [
            _original_prefix(bridge) + line if line.endswith("\n")
            else _original_prefix(bridge, eol=False) + line + "\n"
            for line in lines[stanza.start:stanza.end]
        ]
        if stanza is first:
            port: list[str] = []
            for n, item in enumerate(placed):
                if n == 0 or item.port:
                    port.append(f"iface {nic} {item.stanza.family} manual\n")
                    port += [f"{indent}{k} {v}".rstrip() + "\n" for k, v in item.port]
            body = bridge_lines(
                bridge=bridge, nic=nic, mac=mac, placed=placed, stp=stp,
                forward_delay=forward_delay, auto=config.auto_class(nic), indent=indent,
            )
            out += [
                f"{BEGIN}{bridge} ({nic} is its port; `kvmnet host-release {nic} {bridge}` "
                "puts back the lines marked below)\n",
                *original,
                *port,
                "\n",
                *body,
                f"{END}{bridge}\n",
            ]
        else:
            out += original
        i = stanza.end
    out += lines[i:]
    return "".join(out)


def released_text(lines: list[str], bridge: str) -> str | None:
    """The text as it was before kvmnet bridged into ``bridge``; None when it holds nothing
    of kvmnet's for that bridge."""
    prefix, no_eol = _original_prefix(bridge), _original_prefix(bridge, eol=False)
    begin, end = f"{BEGIN}{bridge} ", f"{END}{bridge}\n"
    out: list[str] = []
    inside = found = False
    for line in lines:
        if line.startswith(begin):
            inside = found = True
        elif inside and line == end:
            inside = False
        elif line.startswith(prefix):
            found = True
            out.append(line[len(prefix):])
        elif line.startswith(no_eol):
            found = True
            out.append(line[len(no_eol):].removesuffix("\n"))
        elif not inside:
            out.append(line)
    return "".join(out) if found else None


def _addrgen_steps(current: HostState, nic: str, *, source: str | None = None) -> list[Step]:
    """Give ``nic`` back its IPv6 address generation mode: bridge-utils sets a port's to
    ``none`` (no link-local on a port) and leaves it so when the port leaves the bridge.
    ``source``: read the mode of that conf entry (``default`` after a release)."""
    raw = current.read_file(f"/proc/sys/net/ipv6/conf/{source or nic}/addr_gen_mode")
    mode = _ADDRGEN.get((raw or b"").decode().strip())
    if mode is None or mode == "none":
        return []
    return [RunCommand(("ip", "link", "set", nic, "addrgenmode", mode),
                       f"{nic}'s IPv6 link-local again (bridge-utils turned it off)")]


class IfupdownBackend(FileBackendBase):
    """``/etc/network/interfaces`` (Debian's ifupdown with bridge-utils).

    Args:
        root: where the files are (``/``: this machine's).
        netns: run ifup/ifdown inside this network namespace.
        runner: run them through this runner (default: for ``netns``).
        interfaces: the main file, as the target machine names it.
        state_dir: ifupdown's state folder (``--state-dir``); None: ifupdown's default.
        files_only: only write the files: no ifdown/ifup on this machine, nothing verified.
            None (default): when ``root`` is not ``/`` and no ``netns`` says where the files
            are live (a lab namespace whose ifupdown reads ``root``'s files); files written
            into an image or another root must not touch this machine, and what runs here
            could not show that they work.

    Raises:
        InvalidInput: ``root`` is not an absolute path.
    """

    reads_files = "ifupdown reads them at the next `ifup` of the bridge or boot there"

    name = "ifupdown"

    def __init__(
        self,
        *,
        root: str = "/",
        netns: str | None = None,
        runner: Runner | None = None,
        interfaces: str = MAIN,
        state_dir: str | None = None,
        files_only: bool | None = None,
    ) -> None:
        super().__init__(root=root, netns=netns, runner=runner)
        if not interfaces.startswith("/"):
            raise InvalidInput(f"interfaces {interfaces!r} is not an absolute path")
        self.interfaces = interfaces
        self.state_dir = state_dir
        self.files_only = self.root != "/" and netns is None if files_only is None else files_only

    def __repr__(self) -> str:
        return f"<IfupdownBackend root={self.root!r} runner={self.runner!r}>"

    # -- reading ----------------------------------------------------------------------

    def read(self, current: HostState) -> Config:
        """The main file and everything it sources, read under ``root``.

        Args:
            current: the host as it is now (its files are read through it).

        Returns:
            The parsed configuration: files, stanzas, ``auto`` lines, mappings.
        """
        return read_config(
            self.interfaces,
            lambda p: read_text(current, self.paths(p)),
            lambda p: current.list_dir(self.paths(p)),
        )

    def _cmd(self, verb: str, *names: str) -> tuple[str, ...]:
        argv = [verb]
        if self.root != "/" or self.interfaces != MAIN:
            argv += ["-i", self.paths(self.interfaces)]
        if self.state_dir is not None:
            argv += ["--state-dir", self.state_dir]
        return (*argv, *names)

    def _state_steps(self, current: HostState, new: str) -> list[Step]:
        """ifupdown's record of what is up, as it is now, and ``new``'s lock file gone: after
        a rollback ifupdown would otherwise believe in an interface its files no longer name
        (and ``ifdown`` refuses to forget an interface it does not know)."""
        folder = self.state_dir or STATE_DIR
        state = posixpath.join(folder, "ifstate")
        steps: list[Step] = [RemoveFile(posixpath.join(folder, f"ifstate.{new}"))]
        text = current.read_file(state)
        if text is not None:
            steps.append(WriteFile(state, text.decode(), mode=0o644, why="ifupdown's state"))
        return steps

    # -- planning ---------------------------------------------------------------------

    def plan_enslave(self, request: BridgeRequest, current: HostState) -> Plan:
        """Plan bridging ``request.nic`` into ``request.bridge``: the NIC's stanzas become a
        ``manual`` port, a bridge stanza takes over their options; ``ifdown``/``ifup`` unless
        `files_only`.

        Args:
            request: what is wanted: the NIC, the bridge and the options.
            current: the host as it is now: links, routes, DHCP clients, and files read under
                the backend's ``root``.

        Returns:
            The `Plan`; nothing is changed (``plan.apply()`` runs it).

        Raises:
            InvalidInput: no stanza for the NIC, a mapping, a loopback, a stanza for the
                bridge already, an alias stanza of the NIC, or a hook line kvmnet cannot
                place.
        """
        nic, br = request.nic, request.bridge
        config = self.read(current)
        stanzas = self._nic_stanzas(config, nic, br)
        warnings = stp_warnings(request)
        files = sorted({s.path for s in stanzas}, key=lambda p: stanzas[0].path != p)
        writes: list[Step] = [
            write_step(
                current,
                self.paths(path),
                bridged_text(config, path, nic=nic, bridge=br, mac=current.nic.mac,
                             stanzas=stanzas, stp=request.stp,
                             forward_delay=request.forward_delay),
                mode=0o644,
                why=f"{nic} becomes a manual port of {br}, which takes its configuration",
                keep_mode=self.runner,
            )
            for path in files
        ]
        if self.files_only:
            return self._files_only("enslave", request, current, writes, warnings)
        steps: list[Step] = [RunCommand(self._cmd("ifdown", nic), f"{nic} with its old stanza")]
        steps += writes
        steps += stale_address_steps(current, request)
        steps.append(RunCommand(self._cmd("ifup", br), f"bridge-utils adds {nic} to {br}"))
        # Run after the files are restored, before links, addresses and routes are:
        # ifupdown's record goes back to what it was (it would otherwise believe in a
        # bridge its files no longer name), the NIC gets its link-local mode back.
        hints = [*self._state_steps(current, br), *_addrgen_steps(current, nic)]
        return self._plan("enslave", request, current, steps, warnings=warnings,
                          rollback_hints=hints, restore_runtime=True)

    def _nic_stanzas(self, config: Config, nic: str, br: str) -> list[Stanza]:
        stanzas = config.stanzas_of(nic)
        where = self.paths(self.interfaces)
        if not stanzas:
            raise InvalidInput(
                f"no `iface {nic} ...` stanza in {where} or the files it sources: ifupdown "
                f"does not configure {nic} here; use the backend that does (backend='auto' "
                "finds it), or add a stanza for it first"
            )
        mapped = config.mapped(nic)
        if mapped is not None:
            raise InvalidInput(
                f"{nic} is chosen by a `mapping` stanza ({mapped}): kvmnet does not rewrite "
                "mapped interfaces; bridge it by hand or drop the mapping"
            )
        aliases = [s for s in config.stanzas if s.name.startswith(f"{nic}:")]
        if aliases:
            alias = aliases[0]
            raise InvalidInput(
                f"`iface {alias.name} {alias.family} {alias.method}` ({alias.where}) adds an "
                f"alias address to {nic}; kvmnet does not move alias stanzas (it would stay "
                f"on {br}'s port, where an address is lost): make it a second "
                f"`iface {nic} {alias.family} ...` stanza (ifupdown's way to several "
                f"addresses, which kvmnet moves to {br}) first"
            )
        if any(s.method == "loopback" for s in stanzas):
            raise InvalidInput(f"{nic} is a loopback interface: it cannot be a bridge port")
        theirs = config.stanzas_of(br)
        if theirs:
            raise InvalidInput(
                f"{br} already has a stanza ({theirs[0].where}): release it, or pick another "
                "bridge name"
            )
        return stanzas

    def plan_release(self, request: BridgeRequest, current: HostState) -> Plan:
        """Plan the way back: the NIC's own stanzas back, the bridge's gone.

        Args:
            request: what is wanted: the NIC, the bridge and the options.
            current: the host as it is now: links, routes, DHCP clients, and files read under
                the backend's ``root``.

        Returns:
            The `Plan`; nothing is changed (``plan.apply()`` runs it).

        Raises:
            InvalidInput: no bridge written by kvmnet in the files.
        """
        nic, br = request.nic, request.bridge
        config = self.read(current)
        writes: list[Step] = []
        for path, lines in config.files.items():
            text = released_text(lines, br)
            if text is not None:
                writes.append(
                    write_step(current, self.paths(path), text, mode=0o644,
                               why=f"{nic}'s own stanza back, {br}'s gone",
                               keep_mode=self.runner)
                )
        if not writes:
            raise InvalidInput(
                f"{self.paths(self.interfaces)} and the files it sources hold no bridge {br} "
                f"written by kvmnet: edit the stanzas of {br} and {nic} by hand"
            )
        if self.files_only:
            return self._files_only("release", request, current, writes, [])
        steps: list[Step] = [
            RunCommand(self._cmd("ifdown", br), f"{br} down; bridge-utils removes it")
        ]
        steps += _addrgen_steps(current, nic, source="default")
        steps += writes
        steps.append(RunCommand(self._cmd("ifup", nic), f"{nic} with its own stanza again"))
        return self._plan("release", request, current, steps,
                          rollback_hints=self._state_steps(current, nic), restore_runtime=True)

"""Debian's ``/etc/network/interfaces`` (interfaces(5)) as text kvmnet can edit in place.

Pure: no I/O beyond the ``read``/``list_dir`` callables it is given. The reader follows
``source`` and ``source-directory`` includes (relative paths are relative to the including
file's folder, as ifupdown reads them; ``source-directory`` takes the file names ifupdown
takes, ``^[a-zA-Z0-9_-]+$``), splits each file into stanzas and keeps every line as it was,
so an edit rewrites only the lines it must and everything else comes back byte for byte.

Bridging NIC into BR rewrites the NIC's stanzas like this (lines kvmnet adds sit between
two marker comments; the NIC's original lines stay in the file behind ``#kvmnet|``, so the
release puts them back exactly)::

    auto eth0                              <- untouched
    # kvmnet: begin br0 ...
    #kvmnet|iface eth0 inet dhcp
    #kvmnet|    dns-nameservers 10.0.0.1
    iface eth0 inet manual
    ...
    auto br0
    iface br0 inet dhcp
        bridge_ports eth0
        ...
        dns-nameservers 10.0.0.1
    # kvmnet: end br0

Which option goes to which side is `place`'s (hooks: `hook_place`).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ...errors import InvalidInput

__all__ = [
    "BEGIN",
    "END",
    "HOOKS",
    "LINK_LEVEL",
    "ORIGINAL",
    "Config",
    "Placed",
    "Stanza",
    "bridge_lines",
    "hook_place",
    "is_link_level",
    "place",
    "read_config",
    "split_lines",
]

#: Stanza keywords (interfaces(5)); any other first word continues the current stanza.
KEYWORDS = frozenset(
    {"iface", "mapping", "auto", "source", "source-directory", "no-auto-down", "no-scripts",
     "rename", "template"}
)
#: Options that describe the link itself: they stay on the port (``manual`` takes
#: ``hwaddress`` and ``mtu``; bonds, VLANs and ethtool settings belong to the device).
LINK_LEVEL = ("hwaddress", "mtu", "bond-", "slaves", "vlan-raw-device", "ethernet-", "link-",
              "offload-", "hardware-", "wireless-", "wpa-", "ovs-")
#: Hook options (interfaces(5)): commands run as the interface goes up or down.
HOOKS = frozenset({"pre-up", "up", "post-up", "down", "pre-down", "post-down"})
#: The prefix of the NIC's original lines kept in the file while it is bridged.
ORIGINAL = "#kvmnet|"
BEGIN = "# kvmnet: begin "
END = "# kvmnet: end "
_SOURCE_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")


def split_lines(text: str) -> list[str]:
    """``text`` as lines that keep their endings (joined back, they are the same bytes)."""
    return text.splitlines(keepends=True)


def _words(line: str) -> list[str]:
    return line.split()


def _is_comment_or_blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def is_link_level(option: str) -> bool:
    """Whether option ``option`` (``bond-mode``, ``bond_mode``...) stays on the port."""
    key = option.replace("_", "-")
    return any(key == p or (p.endswith("-") and key.startswith(p)) for p in LINK_LEVEL)


# -- hooks: which side of the bridge a command line belongs to --------------------------

#: Programs that set up the device itself (speed, offloads, radio, queueing): a hook running
#: one on the NIC stays with the NIC, on the port (on a bridge, ethtool fails and aborts ifup).
_LINK_PROGRAMS = frozenset({"ethtool", "iw", "iwconfig", "iwpriv", "mii-tool", "tc"})
#: ``ip`` objects in ip(8)'s own table order, up to ``link`` (an abbreviation means the first
#: object that starts with it: ``ip a`` is ``address``, ``ip l`` is ``link``), then
#: ``nexthop``; what each configures: the link, or what moves to the bridge; None: neither.
_IP_OBJECTS: tuple[tuple[str, str | None], ...] = (
    ("address", "ip"), ("addrlabel", None), ("maddress", "ip"), ("route", "ip"),
    ("rule", "ip"), ("neighbor", "ip"), ("neighbour", "ip"), ("ntable", None), ("ntbl", None),
    ("link", "link"), ("nexthop", "ip"),
)
#: ``ip`` options that take a value (``ip -family inet6 route ...``), as ip(8) abbreviates them.
_IP_VALUE_OPTIONS = ("family", "netns", "batch", "loops", "rcvbuf")
#: ifconfig words that set the link, and words that give it an address.
_IFCONFIG_LINK = frozenset({"mtu", "txqueuelen", "hw", "promisc", "-promisc", "allmulti",
                            "-allmulti", "arp", "-arp", "multicast", "-multicast"})
_IFCONFIG_ADDRESS = frozenset({"inet", "inet6", "add", "del", "netmask", "broadcast",
                               "-broadcast", "pointopoint", "-pointopoint", "dstaddr"})
_IPV4ISH = re.compile(r"^\d+\.\d+\.\d+\.\d+(/\d+)?$")
#: Words before the program: assignments, wrappers and shell keywords (``if ...; then ...``).
_PREFIX_WORDS = frozenset({"sudo", "exec", "command", "nice", "!", "{", "(", "if", "then",
                           "else", "elif", "do", "while", "until"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
#: ``$IFACE`` / ``${IFACE}``: the interface the stanza configures (the bridge, once moved).
_IFACE = re.compile(r"\$(?:IFACE\b|\{IFACE\})")
_COMMANDS = re.compile(r"&&|\|\||[;&|]")


def _names(nic: str) -> re.Pattern[str]:
    """``nic`` as a whole name: not ``eth10``, ``xeth0`` or ``eth0.100`` (a VLAN), but ``dev
    eth0``, ``label eth0:1`` (its address label), ``/sys/class/net/eth0/``, ``conf.eth0.mtu``."""
    return re.compile(r"(?<![\w-])" + re.escape(nic) + r"(?![\w-]|\.\d)")


def _ip_kind(args: list[str]) -> str | None:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        opt = args[i].lstrip("-")
        i += 2 if opt and any(o.startswith(opt) for o in _IP_VALUE_OPTIONS) else 1
    if i == len(args):
        return None
    word = args[i]
    return next((kind for name, kind in _IP_OBJECTS if name.startswith(word)), None)


def _ifconfig_kind(args: list[str]) -> str:
    link = address = False
    words = iter(args[1:])  # after the interface's name
    for word in words:
        if word == "hw":  # hw CLASS MAC: the MAC is no address
            link = True
            next(words, None)
            next(words, None)
        elif word in _IFCONFIG_LINK:
            link = True
        elif word in _IFCONFIG_ADDRESS or _IPV4ISH.match(word) or word.count(":") >= 2:
            address = True
    if link and address:
        return "mixed"
    return "ip" if address else "link"  # `ifconfig eth0 up`: the link


def _command_kind(command: str, subject: str) -> str | None:
    """What ``command`` configures on the interface ``subject`` (a regex source matching its
    name or ``$IFACE``): ``"link"`` (the device: stays on the port), ``"ip"`` (addresses,
    routes, per-interface IP settings: move to the bridge), ``"mixed"`` (both), None (kvmnet
    does not know the program)."""
    words = [w.strip("'\"") for w in command.split()]
    i = 0
    while i < len(words) and (words[i] in _PREFIX_WORDS or _ASSIGNMENT.match(words[i])):
        i += 1
    program, args = (posixpath.basename(words[i]), words[i + 1:]) if i < len(words) else ("", [])
    if program in _LINK_PROGRAMS:
        return "link"
    if program == "ip":
        return _ip_kind(args)
    if program == "route":
        return "ip"
    if program == "ifconfig":
        return _ifconfig_kind(args)
    # sysctl, echo > /proc/sys/...: IP settings of the interface; /sys/class/net: the device.
    if re.search(r"net[./]ipv[46][./](?:conf|neigh)[./](?:" + subject + r")[./]", command):
        return "ip"
    if re.search(r"/sys/class/net/(?:" + subject + r")(?:/|\b)", command):
        return "link"
    return None


def hook_place(key: str, value: str, *, nic: str, bridge: str, where: str) -> tuple[str, str]:
    """Where the hook line ``key value`` of ``nic``'s stanza belongs once ``nic`` is a port.

    Each command of the line (``;``, ``&&``, ``||``, ``|`` separate them) that names the NIC,
    by name or as ``$IFACE``, decides: a link-level one (ethtool, iw, tc, ``ip link``,
    ``ifconfig NIC mtu``, /sys/class/net/NIC) keeps the line on the port, as it is; one that
    configures addresses or routes (``ip addr/route/rule/neigh``, ``route``, ``ifconfig NIC
    ADDRESS``, ``net.ipv4/6.conf.NIC`` settings) moves it to the bridge, with the NIC's
    name replaced by the bridge's. A line naming neither goes to the bridge unchanged, and so
    does one naming only ``$IFACE`` in a program kvmnet does not know (``$IFACE`` then means
    the bridge, where the addresses are).

    Args:
        key: the hook (``up``, ``pre-up``...).
        value: its command line.
        nic: the NIC's name.
        bridge: the bridge's name.
        where: the stanza's ``path:line``, for messages.

    Returns:
        ``("port", value)`` or ``("bridge", value as the bridge runs it)``.

    Raises:
        InvalidInput: the line names the NIC in a program kvmnet does not know (it cannot tell
            which side it belongs to), or sets up both the link and addresses.
    """
    names = _names(nic)
    subject = f"{names.pattern}|{_IFACE.pattern}"
    kinds: set[str] = set()
    for command in _COMMANDS.split(value):
        named = names.search(command) is not None
        if not named and _IFACE.search(command) is None:
            continue
        kind = _command_kind(command, subject)
        if kind is None and named:
            raise InvalidInput(
                f"{where}: kvmnet cannot tell where `{key} {value}` belongs once {nic} is a "
                f"port of {bridge}: it names {nic} in a command kvmnet does not know, which "
                f"may set up {nic}'s link (that stays on the port) or what moves to {bridge} "
                f"(addresses, routes). Write $IFACE for {nic} if it acts on the addresses "
                f"(the line then runs on {bridge}), or bridge {nic} by hand"
            )
        if kind is not None:
            kinds.add(kind)
    if "mixed" in kinds or kinds == {"link", "ip"}:
        raise InvalidInput(
            f"{where}: `{key} {value}` sets up both {nic}'s link (which stays on {bridge}'s "
            f"port) and its addresses or routes (which move to {bridge}): split it into two "
            "lines, then bridge again"
        )
    if kinds == {"link"}:
        return "port", value
    if kinds == {"ip"}:
        return "bridge", names.sub(bridge, value)
    return "bridge", value


@dataclass(frozen=True)
class Stanza:
    """An ``iface NAME FAMILY METHOD`` stanza: its file, line range and options.

    Attributes:
        path: the file it is in.
        start: the index of its ``iface`` line in the file's lines.
        end: the index after its last line (trailing blank and comment lines left out).
        name: the interface it configures.
        family: ``inet`` or ``inet6``.
        method: ``static``, ``dhcp``, ``manual``...
        options: ``(name, value)`` pairs, in order.
    """

    path: str
    start: int
    end: int
    name: str
    family: str
    method: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def where(self) -> str:
        """``path:line`` of the ``iface`` line, for messages."""
        return f"{self.path}:{self.start + 1}"


@dataclass
class Config:
    """Every file read, and the stanzas, ``auto``/``allow-*`` lines and ``mapping`` stanzas
    found in them, in reading order.

    Attributes:
        files: path -> its lines.
        stanzas: the ``iface`` stanzas.
        autos: ``(path, line index, "auto" or "allow-CLASS", names)`` of each such line.
        mappings: ``(path, line index, globs)`` of each ``mapping`` stanza.
    """

    files: dict[str, list[str]] = field(default_factory=dict)
    stanzas: list[Stanza] = field(default_factory=list)
    autos: list[tuple[str, int, str, tuple[str, ...]]] = field(default_factory=list)
    mappings: list[tuple[str, int, tuple[str, ...]]] = field(default_factory=list)

    def stanzas_of(self, name: str) -> list[Stanza]:
        """The ``iface`` stanzas of ``name`` (inet and inet6), in reading order.

        Args:
            name: the interface's name.

        Returns:
            Its stanzas; empty when none configures it.
        """
        return [s for s in self.stanzas if s.name == name]

    def auto_class(self, name: str) -> str | None:
        """Which line brings ``name`` up.

        Args:
            name: the interface's name.

        Returns:
            ``"auto"`` or ``"allow-CLASS"``, else None.
        """
        for _path, _line, kind, names in self.autos:
            if name in names:
                return kind
        return None

    def mapped(self, name: str) -> str | None:
        """Where a ``mapping`` stanza covers ``name`` (a glob).

        Args:
            name: the interface's name.

        Returns:
            ``path:line`` of the mapping, else None.
        """
        for path, line, globs in self.mappings:
            if any(fnmatch.fnmatchcase(name, g) for g in globs):
                return f"{path}:{line + 1}"
        return None


@dataclass(frozen=True)
class Placed:
    """A NIC stanza's options split between the port and the bridge.

    Attributes:
        stanza: the NIC's stanza.
        port: what stays with the NIC, on a ``manual`` stanza of the same family.
        bridge: what the bridge's stanza of the same family takes.
    """

    stanza: Stanza
    port: tuple[tuple[str, str], ...]
    bridge: tuple[tuple[str, str], ...]


def place(stanzas: Iterable[Stanza], *, nic: str, bridge: str) -> list[Placed]:
    """Split every option of every stanza of ``nic`` between its port and ``bridge``.

    Link-level options (`is_link_level`) stay on the port; hooks go where `hook_place` says;
    everything else moves to the bridge. ``mtu`` of an inet6 stanza goes to both: ifupdown
    makes it IPv6's MTU (``net.ipv6.conf.IF.mtu``) and raises the link's MTU only when that
    is smaller, so the port keeps the raise and the bridge, which holds the IPv6 addresses,
    the IPv6 MTU.

    Args:
        stanzas: the NIC's stanzas, in order.
        nic: the NIC's name.
        bridge: the bridge's name.

    Returns:
        One `Placed` per stanza, in order.

    Raises:
        InvalidInput: a hook line kvmnet cannot place (see `hook_place`).
    """
    out: list[Placed] = []
    for stanza in stanzas:
        port: list[tuple[str, str]] = []
        br: list[tuple[str, str]] = []
        for key, value in stanza.options:
            if key in HOOKS:
                side, text = hook_place(key, value, nic=nic, bridge=bridge, where=stanza.where)
                (port if side == "port" else br).append((key, text))
            elif key == "mtu" and stanza.family == "inet6":
                port.append((key, value))
                br.append((key, value))
            elif is_link_level(key):
                port.append((key, value))
            else:
                br.append((key, value))
        out.append(Placed(stanza, tuple(port), tuple(br)))
    return out


Reader = Callable[[str], "str | None"]
Lister = Callable[[str], "Sequence[str] | None"]


def read_config(path: str, read: Reader, list_dir: Lister) -> Config:
    """Read ``path`` and everything it sources. A file that is missing reads as empty.

    Args:
        path: the main file, e.g. ``/etc/network/interfaces`` (as the target machine names it).
        read: the text of a path, or None when it does not exist.
        list_dir: the names in a folder, or None when it does not exist.

    Returns:
        The `Config`; a file sourced twice is read once.
    """
    config = Config()
    _read_file(config, path, read, list_dir)
    return config


def _expand(pattern: str, base: str, list_dir: Lister) -> list[str]:
    full = pattern if pattern.startswith("/") else posixpath.join(base, pattern)
    folder, glob = posixpath.split(full)
    if not any(c in glob for c in "*?["):
        return [full]
    names = list_dir(folder) or ()
    return [posixpath.join(folder, n) for n in sorted(names) if fnmatch.fnmatchcase(n, glob)]


def _read_file(config: Config, path: str, read: Reader, list_dir: Lister) -> None:
    if path in config.files:
        return
    text = read(path)
    lines = split_lines(text) if text is not None else []
    config.files[path] = lines
    base = posixpath.dirname(path)
    current: list[object] | None = None  # [start, name, family, method, options, last]

    def close(at: int) -> None:
        nonlocal current
        if current is None:
            return
        start, name, family, method, options, last = current
        assert isinstance(start, int) and isinstance(last, int) and isinstance(options, list)
        config.stanzas.append(
            Stanza(path, start, last + 1, str(name), str(family), str(method), tuple(options))
        )
        current = None

    includes: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        # A trailing backslash continues the line (interfaces(5)).
        logical, j = lines[i].rstrip("\n"), i
        while logical.endswith("\\") and j + 1 < len(lines):
            j += 1
            logical = logical[:-1] + lines[j].rstrip("\n")
        words = _words(logical)
        if not words or words[0].startswith("#"):
            i = j + 1
            continue
        head = words[0]
        if head in KEYWORDS or head.startswith("allow-"):
            close(i)
            if head == "iface" and len(words) >= 4:
                current = [i, words[1], words[2], words[3], [], j]
            elif head == "auto" or head.startswith("allow-"):
                config.autos.append((path, i, head, tuple(words[1:])))
            elif head == "mapping":
                config.mappings.append((path, i, tuple(words[1:])))
            elif head == "source" and len(words) > 1:
                includes += [("file", w) for w in words[1:]]
            elif head == "source-directory" and len(words) > 1:
                includes += [("dir", w) for w in words[1:]]
        elif current is not None:
            options = current[4]
            assert isinstance(options, list)
            options.append((head, logical.strip()[len(head):].strip()))
            current[5] = j
        i = j + 1
    close(len(lines))
    for kind, pattern in includes:
        if kind == "file":
            for found in _expand(pattern, base, list_dir):
                _read_file(config, found, read, list_dir)
        else:
            folder = pattern if pattern.startswith("/") else posixpath.join(base, pattern)
            for name in sorted(list_dir(folder) or ()):
                if _SOURCE_NAME.match(name):
                    _read_file(config, posixpath.join(folder, name), read, list_dir)


def bridge_lines(
    *,
    bridge: str,
    nic: str,
    mac: str,
    placed: Iterable[Placed],
    stp: bool,
    forward_delay: int,
    auto: str | None,
    indent: str = "    ",
) -> list[str]:
    """The bridge's stanzas: one per family the NIC had, carrying its bridge-side options
    (see `place`).

    The first stanza also holds the bridge-utils options: ports, STP, forward delay, the
    NIC's MAC (``bridge_hw``: the bridge keeps the NIC's DHCP identity and IPv6 link-local).
    """
    out = [f"auto {bridge}\n"] if auto is not None else []
    first = True
    for item in placed:
        out.append(f"iface {bridge} {item.stanza.family} {item.stanza.method}\n")
        if first:
            out += [
                f"{indent}bridge_ports {nic}\n",
                f"{indent}bridge_stp {'on' if stp else 'off'}\n",
                f"{indent}bridge_fd {forward_delay}\n",
                f"{indent}bridge_maxwait 0\n",
                f"{indent}bridge_hw {mac}\n",
            ]
            first = False
        out += [f"{indent}{k} {v}".rstrip() + "\n" for k, v in item.bridge]
    return out
